//! `bert4rs quantize`: an f32 BERT-family directory (sentence encoder, classifier, tagger,
//! relation model) → an int8 directory ([`super::int8_checkpoint`]) that every command
//! loads as it loads the f32 one, running the encoder as `--int8` does.

use super::int8_checkpoint::{self, quantization_config};
use super::{encoder_from_tensors, hub};
use crate::config::BertConfig;
use crate::error::{Error, Result};
use crate::kernels::qgemm::CodeWidth;
use candle_core::Device;
use std::path::Path;

/// What [`quantize_dir`] did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct QuantizeSummary {
    /// Linear layers now int8 (Q, K and V counted apart).
    pub int8_layers: usize,
    /// Bits per activation code the directory runs with.
    pub activation_bits: u32,
    /// Size of the weight file before and after.
    pub weight_bytes_before: u64,
    pub weight_bytes_after: u64,
}

/// Writes `out`: `src`'s encoder layers as int8 (as [`crate::models::bert::BertModel::quantize_int8`]
/// quantises them, activation codes of `width`), every other tensor, the tokenizer and
/// side files as they are. Checked before any work: `out` is not `src`, `src` is an f32
/// BERT-family model.
pub fn quantize_dir(src: &Path, out: &Path, width: CodeWidth) -> Result<QuantizeSummary> {
    hub::check_output(src, out)?;
    let config_path = src.join("config.json");
    let raw = crate::config::read_json(&config_path)?;
    if raw.get("model_type").and_then(|t| t.as_str()) == Some("gpt2") {
        return Err(Error::config(
            &config_path,
            "a GPT-2 model: `quantize` writes BERT-family encoders; `generate --int8` \
             quantises a GPT-2 as it loads",
        ));
    }
    let mut cfg = BertConfig::from_value(raw, &config_path)?;
    if int8_checkpoint::int8_width(&cfg, &config_path)?.is_some() {
        return Err(Error::Invalid(format!(
            "{} is already int8; quantize the f32 model it was made from",
            src.display()
        )));
    }
    let weights = hub::find_weights(src)?;
    let tensors = hub::read_tensors(&weights)?;
    let mut loaded = encoder_from_tensors(tensors.clone(), &cfg, &weights, &Device::Cpu, false)?;
    loaded.model.quantize_int8(width)?;
    let int8 = loaded.model.int8_weights();
    cfg.extra
        .insert("quantization_config".into(), quantization_config(width));
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let out_weights = out.join("model.safetensors");
    int8_checkpoint::write(&out_weights, &tensors, &int8, &loaded.prefix)?;
    crate::util::write_atomic(&out.join("config.json"), cfg.to_json()?.as_bytes())?;
    hub::copy_side_files(src, out, None)?;
    let size = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.len())
            .map_err(|e| Error::io(p, e))
    };
    Ok(QuantizeSummary {
        int8_layers: int8.len(),
        activation_bits: width.bits(),
        weight_bytes_before: size(&weights)?,
        weight_bytes_after: size(&out_weights)?,
    })
}
