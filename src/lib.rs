//! bert4rs: BERT/RoBERTa encoders loaded from HuggingFace model directories, tokenized with
//! the `tokenizers` crate and run on `candle` with fused CPU kernels.
//!
//! ```no_run
//! use bert4rs::{SentenceEncoder, Pooling};
//! # fn main() -> bert4rs::Result<()> {
//! let enc = SentenceEncoder::from_dir("path/to/all-MiniLM-L6-v2".as_ref())?;
//! let emb = enc.embed(&["A man is eating food.", "A man is eating a piece of bread."])?;
//! println!("cos = {:.4}", bert4rs::tasks::embed::cosine(&emb[0], &emb[1]));
//! # Ok(()) }
//! ```
//!
//! Data flows one way: [`tokenize`] → [`data`] (batches) → [`models`] → [`tasks`] → [`train`].
//! The front ends — the `bert4rs` command line (crate `bert4rs-cli`), the HTTP server and the
//! Python package — are crates of their own on top of this one.

pub mod assets;
pub mod config;
pub mod data;
pub mod error;
pub mod generate;
pub mod index;
pub mod kernels;
pub mod models;
pub mod nn;
pub mod rng;
pub mod tasks;
pub mod tokenize;
pub mod train;
pub mod util;
pub mod word2vec;

pub use config::BertConfig;
pub use error::{Error, Result};
pub use models::bert::{BertModel, EncoderInput, EncoderOutput};
pub use nn::Pooling;
pub use tasks::embed::SentenceEncoder;
pub use tokenize::{EncodeOptions, Padding, TextInput, Tokenizer, Truncation};
