//! `bert4rs.SentenceEncoder`: sentence-transformers' `encode`.

use crate::{existing_dir, int8_width, py_err, texts_of, threads, weight_storage};
use bert4rs::models::hub::WeightStorage;
use bert4rs::Pooling;
use numpy::{PyArray1, PyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;
use std::path::PathBuf;

/// Sentence embeddings, as sentence-transformers' `SentenceTransformer`.
#[pyclass(module = "bert4rs")]
pub(crate) struct SentenceEncoder {
    dir: PathBuf,
    /// The directory's own pooling and normalisation.
    inner: bert4rs::SentenceEncoder,
    /// The last `pooling=` override's encoder.
    other: Option<bert4rs::SentenceEncoder>,
    /// Encoders run on dynamically quantised int8, activation codes of this width.
    int8: Option<bert4rs::kernels::CodeWidth>,
    /// How the encoders keep their matrices.
    storage: WeightStorage,
}

#[pymethods]
impl SentenceEncoder {
    /// `int8=True` runs the encoder on dynamically quantised int8 (int8 weights per output
    /// channel, each token's activations quantised at run time): faster, embeddings within
    /// cosine 0.999 of f32 (`int8_activations=8`: 8-bit codes, 0.997, 1.5–2× faster on
    /// CPUs with VNNI (AVX-512 VNNI or AVX-VNNI); `int8_activations=7`: 7-bit codes, the
    /// fastest on plain AVX2, 0.99).
    /// `dtype="bf16"` keeps the encoder's matrices as bf16: half the
    /// weight memory, f32 arithmetic, embeddings within cosine 0.999 of f32.
    #[new]
    #[pyo3(signature = (path, threads=None, int8=false, dtype="f32", int8_activations=None))]
    fn new(
        py: Python<'_>,
        path: &str,
        threads: Option<usize>,
        int8: bool,
        dtype: &str,
        int8_activations: Option<u32>,
    ) -> PyResult<Self> {
        let storage = weight_storage(dtype, int8)?;
        let int8 = int8_width(int8, int8_activations)?;
        self::threads(threads)?;
        let dir = existing_dir(path)?;
        let inner = py
            .detach(|| -> bert4rs::Result<_> {
                let mut enc = bert4rs::SentenceEncoder::from_dir_as(&dir, storage)?;
                if let Some(width) = int8 {
                    enc.quantize_int8(width)?;
                }
                Ok(enc)
            })
            .map_err(py_err)?;
        Ok(SentenceEncoder {
            dir,
            inner,
            other: None,
            int8,
            storage,
        })
    }

    /// Embeddings of `sentences` (float32, rows in input order; a single string gives a
    /// 1-D array), as `SentenceTransformer.encode`.
    #[pyo3(signature = (sentences, batch_size=32, normalize_embeddings=None, pooling=None,
                        show_progress_bar=None, convert_to_numpy=true))]
    #[allow(clippy::too_many_arguments)] // sentence-transformers' keyword arguments
    fn encode<'py>(
        &mut self,
        py: Python<'py>,
        sentences: &Bound<'py, PyAny>,
        batch_size: usize,
        normalize_embeddings: Option<bool>,
        pooling: Option<&str>,
        show_progress_bar: Option<bool>,
        convert_to_numpy: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _ = show_progress_bar; // no bar: the call returns in input order when done
        if batch_size == 0 {
            return Err(PyValueError::new_err("batch_size must be ≥ 1"));
        }
        let (texts, single) = texts_of(sentences, "sentences")?;
        let kind = match pooling {
            Some(p) => p
                .parse::<Pooling>()
                .map_err(|e| PyValueError::new_err(format!("pooling: {e}")))?,
            None => self.inner.pooling(),
        };
        let enc = if kind == self.inner.pooling() {
            &mut self.inner
        } else {
            match &mut self.other {
                Some(other) if other.pooling() == kind => other,
                slot => {
                    // Another pooling than the model's own: a second encoder, kept for
                    // later calls; the default stays the directory's.
                    let (dir, device, int8) = (&self.dir, candle_core::Device::Cpu, self.int8);
                    let storage = self.storage;
                    let mut other = py
                        .detach(|| -> bert4rs::Result<_> {
                            let mut enc = bert4rs::SentenceEncoder::with_pooling_as(
                                dir, kind, &device, storage,
                            )?;
                            if let Some(width) = int8 {
                                enc.quantize_int8(width)?;
                            }
                            Ok(enc)
                        })
                        .map_err(py_err)?;
                    other.normalize = self.inner.normalize;
                    other.max_length = self.inner.max_length;
                    slot.insert(other)
                }
            }
        };
        let default_normalize = enc.normalize;
        enc.normalize = normalize_embeddings.unwrap_or(default_normalize);
        enc.batch_size = batch_size;
        let vecs = py.detach(|| enc.embed(&texts));
        enc.normalize = default_normalize;
        let vecs = vecs.map_err(py_err)?;
        if !convert_to_numpy {
            return Ok(match single {
                true => PyList::new(py, &vecs[0])?.into_any(),
                false => PyList::new(py, &vecs)?.into_any(),
            });
        }
        if single {
            return Ok(
                PyArray1::from_vec(py, vecs.into_iter().next().unwrap_or_default()).into_any(),
            );
        }
        if vecs.is_empty() {
            let dim = enc_dim(&self.inner);
            return Ok(PyArray2::<f32>::zeros(py, [0, dim], false).into_any());
        }
        Ok(PyArray2::from_vec2(py, &vecs)
            .map_err(|e| PyValueError::new_err(e.to_string()))?
            .into_any())
    }

    /// The embedding size.
    fn get_sentence_embedding_dimension(&self) -> usize {
        enc_dim(&self.inner)
    }
}

fn enc_dim(e: &bert4rs::SentenceEncoder) -> usize {
    e.model.config().hidden_size
}
