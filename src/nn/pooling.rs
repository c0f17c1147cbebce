//! Sentence pooling over encoder outputs. Every mode is masked wherever a mask exists, so
//! padding never changes a pooled vector.

use super::params::{Init, Params};
use super::{LayerNorm, Linear};
use crate::error::{Error, Result};
use crate::kernels;
use candle_core::{DType, Tensor, D};
use std::fmt;
use std::str::FromStr;

/// LayerNorm epsilon of the attention pooling head (torch's `nn.LayerNorm` default).
pub const ATTENTION_POOLING_EPS: f64 = 1e-5;

/// How token vectors become one sentence vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// The `[CLS]` vector of the last layer.
    Cls,
    /// The checkpoint's pooler: `tanh(dense(h[:, 0]))`.
    Pooler,
    /// Masked mean of the last layer.
    Mean,
    /// Masked max per dimension.
    Max,
    /// Masked min per dimension.
    Min,
    /// Masked mean concatenated with the mean of the `k` largest values per dimension.
    MeanKmax { k: usize },
    /// Masked mean of (first block output + last block output) / 2 (SimCSE).
    FirstLastAvg,
    /// `[CLS]` of the last four layers, last first, concatenated.
    Last4ConcatCls,
    /// Learnable weighted average of layers `layer_start..`, then its `[CLS]` vector.
    WeightedLayer { layer_start: usize },
    /// Linear → LayerNorm → GELU → Linear(1) scores, masked softmax over tokens, weighted sum.
    Attention,
}

impl FromStr for Pooling {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        let (name, arg) = match norm.split_once(':') {
            Some((n, a)) => (n.to_string(), Some(a.to_string())),
            None => (norm.clone(), None),
        };
        let num = |default: usize| -> Result<usize> {
            match &arg {
                None => Ok(default),
                Some(a) => a
                    .parse()
                    .map_err(|_| Error::Invalid(format!("pooling {s:?}: {a:?} is not a number"))),
            }
        };
        Ok(match name.as_str() {
            "cls" => Pooling::Cls,
            "pooler" => Pooling::Pooler,
            "mean" => Pooling::Mean,
            "max" => Pooling::Max,
            "min" => Pooling::Min,
            "mean_kmax" => Pooling::MeanKmax { k: num(3)?.max(1) },
            "first_last_avg" => Pooling::FirstLastAvg,
            "last4_concat_cls" => Pooling::Last4ConcatCls,
            "weighted_layer" => Pooling::WeightedLayer {
                layer_start: num(4)?,
            },
            "attention" => Pooling::Attention,
            _ => {
                return Err(Error::Invalid(format!(
                    "unknown pooling {s:?}; choose one of: cls, pooler, mean, max, min, \
                     mean_kmax[:k], first_last_avg, last4_concat_cls, weighted_layer[:start], attention"
                )))
            }
        })
    }
}

impl fmt::Display for Pooling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pooling::Cls => write!(f, "cls"),
            Pooling::Pooler => write!(f, "pooler"),
            Pooling::Mean => write!(f, "mean"),
            Pooling::Max => write!(f, "max"),
            Pooling::Min => write!(f, "min"),
            Pooling::MeanKmax { k } => write!(f, "mean_kmax:{k}"),
            Pooling::FirstLastAvg => write!(f, "first_last_avg"),
            Pooling::Last4ConcatCls => write!(f, "last4_concat_cls"),
            Pooling::WeightedLayer { layer_start } => write!(f, "weighted_layer:{layer_start}"),
            Pooling::Attention => write!(f, "attention"),
        }
    }
}

/// The attention-pooling head's layers.
struct AttentionHead {
    dense: Linear,
    norm: LayerNorm,
    score: Linear,
}

/// A pooling mode with its learnable parameters (for `weighted_layer` and `attention`).
pub struct Pooler {
    kind: Pooling,
    layer_weights: Option<Tensor>,
    attention: Option<AttentionHead>,
}

impl Pooler {
    /// Builds the pooler; learnable parts come from `p` when present, else are initialised
    /// (layer weights to 1, linear weights normal(0, `init_std`)).
    pub fn new(
        kind: Pooling,
        p: &Params,
        hidden: usize,
        num_layers: usize,
        init_std: f64,
    ) -> Result<Self> {
        let mut pooler = Pooler {
            kind,
            layer_weights: None,
            attention: None,
        };
        match kind {
            Pooling::WeightedLayer { layer_start } => {
                if layer_start > num_layers {
                    return Err(Error::Invalid(format!(
                        "weighted_layer: layer_start {layer_start} is past the model's {num_layers} layers"
                    )));
                }
                let n = num_layers + 1 - layer_start;
                pooler.layer_weights = Some(p.get_or_init(n, "layer_weights", Init::Ones)?);
            }
            Pooling::Attention => {
                pooler.attention = Some(AttentionHead {
                    dense: Linear::load_or_init(&p.pp("dense"), hidden, hidden, init_std)?,
                    norm: LayerNorm::load_or_init(&p.pp("norm"), hidden, ATTENTION_POOLING_EPS)?,
                    score: Linear::load_or_init(&p.pp("score"), hidden, 1, init_std)?,
                });
            }
            _ => {}
        }
        Ok(pooler)
    }

    /// The mode.
    pub fn kind(&self) -> Pooling {
        self.kind
    }

    /// Width of the pooled vector for a model of width `hidden`.
    pub fn output_dim(&self, hidden: usize) -> usize {
        match self.kind {
            Pooling::MeanKmax { .. } => 2 * hidden,
            Pooling::Last4ConcatCls => 4 * hidden,
            _ => hidden,
        }
    }

    /// Pools `hidden_states` (embedding output then every layer, each `[batch, seq, hidden]`)
    /// with `mask` `[batch, seq]` (1 = token, 0 = padding) into `[batch, output_dim]`.
    pub fn forward(
        &self,
        hidden_states: &[Tensor],
        pooler_output: Option<&Tensor>,
        mask: &Tensor,
    ) -> Result<Tensor> {
        let last = hidden_states
            .last()
            .ok_or_else(|| Error::Invalid("pooling: no hidden states".into()))?;
        let mask = mask.to_dtype(last.dtype())?;
        match self.kind {
            Pooling::Cls => cls(last),
            Pooling::Pooler => pooler_output.cloned().ok_or_else(|| {
                Error::Invalid(
                    "pooling `pooler`: this checkpoint has no pooler weights; use cls or mean"
                        .into(),
                )
            }),
            Pooling::Mean => masked_mean(last, &mask),
            Pooling::Max => masked_extreme(last, &mask, true),
            Pooling::Min => masked_extreme(last, &mask, false),
            Pooling::MeanKmax { k } => {
                let mean = masked_mean(last, &mask)?;
                Ok(Tensor::cat(
                    &[&mean, &masked_kmax_mean(last, &mask, k)?],
                    1,
                )?)
            }
            Pooling::FirstLastAvg => {
                let n = hidden_states.len();
                if n < 2 {
                    return Err(Error::Invalid(
                        "first_last_avg needs at least one layer".into(),
                    ));
                }
                masked_mean(
                    &((&hidden_states[1] + &hidden_states[n - 1])? / 2.0)?,
                    &mask,
                )
            }
            Pooling::Last4ConcatCls => {
                let n = hidden_states.len();
                if n < 4 {
                    return Err(Error::Invalid(format!(
                        "last4_concat_cls needs 4 hidden states, the model has {n}"
                    )));
                }
                let cls4 = (1..=4)
                    .map(|i| cls(&hidden_states[n - i]))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Tensor::cat(&cls4, 1)?)
            }
            Pooling::WeightedLayer { layer_start } => {
                self.weighted_layer(hidden_states, layer_start)
            }
            Pooling::Attention => self.attention_pool(last, &mask),
        }
    }

    fn weighted_layer(&self, hidden_states: &[Tensor], start: usize) -> Result<Tensor> {
        let w = self
            .layer_weights
            .as_ref()
            .ok_or_else(|| Error::Invalid("weighted_layer pooler built without weights".into()))?;
        let layers = hidden_states.get(start..).unwrap_or(&[]);
        if layers.len() != w.dim(0)? {
            return Err(Error::Invalid(format!(
                "weighted_layer: {} layer weights for {} hidden states from layer {start}",
                w.dim(0)?,
                layers.len()
            )));
        }
        let stacked = Tensor::stack(layers, 0)?; // [n, b, t, h]
        let wn = w.broadcast_div(&w.sum_all()?)?.reshape(((), 1, 1, 1))?;
        cls(&stacked.broadcast_mul(&wn)?.sum(0)?)
    }

    fn attention_pool(&self, h: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let head = self
            .attention
            .as_ref()
            .ok_or_else(|| Error::Invalid("attention pooler built without its head".into()))?;
        let (b, t, _) = h.dims3()?;
        let x = kernels::gelu_erf(&head.norm.forward(&head.dense.forward(h)?)?)?;
        let scores = head.score.forward(&x)?.reshape((b, 1, 1, t))?;
        let probs = kernels::masked_softmax(&scores, mask, 1.0)?.reshape((b, t, 1))?;
        Ok(h.broadcast_mul(&probs)?.sum(1)?)
    }
}

/// `h[:, 0]`.
fn cls(h: &Tensor) -> Result<Tensor> {
    Ok(h.narrow(1, 0, 1)?.squeeze(1)?)
}

/// Masked mean over the sequence; `mask` is `[batch, seq]`.
pub fn masked_mean(h: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let m = mask.to_dtype(h.dtype())?.unsqueeze(D::Minus1)?;
    let sum = h.broadcast_mul(&m)?.sum(1)?;
    let count = m.sum(1)?.clamp(1e-9, f64::INFINITY)?;
    Ok(sum.broadcast_div(&count)?)
}

/// `h` with padded positions replaced by `fill`.
fn fill_padding(h: &Tensor, mask: &Tensor, fill: f32) -> Result<Tensor> {
    let keep = mask
        .ne(0.0)?
        .unsqueeze(D::Minus1)?
        .broadcast_as(h.shape())?;
    let filler = Tensor::full(fill, h.shape(), h.device())?.to_dtype(h.dtype())?;
    Ok(keep.where_cond(h, &filler)?)
}

/// Masked max (`largest`) or min over the sequence.
fn masked_extreme(h: &Tensor, mask: &Tensor, largest: bool) -> Result<Tensor> {
    if largest {
        Ok(fill_padding(h, mask, f32::NEG_INFINITY)?.max(1)?)
    } else {
        Ok(fill_padding(h, mask, f32::INFINITY)?.min(1)?)
    }
}

/// Mean of the `k` largest unpadded values per dimension (all of them when a text is shorter).
fn masked_kmax_mean(h: &Tensor, mask: &Tensor, k: usize) -> Result<Tensor> {
    let (b, t, _) = h.dims3()?;
    // Finite filler: padded slots are multiplied by a zero weight below (−inf·0 would be NaN).
    let filled = fill_padding(h, mask, -1e30)?
        .transpose(1, 2)?
        .contiguous()?; // [b, h, t]
    let order = filled.arg_sort_last_dim(false)?;
    let sorted = filled.gather(&order, D::Minus1)?;
    let lens = mask.sum(1)?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    let mut w = vec![0f32; b * t];
    for (i, len) in lens.iter().enumerate() {
        let kb = k.min(*len as usize).max(1);
        for j in 0..kb {
            w[i * t + j] = 1.0 / kb as f32;
        }
    }
    let w = Tensor::from_vec(w, (b, 1, t), h.device())?.to_dtype(h.dtype())?;
    Ok(sorted.broadcast_mul(&w)?.sum(D::Minus1)?)
}
