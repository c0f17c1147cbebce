//! Adadelta with L2 weight decay, as `torch.optim.Adadelta`.

use super::Hyper;

/// One step over a chunk; `bufs` = [running mean of g², running mean of Δ²].
pub(super) fn update(h: &Hyper, p: &mut [f32], g: &[f32], bufs: &mut [&mut [f32]]) {
    let [sq, acc, ..] = bufs else { return };
    let lr = h.lr as f32;
    let wd = h.weight_decay as f32;
    let rho = h.cfg.rho as f32;
    let eps = h.cfg.eps as f32;
    for (((p, &g), s), a) in p.iter_mut().zip(g).zip(sq.iter_mut()).zip(acc.iter_mut()) {
        let g = g + wd * *p;
        *s = *s * rho + (1.0 - rho) * g * g;
        let std = (*s + eps).sqrt();
        let delta = (*a + eps).sqrt() / std * g;
        *a = *a * rho + (1.0 - rho) * delta * delta;
        *p -= lr * delta;
    }
}
