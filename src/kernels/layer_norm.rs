//! LayerNorm over the last dimension: one fused pass forward, analytic backward.

use super::common::with_f32;
use super::common::{contiguous_f32, filled_by};
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

/// Rows of width `h` per rayon task: about 16K floats, enough work to amortise the task.
fn rows_per_task(h: usize) -> usize {
    (16384 / h.max(1)).max(1)
}

/// Mean and 1/std of one row.
#[inline(always)]
fn row_stats(xr: &[f32], eps: f32) -> (f32, f32) {
    let h = xr.len() as f32;
    let mean = simd::sum(xr) / h;
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
    let var = (acc.iter().sum::<f32>() + rest) / h;
    (mean, 1.0 / (var + eps).sqrt())
}

#[inline(always)]
fn normalize_rows(x: &[f32], w: &[f32], b: &[f32], out: &mut [f32], eps: f32) {
    let h = w.len();
    for (xr, yr) in x.chunks_exact(h).zip(out.chunks_exact_mut(h)) {
        let (mean, rstd) = row_stats(xr, eps);
        for i in 0..h {
            yr[i] = (xr[i] - mean) * rstd * w[i] + b[i];
        }
    }
}

/// `normalize(x + r)` in one pass over the rows: the residual sum never goes to memory.
#[inline(always)]
fn add_normalize_rows(x: &[f32], r: &[f32], w: &[f32], b: &[f32], out: &mut [f32], eps: f32) {
    let h = w.len();
    let rows = x.chunks_exact(h).zip(r.chunks_exact(h));
    for ((xr, rr), yr) in rows.zip(out.chunks_exact_mut(h)) {
        for ((y, x), r) in yr.iter_mut().zip(xr).zip(rr) {
            *y = x + r;
        }
        let (mean, rstd) = row_stats(yr, eps);
        for ((y, w), b) in yr.iter_mut().zip(w).zip(b) {
            *y = (*y - mean) * rstd * w + b;
        }
    }
}

dispatch!(fn add_normalize_rows_best(x: &[f32], r: &[f32], w: &[f32], b: &[f32], out: &mut [f32], eps: f32) => add_normalize_rows);

/// Inference `LayerNorm(x + residual)`; the weights travel inside the op (a few KB).
struct AddLayerNormOp {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

/// `LayerNorm(x + residual)`: fused on CPU f32 when nothing needs a gradient, else the
/// differentiable `layer_norm(x + residual)`.
pub fn add_layer_norm(
    x: &Tensor,
    residual: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    let frozen = !(x.track_op() || residual.track_op() || weight.track_op() || bias.track_op());
    if frozen && x.device().is_cpu() && x.dtype() == DType::F32 && x.shape() == residual.shape() {
        let op = AddLayerNormOp {
            weight: weight.to_dtype(DType::F32)?.to_vec1()?,
            bias: bias.to_dtype(DType::F32)?.to_vec1()?,
            eps: eps as f32,
        };
        return x
            .contiguous()?
            .apply_op2_no_bwd(&residual.contiguous()?, &op);
    }
    layer_norm(&(x + residual)?, weight, bias, eps)
}

impl candle_core::CustomOp2 for AddLayerNormOp {
    fn name(&self) -> &'static str {
        "bert4rs-add-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, "input")?;
        let r = contiguous_f32(s2, l2, "residual")?;
        let h = self.weight.len();
        if l1.dims().last() != Some(&h) || self.bias.len() != h || x.len() != r.len() {
            candle_core::bail!(
                "add_layer_norm: input {:?}, residual {:?}, weight [{h}]",
                l1.dims(),
                l2.dims()
            );
        }
        let rows_per_task = rows_per_task(h);
        // SAFETY: the chunks cover `out`; each row is written before it is read.
        let out = unsafe {
            filled_by(x.len(), |out: &mut [f32]| {
                out.par_chunks_mut(rows_per_task * h)
                    .zip(
                        x.par_chunks(rows_per_task * h)
                            .zip(r.par_chunks(rows_per_task * h)),
                    )
                    .for_each(|(o, (xi, ri))| {
                        add_normalize_rows_best(xi, ri, &self.weight, &self.bias, o, self.eps)
                    })
            })
        };
        Ok((CpuStorage::F32(out), l1.shape().clone()))
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
        let rows_per_task = rows_per_task(h);
        // SAFETY: the chunks cover `out`; each row is written, never read.
        let out = unsafe {
            filled_by(x.len(), |out: &mut [f32]| {
                out.par_chunks_mut(rows_per_task * h)
                    .zip(x.par_chunks(rows_per_task * h))
                    .for_each(|(o, xi)| normalize_rows_best(xi, w, b, o, self.eps))
            })
        };
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
        let h = x.dim(D::Minus1)?;
        let grad = grad.contiguous()?;
        let dev = x.device();
        let (dx, dw, db) = with_f32(x, |xv| {
            with_f32(w, |wv| {
                with_f32(&grad, |gv| Ok(backward(xv, wv, gv, self.eps)))
            })
        })?;
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(dw, h, dev)?),
            Some(Tensor::from_vec(db, h, dev)?),
        ))
    }
}

/// LayerNorm's backward in one pass per row block (as candle ops it was about twenty
/// element-wise passes, each allocating a tensor): with `x̂ = (x − mean)·rstd` and
/// `ĝ = g·w`, `dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))`, `dw = Σ g·x̂`, `db = Σ g` over rows.
/// Row blocks are fixed-size and their partial `dw`/`db` are summed in block order, so the
/// result does not depend on the thread count.
fn backward(x: &[f32], w: &[f32], g: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let h = w.len();
    let mut dx = vec![0f32; x.len()];
    if h == 0 || x.is_empty() {
        return (dx, vec![0f32; h], vec![0f32; h]);
    }
    let block = rows_per_task(h) * h;
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(block)
        .zip(x.par_chunks(block).zip(g.par_chunks(block)))
        .map(|(d, (xb, gb))| {
            let (mut dw, mut db) = (vec![0f32; h], vec![0f32; h]);
            backward_rows_best(xb, gb, w, d, &mut dw, &mut db, eps);
            (dw, db)
        })
        .collect();
    let (mut dw, mut db) = (vec![0f32; h], vec![0f32; h]);
    for (pw, pb) in &partials {
        for i in 0..h {
            dw[i] += pw[i];
            db[i] += pb[i];
        }
    }
    (dx, dw, db)
}

#[inline(always)]
fn backward_rows(
    x: &[f32],
    g: &[f32],
    w: &[f32],
    dx: &mut [f32],
    dw: &mut [f32],
    db: &mut [f32],
    eps: f32,
) {
    let h = w.len();
    let rows = x.chunks_exact(h).zip(g.chunks_exact(h));
    for ((xr, gr), dr) in rows.zip(dx.chunks_exact_mut(h)) {
        let (mean, rstd) = row_stats(xr, eps);
        let (mut m1, mut m2) = ([0f32; simd::LANES], [0f32; simd::LANES]);
        for (c, ((xc, gc), wc)) in xr
            .chunks(simd::LANES)
            .zip(gr.chunks(simd::LANES))
            .zip(w.chunks(simd::LANES))
            .enumerate()
        {
            for i in 0..xc.len() {
                let xhat = (xc[i] - mean) * rstd;
                let gh = gc[i] * wc[i];
                m1[i] += gh;
                m2[i] += gh * xhat;
                let j = c * simd::LANES + i;
                dw[j] += gc[i] * xhat;
                db[j] += gc[i];
            }
        }
        let m1 = m1.iter().sum::<f32>() / h as f32;
        let m2 = m2.iter().sum::<f32>() / h as f32;
        for i in 0..h {
            let xhat = (xr[i] - mean) * rstd;
            dr[i] = rstd * (gr[i] * w[i] - m1 - xhat * m2);
        }
    }
}

dispatch!(fn backward_rows_best(x: &[f32], g: &[f32], w: &[f32], dx: &mut [f32], dw: &mut [f32], db: &mut [f32], eps: f32) => backward_rows);
