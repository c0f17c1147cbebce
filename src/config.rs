//! Model configuration: structs that deserialize a HuggingFace `config.json` directly.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Encoder families this crate can load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelType {
    /// BERT and BERT-shaped models (MiniLM, MacBERT, ...).
    Bert,
    /// RoBERTa: BERT blocks, position ids offset past the padding index.
    Roberta,
    /// NEZHA: BERT blocks with functional (sinusoidal, clipped) relative positions in every
    /// attention and no absolute position table.
    Nezha,
}

impl ModelType {
    /// Where a task checkpoint stores the encoder (HF's `base_model_prefix`).
    pub fn base_model_prefix(self) -> &'static str {
        match self {
            ModelType::Bert => "bert",
            ModelType::Roberta => "roberta",
            ModelType::Nezha => "nezha",
        }
    }

    /// The stem of HF's class names (`BertModel`, `RobertaForSequenceClassification`, ...).
    pub fn class_stem(self) -> &'static str {
        match self {
            ModelType::Bert => "Bert",
            ModelType::Roberta => "Roberta",
            ModelType::Nezha => "Nezha",
        }
    }
}

/// Feed-forward activations found in BERT-family configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HiddenAct {
    /// Exact GELU, `x * Φ(x)` with the error function (HF `"gelu"`).
    Gelu,
    /// Tanh approximation of GELU (HF `"gelu_new"` / `"gelu_pytorch_tanh"`).
    #[serde(alias = "gelu_pytorch_tanh")]
    GeluNew,
    /// Rectified linear unit.
    Relu,
}

/// A BERT/RoBERTa `config.json`, field for field. Unknown fields are kept so that a saved
/// config round-trips (labels, architectures, tokenizer hints ...).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BertConfig {
    /// `bert` or `roberta`.
    pub model_type: ModelType,
    /// Rows of the word-embedding table.
    pub vocab_size: usize,
    /// Width of every hidden state.
    pub hidden_size: usize,
    /// Number of transformer blocks.
    pub num_hidden_layers: usize,
    /// Attention heads per block; must divide `hidden_size`.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Feed-forward activation.
    #[serde(default = "default_act")]
    pub hidden_act: HiddenAct,
    /// Dropout after embeddings, attention output and feed-forward output.
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    /// Dropout on the attention probabilities.
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    /// Rows of the position table: the longest input the model accepts.
    pub max_position_embeddings: usize,
    /// Rows of the segment (token type) table.
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// Std of the normal init used for new weights.
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    /// LayerNorm epsilon.
    #[serde(default = "default_ln_eps")]
    pub layer_norm_eps: f64,
    /// Id of the padding token (RoBERTa positions start after it).
    #[serde(default)]
    pub pad_token_id: usize,
    /// NEZHA: the largest relative distance with its own encoding (farther ones are clipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_relative_position: Option<usize>,
    /// Only `absolute` positions are supported.
    #[serde(default = "default_position_type")]
    pub position_embedding_type: String,
    /// Heads removed from each layer, by layer index, numbered as in the unpruned model
    /// (HF's `pruned_heads`, written by `prune_heads`): those layers' Q/K/V have fewer rows
    /// and their attention output fewer columns.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pruned_heads: BTreeMap<usize, Vec<usize>>,
    /// Every other field of the file, written back unchanged on save.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn default_act() -> HiddenAct {
    HiddenAct::Gelu
}
fn default_dropout() -> f64 {
    0.1
}
fn default_type_vocab() -> usize {
    2
}
fn default_init_range() -> f64 {
    0.02
}
fn default_ln_eps() -> f64 {
    1e-12
}
/// The `config.json` flag of a fixed sinusoidal position table.
const SINUSOIDAL_KEY: &str = "sinusoidal_position_embeddings";

fn default_position_type() -> String {
    "absolute".into()
}

impl BertConfig {
    /// Reads and validates `config.json`; every error names the file and the field.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_value(read_json(path)?, path)
    }

    /// Parses and validates a config already read from `path` (a sub-config of an
    /// encoder–decoder, say); errors name `path`.
    pub fn from_value(raw: serde_json::Value, path: &Path) -> Result<Self> {
        match raw.get("model_type").and_then(|v| v.as_str()) {
            Some("bert") | Some("roberta") => {}
            Some("nezha") if raw.get("max_relative_position").is_none() => {
                return Err(Error::config(
                    path,
                    "missing field `max_relative_position`: a NEZHA config must say how far its \
                     relative positions reach (NezhaConfig's default is 64)",
                ))
            }
            Some("nezha") => {}
            Some(other) => {
                return Err(Error::config(
                    path,
                    format!("unsupported model_type {other:?}: bert4rs encoders load \"bert\", \"roberta\" or \"nezha\""),
                ))
            }
            None => return Err(Error::config(path, "missing field `model_type`")),
        }
        let mut cfg: BertConfig =
            serde_json::from_value(raw).map_err(|e| Error::config(path, e.to_string()))?;
        if cfg.position_embedding_type == "sinusoidal" {
            // Saved as HF's absolute table (so `transformers` loads it) plus our flag.
            cfg.position_embedding_type = default_position_type();
            cfg.extra
                .insert(SINUSOIDAL_KEY.into(), serde_json::Value::Bool(true));
        }
        cfg.validate().map_err(|msg| Error::config(path, msg))?;
        Ok(cfg)
    }

    /// Checks the relations between fields that serde cannot.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.position_embedding_type != "absolute" {
            return Err(format!(
                "position_embedding_type {:?} is not supported (\"absolute\", or \"sinusoidal\" for a new model)",
                self.position_embedding_type
            ));
        }
        if self.model_type == ModelType::Nezha && self.max_relative_position.unwrap_or(0) == 0 {
            return Err("max_relative_position must be > 0 for model_type \"nezha\"".into());
        }
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("intermediate_size", self.intermediate_size),
        ] {
            if v == 0 {
                return Err(format!("{name} must be > 0"));
            }
        }
        self.validate_pruned_heads()
    }

    /// `pruned_heads`: layers and heads that exist, none repeated, one head left per layer.
    fn validate_pruned_heads(&self) -> std::result::Result<(), String> {
        let heads = self.num_attention_heads;
        for (&layer, pruned) in &self.pruned_heads {
            if layer >= self.num_hidden_layers {
                return Err(format!(
                    "pruned_heads names layer {layer}, but the model has {} layers",
                    self.num_hidden_layers
                ));
            }
            let mut seen = vec![false; heads];
            for &h in pruned {
                if h >= heads {
                    return Err(format!(
                        "pruned_heads[{layer}] names head {h}, but layers have {heads} heads"
                    ));
                }
                if std::mem::replace(&mut seen[h], true) {
                    return Err(format!("pruned_heads[{layer}] lists head {h} twice"));
                }
            }
            if pruned.len() == heads {
                return Err(format!(
                    "pruned_heads[{layer}] removes all {heads} heads; keep at least one per layer"
                ));
            }
        }
        Ok(())
    }

    /// The heads layer `layer` still has, numbered as in the unpruned model, in order.
    pub fn kept_heads(&self, layer: usize) -> Vec<usize> {
        let pruned = self.pruned_heads.get(&layer);
        (0..self.num_attention_heads)
            .filter(|h| !pruned.is_some_and(|p| p.contains(h)))
            .collect()
    }

    /// True when the position table is the fixed sinusoidal one (config
    /// `position_embedding_type = "sinusoidal"` for a new model; saved as
    /// `"absolute"` + `"sinusoidal_position_embeddings": true`).
    pub fn sinusoidal_positions(&self) -> bool {
        self.extra.get(SINUSOIDAL_KEY).and_then(|v| v.as_bool()) == Some(true)
    }

    /// Size of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// First position id used for real tokens (RoBERTa skips `0..=pad_token_id`).
    pub fn position_offset(&self) -> usize {
        match self.model_type {
            ModelType::Bert | ModelType::Nezha => 0,
            ModelType::Roberta => self.pad_token_id + 1,
        }
    }

    /// Longest token sequence the position table can hold (NEZHA: as long as transformers'
    /// precomputed relative table, `max_position_embeddings`).
    pub fn max_sequence_length(&self) -> usize {
        self.max_position_embeddings
            .saturating_sub(self.position_offset())
    }

    /// Serializes back to the HF JSON form.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| Error::Invalid(e.to_string()))
    }
}

/// Reads a JSON file; errors name it.
pub fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::config(path, format!("not valid JSON: {e}")))
}

/// A GPT-2 `config.json` (HF `GPT2Config`), field for field; unknown fields round-trip.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gpt2Config {
    /// Always `gpt2`.
    pub model_type: String,
    /// Rows of the token table (and columns of the tied LM head).
    pub vocab_size: usize,
    /// Rows of the learned position table: the longest sequence the model accepts.
    pub n_positions: usize,
    /// Width of every hidden state.
    pub n_embd: usize,
    /// Number of blocks.
    pub n_layer: usize,
    /// Attention heads per block; must divide `n_embd`.
    pub n_head: usize,
    /// Width of the feed-forward layer (`null` → 4 · n_embd).
    #[serde(default)]
    pub n_inner: Option<usize>,
    /// Feed-forward activation (`gelu_new` in every released GPT-2).
    #[serde(default = "default_gpt2_act")]
    pub activation_function: HiddenAct,
    /// Dropout after the attention and MLP projections.
    #[serde(default = "default_dropout")]
    pub resid_pdrop: f64,
    /// Dropout after the embeddings.
    #[serde(default = "default_dropout")]
    pub embd_pdrop: f64,
    /// Dropout on the attention probabilities.
    #[serde(default = "default_dropout")]
    pub attn_pdrop: f64,
    /// LayerNorm epsilon.
    #[serde(default = "default_gpt2_ln_eps")]
    pub layer_norm_epsilon: f64,
    /// Std of the normal init of new weights.
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    /// Divide attention scores by √head_dim.
    #[serde(default = "default_true")]
    pub scale_attn_weights: bool,
    /// Also divide attention scores of block `i` by `i + 1`.
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: bool,
    /// Start-of-text id.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// End-of-text id: generation stops here and pads with it.
    #[serde(default)]
    pub eos_token_id: Option<u32>,
    /// bert4rs extension: sparse attention with stride `k` (each token sees the previous `k`
    /// tokens and every `k`-th one before them). Not an HF field: `transformers` ignores it
    /// and would run dense attention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse_attention_stride: Option<usize>,
    /// Every other field of the file, written back unchanged on save.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn default_gpt2_act() -> HiddenAct {
    HiddenAct::GeluNew
}
fn default_gpt2_ln_eps() -> f64 {
    1e-5
}
fn default_true() -> bool {
    true
}

impl Gpt2Config {
    /// Reads and validates a GPT-2 `config.json`; errors name the file and the field.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_value(read_json(path)?, path)
    }

    /// Parses and validates a config already read from `path` (a sub-config of an
    /// encoder–decoder, say); errors name `path`.
    pub fn from_value(raw: serde_json::Value, path: &Path) -> Result<Self> {
        match raw.get("model_type").and_then(|v| v.as_str()) {
            Some("gpt2") => {}
            Some(other) => {
                return Err(Error::config(
                    path,
                    format!("unsupported model_type {other:?}: a causal LM must be \"gpt2\""),
                ))
            }
            None => return Err(Error::config(path, "missing field `model_type`")),
        }
        let cfg: Gpt2Config =
            serde_json::from_value(raw).map_err(|e| Error::config(path, e.to_string()))?;
        cfg.validate().map_err(|msg| Error::config(path, msg))?;
        Ok(cfg)
    }

    /// Checks the relations between fields that serde cannot.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.n_head == 0 || !self.n_embd.is_multiple_of(self.n_head) {
            return Err(format!(
                "n_embd {} is not divisible by n_head {}",
                self.n_embd, self.n_head
            ));
        }
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("n_embd", self.n_embd),
            ("n_positions", self.n_positions),
            ("n_layer", self.n_layer),
        ] {
            if v == 0 {
                return Err(format!("{name} must be > 0"));
            }
        }
        if self
            .eos_token_id
            .is_some_and(|e| e as usize >= self.vocab_size)
        {
            return Err(format!(
                "eos_token_id {:?} is outside the vocabulary of {}",
                self.eos_token_id, self.vocab_size
            ));
        }
        Ok(())
    }

    /// Size of one attention head.
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Width of the feed-forward layer.
    pub fn inner_dim(&self) -> usize {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }

    /// Serializes back to the HF JSON form.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| Error::Invalid(e.to_string()))
    }
}

/// An HF `EncoderDecoderConfig` (`model_type` `"encoder-decoder"`, as bert2bert saves it):
/// the encoder's and the decoder's configs and the ids generation needs. Unknown top-level
/// fields round-trip.
#[derive(Debug, Clone)]
pub struct EncoderDecoderConfig {
    /// The encoder (`bert`, `roberta` or `nezha`).
    pub encoder: BertConfig,
    /// The decoder: a `bert` config with `is_decoder` and `add_cross_attention` true.
    pub decoder: BertConfig,
    /// First decoder input (bert2bert: `[CLS]`).
    pub decoder_start_token_id: u32,
    /// Filler of padded labels (HF's `shift_tokens_right` turns `-100` into it).
    pub pad_token_id: u32,
    /// Where generation stops (bert2bert: `[SEP]`).
    pub eos_token_id: Option<u32>,
    /// Every other top-level field, written back on save.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl EncoderDecoderConfig {
    /// Reads and validates an encoder–decoder `config.json`; errors name the file and field.
    pub fn from_file(path: &Path) -> Result<Self> {
        let raw = read_json(path)?;
        let serde_json::Value::Object(mut top) = raw else {
            return Err(Error::config(path, "expected a JSON object"));
        };
        match top.get("model_type").and_then(|v| v.as_str()) {
            Some("encoder-decoder") => {}
            other => {
                return Err(Error::config(
                    path,
                    format!(
                        "model_type {other:?}: an encoder–decoder config says \"encoder-decoder\""
                    ),
                ))
            }
        }
        let mut part = |name: &str| match top.remove(name) {
            Some(v) => BertConfig::from_value(v, path),
            None => Err(Error::config(path, format!("missing field `{name}`"))),
        };
        let (encoder, decoder) = (part("encoder")?, part("decoder")?);
        let id = |name: &str| -> Result<Option<u32>> {
            match top.get(name) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .and_then(|i| u32::try_from(i).ok())
                    .map(Some)
                    .ok_or_else(|| Error::config(path, format!("`{name}` must be a token id"))),
            }
        };
        let need = |name: &str, hint: &str| -> Result<u32> {
            id(name)?.ok_or_else(|| Error::config(path, format!("missing field `{name}` ({hint})")))
        };
        let cfg = EncoderDecoderConfig {
            decoder_start_token_id: need("decoder_start_token_id", "bert2bert uses the [CLS] id")?,
            pad_token_id: need("pad_token_id", "the [PAD] id")?,
            eos_token_id: id("eos_token_id")?,
            encoder,
            decoder,
            extra: serde_json::Map::new(),
        };
        for k in ["decoder_start_token_id", "pad_token_id", "eos_token_id"] {
            top.remove(k);
        }
        let cfg = EncoderDecoderConfig { extra: top, ..cfg };
        cfg.validate().map_err(|m| Error::config(path, m))?;
        Ok(cfg)
    }

    /// Checks what the decoder must be and that the ids fit the vocabularies.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let d = &self.decoder;
        if d.model_type != ModelType::Bert {
            return Err("decoder.model_type must be \"bert\" (a BERT decoder)".into());
        }
        for flag in ["is_decoder", "add_cross_attention"] {
            if d.extra.get(flag) != Some(&serde_json::Value::Bool(true)) {
                return Err(format!(
                    "decoder.{flag} must be true for an encoder–decoder"
                ));
            }
        }
        for (name, id) in [
            ("decoder_start_token_id", Some(self.decoder_start_token_id)),
            ("pad_token_id", Some(self.pad_token_id)),
            ("eos_token_id", self.eos_token_id),
        ] {
            if let Some(i) = id.filter(|&i| i as usize >= d.vocab_size) {
                return Err(format!(
                    "{name} {i} is outside the decoder's vocabulary of {}",
                    d.vocab_size
                ));
            }
        }
        Ok(())
    }

    /// The HF JSON form (`EncoderDecoderConfig.to_dict`'s fields).
    pub fn to_json(&self) -> Result<String> {
        let mut top = self.extra.clone();
        let part =
            |c: &BertConfig| serde_json::to_value(c).map_err(|e| Error::Invalid(e.to_string()));
        top.insert("model_type".into(), "encoder-decoder".into());
        top.insert("is_encoder_decoder".into(), true.into());
        top.insert("encoder".into(), part(&self.encoder)?);
        top.insert("decoder".into(), part(&self.decoder)?);
        top.insert(
            "decoder_start_token_id".into(),
            self.decoder_start_token_id.into(),
        );
        top.insert("pad_token_id".into(), self.pad_token_id.into());
        if let Some(e) = self.eos_token_id {
            top.insert("eos_token_id".into(), e.into());
        }
        serde_json::to_string_pretty(&top).map_err(|e| Error::Invalid(e.to_string()))
    }
}
