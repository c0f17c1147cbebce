//! Training and evaluating DeeBERT's off-ramps (`task.early_exit`) on the shared engine, and
//! early-exit inference over a dataset (`eval` / `predict --early-exit-entropy`).

use super::config::EarlyExit;
use super::evaluation::Evaluation;
use super::sequence::evaluate_logits;
use super::task::StepOutput;
use crate::data::batch::length_sorted_batches;
use crate::data::labelled::{Batch, Dataset, Targets};
use crate::error::{Error, Result};
use crate::tasks::classify::{argmax, LossConfig, SequenceClassifier};
use crate::tasks::early_exit::{forward_with_exits, predict_early_exit, EarlyExitOutput};
use candle_core::{Device, Tensor};

/// One training step's loss: the sum of every ramp's loss, plus the head's for `joint`
/// (DeeBERT sums the exits' losses); for `frozen` the ramps read detached layer outputs, so
/// no gradient reaches the encoder or the head.
pub fn exit_step(
    model: &SequenceClassifier,
    b: &Batch,
    mode: EarlyExit,
    train: bool,
    cfg: &LossConfig,
) -> Result<StepOutput> {
    let detach = mode == EarlyExit::Frozen;
    let (logits, exits) = forward_with_exits(model, &b.input, train, detach)?;
    Ok(StepOutput {
        loss: exit_loss(model, (&logits, &exits), &b.targets, mode, cfg)?,
        logits: Some(logits),
    })
}

/// The loss of [`exit_step`] from the head's and the ramps' logits.
fn exit_loss(
    model: &SequenceClassifier,
    (logits, exits): (&Tensor, &[Tensor]),
    targets: &Targets,
    mode: EarlyExit,
    cfg: &LossConfig,
) -> Result<Tensor> {
    let mut loss = match mode {
        EarlyExit::Frozen => None,
        EarlyExit::Joint => Some(model.loss(logits, targets, cfg)?),
    };
    for e in exits {
        let l = model.loss(e, targets, cfg)?;
        loss = Some(match loss {
            Some(sum) => (sum + l)?,
            None => l,
        });
    }
    loss.ok_or_else(|| {
        Error::Invalid("task.early_exit = \"frozen\" on a one-layer model: no ramp to train".into())
    })
}

/// The head's metrics on `ds` as usual, the loss as [`exit_step`] computes it (mean over
/// batches, weighted by size), and each ramp's accuracy as `exit_<layer>_accuracy`.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_exits(
    model: &SequenceClassifier,
    ds: &Dataset,
    batch_size: usize,
    pad_id: u32,
    mode: EarlyExit,
    cfg: &LossConfig,
    split: &str,
    step: u64,
) -> Result<Evaluation> {
    let n = ds.len();
    let mut head = vec![Vec::new(); n];
    let mut ramp_preds: Vec<Vec<usize>> = Vec::new();
    let mut loss_sum = 0.0;
    for idx in length_sorted_batches(&ds.token_lengths(), batch_size) {
        let b = ds.batch(&idx, pad_id, &Device::Cpu)?;
        let (logits, exits) = forward_with_exits(model, &b.input, false, true)?;
        let loss = exit_loss(model, (&logits, &exits), &b.targets, mode, cfg)?;
        loss_sum += loss.to_scalar::<f32>()? as f64 * idx.len() as f64;
        ramp_preds.resize(exits.len(), vec![0; n]);
        for (r, e) in exits.iter().enumerate() {
            for (&i, row) in idx.iter().zip(e.to_vec2::<f32>()?) {
                ramp_preds[r][i] = argmax(&row);
            }
        }
        for (&i, row) in idx.iter().zip(logits.to_vec2::<f32>()?) {
            head[i] = row;
        }
    }
    let mut ev = evaluate_logits(model, ds, &head, split, step, cfg)?;
    ev.loss = loss_sum / n.max(1) as f64;
    if let Targets::Classes(gold) = ds.targets_of(&(0..n).collect::<Vec<_>>()) {
        for (r, preds) in ramp_preds.iter().enumerate() {
            let right = preds.iter().zip(&gold).filter(|(p, g)| **p == **g as usize);
            let acc = right.count() as f64 / n.max(1) as f64;
            ev.scores.insert(format!("exit_{}_accuracy", r + 1), acc);
        }
    }
    Ok(ev)
}

/// [`predict_early_exit`] over `ds` in length-sorted batches, in input order.
pub fn predict_with_exits(
    model: &SequenceClassifier,
    ds: &Dataset,
    batch_size: usize,
    pad_id: u32,
    max_entropy: f32,
) -> Result<EarlyExitOutput> {
    if !(max_entropy >= 0.0 && max_entropy.is_finite()) {
        return Err(Error::Invalid(format!(
            "--early-exit-entropy {max_entropy} must be a number ≥ 0 (0: never exit early; \
             ln(labels) = {:.3}: exit at the first layer)",
            (model.spec().labels.len() as f32).ln()
        )));
    }
    let n = ds.len();
    let mut out = EarlyExitOutput {
        logits: vec![Vec::new(); n],
        layers: vec![0; n],
    };
    for idx in length_sorted_batches(&ds.token_lengths(), batch_size) {
        let b = ds.batch(&idx, pad_id, &Device::Cpu)?;
        let r = predict_early_exit(model, &b.input, max_entropy)?;
        for (k, &i) in idx.iter().enumerate() {
            out.logits[i] = r.logits[k].clone();
            out.layers[i] = r.layers[k];
        }
    }
    Ok(out)
}

/// Adds `average_layers` and `early_exit_entropy` to an evaluation of early-exit logits.
pub fn add_exit_scores(ev: &mut Evaluation, layers: &[usize], max_entropy: f32) {
    let mean = layers.iter().sum::<usize>() as f64 / layers.len().max(1) as f64;
    ev.scores.insert("average_layers".into(), mean);
    // As written on the command line (0.3, not 0.30000001192092896).
    let e = max_entropy
        .to_string()
        .parse()
        .unwrap_or(f64::from(max_entropy));
    ev.scores.insert("early_exit_entropy".into(), e);
}
