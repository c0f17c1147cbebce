//! Sentence embeddings: tokenizer + encoder + pooling (+ L2 normalisation), with defaults
//! read from a sentence-transformers layout (`modules.json`, `1_Pooling/config.json`,
//! `sentence_bert_config.json`) when the directory has one.

use crate::data::batch::{length_sorted_batches, to_encoder_input};
use crate::error::{Error, Result};
use crate::models::{bert::BertModel, load_encoder};
use crate::nn::{Pooler, Pooling};
use crate::tokenize::{EncodeOptions, Padding, TextInput, Tokenizer, Truncation};
use candle_core::{Device, Tensor, D};
use serde_json::Value;
use std::path::Path;

/// Embedding defaults a sentence-transformers directory declares.
#[derive(Clone, Debug, PartialEq)]
pub struct SentenceTransformersConfig {
    /// Pooling from `1_Pooling/config.json`.
    pub pooling: Pooling,
    /// True when `modules.json` lists a `Normalize` module.
    pub normalize: bool,
    /// `max_seq_length` from `sentence_bert_config.json`.
    pub max_seq_length: Option<usize>,
}

/// Reads the sentence-transformers files of `dir`; `None` when it has no `modules.json`.
pub fn read_st_config(dir: &Path) -> Result<Option<SentenceTransformersConfig>> {
    let modules_path = dir.join("modules.json");
    if !modules_path.is_file() {
        return Ok(None);
    }
    let modules = read_json(&modules_path)?;
    let list = modules
        .as_array()
        .ok_or_else(|| Error::config(&modules_path, "expected a JSON list of modules"))?;
    let mut pooling = Pooling::Mean;
    let mut normalize = false;
    for m in list {
        let ty = m.get("type").and_then(Value::as_str).unwrap_or("");
        let sub = m.get("path").and_then(Value::as_str).unwrap_or("");
        if ty.ends_with("Pooling") {
            pooling = pooling_from_st(&dir.join(sub).join("config.json"))?;
        } else if ty.ends_with("Normalize") {
            normalize = true;
        }
    }
    let sbert = dir.join("sentence_bert_config.json");
    let max_seq_length = if sbert.is_file() {
        read_json(&sbert)?
            .get("max_seq_length")
            .and_then(Value::as_u64)
            .map(|n| n as usize)
    } else {
        None
    };
    Ok(Some(SentenceTransformersConfig {
        pooling,
        normalize,
        max_seq_length,
    }))
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::config(path, format!("not valid JSON: {e}")))
}

fn pooling_from_st(path: &Path) -> Result<Pooling> {
    let v = read_json(path)?;
    let on = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    let modes = [
        ("pooling_mode_cls_token", Pooling::Cls),
        ("pooling_mode_mean_tokens", Pooling::Mean),
        ("pooling_mode_max_tokens", Pooling::Max),
    ];
    let chosen: Vec<Pooling> = modes
        .iter()
        .filter(|(k, _)| on(k))
        .map(|(_, p)| *p)
        .collect();
    match chosen.as_slice() {
        [one] => Ok(*one),
        _ => Err(Error::config(
            path,
            "exactly one of pooling_mode_cls_token / mean_tokens / max_tokens must be true \
             (other sentence-transformers modes are not supported)",
        )),
    }
}

/// Tokenizer + encoder + pooler: text in, vectors out.
pub struct SentenceEncoder {
    /// The tokenizer.
    pub tokenizer: Tokenizer,
    /// The encoder.
    pub model: BertModel,
    pooler: Pooler,
    /// L2-normalise each vector.
    pub normalize: bool,
    /// Truncate inputs to this many tokens (`None`: error when a text is too long).
    pub max_length: Option<usize>,
    /// Texts per forward pass.
    pub batch_size: usize,
    device: Device,
}

impl SentenceEncoder {
    /// Loads a model directory with its sentence-transformers defaults (mean pooling,
    /// no normalisation, no truncation when it has none) on the CPU.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let st = read_st_config(dir)?;
        let pooling = st.as_ref().map(|s| s.pooling).unwrap_or(Pooling::Mean);
        let mut enc = Self::with_pooling(dir, pooling, &Device::Cpu)?;
        if let Some(st) = st {
            enc.normalize = st.normalize;
            enc.max_length = st.max_seq_length;
        }
        Ok(enc)
    }

    /// Loads a model directory with an explicit pooling mode.
    pub fn with_pooling(dir: &Path, pooling: Pooling, device: &Device) -> Result<Self> {
        let tokenizer = Tokenizer::from_dir(dir)?;
        let loaded = load_encoder(dir, device, false)?;
        let cfg = loaded.model.config().clone();
        let pooler = Pooler::new(
            pooling,
            &loaded.params.pp("pooling"),
            cfg.hidden_size,
            cfg.num_hidden_layers,
            cfg.initializer_range,
        )?;
        if pooling == Pooling::Pooler && !loaded.model.has_pooler() {
            return Err(Error::checkpoint(
                loaded.params.source_path(),
                "pooling `pooler` needs `pooler.dense.weight`, which this checkpoint lacks",
            ));
        }
        Ok(SentenceEncoder {
            tokenizer,
            model: loaded.model,
            pooler,
            normalize: false,
            max_length: None,
            batch_size: 32,
            device: device.clone(),
        })
    }

    /// The pooling mode.
    pub fn pooling(&self) -> Pooling {
        self.pooler.kind()
    }

    /// Embeds texts; one vector per text, in input order.
    pub fn embed<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>> {
        let inputs: Vec<TextInput> = texts
            .iter()
            .map(|t| TextInput::single(t.as_ref()))
            .collect();
        self.embed_inputs(&inputs, |_| {})
    }

    /// Embeds texts or pairs, sorted by length and batched internally; `progress` is told
    /// how many inputs each finished batch held.
    pub fn embed_inputs(
        &self,
        inputs: &[TextInput],
        progress: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
        let opts = EncodeOptions {
            max_length: self.max_length,
            padding: Padding::None,
            truncation: self.max_length.map(|_| Truncation::LongestFirst),
        };
        let encs = self.tokenizer.encode_batch(inputs, &opts)?;
        self.embed_tokenized(&encs, progress)
    }

    /// Embeds unpadded encodings (one per text, as the tokenizer gave them): sorted by
    /// length into batches of `batch_size`, each padded only to its own longest row, so
    /// mixed lengths cost little padding (the server's dynamic batches come this way).
    pub fn embed_tokenized(
        &self,
        encs: &[crate::tokenize::Encoding],
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
        let lengths: Vec<usize> = encs.iter().map(|e| e.input_ids.len()).collect();
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); encs.len()];
        for batch in length_sorted_batches(&lengths, self.batch_size) {
            let padded = crate::data::batch::pad_batch(
                &batch.iter().map(|&i| encs[i].clone()).collect::<Vec<_>>(),
                self.pad_id(),
            );
            let vecs = self.embed_encodings(&padded)?;
            for (row, &i) in vecs.into_iter().zip(&batch) {
                out[i] = row;
            }
            progress(batch.len());
        }
        Ok(out)
    }

    fn pad_id(&self) -> u32 {
        self.model.config().pad_token_id as u32
    }

    /// Embeds already padded encodings.
    pub fn embed_encodings(&self, encs: &[crate::tokenize::Encoding]) -> Result<Vec<Vec<f32>>> {
        let input = to_encoder_input(encs, &self.device)?;
        let out = self.model.forward(&input, false)?;
        let mut pooled = self.pooler.forward(
            &out.hidden_states,
            out.pooler_output.as_ref(),
            &input.attention_mask,
        )?;
        if self.normalize {
            pooled = l2_normalize(&pooled)?;
        }
        Ok(pooled.to_vec2::<f32>()?)
    }
}

/// Divides each row by its L2 norm (as `torch.nn.functional.normalize`, eps 1e-12).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::INFINITY)?;
    Ok(x.broadcast_div(&norm)?)
}

/// Cosine similarity of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(1e-12)
}
