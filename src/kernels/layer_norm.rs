//! LayerNorm over the last dimension: one fused pass forward, analytic backward.

use super::simd::{self, dispatch};
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

struct LayerNormOp {
    eps: f32,
}

/// `y = (x - mean) / sqrt(var + eps) * weight + bias` over the last dimension,
/// differentiable in `x`, `weight` and `bias`.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let x = x.contiguous()?;
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        x.apply_op3(weight, bias, LayerNormOp { eps: eps as f32 })
    } else {
        layer_norm_composite(&x, weight, bias, eps)
    }
}

/// Reference implementation from primitive ops (used on GPU and in tests).
pub fn layer_norm_composite(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let xhat = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
    xhat.broadcast_mul(w)?.broadcast_add(b)
}

#[inline(always)]
fn normalize_rows(x: &[f32], w: &[f32], b: &[f32], out: &mut [f32], eps: f32) {
    let h = w.len();
    for (xr, yr) in x.chunks_exact(h).zip(out.chunks_exact_mut(h)) {
        let mean = simd::sum(xr) / h as f32;
        let mut acc = [0f32; simd::LANES];
        let chunks = xr.chunks_exact(simd::LANES);
        let rest: f32 = chunks
            .remainder()
            .iter()
            .map(|v| (v - mean) * (v - mean))
            .sum();
        for c in chunks {
            for i in 0..simd::LANES {
                let d = c[i] - mean;
                acc[i] += d * d;
            }
        }
        let var = (acc.iter().sum::<f32>() + rest) / h as f32;
        let rstd = 1.0 / (var + eps).sqrt();
        for i in 0..h {
            yr[i] = (xr[i] - mean) * rstd * w[i] + b[i];
        }
    }
}

dispatch!(fn normalize_rows_best(x: &[f32], w: &[f32], b: &[f32], out: &mut [f32], eps: f32) => normalize_rows);

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "bert4rs-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, "input")?;
        let w = contiguous_f32(s2, l2, "weight")?;
        let b = contiguous_f32(s3, l3, "bias")?;
        let h = *l1.dims().last().unwrap_or(&0);
        if w.len() != h || b.len() != h {
            candle_core::bail!(
                "layer_norm: weight/bias have {}/{} elements, last dim is {h}",
                w.len(),
                b.len()
            );
        }
        let mut out = vec![0f32; x.len()];
        // Rows per task: enough work to amortise rayon's overhead.
        let rows_per_task = (16384 / h.max(1)).max(1);
        out.par_chunks_mut(rows_per_task * h)
            .zip(x.par_chunks(rows_per_task * h))
            .for_each(|(o, xi)| normalize_rows_best(xi, w, b, o, self.eps));
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let h = x.dim(D::Minus1)? as f64;
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let rstd = (var + self.eps as f64)?.sqrt()?.recip()?;
        let xhat = xc.broadcast_mul(&rstd)?;
        let rows = grad.elem_count() / grad.dim(D::Minus1)?;
        let g2 = grad.reshape((rows, ()))?;
        let dw = (&g2 * xhat.reshape((rows, ()))?)?.sum(0)?;
        let db = g2.sum(0)?;
        let dxhat = grad.broadcast_mul(w)?;
        let m1 = dxhat.sum_keepdim(D::Minus1)?;
        let m2 = (&dxhat * &xhat)?.sum_keepdim(D::Minus1)?;
        let inner = ((dxhat * h)?.broadcast_sub(&m1)? - xhat.broadcast_mul(&m2)?)?;
        let dx = inner.broadcast_mul(&(rstd / h)?)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// The f32 slice behind a contiguous layout, or an error naming the argument.
pub(super) fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(d) => d.as_slice(),
        _ => candle_core::bail!("{what}: expected f32"),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{what}: expected a contiguous tensor"),
    }
}
