//! Lengthening a model directory's position table (`bert4rs extend-positions`): the table
//! grows by [`Extension`], `max_position_embeddings` follows, every other weight and file is
//! carried over, and the result is an HF directory `transformers` loads as it is.

use crate::config::{BertConfig, ModelType};
use crate::error::{Error, Result};
use crate::models::hub;
use crate::nn::positions::{extend_table, sinusoidal_table, Extension};
use candle_core::Tensor;
use std::collections::HashMap;
use std::path::Path;

/// What [`extend_positions`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExtendSummary {
    /// Name of the position table in the weight file (none for NEZHA).
    pub tensor: Option<String>,
    /// Rows before and after.
    pub from: usize,
    /// Rows after (`max_position_embeddings`).
    pub to: usize,
    /// `copy`, `hierarchical`, `sinusoidal` (a fixed table is recomputed, not extended) or
    /// `relative` (NEZHA: no table; only the limit is raised).
    pub method: String,
}

/// Writes `src` with a position table of `to` rows into `out`. RoBERTa's reserved rows
/// (`0..=pad_token_id`) stay in front; only the trained rows after them are extended.
/// Every argument is checked before the weights are read.
pub fn extend_positions(
    src: &Path,
    to: usize,
    how: Extension,
    out: &Path,
) -> Result<ExtendSummary> {
    let config_path = src.join("config.json");
    let mut cfg = BertConfig::from_file(&config_path)?;
    let offset = cfg.position_offset();
    let from = cfg.max_position_embeddings;
    hub::check_output(src, out)?;
    if to <= from {
        return Err(Error::Invalid(format!(
            "--to {to} must be larger than the current table of {from} positions \
             (max_position_embeddings in {})",
            config_path.display()
        )));
    }
    let sinusoidal = cfg.sinusoidal_positions();
    let relative = cfg.model_type == ModelType::Nezha;
    if !sinusoidal && !relative {
        how.validate(from.saturating_sub(offset), to - offset)
            .map_err(Error::Invalid)?;
    }
    let weights = hub::find_weights(src)?;
    let mut tensors = hub::read_tensors(&weights)?;
    let (tensor, method) = match (relative, sinusoidal) {
        (true, _) => (None, "relative"),
        (false, true) => {
            let name = grow_table(&mut tensors, &weights, from, to, offset, None)?;
            (Some(name), "sinusoidal")
        }
        (false, false) => {
            let name = grow_table(&mut tensors, &weights, from, to, offset, Some(how))?;
            let method = match how {
                Extension::Copy => "copy",
                Extension::Hierarchical { .. } => "hierarchical",
            };
            (Some(name), method)
        }
    };
    cfg.max_position_embeddings = to;
    let mut named: Vec<(String, Tensor)> = tensors.into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    hub::save_pretrained(out, &cfg.to_json()?, &named)?;
    hub::copy_side_files(src, out, Some(to - offset))?;
    Ok(ExtendSummary {
        tensor,
        from,
        to,
        method: method.into(),
    })
}

/// Replaces the position table of `tensors` (and any `position_ids` buffer) by one of `to`
/// rows: extended by `how`, or (None) the sinusoid recomputed. Returns the table's name.
fn grow_table(
    tensors: &mut HashMap<String, Tensor>,
    weights: &Path,
    from: usize,
    to: usize,
    offset: usize,
    how: Option<Extension>,
) -> Result<String> {
    let name = position_table_name(tensors, weights)?;
    let table = &tensors[&name];
    if table.dim(0)? != from {
        return Err(Error::checkpoint(
            weights,
            format!(
                "`{name}` has {} rows but config.json says max_position_embeddings = {from}",
                table.dim(0)?
            ),
        ));
    }
    let new = match how {
        None => sinusoidal_table(to, table.dim(1)?, table.device())?,
        Some(how) => {
            let reserved = table.narrow(0, 0, offset)?;
            let trained = table.narrow(0, offset, from - offset)?;
            Tensor::cat(&[reserved, extend_table(&trained, to - offset, how)?], 0)?
        }
    };
    tensors.insert(name.clone(), new);
    for (key, t) in tensors.iter_mut() {
        // Old checkpoints store the `position_ids` buffer ([1, max_position_embeddings]).
        if key.ends_with("embeddings.position_ids") {
            *t = Tensor::arange(0i64, to as i64, t.device())?
                .to_dtype(t.dtype())?
                .unsqueeze(0)?;
        }
    }
    Ok(name)
}

/// The one `…embeddings.position_embeddings.weight` of the checkpoint.
fn position_table_name(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<String> {
    let mut names: Vec<&String> = tensors
        .keys()
        .filter(|k| k.ends_with("embeddings.position_embeddings.weight"))
        .collect();
    names.sort();
    match names.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Error::checkpoint(
            path,
            "no `embeddings.position_embeddings.weight`: not a BERT/RoBERTa checkpoint with a \
             learned position table",
        )),
        many => Err(Error::checkpoint(
            path,
            format!("several position tables ({many:?}); extend one model at a time"),
        )),
    }
}
