//! BERT encoder ([Devlin et al., 2018](https://arxiv.org/abs/1810.04805)), block for block as
//! HF `modeling_bert.py` names them, with weight names equal to the HF state-dict keys.
//! RoBERTa shares every block; only its position ids differ (see [`crate::models::roberta`]).

use crate::config::{BertConfig, HiddenAct, ModelType};
use crate::error::{Error, Result};
use crate::kernels;
use crate::models::{nezha, roberta};
use crate::nn::{Dropout, Embedding, LayerNorm, Linear, Params};
use candle_core::{DType, Tensor};

mod bf16;
pub mod decoder;
mod int8;
pub mod lm_head;

pub use crate::data::batch::EncoderInput;
pub use decoder::{BertDecoderCache, BertLMHeadModel};
pub use lm_head::BertLMPredictionHead;

/// Everything the encoder returns.
#[derive(Clone, Debug)]
pub struct EncoderOutput {
    /// Output of the last block `[batch, seq, hidden]`.
    pub last_hidden_state: Tensor,
    /// Embedding output followed by every block's output (`num_hidden_layers + 1` tensors).
    pub hidden_states: Vec<Tensor>,
    /// `tanh(dense(h[:, 0]))`, when the checkpoint has a pooler.
    pub pooler_output: Option<Tensor>,
}

/// Token + position + segment embeddings, then LayerNorm and dropout.
pub struct BertEmbeddings {
    word_embeddings: Embedding,
    /// None for NEZHA (relative positions live in the attention).
    position_embeddings: Option<Embedding>,
    token_type_embeddings: Embedding,
    layer_norm: LayerNorm,
    dropout: Dropout,
    model_type: ModelType,
    pad_token_id: u32,
}

/// The learned position table, or (`sinusoidal_position_embeddings`) the fixed sinusoidal
/// one: saved with the weights so `transformers` loads it as an absolute table, never trained.
fn position_table(p: &Params, cfg: &BertConfig) -> Result<Embedding> {
    let (rows, h) = (cfg.max_position_embeddings, cfg.hidden_size);
    if !cfg.sinusoidal_positions() {
        return Embedding::load(p, rows, h);
    }
    let t = p.fixed((rows, h), "weight", || {
        crate::nn::positions::sinusoidal_table(rows, h, &p.device())
    })?;
    Ok(Embedding::new(t, &p.full_name("weight")))
}

impl BertEmbeddings {
    fn load(p: &Params, cfg: &BertConfig) -> Result<Self> {
        let h = cfg.hidden_size;
        Ok(BertEmbeddings {
            word_embeddings: Embedding::load(&p.pp("word_embeddings"), cfg.vocab_size, h)?,
            position_embeddings: match cfg.model_type {
                ModelType::Nezha => None,
                _ => Some(position_table(&p.pp("position_embeddings"), cfg)?),
            },
            token_type_embeddings: Embedding::load(
                &p.pp("token_type_embeddings"),
                cfg.type_vocab_size,
                h,
            )?,
            layer_norm: LayerNorm::load(&p.pp("LayerNorm"), h, cfg.layer_norm_eps)?,
            dropout: Dropout::new(cfg.hidden_dropout_prob),
            model_type: cfg.model_type,
            pad_token_id: cfg.pad_token_id as u32,
        })
    }

    /// The word-embedding table (tied to MLM heads, resized when tokens are added).
    pub fn word_embeddings(&self) -> &Embedding {
        &self.word_embeddings
    }

    fn position_ids(&self, input_ids: &Tensor) -> Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        let dev = input_ids.device();
        Ok(match self.model_type {
            ModelType::Bert | ModelType::Nezha => Tensor::arange(0u32, t as u32, dev)?
                .unsqueeze(0)?
                .broadcast_as((b, t))?
                .contiguous()?,
            ModelType::Roberta => roberta::position_ids(input_ids, self.pad_token_id)?,
        })
    }

    fn forward(&self, input: &EncoderInput, train: bool) -> Result<Tensor> {
        let words = self.word_embeddings.forward(&input.input_ids)?;
        let segments = self.token_type_embeddings.forward(&input.token_type_ids)?;
        let mut e = (words + segments)?;
        if let Some(table) = &self.position_embeddings {
            e = (e + table.forward(&self.position_ids(&input.input_ids)?)?)?;
        }
        self.dropout.forward(&self.layer_norm.forward(&e)?, train)
    }
}

/// The query/key/value projections.
enum QkvProjections {
    /// Q, K and V stacked into one `[3·hidden, hidden]` layer (frozen weights): one GEMM
    /// with a 3× wider output instead of three.
    Fused(Linear),
    /// Three layers, so each trainable weight gets its own gradient.
    Separate(Linear, Linear, Linear),
}

/// Multi-head self-attention; the padding mask is always applied.
pub struct BertSelfAttention {
    projections: QkvProjections,
    dropout: Dropout,
    num_heads: usize,
    head_dim: usize,
}

impl BertSelfAttention {
    /// `heads`: this layer's heads (fewer than the config's after pruning).
    fn load(p: &Params, cfg: &BertConfig, heads: usize) -> Result<Self> {
        let h = cfg.hidden_size;
        let width = heads * cfg.head_dim();
        // Raw tensors, not `Linear::load`: a fused layer would throw away each layer's
        // pre-transposed copy.
        let load = |name: &str| -> Result<(Tensor, Tensor)> {
            let lp = p.pp(name);
            Ok((lp.get((width, h), "weight")?, lp.get(width, "bias")?))
        };
        let [(wq, bq), (wk, bk), (wv, bv)] = [load("query")?, load("key")?, load("value")?];
        let projections = if wq.is_variable() {
            QkvProjections::Separate(
                Linear::new(wq, Some(bq)),
                Linear::new(wk, Some(bk)),
                Linear::new(wv, Some(bv)),
            )
        } else {
            let w = crate::nn::cat_rows(&[wq, wk, wv])?;
            QkvProjections::Fused(Linear::new(w, Some(Tensor::cat(&[bq, bk, bv], 0)?)))
        };
        Ok(BertSelfAttention {
            projections,
            dropout: Dropout::new(cfg.attention_probs_dropout_prob),
            num_heads: heads,
            head_dim: cfg.head_dim(),
        })
    }

    /// Q, K and V as `[batch, heads, seq, head_dim]` each.
    fn heads(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, t, _) = x.dims3()?;
        Ok(match &self.projections {
            QkvProjections::Fused(qkv) => {
                // [b, t, 3·h] → [3, b, heads, t, head_dim] in one copy.
                let all = qkv
                    .forward(x)?
                    .reshape((b, t, 3, self.num_heads, self.head_dim))?
                    .permute((2, 0, 3, 1, 4))?
                    .contiguous()?;
                (all.get(0)?, all.get(1)?, all.get(2)?)
            }
            QkvProjections::Separate(query, key, value) => (
                self.split_heads(&query.forward(x)?)?,
                self.split_heads(&key.forward(x)?)?,
                self.split_heads(&value.forward(x)?)?,
            ),
        })
    }

    /// `[batch, seq, heads · head_dim]` → `[batch, heads, seq, head_dim]`.
    fn split_heads(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        Ok(x.reshape((b, t, self.num_heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    /// `relative`: NEZHA's `[t, t, head_dim]` distance encodings (see [`nezha`]).
    fn forward(
        &self,
        x: &Tensor,
        key_mask: &Tensor,
        relative: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let h = self.num_heads * self.head_dim;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        if let Some(a) = relative {
            let (q, k, v) = self.heads(x)?;
            let scores = (q.matmul(&k.t()?)? + nezha::key_scores(&q, a)?)?;
            let probs = kernels::masked_softmax(&scores, key_mask, scale)?;
            let probs = self.dropout.forward(&probs, train)?;
            let ctx = (probs.matmul(&v)? + nezha::value_terms(&probs, a)?)?;
            return Ok(ctx.transpose(1, 2)?.reshape((b, t, h))?);
        }
        if let (QkvProjections::Fused(qkv), false) = (&self.projections, train) {
            let heads = self.num_heads;
            let products = attention_products(qkv);
            // Where attention multiplies in bf16, the projection rounds as it stores.
            let bf16 = match products.runs_bf16(t, self.head_dim) {
                true => qkv.forward_bf16_output(x)?,
                false => None,
            };
            let packed = match bf16 {
                Some(packed) => packed,
                None => qkv.forward(x)?,
            };
            if let Some(ctx) = kernels::fused_attention(&packed, key_mask, heads, scale, products)?
            {
                return Ok(ctx);
            }
        }
        let (q, k, v) = match &self.projections {
            QkvProjections::Separate(query, key, value) => {
                let (q, k, v) = (query.forward(x)?, key.forward(x)?, value.forward(x)?);
                // Trainable weights: one fused, differentiable attention node (dropout inside).
                let drop = self.dropout.mask(train);
                let fused =
                    kernels::attention_train(&q, &k, &v, key_mask, self.num_heads, scale, drop)?;
                if let Some(ctx) = fused {
                    return Ok(ctx);
                }
                (
                    self.split_heads(&q)?,
                    self.split_heads(&k)?,
                    self.split_heads(&v)?,
                )
            }
            QkvProjections::Fused(_) => self.heads(x)?,
        };
        let scores = q.matmul(&k.t()?)?;
        let probs = kernels::masked_softmax(&scores, key_mask, scale)?;
        let probs = self.dropout.forward(&probs, train)?;
        let ctx = probs.matmul(&v)?;
        Ok(ctx.transpose(1, 2)?.reshape((b, t, h))?)
    }
}

/// bf16 products for the attention of an encoder quantised for speed (8- or 7-bit
/// activation codes): their rounding is well below the codes' (Pang & Lee accuracy
/// unchanged, `docs/benchmarks.md`); f32 for f32 weights and the accuracy-first 12-bit codes.
fn attention_products(qkv: &Linear) -> kernels::AttentionProducts {
    match qkv.int8().and_then(|q| q.code_width()) {
        Some(kernels::CodeWidth::U8 | kernels::CodeWidth::U7) => {
            kernels::AttentionProducts::Bf16Where2x
        }
        _ => kernels::AttentionProducts::F32,
    }
}

/// Dense projection, dropout, residual and LayerNorm (post-norm), as in `BertSelfOutput`
/// and `BertOutput`.
pub struct BertResidualOutput {
    dense: Linear,
    layer_norm: LayerNorm,
    dropout: Dropout,
}

impl BertResidualOutput {
    fn load(p: &Params, cfg: &BertConfig, in_dim: usize) -> Result<Self> {
        Ok(BertResidualOutput {
            dense: Linear::load(&p.pp("dense"), in_dim, cfg.hidden_size)?,
            layer_norm: LayerNorm::load(&p.pp("LayerNorm"), cfg.hidden_size, cfg.layer_norm_eps)?,
            dropout: Dropout::new(cfg.hidden_dropout_prob),
        })
    }

    fn forward(&self, x: &Tensor, residual: &Tensor, train: bool) -> Result<Tensor> {
        let y = self.dense.forward_dropout(x, &self.dropout, train)?;
        self.layer_norm.forward_residual(&y, residual)
    }
}

/// Feed-forward expansion with the configured activation.
pub struct BertIntermediate {
    dense: Linear,
    act: HiddenAct,
}

impl BertIntermediate {
    fn load(p: &Params, cfg: &BertConfig) -> Result<Self> {
        Ok(BertIntermediate {
            dense: Linear::load(&p.pp("dense"), cfg.hidden_size, cfg.intermediate_size)?,
            act: cfg.hidden_act,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self.act {
            HiddenAct::Gelu => self.dense.forward_gelu(x, kernels::Gelu::Erf)?,
            HiddenAct::GeluNew => self.dense.forward_gelu(x, kernels::Gelu::Tanh)?,
            HiddenAct::Relu => self.dense.forward(x)?.relu()?,
        })
    }
}

/// One transformer block: attention then feed-forward, each with a post-norm residual.
pub struct BertLayer {
    attention: BertSelfAttention,
    attention_output: BertResidualOutput,
    intermediate: BertIntermediate,
    output: BertResidualOutput,
}

impl BertLayer {
    fn load(p: &Params, cfg: &BertConfig, index: usize) -> Result<Self> {
        let heads = cfg.kept_heads(index).len();
        Ok(BertLayer {
            attention: BertSelfAttention::load(&p.pp("attention.self"), cfg, heads)?,
            attention_output: BertResidualOutput::load(
                &p.pp("attention.output"),
                cfg,
                heads * cfg.head_dim(),
            )?,
            intermediate: BertIntermediate::load(&p.pp("intermediate"), cfg)?,
            output: BertResidualOutput::load(&p.pp("output"), cfg, cfg.intermediate_size)?,
        })
    }

    /// `gate`: one factor per head multiplying that head's output (see
    /// [`BertModel::set_head_gates`]).
    fn forward(
        &self,
        x: &Tensor,
        key_mask: &Tensor,
        relative: Option<&Tensor>,
        train: bool,
        gate: Option<&Tensor>,
    ) -> Result<Tensor> {
        let mut a = self.attention.forward(x, key_mask, relative, train)?;
        if let Some(g) = gate {
            let (b, t, w) = a.dims3()?;
            let heads = self.attention.num_heads;
            a = a
                .reshape((b, t, heads, w / heads))?
                .broadcast_mul(&g.reshape((1, 1, heads, 1))?)?
                .reshape((b, t, w))?;
        }
        let a = self.attention_output.forward(&a, x, train)?;
        let f = self.intermediate.forward(&a)?;
        self.output.forward(&f, &a, train)
    }
}

/// `tanh(dense(h[:, 0]))`.
pub struct BertPooler {
    dense: Linear,
}

impl BertPooler {
    fn forward(&self, last: &Tensor) -> Result<Tensor> {
        Ok(self
            .dense
            .forward(&last.narrow(1, 0, 1)?.squeeze(1)?)?
            .tanh()?)
    }
}

/// The whole encoder: embeddings, `num_hidden_layers` blocks, optional pooler.
pub struct BertModel {
    embeddings: BertEmbeddings,
    layers: Vec<BertLayer>,
    pooler: Option<BertPooler>,
    /// NEZHA's relative position encodings.
    relative: Option<nezha::RelativePositions>,
    /// Per layer, a factor for each head's output (HF's `head_mask`), to measure head
    /// importance as the gradient of a loss with respect to it.
    head_gates: Option<Vec<Tensor>>,
    config: BertConfig,
}

impl BertModel {
    /// Loads from parameters named as HF's `BertModel` state dict (no `bert.` prefix: pass
    /// `params.pp("bert")` for checkpoints saved from a task model).
    pub fn load(p: &Params, cfg: &BertConfig) -> Result<Self> {
        let embeddings = BertEmbeddings::load(&p.pp("embeddings"), cfg)?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| BertLayer::load(&p.pp(&format!("encoder.layer.{i}")), cfg, i))
            .collect::<Result<Vec<_>>>()?;
        let pooler = if p.pp("pooler.dense").contains("weight") {
            Some(BertPooler {
                dense: Linear::load(&p.pp("pooler.dense"), cfg.hidden_size, cfg.hidden_size)?,
            })
        } else {
            None
        };
        let relative = match cfg.model_type {
            ModelType::Nezha => Some(nezha::RelativePositions::new(cfg, &p.device())?),
            _ => None,
        };
        Ok(BertModel {
            embeddings,
            layers,
            pooler,
            relative,
            head_gates: None,
            config: cfg.clone(),
        })
    }

    /// Heads of every layer (the config's count less any pruned ones).
    pub fn heads_per_layer(&self) -> Vec<usize> {
        self.layers.iter().map(|l| l.attention.num_heads).collect()
    }

    /// Multiplies the output of head `h` of layer `l` by `gates[l][h]` in every later forward
    /// pass (HF's `head_mask`; the gradient of a loss with respect to such a gate of ones is
    /// Michel et al.'s head importance); `None` removes them. One `[heads]` tensor per layer.
    pub fn set_head_gates(&mut self, gates: Option<Vec<Tensor>>) -> Result<()> {
        if let Some(g) = &gates {
            let want = self.heads_per_layer();
            let got: Vec<usize> = g.iter().map(|t| t.elem_count()).collect();
            if got != want {
                return Err(Error::Invalid(format!(
                    "head gates of sizes {got:?} for a model with {want:?} heads per layer"
                )));
            }
        }
        self.head_gates = gates;
        Ok(())
    }

    /// The config the model was built from.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// The embedding block.
    pub fn embeddings(&self) -> &BertEmbeddings {
        &self.embeddings
    }

    /// Grows (or shrinks) the word-embedding table to `rows`, as HF
    /// `resize_token_embeddings` does with its default `mean_resizing=True`: old rows are
    /// kept and every new row is the mean of the old rows. (HF also adds noise drawn with
    /// covariance 1e-9·Σ, about 1e-5 in size; we leave it out so the result is deterministic.)
    /// Returns the new table so the caller can register it under its HF name.
    pub fn resize_token_embeddings(&mut self, rows: usize) -> Result<Tensor> {
        let old = self.embeddings.word_embeddings.weight().clone();
        let (n, h) = old.dims2()?;
        let table = if rows <= n {
            old.narrow(0, 0, rows)?
        } else {
            let mean = old.mean_keepdim(0)?;
            Tensor::cat(&[old, mean.broadcast_as((rows - n, h))?.contiguous()?], 0)?
        };
        let name = self.embeddings.word_embeddings.name().to_string();
        self.embeddings.word_embeddings = Embedding::new(table.clone(), &name);
        self.config.vocab_size = rows;
        Ok(table)
    }

    /// Appends `rows` `[n, hidden]` to the word embeddings as ids `vocab_size..vocab_size + n`,
    /// a separate tensor (P-tuning's prompt tokens, trainable with the table frozen).
    pub fn set_extra_word_rows(&mut self, rows: Tensor) -> Result<()> {
        self.embeddings.word_embeddings.set_extra_rows(rows)
    }

    /// Swaps in a word-embedding table of the current size (a trainable handle of it).
    pub fn set_word_embeddings(&mut self, table: Tensor) -> Result<()> {
        if table.dims() != self.embeddings.word_embeddings.weight().dims() {
            return Err(Error::Invalid(format!(
                "word embeddings must keep shape {:?}, got {:?}",
                self.embeddings.word_embeddings.weight().dims(),
                table.dims()
            )));
        }
        let name = self.embeddings.word_embeddings.name().to_string();
        self.embeddings.word_embeddings = Embedding::new(table, &name);
        Ok(())
    }

    /// Drops the pooler (task heads that never read it: HF's `BertForMaskedLM` is built
    /// with `add_pooling_layer=False`); true when there was one (its weights are
    /// `pooler.dense.{weight,bias}`).
    pub fn drop_pooler(&mut self) -> bool {
        self.pooler.take().is_some()
    }

    /// Adds a pooler initialised as HF does (normal(0, `initializer_range`) weight, zero
    /// bias) when the checkpoint has none: BertForPreTraining's next-sentence head reads it.
    /// `p` is the encoder's parameter scope.
    pub fn ensure_pooler(&mut self, p: &Params) -> Result<()> {
        if self.pooler.is_none() {
            let (h, std) = (self.config.hidden_size, self.config.initializer_range);
            let dense = Linear::load_or_init(&p.pp("pooler.dense"), h, h, std)?;
            self.pooler = Some(BertPooler { dense });
        }
        Ok(())
    }

    /// True when the checkpoint had pooler weights.
    pub fn has_pooler(&self) -> bool {
        self.pooler.is_some()
    }

    /// Runs the encoder; dropout is active only when `train` is true. Inference runs on
    /// rayon's pool ([`kernels::on_pool`]), training on the calling thread.
    pub fn forward(&self, input: &EncoderInput, train: bool) -> Result<EncoderOutput> {
        if train {
            self.forward_here(input, true)
        } else {
            kernels::on_pool(|| self.forward_here(input, false))
        }
    }

    /// The embedding output (the first hidden state) after checking the length: the start
    /// of a pass run layer by layer ([`Self::run_layer`]; early exit).
    pub fn embed(&self, input: &EncoderInput, train: bool) -> Result<Tensor> {
        let (_, t) = input.input_ids.dims2()?;
        let max = self.config.max_sequence_length();
        if t > max {
            return Err(Error::Invalid(format!(
                "sequence of {t} tokens is longer than the model's {max} positions \
                 (max_position_embeddings {}); truncate it (--truncation / --max-length)",
                self.config.max_position_embeddings
            )));
        }
        self.embeddings.forward(input, train)
    }

    /// Block `i` on the hidden state `h` `[batch, seq, hidden]`, with `key_mask` `[batch,
    /// seq]` (1 = token): one step of [`Self::forward`] for callers that stop early.
    pub fn run_layer(
        &self,
        i: usize,
        h: &Tensor,
        key_mask: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let layer = self.layers.get(i).ok_or_else(|| {
            Error::Invalid(format!("layer {i} of a {}-layer model", self.layers.len()))
        })?;
        let relative = match &self.relative {
            Some(r) => Some(r.matrix(h.dim(1)?)?),
            None => None,
        };
        let gate = self.head_gates.as_ref().map(|g| &g[i]);
        let key_mask = key_mask.to_dtype(DType::F32)?;
        layer.forward(h, &key_mask, relative.as_ref(), train, gate)
    }

    /// The pooler's `tanh(dense(h[:, 0]))` of a last hidden state, when the checkpoint has a
    /// pooler.
    pub fn pooler_output(&self, last: &Tensor) -> Result<Option<Tensor>> {
        self.pooler.as_ref().map(|p| p.forward(last)).transpose()
    }

    fn forward_here(&self, input: &EncoderInput, train: bool) -> Result<EncoderOutput> {
        let mut h = self.embed(input, train)?;
        let t = h.dim(1)?;
        let key_mask = input.attention_mask.to_dtype(DType::F32)?;
        let relative = match &self.relative {
            Some(r) => Some(r.matrix(t)?),
            None => None,
        };
        let mut hidden_states = Vec::with_capacity(self.layers.len() + 1);
        hidden_states.push(h.clone());
        for (i, layer) in self.layers.iter().enumerate() {
            let gate = self.head_gates.as_ref().map(|g| &g[i]);
            h = layer.forward(&h, &key_mask, relative.as_ref(), train, gate)?;
            hidden_states.push(h.clone());
        }
        let pooler_output = self.pooler_output(&h)?;
        Ok(EncoderOutput {
            last_hidden_state: h,
            hidden_states,
            pooler_output,
        })
    }
}
