//! The per-row gate math of the LSTM and GRU cells, forward and backward, as torch defines
//! them. Each function works on one batch row of one step; the loops vectorise (compiled
//! per instruction set through `dispatch!`).

use super::super::simd::{self, dispatch};

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + simd::exp(-x))
}

fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (simd::exp(2.0 * x) + 1.0)
}

/// LSTM: `pre = p + q` (input part with both biases, hidden part), torch's gates i, f, g, o;
/// `c' = σf·c + σi·tanh g`, `h' = σo·tanh c'`. Writes `act = (σi, σf, tanh g, σo)` and
/// `out = [h', c']`; `prev = [h, c]` of the step before (zeros at the first).
#[inline(always)]
fn lstm_forward(p: &[f32], q: &[f32], prev: &[f32], act: &mut [f32], out: &mut [f32]) {
    let h = out.len() / 2;
    let c_prev = &prev[h..2 * h];
    for j in 0..h {
        let i = sigmoid(p[j] + q[j]);
        let f = sigmoid(p[h + j] + q[h + j]);
        let g = tanh(p[2 * h + j] + q[2 * h + j]);
        let o = sigmoid(p[3 * h + j] + q[3 * h + j]);
        act[j] = i;
        act[h + j] = f;
        act[2 * h + j] = g;
        act[3 * h + j] = o;
        let c = f * c_prev[j] + i * g;
        out[h + j] = c;
        out[j] = o * tanh(c);
    }
}

dispatch!(pub(super) fn lstm_forward_best(p: &[f32], q: &[f32], prev: &[f32], act: &mut [f32], out: &mut [f32]) => lstm_forward);

/// GRU: `r = σ(p_r + q_r)`, `z = σ(p_z + q_z)`, `n = tanh(p_n + r·(q_n + b_hn))`,
/// `h' = (1 − z)·n + z·h` — torch's GRU, where the reset gate scales the hidden part with
/// its bias (so `b_hn` stays out of `p`). Writes `act = (r, z, n, q_n + b_hn)` and
/// `out = [h']`; `prev = [h]`.
#[inline(always)]
fn gru_forward(p: &[f32], q: &[f32], b_hn: &[f32], prev: &[f32], act: &mut [f32], out: &mut [f32]) {
    let h = out.len();
    for j in 0..h {
        let r = sigmoid(p[j] + q[j]);
        let z = sigmoid(p[h + j] + q[h + j]);
        let hn = q[2 * h + j] + b_hn[j];
        let n = tanh(p[2 * h + j] + r * hn);
        act[j] = r;
        act[h + j] = z;
        act[2 * h + j] = n;
        act[3 * h + j] = hn;
        out[j] = (1.0 - z) * n + z * prev[j];
    }
}

dispatch!(pub(super) fn gru_forward_best(p: &[f32], q: &[f32], b_hn: &[f32], prev: &[f32], act: &mut [f32], out: &mut [f32]) => gru_forward);

/// LSTM backward of one row: from `dh`, `dc` (gradients of the step's new state) to the
/// gate pre-activation gradients `dp` (the same for the input and the hidden part); leaves
/// `dc` as the previous cell state's gradient and `dh` at 0 (its part through `W_hh` is
/// added by the caller's GEMM). `c_new` is the step's cell state, `prev = [h, c]` before.
#[inline(always)]
fn lstm_backward(
    act: &[f32],
    c_new: &[f32],
    prev: &[f32],
    dh: &mut [f32],
    dc: &mut [f32],
    dp: &mut [f32],
) {
    let h = c_new.len();
    let c_prev = &prev[h..2 * h];
    for j in 0..h {
        let (i, f, g, o) = (act[j], act[h + j], act[2 * h + j], act[3 * h + j]);
        let tc = tanh(c_new[j]);
        let dcj = dc[j] + dh[j] * o * (1.0 - tc * tc);
        dp[j] = dcj * g * i * (1.0 - i);
        dp[h + j] = dcj * c_prev[j] * f * (1.0 - f);
        dp[2 * h + j] = dcj * i * (1.0 - g * g);
        dp[3 * h + j] = dh[j] * tc * o * (1.0 - o);
        dc[j] = dcj * f;
        dh[j] = 0.0;
    }
}

dispatch!(pub(super) fn lstm_backward_best(act: &[f32], c_new: &[f32], prev: &[f32], dh: &mut [f32], dc: &mut [f32], dp: &mut [f32]) => lstm_backward);

/// GRU backward of one row: from `dh` (the new state's gradient) to `dp` (input part's
/// pre-activations) and `dq` (hidden part's: equal but for `n`, where `dq_n = dp_n · r`);
/// leaves `dh` as the direct part of the previous state's gradient (`dh·z`; the caller's
/// GEMM adds `dq · W_hh`) and adds `dq_n` into `db_hn`. `prev = [h]` before the step.
#[inline(always)]
fn gru_backward(
    act: &[f32],
    prev: &[f32],
    dh: &mut [f32],
    dp: &mut [f32],
    dq: &mut [f32],
    db_hn: &mut [f32],
) {
    let h = dh.len();
    for j in 0..h {
        let (r, z, n, hn) = (act[j], act[h + j], act[2 * h + j], act[3 * h + j]);
        let d = dh[j];
        let dpn = d * (1.0 - z) * (1.0 - n * n);
        let dpr = dpn * hn * r * (1.0 - r);
        let dpz = d * (prev[j] - n) * z * (1.0 - z);
        dp[j] = dpr;
        dp[h + j] = dpz;
        dp[2 * h + j] = dpn;
        dq[j] = dpr;
        dq[h + j] = dpz;
        dq[2 * h + j] = dpn * r;
        db_hn[j] += dpn * r;
        dh[j] = d * z;
    }
}

dispatch!(pub(super) fn gru_backward_best(act: &[f32], prev: &[f32], dh: &mut [f32], dp: &mut [f32], dq: &mut [f32], db_hn: &mut [f32]) => gru_backward);
