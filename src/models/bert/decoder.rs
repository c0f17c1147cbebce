//! BERT as a decoder: HF `BertLMHeadModel` with `is_decoder` and `add_cross_attention`, the
//! decoder half of a bert2bert `EncoderDecoderModel`. Each block runs causal self-attention,
//! then cross-attention (queries from the decoder, keys and values from the encoder's last
//! hidden state, `crossattention.*`), then the feed-forward block; the LM head is
//! `cls.predictions` with the decoder weight tied to the word embeddings.
//!
//! Two passes share the weights: [`BertLMHeadModel::forward`] runs whole target sequences
//! (teacher forcing; differentiable) and [`BertLMHeadModel::forward_cached`] appends tokens
//! to a [`BertDecoderCache`], whose cross-attention keys and values are computed once from
//! the encoder output, so the encoder runs once per input however long the output.

use super::lm_head::BertLMPredictionHead;
use super::{BertEmbeddings, BertIntermediate, BertResidualOutput};
use crate::config::BertConfig;
use crate::error::{Error, Result};
use crate::kernels;
use crate::nn::{Dropout, Linear, Params};
use candle_core::{DType, Tensor, D};

/// Added to the scores of keys a query must not see (HF adds `finfo(f32).min`; both give an
/// exact 0 after the softmax).
const MASKED: f32 = -1e30;

/// HF `BertAttention` with separate projections: `self.{query,key,value}` and `output`
/// (dense, dropout, residual, LayerNorm). Keys and values may come from another sequence.
struct AttentionBlock {
    query: Linear,
    key: Linear,
    value: Linear,
    output: BertResidualOutput,
    dropout: Dropout,
    heads: usize,
    head_dim: usize,
}

impl AttentionBlock {
    fn load(p: &Params, cfg: &BertConfig) -> Result<Self> {
        let h = cfg.hidden_size;
        let s = p.pp("self");
        Ok(AttentionBlock {
            query: Linear::load(&s.pp("query"), h, h)?,
            key: Linear::load(&s.pp("key"), h, h)?,
            value: Linear::load(&s.pp("value"), h, h)?,
            output: BertResidualOutput::load(&p.pp("output"), cfg, h)?,
            dropout: Dropout::new(cfg.attention_probs_dropout_prob),
            heads: cfg.num_attention_heads,
            head_dim: cfg.head_dim(),
        })
    }

    /// `[batch, seq, hidden]` → `[batch, heads, seq, head_dim]`.
    fn split(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        Ok(x.reshape((b, t, self.heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    /// Keys and values of `source` `[batch, seq, hidden]`, split into heads.
    fn keys_values(&self, source: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            self.split(&self.key.forward(source)?)?,
            self.split(&self.value.forward(source)?)?,
        ))
    }

    /// Attention of `x` over `k`/`v`, then the output block (residual `x`). `keys` says
    /// which keys each query sees: an additive bias `[1, 1, queries, keys]` (causal) or a
    /// key mask `[batch, keys]` of 1s and 0s (encoder padding).
    fn forward(
        &self,
        x: &Tensor,
        k: &Tensor,
        v: &Tensor,
        keys: Keys,
        train: bool,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let q = self.split(&self.query.forward(x)?)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let scores = q.matmul(&k.t()?)?;
        let probs = match keys {
            Keys::Bias(bias) => {
                candle_nn::ops::softmax(&(scores * scale)?.broadcast_add(bias)?, D::Minus1)?
            }
            Keys::Mask(mask) => kernels::masked_softmax(&scores, mask, scale)?,
        };
        let probs = self.dropout.forward(&probs, train)?;
        let ctx = probs
            .matmul(v)?
            .transpose(1, 2)?
            .reshape((b, t, self.heads * self.head_dim))?;
        self.output.forward(&ctx, x, train)
    }
}

/// Which keys a query may see.
#[derive(Clone, Copy)]
enum Keys<'a> {
    Bias(&'a Tensor),
    Mask(&'a Tensor),
}

/// One decoder block: causal self-attention, cross-attention, feed-forward.
struct DecoderLayer {
    attention: AttentionBlock,
    crossattention: AttentionBlock,
    intermediate: BertIntermediate,
    output: BertResidualOutput,
}

impl DecoderLayer {
    fn load(p: &Params, cfg: &BertConfig) -> Result<Self> {
        Ok(DecoderLayer {
            attention: AttentionBlock::load(&p.pp("attention"), cfg)?,
            crossattention: AttentionBlock::load(&p.pp("crossattention"), cfg)?,
            intermediate: BertIntermediate::load(&p.pp("intermediate"), cfg)?,
            output: BertResidualOutput::load(&p.pp("output"), cfg, cfg.intermediate_size)?,
        })
    }

    /// Causal self-attention over `self_kv` (this block's keys and values of every token so
    /// far), cross-attention over the encoder's `cross_kv` (padding masked by `encoder_mask`),
    /// then the feed-forward block.
    fn forward(
        &self,
        x: &Tensor,
        self_kv: (&Tensor, &Tensor),
        cross_kv: (&Tensor, &Tensor),
        causal: &Tensor,
        encoder_mask: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let (k, v) = self_kv;
        let a = self.attention.forward(x, k, v, Keys::Bias(causal), train)?;
        let (k, v) = cross_kv;
        let a = (self.crossattention).forward(&a, k, v, Keys::Mask(encoder_mask), train)?;
        let f = self.intermediate.forward(&a)?;
        self.output.forward(&f, &a, train)
    }
}

/// Per layer, the keys and values decoding has seen so far and the cross-attention ones.
struct LayerCache {
    self_kv: Option<(Tensor, Tensor)>,
    cross_kv: (Tensor, Tensor),
}

/// The decoding state of `rows` sequences: self-attention keys/values grow one token per
/// step; cross-attention keys/values and the encoder mask are fixed.
pub struct BertDecoderCache {
    layers: Vec<LayerCache>,
    encoder_mask: Tensor,
    len: usize,
    /// Consecutive rows that decode the same input (beams, samples): their cross-attention
    /// keys and values are equal.
    rows_per_input: usize,
}

impl BertDecoderCache {
    /// Decoder tokens cached per sequence.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before the first token.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps sequence `order[i]` as sequence `i` (beam search).
    pub fn reorder(&mut self, order: &[usize]) -> Result<()> {
        let dev = self.encoder_mask.device().clone();
        let idx = Tensor::from_vec(
            order.iter().map(|&i| i as u32).collect::<Vec<_>>(),
            order.len(),
            &dev,
        )?;
        let pick = |t: &Tensor| t.index_select(&idx, 0);
        // Beam search only reorders rows of one input among themselves: then the
        // cross-attention state (equal for those rows) stays as it is.
        let k = self.rows_per_input;
        let within = order.iter().enumerate().all(|(i, &o)| o / k == i / k);
        for l in &mut self.layers {
            if let Some((k, v)) = &l.self_kv {
                l.self_kv = Some((pick(k)?, pick(v)?));
            }
            if !within {
                l.cross_kv = (pick(&l.cross_kv.0)?, pick(&l.cross_kv.1)?);
            }
        }
        if !within {
            self.encoder_mask = pick(&self.encoder_mask)?;
        }
        Ok(())
    }
}

/// A BERT decoder with cross-attention and its LM head (HF `BertLMHeadModel`).
pub struct BertLMHeadModel {
    embeddings: BertEmbeddings,
    layers: Vec<DecoderLayer>,
    head: BertLMPredictionHead,
    config: BertConfig,
}

impl BertLMHeadModel {
    /// Loads from parameters named as HF's `BertLMHeadModel` state dict (`bert.*` without a
    /// pooler, `cls.predictions.*`); a missing `cls.predictions.transform`/`bias` (a decoder
    /// warm-started from a bare encoder) is initialised as HF does.
    pub fn load(p: &Params, cfg: &BertConfig) -> Result<Self> {
        let bert = p.pp("bert");
        let embeddings = BertEmbeddings::load(&bert.pp("embeddings"), cfg)?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| DecoderLayer::load(&bert.pp(&format!("encoder.layer.{i}")), cfg))
            .collect::<Result<Vec<_>>>()?;
        let table = embeddings.word_embeddings().weight().clone();
        let head = BertLMPredictionHead::load(&p.pp("cls.predictions"), cfg, table)?;
        Ok(BertLMHeadModel {
            embeddings,
            layers,
            head,
            config: cfg.clone(),
        })
    }

    /// The config the decoder was built from.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// Token, position (from `first_position`) and segment-0 embeddings of `ids` `[batch,
    /// seq]`, after checking they fit the position table.
    fn embed(&self, ids: &Tensor, first_position: usize, train: bool) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let max = self.config.max_position_embeddings;
        if first_position + t > max {
            return Err(Error::Invalid(format!(
                "decoder sequence of {} tokens is longer than its {max} positions \
                 (max_position_embeddings); shorten the target or max_new_tokens",
                first_position + t
            )));
        }
        let dev = ids.device();
        let positions = Tensor::arange(first_position as u32, (first_position + t) as u32, dev)?
            .unsqueeze(0)?
            .broadcast_as((b, t))?
            .contiguous()?;
        let e = self.embeddings.word_embeddings.forward(ids)?;
        let e = (e + self
            .embeddings
            .token_type_embeddings
            .forward(&positions.zeros_like()?)?)?;
        let e = match &self.embeddings.position_embeddings {
            Some(table) => (e + table.forward(&positions)?)?,
            None => e,
        };
        self.embeddings
            .dropout
            .forward(&self.embeddings.layer_norm.forward(&e)?, train)
    }

    /// Final hidden states `[batch, seq, hidden]` of whole decoder inputs `ids` attending to
    /// `encoder_hidden` `[batch, src, hidden]` where `encoder_mask` `[batch, src]` is 1
    /// (teacher forcing; differentiable).
    pub fn hidden_states(
        &self,
        ids: &Tensor,
        encoder_hidden: &Tensor,
        encoder_mask: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let mut x = self.embed(ids, 0, train)?;
        let causal = causal_bias(x.dim(1)?, x.device())?;
        let mask = encoder_mask.to_dtype(DType::F32)?;
        for l in &self.layers {
            let (k, v) = l.attention.keys_values(&x)?;
            let (ck, cv) = l.crossattention.keys_values(encoder_hidden)?;
            x = l.forward(&x, (&k, &v), (&ck, &cv), &causal, &mask, train)?;
        }
        Ok(x)
    }

    /// Logits `[batch, seq, vocab]` of whole decoder inputs (see [`Self::hidden_states`]).
    pub fn forward(
        &self,
        ids: &Tensor,
        encoder_hidden: &Tensor,
        encoder_mask: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        self.logits(&self.hidden_states(ids, encoder_hidden, encoder_mask, train)?)
    }

    /// Vocabulary logits of hidden states (any leading shape).
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        self.head.forward(hidden)
    }

    /// An empty cache for decoding `rows_per_input` sequences for each input of
    /// `encoder_hidden` `[n, src, hidden]` (mask `[n, src]`), rows of one input consecutive:
    /// every layer's cross-attention keys and values, computed here once per input.
    pub fn new_cache(
        &self,
        encoder_hidden: &Tensor,
        encoder_mask: &Tensor,
        rows_per_input: usize,
    ) -> Result<BertDecoderCache> {
        let k = rows_per_input.max(1);
        let repeat = |t: Tensor| repeat_interleave(&t, k);
        let layers = self
            .layers
            .iter()
            .map(|l| {
                let (ck, cv) = l.crossattention.keys_values(encoder_hidden)?;
                Ok(LayerCache {
                    self_kv: None,
                    cross_kv: (repeat(ck)?, repeat(cv)?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(BertDecoderCache {
            layers,
            encoder_mask: repeat(encoder_mask.to_dtype(DType::F32)?.contiguous()?)?,
            len: 0,
            rows_per_input: k,
        })
    }

    /// Appends `ids` `[rows, t]` to the cache and returns the final hidden state of each
    /// row's last token, `[rows, hidden]`.
    pub fn forward_cached(&self, ids: &Tensor, cache: &mut BertDecoderCache) -> Result<Tensor> {
        let (rows, t) = ids.dims2()?;
        if rows != cache.encoder_mask.dim(0)? || t == 0 {
            return Err(Error::Invalid(format!(
                "forward_cached: {rows}×{t} ids for a cache of {} sequences",
                cache.encoder_mask.dim(0)?
            )));
        }
        let past = cache.len;
        let mut x = self.embed(ids, past, false)?;
        // New tokens see every cached one and the new ones up to themselves.
        let causal = causal_bias(past + t, x.device())?.narrow(2, past, t)?;
        for (l, c) in self.layers.iter().zip(&mut cache.layers) {
            let (k, v) = l.attention.keys_values(&x)?;
            let (k, v) = match c.self_kv.take() {
                Some((pk, pv)) => (Tensor::cat(&[pk, k], 2)?, Tensor::cat(&[pv, v], 2)?),
                None => (k, v),
            };
            let cross = (&c.cross_kv.0, &c.cross_kv.1);
            x = l.forward(&x, (&k, &v), cross, &causal, &cache.encoder_mask, false)?;
            c.self_kv = Some((k, v));
        }
        cache.len += t;
        Ok(x.narrow(1, t - 1, 1)?.squeeze(1)?)
    }
}

/// Each row (along dim 0) repeated `k` times in place, as torch's `repeat_interleave`: how
/// generation expands an input for its beams or samples.
pub fn repeat_interleave(t: &Tensor, k: usize) -> Result<Tensor> {
    if k == 1 {
        return Ok(t.clone());
    }
    let n = t.dim(0)?;
    let idx: Vec<u32> = (0..n as u32)
        .flat_map(|i| std::iter::repeat_n(i, k))
        .collect();
    Ok(t.index_select(&Tensor::from_vec(idx, n * k, t.device())?, 0)?)
}

/// `[1, 1, n, n]`: 0 where key ≤ query, [`MASKED`] above the diagonal.
fn causal_bias(n: usize, dev: &candle_core::Device) -> Result<Tensor> {
    let v: Vec<f32> = (0..n * n)
        .map(|i| if i % n > i / n { MASKED } else { 0.0 })
        .collect();
    Ok(Tensor::from_vec(v, (1, 1, n, n), dev)?)
}
