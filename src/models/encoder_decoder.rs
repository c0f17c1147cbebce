//! HF `EncoderDecoderModel` for bert2bert: a BERT (or RoBERTa/NEZHA) encoder under
//! `encoder.*` and a [`BertLMHeadModel`] decoder with cross-attention under `decoder.*`,
//! configured by an [`EncoderDecoderConfig`]. Loaded and saved with HF's names and layout,
//! so `EncoderDecoderModel.from_pretrained` reads what we write and the other way round.
//! A warm start ([`EncoderDecoderModel::warm_start`]) builds one from two BERT checkpoints as
//! HF's `from_encoder_decoder_pretrained` does: cross-attention (and a missing LM-head
//! transform) initialised, everything else loaded.

use super::bert::decoder::repeat_interleave;
use super::bert::{BertDecoderCache, BertLMHeadModel, BertModel, EncoderInput};
use super::{encoder_prefix, hub};
use crate::config::{BertConfig, EncoderDecoderConfig};
use crate::error::{Error, Result};
use crate::nn::Params;
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// The ids a bert2bert model decodes with (from its tokenizer: `[CLS]`, `[PAD]`, `[SEP]`).
#[derive(Clone, Copy, Debug)]
pub struct Seq2SeqIds {
    /// First decoder input.
    pub decoder_start_token_id: u32,
    /// Filler of padded targets.
    pub pad_token_id: u32,
    /// End of a generated sequence.
    pub eos_token_id: u32,
}

/// A bert2bert encoder–decoder.
pub struct EncoderDecoderModel {
    encoder: BertModel,
    decoder: BertLMHeadModel,
    params: Params,
    config: EncoderDecoderConfig,
}

impl EncoderDecoderModel {
    /// Loads an HF `EncoderDecoderModel` directory. For training (`trainable`), a directory
    /// with only `config.json` gives a new model initialised as HF does.
    pub fn from_dir(dir: &Path, device: &Device, trainable: bool) -> Result<Self> {
        let config = EncoderDecoderConfig::from_file(&dir.join("config.json"))?;
        let params = if trainable && !hub::WEIGHT_FILES.iter().any(|f| dir.join(f).is_file()) {
            Params::new_model(device, trainable, config.decoder.initializer_range)
        } else {
            let weights = hub::find_weights(dir)?;
            Params::from_tensors(hub::read_tensors(&weights)?, &weights, device, trainable)
        };
        Self::build(params, config)
    }

    /// HF `from_encoder_decoder_pretrained`: the encoder from `encoder_dir`, the decoder from
    /// `decoder_dir` (its encoder weights become `decoder.bert.*`, an MLM head
    /// `decoder.cls.*`) with `is_decoder` and `add_cross_attention` set; the cross-attention
    /// blocks, which no encoder checkpoint has, start as HF initialises them.
    pub fn warm_start(
        encoder_dir: &Path,
        decoder_dir: &Path,
        ids: Seq2SeqIds,
        device: &Device,
        trainable: bool,
    ) -> Result<Self> {
        let encoder = BertConfig::from_file(&encoder_dir.join("config.json"))?;
        let mut decoder = BertConfig::from_file(&decoder_dir.join("config.json"))?;
        for flag in ["is_decoder", "add_cross_attention"] {
            decoder.extra.insert(flag.into(), true.into());
        }
        let mut extra = serde_json::Map::new();
        extra.insert(
            "architectures".into(),
            serde_json::json!(["EncoderDecoderModel"]),
        );
        let config = EncoderDecoderConfig {
            encoder,
            decoder,
            decoder_start_token_id: ids.decoder_start_token_id,
            pad_token_id: ids.pad_token_id,
            eos_token_id: Some(ids.eos_token_id),
            extra,
        };
        config
            .validate()
            .map_err(|m| Error::config(decoder_dir.join("config.json"), m))?;
        let mut merged = HashMap::new();
        let enc_path = hub::find_weights(encoder_dir)?;
        for (k, t) in strip_encoder(hub::read_tensors(&enc_path)?, &config.encoder, &enc_path)? {
            merged.insert(format!("encoder.{k}"), t);
        }
        let dec_path = hub::find_weights(decoder_dir)?;
        let dec = hub::read_tensors(&dec_path)?;
        for (k, t) in &dec {
            if k.starts_with("cls.predictions.") {
                merged.insert(format!("decoder.{k}"), t.clone());
            }
        }
        for (k, t) in strip_encoder(dec, &config.decoder, &dec_path)? {
            // BertLMHeadModel's BERT has no pooler.
            if !k.starts_with("pooler.") {
                merged.insert(format!("decoder.bert.{k}"), t);
            }
        }
        let params = Params::from_tensors(merged, &enc_path, device, trainable)
            .init_missing(config.decoder.initializer_range);
        Self::build(params, config)
    }

    fn build(params: Params, config: EncoderDecoderConfig) -> Result<Self> {
        let encoder = BertModel::load(&params.pp("encoder"), &config.encoder)?;
        let decoder = BertLMHeadModel::load(&params.pp("decoder"), &config.decoder)?;
        let (he, hd) = (config.encoder.hidden_size, config.decoder.hidden_size);
        if he != hd {
            return Err(Error::Invalid(format!(
                "encoder hidden_size {he} differs from the decoder's {hd}: bert2bert's \
                 cross-attention needs them equal"
            )));
        }
        Ok(EncoderDecoderModel {
            encoder,
            decoder,
            params,
            config,
        })
    }

    /// The config.
    pub fn config(&self) -> &EncoderDecoderConfig {
        &self.config
    }

    /// Every parameter by HF name.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The encoder.
    pub fn encoder(&self) -> &BertModel {
        &self.encoder
    }

    /// The decoder with its LM head.
    pub fn decoder(&self) -> &BertLMHeadModel {
        &self.decoder
    }

    /// The encoder's last hidden state `[batch, src, hidden]`.
    pub fn encode(&self, input: &EncoderInput, train: bool) -> Result<Tensor> {
        Ok(self.encoder.forward(input, train)?.last_hidden_state)
    }

    /// Logits `[batch, tgt, vocab]` of `decoder_input_ids` given the source (HF
    /// `EncoderDecoderModel.forward(...).logits`).
    pub fn forward(
        &self,
        input: &EncoderInput,
        decoder_input_ids: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let enc = self.encode(input, train)?;
        self.decoder
            .forward(decoder_input_ids, &enc, &input.attention_mask, train)
    }

    /// Teacher forcing on target ids (no start token; end them with `[SEP]` to teach the
    /// model to stop): the decoder reads `[start] + target[..n-1]` (HF `shift_tokens_right`)
    /// and the loss is the mean cross-entropy over every real target token, as HF's with
    /// `-100` on the padding. Targets are padded on the right, which the causal mask keeps
    /// from every real position, so padding changes nothing.
    pub fn loss(&self, input: &EncoderInput, targets: &[Vec<u32>], train: bool) -> Result<Tensor> {
        let b = input.input_ids.dim(0)?;
        if targets.len() != b || targets.iter().any(Vec::is_empty) {
            return Err(Error::Invalid(format!(
                "{} targets for {b} sources (each target needs at least one token)",
                targets.len()
            )));
        }
        let dev = input.input_ids.device();
        let t = targets.iter().map(Vec::len).max().unwrap_or(1);
        let (start, pad) = (self.config.decoder_start_token_id, self.config.pad_token_id);
        let mut inputs = Vec::with_capacity(b * t);
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for (r, y) in targets.iter().enumerate() {
            inputs.push(start);
            inputs.extend_from_slice(&y[..y.len() - 1]);
            inputs.extend(std::iter::repeat_n(pad, t - y.len()));
            rows.extend((0..y.len()).map(|i| (r * t + i) as u32));
            labels.extend_from_slice(y);
        }
        let ids = Tensor::from_vec(inputs, (b, t), dev)?;
        let enc = self.encode(input, train)?;
        let h = self
            .decoder
            .hidden_states(&ids, &enc, &input.attention_mask, train)?;
        let d = h.dim(2)?;
        let n = rows.len();
        let picked = h
            .reshape((b * t, d))?
            .index_select(&Tensor::from_vec(rows, n, dev)?, 0)?;
        let logits = self.decoder.logits(&picked)?;
        let labels = Tensor::from_vec(labels, n, dev)?;
        Ok(candle_nn::loss::cross_entropy(&logits, &labels)?)
    }

    /// A decoding cache for `rows_per_input` sequences per input (beams, samples) of the
    /// encoder output `enc` (mask `mask`).
    pub fn new_cache(
        &self,
        enc: &Tensor,
        mask: &Tensor,
        rows_per_input: usize,
    ) -> Result<BertDecoderCache> {
        self.decoder.new_cache(enc, mask, rows_per_input)
    }

    /// Writes `config.json` and `model.safetensors` as HF `EncoderDecoderModel` does (tied
    /// decoder weights not stored), atomically.
    pub fn save_pretrained(&self, dir: &Path) -> Result<()> {
        hub::save_pretrained(dir, &self.config.to_json()?, &self.params.named_tensors())
    }
}

/// Each row of `enc` `[n, src, h]` and `mask` `[n, src]` repeated `k` times in place
/// (`repeat_interleave`), as generation expands inputs for beams.
pub fn repeat_rows(enc: &Tensor, mask: &Tensor, k: usize) -> Result<(Tensor, Tensor)> {
    Ok((
        repeat_interleave(enc, k)?,
        repeat_interleave(&mask.to_dtype(DType::F32)?, k)?,
    ))
}

/// A BERT checkpoint's encoder tensors with their prefix (`bert.`, `roberta.`) removed; task
/// heads are left out.
fn strip_encoder(
    tensors: HashMap<String, Tensor>,
    cfg: &BertConfig,
    path: &Path,
) -> Result<Vec<(String, Tensor)>> {
    let prefix = encoder_prefix(&tensors, cfg.model_type, path)?;
    let keep = |k: &str| -> Option<String> {
        let k = match prefix.is_empty() {
            true => k,
            false => k.strip_prefix(&prefix)?.strip_prefix('.')?,
        };
        let encoder_part = ["embeddings.", "encoder.", "pooler."];
        encoder_part
            .iter()
            .any(|p| k.starts_with(p))
            .then(|| k.to_string())
    };
    Ok(tensors
        .into_iter()
        .filter_map(|(k, t)| keep(&k).map(|k| (k, t)))
        .collect())
}
