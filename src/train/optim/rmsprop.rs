//! RMSprop with momentum, centring and L2 weight decay, as `torch.optim.RMSprop`.

use super::Hyper;

/// One step over a chunk; `bufs` = [mean of g², momentum buffer, mean of g (centred)].
pub(super) fn update(h: &Hyper, p: &mut [f32], g: &[f32], bufs: &mut [&mut [f32]]) {
    let [sq, mom_buf, avg_g, ..] = bufs else {
        return;
    };
    let lr = h.lr as f32;
    let wd = h.weight_decay as f32;
    let alpha = h.cfg.alpha as f32;
    let eps = h.cfg.eps as f32;
    let mom = h.cfg.momentum as f32;
    let centered = h.cfg.centered;
    for i in 0..p.len() {
        let g = g[i] + wd * p[i];
        sq[i] = sq[i] * alpha + (1.0 - alpha) * g * g;
        let avg = if centered {
            avg_g[i] = avg_g[i] + (1.0 - alpha) * (g - avg_g[i]);
            (sq[i] - avg_g[i] * avg_g[i]).sqrt() + eps
        } else {
            sq[i].sqrt() + eps
        };
        if mom > 0.0 {
            mom_buf[i] = mom_buf[i] * mom + g / avg;
            p[i] -= lr * mom_buf[i];
        } else {
            p[i] -= lr * (g / avg);
        }
    }
}
