//! Local + strided sparse attention: the block-sparse kernel equals torch's dense attention
//! with the same mask (outputs and gradients, ≤ 1e-5: f32 sums over ≤ 37 keys), and a GPT-2
//! with `sparse_attention_stride` decodes the same ids with and without the KV cache, and the
//! same batched as alone.

mod common;

use bert4rs::generate::{self, GenerationConfig};
use bert4rs::models::gpt2::Gpt2LMHeadModel;
use candle_core::{Device, IndexOp, Var};
use common::{golden, gpt2_fixture_dir, json};

#[test]
fn sparse_kernel_matches_torch_dense_masked_attention_and_its_gradients() {
    let g = golden("gpt2/sparse.safetensors");
    let spec = json("gpt2/sparse.json");
    let stride = spec["stride"].as_u64().unwrap() as usize;
    let scale = spec["scale"].as_f64().unwrap();
    let first: Vec<usize> = spec["first"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let q = Var::from_tensor(&g["q"]).unwrap();
    let k = Var::from_tensor(&g["k"]).unwrap();
    let v = Var::from_tensor(&g["v"]).unwrap();
    let out = bert4rs::kernels::sparse_attention(&q, &k, &v, (stride, scale), &first, None)
        .unwrap()
        .unwrap();
    common::assert_close(&out, &g["out"], 1e-5, "sparse attention output");
    let grads = (out * &g["r"])
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (name, var) in [("dq", &q), ("dk", &k), ("dv", &v)] {
        common::assert_close(grads.get(var).unwrap(), &g[name], 1e-5, name);
    }
}

/// gpt2-c with a sparse stride of 3 (its config otherwise as the fixture).
fn sparse_model() -> Gpt2LMHeadModel {
    let dir = gpt2_fixture_dir("gpt2-c");
    let cfg_path = dir.path().join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["sparse_attention_stride"] = serde_json::json!(3);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    Gpt2LMHeadModel::from_dir(dir.path(), &Device::Cpu, false).unwrap()
}

#[test]
fn sparse_gpt2_decodes_identically_with_and_without_cache_and_in_a_batch() {
    let model = sparse_model();
    let prompts: Vec<Vec<u32>> = vec![
        (0..17).map(|i| 100 + i * 37).collect(),
        (0..5).map(|i| 900 + i * 11).collect(),
    ];
    let cfg = GenerationConfig {
        max_new_tokens: 20,
        eos_token_id: None,
        pad_token_id: Some(0),
        ..Default::default()
    };
    let cached = generate::generate(&model, &prompts, &cfg, &mut |_| {}).unwrap();
    let uncached_cfg = GenerationConfig {
        use_cache: false,
        ..cfg.clone()
    };
    let uncached = generate::generate(&model, &prompts, &uncached_cfg, &mut |_| {}).unwrap();
    for (a, b) in cached.iter().zip(&uncached) {
        assert_eq!(a.ids, b.ids);
    }
    for (i, p) in prompts.iter().enumerate() {
        let alone = generate::generate(&model, std::slice::from_ref(p), &cfg, &mut |_| {}).unwrap();
        assert_eq!(alone[0].ids, cached[i].ids, "prompt {i}");
    }
    // And the pattern really is sparse: the dense model decodes differently.
    let dense =
        Gpt2LMHeadModel::from_dir(gpt2_fixture_dir("gpt2-c").path(), &Device::Cpu, false).unwrap();
    let d = generate::generate(&dense, &prompts, &cfg, &mut |_| {}).unwrap();
    assert_ne!(d[0].ids, cached[0].ids);
}

/// Training runs the sparse kernel with attention dropout: it must equal a dense attention
/// under the same sparse mask with the same dropout mask (one `DropMask` over the dense
/// `[batch, heads, t, t]` probabilities), outputs and gradients, with left padding.
#[test]
fn sparse_kernel_with_dropout_equals_dense_masked_attention_with_the_same_mask() {
    use bert4rs::kernels::sparse_allowed;
    use bert4rs::kernels::DropMask;
    use candle_core::{Tensor, D};
    let dev = Device::Cpu;
    let (b, h, t, d, stride, scale) = (2, 2, 13, 8, 3, 0.35);
    let first = [0usize, 3];
    let mk = |seed: u64| {
        let mut rng = bert4rs::rng::Rng::new(seed);
        let v: Vec<f32> = (0..b * h * t * d).map(|_| rng.normal() as f32).collect();
        Var::from_tensor(&Tensor::from_vec(v, (b, h, t, d), &dev).unwrap()).unwrap()
    };
    let (q, k, v, r) = (mk(1), mk(2), mk(3), mk(4));
    let mask = DropMask { p: 0.3, key: 77 };
    let out = bert4rs::kernels::sparse_attention(&q, &k, &v, (stride, scale), &first, Some(mask))
        .unwrap()
        .unwrap();
    // Dense reference: additive bias outside the pattern / on padding, softmax, the same
    // dropout mask, and padding queries zeroed (the kernel leaves them at zero).
    let (mut bias, mut rows) = (vec![0f32; b * t * t], vec![0f32; b * t]);
    for (bi, &f) in first.iter().enumerate() {
        for i in 0..t {
            rows[bi * t + i] = if i >= f { 1.0 } else { 0.0 };
            for j in 0..t {
                let ok = i >= f && j >= f && sparse_allowed(i - f, j - f, stride);
                if !ok {
                    bias[(bi * t + i) * t + j] = -1e30;
                }
            }
        }
    }
    let bias = Tensor::from_vec(bias, (b, 1, t, t), &dev).unwrap();
    let rows = Tensor::from_vec(rows, (b, 1, t, 1), &dev).unwrap();
    let scores = (q.matmul(&k.t().unwrap()).unwrap() * scale)
        .unwrap()
        .broadcast_add(&bias)
        .unwrap();
    let probs = candle_nn::ops::softmax(&scores, D::Minus1).unwrap();
    let dense = mask
        .apply_tensor(&probs)
        .unwrap()
        .matmul(&v)
        .unwrap()
        .broadcast_mul(&rows)
        .unwrap();
    common::assert_close(&out, &dense, 1e-5, "output with dropout");
    let g_kernel = (&out * r.as_tensor())
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let g_dense = (&dense * r.as_tensor())
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (name, var) in [("dq", &q), ("dk", &k), ("dv", &v)] {
        common::assert_close(
            g_kernel.get(var).unwrap(),
            g_dense.get(var).unwrap(),
            1e-5,
            name,
        );
    }
    // The mask really drops something here: without it the outputs differ.
    let plain = bert4rs::kernels::sparse_attention(&q, &k, &v, (stride, scale), &first, None)
        .unwrap()
        .unwrap();
    let diff = (plain - &dense).unwrap().abs().unwrap().max_all().unwrap();
    assert!(
        diff.to_scalar::<f32>().unwrap() > 1e-2,
        "dropout had no effect"
    );
}

/// The sparse GPT-2's whole-sequence forward (the kernel) and its cached decoder agree.
#[test]
fn sparse_gpt2_forward_and_cached_decoder_give_the_same_logits() {
    let model = sparse_model();
    let row: Vec<u32> = vec![5, 9, 200, 31, 7, 7, 64, 1000, 3, 2, 8, 40];
    let ids = candle_core::Tensor::new(row.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let mask = candle_core::Tensor::ones((1, 12), candle_core::DType::F32, &Device::Cpu).unwrap();
    let kernel = model.forward(&ids, &mask, false).unwrap();
    let mut cache = model.new_cache(1);
    let last = model
        .forward_cached(&[row], &[vec![1.0; 12]], &mut cache)
        .unwrap();
    common::assert_close(
        &kernel.i((0, 11)).unwrap(),
        &last.i(0).unwrap(),
        1e-4,
        "cached",
    );
}
