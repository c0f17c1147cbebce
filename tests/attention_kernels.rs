//! Fused attention, inference and training, equals the split-heads composite (f32, and bf16
//! products on bf16-rounded operands), keeps padding out, and reads bf16 projections as the
//! same values in f32.

mod common;

use bert4rs::kernels::{masked_softmax_composite, AttentionProducts};
use candle_core::{DType, Device, Tensor, Var};

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    common::max_abs_diff(a, b, "attention")
}

/// Rounds to bf16 (to nearest even) and back.
fn bf16_rounded(x: &Tensor) -> Tensor {
    x.to_dtype(DType::BF16)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
}

/// `fused_attention` of a random `[b, t, 3·heads·d]` projection against the split-heads
/// composite (batched matmuls and the composite masked softmax); `lens[i]` real tokens in
/// sequence `i` (0: every key masked). With `bf16`, bf16 products are asked for and, where
/// they run, the composite takes q, k, the probabilities and v rounded to bf16.
fn fused_attention_error(
    t: usize,
    heads: usize,
    d: usize,
    lens: &[usize],
    bf16: bool,
) -> (f32, f32) {
    let (max, mean, _) = fused_attention_errors(t, heads, d, lens, bf16);
    (max, mean)
}

/// [`fused_attention_error`] and the fraction of outputs more than 1e-5 off.
fn fused_attention_errors(
    t: usize,
    heads: usize,
    d: usize,
    lens: &[usize],
    bf16: bool,
) -> (f32, f32, f32) {
    let dev = Device::Cpu;
    let (b, h) = (lens.len(), heads * d);
    let qkv = Tensor::randn(0f32, 1.0, (b, t, 3 * h), &dev).unwrap();
    let mask: Vec<f32> = (0..b * t)
        .map(|i| if i % t < lens[i / t] { 1.0 } else { 0.0 })
        .collect();
    let mask = Tensor::from_vec(mask, (b, t), &dev).unwrap();
    let scale = 1.0 / (d as f64).sqrt();
    let products = match bf16 {
        true => AttentionProducts::Bf16Where2x,
        false => AttentionProducts::F32,
    };
    let fused = bert4rs::kernels::fused_attention(&qkv, &mask, heads, scale, products)
        .unwrap()
        .unwrap();
    let rounded =
        bf16 && bert4rs::kernels::simd::has_bf16_dot() && t <= 128 && d.is_multiple_of(32);
    let round = |x: Tensor| if rounded { bf16_rounded(&x) } else { x };
    let split = |i: usize| {
        round(
            qkv.narrow(2, i * h, h)
                .unwrap()
                .reshape((b, t, heads, d))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap(),
        )
    };
    let (q, k, v) = (split(0), split(1), split(2));
    let probs =
        masked_softmax_composite(&q.matmul(&k.t().unwrap()).unwrap(), &mask, scale).unwrap();
    let reference = round(probs)
        .matmul(&v)
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .reshape((b, t, h))
        .unwrap();
    let diff = (&fused - &reference).unwrap().abs().unwrap();
    let mean = diff.mean_all().unwrap().to_scalar::<f32>().unwrap();
    let all = diff.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let far = all.iter().filter(|e| **e > 1e-5).count() as f32 / all.len().max(1) as f32;
    (max_diff(&fused, &reference), mean, far)
}

#[test]
fn fused_attention_matches_split_heads_composite_with_padding() {
    let (err, _) = fused_attention_error(9, 4, 8, &[9, 4, 1], false);
    assert!(err < 1e-5, "{err}");
}

/// Lengths and head sizes on either side of the in-register kernels' limits.
const ATTENTION_SHAPES: [(usize, usize); 10] = [
    (1, 16),
    (5, 32),
    (16, 64),
    (17, 48),
    (64, 32),
    (100, 80),
    (127, 64),
    (128, 64),
    (129, 32),
    (40, 128),
];

#[test]
fn fused_attention_matches_the_composite_for_every_length_and_head_size() {
    // Head sizes of multiples of 16 and up to 128 keys take the in-register kernel on
    // AVX-512; the rest, and every size elsewhere, the GEMM path.
    for (t, d) in ATTENTION_SHAPES {
        let (err, _) = fused_attention_error(t, 3, d, &[t, t.div_ceil(2), 1, 0], false);
        assert!(err < 1e-5, "t={t} d={d}: {err}");
    }
}

#[test]
fn bf16_attention_products_equal_f32_attention_on_bf16_rounded_operands() {
    // Each product of two bf16 values is exact in f32 and only the order of the sums
    // differs, but a probability an ulp of f32 from a rounding boundary (the two sides'
    // scores and `exp` differ in the last bits) can round to the other bf16 neighbour,
    // 2⁻⁸ away: the d outputs of its row move by up to p·|v|/256 (seen: ~3e-3, rarely). So
    // nearly every output must agree at the f32 level and the largest error stay within
    // such a flip; a wrong pairing of keys or channels is off by O(0.1) everywhere. (A
    // bound on the mean instead failed about once in 60 runs at 16 keys, where one flipped
    // probability moves 1/48 of the outputs.)
    for (t, d) in ATTENTION_SHAPES {
        let (max, _, far) = fused_attention_errors(t, 3, d, &[t, t.div_ceil(2), 1, 0], true);
        assert!(
            far < 0.05 && max < 2e-2,
            "t={t} d={d}: max {max}, {:.2} % of outputs off by more than 1e-5",
            100.0 * far
        );
    }
}

#[test]
fn fused_attention_of_a_sequence_does_not_depend_on_its_padding() {
    let dev = Device::Cpu;
    let (heads, d, n) = (2usize, 32usize, 21usize);
    let h = heads * d;
    let real = Tensor::randn(0f32, 1.0, (1, n, 3 * h), &dev).unwrap();
    let ones = Tensor::ones((1, n), DType::F32, &dev).unwrap();
    for products in [AttentionProducts::F32, AttentionProducts::Bf16Where2x] {
        let alone = bert4rs::kernels::fused_attention(&real, &ones, heads, 0.125, products)
            .unwrap()
            .unwrap();
        for t in [n + 1, 64, 128] {
            let pad = Tensor::randn(0f32, 1.0, (1, t - n, 3 * h), &dev).unwrap();
            let padded = Tensor::cat(&[&real, &pad], 1).unwrap();
            let mask: Vec<f32> = (0..t).map(|i| (i < n) as u8 as f32).collect();
            let mask = Tensor::from_vec(mask, (1, t), &dev).unwrap();
            let got = bert4rs::kernels::fused_attention(&padded, &mask, heads, 0.125, products)
                .unwrap()
                .unwrap()
                .narrow(1, 0, n)
                .unwrap();
            // Bit for bit from the in-register kernels (padded keys add exact zeros); the
            // GEMM path blocks its sums by the padded length.
            let exact = bert4rs::kernels::simd::isa() == bert4rs::kernels::simd::Isa::Avx512;
            let err = max_diff(&got, &alone);
            assert!(
                if exact { err == 0.0 } else { err < 1e-6 },
                "{products:?} padded to {t}: {err}"
            );
        }
    }
}

/// The tensor-op attention the fused training kernel replaces, with an explicit dropout
/// factor tensor `[b, heads, t, t]`.
fn attention_composite(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    heads: usize,
    drop: &Tensor,
) -> Tensor {
    let (b, t, h) = q.dims3().unwrap();
    let d = h / heads;
    let split = |x: &Tensor| {
        x.reshape((b, t, heads, d))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
    };
    let (q, k, v) = (split(q), split(k), split(v));
    let scores = q.matmul(&k.t().unwrap()).unwrap();
    let probs =
        bert4rs::kernels::masked_softmax_composite(&scores, mask, 1.0 / (d as f64).sqrt()).unwrap();
    let ctx = probs.mul(drop).unwrap().matmul(&v).unwrap();
    ctx.transpose(1, 2).unwrap().reshape((b, t, h)).unwrap()
}

#[test]
fn fused_training_attention_matches_composite_with_padding_and_dropout() {
    use bert4rs::kernels::attention_train;
    use bert4rs::kernels::DropMask;
    let dev = Device::Cpu;
    let (b, t, h, heads) = (3usize, 7usize, 24usize, 4usize);
    let mask = Tensor::from_vec(
        vec![
            1f32, 1., 1., 1., 1., 1., 1., 1., 1., 1., 0., 0., 0., 0., 1., 1., 1., 1., 1., 0., 0.,
        ],
        (b, t),
        &dev,
    )
    .unwrap();
    for p in [0.0f32, 0.3] {
        let key = 1234u64;
        let drop: Vec<f32> = (0..b * heads * t * t)
            .map(|i| DropMask { p, key }.factor(i as u64))
            .collect();
        let drop = Tensor::from_vec(drop, (b, heads, t, t), &dev).unwrap();
        let mk = || Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, t, h), &dev).unwrap()).unwrap();
        let (q, k, v) = (mk(), mk(), mk());
        let up = Tensor::randn(0f32, 1.0, (b, t, h), &dev).unwrap();
        let scale = 1.0 / ((h / heads) as f64).sqrt();
        let fused = attention_train(
            q.as_tensor(),
            k.as_tensor(),
            v.as_tensor(),
            &mask,
            heads,
            scale,
            (p > 0.0).then_some(DropMask { p, key }),
        )
        .unwrap()
        .expect("CPU f32 takes the fused path");
        let reference = attention_composite(
            q.as_tensor(),
            k.as_tensor(),
            v.as_tensor(),
            &mask,
            heads,
            &drop,
        );
        assert!(max_diff(&fused, &reference) < 1e-5, "forward p={p}");
        let grads = |y: &Tensor| y.mul(&up).unwrap().sum_all().unwrap().backward().unwrap();
        let (gf, gr) = (grads(&fused), grads(&reference));
        for (x, what) in [(&q, "dq"), (&k, "dk"), (&v, "dv")] {
            let d = max_diff(
                gf.get(x.as_tensor()).unwrap(),
                gr.get(x.as_tensor()).unwrap(),
            );
            assert!(d < 1e-4, "{what} p={p}: {d}");
        }
    }
}

#[test]
fn bf16_projections_get_the_attention_of_the_same_values_in_f32() {
    // A projection that rounds q, k and v to bf16 as it stores them gets exactly the context
    // the same values get as f32 (the kernel rounds f32 operands to the same bf16); where
    // bf16 products do not run, the bf16 input is widened first.
    let dev = Device::Cpu;
    for (t, d) in ATTENTION_SHAPES {
        let (heads, lens) = (3, [t, t.div_ceil(2), 1, 0]);
        let h = heads * d;
        let qkv = Tensor::randn(0f32, 1.0, (lens.len(), t, 3 * h), &dev)
            .unwrap()
            .to_dtype(DType::BF16)
            .unwrap();
        let wide = qkv.to_dtype(DType::F32).unwrap();
        let mask: Vec<f32> = (0..lens.len() * t)
            .map(|i| (i % t < lens[i / t]) as u8 as f32)
            .collect();
        let mask = Tensor::from_vec(mask, (lens.len(), t), &dev).unwrap();
        for products in [AttentionProducts::F32, AttentionProducts::Bf16Where2x] {
            let run = |x: &Tensor| {
                bert4rs::kernels::fused_attention(x, &mask, heads, 0.125, products)
                    .unwrap()
                    .unwrap()
            };
            let (got, want) = (run(&qkv), run(&wide));
            assert_eq!(got.dtype(), DType::F32);
            assert_eq!(max_diff(&got, &want), 0.0, "t={t} d={d} {products:?}");
        }
    }
}
