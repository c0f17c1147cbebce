//! Adam (L2 weight decay in the gradient) and AdamW (decoupled decay), with AMSGrad, as
//! `torch.optim.Adam` / `torch.optim.AdamW`.

use super::Hyper;

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
    let bc2_sqrt = (1.0 - b2.powi(h.step as i32)).sqrt();
    let step_size = (h.lr / bc1) as f32;
    let bc2_sqrt = bc2_sqrt as f32;
    let (b1, b2) = (b1 as f32, b2 as f32);
    let eps = h.cfg.eps as f32;
    let wd = h.weight_decay as f32;
    let decay = (1.0 - h.lr * h.weight_decay) as f32;
    let amsgrad = h.cfg.amsgrad;
    for i in 0..p.len() {
        let mut gi = g[i];
        if decoupled {
            p[i] *= decay;
        } else {
            gi += wd * p[i];
        }
        // torch: exp_avg.lerp_(grad, 1 - beta1)
        m[i] += (1.0 - b1) * (gi - m[i]);
        v[i] = v[i] * b2 + (1.0 - b2) * gi * gi;
        let second = if amsgrad {
            vmax[i] = vmax[i].max(v[i]);
            vmax[i]
        } else {
            v[i]
        };
        let denom = second.sqrt() / bc2_sqrt + eps;
        p[i] -= step_size * (m[i] / denom);
    }
}
