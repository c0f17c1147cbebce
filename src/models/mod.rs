//! Model architectures (one file each, named after the HF module) and loading of HF model
//! directories.

pub mod bert;
pub mod encoder_decoder;
pub mod gpt2;
pub mod hub;
pub mod int8_checkpoint;
pub mod nezha;
pub mod positions;
pub mod pruning;
pub mod quantize;
pub mod roberta;

use crate::config::{BertConfig, ModelType};
use crate::error::{Error, Result};
use crate::nn::Params;
use bert::BertModel;
use candle_core::Device;
use std::collections::HashMap;
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

/// Loads `config.json` and the weights of an HF BERT/RoBERTa directory. For training
/// (`trainable`), a directory with only `config.json` gives a new encoder initialised as HF's
/// `_init_weights` does (seeded by `rng::seed_init`; no pooler): training "from scratch".
/// Inference without weights stays an error: random weights answer nothing.
pub fn load_encoder(dir: &Path, device: &Device, trainable: bool) -> Result<LoadedEncoder> {
    load_encoder_as(dir, device, trainable, hub::WeightStorage::F32)
}

/// [`load_encoder`] keeping the encoder's matrices as `storage` says ([`hub::WeightStorage`]:
/// bf16 halves the weight memory; inference only, so with `trainable` it is an error).
pub fn load_encoder_as(
    dir: &Path,
    device: &Device,
    trainable: bool,
    storage: hub::WeightStorage,
) -> Result<LoadedEncoder> {
    if trainable && storage != hub::WeightStorage::F32 {
        return Err(Error::Invalid(format!(
            "{}: {storage:?} weights are for inference; training needs f32",
            dir.display()
        )));
    }
    if !dir.is_dir() {
        return Err(Error::config(dir, "model directory not found"));
    }
    let config_path = dir.join("config.json");
    let cfg = BertConfig::from_file(&config_path)?;
    let int8 = int8_checkpoint::int8_width(&cfg, &config_path)?;
    if int8.is_some() && (trainable || storage != hub::WeightStorage::F32) {
        return Err(Error::Invalid(format!(
            "{} is an int8 model (`bert4rs quantize`): it runs inference as it is; train or \
             load as {storage:?} from the f32 model it was made from",
            dir.display()
        )));
    }
    if trainable && !hub::WEIGHT_FILES.iter().any(|f| dir.join(f).is_file()) {
        return new_encoder(&cfg, device, trainable);
    }
    let weights = hub::find_weights(dir)?;
    let (tensors, saved) = match int8 {
        Some(_) => int8_checkpoint::read(&weights)?,
        None => (hub::read_tensors_as(&weights, storage)?, HashMap::new()),
    };
    let mut loaded = encoder_from_tensors(tensors, &cfg, &weights, device, trainable)?;
    if let Some(width) = int8 {
        load_int8(&mut loaded.model, saved, &loaded.prefix, width, &weights)?;
    }
    Ok(loaded)
}

/// The encoder of `cfg` built from the tensors of the checkpoint file `path`.
pub(crate) fn encoder_from_tensors(
    tensors: HashMap<String, candle_core::Tensor>,
    cfg: &BertConfig,
    path: &Path,
    device: &Device,
    trainable: bool,
) -> Result<LoadedEncoder> {
    let prefix = encoder_prefix(&tensors, cfg.model_type, path)?;
    let params = Params::from_tensors(tensors, path, device, trainable);
    let scoped = if prefix.is_empty() {
        params.clone()
    } else {
        params.pp(&prefix)
    };
    let model = BertModel::load(&scoped, cfg)?;
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

/// Puts the int8 layers of a `bert4rs quantize` checkpoint (`saved`, full names) into
/// `model`; an int8 tensor that is not one of the encoder's layers is an error.
fn load_int8(
    model: &mut BertModel,
    saved: HashMap<String, crate::kernels::Int8Weight>,
    prefix: &str,
    width: crate::kernels::qgemm::CodeWidth,
    file: &Path,
) -> Result<()> {
    let strip = |k: &str| match prefix {
        "" => Some(k.to_string()),
        p => k.strip_prefix(&format!("{p}.")).map(str::to_string),
    };
    let mut by_name = HashMap::with_capacity(saved.len());
    for (k, w) in saved {
        let name = strip(&k).ok_or_else(|| {
            Error::checkpoint(file, format!("int8 `{k}.weight` is outside the encoder"))
        })?;
        by_name.insert(name, w);
    }
    model
        .load_int8(&mut by_name, width)
        .map_err(|e| Error::checkpoint(file, e.to_string()))?;
    match by_name.keys().next() {
        Some(k) => Err(Error::checkpoint(
            file,
            format!("int8 `{k}.weight` is not a linear layer of the encoder"),
        )),
        None => Ok(()),
    }
}

/// A new encoder of `cfg`, initialised as HF does: normal(0, `initializer_range`) weights and
/// embeddings (the padding row zeroed), zero biases, unit LayerNorms.
fn new_encoder(cfg: &BertConfig, device: &Device, trainable: bool) -> Result<LoadedEncoder> {
    let params = Params::new_model(device, trainable, cfg.initializer_range);
    let mut model = BertModel::load(&params, cfg)?;
    let emb = model.embeddings().word_embeddings();
    let (table, name) = (emb.weight().detach(), emb.name().to_string());
    let rows = table.dim(0)?;
    if cfg.pad_token_id < rows {
        let mut keep = vec![1f32; rows];
        keep[cfg.pad_token_id] = 0.0;
        let keep = candle_core::Tensor::from_vec(keep, (rows, 1), device)?;
        let t = params.replace(&name, table.broadcast_mul(&keep)?)?;
        model.set_word_embeddings(t)?;
    }
    Ok(LoadedEncoder {
        model,
        params,
        prefix: String::new(),
        unused: Vec::new(),
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
        let arch = format!("{}Model", cfg.model_type.class_stem());
        cfg.extra
            .insert("architectures".into(), serde_json::json!([arch]));
        hub::save_pretrained(dir, &cfg.to_json()?, &self.params.named_tensors())
    }
}

/// Finds under which prefix the encoder's weights are stored.
pub(crate) fn encoder_prefix(
    tensors: &std::collections::HashMap<String, candle_core::Tensor>,
    model_type: ModelType,
    path: &Path,
) -> Result<String> {
    let probe = "embeddings.word_embeddings.weight";
    let family = model_type.base_model_prefix();
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
