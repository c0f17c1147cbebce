//! Prompt-based classification (`[task] kind = "prompt"`, PET) as a [`Task`]: a masked LM
//! read through `[task.prompt]`'s template and verbalizer ([`PromptClassifier`]),
//! fine-tuned with cross-entropy over the label words' logits on labelled data (usually a
//! few shots: `data.shots`), with the classifier's accuracy / P / R / F1 on dev and test.
//! Saved as an HF `BertForMaskedLM` whose `config.json` keeps the template and verbalizer.

use super::config::{BestMetric, RunConfig};
use super::evaluation::Evaluation;
use super::metrics;
use super::task::{Split, StepOutput, Task};
use crate::data::dataset::{self, Example};
use crate::data::labelled::read_splits;
use crate::error::{Error, Result};
use crate::models::hub;
use crate::nn::losses::{cross_entropy, CrossEntropy};
use crate::tasks::prompt::{PromptClassifier, PromptSpec};
use crate::tokenize::Encoding;
use candle_core::Var;
use std::path::Path;

/// Encoded examples of one split and their label ids.
pub struct PromptData {
    /// Where they came from (error messages, reports).
    pub name: String,
    /// `[CLS] template-with-text [SEP]`, unpadded.
    pub encodings: Vec<Encoding>,
    /// Gold label ids (columns of the label logits).
    pub labels: Vec<u32>,
}

impl PromptData {
    /// Encodes `examples` of `path` through `model`'s template; a label the verbalizer does
    /// not have is an error naming the file and line.
    pub fn new(model: &PromptClassifier, path: &Path, examples: &[Example]) -> Result<Self> {
        dataset::check_labels(examples, model.labels(), path)?;
        let mut encodings = Vec::with_capacity(examples.len());
        let mut labels = Vec::with_capacity(examples.len());
        for e in examples {
            encodings.push(model.encode(&e.text)?);
            let name = e.label.as_ref().map(|l| l.names().join("|"));
            let id = model.labels().iter().position(|l| Some(l) == name.as_ref());
            let id = id.ok_or_else(|| Error::Input {
                path: path.into(),
                line: e.line,
                msg: "no label".into(),
            })?;
            labels.push(id as u32);
        }
        Ok(PromptData {
            name: path.display().to_string(),
            encodings,
            labels,
        })
    }
}

/// Few-shot (or full) fine-tuning of a masked LM through a prompt.
pub struct PromptTask {
    model: PromptClassifier,
    spec: PromptSpec,
    train: PromptData,
    dev: Option<PromptData>,
    test: Option<PromptData>,
    model_name: String,
}

/// A micro-batch: encodings (padded when run) and gold label ids.
pub struct PromptBatch {
    encodings: Vec<Encoding>,
    labels: Vec<u32>,
}

impl PromptTask {
    /// Loads `cfg.model` (a masked LM) with `task.prompt` and reads the data; labels outside
    /// the verbalizer fail before training.
    pub fn new(cfg: &RunConfig) -> Result<Self> {
        let spec = cfg.task.prompt.clone();
        let dir = crate::assets::resolve_dir(&cfg.model)?;
        // Learned prompt rows are drawn new: from the run's seed, as every task's new weights.
        crate::rng::seed_init(cfg.seed);
        let model =
            PromptClassifier::from_dir(&dir, Some(spec.clone()), true, cfg.data.max_length)?;
        let splits = read_splits(&cfg.data, &cfg.output_dir)?;
        let data = |(p, ex): &(std::path::PathBuf, Vec<Example>)| PromptData::new(&model, p, ex);
        let train = data(&splits.train)?;
        let dev = splits.dev.as_ref().map(data).transpose()?;
        let test = splits.test.as_ref().map(data).transpose()?;
        Ok(PromptTask {
            model,
            spec,
            train,
            dev,
            test,
            model_name: cfg.model.clone(),
        })
    }

    /// The prompt classifier being trained.
    pub fn model(&self) -> &PromptClassifier {
        &self.model
    }
}

/// Accuracy / P / R / F1 of `model` on `data` (eval mode, batches of `batch_size`).
pub fn evaluate_prompt(
    model: &PromptClassifier,
    data: &PromptData,
    split: &str,
    step: u64,
    batch_size: usize,
) -> Result<Evaluation> {
    let (mut pred, mut loss_sum) = (Vec::new(), 0.0);
    for (encs, gold) in data
        .encodings
        .chunks(batch_size.max(1))
        .zip(data.labels.chunks(batch_size.max(1)))
    {
        let logits = model.label_logits(encs, false)?;
        let loss = cross_entropy(&logits, gold, &CrossEntropy::default())?;
        loss_sum += loss.to_scalar::<f32>()? as f64 * gold.len() as f64;
        pred.extend(
            logits
                .argmax(1)?
                .to_vec1::<u32>()?
                .into_iter()
                .map(|p| p as usize),
        );
    }
    let n = data.labels.len();
    let gold: Vec<usize> = data.labels.iter().map(|&g| g as usize).collect();
    let mut ev = Evaluation::new(split, step, loss_sum / n.max(1) as f64, n);
    ev.classification = Some(metrics::classification(&gold, &pred, model.labels()));
    Ok(ev)
}

impl Task for PromptTask {
    type Batch = PromptBatch;

    fn describe(&self) -> String {
        let mc = self.model.mlm().encoder().config();
        let words: Vec<String> = (self.spec.verbalizer.iter())
            .map(|(l, w)| format!("{l} → {w}"))
            .collect();
        let len = |d: &Option<PromptData>| d.as_ref().map_or(0, |d| d.labels.len());
        format!(
            "prompt-based classification (PET): {} ({} layers × {}) masked LM\n\
             template {:?}, verbalizer {}\n\
             data: {} train / {} dev / {} test",
            self.model_name,
            mc.num_hidden_layers,
            mc.hidden_size,
            self.spec.template,
            words.join(", "),
            self.train.labels.len(),
            len(&self.dev),
            len(&self.test),
        )
    }

    fn params(&self) -> Vec<(String, Var)> {
        self.model.vars()
    }

    fn layer_layout(&self) -> (String, usize) {
        let layers = self.model.mlm().encoder().config().num_hidden_layers;
        (self.model.mlm().encoder_prefix().to_string(), layers)
    }

    fn train_len(&self) -> usize {
        self.train.labels.len()
    }

    fn batch(&self, idx: &[usize]) -> Result<PromptBatch> {
        Ok(PromptBatch {
            encodings: idx
                .iter()
                .map(|&i| self.train.encodings[i].clone())
                .collect(),
            labels: idx.iter().map(|&i| self.train.labels[i]).collect(),
        })
    }

    fn forward(&self, batch: &PromptBatch, train: bool) -> Result<StepOutput> {
        let logits = self.model.label_logits(&batch.encodings, train)?;
        let loss = cross_entropy(&logits, &batch.labels, &CrossEntropy::default())?;
        Ok(StepOutput {
            loss,
            logits: Some(logits),
        })
    }

    fn evaluate(&self, split: Split, step: u64, batch_size: usize) -> Result<Option<Evaluation>> {
        let data = match split {
            Split::Dev => self.dev.as_ref(),
            Split::Test => self.test.as_ref(),
        };
        data.map(|d| evaluate_prompt(&self.model, d, split.name(), step, batch_size))
            .transpose()
    }

    fn default_metric(&self) -> BestMetric {
        BestMetric::Accuracy
    }

    fn word_embeddings(&self) -> Option<String> {
        let table = self.model.mlm().encoder().embeddings().word_embeddings();
        Some(table.name().to_string())
    }

    fn save_pretrained(&self, dir: &Path) -> Result<()> {
        self.model.save_pretrained(dir)
    }

    fn load_weights(&mut self, dir: &Path) -> Result<()> {
        let mlm = self.model.mlm();
        hub::load_into(dir, &self.model.vars(), |name| mlm.saved_name(name))
    }
}
