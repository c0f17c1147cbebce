//! Fused self-attention for training: `dropout(softmax(scale · q·kᵀ + mask)) · v` per
//! (sequence, head) on q, k, v read in place from `[batch, seq, hidden]`, with a hand-written
//! backward that recomputes the probabilities (as FlashAttention does) instead of storing the
//! `[batch, heads, seq, seq]` tensor. The dropout mask is a pure function of (key, element),
//! so the backward pass regenerates exactly the forward's mask.
//!
//! The tensor-op version of the same layer is about ten candle graph nodes (head split and
//! merge copies, two batched matmuls, softmax, dropout), each of which allocates a zero
//! gradient and adds into it on the way back; here it is one node.

use super::common::contiguous_f32;
use super::dropout::DropMask;
use super::linear::strided_gemm;
use super::softmax::softmax_rows_in_place_best;
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Key-padding mask, dropout and scale of one attention call.
struct TrainAttentionOp {
    heads: usize,
    scale: f32,
    /// `[batch, seq]`, 1 = token.
    mask: Vec<f32>,
    /// Dropout on the probabilities, over all jobs' `[t, t]` blocks job after job.
    dropout: Option<DropMask>,
}

/// `q`, `k`, `v` `[batch, seq, hidden]` (heads side by side), `key_mask` `[batch, seq]` →
/// context `[batch, seq, hidden]`, differentiable in q, k and v, with `dropout` on the
/// attention probabilities. `None` off CPU f32.
pub fn attention_train(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    key_mask: &Tensor,
    heads: usize,
    scale: f64,
    dropout: Option<DropMask>,
) -> Result<Option<Tensor>> {
    let cpu_f32 = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32;
    if !(cpu_f32(q) && cpu_f32(k) && cpu_f32(v)) {
        return Ok(None);
    }
    let (b, t, h) = q.dims3()?;
    if k.dims() != q.dims() || v.dims() != q.dims() || h % heads != 0 || key_mask.dims2()? != (b, t)
    {
        candle_core::bail!(
            "attention: q {:?}, k {:?}, v {:?}, mask {:?}, {heads} heads",
            q.dims(),
            k.dims(),
            v.dims(),
            key_mask.dims()
        );
    }
    let mask = key_mask
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let op = TrainAttentionOp {
        heads,
        scale: scale as f32,
        mask,
        dropout,
    };
    Ok(Some(q.contiguous()?.apply_op3(
        &k.contiguous()?,
        &v.contiguous()?,
        op,
    )?))
}

/// A raw pointer shared by tasks that write disjoint (sequence, head) blocks.
#[derive(Clone, Copy)]
struct Ptr(*mut f32);
// SAFETY: every task writes only its own (sequence, head) block.
unsafe impl Send for Ptr {}
unsafe impl Sync for Ptr {}

impl Ptr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// `dst [m, n] (row stride dst_rs) = beta · a [m, k] · b [k, n]`, single-threaded (the
/// callers run many of these side by side).
///
/// # Safety
/// Every pointer must cover its operand with the given strides.
#[allow(clippy::too_many_arguments)]
unsafe fn mm(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    b_rs: usize,
    b_cs: usize,
    beta: f32,
) {
    strided_gemm(
        (m, n, k),
        dst,
        dst_rs,
        (a, a_rs, a_cs),
        (b, b_rs, b_cs),
        beta,
        1,
    );
}

impl TrainAttentionOp {
    /// Softmax probabilities `p [t, t]` of one (sequence, head), and the same after dropout
    /// in `pd` (a copy of `p` when dropout is off).
    ///
    /// # Safety
    /// `q`/`k` point at the head's first column of the sequence's first row (stride `h`).
    #[allow(clippy::too_many_arguments)]
    unsafe fn probs(
        &self,
        job: usize,
        t: usize,
        d: usize,
        h: usize,
        q: *const f32,
        k: *const f32,
        p: &mut [f32],
        pd: &mut [f32],
    ) {
        let bi = job / self.heads;
        mm(t, t, d, p.as_mut_ptr(), t, q, h, 1, k, 1, h, 1.0);
        let mask = &self.mask[bi * t..(bi + 1) * t];
        softmax_rows_in_place_best(p, mask, self.scale);
        pd.copy_from_slice(p);
        if let Some(mask) = self.dropout {
            mask.apply_at((job * t * t) as u64, pd);
        }
    }
}

impl CustomOp3 for TrainAttentionOp {
    fn name(&self) -> &'static str {
        "bert4rs-attention-train"
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
        let q = contiguous_f32(s1, l1, "q")?;
        let k = contiguous_f32(s2, l2, "k")?;
        let v = contiguous_f32(s3, l3, "v")?;
        let (b, t, h) = l1.shape().dims3()?;
        let d = h / self.heads;
        // Not zeroed: every (sequence, head) block is written by its context GEMM.
        let mut out = Vec::with_capacity(b * t * h);
        let dst = Ptr(out.as_mut_ptr());
        (0..b * self.heads).into_par_iter().for_each_init(
            || (vec![0f32; t * t], vec![0f32; t * t]),
            |(p, pd), job| {
                let base = (job / self.heads) * t * h + (job % self.heads) * d;
                // SAFETY: q/k/v hold t rows of stride h from `base`; this task owns the
                // output block of its sequence and head.
                unsafe {
                    self.probs(
                        job,
                        t,
                        d,
                        h,
                        q.as_ptr().add(base),
                        k.as_ptr().add(base),
                        p,
                        pd,
                    );
                    mm(
                        t,
                        d,
                        t,
                        dst.get().add(base),
                        h,
                        pd.as_ptr(),
                        t,
                        1,
                        v.as_ptr().add(base),
                        h,
                        1,
                        1.0,
                    );
                }
            },
        );
        // SAFETY: the b·heads blocks of t rows × d columns tile all b·t·h outputs.
        unsafe { out.set_len(b * t * h) };
        Ok((CpuStorage::F32(out), Shape::from((b, t, h))))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, t, h) = q.dims3()?;
        let d = h / self.heads;
        let grad = grad.contiguous()?;
        // Not zeroed: each (sequence, head) block of dq, dk, dv is written by one GEMM.
        let len = b * t * h;
        let (mut dq, mut dk, mut dv) = (
            Vec::with_capacity(len),
            Vec::with_capacity(len),
            Vec::with_capacity(len),
        );
        let (pq, pk, pv) = (
            Ptr(dq.as_mut_ptr()),
            Ptr(dk.as_mut_ptr()),
            Ptr(dv.as_mut_ptr()),
        );
        super::common::with_f32(&grad, |dc| {
            super::common::with_f32(q, |q| {
                super::common::with_f32(k, |k| {
                    super::common::with_f32(v, |v| {
                        (0..b * self.heads).into_par_iter().for_each_init(
                            || (vec![0f32; t * t], vec![0f32; t * t], vec![0f32; t * t]),
                            |(p, pd, dp), job| {
                                let base = (job / self.heads) * t * h + (job % self.heads) * d;
                                // SAFETY: as in the forward; each task writes only its own
                                // (sequence, head) blocks of dq, dk, dv.
                                unsafe {
                                    let (qb, kb, vb) = (
                                        q.as_ptr().add(base),
                                        k.as_ptr().add(base),
                                        v.as_ptr().add(base),
                                    );
                                    let dcb = dc.as_ptr().add(base);
                                    self.probs(job, t, d, h, qb, kb, p, pd);
                                    // dV = Pdᵀ · dC
                                    mm(
                                        t,
                                        d,
                                        t,
                                        pv.get().add(base),
                                        h,
                                        pd.as_ptr(),
                                        1,
                                        t,
                                        dcb,
                                        h,
                                        1,
                                        1.0,
                                    );
                                    // dPd = dC · Vᵀ
                                    mm(t, t, d, dp.as_mut_ptr(), t, dcb, h, 1, vb, 1, h, 1.0);
                                    // dS = P ⊙ (dP − Σ_j dP·P), with dP = dPd ⊙ dropout factor.
                                    if let Some(mask) = self.dropout {
                                        mask.apply_at((job * t * t) as u64, dp);
                                    }
                                    for (prow, dprow) in
                                        p.chunks_exact(t).zip(dp.chunks_exact_mut(t))
                                    {
                                        let mut dot = 0f32;
                                        for (x, g) in prow.iter().zip(dprow.iter()) {
                                            dot += *g * x;
                                        }
                                        for (x, g) in prow.iter().zip(dprow.iter_mut()) {
                                            *g = x * (*g - dot);
                                        }
                                    }
                                    // dQ = scale · dS · K, dK = scale · dSᵀ · Q
                                    mm(
                                        t,
                                        d,
                                        t,
                                        pq.get().add(base),
                                        h,
                                        dp.as_ptr(),
                                        t,
                                        1,
                                        kb,
                                        h,
                                        1,
                                        self.scale,
                                    );
                                    mm(
                                        t,
                                        d,
                                        t,
                                        pk.get().add(base),
                                        h,
                                        dp.as_ptr(),
                                        1,
                                        t,
                                        qb,
                                        h,
                                        1,
                                        self.scale,
                                    );
                                }
                            },
                        );
                        Ok(())
                    })
                })
            })
        })?;
        // SAFETY: the b·heads blocks of t rows × d columns tile all b·t·h outputs of each.
        unsafe {
            dq.set_len(len);
            dk.set_len(len);
            dv.set_len(len);
        }
        let dev = q.device();
        Ok((
            Some(Tensor::from_vec(dq, (b, t, h), dev)?),
            Some(Tensor::from_vec(dk, (b, t, h), dev)?),
            Some(Tensor::from_vec(dv, (b, t, h), dev)?),
        ))
    }
}
