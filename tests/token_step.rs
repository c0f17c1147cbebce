//! One training step of BERT + a linear token head against HF's
//! `BertForTokenClassification` (fixture from reference/make_token_fixtures.py): the words'
//! first sub-tokens carry the labels and the others are `-100`; same batch ids, logits at
//! every position, loss, gradient norm and every updated weight after AdamW with decay
//! groups and clipping.

mod common;

use bert4rs::train::{RunConfig, Task, TokenTask, Trainer};
use candle_core::{DType, Tensor};
use common::{assert_close, fixture, golden, json};
use std::collections::HashMap;
use std::path::Path;

/// tiny-cls with the fixture's 5-tag head in place of its 3-label classifier.
fn model_dir(dir: &Path, g: &HashMap<String, Tensor>) -> std::path::PathBuf {
    let src = fixture("train/tiny-cls");
    let out = dir.join("model");
    std::fs::create_dir_all(&out).unwrap();
    for f in std::fs::read_dir(&src).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, out.join(f.file_name().unwrap())).unwrap();
    }
    let mut t =
        candle_core::safetensors::load(src.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    for name in ["classifier.weight", "classifier.bias"] {
        t.insert(name.into(), g[&format!("init.{name}")].clone());
    }
    candle_core::safetensors::save(&t, out.join("model.safetensors")).unwrap();
    out
}

/// The fixture's sentences as CoNLL.
fn conll(dir: &Path, meta: &serde_json::Value) -> std::path::PathBuf {
    let words: Vec<Vec<String>> = serde_json::from_value(meta["words"].clone()).unwrap();
    let labels: Vec<Vec<usize>> = serde_json::from_value(meta["word_labels"].clone()).unwrap();
    let names: Vec<String> = serde_json::from_value(meta["label_names"].clone()).unwrap();
    let mut s = String::new();
    for (w, l) in words.iter().zip(&labels) {
        for (word, tag) in w.iter().zip(l) {
            s.push_str(&format!("{word}\t{}\n", names[*tag]));
        }
        s.push('\n');
    }
    let p = dir.join("train.conll");
    std::fs::write(&p, s).unwrap();
    p
}

#[test]
fn one_token_classification_step_matches_bert_for_token_classification() {
    let meta = json("token/token_step.json");
    let g = golden("token/token_step.safetensors");
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path(), &g);
    let train = conll(tmp.path(), &meta);
    let names: Vec<String> = serde_json::from_value(meta["label_names"].clone()).unwrap();
    let cfg = RunConfig::load(
        None,
        &[
            format!("model={:?}", model.to_str().unwrap()),
            format!("output_dir={:?}", tmp.path().join("run").to_str().unwrap()),
            format!("data.train={:?}", train.to_str().unwrap()),
            format!("data.labels={}", serde_json::to_string(&names).unwrap()),
            "task.kind=\"token_classification\"".into(),
            "optimizer.lr=1e-2".into(),
            "optimizer.weight_decay=0.01".into(),
            "schedule.name=\"constant\"".into(),
            "train.batch_size=4".into(),
            "train.epochs=1".into(),
            "train.max_grad_norm=1.0".into(),
        ],
    )
    .unwrap();
    let task = TokenTask::new(&cfg).unwrap();
    let mut trainer = Trainer::new(cfg, task, false).unwrap();
    let batch = trainer.task().batch(&[0, 1, 2, 3]).unwrap();
    let ids = batch.input.input_ids.to_dtype(DType::F32).unwrap();
    assert_close(
        &ids,
        &g["input_ids"].to_dtype(DType::F32).unwrap(),
        0.0,
        "input ids",
    );
    // The labelled positions are HF's non-(-100) labels.
    let hf_labels = g["labels"].to_vec2::<i64>().unwrap();
    let positions = batch.word_positions.to_vec2::<u32>().unwrap();
    for (row, labels) in hf_labels.iter().enumerate() {
        let want: Vec<(u32, i64)> = labels
            .iter()
            .enumerate()
            .filter(|(_, &l)| l != -100)
            .map(|(i, &l)| (i as u32, l))
            .collect();
        let got: Vec<(u32, i64)> = positions[row]
            .iter()
            .zip(&batch.tags[row])
            .take(batch.word_counts[row])
            .map(|(&p, &t)| (p, t))
            .collect();
        assert_eq!(got, want, "row {row}: labelled positions and labels");
    }
    let logits = trainer.task().model().logits(&batch.input, true).unwrap();
    assert_close(&logits, &g["logits"], 1e-5, "logits before the step");
    let stats = trainer.step(&[batch]).unwrap();
    let want_loss = meta["loss"].as_f64().unwrap();
    assert!(
        (stats.loss - want_loss).abs() < 1e-5,
        "loss {} vs {want_loss}",
        stats.loss
    );
    let want_norm = meta["total_norm"].as_f64().unwrap();
    assert!(
        (stats.grad_norm - want_norm).abs() < 1e-4 * want_norm,
        "grad norm {} vs {want_norm}",
        stats.grad_norm
    );
    let ours: HashMap<String, Tensor> =
        trainer.task().model().named_tensors().into_iter().collect();
    let checked = common::assert_updated(&ours, &g);
    assert_eq!(
        checked,
        ours.len(),
        "every parameter compared (and no pooler)"
    );
}
