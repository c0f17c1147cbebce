//! Inference linear layer on the packed kernel ([`sgemm`]) or the `gemm` crate:
//! `y = x · Wᵀ + b` with the bias written by the GEMM's own stores (no separate bias pass),
//! and on the crate the operand order chosen by row count so small batches do not waste its
//! 64-row register tile. candle's `matmul` offers neither, and these two were 10–25 % of
//! BERT-base time.

use super::common::contiguous_f32;
use super::common::with_f32;
use super::dropout::DropMask;
use super::gelu::Gelu;
use super::gemm::{self as sgemm, skinny, Strided};
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use std::sync::OnceLock;

/// The inference copy of a frozen weight `w [out, in]` in the layout this machine's GEMM
/// streams: 16-column panels (1-D) for the packed kernel ([`sgemm`], AVX2 or AVX-512), else
/// the contiguous transpose `[in, out]` for the `gemm` crate. `w_t`: that transpose when the caller already
/// holds it (GPT-2 stores `Conv1D` weights `[in, out]`). Other devices/dtypes: the transpose.
pub fn prepare_frozen_weight(w: &Tensor, w_t: Option<&Tensor>) -> Result<Tensor> {
    if sgemm::enabled() && w.device().is_cpu() && w.dtype() == DType::F32 {
        let (n, k) = w.dims2()?;
        let packed = with_f32(&w.contiguous()?, |wv| Ok(sgemm::pack_weight_t(wv, n, k)))?;
        return Tensor::from_vec(packed, sgemm::packed_len(k, n), w.device());
    }
    match w_t {
        Some(t) => Ok(t.clone()),
        None => w.t()?.contiguous(),
    }
}

/// Up to this many rows, the GEMM runs as `(W · xᵀ)ᵀ`: its long side is then the weight's
/// output dimension (measured on BERT-base shapes).
const SMALL_ROWS: usize = 64;

/// How [`LinearOp`] reads its weight argument.
#[derive(Clone, Copy, PartialEq)]
enum WeightLayout {
    /// `w [out, in]`, the product run as `(W · xᵀ)ᵀ` (or by the skinny kernel).
    /// (Reading `w_t` as a column-major `W` instead, which would save the second weight copy,
    /// ran 2× slower at BERT-base 1 × 32: gemm then packs the weight on every call.)
    Transposed,
    /// `wᵀ [in, out]` for the `gemm` crate.
    Plain,
    /// [`sgemm`] panels of `wᵀ` (`n` outputs).
    Packed { n: usize },
}

struct LinearOp {
    layout: WeightLayout,
    /// Applied to the output buffer in place (inference only: see [`linear_frozen`]).
    act: Option<Gelu>,
    /// `w [out, in]`, for the backward pass `dx = dy · w` (an `Arc` clone, no copy).
    weight: Tensor,
}

/// `x [rows, in] · wᵀ + bias [out]` on CPU f32, given both `w [out, in]` and its contiguous
/// transpose `w_t [in, out]`; `None` when this fast path does not apply (other device or
/// dtype), so the caller falls back to candle ops. Differentiable in `x` only: it is meant
/// for frozen (inference) weights. `act` is applied in the output buffer (no second tensor,
/// no separate op); only where no gradient is wanted (`None` is returned when `x` is
/// tracked).
pub fn linear_frozen(
    x: &Tensor,
    (w, w_t): (&Tensor, &Tensor),
    bias: &Tensor,
    act: Option<Gelu>,
) -> Result<Option<Tensor>> {
    if !x.device().is_cpu() || x.dtype() != DType::F32 || w_t.dtype() != DType::F32 {
        return Ok(None);
    }
    if act.is_some() && x.track_op() {
        return Ok(None);
    }
    let x = x.contiguous()?;
    let rows = x.dim(0)?;
    let (layout, weight) = if w_t.rank() == 1 {
        // Panels for `sgemm`'s packed kernel: it beats the skinny path above 16 rows.
        if rows <= skinny::MAX_ROWS {
            (WeightLayout::Transposed, w)
        } else {
            (WeightLayout::Packed { n: w.dim(0)? }, w_t)
        }
    } else if rows <= SMALL_ROWS {
        (WeightLayout::Transposed, w)
    } else {
        (WeightLayout::Plain, w_t)
    };
    let op = LinearOp {
        layout,
        act,
        weight: w.clone(),
    };
    Ok(Some(x.apply_op3(weight, bias, op)?))
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "bert4rs-linear"
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
        let (rows, k) = l1.shape().dims2()?;
        let (k2, n) = match self.layout {
            WeightLayout::Transposed => {
                let (n, k) = l2.shape().dims2()?;
                (k, n)
            }
            WeightLayout::Plain => l2.shape().dims2()?,
            WeightLayout::Packed { n } => {
                if w.len() != sgemm::packed_len(k, n) {
                    candle_core::bail!(
                        "linear: packed weight of {} values for [{k}, {n}]",
                        w.len()
                    );
                }
                (k, n)
            }
        };
        if k != k2 || b.len() != n {
            candle_core::bail!(
                "linear: x [{rows}, {k}], wᵀ [{k2}, {n}], bias [{}]",
                b.len()
            );
        }
        let threads = threads(rows * n * k);
        let par = parallelism(threads);
        let transposed = self.layout == WeightLayout::Transposed;
        let mut out = if transposed && rows <= skinny::MAX_ROWS {
            skinny::skinny_linear(x, rows, k, w, b)
        } else if let WeightLayout::Packed { .. } = self.layout {
            let mut out = Vec::with_capacity(rows * n);
            let xs = Strided {
                ptr: x.as_ptr(),
                rs: k,
                cs: 1,
            };
            // SAFETY: x covers rows·k values, w the packed [k, n], out rows·n; the GEMM writes
            // every output (bias + product) before `set_len` exposes them.
            unsafe {
                let bias = (false, Some(b));
                sgemm::gemm_packed((rows, n, k), xs, w, out.as_mut_ptr(), n, 1.0, bias, threads);
                out.set_len(rows * n);
            }
            out
        } else if transposed {
            // outᵀ [n, rows] = W [n, k] · xᵀ [k, rows], row-major (the layout gemm is fast
            // with here, measured), then one small transpose.
            // The bias is added in the transpose below: gemm with read_dst is slower here.
            let mut out_t = vec![0f32; rows * n];
            // SAFETY: the pointers cover n·k, rows·k and n·rows f32 values with these strides.
            unsafe {
                gemm::gemm(
                    n,
                    rows,
                    k,
                    out_t.as_mut_ptr(),
                    1,
                    rows as isize,
                    false,
                    w.as_ptr(),
                    1,
                    k as isize,
                    x.as_ptr(),
                    k as isize,
                    1,
                    1.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    par,
                );
            }
            let mut out = vec![0f32; rows * n];
            for (o, col) in out_t.chunks_exact(rows).enumerate() {
                for (r, v) in col.iter().enumerate() {
                    out[r * n + o] = *v + b[o];
                }
            }
            out
        } else {
            // wᵀ [k, n] row-major; the bias is written with the GEMM (see `gemm_new`).
            gemm_new((rows, n, k), x, k, 1, w, n, 1, Some(b))
        };
        if let Some(act) = self.act {
            act.forward_in_place(&mut out);
        }
        Ok((CpuStorage::F32(out), with_last(l1.dims(), n)))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        if self.act.is_some() {
            // linear_frozen only fuses the activation for untracked inputs.
            candle_core::bail!("linear: no backward through a fused inference activation");
        }
        // dx [rows, in] = dy [rows, out] · w [out, in], whatever layout the forward read.
        Ok((Some(grad.matmul(&self.weight)?), None, None))
    }
}

/// Threads for a GEMM of `m·n·k` multiply-adds: rayon's, when it is big enough to pay for
/// the hand-off.
pub(super) fn threads(work: usize) -> usize {
    // rayon's count of the pool we run in (candle's `get_num_threads` reads /proc/cpuinfo on
    // every call: 3 % of decoding time in a profile).
    let threads = rayon::current_num_threads();
    if threads > 1 && work > 64 * 64 * 64 {
        threads
    } else {
        1
    }
}

/// The `gemm` crate's name for a thread count.
fn parallelism(threads: usize) -> gemm::Parallelism {
    match threads {
        0 | 1 => gemm::Parallelism::None,
        t => gemm::Parallelism::Rayon(t),
    }
}

/// `dst [m, n] (row stride dst_rs) = beta · a [m, k] · b [k, n]` on strided operands, on
/// `threads` rayon threads (1: the calling thread only).
///
/// # Safety
/// Every pointer must cover its operand with the given strides.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn strided_gemm(
    dims: (usize, usize, usize),
    dst: *mut f32,
    dst_rs: usize,
    a: (*const f32, usize, usize),
    b: (*const f32, usize, usize),
    beta: f32,
    threads: usize,
) {
    strided_gemm_bias(dims, dst, dst_rs, a, b, (beta, None), threads);
}

/// [`strided_gemm`] plus a bias row added to every row of `dst` (in the GEMM's own stores on
/// the packed-kernel path: no separate pass).
///
/// # Safety
/// As [`strided_gemm`]; `bias` holds `n` values.
#[allow(clippy::too_many_arguments)]
unsafe fn strided_gemm_bias(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_rs: usize,
    (a, a_rs, a_cs): (*const f32, usize, usize),
    (b, b_rs, b_cs): (*const f32, usize, usize),
    (beta, bias): (f32, Option<&[f32]>),
    threads: usize,
) {
    if sgemm::enabled() {
        let a = Strided {
            ptr: a,
            rs: a_rs,
            cs: a_cs,
        };
        let b = Strided {
            ptr: b,
            rs: b_rs,
            cs: b_cs,
        };
        sgemm::gemm((m, n, k), a, b, dst, dst_rs, beta, (false, bias), threads);
        return;
    }
    if let Some(bias) = bias {
        for i in 0..m {
            std::ptr::copy_nonoverlapping(bias.as_ptr(), dst.add(i * dst_rs), n);
        }
    }
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        bias.is_some(),
        a,
        a_cs as isize,
        a_rs as isize,
        b,
        b_cs as isize,
        b_rs as isize,
        if bias.is_some() { 1.0 } else { 0.0 },
        beta,
        false,
        false,
        false,
        parallelism(threads),
    );
}

/// A new `c [m, n] = a · b (+ bias in every row)` on strided operands (row stride, column
/// stride of each), threaded when large. `c` is not zeroed first: the GEMM writes every
/// element (a calloc'd buffer is memset when the allocator recycles memory, a pass over up
/// to 12 MB per call), and the bias goes in with the GEMM's stores.
#[allow(clippy::too_many_arguments)]
fn gemm_new(
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: &[f32],
    b_rs: usize,
    b_cs: usize,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    assert!(
        a.len() >= m * k && b.len() >= k * n && bias.is_none_or(|b| b.len() == n),
        "gemm: operands too short"
    );
    let mut c = Vec::with_capacity(m * n);
    // SAFETY: the callers pass slices covering m·k and k·n elements with these strides (the
    // lengths are checked above); with beta 1 and no accumulation the GEMM writes all m·n
    // outputs (zeros or the bias when k = 0) before `set_len` exposes them.
    unsafe {
        strided_gemm_bias(
            (m, n, k),
            c.as_mut_ptr(),
            n,
            (a.as_ptr(), a_rs, a_cs),
            (b.as_ptr(), b_rs, b_cs),
            (1.0, bias),
            threads(m * n * k),
        );
        c.set_len(m * n);
    }
    c
}

/// Trainable linear layer as one graph node: `y = x · Wᵀ + b` forward, and a backward that
/// computes `dx = dy · W`, `dW = dyᵀ · x`, `db = Σ dy` with three direct GEMM/sum passes.
/// Composed from candle ops the same layer is five nodes (reshape, transpose, matmul,
/// broadcast add, reshape), each of which allocates a zero gradient, adds into it and copies
/// strided views: most of a training step's backward time in a profile.
struct TrainLinearOp {
    /// GELU on the output, fused so it adds no graph node.
    act: Option<Gelu>,
    /// Dropout on the output (`dropout(act(x · wᵀ + b))`), fused likewise.
    dropout: Option<DropMask>,
    /// With `act`: the pre-activation `x · wᵀ + b`, kept by the forward pass for the
    /// backward (the unfused graph kept it too, as the activation node's input).
    pre: OnceLock<Vec<f32>>,
}

/// What a fused trainable linear layer applies to its output: GELU, then dropout.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue {
    /// Activation (none: identity).
    pub act: Option<Gelu>,
    /// Dropout mask (none: no dropout).
    pub dropout: Option<DropMask>,
}

/// `(rows, last)` of an N-D shape: every leading dimension counts as rows.
fn rows_cols(dims: &[usize]) -> (usize, usize) {
    let cols = dims.last().copied().unwrap_or(1);
    (dims.iter().rev().skip(1).product(), cols)
}

/// `dims` with the last dimension replaced by `n`.
fn with_last(dims: &[usize], n: usize) -> Shape {
    let mut out = dims.to_vec();
    match out.last_mut() {
        Some(last) => *last = n,
        None => out.push(n),
    }
    Shape::from(out)
}

/// `x [..., in] · wᵀ + b` → `[..., out]` for trainable `w [out, in]`, `b [out]`,
/// differentiable in all three; `None` off CPU / f32 (the caller then uses candle ops).
/// Any leading dimensions are rows: flattening a `[batch, seq, in]` input with `reshape`
/// first would add two graph nodes, each a zero-fill and an add of an activation-sized
/// gradient in candle's backward pass.
/// With an epilogue, the output is `dropout(act(x · wᵀ + b))` (the dropout mask regenerated,
/// not stored, for the backward pass).
pub fn linear_train(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    epilogue: Epilogue,
) -> Result<Option<Tensor>> {
    let f32_cpu = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32;
    if !(f32_cpu(x) && f32_cpu(w) && f32_cpu(b)) {
        return Ok(None);
    }
    let op = TrainLinearOp {
        act: epilogue.act,
        dropout: epilogue.dropout,
        pre: OnceLock::new(),
    };
    Ok(Some(x.contiguous()?.apply_op3(w, b, op)?))
}

impl CustomOp3 for TrainLinearOp {
    fn name(&self) -> &'static str {
        "bert4rs-linear-train"
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
        let (rows, k) = rows_cols(l1.dims());
        let (n, k2) = l2.shape().dims2()?;
        if k != k2 || b.len() != n {
            candle_core::bail!(
                "linear: x {:?}, w [{n}, {k2}], bias [{}]",
                l1.dims(),
                b.len()
            );
        }
        // wᵀ [k, n]: element (kk, nn) = w[nn·k + kk] → row stride 1, column stride k.
        let mut out = gemm_new((rows, n, k), x, k, 1, w, 1, k, Some(b));
        if let Some(act) = self.act {
            let mut post = vec![0f32; out.len()];
            act.forward(&out, &mut post);
            // A second forward of the same node (never done by candle) keeps the first.
            let _ = self.pre.set(out);
            out = post;
        }
        if let Some(mask) = self.dropout {
            mask.apply(&mut out);
        }
        Ok((CpuStorage::F32(out), with_last(l1.dims(), n)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (rows, k) = rows_cols(x.dims());
        let n = w.dim(0)?;
        let grad = if self.dropout.is_some() || self.act.is_some() {
            let grad = grad.contiguous()?;
            let mut g = with_f32(&grad, |gv| {
                Ok(match self.dropout {
                    // d(y · mask)/dy = mask: the same mask, regenerated from its key.
                    Some(mask) => mask.applied(gv),
                    None => gv.to_vec(),
                })
            })?;
            if let Some(act) = self.act {
                let pre = self.pre.get().ok_or_else(|| {
                    candle_core::Error::Msg("linear: backward before forward".into())
                })?;
                act.backward_in_place(pre, &mut g);
            }
            Tensor::from_vec(g, grad.shape(), grad.device())?
        } else {
            grad.contiguous()?
        };
        let dev = x.device();
        let (dx, dw, db) = with_f32(&grad, |dy| {
            with_f32(w, |wv| {
                with_f32(x, |xv| {
                    // dx [rows, k] = dy [rows, n] · w [n, k]
                    let dx = gemm_new((rows, k, n), dy, n, 1, wv, k, 1, None);
                    // dW [n, k] = dyᵀ [n, rows] · x [rows, k]; dyᵀ(o, r) = dy[r·n + o]
                    let dw = gemm_new((n, k, rows), dy, 1, n, xv, k, 1, None);
                    let mut db = vec![0f32; n];
                    for row in dy.chunks_exact(n) {
                        for (d, g) in db.iter_mut().zip(row) {
                            *d += g;
                        }
                    }
                    Ok((dx, dw, db))
                })
            })
        })?;
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(dw, (n, k), dev)?),
            Some(Tensor::from_vec(db, n, dev)?),
        ))
    }
}
