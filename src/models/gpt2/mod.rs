//! GPT-2 ([Radford et al., 2019](https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf)),
//! block for block as HF `modeling_gpt2.py` names them: token + learned position embeddings,
//! pre-norm blocks of causal self-attention and MLP (`Conv1D` weights stored `[in, out]`),
//! a final LayerNorm and an LM head tied to the token table.
//!
//! Two forward passes share the weights: [`Gpt2LMHeadModel::forward`] runs whole sequences
//! with tensor ops (differentiable, for training and scoring) and
//! [`Gpt2LMHeadModel::forward_cached`] appends tokens to a [`Gpt2Cache`] for decoding.

mod cache;
mod lm_head;

pub use cache::Gpt2Cache;
pub use lm_head::Gpt2LMHeadModel;

use crate::config::{Gpt2Config, HiddenAct};
use crate::error::{Error, Result};
use crate::kernels::qgemm::CodeWidth;
use crate::kernels::{self, KvBuffer};
use crate::nn::{Dropout, Embedding, LayerNorm, Linear, Params};
use candle_core::{DType, Device, Tensor, D};

/// GPT-2's `Conv1D`: a linear layer whose weight is stored `[in, out]`.
fn conv1d(p: &Params, in_dim: usize, out_dim: usize) -> Result<Linear> {
    let w = p.get((in_dim, out_dim), "weight")?;
    let b = p.get(out_dim, "bias")?;
    Linear::from_transposed(w, Some(b))
}

/// Causal multi-head self-attention with one fused QKV projection (`c_attn`).
pub struct Gpt2Attention {
    c_attn: Linear,
    c_proj: Linear,
    attn_dropout: Dropout,
    resid_dropout: Dropout,
    n_head: usize,
    head_dim: usize,
    scale: f64,
    sparse: Option<usize>,
}

impl Gpt2Attention {
    fn load(p: &Params, cfg: &Gpt2Config, layer: usize) -> Result<Self> {
        let e = cfg.n_embd;
        let mut scale = 1.0;
        if cfg.scale_attn_weights {
            scale /= (cfg.head_dim() as f64).sqrt();
        }
        if cfg.scale_attn_by_inverse_layer_idx {
            scale /= (layer + 1) as f64;
        }
        Ok(Gpt2Attention {
            c_attn: conv1d(&p.pp("c_attn"), e, 3 * e)?,
            c_proj: conv1d(&p.pp("c_proj"), e, e)?,
            attn_dropout: Dropout::new(cfg.attn_pdrop),
            resid_dropout: Dropout::new(cfg.resid_pdrop),
            n_head: cfg.n_head,
            head_dim: cfg.head_dim(),
            scale,
            sparse: cfg.sparse_attention_stride,
        })
    }

    /// Whole sequences: `mask_bias` `[batch, 1, seq, seq]` is 0 where a query may see a key
    /// and a large negative number elsewhere (future tokens, padding, outside the sparse
    /// pattern); `first` counts each row's left padding (for the sparse kernel).
    fn forward(
        &self,
        x: &Tensor,
        mask_bias: &MaskBias,
        first: &[usize],
        train: bool,
    ) -> Result<Tensor> {
        let (b, t, e) = x.dims3()?;
        let qkv = self
            .c_attn
            .forward(x)?
            .reshape((b, t, 3, self.n_head, self.head_dim))?
            .permute((2, 0, 3, 1, 4))?;
        let (q, k, v) = (
            qkv.get(0)?.contiguous()?,
            qkv.get(1)?.contiguous()?,
            qkv.get(2)?.contiguous()?,
        );
        let dropout = self.attn_dropout.mask(train);
        if let Some(stride) = self.sparse {
            let sparse = (stride, self.scale);
            if let Some(ctx) = kernels::sparse_attention(&q, &k, &v, sparse, first, dropout)? {
                let ctx = ctx.transpose(1, 2)?.reshape((b, t, e))?;
                return self
                    .c_proj
                    .forward_dropout(&ctx, &self.resid_dropout, train);
            }
        }
        let scores = (q.matmul(&k.t()?)? * self.scale)?.broadcast_add(mask_bias.get()?)?;
        let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let probs = match dropout {
            Some(mask) => mask.apply_tensor(&probs)?,
            None => probs,
        };
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, e))?;
        self.c_proj
            .forward_dropout(&ctx, &self.resid_dropout, train)
    }

    /// New tokens only: keys and values of earlier tokens come from `cache`.
    fn forward_cached(&self, x: &Tensor, cache: &mut KvBuffer, key_mask: &[f32]) -> Result<Tensor> {
        let (b, t, e) = x.dims3()?;
        let qkv = self.c_attn.forward(x)?.flatten_all()?.to_vec1::<f32>()?;
        let ctx = kernels::cached_causal_attention(
            &qkv,
            t,
            cache,
            key_mask,
            self.scale as f32,
            self.sparse,
        );
        let ctx = Tensor::from_vec(ctx, (b, t, e), x.device())?;
        self.c_proj.forward(&ctx)
    }
}

/// Feed-forward block: `c_fc`, activation, `c_proj`, dropout.
pub struct Gpt2Mlp {
    c_fc: Linear,
    c_proj: Linear,
    act: HiddenAct,
    dropout: Dropout,
}

impl Gpt2Mlp {
    fn load(p: &Params, cfg: &Gpt2Config) -> Result<Self> {
        let (e, inner) = (cfg.n_embd, cfg.inner_dim());
        Ok(Gpt2Mlp {
            c_fc: conv1d(&p.pp("c_fc"), e, inner)?,
            c_proj: conv1d(&p.pp("c_proj"), inner, e)?,
            act: cfg.activation_function,
            dropout: Dropout::new(cfg.resid_pdrop),
        })
    }

    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = match self.act {
            HiddenAct::GeluNew => self.c_fc.forward_gelu(x, kernels::Gelu::Tanh)?,
            HiddenAct::Gelu => self.c_fc.forward_gelu(x, kernels::Gelu::Erf)?,
            HiddenAct::Relu => self.c_fc.forward(x)?.relu()?,
        };
        self.c_proj.forward_dropout(&y, &self.dropout, train)
    }
}

/// One pre-norm block: `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`.
pub struct Gpt2Block {
    ln_1: LayerNorm,
    attn: Gpt2Attention,
    ln_2: LayerNorm,
    mlp: Gpt2Mlp,
}

impl Gpt2Block {
    fn load(p: &Params, cfg: &Gpt2Config, layer: usize) -> Result<Self> {
        let (e, eps) = (cfg.n_embd, cfg.layer_norm_epsilon);
        Ok(Gpt2Block {
            ln_1: LayerNorm::load(&p.pp("ln_1"), e, eps)?,
            attn: Gpt2Attention::load(&p.pp("attn"), cfg, layer)?,
            ln_2: LayerNorm::load(&p.pp("ln_2"), e, eps)?,
            mlp: Gpt2Mlp::load(&p.pp("mlp"), cfg)?,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        mask_bias: &MaskBias,
        first: &[usize],
        train: bool,
    ) -> Result<Tensor> {
        let x = (x + self
            .attn
            .forward(&self.ln_1.forward(x)?, mask_bias, first, train)?)?;
        Ok((&x + self.mlp.forward(&self.ln_2.forward(&x)?, train)?)?)
    }

    fn forward_cached(&self, x: &Tensor, cache: &mut KvBuffer, key_mask: &[f32]) -> Result<Tensor> {
        let x = (x + self
            .attn
            .forward_cached(&self.ln_1.forward(x)?, cache, key_mask)?)?;
        Ok((&x + self.mlp.forward(&self.ln_2.forward(&x)?, false)?)?)
    }
}

/// The transformer: embeddings, blocks and the final LayerNorm (HF `GPT2Model`).
pub struct Gpt2Model {
    wte: Embedding,
    wpe: Embedding,
    drop: Dropout,
    h: Vec<Gpt2Block>,
    ln_f: LayerNorm,
    config: Gpt2Config,
}

impl Gpt2Model {
    /// Loads from parameters named as HF's `GPT2Model` state dict.
    pub fn load(p: &Params, cfg: &Gpt2Config) -> Result<Self> {
        let e = cfg.n_embd;
        Ok(Gpt2Model {
            wte: Embedding::load(&p.pp("wte"), cfg.vocab_size, e)?,
            wpe: Embedding::load(&p.pp("wpe"), cfg.n_positions, e)?,
            drop: Dropout::new(cfg.embd_pdrop),
            h: (0..cfg.n_layer)
                .map(|i| Gpt2Block::load(&p.pp(&format!("h.{i}")), cfg, i))
                .collect::<Result<_>>()?,
            ln_f: LayerNorm::load(&p.pp("ln_f"), e, cfg.layer_norm_epsilon)?,
            config: cfg.clone(),
        })
    }

    /// Switches every linear layer of the blocks to dynamically quantised int8 (see
    /// [`Linear::quantize_int8_dynamic`]); inference only.
    pub fn quantize_int8(&mut self) -> Result<()> {
        for (name, l) in self.linears_mut() {
            l.quantize_int8_dynamic(&name, None, CodeWidth::U7)?;
        }
        Ok(())
    }

    /// True once [`Self::quantize_int8`] ran.
    pub fn is_int8(&self) -> bool {
        self.h
            .first()
            .is_some_and(|b| b.attn.c_attn.int8().is_some())
    }

    /// Every linear layer of the blocks with its HF name.
    fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let mut all = Vec::with_capacity(4 * self.h.len());
        for (i, b) in self.h.iter_mut().enumerate() {
            let name = |l: &str| format!("h.{i}.{l}");
            all.push((name("attn.c_attn"), &mut b.attn.c_attn));
            all.push((name("attn.c_proj"), &mut b.attn.c_proj));
            all.push((name("mlp.c_fc"), &mut b.mlp.c_fc));
            all.push((name("mlp.c_proj"), &mut b.mlp.c_proj));
        }
        all
    }

    /// Whether [`Self::quantize_int8`] can run (checked before any layer changes).
    pub fn check_int8(&mut self) -> Result<()> {
        for (name, l) in self.linears_mut() {
            l.check_int8(&name)?;
        }
        Ok(())
    }

    /// Final hidden states `[batch, seq, n_embd]` of whole sequences. Inference runs on
    /// rayon's pool ([`kernels::on_pool`]), training on the calling thread.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        if train {
            self.forward_here(input_ids, attention_mask, true)
        } else {
            kernels::on_pool(|| self.forward_here(input_ids, attention_mask, false))
        }
    }

    fn forward_here(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        if attention_mask.dims2()? != (b, t) {
            return Err(Error::Invalid(format!(
                "attention_mask {:?} does not match input_ids {:?}",
                attention_mask.dims(),
                input_ids.dims()
            )));
        }
        let mask: Vec<Vec<f32>> = attention_mask.to_dtype(DType::F32)?.to_vec2()?;
        let mut positions = Vec::with_capacity(b * t);
        for row in &mask {
            let mut next = 0;
            for &m in row {
                positions.push(position_of(m, &mut next));
            }
            self.check_positions(next)?;
        }
        let dev = input_ids.device();
        let positions = Tensor::from_vec(positions, (b, t), dev)?;
        let x = (self.wte.forward(input_ids)? + self.wpe.forward(&positions)?)?;
        let mut x = self.drop.forward(&x, train)?;
        let bias = MaskBias {
            mask: &mask,
            sparse: self.config.sparse_attention_stride,
            dev,
            cell: std::cell::OnceCell::new(),
        };
        let first: Vec<usize> = mask
            .iter()
            .map(|row| kernels::leading_padding(row))
            .collect();
        for block in &self.h {
            x = block.forward(&x, &bias, &first, train)?;
        }
        self.ln_f.forward(&x)
    }

    fn check_positions(&self, next: u32) -> Result<()> {
        let max = self.config.n_positions;
        if next as usize > max {
            return Err(Error::Invalid(format!(
                "sequence of {next} tokens is longer than the model's n_positions ({max}); \
                 shorten the prompt or generate fewer tokens"
            )));
        }
        Ok(())
    }
}

/// Position id of a token given the count of real tokens before it, as HF `generate`
/// derives them (`cumsum(mask) - 1`, padding set to 1): left padding does not shift the
/// positions of the real tokens.
fn position_of(mask: f32, next: &mut u32) -> u32 {
    if mask > 0.0 {
        *next += 1;
        *next - 1
    } else {
        1
    }
}

/// The additive attention mask of a forward pass, built on first use: the sparse kernel never
/// needs it, and at long lengths its `seq × seq` floats are what sparse attention avoids.
struct MaskBias<'a> {
    mask: &'a [Vec<f32>],
    sparse: Option<usize>,
    dev: &'a Device,
    cell: std::cell::OnceCell<Tensor>,
}

impl MaskBias<'_> {
    fn get(&self) -> Result<&Tensor> {
        if let Some(t) = self.cell.get() {
            return Ok(t);
        }
        let t = causal_mask_bias(self.mask, self.sparse, self.dev)?;
        Ok(self.cell.get_or_init(|| t))
    }
}

/// `[batch, 1, seq, seq]` additive mask: 0 where key `j ≤ i` is a token (and, with a
/// sparse stride, in the local + strided pattern), else -1e30.
fn causal_mask_bias(mask: &[Vec<f32>], sparse: Option<usize>, dev: &Device) -> Result<Tensor> {
    let (b, t) = (mask.len(), mask.first().map_or(0, Vec::len));
    let mut bias = vec![0f32; b * t * t];
    for (r, row) in mask.iter().enumerate() {
        let first = kernels::leading_padding(row);
        for i in 0..t {
            for (j, &m) in row.iter().enumerate() {
                let outside = match sparse {
                    Some(k) => {
                        i < first || j < first || !kernels::sparse_allowed(i - first, j - first, k)
                    }
                    None => false,
                };
                if j > i || m <= 0.0 || outside {
                    bias[(r * t + i) * t + j] = -1e30;
                }
            }
        }
    }
    Ok(Tensor::from_vec(bias, (b, 1, t, t), dev)?)
}
