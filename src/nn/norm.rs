//! Normalisation layers with `torch.nn`'s shapes, defaults and train/eval behaviour:
//! [`BatchNorm`] (`BatchNorm1d/2d/3d`: statistics per channel over the batch and every
//! position, running statistics with momentum for eval), [`LayerNormNd`] (`LayerNorm` over
//! the last one or more dimensions), [`InstanceNorm`] (per example and channel),
//! [`GroupNorm`] (per example over groups of channels) and [`RmsNorm`] (`RMSNorm`: no mean,
//! no bias). Input layout is torch's: `[N, C, *]` for the channel norms, `[*, shape…]` for
//! the last-dimension ones.
//!
//! Built from candle ops, so every gradient comes from autograd; the transformer blocks use
//! the fused last-dimension [`super::LayerNorm`] instead.

use crate::error::{Error, Result};
use candle_core::{Device, Tensor, D};
use std::sync::Mutex;

/// `(x − mean) / sqrt(var + eps)` over the last dimension of `x` (biased variance, as torch).
fn normalise_last(x: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    Ok(centred.broadcast_div(&var.affine(1.0, eps)?.sqrt()?)?)
}

/// A `[C]` tensor shaped `[1, C, 1, …]` to broadcast over an input of `rank` dimensions.
fn per_channel(t: &Tensor, rank: usize) -> Result<Tensor> {
    let mut shape = vec![1usize; rank];
    shape[1] = t.elem_count();
    Ok(t.reshape(shape)?)
}

/// `x * weight + bias` where each is present, `weight`/`bias` reshaped by `shape_of`.
fn affine(
    x: Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    shape_of: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let x = match weight {
        Some(w) => x.broadcast_mul(&shape_of(w)?)?,
        None => x,
    };
    Ok(match bias {
        Some(b) => x.broadcast_add(&shape_of(b)?)?,
        None => x,
    })
}

/// An error unless `x` is `[N, channels, …]` with `min_rank..=5` dimensions.
fn check_channels(x: &Tensor, channels: usize, min_rank: usize, what: &str) -> Result<()> {
    let ok = (min_rank..=5).contains(&x.rank()) && x.dim(1)? == channels;
    if !ok {
        return Err(Error::Invalid(format!(
            "{what}({channels}) expects input [N, {channels}, …] of {min_rank} to 5 dimensions, \
             got {:?}",
            x.dims()
        )));
    }
    Ok(())
}

/// An error unless `t` is `[n]` (a weight or bias of `n` channels).
fn check_vector(t: Option<&Tensor>, n: usize, what: &str) -> Result<()> {
    match t {
        Some(t) if t.dims() != [n] => Err(Error::Invalid(format!(
            "{what} must have shape [{n}], got {:?}",
            t.dims()
        ))),
        _ => Ok(()),
    }
}

/// Running statistics of a [`BatchNorm`].
#[derive(Clone, Debug)]
pub struct RunningStats {
    /// `[C]` running mean (starts at 0).
    pub mean: Tensor,
    /// `[C]` running unbiased variance (starts at 1).
    pub var: Tensor,
    /// Training passes counted (`num_batches_tracked`).
    pub batches_tracked: u64,
}

/// `torch.nn.BatchNorm1d/2d/3d`: in training, each channel is normalised with the mean and
/// biased variance over the batch and every position, and the running statistics move
/// towards them by `momentum` (the variance unbiased, `m/(m−1)`); in eval, the running
/// statistics are used.
pub struct BatchNorm {
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    stats: Mutex<RunningStats>,
    channels: usize,
    eps: f64,
    momentum: f64,
}

impl BatchNorm {
    /// torch's initial state: weight 1, bias 0, running mean 0 and variance 1 (`eps` 1e-5 and
    /// `momentum` 0.1 are torch's defaults).
    pub fn new(channels: usize, eps: f64, momentum: f64, device: &Device) -> Result<Self> {
        let ones = Tensor::ones(channels, candle_core::DType::F32, device)?;
        let zeros = ones.zeros_like()?;
        let stats = RunningStats {
            mean: zeros.clone(),
            var: ones.clone(),
            batches_tracked: 0,
        };
        Self::from_tensors(Some(ones), Some(zeros), stats, eps, momentum)
    }

    /// From explicit tensors (a checkpoint's `weight`, `bias`, `running_mean`,
    /// `running_var`); `None` for an affine-free layer.
    pub fn from_tensors(
        weight: Option<Tensor>,
        bias: Option<Tensor>,
        stats: RunningStats,
        eps: f64,
        momentum: f64,
    ) -> Result<Self> {
        let channels = stats.mean.elem_count();
        check_vector(weight.as_ref(), channels, "BatchNorm weight")?;
        check_vector(bias.as_ref(), channels, "BatchNorm bias")?;
        check_vector(Some(&stats.var), channels, "BatchNorm running_var")?;
        Ok(BatchNorm {
            weight,
            bias,
            stats: Mutex::new(stats),
            channels,
            eps,
            momentum,
        })
    }

    /// The running statistics now.
    pub fn running_stats(&self) -> RunningStats {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RunningStats> {
        // A panic elsewhere cannot leave the statistics half-written: each is replaced whole.
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Normalises `x` `[N, C]` or `[N, C, …]`; `train` uses (and tracks) the batch's statistics.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        check_channels(x, self.channels, 2, "BatchNorm")?;
        let rank = x.rank();
        let (mean, var) = if train {
            // [C, everything else]: one row of values per channel.
            let rows = x
                .transpose(0, 1)?
                .contiguous()?
                .reshape((self.channels, ()))?;
            let m = rows.dim(1)?;
            if m < 2 {
                return Err(Error::Invalid(format!(
                    "BatchNorm in training needs more than one value per channel, got input {:?}",
                    x.dims()
                )));
            }
            let mean = rows.mean_keepdim(1)?;
            let var = rows.broadcast_sub(&mean)?.sqr()?.mean_keepdim(1)?;
            let (mean, var) = (mean.squeeze(1)?, var.squeeze(1)?);
            self.track(&mean, &var, m)?;
            (mean, var)
        } else {
            let s = self.lock();
            (s.mean.clone(), s.var.clone())
        };
        let y = x
            .broadcast_sub(&per_channel(&mean, rank)?)?
            .broadcast_div(&per_channel(&var.affine(1.0, self.eps)?.sqrt()?, rank)?)?;
        affine(y, self.weight.as_ref(), self.bias.as_ref(), |t| {
            per_channel(t, rank)
        })
    }

    /// `running = (1 − momentum)·running + momentum·batch` (variance unbiased).
    fn track(&self, mean: &Tensor, var: &Tensor, m: usize) -> Result<()> {
        let k = self.momentum;
        let unbiased = var.detach().affine(m as f64 / (m - 1) as f64, 0.0)?;
        let mut s = self.lock();
        let mean = (s.mean.affine(1.0 - k, 0.0)? + mean.detach().affine(k, 0.0)?)?;
        let var = (s.var.affine(1.0 - k, 0.0)? + unbiased.affine(k, 0.0)?)?;
        *s = RunningStats {
            mean,
            var,
            batches_tracked: s.batches_tracked + 1,
        };
        Ok(())
    }
}

/// The product of `shape`, checked against the last dimensions of `x`.
fn trailing(x: &Tensor, shape: &[usize], what: &str) -> Result<usize> {
    let dims = x.dims();
    if shape.is_empty() || dims.len() < shape.len() || dims[dims.len() - shape.len()..] != *shape {
        return Err(Error::Invalid(format!(
            "{what}({shape:?}) expects input ending in {shape:?}, got {dims:?}"
        )));
    }
    Ok(shape.iter().product())
}

/// `torch.nn.LayerNorm(normalized_shape)`: each example normalised over its last
/// `normalized_shape.len()` dimensions, then `weight`/`bias` of that shape.
pub struct LayerNormNd {
    shape: Vec<usize>,
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    eps: f64,
}

impl LayerNormNd {
    /// `weight`/`bias` of `shape` (or `None`: `elementwise_affine=False`).
    pub fn new(shape: &[usize], weight: Option<Tensor>, bias: Option<Tensor>, eps: f64) -> Self {
        LayerNormNd {
            shape: shape.to_vec(),
            weight,
            bias,
            eps,
        }
    }

    /// Normalises the last dimensions of `x`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let n = trailing(x, &self.shape, "LayerNorm")?;
        let flat = x.reshape((x.elem_count() / n, n))?;
        let y = normalise_last(&flat, self.eps)?.reshape(x.dims())?;
        affine(y, self.weight.as_ref(), self.bias.as_ref(), |t| {
            Ok(t.clone())
        })
    }
}

/// `torch.nn.RMSNorm(normalized_shape)`: `x / sqrt(mean(x²) + eps) · weight` over the last
/// dimensions; no centring, no bias. torch's `eps=None` is the f32 machine epsilon.
pub struct RmsNorm {
    shape: Vec<usize>,
    weight: Option<Tensor>,
    eps: f64,
}

impl RmsNorm {
    /// `eps`: `None` for torch's default (`f32::EPSILON`).
    pub fn new(shape: &[usize], weight: Option<Tensor>, eps: Option<f64>) -> Self {
        RmsNorm {
            shape: shape.to_vec(),
            weight,
            eps: eps.unwrap_or(f64::from(f32::EPSILON)),
        }
    }

    /// Normalises the last dimensions of `x`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let n = trailing(x, &self.shape, "RMSNorm")?;
        let flat = x.reshape((x.elem_count() / n, n))?;
        let ms = flat.sqr()?.mean_keepdim(D::Minus1)?;
        let y = flat.broadcast_div(&ms.affine(1.0, self.eps)?.sqrt()?)?;
        let y = y.reshape(x.dims())?;
        affine(y, self.weight.as_ref(), None, |t| Ok(t.clone()))
    }
}

/// `torch.nn.GroupNorm(num_groups, num_channels)`: each example's channels split into groups,
/// each group normalised over its channels and positions; then a weight and bias per channel.
pub struct GroupNorm {
    groups: usize,
    channels: usize,
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    eps: f64,
}

impl GroupNorm {
    /// An error unless `groups` divides `channels` and `weight`/`bias` are `[channels]`.
    pub fn new(
        groups: usize,
        channels: usize,
        weight: Option<Tensor>,
        bias: Option<Tensor>,
        eps: f64,
    ) -> Result<Self> {
        if groups == 0 || !channels.is_multiple_of(groups) {
            return Err(Error::Invalid(format!(
                "GroupNorm: num_groups {groups} must divide num_channels {channels}"
            )));
        }
        check_vector(weight.as_ref(), channels, "GroupNorm weight")?;
        check_vector(bias.as_ref(), channels, "GroupNorm bias")?;
        Ok(GroupNorm {
            groups,
            channels,
            weight,
            bias,
            eps,
        })
    }

    /// Normalises `x` `[N, C, …]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_channels(x, self.channels, 2, "GroupNorm")?;
        let n = x.dim(0)?;
        let grouped = x.reshape((n, self.groups, ()))?;
        let y = normalise_last(&grouped, self.eps)?.reshape(x.dims())?;
        let rank = x.rank();
        affine(y, self.weight.as_ref(), self.bias.as_ref(), |t| {
            per_channel(t, rank)
        })
    }
}

/// `torch.nn.InstanceNorm1d/2d/3d` (its default `track_running_stats=False`): each example's
/// channel normalised over its positions, in training and eval alike; `affine` optional
/// (torch's default: none).
pub struct InstanceNorm {
    norm: GroupNorm,
}

impl InstanceNorm {
    /// `weight`/`bias`: `[channels]` for `affine=True`, else `None`.
    pub fn new(
        channels: usize,
        weight: Option<Tensor>,
        bias: Option<Tensor>,
        eps: f64,
    ) -> Result<Self> {
        // One group per channel is exactly instance normalisation.
        Ok(InstanceNorm {
            norm: GroupNorm::new(channels, channels, weight, bias, eps)?,
        })
    }

    /// Normalises `x` `[N, C, L]` or `[N, C, H, W]` (…).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_channels(x, self.norm.channels, 3, "InstanceNorm")?;
        self.norm.forward(x)
    }
}
