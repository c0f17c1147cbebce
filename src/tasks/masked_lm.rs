//! Masked language modelling with HF's `BertForMaskedLM`: the encoder (no pooler), then
//! `cls.predictions.transform` (dense → activation → LayerNorm) and the decoder, whose weight
//! is the word-embedding table (tied, as HF ties it) plus `cls.predictions.bias`. With a
//! sentence-pair objective it is `BertForPreTraining`: the pooler and
//! `cls.seq_relationship` (a 2-way linear on the pooled `[CLS]`) as well. Saved directories
//! use HF's names, so `transformers` loads them as either class; the fill-mask predictions
//! of [`MaskedLm::fill_mask`] are the ones HF's `fill-mask` pipeline returns.

use crate::config::ModelType;
use crate::error::{Error, Result};
use crate::models::bert::{BertLMPredictionHead, BertModel, EncoderInput};
use crate::models::{hub, load_encoder};
use crate::nn::{Init, Linear, Params};
use candle_core::{Device, Tensor, Var, D};
use std::path::Path;

/// The name of learned prompt-token embeddings ([`MaskedLm::add_prompt_rows`]).
pub const PROMPT_ROWS: &str = "prompt_embeddings.weight";

/// The top-k `(token id, probability)` pairs of one mask, most likely first.
pub type Candidates = Vec<(u32, f32)>;

/// A BERT encoder with HF's masked-LM head.
pub struct MaskedLm {
    encoder: BertModel,
    head: BertLMPredictionHead,
    /// `cls.seq_relationship` (BertForPreTraining's NSP / SOP head), when trained.
    seq_relationship: Option<Linear>,
    params: Params,
    /// `"bert"` (HF's task layout) or `""` (a bare encoder checkpoint, saved as `bert.*`).
    prefix: String,
}

impl MaskedLm {
    /// Loads `dir`: a checkpoint with weights (a missing `cls.predictions` head is
    /// initialised), or, to train (`trainable`), a directory with only `config.json`, which
    /// gives a new model initialised as HF does (seeded by `rng::seed_init`; see
    /// [`load_encoder`]).
    pub fn from_dir(dir: &Path, device: &Device, trainable: bool) -> Result<Self> {
        Self::load(dir, device, trainable, false)
    }

    /// As [`Self::from_dir`], with BertForPreTraining's pooler and next-sentence head
    /// (loaded, or initialised as HF does when the checkpoint lacks them).
    pub fn for_pretraining(dir: &Path, device: &Device, trainable: bool) -> Result<Self> {
        Self::load(dir, device, trainable, true)
    }

    fn load(dir: &Path, device: &Device, trainable: bool, next_sentence: bool) -> Result<Self> {
        let mut loaded = load_encoder(dir, device, trainable)?;
        if loaded.model.config().model_type != ModelType::Bert {
            return Err(Error::config(
                dir.join("config.json"),
                "masked-LM training supports model_type \"bert\"",
            ));
        }
        if next_sentence {
            let scope = match loaded.prefix.as_str() {
                "" => loaded.params.clone(),
                p => loaded.params.pp(p),
            };
            loaded.model.ensure_pooler(&scope)?;
        } else if loaded.model.drop_pooler() {
            // Neither trained nor saved, as HF's BertForMaskedLM has no pooler.
            for w in ["weight", "bias"] {
                let name = format!("pooler.dense.{w}");
                loaded.params.remove(&match loaded.prefix.as_str() {
                    "" => name,
                    p => format!("{p}.{name}"),
                });
            }
        }
        let (encoder, params, prefix) = (loaded.model, loaded.params, loaded.prefix);
        Self::with_head(encoder, params, prefix, next_sentence)
    }

    fn with_head(
        encoder: BertModel,
        params: Params,
        prefix: String,
        next_sentence: bool,
    ) -> Result<Self> {
        let cfg = encoder.config().clone();
        let (h, std) = (cfg.hidden_size, cfg.initializer_range);
        let table = encoder.embeddings().word_embeddings().weight().clone();
        let head = BertLMPredictionHead::load(&params.pp("cls.predictions"), &cfg, table)?;
        let pairs = params.pp("cls.seq_relationship");
        let seq_relationship = match next_sentence {
            true => Some(Linear::load_or_init(&pairs, h, 2, std)?),
            false => {
                // Read by BertForPreTraining only; a masked-LM model neither trains nor saves it.
                pairs.discard("weight");
                pairs.discard("bias");
                None
            }
        };
        Ok(MaskedLm {
            head,
            seq_relationship,
            encoder,
            params,
            prefix,
        })
    }

    /// The encoder.
    pub fn encoder(&self) -> &BertModel {
        &self.encoder
    }

    /// Every parameter by its HF name.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The trainable handles, by HF name.
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.params.vars()
    }

    /// Vocabulary logits `[batch, seq, vocab]` at every position.
    pub fn forward(&self, input: &EncoderInput, train: bool) -> Result<Tensor> {
        let h = self.encoder.forward(input, train)?.last_hidden_state;
        self.head(&h)
    }

    /// Vocabulary logits `[n, vocab]` at the flattened positions `rows` (`b·seq + t`) only:
    /// training scores just the masked tokens, which is the same loss as HF's over all
    /// positions with `-100` labels, at a fraction of the decoder's cost.
    pub fn forward_at(&self, input: &EncoderInput, rows: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.forward_pretraining(input, rows, train)?.0)
    }

    /// [`Self::forward_at`] and, with a next-sentence head, its logits `[batch, 2]`
    /// (HF's `seq_relationship_logits`).
    pub fn forward_pretraining(
        &self,
        input: &EncoderInput,
        rows: &Tensor,
        train: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let out = self.encoder.forward(input, train)?;
        let h = out.last_hidden_state;
        let (b, t, d) = h.dims3()?;
        let picked = h.reshape((b * t, d))?.index_select(rows, 0)?;
        let pairs = match (&self.seq_relationship, &out.pooler_output) {
            (Some(head), Some(pooled)) => Some(head.forward(pooled)?),
            _ => None,
        };
        Ok((self.head(&picked)?, pairs))
    }

    /// True when the model has BertForPreTraining's next-sentence head.
    pub fn has_next_sentence_head(&self) -> bool {
        self.seq_relationship.is_some()
    }

    fn head(&self, h: &Tensor) -> Result<Tensor> {
        self.head.forward(h)
    }

    /// The top `k` tokens and probabilities at every `mask_id` position of each row, in
    /// row order then position order (HF's `fill-mask` pipeline: softmax over the
    /// vocabulary, then top-k).
    pub fn fill_mask(
        &self,
        input: &EncoderInput,
        mask_id: u32,
        k: usize,
    ) -> Result<Vec<Vec<Candidates>>> {
        let ids = input.input_ids.to_vec2::<u32>()?;
        let logits = self.forward(input, false)?;
        let probs = candle_nn::ops::softmax(&logits, D::Minus1)?;
        let mut out = Vec::with_capacity(ids.len());
        for (b, row) in ids.iter().enumerate() {
            let mut masks = Vec::new();
            for (t, &id) in row.iter().enumerate() {
                if id == mask_id {
                    let p = probs.get(b)?.get(t)?.to_vec1::<f32>()?;
                    masks.push(top_k(&p, k));
                }
            }
            out.push(masks);
        }
        Ok(out)
    }

    /// Writes an HF `BertForMaskedLM` directory (`config.json`, `model.safetensors` with
    /// `bert.*` and `cls.predictions.*`; the tied decoder weight is not stored, as HF's
    /// `save_pretrained` drops it), atomically; `BertForPreTraining` (plus the pooler and
    /// `cls.seq_relationship.*`) with a next-sentence head.
    pub fn save_pretrained(&self, dir: &Path) -> Result<()> {
        let mut cfg = self.encoder.config().clone();
        let arch = match self.seq_relationship {
            Some(_) => "BertForPreTraining",
            None => "BertForMaskedLM",
        };
        cfg.extra
            .insert("architectures".into(), serde_json::json!([arch]));
        hub::save_pretrained(dir, &cfg.to_json()?, &self.named_tensors())
    }

    /// Every parameter under the name HF's `BertForMaskedLM` gives it.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        self.params
            .named_tensors()
            .into_iter()
            .map(|(k, t)| (self.saved_name(&k), t))
            .collect()
    }

    /// The HF name of a parameter as [`Self::named_tensors`] writes it.
    pub fn saved_name(&self, name: &str) -> String {
        let outside_encoder = name.starts_with("cls.") || name.starts_with(PROMPT_ROWS);
        match self.prefix.is_empty() && !outside_encoder {
            true => format!("bert.{name}"),
            false => name.to_string(),
        }
    }

    /// Appends `n` learned prompt-token rows to the word embeddings (ids `vocab_size..`),
    /// stored as `prompt_embeddings.weight` beside the encoder (so `optimizer.freeze =
    /// ["embeddings", "encoder", "cls"]` trains them alone); loaded when the checkpoint has
    /// them, else drawn
    /// as HF draws new embeddings, normal(0, `initializer_range`).
    pub fn add_prompt_rows(&mut self, n: usize) -> Result<()> {
        let cfg = self.encoder.config();
        let (h, std) = (cfg.hidden_size, cfg.initializer_range);
        let rows = self
            .params
            .get_or_init((n, h), PROMPT_ROWS, Init::Normal(std))?;
        self.encoder.set_extra_word_rows(rows)
    }

    /// The encoder's parameter prefix (`""` or `"bert"`).
    pub fn encoder_prefix(&self) -> &str {
        &self.prefix
    }
}

/// The `k` largest probabilities with their ids, highest first (ties: lower id first).
pub fn top_k(p: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut idx: Vec<u32> = (0..p.len() as u32).collect();
    let k = k.min(p.len());
    if k == 0 {
        return Vec::new();
    }
    let cmp = |a: &u32, b: &u32| p[*b as usize].total_cmp(&p[*a as usize]).then(a.cmp(b));
    idx.select_nth_unstable_by(k - 1, cmp);
    idx.truncate(k);
    idx.sort_by(cmp);
    idx.into_iter().map(|i| (i, p[i as usize])).collect()
}
