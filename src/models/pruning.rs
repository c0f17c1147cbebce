//! Removing attention heads from a model directory (`bert4rs prune-heads`), as HF's
//! `PreTrainedModel.prune_heads` does: the pruned heads' rows of Q/K/V (weight and bias) and
//! columns of the attention output's dense weight are dropped, and `pruned_heads` in
//! `config.json` records them by their number in the unpruned model, so `transformers` builds
//! the same smaller layers when it loads the directory.

use crate::config::BertConfig;
use crate::error::{Error, Result};
use crate::models::hub;
use candle_core::Tensor;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// What [`prune_heads`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PruneSummary {
    /// Heads removed by this call, by layer (numbered as in the unpruned model).
    pub pruned_now: BTreeMap<usize, Vec<usize>>,
    /// Every head removed so far (the new `pruned_heads`).
    pub pruned_heads: BTreeMap<usize, Vec<usize>>,
    /// Heads per layer before and after.
    pub heads_before: Vec<usize>,
    /// Heads per layer after.
    pub heads_after: Vec<usize>,
    /// Weights in the checkpoint before and after (every tensor, heads included).
    pub parameters_before: usize,
    /// Weights after.
    pub parameters_after: usize,
}

/// Writes `src` without the heads `heads` (layer → head numbers of the unpruned model, as HF
/// takes them; heads already pruned are skipped, as HF does) into `out`, with the tokenizer
/// and other files copied. Checked before any weight is read: layers and heads in range, one
/// head left in every layer, `out` not `src`.
pub fn prune_heads(
    src: &Path,
    heads: &BTreeMap<usize, Vec<usize>>,
    out: &Path,
) -> Result<PruneSummary> {
    let config_path = src.join("config.json");
    let mut cfg = BertConfig::from_file(&config_path)?;
    hub::check_output(src, out)?;
    let before = cfg.clone();
    let pruned_now = merge_pruned(&mut cfg, heads)?;
    let weights = hub::find_weights(src)?;
    let mut tensors = hub::read_tensors(&weights)?;
    let parameters_before = count(&tensors);
    let prefix = layer_prefix(&tensors, &weights)?;
    for (&layer, _) in pruned_now.iter() {
        let kept_before = before.kept_heads(layer);
        let keep: Vec<usize> = kept_before
            .iter()
            .enumerate()
            .filter(|(_, h)| !cfg.pruned_heads[&layer].contains(h))
            .map(|(pos, _)| pos)
            .collect();
        let p = format!("{prefix}encoder.layer.{layer}.attention.");
        slice_layer(&mut tensors, &weights, &p, &keep, before.head_dim())?;
    }
    let heads_of = |c: &BertConfig| {
        (0..c.num_hidden_layers)
            .map(|i| c.kept_heads(i).len())
            .collect()
    };
    let summary = PruneSummary {
        pruned_now,
        pruned_heads: cfg.pruned_heads.clone(),
        heads_before: heads_of(&before),
        heads_after: heads_of(&cfg),
        parameters_before,
        parameters_after: count(&tensors),
    };
    let mut named: Vec<(String, Tensor)> = tensors.into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    hub::save_pretrained(out, &cfg.to_json()?, &named)?;
    hub::copy_side_files(src, out, None)?;
    Ok(summary)
}

/// Adds `heads` to `cfg.pruned_heads` (sorted) and returns the heads that were not pruned
/// yet, by layer; an error for a layer or head out of range, or a layer left without heads.
fn merge_pruned(
    cfg: &mut BertConfig,
    heads: &BTreeMap<usize, Vec<usize>>,
) -> Result<BTreeMap<usize, Vec<usize>>> {
    let mut now = BTreeMap::new();
    for (&layer, list) in heads {
        if layer >= cfg.num_hidden_layers {
            return Err(Error::Invalid(format!(
                "heads to prune name layer {layer}; the model has {} layers (0..{})",
                cfg.num_hidden_layers, cfg.num_hidden_layers
            )));
        }
        let kept = cfg.kept_heads(layer);
        let mut new: Vec<usize> = Vec::new();
        for &h in list {
            if h >= cfg.num_attention_heads {
                return Err(Error::Invalid(format!(
                    "heads to prune name head {h} of layer {layer}; layers have {} heads",
                    cfg.num_attention_heads
                )));
            }
            if kept.contains(&h) && !new.contains(&h) {
                new.push(h);
            }
        }
        if new.len() == kept.len() {
            return Err(Error::Invalid(format!(
                "pruning {list:?} would leave layer {layer} without heads; keep at least one"
            )));
        }
        if !new.is_empty() {
            let all = cfg.pruned_heads.entry(layer).or_default();
            all.extend(&new);
            all.sort_unstable();
            new.sort_unstable();
            now.insert(layer, new);
        }
    }
    Ok(now)
}

/// Keeps heads `keep` (positions among the layer's current heads) of the attention under
/// `p` (`….attention.`): rows of `self.{query,key,value}`, columns of `output.dense.weight`.
fn slice_layer(
    tensors: &mut HashMap<String, Tensor>,
    file: &Path,
    p: &str,
    keep: &[usize],
    head_dim: usize,
) -> Result<()> {
    let idx: Vec<u32> = keep
        .iter()
        .flat_map(|&h| (h * head_dim..(h + 1) * head_dim).map(|i| i as u32))
        .collect();
    let idx = Tensor::new(idx, &candle_core::Device::Cpu)?;
    let mut take = |name: String, dim: usize| -> Result<()> {
        let t = tensors
            .get(&name)
            .ok_or_else(|| Error::checkpoint(file, format!("missing tensor `{name}`")))?;
        let sliced = t.index_select(&idx, dim)?;
        tensors.insert(name, sliced);
        Ok(())
    };
    for proj in ["query", "key", "value"] {
        take(format!("{p}self.{proj}.weight"), 0)?;
        take(format!("{p}self.{proj}.bias"), 0)?;
    }
    take(format!("{p}output.dense.weight"), 1)
}

/// `""`, `"bert."`, `"roberta."`…: what the checkpoint puts before `encoder.layer.0.`.
fn layer_prefix(tensors: &HashMap<String, Tensor>, file: &Path) -> Result<String> {
    let key = "encoder.layer.0.attention.self.query.weight";
    tensors
        .keys()
        .find_map(|k| k.strip_suffix(key))
        .map(str::to_string)
        .ok_or_else(|| Error::checkpoint(file, format!("no `{key}`: not a BERT-family encoder")))
}

fn count(tensors: &HashMap<String, Tensor>) -> usize {
    tensors.values().map(Tensor::elem_count).sum()
}
