//! GPT-2 ([Radford et al., 2019](https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf)),
//! block for block as HF `modeling_gpt2.py` names them: token + learned position embeddings,
//! pre-norm blocks of causal self-attention and MLP (`Conv1D` weights stored `[in, out]`),
//! a final LayerNorm and an LM head tied to the token table.
//!
//! Two forward passes share the weights: [`Gpt2LMHeadModel::forward`] runs whole sequences
//! with tensor ops (differentiable, for training and scoring) and
//! [`Gpt2LMHeadModel::forward_cached`] appends tokens to a [`Gpt2Cache`] for decoding.

use crate::config::{Gpt2Config, HiddenAct};
use crate::error::{Error, Result};
use crate::kernels::{self, GreedyScreen, KvBuffer};
use crate::models::hub;
use crate::nn::{Dropout, Embedding, LayerNorm, Linear, Params};
use candle_core::{DType, Device, Tensor, D};
use std::path::Path;
use std::sync::OnceLock;

/// Checkpoint keys that are buffers (the causal-mask tables of old checkpoints), not weights.
const BUFFER_SUFFIXES: [&str; 2] = [".attn.bias", ".attn.masked_bias"];

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

/// Keys, values, masks and next positions of every sequence being decoded.
pub struct Gpt2Cache {
    layers: Vec<KvBuffer>,
    /// Per sequence, 1 for every cached token and 0 for padding.
    mask: Vec<Vec<f32>>,
    /// Per sequence, the position id of its next real token.
    next_position: Vec<u32>,
}

impl Gpt2Cache {
    /// Cached positions per sequence (padding included).
    pub fn len(&self) -> usize {
        self.mask.first().map_or(0, Vec::len)
    }

    /// True before the first token.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sequences in the cache.
    pub fn rows(&self) -> usize {
        self.mask.len()
    }

    /// Keeps sequence `order[i]` as sequence `i` (beam search).
    pub fn reorder(&mut self, order: &[usize]) {
        for l in &mut self.layers {
            l.reorder(order);
        }
        self.mask = order.iter().map(|&i| self.mask[i].clone()).collect();
        self.next_position = order.iter().map(|&i| self.next_position[i]).collect();
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

    /// An empty cache for `rows` sequences.
    pub fn new_cache(&self, rows: usize) -> Gpt2Cache {
        let c = &self.config;
        Gpt2Cache {
            layers: (0..c.n_layer)
                .map(|_| KvBuffer::new(rows, c.n_head, c.head_dim()))
                .collect(),
            mask: vec![Vec::new(); rows],
            next_position: vec![0; rows],
        }
    }

    /// Appends `ids` (`rows × t`, equal lengths; `mask` 0 marks left padding) to the cache
    /// and returns the final hidden state of each row's last token, `[rows, n_embd]`.
    pub fn forward_cached(
        &self,
        ids: &[Vec<u32>],
        mask: &[Vec<f32>],
        cache: &mut Gpt2Cache,
    ) -> Result<Tensor> {
        kernels::on_pool(|| self.forward_cached_here(ids, mask, cache))
    }

    fn forward_cached_here(
        &self,
        ids: &[Vec<u32>],
        mask: &[Vec<f32>],
        cache: &mut Gpt2Cache,
    ) -> Result<Tensor> {
        let rows = cache.rows();
        let t = ids.first().map_or(0, Vec::len);
        if ids.len() != rows || mask.len() != rows || t == 0 {
            return Err(Error::Invalid(format!(
                "forward_cached: {} id rows and {} mask rows for a cache of {rows} sequences (need equal, non-empty rows)",
                ids.len(),
                mask.len()
            )));
        }
        let mut positions = Vec::with_capacity(rows * t);
        for r in 0..rows {
            if ids[r].len() != t || mask[r].len() != t {
                return Err(Error::Invalid(
                    "forward_cached: rows of different lengths".into(),
                ));
            }
            let mut next = cache.next_position[r];
            for &m in &mask[r] {
                positions.push(position_of(m, &mut next));
            }
            self.check_positions(next)?;
            cache.next_position[r] = next;
            cache.mask[r].extend_from_slice(&mask[r]);
        }
        let dev = self.wte.weight().device();
        let flat: Vec<u32> = ids.concat();
        let ids = Tensor::from_vec(flat, (rows, t), dev)?;
        let positions = Tensor::from_vec(positions, (rows, t), dev)?;
        let mut x = (self.wte.forward(&ids)? + self.wpe.forward(&positions)?)?;
        let key_mask: Vec<f32> = cache.mask.concat();
        for (block, kv) in self.h.iter().zip(&mut cache.layers) {
            x = block.forward_cached(&x, kv, &key_mask)?;
        }
        let last = x.narrow(1, t - 1, 1)?.squeeze(1)?;
        self.ln_f.forward(&last)
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

/// GPT-2 with its language-model head (HF `GPT2LMHeadModel`).
pub struct Gpt2LMHeadModel {
    transformer: Gpt2Model,
    lm_head: Linear,
    /// The LM head's bf16 screen for [`Self::greedy_tokens`], built on first use.
    greedy: OnceLock<Option<GreedyScreen>>,
    params: Params,
    prefix: String,
}

impl Gpt2LMHeadModel {
    /// Loads `config.json` and the weights of an HF GPT-2 directory (names with or without
    /// the `transformer.` prefix).
    pub fn from_dir(dir: &Path, device: &Device, trainable: bool) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::config(dir, "model directory not found"));
        }
        let cfg = Gpt2Config::from_file(&dir.join("config.json"))?;
        let weights = hub::find_weights(dir)?;
        let tensors = hub::read_tensors(&weights)?;
        let prefix = if tensors.contains_key("transformer.wte.weight") {
            "transformer"
        } else if tensors.contains_key("wte.weight") {
            ""
        } else {
            return Err(Error::checkpoint(
                &weights,
                "no GPT-2 weights: expected `transformer.wte.weight` or `wte.weight`",
            ));
        };
        let params = Params::from_tensors(tensors, &weights, device, trainable);
        let model = Self::load(&params, &cfg, prefix)?;
        let unused: Vec<String> = params
            .unused_keys()
            .into_iter()
            .filter(|k| !BUFFER_SUFFIXES.iter().any(|s| k.ends_with(s)))
            .collect();
        if !unused.is_empty() {
            log::warn!(
                "{} unused tensors in {}: {}",
                unused.len(),
                weights.display(),
                unused.join(", ")
            );
        }
        Ok(model)
    }

    /// A new model with HF's initialisation (`GPT2PreTrainedModel._init_weights`): normal(0,
    /// initializer_range) weights and embeddings, the residual projections (`c_proj`) scaled
    /// by 1/√(2·n_layer), zero biases, unit LayerNorms; seeded.
    pub fn new_random(
        cfg: &Gpt2Config,
        device: &Device,
        trainable: bool,
        seed: u64,
    ) -> Result<Self> {
        let (e, inner, std) = (cfg.n_embd, cfg.inner_dim(), cfg.initializer_range);
        let proj_std = std / (2.0 * cfg.n_layer as f64).sqrt();
        let mut rng = crate::rng::Rng::new(seed);
        let mut tensors = std::collections::HashMap::new();
        let mut normal = |name: String, shape: (usize, usize), s: f64| -> Result<()> {
            let v: Vec<f32> = (0..shape.0 * shape.1)
                .map(|_| (rng.normal() * s) as f32)
                .collect();
            tensors.insert(name, Tensor::from_vec(v, shape, &Device::Cpu)?);
            Ok(())
        };
        normal("transformer.wte.weight".into(), (cfg.vocab_size, e), std)?;
        normal("transformer.wpe.weight".into(), (cfg.n_positions, e), std)?;
        for i in 0..cfg.n_layer {
            let p = format!("transformer.h.{i}");
            normal(format!("{p}.attn.c_attn.weight"), (e, 3 * e), std)?;
            normal(format!("{p}.attn.c_proj.weight"), (e, e), proj_std)?;
            normal(format!("{p}.mlp.c_fc.weight"), (e, inner), std)?;
            normal(format!("{p}.mlp.c_proj.weight"), (inner, e), proj_std)?;
        }
        let mut constant = |name: String, n: usize, v: f32| -> Result<()> {
            tensors.insert(name, Tensor::full(v, n, &Device::Cpu)?);
            Ok(())
        };
        for i in 0..cfg.n_layer {
            let p = format!("transformer.h.{i}");
            constant(format!("{p}.attn.c_attn.bias"), 3 * e, 0.0)?;
            constant(format!("{p}.attn.c_proj.bias"), e, 0.0)?;
            constant(format!("{p}.mlp.c_fc.bias"), inner, 0.0)?;
            constant(format!("{p}.mlp.c_proj.bias"), e, 0.0)?;
            for ln in ["ln_1", "ln_2"] {
                constant(format!("{p}.{ln}.weight"), e, 1.0)?;
                constant(format!("{p}.{ln}.bias"), e, 0.0)?;
            }
        }
        constant("transformer.ln_f.weight".into(), e, 1.0)?;
        constant("transformer.ln_f.bias".into(), e, 0.0)?;
        let params = Params::from_tensors(tensors, Path::new("<new model>"), device, trainable);
        Self::load(&params, cfg, "transformer")
    }

    /// Builds from parameters (`prefix` is where the `GPT2Model` weights live).
    pub fn load(params: &Params, cfg: &Gpt2Config, prefix: &str) -> Result<Self> {
        let scoped = if prefix.is_empty() {
            params.clone()
        } else {
            params.pp(prefix)
        };
        let transformer = Gpt2Model::load(&scoped, cfg)?;
        let tied = cfg
            .extra
            .get("tie_word_embeddings")
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        let table = if !tied && params.contains("lm_head.weight") {
            params.get((cfg.vocab_size, cfg.n_embd), "lm_head.weight")?
        } else {
            // Tied: the checkpoint's copy (if any) equals `wte`; mark it as used.
            params.discard("lm_head.weight");
            transformer.wte.weight().clone()
        };
        let zeros = Tensor::zeros(cfg.vocab_size, DType::F32, table.device())?;
        Ok(Gpt2LMHeadModel {
            transformer,
            lm_head: Linear::new(table, Some(zeros)),
            greedy: OnceLock::new(),
            params: params.clone(),
            prefix: prefix.to_string(),
        })
    }

    /// The config the model was built from.
    pub fn config(&self) -> &Gpt2Config {
        &self.transformer.config
    }

    /// Every parameter by HF name.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Logits `[batch, seq, vocab]` of whole sequences (differentiable).
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        self.logits(&self.hidden_states(input_ids, attention_mask, train)?)
    }

    /// An empty decoding cache for `rows` sequences.
    pub fn new_cache(&self, rows: usize) -> Gpt2Cache {
        self.transformer.new_cache(rows)
    }

    /// Appends tokens to the cache and returns the next-token logits `[rows, vocab]`.
    pub fn forward_cached(
        &self,
        ids: &[Vec<u32>],
        mask: &[Vec<f32>],
        cache: &mut Gpt2Cache,
    ) -> Result<Tensor> {
        kernels::on_pool(|| self.logits(&self.forward_cached_hidden(ids, mask, cache)?))
    }

    /// Final hidden states `[batch, seq, n_embd]` of whole sequences (the LM head's input).
    pub fn hidden_states(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        self.transformer.forward(input_ids, attention_mask, train)
    }

    /// Appends tokens to the cache and returns each row's final hidden state `[rows,
    /// n_embd]` (the input of [`Self::logits`] and [`Self::greedy_tokens`]).
    pub fn forward_cached_hidden(
        &self,
        ids: &[Vec<u32>],
        mask: &[Vec<f32>],
        cache: &mut Gpt2Cache,
    ) -> Result<Tensor> {
        self.transformer.forward_cached(ids, mask, cache)
    }

    /// Logits `[rows, vocab]` from final hidden states `[rows, n_embd]`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        kernels::on_pool(|| self.lm_head.forward(hidden))
    }

    /// The most likely next token of each row of final hidden states `[rows, n_embd]`:
    /// exactly the first maximum of [`Self::logits`], read mostly from a bf16 copy of the LM
    /// head (half its memory traffic, which bounds batch-1 decoding; see
    /// [`GreedyScreen`]). The copy (half the head's size) is made on first use. `None` where
    /// the screen does not apply (trainable or non-CPU model, no AVX2, more than 16 rows,
    /// non-finite values): take the argmax of the logits then.
    pub fn greedy_tokens(&self, hidden: &Tensor) -> Result<Option<Vec<u32>>> {
        let screen = match self.greedy.get() {
            Some(s) => s,
            None => {
                let s = self.lm_head.greedy_screen()?;
                self.greedy.get_or_init(|| s)
            }
        };
        let Some(screen) = screen else {
            return Ok(None);
        };
        let picks = kernels::on_pool(|| self.lm_head.argmax_screened(hidden, screen))?;
        Ok(picks.map(|p| p.into_iter().map(|i| i as u32).collect()))
    }

    /// Writes `config.json` and `model.safetensors` as `GPT2LMHeadModel.save_pretrained`
    /// does (HF names, tied head not stored), atomically.
    pub fn save_pretrained(&self, dir: &Path) -> Result<()> {
        let mut cfg = self.config().clone();
        cfg.extra.insert(
            "architectures".into(),
            serde_json::json!(["GPT2LMHeadModel"]),
        );
        let tensors: Vec<(String, Tensor)> = self
            .params
            .named_tensors()
            .into_iter()
            .map(|(k, t)| {
                let k = if self.prefix.is_empty() && k != "lm_head.weight" {
                    format!("transformer.{k}")
                } else {
                    k
                };
                (k, t)
            })
            .collect();
        hub::save_pretrained(dir, &cfg.to_json()?, &tensors)
    }
}
