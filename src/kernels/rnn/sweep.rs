//! One direction's sweep through time, forward and backward. Each step's GEMM reads its
//! left operand from a small contiguous buffer: read in place from the `[batch, seq, ·]`
//! buffers, the rows sit one sequence apart (512 KB to 1 MB, a power of two) and fall
//! into the same cache sets — the step GEMM ran at half its speed.

use super::cells::{gru_backward_best, gru_forward_best, lstm_backward_best, lstm_forward_best};
use super::{give_back, pooled, Dims, RnnCell};
use crate::kernels::common::OutPtr;
use crate::kernels::gemm::{self, Strided};

/// Runs direction `dir` over all steps, writing its columns of `states` and `acts`.
///
/// # Safety
/// `states` and `acts` must be the op's `[b, t, state_w]` and `[b, t, act_w]` buffers and
/// no other task may write direction `dir`'s columns.
pub(super) unsafe fn forward(
    d: Dims,
    dir: usize,
    real: &[bool],
    proj: &[f32],
    w: &[f32],
    states: OutPtr,
    acts: OutPtr,
) {
    let (b, h, gh) = (d.b, d.h, d.gh());
    let s = d.cell.state();
    let (sw, aw, pw) = (d.state_w(), d.act_w(), d.proj_w());
    // B = W_hhᵀ [H, G·H]; the GRU's `b_hn` row follows the gate rows.
    let packed = gemm::pack_weight_t(&w[..gh * h], gh, h);
    let b_hn = &w[gh * h..];
    let mut hbuf = vec![0f32; b * h];
    let mut q = vec![0f32; b * gh];
    let zeros = vec![0f32; s * h];
    let state = |row: usize, step: usize| states.get().add(d.at(row, step, sw) + dir * s * h);
    let mut prev: Option<usize> = None;
    for step in d.steps(dir) {
        if let Some(p) = prev {
            for row in 0..b {
                let src = std::slice::from_raw_parts(state(row, p), h);
                hbuf[row * h..(row + 1) * h].copy_from_slice(src);
            }
            // q = h_prev · W_hhᵀ (before the first step h is 0, and so is q).
            gemm::gemm_packed(
                (b, gh, h),
                Strided {
                    ptr: hbuf.as_ptr(),
                    rs: h,
                    cs: 1,
                },
                &packed,
                q.as_mut_ptr(),
                gh,
                1.0,
                (false, None),
                1,
            );
        }
        for row in 0..b {
            // The previous step's state and this step's are disjoint regions.
            let out = std::slice::from_raw_parts_mut(state(row, step), s * h);
            let before: &[f32] = match prev {
                Some(p) => std::slice::from_raw_parts(state(row, p), s * h),
                None => &zeros,
            };
            if !real[row * d.t + step] {
                out.copy_from_slice(before);
                continue;
            }
            let act = std::slice::from_raw_parts_mut(
                acts.get().add(d.at(row, step, aw) + dir * 4 * h),
                4 * h,
            );
            let p = &proj[d.at(row, step, pw) + dir * gh..][..gh];
            let qr = &q[row * gh..(row + 1) * gh];
            match d.cell {
                RnnCell::Lstm => lstm_forward_best(p, qr, before, act, out),
                RnnCell::Gru => gru_forward_best(p, qr, b_hn, before, act, out),
            }
        }
        prev = Some(step);
    }
}

/// Back-propagates direction `dir` through time: its columns of `dproj` (and, for the GRU,
/// of `dq`, the hidden part's gradients; for the LSTM `dq` is `dproj`), and `dw`, its
/// slice of `w_hh`'s gradient.
///
/// # Safety
/// `dproj` and `dq` must be `[b, t, proj_w]` buffers no other task writes in direction
/// `dir`'s columns; `grad`, `states`, `acts` the op's output gradient and saved buffers.
pub(super) unsafe fn backward(
    d: Dims,
    dir: usize,
    real: &[bool],
    (grad, states, acts, w): (&[f32], &[f32], &[f32], &[f32]),
    (dproj, dq): (OutPtr, OutPtr),
    dw: &mut [f32],
) {
    let (b, h, gh, t) = (d.b, d.h, d.gh(), d.t);
    let s = d.cell.state();
    let (sw, aw, pw, ow) = (d.state_w(), d.act_w(), d.proj_w(), d.out_w());
    let gru = d.cell == RnnCell::Gru;
    // dh_prev += dq · W_hh: B = W_hh [G·H, H] as stored.
    let wb = Strided {
        ptr: w.as_ptr(),
        rs: h,
        cs: 1,
    };
    let packed = gemm::pack_b(gh, h, wb, 1);
    let finals = |k: usize, row: usize| &grad[b * t * ow + k * b * ow + row * ow + dir * h..][..h];
    let mut dh: Vec<f32> = (0..b).flat_map(|row| finals(0, row).to_vec()).collect();
    let mut dc: Vec<f32> = (0..b).flat_map(|row| finals(1, row).to_vec()).collect();
    let mut dp_step = vec![0f32; b * gh];
    let mut dq_step = vec![0f32; if gru { b * gh } else { 0 }];
    let mut db_hn = vec![0f32; if gru { h } else { 0 }];
    let zeros = vec![0f32; s * h];
    let state = |row: usize, step: usize| &states[d.at(row, step, sw) + dir * s * h..][..s * h];
    let steps = d.steps(dir);
    for (i, &step) in steps.iter().enumerate().rev() {
        let prev = i.checked_sub(1).map(|j| steps[j]);
        for row in 0..b {
            let dp = &mut dp_step[row * gh..(row + 1) * gh];
            if !real[row * t + step] {
                // The state passed through unchanged: no gradient for this step's gates,
                // dh / dc carry on.
                dp.fill(0.0);
                if gru {
                    dq_step[row * gh..(row + 1) * gh].fill(0.0);
                }
                continue;
            }
            let dhr = &mut dh[row * h..(row + 1) * h];
            let g = &grad[d.at(row, step, ow) + dir * h..][..h];
            dhr.iter_mut().zip(g).for_each(|(a, v)| *a += v);
            let act = &acts[d.at(row, step, aw) + dir * 4 * h..][..4 * h];
            let before = prev.map_or(&zeros[..], |p| state(row, p));
            match d.cell {
                RnnCell::Lstm => {
                    let c_new = &state(row, step)[h..];
                    lstm_backward_best(act, c_new, before, dhr, &mut dc[row * h..(row + 1) * h], dp)
                }
                RnnCell::Gru => {
                    let dqr = &mut dq_step[row * gh..(row + 1) * gh];
                    gru_backward_best(act, before, dhr, dp, dqr, &mut db_hn)
                }
            }
        }
        if prev.is_some() {
            let a = if gru { &dq_step } else { &dp_step };
            gemm::gemm_packed(
                (b, h, gh),
                Strided {
                    ptr: a.as_ptr(),
                    rs: gh,
                    cs: 1,
                },
                &packed,
                dh.as_mut_ptr(),
                h,
                1.0,
                (true, None),
                1,
            );
        }
        for row in 0..b {
            let at = d.at(row, step, pw) + dir * gh;
            std::slice::from_raw_parts_mut(dproj.get().add(at), gh)
                .copy_from_slice(&dp_step[row * gh..(row + 1) * gh]);
            if gru {
                std::slice::from_raw_parts_mut(dq.get().add(at), gh)
                    .copy_from_slice(&dq_step[row * gh..(row + 1) * gh]);
            }
        }
    }
    // dW_hh = Σ_steps dq_stepᵀ · h_prev: one GEMM over (row, step) pairs, h_prev the state
    // of the previous processed step (zero before the first).
    let mut hprev = pooled(b * t * h);
    for (i, &step) in steps.iter().enumerate() {
        for row in 0..b {
            let dst = &mut hprev[d.at(row, step, h)..][..h];
            match i.checked_sub(1) {
                Some(j) => dst.copy_from_slice(&state(row, steps[j])[..h]),
                None => dst.fill(0.0),
            }
        }
    }
    let a = Strided {
        ptr: dq.get().add(dir * gh),
        rs: 1,
        cs: pw,
    };
    let bm = Strided {
        ptr: hprev.as_ptr(),
        rs: h,
        cs: 1,
    };
    gemm::gemm(
        (gh, h, b * t),
        a,
        bm,
        dw.as_mut_ptr(),
        h,
        1.0,
        (false, None),
        1,
    );
    give_back(hprev);
    if gru {
        dw[gh * h..].copy_from_slice(&db_hn);
    }
}
