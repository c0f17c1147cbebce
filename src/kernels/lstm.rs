//! The LSTM recurrence of one layer, all directions in one op, with a hand-written
//! backward (back-propagation through time). As candle tensor ops the recurrence is ~20
//! graph nodes per step and direction — 5,000 for a 128-step BiLSTM, whose backward walk
//! was 14× slower than `torch.nn.LSTM` — here it is one node. Each step is one GEMM
//! `h_{t−1}·W_hhᵀ` on the packed weight plus fused gate math; the directions run on
//! separate threads; `dW_hh` is one GEMM over all steps at the end.
//!
//! Masked (padded) steps keep the state, so each sequence runs over its own length and the
//! reverse direction starts at its last real token, as a packed sequence does in torch.

use super::common::{contiguous_f32, OutPtr};
use super::gemm::{self, Strided};
use super::simd::{self, dispatch};
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Mutex;

/// `[batch, seq, dirs·4H]` gate pre-activations from the inputs (`x·W_ihᵀ + b_ih + b_hh`,
/// torch's gate order i, f, g, o per direction), `w_hh [dirs, 4H, H]`, `mask [batch, seq]`
/// → `[batch, seq + 2, dirs·H]`: rows `0..seq` are the outputs (each direction's `h`, 0 at
/// padding), row `seq` the final `h` and row `seq + 1` the final `c` of each sequence,
/// differentiable in both inputs. Direction 1 runs backwards in time. `None` off CPU f32.
pub fn lstm_recurrence(proj: &Tensor, w_hh: &Tensor, mask: &Tensor) -> Result<Option<Tensor>> {
    let cpu = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32;
    if !(cpu(proj) && cpu(w_hh)) {
        return Ok(None);
    }
    let (b, t, g) = proj.dims3()?;
    let (dirs, g4, h) = w_hh.dims3()?;
    if g4 != 4 * h || g != dirs * g4 || mask.dims2()? != (b, t) {
        candle_core::bail!(
            "lstm: proj {:?}, w_hh {:?}, mask {:?}",
            proj.dims(),
            w_hh.dims(),
            mask.dims()
        );
    }
    let mask = mask.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let op = LstmOp {
        mask,
        saved: Mutex::new(None),
    };
    Ok(Some(proj.contiguous()?.apply_op2(&w_hh.contiguous()?, op)?))
}

struct LstmOp {
    /// `[batch, seq]`, 1 = token.
    mask: Vec<f32>,
    /// Kept from the forward for the backward: the carried states `[batch, seq, dirs·2H]`
    /// (`h`, `c` after each step; a padded step keeps the previous ones) and the gate
    /// activations `[batch, seq, dirs·4H]` (σi, σf, tanh g, σo).
    saved: Mutex<Option<(Vec<f32>, Vec<f32>)>>,
}

/// Shapes of one call.
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    h: usize,
    dirs: usize,
}

impl Dims {
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

impl CustomOp2 for LstmOp {
    fn name(&self) -> &'static str {
        "lstm-recurrence"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let proj = contiguous_f32(s1, l1, "proj")?;
        let w = contiguous_f32(s2, l2, "w_hh")?;
        let (b, t, _) = l1.shape().dims3()?;
        let (dirs, _, h) = l2.shape().dims3()?;
        let d = Dims { b, t, h, dirs };
        // Every (row, step) of `states` is written; `gates` only where a step is real, and
        // only those are read back.
        let mut states = pooled(b * t * dirs * 2 * h);
        let mut gates = pooled(b * t * dirs * 4 * h);
        let (sp, gp) = (OutPtr(states.as_mut_ptr()), OutPtr(gates.as_mut_ptr()));
        (0..dirs).into_par_iter().for_each(|dir| {
            let packed = gemm::pack_weight_t(&w[dir * 4 * h * h..(dir + 1) * 4 * h * h], 4 * h, h);
            // SAFETY: direction `dir` writes only its own columns of `states` and `gates`.
            unsafe { self.forward_direction(d, dir, proj, &packed, sp, gp) };
        });
        let out = self.outputs(d, &states);
        *self.saved.lock().unwrap_or_else(|p| p.into_inner()) = Some((states, gates));
        Ok((CpuStorage::F32(out), Shape::from((b, t + 2, dirs * h))))
    }

    fn bwd(
        &self,
        proj: &Tensor,
        w_hh: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (b, t, _) = proj.dims3()?;
        let (dirs, _, h) = w_hh.dims3()?;
        let d = Dims { b, t, h, dirs };
        let saved = self.saved.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some((states, gates)) = saved else {
            candle_core::bail!("lstm: backward without its forward (or called twice)");
        };
        let grad = grad.contiguous()?;
        let mut dproj = vec![0f32; b * t * dirs * 4 * h];
        let mut dw = vec![0f32; dirs * 4 * h * h];
        let dp = OutPtr(dproj.as_mut_ptr());
        super::common::with_f32(&grad, |gs| {
            super::common::with_f32(w_hh, |w| {
                dw.par_chunks_mut(4 * h * h)
                    .enumerate()
                    .for_each(|(dir, dw)| {
                        let wd = &w[dir * 4 * h * h..(dir + 1) * 4 * h * h];
                        // SAFETY: direction `dir` writes only its own columns of `dproj`.
                        unsafe {
                            self.backward_direction(d, dir, (gs, &states, &gates, wd), dp, dw)
                        };
                    });
                Ok(())
            })
        })?;
        give_back(states);
        give_back(gates);
        let dev = proj.device();
        Ok((
            Some(Tensor::from_vec(dproj, proj.shape(), dev)?),
            Some(Tensor::from_vec(dw, w_hh.shape(), dev)?),
        ))
    }
}

impl LstmOp {
    /// The op's output from the carried states: masked `h` per step, final `h`, final `c`.
    fn outputs(&self, d: Dims, states: &[f32]) -> Vec<f32> {
        let (h, dirs, t) = (d.h, d.dirs, d.t);
        let (sw, ow) = (dirs * 2 * h, dirs * h);
        let mut out = vec![0f32; d.b * (t + 2) * ow];
        for row in 0..d.b {
            let o = &mut out[row * (t + 2) * ow..(row + 1) * (t + 2) * ow];
            for dir in 0..dirs {
                for step in 0..t {
                    if self.mask[row * t + step] > 0.5 {
                        let s = &states[d.at(row, step, sw) + dir * 2 * h..][..h];
                        o[step * ow + dir * h..][..h].copy_from_slice(s);
                    }
                }
                let last = if dir == 0 { t - 1 } else { 0 };
                let s = &states[d.at(row, last, sw) + dir * 2 * h..][..2 * h];
                o[t * ow + dir * h..][..h].copy_from_slice(&s[..h]);
                o[(t + 1) * ow + dir * h..][..h].copy_from_slice(&s[h..]);
            }
        }
        out
    }

    /// Runs direction `dir` over all steps, writing its states and gates.
    ///
    /// # Safety
    /// `states` and `gates` must be the op's `[b, t, dirs·2H]` and `[b, t, dirs·4H]` buffers.
    unsafe fn forward_direction(
        &self,
        d: Dims,
        dir: usize,
        proj: &[f32],
        packed: &[f32],
        states: OutPtr,
        gates: OutPtr,
    ) {
        let (b, h) = (d.b, d.h);
        let (sw, gw) = (d.dirs * 2 * h, d.dirs * 4 * h);
        let mut pre = vec![0f32; b * 4 * h];
        let zeros = vec![0f32; 2 * h];
        let mut prev: Option<usize> = None;
        for step in d.steps(dir) {
            for row in 0..b {
                let src = &proj[d.at(row, step, gw) + dir * 4 * h..][..4 * h];
                pre[row * 4 * h..(row + 1) * 4 * h].copy_from_slice(src);
            }
            if let Some(p) = prev {
                // pre += h_prev · W_hhᵀ, h_prev read in place (row stride: one batch row).
                let a = Strided {
                    ptr: states.get().add(d.at(0, p, sw) + dir * 2 * h),
                    rs: d.t * sw,
                    cs: 1,
                };
                gemm::gemm_packed(
                    (b, 4 * h, h),
                    a,
                    packed,
                    pre.as_mut_ptr(),
                    4 * h,
                    1.0,
                    (true, None),
                    1,
                );
            }
            for row in 0..b {
                let real = self.mask[row * d.t + step] > 0.5;
                let at = |s: usize| states.get().add(d.at(row, s, sw) + dir * 2 * h);
                // The previous step's states and this step's are disjoint regions.
                let out = std::slice::from_raw_parts_mut(at(step), 2 * h);
                let act = std::slice::from_raw_parts_mut(
                    gates.get().add(d.at(row, step, gw) + dir * 4 * h),
                    4 * h,
                );
                let before: &[f32] = match prev {
                    Some(p) => std::slice::from_raw_parts(at(p), 2 * h),
                    None => &zeros,
                };
                match real {
                    true => cell_forward_best(
                        &pre[row * 4 * h..(row + 1) * 4 * h],
                        &before[h..],
                        act,
                        out,
                    ),
                    false => out.copy_from_slice(before),
                }
            }
            prev = Some(step);
        }
    }

    /// Back-propagates direction `dir` through time: its columns of `dproj`, and `dw`.
    ///
    /// # Safety
    /// `dproj` must be the `[b, t, dirs·4H]` gradient buffer.
    unsafe fn backward_direction(
        &self,
        d: Dims,
        dir: usize,
        (grad, states, gates, w): (&[f32], &[f32], &[f32], &[f32]),
        dproj: OutPtr,
        dw: &mut [f32],
    ) {
        let (b, h) = (d.b, d.h);
        let (sw, gw) = (d.dirs * 2 * h, d.dirs * 4 * h);
        // dh_prev = dG · W_hh: B = W_hh [4H, H] as stored.
        let packed = gemm::pack_b(
            4 * h,
            h,
            Strided {
                ptr: w.as_ptr(),
                rs: h,
                cs: 1,
            },
            1,
        );
        let (t, ow) = (d.t, d.dirs * h);
        let at_out = |row: usize, r: usize| (row * (t + 2) + r) * ow + dir * h;
        // The final states' gradients start the sweep back.
        let mut dh: Vec<f32> = (0..b)
            .flat_map(|row| grad[at_out(row, t)..][..h].to_vec())
            .collect();
        let mut dc: Vec<f32> = (0..b)
            .flat_map(|row| grad[at_out(row, t + 1)..][..h].to_vec())
            .collect();
        let mut dh_prev = vec![0f32; b * h];
        let steps = d.steps(dir);
        for (i, &step) in steps.iter().enumerate().rev() {
            let prev = i.checked_sub(1).map(|j| steps[j]);
            for row in 0..b {
                let (dhr, dcr) = (
                    &mut dh[row * h..(row + 1) * h],
                    &mut dc[row * h..(row + 1) * h],
                );
                let dg = std::slice::from_raw_parts_mut(
                    dproj.get().add(d.at(row, step, gw) + dir * 4 * h),
                    4 * h,
                );
                if self.mask[row * d.t + step] > 0.5 {
                    // A padded step's output is the constant 0: no gradient flows from it.
                    let g = &grad[at_out(row, step)..][..h];
                    for j in 0..h {
                        dhr[j] += g[j];
                    }
                    let act = &gates[d.at(row, step, gw) + dir * 4 * h..][..4 * h];
                    let c_new = &states[d.at(row, step, sw) + dir * 2 * h + h..][..h];
                    let c_prev = prev.map(|p| &states[d.at(row, p, sw) + dir * 2 * h + h..][..h]);
                    cell_backward_best(act, c_new, c_prev.unwrap_or(&[]), dhr, dcr, dg);
                } // else: the state passed through unchanged; dG stays 0, dh / dc carry on.
            }
            if prev.is_some() {
                // dh_prev = dG_step · W_hh (only rows whose step was real contribute).
                let a = Strided {
                    ptr: dproj.get().add(d.at(0, step, gw) + dir * 4 * h),
                    rs: d.t * gw,
                    cs: 1,
                };
                gemm::gemm_packed(
                    (b, h, 4 * h),
                    a,
                    &packed,
                    dh_prev.as_mut_ptr(),
                    h,
                    1.0,
                    (false, None),
                    1,
                );
                for row in 0..b {
                    if self.mask[row * d.t + step] > 0.5 {
                        dh[row * h..(row + 1) * h]
                            .copy_from_slice(&dh_prev[row * h..(row + 1) * h]);
                    }
                }
            }
        }
        // dW_hh = Σ_steps dG_stepᵀ · h_prev: one GEMM over (row, step) pairs whose h_prev is
        // the state of the previous processed step (zero before the first: skipped).
        let mut hprev = pooled(b * d.t * h);
        for row in 0..b {
            hprev[d.at(row, steps[0], h)..][..h].fill(0.0);
        }
        for (i, &step) in steps.iter().enumerate().skip(1) {
            let p = steps[i - 1];
            for row in 0..b {
                let src = &states[d.at(row, p, sw) + dir * 2 * h..][..h];
                hprev[d.at(row, step, h)..][..h].copy_from_slice(src);
            }
        }
        let a = Strided {
            ptr: dproj.get().add(dir * 4 * h),
            rs: 1,
            cs: gw,
        };
        let bm = Strided {
            ptr: hprev.as_ptr(),
            rs: h,
            cs: 1,
        };
        gemm::gemm(
            (4 * h, h, b * d.t),
            a,
            bm,
            dw.as_mut_ptr(),
            h,
            1.0,
            (false, None),
            1,
        );
        give_back(hprev);
    }
}

impl Drop for LstmOp {
    /// An op whose backward never ran (inference) returns its buffers too.
    fn drop(&mut self) {
        if let Some((states, gates)) = self.saved.get_mut().ok().and_then(Option::take) {
            give_back(states);
            give_back(gates);
        }
    }
}

/// Buffers of earlier calls, reused: a BiLSTM step of batch 32 × 128 frees and reallocates
/// ~65 MB of states and gates, which come back from the OS as fresh pages the kernel must
/// zero (`clear_page_erms` was 14 % of a training step in perf).
static POOL: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// A buffer of `len` values, contents unspecified.
fn pooled(len: usize) -> Vec<f32> {
    let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
    let mut v = match pool.iter().position(|v| v.capacity() >= len) {
        Some(i) => pool.swap_remove(i),
        None => Vec::with_capacity(len),
    };
    drop(pool);
    v.resize(len, 0.0);
    v
}

fn give_back(v: Vec<f32>) {
    let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
    if pool.len() < 8 {
        pool.push(v);
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + simd::exp(-x))
}

fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (simd::exp(2.0 * x) + 1.0)
}

/// Gate activations and the new state of one row: `act = (σi, σf, tanh g, σo)`,
/// `c' = σf·c + σi·tanh g`, `h' = σo·tanh c'`; `out = [h', c']`.
#[inline(always)]
fn cell_forward(pre: &[f32], c_prev: &[f32], act: &mut [f32], out: &mut [f32]) {
    let h = c_prev.len();
    for j in 0..h {
        let (i, f) = (sigmoid(pre[j]), sigmoid(pre[h + j]));
        let (g, o) = (tanh(pre[2 * h + j]), sigmoid(pre[3 * h + j]));
        act[j] = i;
        act[h + j] = f;
        act[2 * h + j] = g;
        act[3 * h + j] = o;
        let c = f * c_prev[j] + i * g;
        out[h + j] = c;
        out[j] = o * tanh(c);
    }
}

dispatch!(fn cell_forward_best(pre: &[f32], c_prev: &[f32], act: &mut [f32], out: &mut [f32]) => cell_forward);

/// One row's backward through a cell: from `dh`, `dc` (after the step) to the gate
/// pre-activation gradients `dg`; leaves `dc` as the gradient of the previous cell state
/// (`dh` is replaced by the caller from `dg · W_hh`). `c_prev` is empty for the first step.
#[inline(always)]
fn cell_backward(
    act: &[f32],
    c_new: &[f32],
    c_prev: &[f32],
    dh: &mut [f32],
    dc: &mut [f32],
    dg: &mut [f32],
) {
    let h = c_new.len();
    for j in 0..h {
        let (i, f, g, o) = (act[j], act[h + j], act[2 * h + j], act[3 * h + j]);
        let tc = tanh(c_new[j]);
        let dcj = dc[j] + dh[j] * o * (1.0 - tc * tc);
        let cp = if c_prev.is_empty() { 0.0 } else { c_prev[j] };
        dg[j] = dcj * g * i * (1.0 - i);
        dg[h + j] = dcj * cp * f * (1.0 - f);
        dg[2 * h + j] = dcj * i * (1.0 - g * g);
        dg[3 * h + j] = dh[j] * tc * o * (1.0 - o);
        dc[j] = dcj * f;
        dh[j] = 0.0;
    }
}

dispatch!(fn cell_backward_best(act: &[f32], c_new: &[f32], c_prev: &[f32], dh: &mut [f32], dc: &mut [f32], dg: &mut [f32]) => cell_backward);
