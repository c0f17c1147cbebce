//! Run checkpoints: `<output_dir>/checkpoint/` holds an HF model directory (live weights,
//! tokenizer) plus `optimizer.safetensors` (optimiser buffers, EMA shadow) and
//! `trainer_state.json` (steps, epoch, position in the epoch, best score). Dropout masks and
//! batch order are functions of (seed, step) and (seed, epoch), so this is all `--resume`
//! needs to continue exactly.
//!
//! A checkpoint directory is written beside the old one and swapped in by two renames; a
//! crash between them leaves `checkpoint.old/`, which [`latest`] falls back to.

use crate::error::{Error, Result};
use crate::models::checkpoint::{read_tensors, write_safetensors};
use crate::tasks::classify::SequenceClassifier;
use crate::tokenize::Tokenizer;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Where the loop is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimiser steps done.
    pub global_step: u64,
    /// Current epoch (0-based).
    pub epoch: usize,
    /// Batches of the current epoch already done.
    pub batch_in_epoch: usize,
    /// Steps of the whole run.
    pub total_steps: u64,
    /// Best dev score so far (higher is better).
    pub best_score: Option<f64>,
    /// Step of the best dev score.
    pub best_step: u64,
    /// Evaluations since the best one.
    pub evals_without_improvement: usize,
    /// The loop has ended.
    pub finished: bool,
    /// Each parameter's optimiser step count.
    pub optimizer_steps: BTreeMap<String, u64>,
}

impl TrainState {
    /// A fresh run of `total_steps`.
    pub fn new(total_steps: u64) -> Self {
        TrainState {
            global_step: 0,
            epoch: 0,
            batch_in_epoch: 0,
            total_steps,
            best_score: None,
            best_step: 0,
            evals_without_improvement: 0,
            finished: false,
            optimizer_steps: BTreeMap::new(),
        }
    }
}

/// The newest complete checkpoint of a run, if any.
pub fn latest(output_dir: &Path) -> Option<PathBuf> {
    ["checkpoint", "checkpoint.old"]
        .iter()
        .map(|n| output_dir.join(n))
        .find(|d| d.join("trainer_state.json").is_file())
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    crate::util::write_atomic(path, text.as_bytes())
}

/// A model that writes itself as an HF directory (config + weights).
pub trait SavePretrained {
    /// Writes `config.json` and the weights into `dir`.
    fn save_pretrained(&self, dir: &Path) -> Result<()>;
}

impl SavePretrained for SequenceClassifier {
    fn save_pretrained(&self, dir: &Path) -> Result<()> {
        SequenceClassifier::save_pretrained(self, dir)
    }
}

impl SavePretrained for crate::models::gpt2::Gpt2LMHeadModel {
    fn save_pretrained(&self, dir: &Path) -> Result<()> {
        crate::models::gpt2::Gpt2LMHeadModel::save_pretrained(self, dir)
    }
}

/// Writes an HF model directory (config, weights, tokenizer) by swapping in a complete copy.
pub fn save_model_dir(dir: &Path, model: &dyn SavePretrained, tokenizer: &Tokenizer) -> Result<()> {
    swap_in(dir, |tmp| {
        model.save_pretrained(tmp)?;
        tokenizer.save(tmp)
    })
}

/// Writes the resume checkpoint of a run.
pub fn save_checkpoint(
    output_dir: &Path,
    model: &dyn SavePretrained,
    tokenizer: &Tokenizer,
    optimizer_tensors: &[(String, Tensor)],
    state: &TrainState,
) -> Result<()> {
    swap_in(&output_dir.join("checkpoint"), |tmp| {
        model.save_pretrained(tmp)?;
        tokenizer.save(tmp)?;
        write_safetensors(optimizer_tensors, &tmp.join("optimizer.safetensors"))?;
        write_json(&tmp.join("trainer_state.json"), state)
    })
}

/// Reads the loop state and the optimiser/EMA tensors of a checkpoint.
pub fn load_state(dir: &Path) -> Result<(TrainState, HashMap<String, Tensor>)> {
    let p = dir.join("trainer_state.json");
    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    let state: TrainState =
        serde_json::from_str(&text).map_err(|e| Error::config(&p, e.to_string()))?;
    let opt = dir.join("optimizer.safetensors");
    let tensors = if state.optimizer_steps.is_empty() && !opt.exists() {
        HashMap::new()
    } else {
        read_tensors(&opt)?
    };
    Ok((state, tensors))
}

/// Overwrites the model's weights with those saved in `dir` (an HF directory it wrote).
pub fn load_weights(dir: &Path, model: &SequenceClassifier) -> Result<()> {
    let file = dir.join("model.safetensors");
    let saved = read_tensors(&file)?;
    let family = match model.encoder().config().model_type {
        crate::config::ModelType::Bert => "bert",
        crate::config::ModelType::Roberta => "roberta",
    };
    for (name, var) in model.vars() {
        let key = saved_name(&name, model.encoder_prefix(), family);
        let t = saved
            .get(&key)
            .ok_or_else(|| Error::checkpoint(&file, format!("missing tensor `{key}`")))?;
        var.set(t)
            .map_err(|e| Error::checkpoint(&file, format!("`{key}`: {e}")))?;
    }
    Ok(())
}

fn saved_name(name: &str, prefix: &str, family: &str) -> String {
    let head = name.starts_with("classifier.") || name.starts_with("pooling.");
    if head || !prefix.is_empty() {
        name.to_string()
    } else {
        format!("{family}.{name}")
    }
}

/// Builds `dir` under a temporary name with `fill`, then swaps it in.
fn swap_in(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = dir.with_extension("tmp");
    let old = dir.with_extension("old");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    fill(&tmp)?;
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
        }
        std::fs::rename(dir, &old).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    Ok(())
}
