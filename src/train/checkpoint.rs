//! Run checkpoints: `<output_dir>/checkpoint/` holds an HF model directory (live weights,
//! tokenizer) plus `optimizer.safetensors` (optimiser buffers, EMA shadow) and
//! `trainer_state.json` (steps, epoch, position in the epoch, best score). Dropout masks and
//! batch order are functions of (seed, step) and (seed, epoch), so this is all `--resume`
//! needs to continue exactly.
//!
//! A checkpoint directory is written beside the old one and swapped in by two renames; a
//! crash between them leaves `checkpoint.old/`, which [`latest`] falls back to.

use crate::error::{Error, Result};
use crate::models::hub::{read_tensors, write_safetensors};
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

/// Writes an HF model directory with `fill` (config, weights, tokenizer) into a temporary
/// directory and swaps it in, so `dir` always holds a complete model.
pub fn save_model_dir(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    swap_in(dir, fill)
}

/// Writes the resume checkpoint of a run: the model (`fill`), the optimiser / EMA tensors
/// and the loop state.
pub fn save_checkpoint(
    output_dir: &Path,
    fill: impl FnOnce(&Path) -> Result<()>,
    optimizer_tensors: &[(String, Tensor)],
    state: &TrainState,
) -> Result<()> {
    swap_in(&output_dir.join("checkpoint"), |tmp| {
        fill(tmp)?;
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
