//! The run configuration of `bert4rs train` (a TOML file + `--set key=value` overrides).
//!
//! It lives here rather than in `crate::config` because it composes the settings of every
//! layer below the trainer (data, task, optimiser, schedule); `crate::config` holds the HF
//! model configs that the lower layers themselves read.

use super::optim::OptimizerConfig;
use super::schedule::ScheduleConfig;
use crate::data::dataset::DataConfig;
use crate::data::labelled::Problem;
use crate::data::sentence_pairs::PairObjective;
use crate::data::tags::Scheme;
use crate::error::{Error, Result};
use crate::generate::seq2seq::Seq2SeqSpec;
use crate::nn::RnnMode;
use crate::tasks::classify::{LossConfig, WindowSpec};
use crate::tasks::embed::SimcseSpec;
use crate::tasks::prompt::PromptSpec;
use crate::tasks::relation::RelationPooling;
use crate::tasks::token_classify::TokenHead;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Everything a training run needs. Every field has a default; see `configs/` for
/// documented examples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// HF model directory, or `asset:<name>` for a fetched asset (e.g. `asset:minilm`).
    /// For `causal_lm`, a directory with only `config.json` starts a new model.
    pub model: String,
    /// Tokenizer directory or `asset:<name>` when the model directory has none (a new
    /// model); `None` = the model directory.
    pub tokenizer: Option<String>,
    /// Where checkpoints, logs and the report go.
    pub output_dir: PathBuf,
    /// Seed of shuffling, dropout and new head weights.
    pub seed: u64,
    /// Input data.
    pub data: DataConfig,
    /// Head.
    pub task: TaskConfig,
    /// Loss.
    pub loss: LossConfig,
    /// Optimiser and parameter groups.
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule.
    pub schedule: ScheduleConfig,
    /// Loop settings.
    pub train: LoopConfig,
    /// Training tricks.
    pub tricks: TricksConfig,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            model: "asset:minilm".into(),
            tokenizer: None,
            output_dir: PathBuf::from("runs/default"),
            seed: 42,
            data: DataConfig::default(),
            task: TaskConfig::default(),
            loss: LossConfig::default(),
            optimizer: OptimizerConfig::default(),
            schedule: ScheduleConfig::default(),
            train: LoopConfig::default(),
            tricks: TricksConfig::default(),
        }
    }
}

/// The head (section `[task]`); the loss is section `[loss]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaskConfig {
    /// `classify` (a head on an encoder), `causal_lm` (GPT-2 language modelling on plain
    /// text packed into blocks of `data.max_length` tokens), `token_classification`,
    /// `relation` or `mlm` (masked-LM pre-training of a BERT).
    pub kind: TaskKind,
    /// single_label, multi_label or regression.
    pub problem: Problem,
    /// Pooling (`pooler` = HF's own head: BERT's pooler output, RoBERTa's `<s>` state, which
    /// is `cls`; or `cls`, `mean`, ...).
    pub pooling: String,
    /// Classification: `lstm` or `gru` puts a bidirectional RNN (`lstm_hidden` per
    /// direction, `lstm_layers` deep) over the encoder, and `pooling` reads its outputs
    /// (`attention` is the notes' attention over RNN outputs). Unset: no RNN.
    pub rnn: Option<RnnMode>,
    /// L1 penalty on the decayed weights (added to the loss).
    pub l1: f64,
    /// L2 penalty on the decayed weights (added to the loss; unlike weight decay it goes
    /// through the gradient).
    pub l2: f64,
    /// Token classification: `linear`, `crf` or `lstm_crf`.
    pub head: TokenHead,
    /// Token classification: the tag scheme, `bio` or `bioes` (data in the other scheme is
    /// converted).
    pub scheme: Scheme,
    /// Token classification: a BiLSTM-CRF from scratch instead of an encoder (`model` is
    /// then unused; the vocabulary is the training data's words or characters).
    pub from_scratch: bool,
    /// BiLSTM state size per direction (`lstm_crf`, `from_scratch`, `rnn`).
    pub lstm_hidden: usize,
    /// BiLSTM layers.
    pub lstm_layers: usize,
    /// `from_scratch`: embedding size.
    pub embedding_dim: usize,
    /// `from_scratch`: words seen fewer times are unknown.
    pub min_count: usize,
    /// `from_scratch`: dropout on the embeddings and the LSTM outputs.
    pub dropout: f64,
    /// Relations: subject start / end, object start / end markers (added as special tokens).
    pub markers: [String; 4],
    /// Relations: `entity_start` (the two start markers' states, concatenated) or `cls`.
    pub relation_pooling: RelationPooling,
    /// Masked LM: fraction of tokens predicted (chosen anew for every pass).
    pub mlm_probability: f64,
    /// Masked LM: chosen tokens replaced by `[MASK]` (the rest: `random_replace` random,
    /// others kept).
    pub mask_replace: f64,
    /// Masked LM: chosen tokens replaced by a random ordinary token.
    pub random_replace: f64,
    /// Masked LM: mask whole words (WordPiece `##` pieces together; Chinese words by jieba).
    pub whole_word_mask: bool,
    /// Masked LM: threads producing masked batches ahead of the trainer (0: masks are made
    /// in the training loop).
    pub mask_workers: usize,
    /// Masked LM: how many micro-batches the producers may run ahead (the queue bound).
    pub mask_queue: usize,
    /// Masked LM: a sentence-pair objective trained with it, `none` (default), `nsp`
    /// (BERT's next-sentence prediction) or `sop` (ALBERT's sentence order); the model is
    /// then HF's `BertForPreTraining`.
    pub next_sentence: PairObjective,
    /// Masked LM with `next_sentence`: chance that a pair aims at a random shorter length.
    pub short_seq_probability: f64,
    /// Classification of long texts by sliding windows (`[task.windows]`: `stride`,
    /// `max_windows`, `pool` = mean | max | attention); windows are `data.max_length` long.
    pub windows: Option<WindowSpec>,
    /// Classification: distil from this fine-tuned classifier directory (the teacher, with
    /// the same labels). The loss becomes `(1 − α)·hard + α·T²·KL(teacher ‖ student)` on
    /// softmaxes at temperature T; the teacher's logits are computed once, before training.
    pub distill_from: Option<String>,
    /// Distillation temperature T.
    pub distill_temperature: f64,
    /// Weight α of the teacher's soft labels (1 − α goes to the gold labels).
    pub distill_alpha: f64,
    /// Classification: the student keeps only these encoder layers of `model`, in this
    /// order (`[1, 3, 5]`: a 3-layer student of a 6-layer model, initialised from every
    /// other layer, as DistilBERT).
    pub student_layers: Option<Vec<usize>>,
    /// Classification: off-ramp classifiers after every layer but the last, for early exit
    /// at inference (DeeBERT; `predict --early-exit-entropy`). `frozen`: only the ramps train,
    /// the encoder and head stay as they are (DeeBERT's second stage, on a fine-tuned
    /// model); `joint`: everything trains on the sum of every exit's loss.
    pub early_exit: Option<EarlyExit>,
    /// `kind = "simcse"`: contrastive sentence-embedding settings (`[task.simcse]`).
    pub simcse: SimcseSpec,
    /// `kind = "prompt"`: the template and verbalizer (`[task.prompt]`).
    pub prompt: PromptSpec,
    /// `kind = "seq2seq"`: target length and decoding (`[task.seq2seq]`).
    pub seq2seq: Seq2SeqSpec,
}

/// How the off-ramps of `task.early_exit` are trained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EarlyExit {
    /// With the whole model, on the sum of the final and every ramp's loss.
    Joint,
    /// Alone, on the sum of the ramps' losses; the encoder and the head are not updated.
    Frozen,
}

impl TaskConfig {
    /// The masked-LM masking settings.
    pub fn masking(&self) -> crate::data::masking::MaskingConfig {
        crate::data::masking::MaskingConfig {
            mlm_probability: self.mlm_probability,
            mask_replace: self.mask_replace,
            random_replace: self.random_replace,
            whole_word: self.whole_word_mask,
        }
    }
}

impl Default for TaskConfig {
    fn default() -> Self {
        TaskConfig {
            kind: TaskKind::Classify,
            problem: Problem::SingleLabel,
            pooling: "pooler".into(),
            rnn: None,
            l1: 0.0,
            l2: 0.0,
            head: TokenHead::Linear,
            scheme: Scheme::Bio,
            from_scratch: false,
            lstm_hidden: 256,
            lstm_layers: 1,
            embedding_dim: 128,
            min_count: 1,
            dropout: 0.5,
            markers: ["[E1]", "[/E1]", "[E2]", "[/E2]"].map(String::from),
            relation_pooling: RelationPooling::EntityStart,
            mlm_probability: 0.15,
            mask_replace: 0.8,
            random_replace: 0.1,
            whole_word_mask: false,
            mask_workers: 1,
            mask_queue: 16,
            next_sentence: PairObjective::None,
            short_seq_probability: 0.1,
            windows: None,
            distill_from: None,
            distill_temperature: 2.0,
            distill_alpha: 0.5,
            student_layers: None,
            early_exit: None,
            simcse: SimcseSpec::default(),
            prompt: PromptSpec::default(),
            seq2seq: Seq2SeqSpec::default(),
        }
    }
}

/// What is trained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Sequence classification / regression on an encoder.
    Classify,
    /// Next-token prediction with a GPT-2.
    CausalLm,
    /// A tag per word (NER): CoNLL or JSONL data, entity-level metrics.
    TokenClassification,
    /// The relation between a marked subject and object.
    Relation,
    /// Masked-LM pre-training of a BERT (`BertForMaskedLM`) on plain text.
    #[serde(alias = "masked_lm")]
    Mlm,
    /// Contrastive sentence embeddings (SimCSE) on texts or pairs.
    Simcse,
    /// Prompt-based classification (PET): a masked LM, a template and a verbalizer.
    Prompt,
    /// Text to text with a bert2bert encoder–decoder (`data.label_field` names the target).
    Seq2seq,
}

/// Metric that picks the best checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BestMetric {
    /// Accuracy (higher is better).
    Accuracy,
    /// Macro F1 (higher is better).
    MacroF1,
    /// Micro F1 (higher is better).
    MicroF1,
    /// Dev loss (lower is better).
    Loss,
    /// Pearson correlation (regression; higher is better).
    Pearson,
    /// Spearman correlation of cosine similarity with gold scores (sentence embeddings;
    /// higher is better).
    Spearman,
    /// Entity-level micro F1 (token classification; higher is better).
    EntityF1,
    /// Micro F1 over the real relations (relation classification; higher is better).
    RelationF1,
    /// Mean ROUGE-L F-measure of generated text (seq2seq; higher is better).
    RougeL,
}

/// The loop (section `[train]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoopConfig {
    /// Passes over the training data.
    pub epochs: usize,
    /// Examples per optimiser step (split into `grad_accum` micro-batches).
    pub batch_size: usize,
    /// Micro-batches whose gradients are summed before each step.
    pub grad_accum: usize,
    /// Examples per evaluation batch.
    pub eval_batch_size: usize,
    /// Clip the global gradient norm to this (0 = off).
    pub max_grad_norm: f64,
    /// Evaluate every N steps (0 = at the end of each epoch).
    pub eval_every: u64,
    /// Write the resume checkpoint every N steps (0 = at each evaluation).
    pub save_every: u64,
    /// Stop after this many evaluations without improvement (0 = never).
    pub early_stopping_patience: usize,
    /// Dev metric that picks the best checkpoint (unset: the task's own — accuracy for
    /// classification, Pearson's r for regression, the loss for language modelling).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<BestMetric>,
    /// Stop (with a checkpoint) after this many steps in this invocation: for tests of
    /// resume and for time-boxed runs (0 = off).
    pub stop_after_steps: u64,
    /// End the run after this many optimiser steps in total, as HF's `max_steps` (the
    /// schedule is laid out over them; 0 = `epochs` decide).
    pub max_steps: u64,
    /// Worker threads (0 = all cores).
    pub threads: usize,
    /// Log a line to metrics.jsonl every N steps.
    pub log_every: u64,
}

impl Default for LoopConfig {
    fn default() -> Self {
        LoopConfig {
            epochs: 3,
            batch_size: 32,
            grad_accum: 1,
            eval_batch_size: 64,
            max_grad_norm: 1.0,
            eval_every: 0,
            save_every: 0,
            early_stopping_patience: 0,
            metric: None,
            stop_after_steps: 0,
            max_steps: 0,
            threads: 0,
            log_every: 10,
        }
    }
}

/// Adversarial training mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Adversarial {
    /// Off.
    None,
    /// Fast Gradient Method (one step of size `adv_epsilon`).
    Fgm,
    /// Projected Gradient Descent (`pgd_steps` steps of `pgd_alpha` in an `adv_epsilon` ball).
    Pgd,
}

/// Tricks (section `[tricks]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TricksConfig {
    /// EMA decay of the weights (0 = off; 0.999 is typical).
    pub ema_decay: f64,
    /// Adversarial training on the word embeddings.
    pub adversarial: Adversarial,
    /// FGM step / PGD radius.
    pub adv_epsilon: f64,
    /// PGD steps.
    pub pgd_steps: usize,
    /// PGD step size.
    pub pgd_alpha: f64,
    /// R-Drop weight of the symmetric KL (0 = off).
    pub rdrop_alpha: f64,
}

impl Default for TricksConfig {
    fn default() -> Self {
        TricksConfig {
            ema_decay: 0.0,
            adversarial: Adversarial::None,
            adv_epsilon: 1.0,
            pgd_steps: 3,
            pgd_alpha: 0.3,
            rdrop_alpha: 0.0,
        }
    }
}

impl RunConfig {
    /// Reads `path` (TOML), applies `overrides` (`section.key=value`, the value parsed as
    /// TOML, else taken as a string) and validates. Unknown keys are errors that list the
    /// valid ones.
    pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<Self> {
        let shown = path.unwrap_or(Path::new("<defaults>"));
        let mut table: toml::Table = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
                text.parse()
                    .map_err(|e: toml::de::Error| Error::config(p, e.to_string()))?
            }
            None => toml::Table::new(),
        };
        for o in overrides {
            apply_override(&mut table, o).map_err(|m| Error::config(shown, m))?;
        }
        let cfg: RunConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| Error::config(shown, e.to_string().trim().to_string()))?;
        cfg.validate().map_err(|m| Error::config(shown, m))?;
        Ok(cfg)
    }

    /// The distillation settings (`task.distill_*`, `task.student_layers`).
    fn validate_distill(&self) -> std::result::Result<(), String> {
        let t = &self.task;
        let used = t.distill_from.is_some() || t.student_layers.is_some();
        if used && t.kind != TaskKind::Classify {
            return Err(format!(
                "task.distill_from and task.student_layers apply to kind = \"classify\" (this \
                 run is {:?})",
                t.kind
            ));
        }
        if !(t.distill_temperature > 0.0 && t.distill_temperature.is_finite()) {
            return Err(format!(
                "task.distill_temperature must be > 0, got {}",
                t.distill_temperature
            ));
        }
        if !(0.0..=1.0).contains(&t.distill_alpha) {
            return Err(format!(
                "task.distill_alpha must be in [0, 1], got {}",
                t.distill_alpha
            ));
        }
        if let Some(layers) = &t.student_layers {
            let mut seen = layers.clone();
            seen.sort_unstable();
            seen.dedup();
            if layers.is_empty() || seen.len() != layers.len() {
                return Err(format!(
                    "task.student_layers must name at least one layer, each once: {layers:?}"
                ));
            }
        }
        Ok(())
    }

    /// `task.early_exit`: a single-label classifier read from the encoder's layers, not
    /// distilled.
    fn validate_early_exit(&self) -> std::result::Result<(), String> {
        let t = &self.task;
        if t.early_exit.is_none() {
            return Ok(());
        }
        let metric = self.train.metric.unwrap_or(BestMetric::Loss);
        if t.early_exit == Some(EarlyExit::Frozen) && metric != BestMetric::Loss {
            return Err(format!(
                "task.early_exit = \"frozen\" leaves the head as it is, so train.metric = \
                 {metric:?} cannot tell the steps apart: set train.metric = \"loss\" (the ramps' \
                 summed dev loss) or leave it unset"
            ));
        }
        let clash = if t.kind != TaskKind::Classify {
            Some(format!("kind = {:?}", t.kind))
        } else if t.problem != Problem::SingleLabel {
            Some(format!("problem = {:?}", t.problem.hf_name()))
        } else if t.rnn.is_some() {
            Some("task.rnn".to_string())
        } else if t.windows.is_some() {
            Some("task.windows".to_string())
        } else if t.distill_from.is_some() {
            Some("task.distill_from".to_string())
        } else {
            None
        };
        match clash {
            Some(what) => Err(format!(
                "task.early_exit is for single-label classifiers (kind = \"classify\") without \
                 task.rnn, task.windows or task.distill_from; this run has {what}"
            )),
            None => Ok(()),
        }
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let t = &self.train;
        if t.batch_size == 0 || t.eval_batch_size == 0 || t.grad_accum == 0 {
            return Err(
                "train.batch_size, train.eval_batch_size and train.grad_accum must be ≥ 1".into(),
            );
        }
        if !t.batch_size.is_multiple_of(t.grad_accum) {
            return Err(format!(
                "train.batch_size ({}) must be a multiple of train.grad_accum ({})",
                t.batch_size, t.grad_accum
            ));
        }
        if t.epochs == 0 {
            return Err("train.epochs must be ≥ 1".into());
        }
        if self.data.max_length < 2 {
            return Err("data.max_length must be ≥ 2".into());
        }
        if self.tricks.adversarial == Adversarial::Pgd && self.tricks.pgd_steps == 0 {
            return Err("tricks.pgd_steps must be ≥ 1".into());
        }
        if !(0.0..1.0).contains(&self.tricks.ema_decay) {
            return Err("tricks.ema_decay must be in [0, 1)".into());
        }
        self.optimizer.validate().map_err(|e| e.to_string())?;
        let pooling = self
            .task
            .pooling
            .parse::<crate::nn::Pooling>()
            .map_err(|e| format!("task.pooling: {e}"))?;
        if self.task.kind == TaskKind::Simcse {
            crate::nn::contrastive::check_temperature(self.task.simcse.temperature)
                .map_err(|e| e.to_string())?;
        }
        if self.task.kind == TaskKind::Mlm {
            self.task
                .masking()
                .validate()
                .map_err(|e| format!("task.{e}"))?;
        }
        if self.task.next_sentence != PairObjective::None {
            if self.task.kind != TaskKind::Mlm {
                return Err(format!(
                    "task.next_sentence applies to kind = \"mlm\" (this run is {:?})",
                    self.task.kind
                ));
            }
            if !(0.0..=1.0).contains(&self.task.short_seq_probability) {
                return Err(format!(
                    "task.short_seq_probability must be in [0, 1], got {}",
                    self.task.short_seq_probability
                ));
            }
            if self.data.max_length < 5 {
                return Err(format!(
                    "data.max_length {} leaves no room for [CLS] A [SEP] B [SEP] \
                     (task.next_sentence needs ≥ 5)",
                    self.data.max_length
                ));
            }
        }
        self.validate_distill()?;
        self.validate_early_exit()?;
        if self.task.rnn.is_some() {
            if self.task.kind != TaskKind::Classify {
                return Err(format!(
                    "task.rnn applies to kind = \"classify\" (this run is {:?}; token \
                     classification takes head = \"lstm_crf\")",
                    self.task.kind
                ));
            }
            crate::tasks::classify::RnnSpec::check_pooling(pooling).map_err(|e| e.to_string())?;
            if self.task.lstm_hidden == 0 || self.task.lstm_layers == 0 {
                return Err("task.lstm_hidden and task.lstm_layers must be ≥ 1".into());
            }
        }
        Ok(())
    }

    /// The resolved configuration as TOML (printed at the start of a run and saved).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| Error::Invalid(format!("config to TOML: {e}")))
    }
}

fn apply_override(table: &mut toml::Table, o: &str) -> std::result::Result<(), String> {
    let (key, raw) = o
        .split_once('=')
        .ok_or_else(|| format!("--set `{o}`: expected key=value (e.g. optimizer.lr=3e-5)"))?;
    let value: toml::Value = match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let parts: Vec<&str> = key.trim().split('.').collect();
    let (last, path) = parts
        .split_last()
        .ok_or_else(|| format!("--set `{o}`: empty key"))?;
    let mut t = table;
    for p in path {
        let entry = t
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = entry
            .as_table_mut()
            .ok_or_else(|| format!("--set `{o}`: `{p}` is not a section"))?;
    }
    t.insert(last.to_string(), value);
    Ok(())
}
