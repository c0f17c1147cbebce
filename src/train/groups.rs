//! Parameter groups: which weights decay, which learning rate each gets (encoder vs head,
//! layer-wise decay) and which are frozen — the bert4torch / HF recipe.

use super::optim::{OptimizerConfig, ParamGroup};
use crate::error::{Error, Result};
use candle_core::Var;
use std::collections::BTreeMap;

/// Counts for the run's opening summary (nanoGPT prints the same).
#[derive(Debug, Default, Clone)]
pub struct GroupSummary {
    /// Tensors / scalars with weight decay.
    pub decayed: (usize, usize),
    /// Tensors / scalars without weight decay.
    pub not_decayed: (usize, usize),
    /// Tensors / scalars frozen.
    pub frozen: (usize, usize),
    /// Distinct (lr, weight decay) groups.
    pub groups: usize,
}

/// Splits `vars` into optimiser groups. `encoder_prefix` is where the encoder's weights live
/// (`""`, `bert`); names starting with `classifier.` or `pooling.` are the head.
pub fn build_groups(
    vars: Vec<(String, Var)>,
    cfg: &OptimizerConfig,
    encoder_prefix: &str,
    num_layers: usize,
) -> Result<(Vec<ParamGroup>, GroupSummary)> {
    let mut summary = GroupSummary::default();
    let mut by_key: BTreeMap<(u64, u64), ParamGroup> = BTreeMap::new();
    let mut used_freeze = vec![false; cfg.freeze.len()];
    for (name, var) in vars {
        let n = var.elem_count();
        let head = ["classifier.", "pooling.", "window_pooling."]
            .iter()
            .any(|p| name.starts_with(p));
        let rel = match encoder_prefix {
            "" => name.as_str(),
            p => name
                .strip_prefix(p)
                .and_then(|r| r.strip_prefix('.'))
                .unwrap_or(&name),
        };
        if let Some(i) = cfg
            .freeze
            .iter()
            .position(|f| !head && (rel == f || rel.starts_with(&format!("{f}."))))
        {
            used_freeze[i] = true;
            summary.frozen.0 += 1;
            summary.frozen.1 += n;
            continue;
        }
        let lr = if head {
            cfg.head_lr.unwrap_or(cfg.lr)
        } else {
            let depth = layer_depth(rel, num_layers);
            cfg.lr
                * cfg
                    .layer_decay
                    .powi((num_layers - depth.min(num_layers)) as i32)
        };
        let decays = !cfg.no_decay.iter().any(|nd| name.contains(nd.as_str()));
        let wd = if decays { cfg.weight_decay } else { 0.0 };
        let slot = if decays {
            &mut summary.decayed
        } else {
            &mut summary.not_decayed
        };
        slot.0 += 1;
        slot.1 += n;
        by_key
            .entry((lr.to_bits(), wd.to_bits()))
            .or_insert_with(|| ParamGroup {
                lr,
                weight_decay: wd,
                params: Vec::new(),
            })
            .params
            .push((name, var));
    }
    if let Some(i) = used_freeze.iter().position(|u| !u) {
        return Err(Error::Invalid(format!(
            "optimizer.freeze: `{}` matches no parameter (use names like `embeddings` or `encoder.layer.0`)",
            cfg.freeze[i]
        )));
    }
    summary.groups = by_key.len();
    // Highest lr first, for a readable summary.
    let mut groups: Vec<ParamGroup> = by_key.into_values().collect();
    groups.sort_by(|a, b| {
        b.lr.total_cmp(&a.lr)
            .then(b.weight_decay.total_cmp(&a.weight_decay))
    });
    Ok((groups, summary))
}

/// 0 for the embeddings, `i + 1` for block `i` (BERT `encoder.layer.i`, GPT-2 `h.i`),
/// `num_layers` for what follows the blocks (pooler, final LayerNorm).
fn layer_depth(rel: &str, num_layers: usize) -> usize {
    if rel.starts_with("embeddings.") || rel.starts_with("wte.") || rel.starts_with("wpe.") {
        return 0;
    }
    let block = rel
        .strip_prefix("encoder.layer.")
        .or_else(|| rel.strip_prefix("h."));
    if let Some(rest) = block {
        if let Some(i) = rest.split('.').next().and_then(|s| s.parse::<usize>().ok()) {
            return i + 1;
        }
    }
    num_layers
}
