//! Attention-head importance (Michel et al., 2019, "Are Sixteen Heads Really Better than
//! One?") and the choice of heads to prune, as HF's `run_bertology.py` computes them: a gate
//! of ones on every head's output, the gradient of the task loss with respect to it summed in
//! absolute value over the batches of a labelled set, normalised per layer (L2), ranked over
//! the whole model. The pruning itself is [`crate::models::pruning::prune_heads`].

use crate::data::batch::length_sorted_batches;
use crate::data::labelled::Dataset;
use crate::error::{Error, Result};
use crate::tasks::classify::LossConfig;
use crate::tasks::classify::SequenceClassifier;
use candle_core::{Device, Var};
use std::collections::BTreeMap;

/// Importance of every remaining head.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HeadImportance {
    /// Per layer, the heads it still has (numbered as in the unpruned model).
    pub heads: Vec<Vec<usize>>,
    /// Per layer and head: the sum over batches of |∂loss/∂gate|.
    pub raw: Vec<Vec<f32>>,
    /// `raw` divided by its layer's L2 norm (bertology's `normalize_scores_by_layer`): the
    /// numbers ranked.
    pub scores: Vec<Vec<f32>>,
    /// Examples scored.
    pub examples: usize,
}

/// Head importance of `model` on `ds` in batches of `batch_size` (length-sorted). `model`
/// must be loaded trainable (`SequenceClassifier::from_dir(.., true, ..)`) so the gradient
/// flows back through every layer; dropout stays off.
pub fn head_importance(
    model: &mut SequenceClassifier,
    ds: &Dataset,
    batch_size: usize,
    pad_id: u32,
) -> Result<HeadImportance> {
    if ds.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: no examples to score heads on",
            ds.source.display()
        )));
    }
    let counts = model.encoder().heads_per_layer();
    let gates: Vec<Var> = counts
        .iter()
        .map(|&n| Var::ones(n, candle_core::DType::F32, &Device::Cpu))
        .collect::<candle_core::Result<_>>()?;
    let tensors = gates.iter().map(|v| v.as_tensor().clone()).collect();
    model.set_head_gates(Some(tensors))?;
    let mut raw: Vec<Vec<f32>> = counts.iter().map(|&n| vec![0.0; n]).collect();
    let result = (|| -> Result<()> {
        for idx in length_sorted_batches(&ds.token_lengths(), batch_size) {
            let grads = gate_gradients(model, ds, &idx, pad_id, &gates)?;
            for (acc, g) in raw.iter_mut().zip(grads) {
                for (a, v) in acc.iter_mut().zip(g) {
                    *a += v.abs();
                }
            }
        }
        Ok(())
    })();
    model.set_head_gates(None)?;
    result?;
    let cfg = model.encoder().config();
    Ok(HeadImportance {
        heads: (0..cfg.num_hidden_layers)
            .map(|i| cfg.kept_heads(i))
            .collect(),
        scores: raw.iter().map(|r| normalised(r)).collect(),
        raw,
        examples: ds.len(),
    })
}

/// ∂(mean loss of the batch `idx`)/∂gate for every layer's gates.
pub fn gate_gradients(
    model: &SequenceClassifier,
    ds: &Dataset,
    idx: &[usize],
    pad_id: u32,
    gates: &[Var],
) -> Result<Vec<Vec<f32>>> {
    let batch = ds.batch(idx, pad_id, &Device::Cpu)?;
    let logits = model.forward_batch(&batch, false)?;
    let loss = model.loss(&logits, &ds.targets_of(idx), &LossConfig::default())?;
    let grads = loss.backward()?;
    gates
        .iter()
        .map(|g| match grads.get(g.as_tensor()) {
            Some(t) => Ok(t.to_vec1::<f32>()?),
            None => Err(Error::Invalid(
                "no gradient reached the head gates: load the model trainable".into(),
            )),
        })
        .collect()
}

/// `v / ‖v‖₂` (bertology adds 1e-20 to the norm).
fn normalised(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt() + 1e-20;
    v.iter().map(|x| x / norm).collect()
}

/// An error unless `fraction` (of all heads, to remove) is in [0, 1).
pub fn check_fraction(fraction: f64) -> Result<()> {
    if !(0.0..1.0).contains(&fraction) {
        return Err(Error::Invalid(format!(
            "--fraction {fraction} must be in [0, 1): the share of all heads to remove"
        )));
    }
    Ok(())
}

/// The least important heads to prune so that `fraction` of the unpruned model's heads
/// (`layers × heads`, heads pruned before included) are gone: lowest score first, never the
/// last head of a layer. Returned by layer, in the unpruned model's numbering.
pub fn heads_to_prune(
    imp: &HeadImportance,
    heads_per_layer: usize,
    fraction: f64,
) -> Result<BTreeMap<usize, Vec<usize>>> {
    check_fraction(fraction)?;
    let total = heads_per_layer * imp.heads.len();
    let remaining: usize = imp.heads.iter().map(Vec::len).sum();
    let target = (fraction * total as f64).round() as usize;
    let mut to_remove = target.saturating_sub(total - remaining);
    let mut ranked: Vec<(f32, usize, usize)> = imp
        .scores
        .iter()
        .enumerate()
        .flat_map(|(l, s)| s.iter().enumerate().map(move |(pos, &v)| (v, l, pos)))
        .collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then((a.1, a.2).cmp(&(b.1, b.2))));
    let mut left: Vec<usize> = imp.heads.iter().map(Vec::len).collect();
    let mut out: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (_, layer, pos) in ranked {
        if to_remove == 0 {
            break;
        }
        if left[layer] > 1 {
            left[layer] -= 1;
            out.entry(layer).or_default().push(imp.heads[layer][pos]);
            to_remove -= 1;
        }
    }
    for v in out.values_mut() {
        v.sort_unstable();
    }
    Ok(out)
}
