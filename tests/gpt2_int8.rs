//! Int8 decoding (weights per output channel, each row's activations quantised at run time)
//! on the tiny GPT-2 fixtures: its logits stay close to the f32 model's and to an f32 model
//! with the dequantised weights (from which they differ only by the activations' rounding,
//! which must be there), a batch decodes as each prompt alone, and training refuses it.
//!
//! Tolerances: int8 vs the original f32 model within 5 % of the largest logit (the rounding
//! of 127-level weights and activations, and of the bf16 key/value cache); int8 vs
//! f32-with-dequantised-weights: above 0 (the activations really are quantised) and within
//! 5 % as well.

mod common;

use bert4rs::generate::{self, GenerationConfig};
use bert4rs::kernels::{Int8Weight, KvDtype};
use bert4rs::models::gpt2::Gpt2LMHeadModel;
use candle_core::{Device, Tensor};
use common::gpt2_fixture_dir;
use std::collections::HashMap;
use std::path::Path;

const PROMPTS: [&[u32]; 3] = [
    &[464, 3290, 318],
    &[15496, 11, 616, 3290, 318, 13779],
    &[40],
];

fn load(dir: &Path) -> Gpt2LMHeadModel {
    Gpt2LMHeadModel::from_dir(dir, &Device::Cpu, false).unwrap()
}

/// `w [out, in]` through int8 and back.
fn dequantized(w: &Tensor) -> Tensor {
    let (n, k) = w.dims2().unwrap();
    let v: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
    let d = Int8Weight::quantize(&v, n, k).dequantized();
    Tensor::from_vec(d, (n, k), &Device::Cpu).unwrap()
}

/// A copy of the fixture whose linear weights are their int8 values in f32, with an untied
/// LM head holding the dequantised token table (the embedding lookup keeps the f32 table,
/// as the int8 model's does).
fn dequantized_twin(src: &Path, dst: &Path) {
    let tensors =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut out: HashMap<String, Tensor> = HashMap::new();
    for (name, t) in &tensors {
        let linear = ["c_attn", "c_proj", "c_fc"]
            .iter()
            .any(|l| name.ends_with(&format!("{l}.weight")));
        let t = if linear {
            // Conv1D stores [in, out]; the layer quantises per output.
            dequantized(&t.t().unwrap().contiguous().unwrap())
                .t()
                .unwrap()
                .contiguous()
                .unwrap()
        } else {
            t.clone()
        };
        out.insert(name.clone(), t);
    }
    let wte = tensors
        .get("transformer.wte.weight")
        .or_else(|| tensors.get("wte.weight"))
        .unwrap();
    out.insert("lm_head.weight".into(), dequantized(wte));
    candle_core::safetensors::save(&out, dst.join("model.safetensors")).unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("config.json")).unwrap()).unwrap();
    cfg["tie_word_embeddings"] = serde_json::json!(false);
    std::fs::write(dst.join("config.json"), cfg.to_string()).unwrap();
}

fn logits(m: &Gpt2LMHeadModel, prompt: &[u32]) -> Vec<f32> {
    let mut cache = m.new_cache(1);
    let mask = vec![vec![1f32; prompt.len()]];
    m.forward_cached(&[prompt.to_vec()], &mask, &mut cache)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| m.max(x.abs()))
}

#[test]
fn int8_model_stays_near_f32_and_its_dequantized_twin() {
    for name in ["gpt2-a", "gpt2-b"] {
        let dir = gpt2_fixture_dir(name);
        let twin_dir = tempfile::tempdir().unwrap();
        dequantized_twin(dir.path(), twin_dir.path());
        let (f32_model, twin) = (load(dir.path()), load(twin_dir.path()));
        let mut int8 = load(dir.path());
        int8.quantize_int8().unwrap();
        assert!(int8.is_int8() && !f32_model.is_int8());
        // The int8 decoder keeps its keys and values in bf16; f32 decoding stays exact.
        assert_eq!(int8.new_cache(2).kv_dtype(), Some(KvDtype::Bf16));
        assert_eq!(f32_model.new_cache(2).kv_dtype(), Some(KvDtype::F32));
        for p in PROMPTS {
            let (q, t, f) = (logits(&int8, p), logits(&twin, p), logits(&f32_model, p));
            let exact = q
                .iter()
                .zip(&t)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            eprintln!(
                "{name} {p:?}: int8 vs dequantised f32 {exact} (largest {})",
                max_abs(&t)
            );
            assert!(
                exact > 0.0 && exact < 0.05 * max_abs(&t),
                "{name} {p:?}: int8 vs dequantised f32 {exact}"
            );
            let rounding = q
                .iter()
                .zip(&f)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                rounding < 0.05 * max_abs(&f),
                "{name} {p:?}: int8 vs f32 {rounding} (largest logit {})",
                max_abs(&f)
            );
        }
    }
}

#[test]
fn int8_batch_decodes_as_each_prompt_alone() {
    let dir = gpt2_fixture_dir("gpt2-a");
    let mut m = load(dir.path());
    m.quantize_int8().unwrap();
    let cfg = GenerationConfig {
        max_new_tokens: 12,
        eos_token_id: None,
        pad_token_id: Some(0),
        ..Default::default()
    };
    let prompts: Vec<Vec<u32>> = PROMPTS.iter().map(|p| p.to_vec()).collect();
    let batch = generate::generate(&m, &prompts, &cfg, &mut |_| {}).unwrap();
    for (p, b) in prompts.iter().zip(&batch) {
        let alone = generate::generate(&m, std::slice::from_ref(p), &cfg, &mut |_| {}).unwrap();
        assert_eq!(alone[0].ids, b.ids, "prompt {p:?}");
    }
}

#[test]
fn a_trainable_model_cannot_be_quantized() {
    let dir = gpt2_fixture_dir("gpt2-a");
    let mut m = Gpt2LMHeadModel::from_dir(dir.path(), &Device::Cpu, true).unwrap();
    let err = m.quantize_int8().unwrap_err().to_string();
    assert!(
        err.contains("int8") && err.contains("h.0.attn.c_attn"),
        "{err}"
    );
}
