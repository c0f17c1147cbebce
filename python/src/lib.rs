//! `import bert4rs`: the library's encoders, classifiers, generators, tokenizers and
//! training behind the interfaces Python users know (sentence-transformers' `encode`, an
//! HF tokenizer call). Every call releases the GIL while it computes; every error is a
//! Python exception (`FileNotFoundError` for missing files, `ValueError` otherwise) with
//! the library's one-line message.

use bert4rs::models::hub::WeightStorage;
use bert4rs::Error;
use pyo3::exceptions::{PyFileNotFoundError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use std::path::PathBuf;

mod classify;
mod encoder;
mod generator;
mod tokenizer;

use classify::{Classifier, Tagger};
use encoder::SentenceEncoder;
use generator::Generator;
use tokenizer::Tokenizer;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The library's error as the Python exception a user expects.
pub(crate) fn py_err(e: Error) -> PyErr {
    let msg = e.to_string();
    let missing = match &e {
        Error::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
        Error::Config { msg, .. } => msg.contains("not found"),
        _ => false,
    };
    match missing {
        true => PyFileNotFoundError::new_err(msg),
        false => PyValueError::new_err(msg),
    }
}

/// The weight storage a `dtype=` argument names ("f32" / "float32", "bf16" / "bfloat16");
/// a `ValueError` naming the argument for anything else, or for bf16 with `int8=True`.
/// `int8=` and `int8_activations=` (7, 8 or 12 bits, default 12) → the encoder's int8 setting:
/// `None` for f32; a ValueError naming the parameter otherwise.
pub(crate) fn int8_width(
    int8: bool,
    bits: Option<u32>,
) -> PyResult<Option<bert4rs::kernels::CodeWidth>> {
    match (int8, bits) {
        (false, None) => Ok(None),
        (false, Some(_)) => Err(PyValueError::new_err(
            "int8_activations= applies to int8=True: pass int8=True too",
        )),
        (true, bits) => bert4rs::kernels::CodeWidth::from_bits(bits.unwrap_or(12))
            .map(Some)
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "int8_activations={}: expected 7, 8 or 12 (bits per activation code)",
                    bits.unwrap_or(12)
                ))
            }),
    }
}

pub(crate) fn weight_storage(dtype: &str, int8: bool) -> PyResult<WeightStorage> {
    let storage = match dtype {
        "f32" | "float32" => WeightStorage::F32,
        "bf16" | "bfloat16" => WeightStorage::Bf16,
        other => {
            return Err(PyValueError::new_err(format!(
                "dtype={other:?}: expected \"f32\" or \"bf16\""
            )))
        }
    };
    if int8 && storage != WeightStorage::F32 {
        return Err(PyValueError::new_err(
            "int8=True and dtype=\"bf16\" exclude each other: pick one",
        ));
    }
    Ok(storage)
}

pub(crate) fn existing_dir(path: &str) -> PyResult<PathBuf> {
    let dir = bert4rs::assets::resolve_dir(path).map_err(py_err)?;
    if !dir.is_dir() {
        return Err(PyFileNotFoundError::new_err(format!(
            "{}: model directory not found",
            dir.display()
        )));
    }
    Ok(dir)
}

/// One string or a list of strings: the texts, and whether a single one was given.
pub(crate) fn texts_of(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<(Vec<String>, bool)> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok((vec![s.extract::<String>()?], true));
    }
    let texts: Vec<String> = obj
        .extract()
        .map_err(|_| PyValueError::new_err(format!("{what} must be a str or a list of str")))?;
    Ok((texts, false))
}

/// The one result of a call given a single string, else the list of results.
pub(crate) fn one_or_list<'py, T>(
    py: Python<'py>,
    items: Vec<Bound<'py, T>>,
    single: bool,
) -> PyResult<Bound<'py, PyAny>> {
    match <[Bound<'py, T>; 1]>::try_from(items) {
        Ok([one]) if single => Ok(one.into_any()),
        Ok(one) => Ok(PyList::new(py, one)?.into_any()),
        Err(items) => Ok(PyList::new(py, items)?.into_any()),
    }
}

pub(crate) fn threads(n: Option<usize>) -> PyResult<()> {
    match n {
        Some(0) => Err(PyValueError::new_err("threads must be ≥ 1")),
        Some(n) => {
            // Only the first call sets the global pool; later ones keep it.
            bert4rs::util::init_threads(n);
            Ok(())
        }
        None => Ok(()),
    }
}

/// Runs a training job from a TOML run config (`overrides`: `{"optimizer.lr": 3e-5}`, as
/// `--set` takes them) and returns its summary (the JSON `bert4rs train` prints, as a dict).
#[pyfunction]
#[pyo3(signature = (config_path=None, overrides=None, resume=false))]
fn train<'py>(
    py: Python<'py>,
    config_path: Option<&str>,
    overrides: Option<&Bound<'py, PyDict>>,
    resume: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let mut sets = Vec::new();
    if let Some(o) = overrides {
        let json = py.import("json")?;
        for (k, v) in o.iter() {
            let key: String = k.extract()?;
            // A TOML value from the Python one: strings quoted, numbers and bools as is,
            // lists as TOML arrays (JSON's spelling is TOML's for these).
            let value: String = json.call_method1("dumps", (v,))?.extract()?;
            sets.push(format!("{key}={value}"));
        }
    }
    let path = config_path.map(PathBuf::from);
    if let Some(p) = &path {
        if !p.is_file() {
            return Err(PyFileNotFoundError::new_err(format!(
                "{}: run config not found",
                p.display()
            )));
        }
    }
    let summary = py
        .detach(|| -> bert4rs::Result<String> {
            let cfg = bert4rs::train::RunConfig::load(path.as_deref(), &sets)?;
            let s = bert4rs::train::run(cfg, resume)?;
            serde_json::to_string(&s).map_err(|e| Error::Invalid(e.to_string()))
        })
        .map_err(py_err)?;
    py.import("json")?.call_method1("loads", (summary,))
}

/// Writes an int8 copy of a BERT-family model directory (`bert4rs quantize`) that
/// `SentenceEncoder`, `Classifier`, `Tagger` and every command load as they load the f32
/// one; returns its summary as a dict.
#[pyfunction]
#[pyo3(signature = (model, output, int8_activations=12))]
fn quantize<'py>(
    py: Python<'py>,
    model: &str,
    output: &str,
    int8_activations: u32,
) -> PyResult<Bound<'py, PyAny>> {
    let Some(width) = int8_width(true, Some(int8_activations))? else {
        return Err(PyValueError::new_err(
            "int8_activations: expected 7, 8 or 12",
        ));
    };
    let src = existing_dir(model)?;
    let out = PathBuf::from(output);
    let summary = py
        .detach(|| -> bert4rs::Result<String> {
            let s = bert4rs::models::quantize::quantize_dir(&src, &out, width)?;
            serde_json::to_string(&s).map_err(|e| Error::Invalid(e.to_string()))
        })
        .map_err(py_err)?;
    py.import("json")?.call_method1("loads", (summary,))
}

#[pymodule]
#[pyo3(name = "bert4rs")]
fn bert4rs_py(m: &Bound<'_, PyModule>) -> PyResult<()> {
    bert4rs::util::init_process();
    m.add_class::<SentenceEncoder>()?;
    m.add_class::<Classifier>()?;
    m.add_class::<Tagger>()?;
    m.add_class::<Generator>()?;
    m.add_class::<Tokenizer>()?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(quantize, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
