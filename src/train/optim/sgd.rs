//! SGD with momentum, dampening, Nesterov and L2 weight decay, as `torch.optim.SGD`.

use super::Hyper;

/// One step over a chunk; `bufs[0]` is the momentum buffer (unused without momentum).
pub(super) fn update(h: &Hyper, p: &mut [f32], g: &[f32], bufs: &mut [&mut [f32]]) {
    let lr = h.lr as f32;
    let wd = h.weight_decay as f32;
    let mom = h.cfg.momentum as f32;
    let damp = 1.0 - h.cfg.dampening as f32;
    let first = h.step == 1;
    let nesterov = h.cfg.nesterov;
    match bufs.first_mut() {
        Some(buf) if mom != 0.0 => {
            for ((p, &g), b) in p.iter_mut().zip(g).zip(buf.iter_mut()) {
                let d = g + wd * *p;
                *b = if first { d } else { mom * *b + damp * d };
                let d = if nesterov { d + mom * *b } else { *b };
                *p -= lr * d;
            }
        }
        _ => {
            for (p, &g) in p.iter_mut().zip(g) {
                let d = g + wd * *p;
                *p -= lr * d;
            }
        }
    }
}
