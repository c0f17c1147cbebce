//! Early exit (DeeBERT off-ramps): with a threshold of 0 nothing exits and the answer is the
//! full model's; with a threshold above every entropy every row leaves at the first ramp with
//! that ramp's logits; in between, each row of a batch exits where and as it does alone;
//! ramps are saved and found again on load; the entropy is the softmax's, in nats.

mod common;

use bert4rs::models::bert::EncoderInput;
use bert4rs::nn::exit_ramps::entropy;
use bert4rs::tasks::classify::SequenceClassifier;
use bert4rs::tasks::early_exit::{forward_with_exits, predict_early_exit};
use candle_core::{Device, Tensor};
use common::{assert_close, fixture, unpadded_row};
use std::path::{Path, PathBuf};

/// The 3-layer pruning fixture with `initializer_range` 1, so new ramps give confident,
/// varied answers.
fn model_dir(tmp: &Path) -> PathBuf {
    let dir = tmp.join("model");
    std::fs::create_dir_all(&dir).unwrap();
    let src = fixture("pruning/full");
    std::fs::copy(src.join("model.safetensors"), dir.join("model.safetensors")).unwrap();
    let text = std::fs::read_to_string(src.join("config.json")).unwrap();
    let mut cfg: serde_json::Value = serde_json::from_str(&text).unwrap();
    cfg["initializer_range"] = 1.0.into();
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    dir
}

fn with_ramps(dir: &Path) -> SequenceClassifier {
    bert4rs::rng::seed_init(5);
    let mut m = SequenceClassifier::from_dir(dir, &Device::Cpu, true, None).unwrap();
    m.add_exit_ramps().unwrap();
    m
}

/// Six rows of different lengths, right-padded.
fn input() -> EncoderInput {
    let lengths = [3usize, 9, 5, 12, 2, 7];
    let t = 12;
    let mut ids = Vec::new();
    let mut mask = Vec::new();
    for (r, &n) in lengths.iter().enumerate() {
        for j in 0..t {
            ids.push(if j < n {
                (5 + (r * 7 + j * 3) % 59) as u32
            } else {
                0
            });
            mask.push(if j < n { 1f32 } else { 0.0 });
        }
    }
    let ids = Tensor::from_vec(ids, (6, t), &Device::Cpu).unwrap();
    EncoderInput {
        token_type_ids: ids.zeros_like().unwrap(),
        input_ids: ids,
        attention_mask: Tensor::from_vec(mask, (6, t), &Device::Cpu).unwrap(),
    }
}

fn rows(v: &[Vec<f32>]) -> Tensor {
    Tensor::new(v.to_vec(), &Device::Cpu).unwrap()
}

#[test]
fn a_threshold_of_zero_never_exits_and_answers_as_the_full_model() {
    let tmp = tempfile::tempdir().unwrap();
    let m = with_ramps(&model_dir(tmp.path()));
    let x = input();
    let out = predict_early_exit(&m, &x, 0.0).unwrap();
    assert_eq!(out.layers, vec![3; 6]);
    let full = m.forward(&x, false).unwrap();
    assert_close(&rows(&out.logits), &full, 1e-5, "no exit = full model");
}

#[test]
fn a_threshold_above_every_entropy_exits_at_the_first_ramp() {
    let tmp = tempfile::tempdir().unwrap();
    let m = with_ramps(&model_dir(tmp.path()));
    let x = input();
    let out = predict_early_exit(&m, &x, 10.0).unwrap();
    assert_eq!(out.layers, vec![1; 6]);
    let (_, exits) = forward_with_exits(&m, &x, false, false).unwrap();
    assert_close(&rows(&out.logits), &exits[0], 1e-5, "first ramp");
}

#[test]
fn each_row_exits_where_and_as_it_would_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let m = with_ramps(&model_dir(tmp.path()));
    let x = input();
    // A threshold between the rows' first-ramp entropies, so some rows leave early.
    let (_, exits) = forward_with_exits(&m, &x, false, false).unwrap();
    let mut ent = entropy(&exits[0]).unwrap();
    ent.sort_by(f32::total_cmp);
    let threshold = (ent[2] + ent[3]) / 2.0;
    let batched = predict_early_exit(&m, &x, threshold).unwrap();
    assert!(batched.layers.contains(&1), "{:?}", batched.layers);
    assert!(
        batched.layers.iter().any(|&l| l > 1),
        "{:?}",
        batched.layers
    );
    for r in 0..6 {
        let (single, _) = unpadded_row(&x, r);
        let alone = predict_early_exit(&m, &single, threshold).unwrap();
        assert_eq!(alone.layers[0], batched.layers[r], "row {r}: exit layer");
        let a = rows(&alone.logits);
        let b = rows(&batched.logits[r..r + 1]);
        assert_close(&a, &b, 1e-5, &format!("row {r}"));
    }
}

#[test]
fn ramps_are_saved_under_deeberts_names_and_found_on_load() {
    let tmp = tempfile::tempdir().unwrap();
    let m = with_ramps(&model_dir(tmp.path()));
    let saved = tmp.path().join("saved");
    m.save_pretrained(&saved).unwrap();
    let names = common::weights(&saved);
    for i in 0..2 {
        for n in [
            "pooler.dense.weight",
            "pooler.dense.bias",
            "classifier.weight",
        ] {
            let key = format!("bert.encoder.highway.{i}.{n}");
            assert!(names.contains_key(&key), "{key}");
        }
    }
    assert!(!names.contains_key("bert.encoder.highway.2.classifier.weight"));
    let loaded = SequenceClassifier::from_dir(&saved, &Device::Cpu, false, None).unwrap();
    let x = input();
    let (a, b) = (
        predict_early_exit(&m, &x, 0.5).unwrap(),
        predict_early_exit(&loaded, &x, 0.5).unwrap(),
    );
    assert_eq!(a.layers, b.layers);
    assert_close(&rows(&a.logits), &rows(&b.logits), 1e-5, "reloaded");
    // A model without ramps says how to get them.
    let plain =
        SequenceClassifier::from_dir(&fixture("pruning/full"), &Device::Cpu, false, None).unwrap();
    let err = predict_early_exit(&plain, &x, 0.5)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("task.early_exit"), "{err}");
}

#[test]
fn entropy_is_the_softmax_entropy_in_nats() {
    let logits = Tensor::new(&[[0f32, 0.0, 0.0], [0.0, 50.0, 0.0]], &Device::Cpu).unwrap();
    let e = entropy(&logits).unwrap();
    assert!((e[0] - 3f32.ln()).abs() < 1e-6, "{e:?}");
    assert!(e[1].abs() < 1e-6, "{e:?}");
    let p = [0.7f32, 0.2, 0.1];
    let l = Tensor::new(&[p.map(f32::ln)], &Device::Cpu).unwrap();
    let want: f32 = -p.iter().map(|v| v * v.ln()).sum::<f32>();
    assert!((entropy(&l).unwrap()[0] - want).abs() < 1e-6);
}
