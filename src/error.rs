//! The crate-wide error type: every failure names the file, line, field or tensor involved
//! and, where it can, what to do about it.

use std::path::PathBuf;

/// Crate-level result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while loading, tokenizing or running a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A JSON/TOML file did not parse or has a bad field.
    #[error("{path}: {msg}")]
    Config { path: PathBuf, msg: String },
    /// A checkpoint is unreadable, truncated, or misses/mismatches a tensor.
    #[error("{path}: {msg}")]
    Checkpoint { path: PathBuf, msg: String },
    /// An input data file has a bad line.
    #[error("{path}:{line}: {msg}")]
    Input {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    /// The tokenizer could not be built or failed on a text.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Shapes or sizes that do not fit together (e.g. text longer than the position table).
    #[error("{0}")]
    Invalid(String),
    /// An asset download or checksum failed.
    #[error("fetch {name}: {msg}")]
    Fetch { name: String, msg: String },
    /// An error from the tensor library.
    #[error("tensor op failed: {0}")]
    Candle(#[from] candle_core::Error),
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A config-file error naming the file.
    pub fn config(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Config {
            path: path.into(),
            msg: msg.into(),
        }
    }

    /// A checkpoint error naming the file.
    pub fn checkpoint(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Checkpoint {
            path: path.into(),
            msg: msg.into(),
        }
    }
}
