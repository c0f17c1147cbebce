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
    let out = bert4rs::kernels::sparse_attention(&q, &k, &v, stride, scale, &first)
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

#[test]
fn sparse_kernel_and_the_dense_masked_training_path_give_the_same_logits() {
    // Training with attention dropout runs the dense attention under the sparse mask; eval
    // runs the gather kernel. With every other dropout off and p = 1e-9 (never drops), the
    // two paths must agree, and the cached decoder too.
    let dir = gpt2_fixture_dir("gpt2-c");
    let cfg_path = dir.path().join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["sparse_attention_stride"] = serde_json::json!(3);
    cfg["embd_pdrop"] = serde_json::json!(0.0);
    cfg["resid_pdrop"] = serde_json::json!(0.0);
    cfg["attn_pdrop"] = serde_json::json!(1e-9);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let model = Gpt2LMHeadModel::from_dir(dir.path(), &Device::Cpu, false).unwrap();
    let row: Vec<u32> = vec![5, 9, 200, 31, 7, 7, 64, 1000, 3, 2, 8, 40];
    let ids = candle_core::Tensor::new(row.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let mask = candle_core::Tensor::ones((1, 12), candle_core::DType::F32, &Device::Cpu).unwrap();
    let kernel = model.forward(&ids, &mask, false).unwrap();
    bert4rs::nn::rng::seed_dropout(1);
    let dense = model.forward(&ids, &mask, true).unwrap();
    common::assert_close(&kernel, &dense, 1e-4, "kernel vs dense masked logits");
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
