//! Adam (L2 weight decay in the gradient) and AdamW (decoupled decay), with AMSGrad, as
//! `torch.optim.Adam` / `torch.optim.AdamW`.

use super::Hyper;

/// Per-step constants of the update.
#[derive(Clone, Copy)]
struct Coeffs {
    b1: f32,
    b2: f32,
    step_size: f32,
    bc2_sqrt: f32,
    eps: f32,
    wd: f32,
    decay: f32,
}

/// One step over a chunk; `bufs` = [first moment, second moment, max second moment].
pub(super) fn update(
    h: &Hyper,
    p: &mut [f32],
    g: &[f32],
    bufs: &mut [&mut [f32]],
    decoupled: bool,
) {
    let [m, v, vmax, ..] = bufs else { return };
    let (b1, b2) = (h.cfg.betas[0], h.cfg.betas[1]);
    let bc1 = 1.0 - b1.powi(h.step as i32);
    let c = Coeffs {
        b1: b1 as f32,
        b2: b2 as f32,
        step_size: (h.lr / bc1) as f32,
        bc2_sqrt: (1.0 - b2.powi(h.step as i32)).sqrt() as f32,
        eps: h.cfg.eps as f32,
        wd: h.weight_decay as f32,
        decay: (1.0 - h.lr * h.weight_decay) as f32,
    };
    if h.cfg.amsgrad {
        update_amsgrad_best(&c, p, g, m, v, vmax, decoupled);
    } else {
        update_plain_best(&c, p, g, m, v, decoupled);
    }
}

/// The moments and `p -= step · m / (√v / √bc2 + eps)` for element `i`, as torch orders the
/// operations; `second` maps the new `v[i]` to the value in the denominator (AMSGrad's max).
#[inline(always)]
fn step_one(
    c: &Coeffs,
    (p, g, m, v): (&mut f32, f32, &mut f32, &mut f32),
    decoupled: bool,
    second: impl FnOnce(f32) -> f32,
) {
    let mut gi = g;
    if decoupled {
        *p *= c.decay;
    } else {
        gi += c.wd * *p;
    }
    // torch: exp_avg.lerp_(grad, 1 - beta1)
    *m += (1.0 - c.b1) * (gi - *m);
    *v = *v * c.b2 + (1.0 - c.b2) * gi * gi;
    let denom = second(*v).sqrt() / c.bc2_sqrt + c.eps;
    *p -= c.step_size * (*m / denom);
}

// Compiled per ISA (no FMA contraction happens, so every ISA gives torch's bits): the plain
// loop vectorises once the slices are cut to one length (the scalar version was 5 % of a
// MiniLM training step).
#[inline(always)]
fn update_plain(
    c: &Coeffs,
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    decoupled: bool,
) {
    let n = p.len();
    let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
    for i in 0..n {
        step_one(c, (&mut p[i], g[i], &mut m[i], &mut v[i]), decoupled, |v| v);
    }
}

crate::kernels::simd::dispatch!(fn update_plain_best(c: &Coeffs, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], decoupled: bool) => update_plain);

#[inline(always)]
fn update_amsgrad(
    c: &Coeffs,
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    vmax: &mut [f32],
    decoupled: bool,
) {
    let n = p.len();
    let (g, m, v, vmax) = (&g[..n], &mut m[..n], &mut v[..n], &mut vmax[..n]);
    for i in 0..n {
        let vm = &mut vmax[i];
        step_one(c, (&mut p[i], g[i], &mut m[i], &mut v[i]), decoupled, |v| {
            *vm = vm.max(v);
            *vm
        });
    }
}

crate::kernels::simd::dispatch!(fn update_amsgrad_best(c: &Coeffs, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], vmax: &mut [f32], decoupled: bool) => update_amsgrad);
