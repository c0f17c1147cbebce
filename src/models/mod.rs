//! Model architectures (one file each, named after the HF module) and loading of HF model
//! directories.

pub mod bert;
pub mod gpt2;
pub mod hub;
pub mod roberta;

use crate::config::{BertConfig, ModelType};
use crate::error::{Error, Result};
use crate::nn::Params;
use bert::BertModel;
use candle_core::Device;
use std::path::Path;

/// Checkpoint keys that are buffers, not weights, and may be left unused silently.
const BUFFER_KEYS: [&str; 1] = ["embeddings.position_ids"];

/// A loaded encoder plus what loading found out.
pub struct LoadedEncoder {
    /// The encoder.
    pub model: BertModel,
    /// Every parameter by HF name (for training and saving).
    pub params: Params,
    /// Prefix the checkpoint stored the encoder under (`""`, `"bert"` or `"roberta"`).
    pub prefix: String,
    /// Checkpoint tensors nothing used (task heads of another model, ...).
    pub unused: Vec<String>,
}

/// Loads `config.json` and the weights of an HF BERT/RoBERTa directory.
pub fn load_encoder(dir: &Path, device: &Device, trainable: bool) -> Result<LoadedEncoder> {
    if !dir.is_dir() {
        return Err(Error::config(dir, "model directory not found"));
    }
    let cfg = BertConfig::from_file(&dir.join("config.json"))?;
    let weights = hub::find_weights(dir)?;
    let tensors = hub::read_tensors(&weights)?;
    let prefix = encoder_prefix(&tensors, cfg.model_type, &weights)?;
    let params = Params::from_tensors(tensors, &weights, device, trainable);
    let scoped = if prefix.is_empty() {
        params.clone()
    } else {
        params.pp(&prefix)
    };
    let model = BertModel::load(&scoped, &cfg)?;
    let unused = params
        .unused_keys()
        .into_iter()
        .filter(|k| !BUFFER_KEYS.iter().any(|b| k.ends_with(b)))
        .collect();
    Ok(LoadedEncoder {
        model,
        params,
        prefix,
        unused,
    })
}

impl LoadedEncoder {
    /// Resizes the word embeddings to `rows` (see [`BertModel::resize_token_embeddings`])
    /// and keeps the parameter list in sync, so training and saving see the new table.
    pub fn resize_token_embeddings(&mut self, rows: usize) -> Result<()> {
        let table = self.model.resize_token_embeddings(rows)?;
        let name = self.model.embeddings().word_embeddings().name().to_string();
        let t = self.params.replace(&name, table)?;
        self.model.set_word_embeddings(t)?;
        Ok(())
    }

    /// Writes `config.json` and `model.safetensors` (HF names, atomically) so that
    /// `transformers` loads the directory.
    pub fn save_pretrained(&self, dir: &Path) -> Result<()> {
        let mut cfg = self.model.config().clone();
        let arch = match cfg.model_type {
            ModelType::Bert => "BertModel",
            ModelType::Roberta => "RobertaModel",
        };
        cfg.extra
            .insert("architectures".into(), serde_json::json!([arch]));
        hub::save_pretrained(dir, &cfg.to_json()?, &self.params.named_tensors())
    }
}

/// Finds under which prefix the encoder's weights are stored.
fn encoder_prefix(
    tensors: &std::collections::HashMap<String, candle_core::Tensor>,
    model_type: ModelType,
    path: &Path,
) -> Result<String> {
    let probe = "embeddings.word_embeddings.weight";
    let family = match model_type {
        ModelType::Bert => "bert",
        ModelType::Roberta => "roberta",
    };
    for prefix in ["", family, "bert", "roberta"] {
        let key = if prefix.is_empty() {
            probe.to_string()
        } else {
            format!("{prefix}.{probe}")
        };
        if tensors.contains_key(&key) {
            return Ok(prefix.to_string());
        }
    }
    Err(Error::checkpoint(
        path,
        format!("no encoder weights: expected `{probe}` or `{family}.{probe}`"),
    ))
}
