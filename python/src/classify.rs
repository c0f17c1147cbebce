//! `bert4rs.Classifier` and `bert4rs.Tagger`: labels and entities of fine-tuned models.

use crate::{existing_dir, int8_width, one_or_list, py_err, texts_of, weight_storage};
use bert4rs::models::hub::WeightStorage;
use bert4rs::train::predict::{EntityTagger, Prediction, TextClassifier};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// A fine-tuned classifier (`bert4rs train` output or an HF directory): a sequence model
/// predicts labels, a token model tags entities.
#[pyclass(module = "bert4rs")]
pub(crate) struct Classifier {
    inner: Classifies,
}

/// What a classifier directory holds.
enum Classifies {
    Sequences(Box<TextClassifier>),
    Tokens(Box<EntityTagger>),
}

#[pymethods]
impl Classifier {
    /// `int8=True` runs the encoder dynamically quantised (as `bert4rs predict --int8`;
    /// `int8_activations=7` as `--int8-activations 7`); `dtype="bf16"` keeps a sequence classifier's encoder matrices as bf16 (as
    /// `--dtype bf16`).
    #[new]
    #[pyo3(signature = (path, int8=false, dtype="f32", int8_activations=None))]
    fn new(
        py: Python<'_>,
        path: &str,
        int8: bool,
        dtype: &str,
        int8_activations: Option<u32>,
    ) -> PyResult<Self> {
        let storage = weight_storage(dtype, int8)?;
        let int8 = int8_width(int8, int8_activations)?;
        let dir = existing_dir(path)?;
        let tokens = bert4rs::tasks::token_classify::is_token_model(&dir);
        if tokens && storage != WeightStorage::F32 {
            return Err(PyValueError::new_err(format!(
                "dtype=\"bf16\": for sequence classifiers; {} is a token model",
                dir.display()
            )));
        }
        let inner = py
            .detach(|| -> bert4rs::Result<Classifies> {
                Ok(match tokens {
                    true => {
                        let mut t = EntityTagger::from_dir(&dir)?;
                        if let Some(width) = int8 {
                            t.quantize_int8(width)?;
                        }
                        Classifies::Tokens(Box::new(t))
                    }
                    false => {
                        let mut c = TextClassifier::from_dir_as(&dir, storage)?;
                        if let Some(width) = int8 {
                            c.quantize_int8(width)?;
                        }
                        Classifies::Sequences(Box::new(c))
                    }
                })
            })
            .map_err(py_err)?;
        Ok(Classifier { inner })
    }

    /// The labels, in `id2label` order (a token model: its entity types).
    #[getter]
    fn labels(&self) -> Vec<String> {
        match &self.inner {
            Classifies::Sequences(c) => c.labels().to_vec(),
            Classifies::Tokens(t) => t.labels(),
        }
    }

    /// A token model's entities, as `Tagger.tag`.
    #[pyo3(signature = (texts, max_length=128, batch_size=32))]
    fn tag<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        max_length: usize,
        batch_size: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        match &self.inner {
            Classifies::Tokens(t) => tag_entities(py, t, texts, max_length, batch_size),
            Classifies::Sequences(_) => Err(PyValueError::new_err(
                "this is a sequence classifier: use .predict(texts); .tag needs a token model",
            )),
        }
    }

    /// One dict per text: `{"label", "probabilities"}` (multi-label: `{"labels",
    /// "probabilities"}`; regression: `{"score"}`), as `bert4rs predict` writes them.
    #[pyo3(signature = (texts, max_length=128, batch_size=64, early_exit_entropy=None))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        max_length: usize,
        batch_size: usize,
        early_exit_entropy: Option<f32>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if batch_size == 0 || max_length < 2 {
            return Err(PyValueError::new_err(
                "batch_size must be ≥ 1 and max_length ≥ 2",
            ));
        }
        let Classifies::Sequences(inner) = &self.inner else {
            return Err(PyValueError::new_err(
                "this is a token-classification model: use .tag(texts)",
            ));
        };
        let (texts, single) = texts_of(texts, "texts")?;
        let (preds, layers) = match early_exit_entropy {
            None => (
                py.detach(|| inner.predict_texts(&texts, max_length, batch_size))
                    .map_err(py_err)?,
                None,
            ),
            Some(e) => {
                let (p, l) = py
                    .detach(|| inner.predict_texts_early_exit(&texts, max_length, batch_size, e))
                    .map_err(py_err)?;
                (p, Some(l))
            }
        };
        let dicts = (preds.iter().enumerate())
            .map(|(i, p)| {
                let d = prediction_dict(py, p)?;
                if let Some(l) = &layers {
                    d.set_item("exit_layer", l[i])?;
                }
                Ok(d)
            })
            .collect::<PyResult<Vec<_>>>()?;
        one_or_list(py, dicts, single)
    }
}

fn prediction_dict<'py>(py: Python<'py>, p: &Prediction) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let probs = |probabilities: &[(String, f32)]| -> PyResult<Bound<'py, PyDict>> {
        let m = PyDict::new(py);
        for (l, v) in probabilities {
            m.set_item(l, v)?;
        }
        Ok(m)
    };
    match p {
        Prediction::Label {
            label,
            probabilities,
        } => {
            d.set_item("label", label)?;
            d.set_item("probabilities", probs(probabilities)?)?;
        }
        Prediction::Labels {
            labels,
            probabilities,
        } => {
            d.set_item("labels", labels)?;
            d.set_item("probabilities", probs(probabilities)?)?;
        }
        Prediction::Score(s) => d.set_item("score", s)?,
    }
    Ok(d)
}

/// A fine-tuned token-classification (NER) directory.
#[pyclass(module = "bert4rs")]
pub(crate) struct Tagger {
    inner: EntityTagger,
}

#[pymethods]
impl Tagger {
    /// `int8=True` runs the encoder dynamically quantised (an error for an encoder-free
    /// tagger; `int8_activations=7`: 7-bit activation codes).
    #[new]
    #[pyo3(signature = (path, int8=false, int8_activations=None))]
    fn new(
        py: Python<'_>,
        path: &str,
        int8: bool,
        int8_activations: Option<u32>,
    ) -> PyResult<Self> {
        let int8 = int8_width(int8, int8_activations)?;
        let dir = existing_dir(path)?;
        let inner = py
            .detach(|| -> bert4rs::Result<EntityTagger> {
                let mut t = EntityTagger::from_dir(&dir)?;
                if let Some(width) = int8 {
                    t.quantize_int8(width)?;
                }
                Ok(t)
            })
            .map_err(py_err)?;
        Ok(Tagger { inner })
    }

    /// The entities of each text: `[{"start", "end", "label", "text", "score"}]` in
    /// character offsets (a single string gives one list), as `bert4rs predict` writes them.
    #[pyo3(signature = (texts, max_length=128, batch_size=32))]
    fn tag<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        max_length: usize,
        batch_size: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        tag_entities(py, &self.inner, texts, max_length, batch_size)
    }
}

fn tag_entities<'py>(
    py: Python<'py>,
    tagger: &EntityTagger,
    texts: &Bound<'py, PyAny>,
    max_length: usize,
    batch_size: usize,
) -> PyResult<Bound<'py, PyAny>> {
    if batch_size == 0 || max_length < 3 {
        return Err(PyValueError::new_err(
            "batch_size must be ≥ 1 and max_length ≥ 3",
        ));
    }
    let (texts, single) = texts_of(texts, "texts")?;
    let all = py
        .detach(|| tagger.tag_texts(&texts, max_length, batch_size))
        .map_err(py_err)?;
    let lists = all
        .iter()
        .map(|entities| {
            let dicts = entities
                .iter()
                .map(|e| {
                    let d = PyDict::new(py);
                    d.set_item("start", e.start)?;
                    d.set_item("end", e.end)?;
                    d.set_item("label", &e.label)?;
                    d.set_item("text", &e.text)?;
                    d.set_item("score", e.score)?;
                    Ok(d)
                })
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, dicts)
        })
        .collect::<PyResult<Vec<_>>>()?;
    one_or_list(py, lists, single)
}
