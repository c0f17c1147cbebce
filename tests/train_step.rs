//! One full fine-tuning step of a tiny BertForSequenceClassification against PyTorch:
//! same init, same batch, dropout off, AdamW with decay groups and clipping — the loss, the
//! gradient norm and every updated weight must match (fixture from
//! reference/make_train_fixtures.py).

mod common;

use bert4rs::train::{RunConfig, SequenceTask, Trainer};
use candle_core::{DType, Device};
use common::{fixture, golden, json};

fn write_train_file(dir: &std::path::Path, texts: &[String], labels: &[u32]) -> std::path::PathBuf {
    let names = ["neg", "neu", "pos"];
    let mut s = String::new();
    for (t, l) in texts.iter().zip(labels) {
        s.push_str(&serde_json::json!({"text": t, "label": names[*l as usize]}).to_string());
        s.push('\n');
    }
    let p = dir.join("train.jsonl");
    std::fs::write(&p, s).unwrap();
    p
}

#[test]
fn one_training_step_matches_torch() {
    let meta = json("train/step.json");
    let g = golden("train/step.safetensors");
    let texts: Vec<String> = serde_json::from_value(meta["texts"].clone()).unwrap();
    let labels: Vec<u32> = serde_json::from_value(meta["labels"].clone()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let train = write_train_file(tmp.path(), &texts, &labels);
    let model = fixture("train/tiny-cls");
    let overrides = vec![
        format!("model={:?}", model.to_str().unwrap()),
        format!("output_dir={:?}", tmp.path().join("run").to_str().unwrap()),
        format!("data.train={:?}", train.to_str().unwrap()),
        "data.labels=[\"neg\",\"neu\",\"pos\"]".to_string(),
        "optimizer.lr=1e-2".to_string(),
        "optimizer.weight_decay=0.01".to_string(),
        "schedule.name=\"constant\"".to_string(),
        "train.batch_size=4".to_string(),
        "train.epochs=1".to_string(),
        "train.max_grad_norm=1.0".to_string(),
    ];
    let cfg = RunConfig::load(None, &overrides).unwrap();
    let task = SequenceTask::new(&cfg).unwrap();
    let mut trainer = Trainer::new(cfg, task, false).unwrap();
    let batch = trainer
        .task()
        .train_set()
        .batch(&[0, 1, 2, 3], trainer.task().pad_id(), &Device::Cpu)
        .unwrap();
    // Our tokenizer and padding give HF's batch.
    let ids = batch.input.input_ids.to_dtype(DType::I64).unwrap();
    common::assert_close(
        &ids.to_dtype(DType::F32).unwrap(),
        &g["input_ids"].to_dtype(DType::F32).unwrap(),
        0.0,
        "input ids",
    );
    let logits = trainer.task().model().forward(&batch.input, true).unwrap();
    common::assert_close(&logits, &g["logits"], 1e-5, "logits before the step");
    let stats = trainer.step(&[batch.into()]).unwrap();
    let want_loss = meta["loss"].as_f64().unwrap();
    assert!(
        (stats.loss - want_loss).abs() < 1e-5,
        "loss {} vs torch {want_loss}",
        stats.loss
    );
    let want_norm = meta["total_norm"].as_f64().unwrap();
    assert!(
        (stats.grad_norm - want_norm).abs() < 1e-4 * want_norm,
        "grad norm {} vs {want_norm}",
        stats.grad_norm
    );
    let ours: std::collections::HashMap<String, candle_core::Tensor> = trainer
        .task()
        .model()
        .named_tensors("bert")
        .into_iter()
        .collect();
    let checked = common::assert_updated(&ours, &g);
    assert_eq!(checked, ours.len(), "every parameter compared");
}
