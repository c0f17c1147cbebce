//! NEZHA against transformers 4.57's `NezhaModel` (`reference/make_nezha_fixtures.py`, a random
//! checkpoint whose relative range of 6 a 20-token input overruns, so clipping is exercised):
//! hidden states and pooler of a padded batch, padding never changing a row, the trainable
//! path, a save that reloads identically with NezhaModel's names, and a config without its
//! relative range refused.

mod common;

use bert4rs::models::bert::EncoderInput;
use bert4rs::models::load_encoder;
use candle_core::{DType, Device, Tensor};
use common::{assert_close, bin, fixture, golden, scale, unpadded_row};
use std::collections::HashMap;

fn input(g: &HashMap<String, Tensor>) -> EncoderInput {
    EncoderInput {
        input_ids: g["input_ids"].to_dtype(DType::U32).unwrap(),
        token_type_ids: g["token_type_ids"].to_dtype(DType::U32).unwrap(),
        attention_mask: g["attention_mask"].to_dtype(DType::F32).unwrap(),
    }
}

/// 1e-5 of the output scale (hidden states of this scrambled checkpoint reach |x| ≈ 4).
#[test]
fn nezha_matches_transformers_nezha_model() {
    let g = golden("nezha/nezha.safetensors");
    for trainable in [false, true] {
        let enc = load_encoder(&fixture("models/nezha-a"), &Device::Cpu, trainable).unwrap();
        let out = enc.model.forward(&input(&g), false).unwrap();
        let want = &g["last_hidden_state"];
        let what = format!("last_hidden_state (trainable {trainable})");
        assert_close(&out.last_hidden_state, want, 1e-5 * scale(want), &what);
        let pooled = out.pooler_output.expect("NezhaModel has a pooler");
        assert_close(&pooled, &g["pooler_output"], 1e-5, "pooler_output");
    }
}

#[test]
fn padding_never_changes_a_nezha_row() {
    let g = golden("nezha/nezha.safetensors");
    let enc = load_encoder(&fixture("models/nezha-a"), &Device::Cpu, false).unwrap();
    let batch = input(&g);
    let all = enc.model.forward(&batch, false).unwrap().last_hidden_state;
    let (single, len) = unpadded_row(&batch, 1);
    let one = enc.model.forward(&single, false).unwrap().last_hidden_state;
    let row = all.narrow(0, 1, 1).unwrap().narrow(1, 0, len).unwrap();
    assert_close(&one, &row, 1e-5, "unpadded row 1");
}

#[test]
fn saved_nezha_reloads_with_nezha_model_names() {
    let g = golden("nezha/nezha.safetensors");
    let enc = load_encoder(&fixture("models/nezha-a"), &Device::Cpu, true).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    enc.save_pretrained(tmp.path()).unwrap();
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["model_type"], "nezha");
    assert_eq!(cfg["architectures"][0], "NezhaModel");
    assert_eq!(cfg["max_relative_position"], 6);
    let saved = bert4rs::models::hub::read_tensors(&tmp.path().join("model.safetensors")).unwrap();
    let source =
        bert4rs::models::hub::read_tensors(&fixture("models/nezha-a/model.safetensors")).unwrap();
    let mut names: Vec<&String> = saved.keys().collect();
    let mut want: Vec<&String> = source.keys().collect();
    names.sort();
    want.sort();
    assert_eq!(names, want, "exactly NezhaModel's tensors");
    let back = load_encoder(tmp.path(), &Device::Cpu, false).unwrap();
    let out = back.model.forward(&input(&g), false).unwrap();
    let want = &g["last_hidden_state"];
    assert_close(&out.last_hidden_state, want, 1e-5 * scale(want), "reloaded");
}

#[test]
fn nezha_config_without_its_relative_range_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("models/nezha-a/config.json")).unwrap(),
    )
    .unwrap();
    cfg.as_object_mut().unwrap().remove("max_relative_position");
    std::fs::write(tmp.path().join("config.json"), cfg.to_string()).unwrap();
    std::fs::copy(
        fixture("models/nezha-a/model.safetensors"),
        tmp.path().join("model.safetensors"),
    )
    .unwrap();
    let err = load_encoder(tmp.path(), &Device::Cpu, false)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("config.json") && err.contains("max_relative_position"),
        "{err}"
    );
}

/// NEZHA has no table to grow: `extend-positions` only raises the limit, and the longer
/// input then runs.
#[test]
fn extending_nezha_raises_its_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("long");
    let model = fixture("models/nezha-a");
    let o = bin(&[
        "extend-positions",
        "--model",
        model.to_str().unwrap(),
        "--to",
        "128",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"relative\""));
    let enc = load_encoder(&out, &Device::Cpu, false).unwrap();
    let ids = Tensor::full(7u32, (1, 100), &Device::Cpu).unwrap();
    let input = EncoderInput {
        token_type_ids: ids.zeros_like().unwrap(),
        attention_mask: ids.ones_like().unwrap().to_dtype(DType::F32).unwrap(),
        input_ids: ids,
    };
    assert!(enc.model.forward(&input, false).is_ok());
}
