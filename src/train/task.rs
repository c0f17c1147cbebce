//! The contract between the training engine ([`super::Trainer`]) and a task. A task owns its
//! model, tokenizer and data; it turns example indices into micro-batches, a micro-batch
//! into a loss, a held-out split into an [`Evaluation`], and itself into an HF directory.
//! The engine owns everything else, written once for every task: the epoch/step loop, the
//! optimiser and schedule, accumulation, clipping, EMA, FGM/PGD, R-Drop, L1/L2, checkpoints
//! with exact resume, the metrics log, the HTML report and early stopping.
//!
//! Every built-in task implements it: sequence classification ([`super::SequenceTask`]),
//! token classification ([`super::TokenTask`]), relations ([`super::RelationTask`]), masked
//! LM ([`super::MlmTask`]) and causal LM ([`super::CausalLmTask`]); `examples/custom_task/`
//! implements it for a task of its own outside this crate.

use super::config::BestMetric;
use super::evaluation::Evaluation;
use super::optim::OptimizerConfig;
use crate::error::Result;
use crate::rng::Rng;
use candle_core::{Tensor, Var};
use std::path::Path;

/// Which held-out set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The dev set (evaluated during training; picks the best model).
    Dev,
    /// The test set (evaluated once, with the best weights).
    Test,
}

impl Split {
    /// `dev` or `test`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Dev => "dev",
            Split::Test => "test",
        }
    }
}

/// What one forward pass of a task gives the engine.
pub struct StepOutput {
    /// The scalar loss to minimise (a mean over the micro-batch).
    pub loss: Tensor,
    /// The logits, when the task has them: R-Drop (`tricks.rdrop_alpha`) compares the
    /// logits of two dropout passes with [`Task::rdrop_divergence`].
    pub logits: Option<Tensor>,
}

/// A trainable task: a model, its data and its metrics.
pub trait Task {
    /// One micro-batch, ready for [`Task::forward`].
    type Batch;

    /// The run's opening summary (model, labels, data sizes); also heads the HTML report.
    fn describe(&self) -> String;

    /// The trainable parameters with their HF state-dict names.
    fn params(&self) -> Vec<(String, Var)>;

    /// The encoder's parameter prefix and layer count, for layer-wise learning-rate decay
    /// (`optimizer.layer_decay`); `("", 0)` for a model without encoder layers.
    fn layer_layout(&self) -> (String, usize) {
        (String::new(), 0)
    }

    /// The optimiser settings for this task's parameters, given the run's. Default: as
    /// given; a model whose norms are not named `LayerNorm` adds them to `no_decay` here.
    fn optimizer_config(&self, run: &OptimizerConfig) -> OptimizerConfig {
        run.clone()
    }

    /// Examples (or blocks) in the training set.
    fn train_len(&self) -> usize;

    /// The batches of one epoch as indices into the training set, in a seeded order (a
    /// function of `seed` alone, so a resumed run sees the same order). Default: shuffled.
    fn epoch_batches(&self, batch_size: usize, seed: u64) -> Vec<Vec<usize>> {
        shuffled_batches(self.train_len(), batch_size, seed)
    }

    /// The micro-batch of the training examples `idx`.
    fn batch(&self, idx: &[usize]) -> Result<Self::Batch>;

    /// Called before the engine asks for an epoch's batches, with the epoch's seed and the
    /// micro-batches still to come, in order (a resumed run's first epoch starts mid-way).
    /// A task whose batches are random (masked-LM masking) may start producing them ahead
    /// here. Default: nothing.
    fn start_epoch(&self, _epoch_seed: u64, _upcoming: &[Vec<usize>]) {}

    /// The micro-batch of the training examples `idx` in the epoch of `epoch_seed`. A task
    /// whose batches are random draws that randomness from (`epoch_seed`, the examples) alone,
    /// so every pass sees new draws and a resumed run the same ones. Default:
    /// [`Task::batch`].
    fn epoch_batch(&self, idx: &[usize], _epoch_seed: u64) -> Result<Self::Batch> {
        self.batch(idx)
    }

    /// Loss (and logits) of a micro-batch; dropout is on when `train` is true.
    fn forward(&self, batch: &Self::Batch, train: bool) -> Result<StepOutput>;

    /// R-Drop's divergence between the logits of two dropout passes. Default: the
    /// symmetric KL of softmaxes over the last dimension, averaged over rows.
    fn rdrop_divergence(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        crate::nn::losses::rdrop_kl(a, b)
    }

    /// Evaluates a held-out split in eval mode (`None` when the task has no such split).
    /// `step` is the optimiser step it is done at; `batch_size` is `train.eval_batch_size`.
    fn evaluate(&self, split: Split, step: u64, batch_size: usize) -> Result<Option<Evaluation>>;

    /// The metric that picks the best model when `train.metric` is not set.
    fn default_metric(&self) -> BestMetric {
        BestMetric::Loss
    }

    /// The name of the word-embedding table that FGM / PGD perturb (`None`: the task does
    /// not support adversarial training).
    fn word_embeddings(&self) -> Option<String> {
        None
    }

    /// The progress bar's throughput text, given examples (or blocks) per second.
    fn throughput(&self, examples_per_s: f64) -> String {
        format!("{examples_per_s:.1} ex/s")
    }

    /// Writes the model and tokenizer as an HF directory into `dir` (an empty directory
    /// that the engine swaps in atomically).
    fn save_pretrained(&self, dir: &Path) -> Result<()>;

    /// Overwrites the parameters with those a [`Task::save_pretrained`] wrote into `dir`
    /// (resume; the best model before the test evaluation).
    fn load_weights(&mut self, dir: &Path) -> Result<()>;
}

/// Indices `0..n` shuffled with `seed`, in batches of `batch_size` (the last one shorter).
pub fn shuffled_batches(n: usize, batch_size: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n).collect();
    Rng::new(seed).shuffle(&mut order);
    order
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}
