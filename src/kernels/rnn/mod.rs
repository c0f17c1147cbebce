//! One LSTM or GRU layer — the input projection, every direction's recurrence and a
//! hand-written backward (back-propagation through time) — as one graph node. As candle
//! tensor ops the recurrence is ~20 nodes per step and direction (5,000 for a 128-step
//! BiLSTM, whose backward walk was 14× slower than `torch.nn.LSTM`), and even with a fused
//! recurrence the `[batch, seq, gates]` projection as its own node costs candle's
//! zero-filled gradient accumulator (32 MB at 32 × 128 × 2 × 1024): here it never leaves
//! the op. Each step is one GEMM `h_{t−1}·W_hhᵀ` plus the fused gate math ([`cells`]); the
//! directions run on separate threads; `dW_hh` is one GEMM over all steps at the end.
//!
//! Masked (padded) steps keep the state, so each sequence runs over its own length and the
//! reverse direction starts at its last real token, as a packed sequence does in torch.

mod cells;
mod sweep;

use super::common::{contiguous_f32, with_f32, OutPtr};
use super::gemm::{self, Strided};
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Mutex;

/// Which recurrent cell the kernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RnnCell {
    /// Gates i, f, g, o (torch's order); the state is `[h, c]`.
    Lstm,
    /// Gates r, z, n (torch's order); the state is `h`.
    Gru,
}

impl RnnCell {
    /// Gate blocks of `hidden` rows in `W_ih` / `W_hh`.
    pub fn gates(self) -> usize {
        match self {
            RnnCell::Lstm => 4,
            RnnCell::Gru => 3,
        }
    }
    /// Vectors of `hidden` values carried from step to step.
    fn state(self) -> usize {
        match self {
            RnnCell::Lstm => 2,
            RnnCell::Gru => 1,
        }
    }
}

/// Runs one layer over `x [batch, seq, in]`, all directions at once, and returns the flat
/// `[batch·seq·dirs·H + 2·batch·dirs·H]`: the outputs `[batch, seq, dirs·H]` (0 at padding),
/// then the final `h` and the final `c` `[batch, dirs·H]` each (GRU: `c` is 0). Direction 1
/// runs backwards in time. Differentiable in all three tensors; `None` off CPU f32.
///
/// - `w_ih [dirs·G·H, in + 1]`: each direction's `W_ih` stacked, the last column the bias
///   added to the input projection (LSTM: `b_ih + b_hh`; GRU: `b_ih + b_hh` for r and z,
///   `b_ih` alone for n);
/// - `w_hh`: LSTM `[dirs, 4H, H]`; GRU `[dirs, 3H + 1, H]`, the last row `b_hn` (which the
///   reset gate scales, so it cannot join the projection's bias);
/// - `mask [batch, seq]`: 1 = token, right-padded.
pub fn rnn_layer(
    cell: RnnCell,
    x: &Tensor,
    w_ih: &Tensor,
    w_hh: &Tensor,
    mask: &Tensor,
) -> Result<Option<Tensor>> {
    let cpu = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32;
    if !(cpu(x) && cpu(w_ih) && cpu(w_hh)) {
        return Ok(None);
    }
    let (b, t, input) = x.dims3()?;
    let (dirs, rows, h) = w_hh.dims3()?;
    let g = cell.gates();
    let extra = usize::from(cell == RnnCell::Gru);
    if rows != g * h + extra
        || w_ih.dims2()? != (dirs * g * h, input + 1)
        || mask.dims2()? != (b, t)
    {
        candle_core::bail!(
            "rnn layer ({cell:?}): x {:?}, w_ih {:?}, w_hh {:?}, mask {:?}",
            x.dims(),
            w_ih.dims(),
            w_hh.dims(),
            mask.dims()
        );
    }
    let mask = mask.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let op = RnnOp {
        cell,
        real: mask.iter().map(|&m| m > 0.5).collect(),
        saved: Mutex::new(None),
    };
    Ok(Some(x.contiguous()?.apply_op3(
        &w_ih.contiguous()?,
        &w_hh.contiguous()?,
        op,
    )?))
}

struct RnnOp {
    cell: RnnCell,
    /// `[batch, seq]`: whether the step is a token.
    real: Vec<bool>,
    /// Kept from the forward for the backward: the carried states `[batch, seq, dirs·S·H]`
    /// (a padded step keeps the previous ones) and the gate activations
    /// `[batch, seq, dirs·4H]` (read only at real steps).
    saved: Mutex<Option<(Vec<f32>, Vec<f32>)>>,
}

/// Shapes of one call.
#[derive(Clone, Copy)]
struct Dims {
    cell: RnnCell,
    b: usize,
    t: usize,
    h: usize,
    dirs: usize,
}

impl Dims {
    /// Gate values per direction and step.
    fn gh(self) -> usize {
        self.cell.gates() * self.h
    }
    /// Width of the projection (and its gradient): all directions' gates.
    fn proj_w(self) -> usize {
        self.dirs * self.gh()
    }
    /// Width of the carried-state buffer.
    fn state_w(self) -> usize {
        self.dirs * self.cell.state() * self.h
    }
    /// Width of the saved-activation buffer (4H per direction for both cells).
    fn act_w(self) -> usize {
        self.dirs * 4 * self.h
    }
    /// Width of one output step.
    fn out_w(self) -> usize {
        self.dirs * self.h
    }
    /// Values of a direction's slice of `w_hh`.
    fn w_hh_len(self) -> usize {
        (self.gh() + usize::from(self.cell == RnnCell::Gru)) * self.h
    }
    /// Steps of direction `d` in processing order.
    fn steps(self, d: usize) -> Vec<usize> {
        match d {
            0 => (0..self.t).collect(),
            _ => (0..self.t).rev().collect(),
        }
    }
    /// Offset of (batch row, step) in a `[b, t, width]` buffer.
    fn at(self, row: usize, step: usize, width: usize) -> usize {
        (row * self.t + step) * width
    }
}

impl CustomOp3 for RnnOp {
    fn name(&self) -> &'static str {
        "rnn-layer"
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
        let x = contiguous_f32(s1, l1, "x")?;
        let w_ih = contiguous_f32(s2, l2, "w_ih")?;
        let w_hh = contiguous_f32(s3, l3, "w_hh")?;
        let (b, t, input) = l1.shape().dims3()?;
        let (dirs, _, h) = l3.shape().dims3()?;
        let d = Dims {
            cell: self.cell,
            b,
            t,
            h,
            dirs,
        };
        let proj = project(d, x, input, w_ih);
        // Every (row, step) of `states` is written; `acts` only at real steps, and only
        // those are read back.
        let mut states = pooled(b * t * d.state_w());
        let mut acts = pooled(b * t * d.act_w());
        let (sp, ap) = (OutPtr(states.as_mut_ptr()), OutPtr(acts.as_mut_ptr()));
        (0..dirs).into_par_iter().for_each(|dir| {
            let w = &w_hh[dir * d.w_hh_len()..(dir + 1) * d.w_hh_len()];
            // SAFETY: direction `dir` writes only its own columns of `states` and `acts`.
            unsafe { sweep::forward(d, dir, &self.real, &proj, w, sp, ap) };
        });
        give_back(proj);
        let out = self.outputs(d, &states);
        *self.saved.lock().unwrap_or_else(|p| p.into_inner()) = Some((states, acts));
        let len = out.len();
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w_ih: &Tensor,
        w_hh: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, t, input) = x.dims3()?;
        let (dirs, _, h) = w_hh.dims3()?;
        let d = Dims {
            cell: self.cell,
            b,
            t,
            h,
            dirs,
        };
        let saved = self.saved.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some((states, acts)) = saved else {
            candle_core::bail!("rnn layer: backward without its forward (or called twice)");
        };
        let grad = grad.contiguous()?;
        let mut dproj = pooled(b * t * d.proj_w());
        // The GRU's hidden-part gradients differ from the projection's (n gate); the
        // LSTM's are the same values.
        let mut dq = match self.cell {
            RnnCell::Gru => pooled(b * t * d.proj_w()),
            RnnCell::Lstm => Vec::new(),
        };
        let mut dw_hh = vec![0f32; dirs * d.w_hh_len()];
        let dp = OutPtr(dproj.as_mut_ptr());
        let dqp = match self.cell {
            RnnCell::Gru => OutPtr(dq.as_mut_ptr()),
            RnnCell::Lstm => dp,
        };
        with_f32(&grad, |gs| {
            with_f32(w_hh, |w| {
                dw_hh
                    .par_chunks_mut(d.w_hh_len())
                    .enumerate()
                    .for_each(|(dir, dw)| {
                        let wd = &w[dir * d.w_hh_len()..(dir + 1) * d.w_hh_len()];
                        let bufs = (gs, states.as_slice(), acts.as_slice(), wd);
                        // SAFETY: direction `dir` writes only its own columns of `dproj`
                        // and `dq`.
                        unsafe { sweep::backward(d, dir, &self.real, bufs, (dp, dqp), dw) };
                    });
                Ok(())
            })
        })?;
        give_back(states);
        give_back(acts);
        give_back(dq);
        let (dx, dw_ih) = with_f32(x, |xs| {
            with_f32(w_ih, |w| Ok(input_grads(d, input, xs, w, &dproj)))
        })?;
        give_back(dproj);
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(dw_ih, w_ih.shape(), dev)?),
            Some(Tensor::from_vec(dw_hh, w_hh.shape(), dev)?),
        ))
    }
}

impl RnnOp {
    /// The op's output from the carried states: masked `h` per step, final `h`, final `c`.
    fn outputs(&self, d: Dims, states: &[f32]) -> Vec<f32> {
        let (h, t, ow, sw, s) = (d.h, d.t, d.out_w(), d.state_w(), d.cell.state());
        let mut out = vec![0f32; d.b * (t + 2) * ow];
        let (steps, finals) = out.split_at_mut(d.b * t * ow);
        let (last_h, last_c) = finals.split_at_mut(d.b * ow);
        for row in 0..d.b {
            for dir in 0..d.dirs {
                let col = dir * s * h;
                for step in 0..t {
                    if self.real[row * t + step] {
                        let src = &states[d.at(row, step, sw) + col..][..h];
                        steps[d.at(row, step, ow) + dir * h..][..h].copy_from_slice(src);
                    }
                }
                let last = if dir == 0 { t - 1 } else { 0 };
                let src = &states[d.at(row, last, sw) + col..][..s * h];
                last_h[row * ow + dir * h..][..h].copy_from_slice(&src[..h]);
                if s == 2 {
                    last_c[row * ow + dir * h..][..h].copy_from_slice(&src[h..]);
                }
            }
        }
        out
    }
}

impl Drop for RnnOp {
    /// An op whose backward never ran (inference) returns its buffers too.
    fn drop(&mut self) {
        if let Some((states, acts)) = self.saved.get_mut().ok().and_then(Option::take) {
            give_back(states);
            give_back(acts);
        }
    }
}

/// `x · W_ih[:, :in]ᵀ + W_ih[:, in]` over all rows and steps: `[b·t, dirs·G·H]`.
fn project(d: Dims, x: &[f32], input: usize, w_ih: &[f32]) -> Vec<f32> {
    let n = d.proj_w();
    let bias: Vec<f32> = (0..n).map(|r| w_ih[r * (input + 1) + input]).collect();
    let mut proj = pooled(d.b * d.t * n);
    let a = Strided {
        ptr: x.as_ptr(),
        rs: input,
        cs: 1,
    };
    // B (k, j) = W_ih[j, k].
    let w = Strided {
        ptr: w_ih.as_ptr(),
        rs: 1,
        cs: input + 1,
    };
    let rows = d.b * d.t;
    // SAFETY: the operands cover [rows, input], [input, n] and [rows, n].
    unsafe {
        gemm::gemm(
            (rows, n, input),
            a,
            w,
            proj.as_mut_ptr(),
            n,
            1.0,
            (false, Some(&bias)),
            rayon::current_num_threads(),
        )
    };
    proj
}

/// The gradients of `x` and of `w_ih` (weights and the bias column) from the projection's.
fn input_grads(
    d: Dims,
    input: usize,
    x: &[f32],
    w_ih: &[f32],
    dproj: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let (rows, n) = (d.b * d.t, d.proj_w());
    let threads = rayon::current_num_threads();
    let mut dx = vec![0f32; rows * input];
    let mut dw = vec![0f32; n * (input + 1)];
    let dp = Strided {
        ptr: dproj.as_ptr(),
        rs: n,
        cs: 1,
    };
    let dp_t = Strided {
        ptr: dproj.as_ptr(),
        rs: 1,
        cs: n,
    };
    let w = Strided {
        ptr: w_ih.as_ptr(),
        rs: input + 1,
        cs: 1,
    };
    let xs = Strided {
        ptr: x.as_ptr(),
        rs: input,
        cs: 1,
    };
    // SAFETY: dx [rows, input] = dproj [rows, n] · W_ih[:, :input]; dW[:, :input]
    // [n, input] (row stride input + 1) = dprojᵀ · x.
    unsafe {
        gemm::gemm(
            (rows, input, n),
            dp,
            w,
            dx.as_mut_ptr(),
            input,
            1.0,
            (false, None),
            threads,
        );
        gemm::gemm(
            (n, input, rows),
            dp_t,
            xs,
            dw.as_mut_ptr(),
            input + 1,
            1.0,
            (false, None),
            threads,
        );
    }
    let db = column_sums(dproj, n);
    for (r, v) in db.into_iter().enumerate() {
        dw[r * (input + 1) + input] = v;
    }
    (dx, dw)
}

/// Sums of each column of a row-major `[rows, n]` buffer, halves of the rows in parallel.
fn column_sums(m: &[f32], n: usize) -> Vec<f32> {
    let rows = m.len() / n;
    let part = rows.div_ceil(rayon::current_num_threads().max(1)).max(1);
    m.par_chunks(part * n)
        .map(|chunk| {
            let mut s = vec![0f32; n];
            for row in chunk.chunks_exact(n) {
                for (a, v) in s.iter_mut().zip(row) {
                    *a += v;
                }
            }
            s
        })
        .reduce(
            || vec![0f32; n],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        )
}

/// Buffers of earlier calls, reused: a BiLSTM step of batch 32 × 128 frees and reallocates
/// ~100 MB of projections, states, activations and gradients, which come back from the OS
/// as fresh pages the kernel must zero (`clear_page_erms` was 14 % of a training step).
static POOL: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// A buffer of `len` values, contents unspecified.
fn pooled(len: usize) -> Vec<f32> {
    let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
    // The smallest that fits, so a small request does not take the big buffers.
    let best = (0..pool.len())
        .filter(|&i| pool[i].capacity() >= len)
        .min_by_key(|&i| pool[i].capacity());
    let mut v = match best {
        Some(i) => pool.swap_remove(i),
        None => Vec::with_capacity(len),
    };
    drop(pool);
    v.resize(len, 0.0);
    v
}

fn give_back(v: Vec<f32>) {
    if v.capacity() == 0 {
        return;
    }
    let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
    if pool.len() < 12 {
        pool.push(v);
    }
}
