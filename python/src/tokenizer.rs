//! `bert4rs.Tokenizer`: a tokenizer directory called as an HF tokenizer is.

use crate::{existing_dir, py_err, texts_of};
use bert4rs::tokenize::{EncodeOptions, Padding, TextInput, Truncation};
use numpy::{PyArray1, PyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// A tokenizer directory, called as an HF tokenizer is.
#[pyclass(module = "bert4rs")]
pub(crate) struct Tokenizer {
    inner: bert4rs::Tokenizer,
}

/// One id field of an encoding.
type Field = fn(&bert4rs::tokenize::Encoding) -> &Vec<u32>;

fn padding_of(obj: &Bound<'_, PyAny>) -> PyResult<Padding> {
    if let Ok(b) = obj.extract::<bool>() {
        return Ok(if b { Padding::Longest } else { Padding::None });
    }
    match obj.extract::<String>()?.as_str() {
        "longest" => Ok(Padding::Longest),
        "max_length" => Ok(Padding::MaxLength),
        "do_not_pad" => Ok(Padding::None),
        other => Err(PyValueError::new_err(format!(
            "padding must be True, False, 'longest', 'max_length' or 'do_not_pad', got {other:?}"
        ))),
    }
}

fn truncation_of(obj: &Bound<'_, PyAny>) -> PyResult<Option<Truncation>> {
    if let Ok(b) = obj.extract::<bool>() {
        return Ok(b.then_some(Truncation::LongestFirst));
    }
    match obj.extract::<String>()?.as_str() {
        "longest_first" => Ok(Some(Truncation::LongestFirst)),
        "only_first" => Ok(Some(Truncation::OnlyFirst)),
        "only_second" => Ok(Some(Truncation::OnlySecond)),
        "do_not_truncate" => Ok(None),
        other => Err(PyValueError::new_err(format!(
            "truncation must be True, False, 'longest_first', 'only_first', 'only_second' \
             or 'do_not_truncate', got {other:?}"
        ))),
    }
}

#[pymethods]
impl Tokenizer {
    #[new]
    fn new(path: &str) -> PyResult<Self> {
        let dir = existing_dir(path)?;
        Ok(Tokenizer {
            inner: bert4rs::Tokenizer::from_dir(&dir).map_err(py_err)?,
        })
    }

    /// `{"input_ids", "token_type_ids", "attention_mask"}` as numpy int64 arrays (2-D when
    /// padded, else lists of 1-D arrays), as an HF tokenizer call with
    /// `return_tensors="np"` returns them.
    #[pyo3(signature = (text, text_pair=None, padding=None, truncation=None, max_length=None))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
        text_pair: Option<&Bound<'py, PyAny>>,
        padding: Option<&Bound<'py, PyAny>>,
        truncation: Option<&Bound<'py, PyAny>>,
        max_length: Option<usize>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (texts, single) = texts_of(text, "text")?;
        let pairs = match text_pair {
            Some(p) => {
                let (p, _) = texts_of(p, "text_pair")?;
                if p.len() != texts.len() {
                    return Err(PyValueError::new_err(format!(
                        "{} texts but {} text_pair entries",
                        texts.len(),
                        p.len()
                    )));
                }
                Some(p)
            }
            None => None,
        };
        let opts = EncodeOptions {
            max_length,
            padding: padding.map(padding_of).transpose()?.unwrap_or_default(),
            truncation: truncation.map(truncation_of).transpose()?.flatten(),
        };
        let inputs: Vec<TextInput> = match &pairs {
            Some(p) => texts
                .iter()
                .zip(p)
                .map(|(a, b)| TextInput::pair(a, b))
                .collect(),
            None => texts.iter().map(TextInput::single).collect(),
        };
        let tok = &self.inner;
        let encs = py
            .detach(|| tok.encode_batch(&inputs, &opts))
            .map_err(py_err)?;
        let out = PyDict::new(py);
        let fields: [(&str, Field); 3] = [
            ("input_ids", |e| &e.input_ids),
            ("token_type_ids", |e| &e.token_type_ids),
            ("attention_mask", |e| &e.attention_mask),
        ];
        let same_length = encs
            .windows(2)
            .all(|w| w[0].input_ids.len() == w[1].input_ids.len());
        for (name, get) in fields {
            let rows: Vec<Vec<i64>> = encs
                .iter()
                .map(|e| get(e).iter().map(|&v| v as i64).collect())
                .collect();
            let value = if single {
                PyArray1::from_vec(py, rows.into_iter().next().unwrap_or_default()).into_any()
            } else if same_length && !rows.is_empty() {
                PyArray2::from_vec2(py, &rows)
                    .map_err(|e| PyValueError::new_err(e.to_string()))?
                    .into_any()
            } else {
                let arrays: Vec<_> = rows
                    .into_iter()
                    .map(|r| PyArray1::from_vec(py, r))
                    .collect();
                PyList::new(py, arrays)?.into_any()
            };
            out.set_item(name, value)?;
        }
        Ok(out)
    }

    /// The vocabulary size (added tokens included).
    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }

    /// The text of `ids` (special tokens skipped when `skip_special_tokens`).
    #[pyo3(signature = (ids, skip_special_tokens=true))]
    fn decode(&self, ids: Vec<u32>, skip_special_tokens: bool) -> PyResult<String> {
        self.inner
            .decode_with(&ids, skip_special_tokens)
            .map_err(py_err)
    }
}
