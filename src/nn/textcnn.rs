//! TextCNN (Kim, 2014, "Convolutional Neural Networks for Sentence Classification"): one 1-D
//! convolution per window size over the token vectors, ReLU, and a max over time per
//! filter, the pooled features of all window sizes concatenated. Masked: padding is zeroed
//! before the convolution and a window counts only when it lies inside the sequence (a
//! sequence shorter than a window gets that one window, zero-padded), so padding never
//! changes a sentence's features. Weights as a PyTorch `nn.ModuleList` of `nn.Conv1d`:
//! `convs.{i}.weight [filters, dim, k]`, `convs.{i}.bias`.

use super::{Init, Params};
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};

/// Convolutions over token vectors, max-pooled over time.
pub struct TextCnn {
    convs: Vec<(usize, Tensor, Tensor)>,
    filters: usize,
}

impl TextCnn {
    /// Loads (or initialises as `nn.Conv1d` does: Uniform(±1/√(dim·k))) `filters` filters
    /// per window size over `dim`-wide token vectors.
    pub fn load(p: &Params, dim: usize, window_sizes: &[usize], filters: usize) -> Result<Self> {
        if window_sizes.is_empty() || window_sizes.contains(&0) || filters == 0 {
            return Err(Error::Invalid(format!(
                "TextCNN needs window sizes ≥ 1 and filters ≥ 1 (got {window_sizes:?}, {filters})"
            )));
        }
        let convs = window_sizes
            .iter()
            .enumerate()
            .map(|(i, &k)| {
                let c = p.pp(&format!("convs.{i}"));
                let init = Init::Uniform(1.0 / ((dim * k) as f64).sqrt());
                Ok((
                    k,
                    c.get_or_init((filters, dim, k), "weight", init)?,
                    c.get_or_init(filters, "bias", init)?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(TextCnn { convs, filters })
    }

    /// Features per sentence: `filters × window sizes`.
    pub fn output_dim(&self) -> usize {
        self.filters * self.convs.len()
    }

    /// `x [batch, seq, dim]`, `mask [batch, seq]` (1 = token, right padding) →
    /// `[batch, filters · window sizes]`.
    pub fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let lengths: Vec<usize> = mask
            .to_dtype(DType::F32)?
            .to_vec2::<f32>()?
            .iter()
            .map(|m| m.iter().filter(|&&v| v > 0.5).count())
            .collect();
        let m = mask.to_dtype(x.dtype())?.unsqueeze(2)?;
        let x = x.broadcast_mul(&m)?;
        let mut pooled = Vec::with_capacity(self.convs.len());
        for (k, w, bias) in &self.convs {
            let xk = match t < *k {
                true => x.pad_with_zeros(1, 0, k - t)?,
                false => x.clone(),
            };
            // As a GEMM over unfolded windows `[b, windows, k·dim]` (offset-major), with the
            // kernel `[filters, dim, k]` laid out the same way (candle's conv1d backward gave
            // wrong kernel gradients here).
            let n = xk.dim(1)? - k + 1;
            let shifted: Vec<Tensor> = (0..*k)
                .map(|j| xk.narrow(1, j, n))
                .collect::<candle_core::Result<_>>()?;
            let windows = Tensor::cat(&shifted, 2)?;
            let wk = w.permute((0, 2, 1))?.reshape((w.dim(0)?, ()))?;
            let y = windows
                .broadcast_matmul(&wk.t()?)?
                .broadcast_add(bias)?
                .relu()?;
            let keep = valid_windows(&lengths, *k, n, x.device())?;
            // ReLU outputs are ≥ 0, so zeroing the invalid windows leaves each maximum as is.
            pooled.push(y.broadcast_mul(&keep)?.max(1)?);
        }
        let out = Tensor::cat(&pooled, 1)?;
        debug_assert_eq!(out.dims(), [b, self.output_dim()]);
        Ok(out)
    }
}

/// `[batch, windows, 1]` with 1 where a window of size `k` starting there lies inside the
/// sequence (the first window when the sequence is shorter than `k`).
fn valid_windows(lengths: &[usize], k: usize, windows: usize, device: &Device) -> Result<Tensor> {
    let v: Vec<f32> = lengths
        .iter()
        .flat_map(|&len| {
            (0..windows).map(move |p| {
                if p + k <= len || (len < k && p == 0) {
                    1.0
                } else {
                    0.0
                }
            })
        })
        .collect();
    Ok(Tensor::from_vec(v, (lengths.len(), windows, 1), device)?)
}
