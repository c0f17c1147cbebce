//! Adagrad with learning-rate decay and L2 weight decay, as `torch.optim.Adagrad`.

use super::Hyper;

/// One step over a chunk; `bufs[0]` is the running sum of squared gradients.
pub(super) fn update(h: &Hyper, p: &mut [f32], g: &[f32], bufs: &mut [&mut [f32]]) {
    let Some(sum) = bufs.first_mut() else { return };
    let wd = h.weight_decay as f32;
    let clr = (h.lr / (1.0 + (h.step - 1) as f64 * h.cfg.lr_decay)) as f32;
    let eps = h.cfg.eps as f32;
    for ((p, &g), s) in p.iter_mut().zip(g).zip(sum.iter_mut()) {
        let g = g + wd * *p;
        *s += g * g;
        *p -= clr * (g / (s.sqrt() + eps));
    }
}
