//! The served models: what kind each directory holds (read from its `config.json`), loaded
//! once at start-up, each encoder behind its own batching queue.

use crate::queue::{Backend, BatchLimits, Queue};
use crate::Metrics;
use bert4rs::data::dataset::Example;
use bert4rs::generate::TextGenerator;
use bert4rs::kernels::CodeWidth;
use bert4rs::models::hub::WeightStorage;
use bert4rs::tokenize::Encoding;
use bert4rs::train::predict::{EntityTagger, Prediction, TextClassifier};
use bert4rs::train::token::Entity;
use bert4rs::{Error, Pooling, Result, SentenceEncoder, Tokenizer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `--model NAME=DIR` (or `DIR`, named after its last path component).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    /// Name requests use.
    pub name: String,
    /// Model directory.
    pub dir: PathBuf,
}

impl std::str::FromStr for ModelSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let (name, dir) = match s.split_once('=') {
            Some((n, d)) if !n.is_empty() && !n.contains('/') => (n.to_string(), d),
            _ => {
                let dir = Path::new(s);
                let name = dir.file_name().map(|n| n.to_string_lossy().to_string());
                let name = name.map(|n| n.trim_start_matches("asset:").to_string());
                (name.unwrap_or_else(|| "model".into()), s)
            }
        };
        if dir.is_empty() {
            return Err(Error::Invalid(format!(
                "--model {s:?}: give a directory (NAME=DIR or DIR)"
            )));
        }
        Ok(ModelSpec {
            name,
            // `asset:<name>`: a fetched asset, as every command's --model takes it.
            dir: bert4rs::assets::resolve_dir(dir)?,
        })
    }
}

/// Texts per forward pass inside a dynamic batch (the batch is sorted by length first).
const SUB_BATCH: usize = 32;

/// Sentence embeddings.
pub struct EmbedBackend {
    /// The encoder (vectors unnormalised: requests choose).
    pub encoder: SentenceEncoder,
    /// Longest input in tokens.
    pub max_input_length: usize,
    /// Vector size.
    pub dim: usize,
}

impl Backend for EmbedBackend {
    type Input = Encoding;
    type Output = Vec<f32>;
    fn run(&self, batch: &[Encoding]) -> Result<Vec<Vec<f32>>> {
        self.encoder.embed_tokenized(batch, |_| {})
    }
}

/// Sequence classification.
pub struct ClassifyBackend {
    /// The classifier.
    pub classifier: TextClassifier,
    /// Longest input in tokens (a windowed model reads longer texts whole).
    pub max_input_length: usize,
    /// Early exit (DeeBERT): each text stops at the first off-ramp below this entropy.
    pub early_exit_entropy: Option<f32>,
}

impl Backend for ClassifyBackend {
    type Input = Example;
    type Output = Prediction;
    fn run(&self, batch: &[Example]) -> Result<Vec<Prediction>> {
        let source = Path::new("<request>");
        // A windowed model re-reads each text whole; the others were checked (or cut) to
        // the position table's length, which is what the classifier truncates to here.
        let max_len = self.classifier.max_sequence_length();
        let c = &self.classifier;
        match self.early_exit_entropy {
            None => c.predict(source, batch.to_vec(), max_len, SUB_BATCH),
            Some(e) => Ok(c
                .predict_early_exit(source, batch.to_vec(), max_len, SUB_BATCH, e)?
                .0),
        }
    }
}

/// Token classification (entities).
pub struct TagBackend {
    /// The tagger.
    pub tagger: EntityTagger,
    /// Its tokenizer, when it has one (a BiLSTM over words has none).
    pub tokenizer: Option<Tokenizer>,
    /// Window length for long texts.
    pub window: usize,
}

impl Backend for TagBackend {
    type Input = String;
    type Output = Vec<Entity>;
    fn run(&self, batch: &[String]) -> Result<Vec<Vec<Entity>>> {
        self.tagger.tag_texts(batch, self.window, SUB_BATCH)
    }
}

/// What a served model does.
pub enum Kind {
    /// `/embed`, `/v1/embeddings`.
    Embedding(Queue<EmbedBackend>),
    /// `/predict`.
    Classifier(Queue<ClassifyBackend>),
    /// `/tag`.
    Tagger(Queue<TagBackend>),
    /// `/generate`, `/generate_stream` (not batched: one decode per request).
    Generator(Arc<TextGenerator>),
}

impl Kind {
    /// The kind's name in `/info` and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Embedding(_) => "embedding",
            Kind::Classifier(_) => "classifier",
            Kind::Tagger(_) => "tagger",
            Kind::Generator(_) => "generator",
        }
    }

    /// The tokenizer `/tokenize` uses.
    pub fn tokenizer(&self) -> Option<&Tokenizer> {
        match self {
            Kind::Embedding(q) => Some(&q.backend().encoder.tokenizer),
            Kind::Classifier(q) => Some(q.backend().classifier.tokenizer()),
            Kind::Tagger(q) => q.backend().tokenizer.as_ref(),
            Kind::Generator(g) => g.tokenizer().ok(),
        }
    }
}

/// One served model.
pub struct Served {
    /// Its name.
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    /// What it does.
    pub kind: Kind,
}

fn config_json(dir: &Path) -> Result<serde_json::Value> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::config(&path, format!("not valid JSON: {e}")))
}

fn has_architecture(cfg: &serde_json::Value, suffix: &str) -> bool {
    (cfg.get("architectures").and_then(|a| a.as_array())).is_some_and(|a| {
        a.iter()
            .any(|x| x.as_str().is_some_and(|s| s.ends_with(suffix)))
    })
}

/// How [`load`] prepares every model.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadOptions {
    /// Pooling of embedding models (default: their sentence-transformers config, else mean).
    pub pooling: Option<Pooling>,
    /// int8 weights (encoders: dynamically quantised, activation codes of this width).
    pub int8: Option<CodeWidth>,
    /// How classifiers and sentence encoders keep their matrices (bf16: an error for other
    /// kinds).
    pub storage: WeightStorage,
    /// Classifiers answer from the first off-ramp whose entropy is below this (an error
    /// for a classifier trained without `task.early_exit`).
    pub early_exit_entropy: Option<f32>,
}

/// Loads `spec` as the kind its `config.json` declares: a GPT-2 generates, a token model
/// tags, a `*ForSequenceClassification` classifies, any other encoder embeds, as `opts`
/// says.
pub fn load(
    spec: &ModelSpec,
    opts: LoadOptions,
    limits: BatchLimits,
    metrics: &Arc<Metrics>,
) -> Result<Served> {
    let LoadOptions {
        pooling,
        int8,
        storage,
        early_exit_entropy,
    } = opts;
    let dir = &spec.dir;
    if !dir.is_dir() {
        return Err(Error::Invalid(format!(
            "--model {}: no such directory",
            dir.display()
        )));
    }
    let cfg = config_json(dir)?;
    let m = metrics.clone();
    let plain_only = |kind: &str| match storage {
        WeightStorage::F32 => Ok(()),
        WeightStorage::Bf16 => Err(Error::config(
            dir,
            format!("--dtype bf16 serves classifiers and sentence encoders; this is a {kind}"),
        )),
    };
    let kind = if cfg.get("model_type").and_then(|t| t.as_str()) == Some("gpt2") {
        plain_only("GPT-2 model")?;
        let mut g = TextGenerator::from_dir(dir, None)?;
        if int8.is_some() {
            g.quantize_int8()?;
        }
        if !g.has_tokenizer() {
            return Err(Error::config(
                dir,
                "the server takes text prompts: this GPT-2 directory needs tokenizer files",
            ));
        }
        Kind::Generator(Arc::new(g))
    } else if bert4rs::tasks::relation::is_relation_model(dir) {
        return Err(Error::config(
            dir,
            "relation models are not served yet; use `bert4rs predict`",
        ));
    } else if bert4rs::tasks::token_classify::is_token_model(dir) {
        plain_only("token model")?;
        Kind::Tagger(Queue::start(tag_backend(dir, int8)?, limits, m, "tag"))
    } else if has_architecture(&cfg, "ForSequenceClassification") {
        let mut classifier = TextClassifier::from_dir_as(dir, storage)?;
        if let Some(width) = int8 {
            classifier.quantize_int8(width)?;
        }
        let max_input_length = match classifier.reads_long_texts() {
            true => usize::MAX,
            false => classifier.max_sequence_length(),
        };
        if early_exit_entropy.is_some() && !classifier.has_exit_ramps() {
            return Err(Error::config(
                dir,
                "--early-exit-entropy: this classifier has no off-ramps (train it with \
                 task.early_exit)",
            ));
        }
        let b = ClassifyBackend {
            classifier,
            max_input_length,
            early_exit_entropy,
        };
        Kind::Classifier(Queue::start(b, limits, m, "predict"))
    } else {
        Kind::Embedding(Queue::start(
            embed_backend(dir, pooling, (int8, storage))?,
            limits,
            m,
            "embed",
        ))
    };
    Ok(Served {
        name: spec.name.clone(),
        dir: dir.clone(),
        kind,
    })
}

fn embed_backend(
    dir: &Path,
    pooling: Option<Pooling>,
    (int8, storage): (Option<CodeWidth>, WeightStorage),
) -> Result<EmbedBackend> {
    let st = bert4rs::tasks::embed::read_st_config(dir)?;
    let pooling = pooling
        .or(st.as_ref().map(|s| s.pooling))
        .unwrap_or(Pooling::Mean);
    let mut encoder =
        SentenceEncoder::with_pooling_as(dir, pooling, &candle_core::Device::Cpu, storage)?;
    encoder.batch_size = SUB_BATCH;
    if let Some(width) = int8 {
        encoder.quantize_int8(width)?;
    }
    let capacity = encoder.model.config().max_sequence_length();
    let max_input_length = st
        .and_then(|s| s.max_seq_length)
        .map_or(capacity, |m| m.min(capacity));
    let dim = encoder.embed(&["dimension probe"])?[0].len();
    Ok(EmbedBackend {
        encoder,
        max_input_length,
        dim,
    })
}

fn tag_backend(dir: &Path, int8: Option<CodeWidth>) -> Result<TagBackend> {
    let mut tagger = EntityTagger::from_dir(dir)?;
    if let Some(width) = int8 {
        tagger.quantize_int8(width)?;
    }
    let has_tokenizer = ["tokenizer.json", "vocab.txt"]
        .iter()
        .any(|f| dir.join(f).is_file());
    let tokenizer = has_tokenizer
        .then(|| Tokenizer::from_dir(dir))
        .transpose()?;
    let window = tagger.max_sequence_length().unwrap_or(512);
    Ok(TagBackend {
        tagger,
        tokenizer,
        window,
    })
}
