//! Sequence classification, multi-label classification and regression as a [`Task`]: an
//! encoder + head ([`SequenceClassifier`]) on labelled CSV / TSV / JSONL, with
//! length-bucketed batches, accuracy / P / R / F1 / confusion (or Pearson / Spearman) and
//! metrics by text length.

use super::config::EarlyExit;
use super::config::{BestMetric, RunConfig};
use super::distill::{student_init, Teacher};
use super::early_exit::{evaluate_exits, exit_step};
use super::evaluation::Evaluation;
use super::metrics;
use super::task::{Split, StepOutput, Task};
use crate::data::dataset::{self, Example};
use crate::data::labelled::{read_splits, Batch, Dataset, Problem, Targets};
use crate::error::{Error, Result};
use crate::models::hub;
use crate::nn::exit_ramps::is_ramp_param;
use crate::rng;
use crate::tasks::classify::{
    argmax, is_head_param, HeadSpec, LossConfig, RnnSpec, SequenceClassifier,
};
use crate::tokenize::Tokenizer;
use candle_core::{Device, Tensor, Var};
use std::path::Path;

/// Fine-tuning an encoder with a sequence-level head (`[task] kind = "classify"`).
pub struct SequenceTask {
    model: SequenceClassifier,
    tokenizer: Tokenizer,
    train: Dataset,
    dev: Option<Dataset>,
    test: Option<Dataset>,
    loss: LossConfig,
    model_name: String,
    device: Device,
    pad_id: u32,
    /// `task.distill_from`: the teacher's soft labels for the training set.
    teacher: Option<Teacher>,
    /// `task.early_exit`: off-ramps trained after every layer.
    early_exit: Option<EarlyExit>,
}

/// A micro-batch with, when distilling, the teacher's logits of its examples.
pub struct SequenceBatch {
    /// Inputs and gold answers.
    pub batch: Batch,
    /// `[batch, labels]` teacher logits (`task.distill_from`).
    pub teacher: Option<Tensor>,
}

impl From<Batch> for SequenceBatch {
    /// A batch without a teacher's logits.
    fn from(batch: Batch) -> Self {
        SequenceBatch {
            batch,
            teacher: None,
        }
    }
}

impl SequenceTask {
    /// Reads the run's data, loads `cfg.model` and puts a new head on it (labels from the
    /// training data or `data.labels`); dev / test labels are checked before any work.
    pub fn new(cfg: &RunConfig) -> Result<Self> {
        let device = Device::Cpu;
        let teacher_dir = (cfg.task.distill_from.as_ref())
            .map(|d| super::distill::teacher_dir(d))
            .transpose()?;
        let splits = read_splits(&cfg.data, &cfg.output_dir)?;
        let spec = head_spec(cfg, &splits.train)?;
        if spec.problem != Problem::Regression {
            for (path, ex) in splits.dev.iter().chain(splits.test.iter()) {
                dataset::check_labels(ex, &spec.labels, path)?;
            }
        }
        rng::seed_init(cfg.seed);
        let mut base = crate::assets::resolve_dir(&cfg.model)?;
        if let Some(layers) = &cfg.task.student_layers {
            base = student_init(&base, layers, &cfg.output_dir.join("student-init"))?;
        }
        let mut model = SequenceClassifier::from_dir(&base, &device, true, Some(spec))?;
        if cfg.task.early_exit.is_some() {
            model.add_exit_ramps()?;
        }
        let tokenizer = Tokenizer::from_dir(&base)?;
        let max_len = cfg
            .data
            .max_length
            .min(model.encoder().config().max_sequence_length());
        let spec = model.spec().clone();
        let labels = (spec.labels.as_slice(), spec.problem);
        if let Some(w) = &spec.windows {
            let limit = model.encoder().config().max_sequence_length();
            if w.max_length > limit {
                return Err(Error::Invalid(format!(
                    "task.windows: data.max_length {} is longer than the model's {limit} \
                     positions; a window must fit the model",
                    w.max_length
                )));
            }
        }
        let mk = |(path, ex): (std::path::PathBuf, Vec<Example>)| {
            let ds = Dataset::new(&path, ex, &tokenizer, labels, max_len)?;
            windowed(ds, &model, &tokenizer)
        };
        let teacher_data = teacher_dir.map(|d| (d, splits.train.0.clone(), splits.train.1.clone()));
        let train = mk(splits.train)?;
        let teacher = match teacher_data {
            Some((dir, path, examples)) => Some(Teacher::new(
                &dir,
                (&path, examples),
                labels,
                max_len,
                cfg.train.eval_batch_size,
                (cfg.task.distill_temperature, cfg.task.distill_alpha),
                &device,
            )?),
            None => None,
        };
        let dev = splits.dev.map(mk).transpose()?;
        let test = splits.test.map(mk).transpose()?;
        Ok(SequenceTask {
            pad_id: tokenizer.pad_id(),
            model,
            tokenizer,
            train,
            dev,
            test,
            loss: cfg.loss.clone(),
            model_name: cfg.model.clone(),
            device,
            teacher,
            early_exit: cfg.task.early_exit,
        })
    }

    /// The model being trained.
    pub fn model(&self) -> &SequenceClassifier {
        &self.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The training set.
    pub fn train_set(&self) -> &Dataset {
        &self.train
    }

    /// Id of the padding token.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    fn held_out(&self, split: Split) -> Option<&Dataset> {
        match split {
            Split::Dev => self.dev.as_ref(),
            Split::Test => self.test.as_ref(),
        }
    }
}

impl Task for SequenceTask {
    type Batch = SequenceBatch;

    fn describe(&self) -> String {
        let spec = self.model.spec();
        let n = |d: &Option<Dataset>| d.as_ref().map_or(0, Dataset::len);
        let distill = self
            .teacher
            .as_ref()
            .map_or(String::new(), |t| format!(" · {}", t.describe()));
        let distill = match self.early_exit {
            Some(mode) => format!("{distill} · early-exit ramps ({mode:?})"),
            None => distill,
        };
        format!(
            "model {}{distill} · {} · {} labels {:?} · pooling {}\ndata: {} train / {} dev / {} test examples",
            self.model_name,
            spec.problem.hf_name(),
            spec.labels.len(),
            spec.labels,
            spec.pooling,
            self.train.len(),
            n(&self.dev),
            n(&self.test),
        )
    }

    fn params(&self) -> Vec<(String, Var)> {
        let mut vars = self.model.vars();
        if self.early_exit == Some(EarlyExit::Frozen) {
            vars.retain(|(name, _)| is_ramp_param(name));
        }
        vars
    }

    fn layer_layout(&self) -> (String, usize) {
        let layers = self.model.encoder().config().num_hidden_layers;
        (self.model.encoder_prefix().to_string(), layers)
    }

    fn train_len(&self) -> usize {
        self.train.len()
    }

    /// Length-bucketed batches (similar lengths together, little padding).
    fn epoch_batches(&self, batch_size: usize, seed: u64) -> Vec<Vec<usize>> {
        dataset::bucketed_batches(&self.train.token_lengths(), batch_size, seed)
    }

    fn batch(&self, idx: &[usize]) -> Result<SequenceBatch> {
        Ok(SequenceBatch {
            batch: self.train.batch(idx, self.pad_id, &self.device)?,
            teacher: (self.teacher.as_ref())
                .map(|t| t.rows(idx, &self.device))
                .transpose()?,
        })
    }

    fn forward(&self, b: &SequenceBatch, train: bool) -> Result<StepOutput> {
        if let Some(mode) = self.early_exit {
            return exit_step(&self.model, &b.batch, mode, train, &self.loss);
        }
        let logits = self.model.forward_batch(&b.batch, train)?;
        let mut loss = self.model.loss(&logits, &b.batch.targets, &self.loss)?;
        if let (Some(t), Some(soft)) = (&self.teacher, &b.teacher) {
            loss = t.loss(&loss, &logits, soft)?;
        }
        Ok(StepOutput {
            loss,
            logits: Some(logits),
        })
    }

    fn evaluate(&self, split: Split, step: u64, batch_size: usize) -> Result<Option<Evaluation>> {
        let Some(ds) = self.held_out(split) else {
            return Ok(None);
        };
        if let Some(mode) = self.early_exit {
            let (name, pad) = (split.name(), self.pad_id);
            let ev = evaluate_exits(
                &self.model,
                ds,
                batch_size,
                pad,
                mode,
                &self.loss,
                name,
                step,
            );
            return ev.map(Some);
        }
        let logits = predict_logits(&self.model, ds, batch_size, self.pad_id, &self.device)?;
        evaluate_logits(&self.model, ds, &logits, split.name(), step, &self.loss).map(Some)
    }

    fn default_metric(&self) -> BestMetric {
        if self.early_exit == Some(EarlyExit::Frozen) {
            // The head does not change: the ramps' summed dev loss picks the best step.
            return BestMetric::Loss;
        }
        match self.model.spec().problem {
            Problem::Regression => BestMetric::Pearson,
            _ => BestMetric::Accuracy,
        }
    }

    fn word_embeddings(&self) -> Option<String> {
        let table = self.model.encoder().embeddings().word_embeddings();
        Some(table.name().to_string())
    }

    fn save_pretrained(&self, dir: &Path) -> Result<()> {
        self.model.save_pretrained(dir)?;
        self.tokenizer.save(dir)
    }

    fn load_weights(&mut self, dir: &Path) -> Result<()> {
        let family = self.model.encoder().config().model_type.base_model_prefix();
        let prefix = self.model.encoder_prefix();
        hub::load_into(dir, &self.model.vars(), |name| {
            match is_head_param(name) || !prefix.is_empty() {
                true => name.to_string(),
                false => format!("{family}.{name}"),
            }
        })
    }
}

fn head_spec(cfg: &RunConfig, train: &(std::path::PathBuf, Vec<Example>)) -> Result<HeadSpec> {
    let pooling = cfg.task.pooling.parse()?;
    let labels = match cfg.task.problem {
        Problem::Regression => vec!["score".to_string()],
        _ => dataset::label_vocab(&train.1, cfg.data.labels.as_deref(), &train.0)?,
    };
    let rnn = cfg.task.rnn.map(|mode| RnnSpec {
        mode,
        hidden_size: cfg.task.lstm_hidden,
        num_layers: cfg.task.lstm_layers,
    });
    let windows = match cfg.task.windows {
        None => None,
        Some(mut w) => {
            w.max_length = cfg.data.max_length;
            // [CLS] and [SEP] (RoBERTa: <s> and </s>) around every window.
            w.options()
                .validate(w.max_length, 2)
                .map_err(Error::Invalid)?;
            Some(w)
        }
    };
    Ok(HeadSpec {
        problem: cfg.task.problem,
        labels,
        pooling,
        rnn,
        windows,
    })
}

/// `ds` cut into windows when `model` classifies long texts (`bert4rs_windows`), as it was
/// trained; unchanged otherwise.
pub fn windowed(ds: Dataset, model: &SequenceClassifier, tok: &Tokenizer) -> Result<Dataset> {
    match &model.spec().windows {
        Some(w) => ds.with_windows(tok, w.max_length, &w.options()),
        None => Ok(ds),
    }
}

/// Logits of `ds` in input order, in length-sorted eval batches.
pub fn predict_logits(
    model: &SequenceClassifier,
    ds: &Dataset,
    batch_size: usize,
    pad_id: u32,
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    let mut out = vec![Vec::new(); ds.len()];
    for idx in crate::data::batch::length_sorted_batches(&ds.token_lengths(), batch_size) {
        let b = ds.batch(&idx, pad_id, device)?;
        let logits = model.forward_batch(&b, false)?.detach().to_vec2::<f32>()?;
        for (i, row) in idx.into_iter().zip(logits) {
            out[i] = row;
        }
    }
    Ok(out)
}

/// Loss and metrics of `logits` against the gold answers of `ds`.
pub fn evaluate_logits(
    model: &SequenceClassifier,
    ds: &Dataset,
    logits: &[Vec<f32>],
    split: &str,
    step: u64,
    loss_cfg: &LossConfig,
) -> Result<Evaluation> {
    let spec = model.spec();
    let n = logits.len();
    let width = logits.first().map_or(0, Vec::len);
    if n == 0 {
        return Err(Error::Invalid(format!(
            "{}: the {split} set is empty",
            ds.source.display()
        )));
    }
    let t = Tensor::from_vec(logits.concat(), (n, width), &Device::Cpu)?;
    let targets = ds.targets_of(&(0..n).collect::<Vec<_>>());
    let loss = model.loss(&t, &targets, loss_cfg)?.to_scalar::<f32>()? as f64;
    let mut ev = Evaluation::new(split, step, loss, n);
    match &targets {
        Targets::Classes(gold) => {
            let gold: Vec<usize> = gold.iter().map(|&g| g as usize).collect();
            let pred: Vec<usize> = logits.iter().map(|r| argmax(r)).collect();
            let chars: Vec<usize> = ds.examples.iter().map(|e| e.text.chars().count()).collect();
            ev.classification = Some(metrics::classification(&gold, &pred, &spec.labels));
            ev.by_length = metrics::by_length(&chars, &gold, &pred, &spec.labels, 50);
        }
        Targets::Multi(rows) => {
            let gold: Vec<Vec<bool>> = rows
                .iter()
                .map(|r| r.iter().map(|&v| v > 0.5).collect())
                .collect();
            let pred: Vec<Vec<bool>> = logits
                .iter()
                .map(|r| r.iter().map(|&v| v > 0.0).collect())
                .collect();
            ev.classification = Some(metrics::multilabel(&gold, &pred, &spec.labels));
        }
        Targets::Scores(gold) => {
            let gold: Vec<f64> = gold.iter().map(|&g| g as f64).collect();
            let pred: Vec<f64> = logits.iter().map(|r| r[0] as f64).collect();
            ev.regression = Some(metrics::regression(&gold, &pred));
        }
    }
    Ok(ev)
}
