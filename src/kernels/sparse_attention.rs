//! Causal local + strided sparse attention (the Sparse Transformer's "strided" pattern,
//! [Child et al., 2019](https://arxiv.org/abs/1904.10509), the notes' GPT-3 section): the
//! token at position `p` attends to the `k` positions `p-k+1 ..= p` and to every `k`-th one
//! before them (`p-k, p-2k, ...`). Each query gathers only its `k + p/k` keys, so a sequence
//! of `n` tokens costs `n·(k + n/k)·d` instead of `n²·d`, in time and in memory (no `n × n`
//! score matrix). Forward and backward are exact; a dense attention with the same mask is
//! the reference in the tests.
//!
//! Positions count real tokens: with left padding a row's real tokens are contiguous after
//! `first[row]` pads, so padding never changes which keys a token sees.
//!
//! Attention dropout (training) drops probability `(i, j)` of (sequence, head) `job` with
//! the mask element `(job·t + i)·t + j`, the element a dropout over the dense
//! `[batch, heads, t, t]` probabilities would use, so the kernel equals the dense masked
//! attention with the same [`DropMask`] exactly; the backward pass regenerates the mask.

use super::common::contiguous_f32;
use super::dropout::DropMask;
use super::softmax::softmax_rows_in_place_best;
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Positions (counted from the first real token) that position `p` attends to with stride
/// `k`, ascending: the strided ones `p - m·k` below the window, then the window.
pub fn sparse_positions(p: usize, k: usize, out: &mut Vec<usize>) {
    out.clear();
    let k = k.max(1);
    let lo = (p + 1).saturating_sub(k);
    // Strided positions below the window: p - m·k < lo, ascending.
    let mut q = p % k;
    // The smallest position ≡ p (mod k); step up to just below `lo`.
    while q < lo {
        out.push(q);
        q += k;
    }
    out.extend(lo..=p);
}

/// Left-padding tokens before a row's first real token (`mask` 1 = token); the whole row
/// when it has none.
pub fn leading_padding(mask: &[f32]) -> usize {
    mask.iter().position(|&m| m > 0.0).unwrap_or(mask.len())
}

/// True when position `p` may attend to position `q` (the dense mask of the same pattern).
pub fn sparse_allowed(p: usize, q: usize, k: usize) -> bool {
    q <= p && (p - q < k.max(1) || (p - q).is_multiple_of(k.max(1)))
}

struct SparseOp {
    stride: usize,
    scale: f32,
    /// Leading pad count of each batch row.
    first: Vec<usize>,
    dropout: Option<DropMask>,
}

/// `q, k, v` `[batch, heads, seq, head_dim]` → context `[batch, heads, seq, head_dim]`, with
/// `first[b]` left-padding tokens in row `b` (their outputs are zero) and `dropout` on the
/// attention probabilities. Differentiable in all three inputs. CPU f32 only (`None`
/// elsewhere: the caller uses a dense masked attention).
pub fn sparse_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    (stride, scale): (usize, f64),
    first: &[usize],
    dropout: Option<DropMask>,
) -> Result<Option<Tensor>> {
    if !q.device().is_cpu() || q.dtype() != DType::F32 {
        return Ok(None);
    }
    let (b, _, t, _) = q.dims4()?;
    if first.len() != b
        || first.iter().any(|&f| f > t)
        || k.dims() != q.dims()
        || v.dims() != q.dims()
    {
        candle_core::bail!(
            "sparse_attention: q {:?} k {:?} v {:?}, {} pad counts",
            q.dims(),
            k.dims(),
            v.dims(),
            first.len()
        );
    }
    let op = SparseOp {
        stride,
        scale: scale as f32,
        first: first.to_vec(),
        dropout,
    };
    Ok(Some(q.contiguous()?.apply_op3(
        &k.contiguous()?,
        &v.contiguous()?,
        op,
    )?))
}

/// Probabilities of one query over its gathered keys (`keys` = indices into the row);
/// `ones` is an all-ones mask at least as long as `keys`.
#[inline]
fn probs_of(
    q: &[f32],
    kr: &[f32],
    keys: &[usize],
    (d, scale): (usize, f32),
    ones: &[f32],
    out: &mut Vec<f32>,
) {
    out.clear();
    out.extend(keys.iter().map(|&j| {
        q.iter()
            .zip(&kr[j * d..(j + 1) * d])
            .map(|(a, b)| a * b)
            .sum::<f32>()
    }));
    softmax_rows_in_place_best(out, &ones[..keys.len()], scale);
}

impl SparseOp {
    /// Key indices (into the row) of query index `i` in a row with `first` pads.
    fn keys(&self, i: usize, first: usize, buf: &mut Vec<usize>) {
        sparse_positions(i - first, self.stride, buf);
        buf.iter_mut().for_each(|p| *p += first);
    }

    /// The dropout factors (`0` or `1/(1-p)`) of query `i`'s probabilities over `keys` in
    /// (sequence, head) `job` of length `t`; empty when dropout is off.
    fn drop_factors(&self, job: usize, t: usize, i: usize, keys: &[usize], out: &mut Vec<f32>) {
        out.clear();
        if let Some(mask) = self.dropout {
            let row = ((job * t + i) * t) as u64;
            out.extend(keys.iter().map(|&j| mask.factor(row + j as u64)));
        }
    }
}

impl CustomOp3 for SparseOp {
    fn name(&self) -> &'static str {
        "bert4rs-sparse-attention"
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
        let (q, k, v) = (
            contiguous_f32(s1, l1, "q")?,
            contiguous_f32(s2, l2, "k")?,
            contiguous_f32(s3, l3, "v")?,
        );
        let (b, h, t, d) = l1.shape().dims4()?;
        let mut out = vec![0f32; b * h * t * d];
        out.par_chunks_mut(t * d).enumerate().for_each(|(job, o)| {
            let first = self.first[job / h];
            let base = job * t * d;
            let (qr, kr, vr) = (
                &q[base..base + t * d],
                &k[base..base + t * d],
                &v[base..base + t * d],
            );
            let (mut keys, mut probs, ones) = (Vec::new(), Vec::new(), vec![1f32; t]);
            let mut factors = Vec::new();
            for i in first..t {
                self.keys(i, first, &mut keys);
                probs_of(
                    &qr[i * d..(i + 1) * d],
                    kr,
                    &keys,
                    (d, self.scale),
                    &ones,
                    &mut probs,
                );
                self.drop_factors(job, t, i, &keys, &mut factors);
                probs.iter_mut().zip(&factors).for_each(|(p, f)| *p *= f);
                let oi = &mut o[i * d..(i + 1) * d];
                for (&j, &p) in keys.iter().zip(&probs) {
                    for (x, y) in oi.iter_mut().zip(&vr[j * d..(j + 1) * d]) {
                        *x += p * y;
                    }
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, h, t, d) = q.dims4()?;
        let read = |x: &Tensor| -> Result<Vec<f32>> { x.contiguous()?.flatten_all()?.to_vec1() };
        let (q, k, v, g) = (read(q)?, read(k)?, read(v)?, read(grad)?);
        let n = b * h * t * d;
        let (mut dq, mut dk, mut dv) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
        dq.par_chunks_mut(t * d)
            .zip(dk.par_chunks_mut(t * d))
            .zip(dv.par_chunks_mut(t * d))
            .enumerate()
            .for_each(|(job, ((dqr, dkr), dvr))| {
                let first = self.first[job / h];
                let base = job * t * d;
                let rng = base..base + t * d;
                let (qr, kr, vr, gr) = (&q[rng.clone()], &k[rng.clone()], &v[rng.clone()], &g[rng]);
                let (mut keys, mut probs, mut dp) = (Vec::new(), Vec::new(), Vec::new());
                let (ones, mut factors) = (vec![1f32; t], Vec::new());
                for i in first..t {
                    self.keys(i, first, &mut keys);
                    let qi = &qr[i * d..(i + 1) * d];
                    let gi = &gr[i * d..(i + 1) * d];
                    probs_of(qi, kr, &keys, (d, self.scale), &ones, &mut probs);
                    self.drop_factors(job, t, i, &keys, &mut factors);
                    // With dropout: out = Σ (p·f)·v, so dv gets p·f·g and dp = f·(g·v).
                    let factor = |n: usize| factors.get(n).copied().unwrap_or(1.0);
                    dp.clear();
                    dp.extend(keys.iter().enumerate().map(|(n, &j)| {
                        factor(n)
                            * gi.iter()
                                .zip(&vr[j * d..(j + 1) * d])
                                .map(|(a, b)| a * b)
                                .sum::<f32>()
                    }));
                    let mean: f32 = probs.iter().zip(&dp).map(|(p, x)| p * x).sum();
                    for (n, ((&j, &p), &dpj)) in keys.iter().zip(&probs).zip(&dp).enumerate() {
                        let pd = p * factor(n);
                        for (x, y) in dvr[j * d..(j + 1) * d].iter_mut().zip(gi) {
                            *x += pd * y;
                        }
                        let ds = p * (dpj - mean) * self.scale;
                        for (x, y) in dqr[i * d..(i + 1) * d]
                            .iter_mut()
                            .zip(&kr[j * d..(j + 1) * d])
                        {
                            *x += ds * y;
                        }
                        for (x, y) in dkr[j * d..(j + 1) * d].iter_mut().zip(qi) {
                            *x += ds * y;
                        }
                    }
                }
            });
        let dev = grad.device();
        let shape = (b, h, t, d);
        Ok((
            Some(Tensor::from_vec(dq, shape, dev)?),
            Some(Tensor::from_vec(dk, shape, dev)?),
            Some(Tensor::from_vec(dv, shape, dev)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathered_positions_are_exactly_the_dense_pattern() {
        for k in 1..6 {
            for p in 0..40 {
                let mut got = Vec::new();
                sparse_positions(p, k, &mut got);
                let want: Vec<usize> = (0..=p).filter(|&q| sparse_allowed(p, q, k)).collect();
                assert_eq!(got, want, "p={p} k={k}");
            }
        }
    }
}
