//! Two-tower retrieval: a corpus embedded once into an on-disk index, so a query runs only
//! the query tower and an exact cosine scan ([`scan::top_k`]).
//!
//! An index is a directory:
//! - `index.json`: [`IndexMeta`] (format, dimension, row count, the model and pooling that
//!   made it, so queries are embedded the same way);
//! - `vectors.f32`: `count × dim` little-endian f32 unit vectors, row = corpus line; read
//!   memory-mapped, so opening is instant and only the pages a scan touches are read;
//! - `texts.jsonl` + `offsets.u64`: each row's input (`{"text", "text_pair"?}`) and the
//!   `count + 1` byte offsets of those lines, for random access to a hit's text.
//!
//! [`IndexWriter`] builds it in `OUT.partial/` and renames it into place at the end; a build
//! that stops (error, Ctrl-C, `kill -9`) resumes from its last complete chunk when run again
//! with the same inputs.

pub mod scan;

use crate::error::{Error, Result};
pub use scan::{top_k, Hit};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The format this code writes and reads.
pub const FORMAT: &str = "bert4rs-flat-cosine-v1";

/// What an index holds and how its vectors were made (`index.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexMeta {
    /// [`FORMAT`].
    pub format: String,
    /// Values per vector.
    pub dim: usize,
    /// Rows (corpus lines).
    pub count: usize,
    /// The model directory the vectors came from (queries use it unless told otherwise).
    pub model: String,
    /// The pooling, as `--pooling` spells it.
    pub pooling: String,
    /// The truncation length the corpus was embedded with (None: the model's own).
    pub max_length: Option<usize>,
    /// The corpus file.
    pub source: String,
}

/// What a build is of: a resumed build must match it exactly (`build.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BuildSpec {
    /// The metadata without the final count (`count` = the number of inputs to embed).
    pub meta: IndexMeta,
    /// The corpus file's size in bytes, so an edited corpus starts afresh.
    pub source_bytes: u64,
}

/// Writes an index chunk by chunk; see the module docs.
pub struct IndexWriter {
    out: PathBuf,
    partial: PathBuf,
    spec: BuildSpec,
    done: usize,
    vectors: File,
    texts: File,
    offsets: File,
    text_end: u64,
}

fn io_at(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

impl IndexWriter {
    /// Starts the build of `spec` into `out`, or resumes one that stopped: `out` must not
    /// hold an index yet.
    pub fn create_or_resume(out: &Path, spec: BuildSpec) -> Result<Self> {
        if out.join("index.json").exists() {
            return Err(Error::Invalid(format!(
                "{}: an index is already there; remove it or choose another --output",
                out.display()
            )));
        }
        if spec.meta.dim == 0 || spec.meta.count == 0 {
            return Err(Error::Invalid(format!(
                "index build: nothing to index (dim {}, {} inputs)",
                spec.meta.dim, spec.meta.count
            )));
        }
        let partial = PathBuf::from(format!("{}.partial", out.display()));
        let build = partial.join("build.json");
        let resumable = fs::read(&build)
            .ok()
            .and_then(|b| serde_json::from_slice::<BuildSpec>(&b).ok())
            .is_some_and(|old| old == spec);
        if !resumable {
            if partial.exists() {
                fs::remove_dir_all(&partial).map_err(io_at(&partial))?;
            }
            fs::create_dir_all(&partial).map_err(io_at(&partial))?;
            let json =
                serde_json::to_vec_pretty(&spec).map_err(|e| Error::Invalid(e.to_string()))?;
            crate::util::write_atomic(&build, &json)?;
        }
        let open = |name: &str| -> Result<File> {
            let p = partial.join(name);
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&p);
            f.map_err(io_at(&p))
        };
        let (vectors, texts, mut offsets) = (
            open("vectors.f32")?,
            open("texts.jsonl")?,
            open("offsets.u64")?,
        );
        let (done, text_end) = consistent_prefix(&partial, &spec, &mut offsets)?;
        let row_bytes = (spec.meta.dim * 4) as u64;
        // Cut every file back to the last chunk whose offsets were written: writes past it
        // are a chunk the stop interrupted.
        let cut =
            |f: &File, len: u64, name: &str| f.set_len(len).map_err(io_at(&partial.join(name)));
        cut(&vectors, done as u64 * row_bytes, "vectors.f32")?;
        cut(&texts, text_end, "texts.jsonl")?;
        cut(&offsets, (done as u64 + 1) * 8, "offsets.u64")?;
        if done == 0 {
            (&offsets)
                .write_all(&0u64.to_le_bytes())
                .map_err(io_at(&partial))?;
        }
        Ok(IndexWriter {
            out: out.to_path_buf(),
            partial,
            spec,
            done,
            vectors,
            texts,
            offsets,
            text_end,
        })
    }

    /// Rows already written (a resumed build continues from here).
    pub fn done(&self) -> usize {
        self.done
    }

    /// Appends one chunk: unit vectors (normalised here) and their inputs as JSON lines.
    /// Durable on return: offsets are written last, so a stop mid-chunk loses only it.
    pub fn append(&mut self, vectors: &[Vec<f32>], texts: &[serde_json::Value]) -> Result<()> {
        let dim = self.spec.meta.dim;
        if vectors.len() != texts.len() || self.done + vectors.len() > self.spec.meta.count {
            return Err(Error::Invalid(format!(
                "index build: chunk of {} vectors / {} texts after {} of {} rows",
                vectors.len(),
                texts.len(),
                self.done,
                self.spec.meta.count
            )));
        }
        let mut vbytes = Vec::with_capacity(vectors.len() * dim * 4);
        for v in vectors {
            if v.len() != dim {
                return Err(Error::Invalid(format!(
                    "index build: a vector of {} values in an index of dim {dim}",
                    v.len()
                )));
            }
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            vbytes.extend(v.iter().flat_map(|x| (x / norm).to_le_bytes()));
        }
        let (mut tbytes, mut obytes) = (Vec::new(), Vec::new());
        for t in texts {
            serde_json::to_writer(&mut tbytes, t).map_err(|e| Error::Invalid(e.to_string()))?;
            tbytes.push(b'\n');
            obytes.extend((self.text_end + tbytes.len() as u64).to_le_bytes());
        }
        let p = &self.partial;
        let write = |mut f: &File, bytes: &[u8], name: &str| -> Result<()> {
            f.seek(SeekFrom::End(0)).map_err(io_at(&p.join(name)))?;
            f.write_all(bytes).map_err(io_at(&p.join(name)))?;
            f.sync_data().map_err(io_at(&p.join(name)))
        };
        write(&self.vectors, &vbytes, "vectors.f32")?;
        write(&self.texts, &tbytes, "texts.jsonl")?;
        write(&self.offsets, &obytes, "offsets.u64")?;
        self.done += vectors.len();
        self.text_end += tbytes.len() as u64;
        Ok(())
    }

    /// Writes `index.json` and moves the directory into place; every row must be written.
    pub fn finish(self) -> Result<IndexMeta> {
        if self.done != self.spec.meta.count {
            return Err(Error::Invalid(format!(
                "index build: {} of {} rows written",
                self.done, self.spec.meta.count
            )));
        }
        let meta = self.spec.meta.clone();
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| Error::Invalid(e.to_string()))?;
        crate::util::write_atomic(&self.partial.join("index.json"), &json)?;
        fs::remove_file(self.partial.join("build.json")).map_err(io_at(&self.partial))?;
        if self.out.exists() {
            // An empty directory the user made for it (checked empty of an index above).
            fs::remove_dir(&self.out).map_err(io_at(&self.out))?;
        }
        fs::rename(&self.partial, &self.out).map_err(io_at(&self.out))?;
        Ok(meta)
    }
}

/// Rows whose offsets are complete in a partial build, and where their texts end.
fn consistent_prefix(partial: &Path, spec: &BuildSpec, offsets: &mut File) -> Result<(usize, u64)> {
    let mut raw = Vec::new();
    offsets
        .read_to_end(&mut raw)
        .map_err(io_at(&partial.join("offsets.u64")))?;
    let offs = le_u64s(&raw);
    let len = |name: &str| {
        fs::metadata(partial.join(name))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let row_bytes = (spec.meta.dim * 4) as u64;
    let mut done = offs.len().saturating_sub(1).min(spec.meta.count);
    // Offsets are written after their vectors and texts, so those should cover them; if a
    // file is shorter (a disk that reordered writes), fall back to what all three cover.
    while done > 0
        && (len("vectors.f32") < done as u64 * row_bytes || len("texts.jsonl") < offs[done])
    {
        done -= 1;
    }
    Ok((done, offs.get(done).copied().unwrap_or(0)))
}

/// An index opened for search.
pub struct VectorIndex {
    /// Its `index.json`.
    pub meta: IndexMeta,
    dir: PathBuf,
    vectors: memmap2::Mmap,
    offsets: Vec<u64>,
    texts: memmap2::Mmap,
}

impl VectorIndex {
    /// Opens `dir`, checking that every file has the size `index.json` says.
    pub fn open(dir: &Path) -> Result<Self> {
        let meta_path = dir.join("index.json");
        let bytes = fs::read(&meta_path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Invalid(format!(
                "{}: not an index (no index.json; build one with `bert4rs index build`{})",
                dir.display(),
                if PathBuf::from(format!("{}.partial", dir.display())).exists() {
                    " — a build of it stopped; run it again to resume"
                } else {
                    ""
                }
            )),
            _ => Error::io(&meta_path, e),
        })?;
        let meta: IndexMeta =
            serde_json::from_slice(&bytes).map_err(|e| Error::config(&meta_path, e.to_string()))?;
        if meta.format != FORMAT || meta.dim == 0 || meta.count == 0 {
            return Err(Error::config(
                &meta_path,
                format!(
                    "format {:?}, dim {}, count {} (this bert4rs reads {FORMAT:?} with dim and count ≥ 1)",
                    meta.format, meta.dim, meta.count
                ),
            ));
        }
        let vectors = map(&dir.join("vectors.f32"), (meta.count * meta.dim * 4) as u64)?;
        let offsets_map = map(&dir.join("offsets.u64"), (meta.count as u64 + 1) * 8)?;
        let offsets = le_u64s(&offsets_map);
        let texts_path = dir.join("texts.jsonl");
        let text_len = fs::metadata(&texts_path).map_err(io_at(&texts_path))?.len();
        if offsets.windows(2).any(|w| w[0] > w[1]) || offsets.last() != Some(&text_len) {
            return Err(Error::checkpoint(
                dir.join("offsets.u64"),
                "offsets do not match texts.jsonl (a damaged index: build it again)",
            ));
        }
        let texts = map(&texts_path, text_len)?;
        Ok(VectorIndex {
            meta,
            dir: dir.to_path_buf(),
            vectors,
            offsets,
            texts,
        })
    }

    /// All vectors, row-major `[count, dim]`.
    pub fn vectors(&self) -> &[f32] {
        // SAFETY: the map is page-aligned, its length was checked to be count·dim·4, and
        // the file holds little-endian f32 (the only byte order this builds for).
        unsafe {
            std::slice::from_raw_parts(
                self.vectors.as_ptr().cast::<f32>(),
                self.meta.count * self.meta.dim,
            )
        }
    }

    /// The `k` rows most similar to `query` (normalised here), best first.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>> {
        if query.len() != self.meta.dim {
            return Err(Error::Invalid(format!(
                "{}: a query of {} values for an index of dim {} (embed it with the index's model: {})",
                self.dir.display(),
                query.len(),
                self.meta.dim,
                self.meta.model
            )));
        }
        if k == 0 {
            return Err(Error::Invalid("top_k must be at least 1".into()));
        }
        let norm = query.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        let q: Vec<f32> = query.iter().map(|x| x / norm).collect();
        Ok(top_k(self.vectors(), &q, k))
    }

    /// Row `i`'s input as it was indexed (`{"text", "text_pair"?}`).
    pub fn input(&self, i: usize) -> Result<serde_json::Value> {
        let (a, b) = (self.offsets[i] as usize, self.offsets[i + 1] as usize);
        serde_json::from_slice(&self.texts[a..b]).map_err(|e| {
            Error::checkpoint(
                self.dir.join("texts.jsonl"),
                format!("row {i}: {e} (a damaged index)"),
            )
        })
    }
}

/// Little-endian u64s (a trailing partial value is ignored).
fn le_u64s(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            u64::from_le_bytes(b)
        })
        .collect()
}

/// Memory-maps `path`, which must be exactly `len` bytes.
fn map(path: &Path, len: u64) -> Result<memmap2::Mmap> {
    let f = File::open(path).map_err(io_at(path))?;
    let have = f.metadata().map_err(io_at(path))?.len();
    if have != len {
        return Err(Error::checkpoint(
            path,
            format!("{have} bytes where index.json implies {len} (a damaged or unfinished index: build it again)"),
        ));
    }
    // SAFETY: the index's files are written once and renamed into place; nothing this
    // process knows of modifies them while mapped.
    unsafe { memmap2::Mmap::map(&f) }.map_err(io_at(path))
}
