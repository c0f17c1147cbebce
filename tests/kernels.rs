//! The fused CPU kernels equal their composite reference forward and backward, at widths
//! that do and do not fill whole vector registers (attention: `attention_kernels.rs`).

use bert4rs::kernels::{
    layer_norm, layer_norm_composite, masked_softmax, masked_softmax_composite,
};
use candle_core::{Device, Tensor, Var};

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn fused_layer_norm_matches_composite_forward_and_backward() {
    // 150 rows: several of the backward pass's row blocks at the wide sizes.
    for h in [1usize, 7, 16, 33, 384, 768] {
        let dev = Device::Cpu;
        let x =
            Var::from_tensor(&(Tensor::randn(0f32, 2.0, (3, 50, h), &dev).unwrap() + 0.5).unwrap())
                .unwrap();
        let w = Var::from_tensor(&Tensor::randn(1f32, 0.3, h, &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f32, 0.3, h, &dev).unwrap()).unwrap();
        let r = Tensor::randn(0f32, 1.0, (3, 50, h), &dev).unwrap();
        let fused = layer_norm(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-12).unwrap();
        let reference =
            layer_norm_composite(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-12).unwrap();
        assert!(max_diff(&fused, &reference) < 1e-5, "h={h} forward");
        let gf = (fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gr = (reference * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for (name, v) in [("x", &x), ("weight", &w), ("bias", &b)] {
            let d = max_diff(
                gf.get(v.as_tensor()).unwrap(),
                gr.get(v.as_tensor()).unwrap(),
            );
            assert!(d < 1e-4, "h={h} d{name}: {d}");
        }
    }
}

#[test]
fn fused_masked_softmax_matches_composite_forward_and_backward() {
    let dev = Device::Cpu;
    for k in [1usize, 5, 16, 37, 128] {
        let s = Var::from_tensor(&Tensor::randn(0f32, 3.0, (2, 3, 4, k), &dev).unwrap()).unwrap();
        // Second row: only the first ceil(k/2) keys are real.
        let real = k.div_ceil(2);
        let mask: Vec<f32> = (0..2 * k)
            .map(|i| if i < k || i - k < real { 1.0 } else { 0.0 })
            .collect();
        let mask = Tensor::from_vec(mask, (2, k), &dev).unwrap();
        let fused = masked_softmax(s.as_tensor(), &mask, 0.125).unwrap();
        let reference = masked_softmax_composite(s.as_tensor(), &mask, 0.125).unwrap();
        assert!(max_diff(&fused, &reference) < 1e-6, "k={k} forward");
        let padded = fused
            .narrow(0, 1, 1)
            .unwrap()
            .narrow(3, real, k - real)
            .unwrap();
        assert_eq!(
            padded.sum_all().unwrap().to_scalar::<f32>().unwrap(),
            0.0,
            "padding gets exactly 0"
        );
        let r = Tensor::randn(0f32, 1.0, (2, 3, 4, k), &dev).unwrap();
        let gf = (fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gr = (reference * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let d = max_diff(
            gf.get(s.as_tensor()).unwrap(),
            gr.get(s.as_tensor()).unwrap(),
        );
        assert!(d < 1e-5, "k={k} backward {d}");
    }
}

#[test]
fn masked_softmax_rejects_a_mask_of_the_wrong_shape() {
    let s = Tensor::zeros((2, 1, 3, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
    let m = Tensor::ones((2, 5), candle_core::DType::F32, &Device::Cpu).unwrap();
    let err = masked_softmax(&s, &m, 1.0).unwrap_err().to_string();
    assert!(err.contains("mask is [2, 5]"), "{err}");
}

/// Every weight layout the frozen linear reads (the plain transpose, and the form
/// `prepare_frozen_weight` gives: AVX2 panels, whose GEMM writes the bias in its own tile
/// stores), with and without the in-buffer GELU, for the skinny, small and large row counts.
#[test]
fn frozen_linear_matches_matmul_for_small_and_large_batches() {
    use bert4rs::kernels::{linear_frozen, prepare_frozen_weight, Gelu};
    let dev = Device::Cpu;
    for (rows, k, n) in [
        (1usize, 8usize, 5usize),
        (3, 33, 17),
        (17, 40, 33),
        (64, 64, 96),
        (65, 48, 40),
        (300, 96, 130),
        (200, 400, 70),
    ] {
        let x = Tensor::randn(0f32, 1.0, (rows, k), &dev).unwrap();
        let w = Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, n, &dev).unwrap();
        let plain = w.t().unwrap().contiguous().unwrap();
        let prepared = prepare_frozen_weight(&w, None).unwrap();
        let reference = x
            .matmul(&w.t().unwrap())
            .unwrap()
            .broadcast_add(&b)
            .unwrap();
        for w_t in [&plain, &prepared] {
            let fused = linear_frozen(&x, (&w, w_t), &b, None)
                .unwrap()
                .expect("CPU f32 takes the fast path");
            assert!(
                max_diff(&fused, &reference) < 1e-4,
                "rows={rows} k={k} n={n}"
            );
            for act in [Gelu::Erf, Gelu::Tanh] {
                let y = linear_frozen(&x, (&w, w_t), &b, Some(act))
                    .unwrap()
                    .unwrap();
                let want = act.apply(&reference).unwrap();
                assert!(max_diff(&y, &want) < 1e-4, "{act:?} rows={rows}");
            }
            // Gradient with respect to the input still flows (no fused activation then).
            let xv = Var::from_tensor(&x).unwrap();
            let tracked = linear_frozen(xv.as_tensor(), (&w, w_t), &b, Some(Gelu::Erf)).unwrap();
            assert!(
                tracked.is_none(),
                "no in-buffer activation on a tracked input"
            );
            let y = linear_frozen(xv.as_tensor(), (&w, w_t), &b, None)
                .unwrap()
                .unwrap();
            let g = y.sum_all().unwrap().backward().unwrap();
            let want = Tensor::ones((rows, n), candle_core::DType::F32, &dev)
                .unwrap()
                .matmul(&w)
                .unwrap();
            assert!(
                max_diff(g.get(xv.as_tensor()).unwrap(), &want) < 1e-4,
                "rows={rows} dx"
            );
        }
    }
}

#[test]
fn fused_gelu_matches_candle_erf_gelu_forward_and_backward() {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&(Tensor::randn(0f32, 3.0, (7, 333), &dev).unwrap())).unwrap();
    let fused = bert4rs::kernels::gelu_erf(x.as_tensor()).unwrap();
    let reference = x.as_tensor().gelu_erf().unwrap();
    assert!(
        max_diff(&fused, &reference) < 1e-6,
        "forward {}",
        max_diff(&fused, &reference)
    );
    let r = Tensor::randn(0f32, 1.0, (7, 333), &dev).unwrap();
    let gf = (fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let gr = (reference * &r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let d = max_diff(
        gf.get(x.as_tensor()).unwrap(),
        gr.get(x.as_tensor()).unwrap(),
    );
    assert!(d < 1e-5, "backward {d}");
    // Extremes saturate instead of overflowing.
    let big = Tensor::new(&[-20f32, -9.0, 0.0, 9.0, 20.0], &dev).unwrap();
    let y = bert4rs::kernels::gelu_erf(&big)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(y[2], 0.0);
    assert!(y[0].abs() < 1e-6 && (y[4] - 20.0).abs() < 1e-5, "{y:?}");
}

#[test]
fn fused_tanh_gelu_matches_candle_gelu_forward_and_backward() {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&(Tensor::randn(0f32, 3.0, (5, 257), &dev).unwrap())).unwrap();
    let fused = bert4rs::kernels::gelu_tanh(x.as_tensor()).unwrap();
    let reference = x.as_tensor().gelu().unwrap();
    let d = max_diff(&fused, &reference);
    assert!(d < 2e-6, "forward {d}");
    let r = Tensor::randn(0f32, 1.0, (5, 257), &dev).unwrap();
    let gf = (fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let gr = (reference * &r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let d = max_diff(
        gf.get(x.as_tensor()).unwrap(),
        gr.get(x.as_tensor()).unwrap(),
    );
    assert!(d < 1e-5, "backward {d}");
    let big = Tensor::new(&[-100f32, -9.0, 0.0, 9.0, 100.0], &dev).unwrap();
    let y: Vec<f32> = bert4rs::kernels::gelu_tanh(&big)
        .unwrap()
        .to_vec1()
        .unwrap();
    assert!(y.iter().all(|v| v.is_finite()), "{y:?}");
    assert!(
        y[0].abs() < 1e-6 && y[2] == 0.0 && (y[4] - 100.0).abs() < 1e-4,
        "{y:?}"
    );
}

#[test]
fn fused_add_layer_norm_matches_add_then_layer_norm() {
    let dev = Device::Cpu;
    for h in [7usize, 48, 384] {
        let x = Tensor::randn(0f32, 1.0, (4, 6, h), &dev).unwrap();
        let r = Tensor::randn(0f32, 1.0, (4, 6, h), &dev).unwrap();
        let w = Tensor::randn(1f32, 0.3, h, &dev).unwrap();
        let b = Tensor::randn(0f32, 0.3, h, &dev).unwrap();
        let fused = bert4rs::kernels::add_layer_norm(&x, &r, &w, &b, 1e-12).unwrap();
        let reference = layer_norm_composite(&(&x + &r).unwrap(), &w, &b, 1e-12).unwrap();
        assert!(max_diff(&fused, &reference) < 1e-5, "h={h}");
        // With a trainable input it falls back to the differentiable path.
        let xv = Var::from_tensor(&x).unwrap();
        let y = bert4rs::kernels::add_layer_norm(xv.as_tensor(), &r, &w, &b, 1e-12).unwrap();
        assert!(max_diff(&y, &reference) < 1e-5);
        assert!(y
            .sum_all()
            .unwrap()
            .backward()
            .unwrap()
            .get(xv.as_tensor())
            .is_some());
    }
}

#[test]
fn trainable_linear_matches_composite_forward_and_all_three_gradients() {
    use bert4rs::kernels::DropMask;
    use bert4rs::kernels::{linear_train, Epilogue, Gelu};
    let dev = Device::Cpu;
    // 2-D and 3-D inputs (leading dimensions are rows), with each fused epilogue.
    let shapes: [&[usize]; 4] = [&[1, 8], &[7, 33], &[130, 96], &[3, 5, 40]];
    for (case, x_dims) in shapes.iter().enumerate() {
        let mask = Some(DropMask {
            p: 0.3,
            key: 17 + case as u64,
        });
        let epilogues = [
            (None, None),
            (None, mask),
            (Some(Gelu::Erf), None),
            (Some(Gelu::Tanh), mask),
        ];
        for (act, dropout) in epilogues {
            let k = *x_dims.last().unwrap();
            let n = 5 + 13 * case;
            let mut out_dims = x_dims.to_vec();
            *out_dims.last_mut().unwrap() = n;
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, *x_dims, &dev).unwrap()).unwrap();
            let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap()).unwrap();
            let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, n, &dev).unwrap()).unwrap();
            // A non-uniform upstream gradient: weight the outputs before summing.
            let up = Tensor::randn(0f32, 1.0, out_dims.as_slice(), &dev).unwrap();
            let epilogue = Epilogue { act, dropout };
            let fused = linear_train(x.as_tensor(), w.as_tensor(), b.as_tensor(), epilogue)
                .unwrap()
                .expect("CPU f32 takes the fast path");
            assert_eq!(fused.dims(), out_dims.as_slice());
            let composite = x
                .as_tensor()
                .broadcast_matmul(&w.as_tensor().t().unwrap())
                .unwrap()
                .broadcast_add(b.as_tensor())
                .unwrap();
            let composite = match act {
                Some(act) => act.apply(&composite).unwrap(),
                None => composite,
            };
            let composite = match dropout {
                Some(mask) => mask.apply_tensor(&composite).unwrap(),
                None => composite,
            };
            let what = format!("x {x_dims:?}, {epilogue:?}");
            assert!(max_diff(&fused, &composite) < 1e-4, "forward, {what}");
            let grads = |y: &Tensor| y.mul(&up).unwrap().sum_all().unwrap().backward().unwrap();
            let (gf, gc) = (grads(&fused), grads(&composite));
            for (v, name) in [(&x, "dx"), (&w, "dW"), (&b, "db")] {
                let d = max_diff(
                    gf.get(v.as_tensor()).unwrap(),
                    gc.get(v.as_tensor()).unwrap(),
                );
                assert!(d < 1e-3, "{name}, {what}: {d}");
            }
        }
    }
}
