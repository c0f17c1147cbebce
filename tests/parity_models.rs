//! Encoder outputs equal HF transformers' on random tiny BERT/RoBERTa checkpoints
//! (safetensors and pytorch_model.bin, with and without the `bert.` prefix, f16 weights with
//! old gamma/beta names) for single texts, pairs, padding and truncation.
//!
//! Tolerance: 1e-5 absolute on every hidden state. f32 forward passes differ from PyTorch
//! only by summation order (GEMM blocking, softmax/LayerNorm reductions): a few ulps per op,
//! which after a few layers of O(1) activations stays around 1e-6.

mod common;

use bert4rs::data::batch::to_encoder_input;
use bert4rs::models::load_encoder;
use bert4rs::tokenize::Tokenizer;
use bert4rs::EncoderInput;
use candle_core::{DType, Device, Tensor};
use common::*;

const TOL: f32 = 1e-5;

fn input_from_golden(g: &std::collections::HashMap<String, Tensor>, case: &str) -> EncoderInput {
    let get = |k: &str| g[&format!("{case}.{k}")].clone();
    EncoderInput {
        input_ids: get("input_ids").to_dtype(DType::U32).unwrap(),
        attention_mask: get("attention_mask").to_dtype(DType::F32).unwrap(),
        token_type_ids: get("token_type_ids").to_dtype(DType::U32).unwrap(),
    }
}

/// Checks every case of `parity/<name>`: our tokenizer reproduces HF's ids, our encoder its
/// hidden states and pooler output.
fn check_model(name: &str, tokenize: bool) {
    let meta = json(&format!("parity/{name}.json"));
    let g = golden(&format!("parity/{name}.safetensors"));
    let dir = fixture(meta["model_dir"].as_str().unwrap());
    let loaded = load_encoder(&dir, &Device::Cpu, false).unwrap();
    let layers = loaded.model.config().num_hidden_layers;
    for case in meta["cases"].as_array().unwrap() {
        let c = case["name"].as_str().unwrap();
        let golden_input = input_from_golden(&g, c);
        let input = if tokenize {
            let tok = Tokenizer::from_dir(&dir).unwrap();
            let encs = tok
                .encode_batch(&case_inputs(case), &case_options(case))
                .unwrap();
            let ours = to_encoder_input(&encs, &Device::Cpu).unwrap();
            for k in ["input_ids", "token_type_ids"] {
                let (a, b) = match k {
                    "input_ids" => (&ours.input_ids, &golden_input.input_ids),
                    _ => (&ours.token_type_ids, &golden_input.token_type_ids),
                };
                assert_eq!(rows_u32(a), rows_u32(b), "{name} {c}: {k} differ from HF");
            }
            assert_close(
                &ours.attention_mask,
                &golden_input.attention_mask,
                0.0,
                "mask",
            );
            ours
        } else {
            golden_input
        };
        let out = loaded.model.forward(&input, false).unwrap();
        let what = |k: &str| format!("{name} {c} {k}");
        assert_close(
            &out.last_hidden_state,
            &g[&format!("{c}.last_hidden_state")],
            TOL,
            &what("last_hidden_state"),
        );
        assert_eq!(out.hidden_states.len(), layers + 1);
        for (i, h) in out.hidden_states.iter().enumerate() {
            assert_close(
                h,
                &g[&format!("{c}.hidden_states.{i}")],
                TOL,
                &what(&format!("hidden_states.{i}")),
            );
        }
        match (g.get(&format!("{c}.pooler_output")), &out.pooler_output) {
            (Some(want), Some(got)) => assert_close(got, want, TOL, &what("pooler_output")),
            (None, None) => {}
            (w, _) => panic!(
                "{}: pooler presence differs (HF has one: {})",
                what("pooler"),
                w.is_some()
            ),
        }
    }
}

#[test]
fn bert_without_prefix_matches_hf() {
    check_model("bert-a", true);
}

#[test]
fn bert_with_prefix_and_head_weights_matches_hf() {
    check_model("bert-b", true);
}

#[test]
fn bert_f16_weights_with_gamma_beta_names_match_hf() {
    check_model("bert-f16-gamma", true);
}

#[test]
fn roberta_from_pytorch_bin_matches_hf() {
    check_model("roberta-a", false);
}

#[test]
fn resized_model_with_added_tokens_matches_hf() {
    check_model("bert-a-resized", true);
}

#[test]
fn task_head_weights_are_reported_unused() {
    let loaded = load_encoder(&fixture("models/bert-b"), &Device::Cpu, false).unwrap();
    assert_eq!(loaded.prefix, "bert");
    assert!(!loaded.unused.is_empty());
    assert!(
        loaded.unused.iter().all(|k| k.starts_with("cls.")),
        "{:?}",
        loaded.unused
    );
}

#[test]
fn padded_batch_equals_one_text_at_a_time() {
    for name in ["bert-a", "bert-b", "roberta-a"] {
        let meta = json(&format!("parity/{name}.json"));
        let g = golden(&format!("parity/{name}.safetensors"));
        let dir = fixture(meta["model_dir"].as_str().unwrap());
        let model = load_encoder(&dir, &Device::Cpu, false).unwrap().model;
        let batch = input_from_golden(&g, "case1");
        assert_batch_equals_alone(&model, &batch, TOL, name);
    }
}
