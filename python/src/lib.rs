//! `import bert4rs`: the library's encoders, classifiers, generators, tokenizers and
//! training behind the interfaces Python users know (sentence-transformers' `encode`, an
//! HF tokenizer call). Every call releases the GIL while it computes; every error is a
//! Python exception (`FileNotFoundError` for missing files, `ValueError` otherwise) with
//! the library's one-line message.

use bert4rs::generate::{self, GenerationConfig, TextGenerator};
use bert4rs::tokenize::{EncodeOptions, Padding, TextInput, Truncation};
use bert4rs::train::predict::{EntityTagger, Prediction, TextClassifier};
use bert4rs::{Error, Pooling};
use numpy::{PyArray1, PyArray2};
use pyo3::exceptions::{PyFileNotFoundError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use std::path::PathBuf;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The library's error as the Python exception a user expects.
fn py_err(e: Error) -> PyErr {
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

fn existing_dir(path: &str) -> PyResult<PathBuf> {
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
fn texts_of(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<(Vec<String>, bool)> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok((vec![s.extract::<String>()?], true));
    }
    let texts: Vec<String> = obj
        .extract()
        .map_err(|_| PyValueError::new_err(format!("{what} must be a str or a list of str")))?;
    Ok((texts, false))
}

/// The one result of a call given a single string, else the list of results.
fn one_or_list<'py, T>(
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

fn threads(n: Option<usize>) -> PyResult<()> {
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

/// Sentence embeddings, as sentence-transformers' `SentenceTransformer`.
#[pyclass(module = "bert4rs")]
struct SentenceEncoder {
    dir: PathBuf,
    /// The directory's own pooling and normalisation.
    inner: bert4rs::SentenceEncoder,
    /// The last `pooling=` override's encoder.
    other: Option<bert4rs::SentenceEncoder>,
}

#[pymethods]
impl SentenceEncoder {
    #[new]
    #[pyo3(signature = (path, threads=None))]
    fn new(py: Python<'_>, path: &str, threads: Option<usize>) -> PyResult<Self> {
        self::threads(threads)?;
        let dir = existing_dir(path)?;
        let inner = py
            .detach(|| bert4rs::SentenceEncoder::from_dir(&dir))
            .map_err(py_err)?;
        Ok(SentenceEncoder {
            dir,
            inner,
            other: None,
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
                    let (dir, device) = (&self.dir, candle_core::Device::Cpu);
                    let mut other = py
                        .detach(|| bert4rs::SentenceEncoder::with_pooling(dir, kind, &device))
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

/// A fine-tuned classifier (`bert4rs train` output or an HF directory): a sequence model
/// predicts labels, a token model tags entities.
#[pyclass(module = "bert4rs")]
struct Classifier {
    inner: Classifies,
}

/// What a classifier directory holds.
enum Classifies {
    Sequences(Box<TextClassifier>),
    Tokens(Box<EntityTagger>),
}

#[pymethods]
impl Classifier {
    #[new]
    fn new(py: Python<'_>, path: &str) -> PyResult<Self> {
        let dir = existing_dir(path)?;
        let inner = py
            .detach(|| -> bert4rs::Result<Classifies> {
                match bert4rs::tasks::token_classify::is_token_model(&dir) {
                    true => Ok(Classifies::Tokens(Box::new(EntityTagger::from_dir(&dir)?))),
                    false => Ok(Classifies::Sequences(Box::new(TextClassifier::from_dir(
                        &dir,
                    )?))),
                }
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
    #[pyo3(signature = (texts, max_length=128, batch_size=64))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        max_length: usize,
        batch_size: usize,
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
        let preds = py
            .detach(|| inner.predict_texts(&texts, max_length, batch_size))
            .map_err(py_err)?;
        let dicts = preds
            .iter()
            .map(|p| prediction_dict(py, p))
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
struct Tagger {
    inner: EntityTagger,
}

#[pymethods]
impl Tagger {
    #[new]
    fn new(py: Python<'_>, path: &str) -> PyResult<Self> {
        let dir = existing_dir(path)?;
        let inner = py.detach(|| EntityTagger::from_dir(&dir)).map_err(py_err)?;
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

/// Text generation with a GPT-2 directory.
#[pyclass(module = "bert4rs")]
struct Generator {
    inner: TextGenerator,
}

#[pymethods]
impl Generator {
    #[new]
    #[pyo3(signature = (path, tokenizer=None))]
    fn new(py: Python<'_>, path: &str, tokenizer: Option<&str>) -> PyResult<Self> {
        let dir = existing_dir(path)?;
        let tok = tokenizer.map(existing_dir).transpose()?;
        let inner = py
            .detach(|| TextGenerator::from_dir(&dir, tok.as_deref()))
            .map_err(py_err)?;
        Ok(Generator { inner })
    }

    /// The generated text(s) for `prompt` (prompt included, as HF's pipeline returns it
    /// with `return_full_text=True`); `num_return_sequences > 1` gives a list.
    #[pyo3(signature = (prompt, max_new_tokens=20, num_beams=1, do_sample=false,
                        temperature=1.0, top_k=50, top_p=1.0, repetition_penalty=1.0,
                        no_repeat_ngram_size=0, num_return_sequences=1, seed=0,
                        eos_token_id=None))]
    #[allow(clippy::too_many_arguments)]
    fn generate<'py>(
        &self,
        py: Python<'py>,
        prompt: &str,
        max_new_tokens: usize,
        num_beams: usize,
        do_sample: bool,
        temperature: f32,
        top_k: usize,
        top_p: f32,
        repetition_penalty: f32,
        no_repeat_ngram_size: usize,
        num_return_sequences: usize,
        seed: u64,
        eos_token_id: Option<u32>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let cfg = GenerationConfig {
            max_new_tokens,
            num_beams,
            do_sample,
            temperature,
            top_k,
            top_p,
            repetition_penalty,
            no_repeat_ngram_size,
            num_return_sequences,
            seed,
            eos_token_id: self.inner.eos(eos_token_id),
            ..Default::default()
        };
        let g = &self.inner;
        let texts = py
            .detach(|| -> bert4rs::Result<Vec<String>> {
                cfg.validate()?;
                let ids = g.encode_prompt(prompt)?;
                let out = generate::generate(g.model(), &[ids], &cfg, &mut |_| {})?;
                out.iter()
                    .map(|o| Ok(g.decode(&o.ids)?.unwrap_or_default()))
                    .collect()
            })
            .map_err(py_err)?;
        Ok(match texts.len() {
            1 => PyString::new(py, &texts[0]).into_any(),
            _ => PyList::new(py, texts)?.into_any(),
        })
    }
}

/// A tokenizer directory, called as an HF tokenizer is.
#[pyclass(module = "bert4rs")]
struct Tokenizer {
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
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
