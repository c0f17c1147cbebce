//! The training engine drives a task defined outside the crate (`examples/custom_task`):
//! it learns, writes the run directory, and an interrupted run resumes to the same weights.

#[path = "../examples/custom_task/xor.rs"]
mod xor;

use bert4rs::train::{FitSummary, RunConfig, Trainer};
use std::path::Path;

fn config(out: &Path, extra: &[&str]) -> RunConfig {
    let mut sets = vec![
        format!("output_dir={:?}", out.to_str().unwrap()),
        "optimizer.lr=0.05".into(),
        "schedule.name=\"constant\"".into(),
        "train.batch_size=16".into(),
        "train.epochs=20".into(),
        "train.log_every=1".into(),
        "tricks.ema_decay=0.5".into(),
    ];
    sets.extend(extra.iter().map(|s| s.to_string()));
    RunConfig::load(None, &sets).unwrap()
}

fn fit(out: &Path, extra: &[&str], resume: bool) -> FitSummary {
    let task = xor::Xor::new(128, 3).unwrap();
    Trainer::new(config(out, extra), task, resume)
        .unwrap()
        .fit()
        .unwrap()
}

#[test]
fn a_task_from_outside_the_crate_learns_and_writes_a_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let s = fit(&out, &[], false);
    assert_eq!(s.steps, 20 * 8, "20 epochs × 128/16 steps");
    let dev = s.best_dev.expect("dev evaluations");
    assert!(dev.scores["accuracy"] > 0.95, "XOR not learned: {dev:?}");
    assert!(dev.loss < 0.3, "dev loss {}", dev.loss);
    for f in [
        "best/model.safetensors",
        "best/config.json",
        "metrics.jsonl",
        "report.html",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // The report's loss chart has the dev loss beside the training loss, axis ticks, and a
    // mark where each epoch starts.
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    for needle in [
        "training loss",
        "dev loss",
        "epoch 2",
        "epoch 20",
        ">160</text>",
    ] {
        assert!(report.contains(needle), "report lacks {needle:?}");
    }
    let log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert!(
        first["loss"].as_f64().unwrap() > dev.loss,
        "training loss did not fall"
    );
}

#[test]
fn an_interrupted_custom_task_resumes_to_the_uninterrupted_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let (whole, parts) = (tmp.path().join("whole"), tmp.path().join("parts"));
    fit(&whole, &[], false);
    let s = fit(&parts, &["train.stop_after_steps=37"], false);
    assert!(s.interrupted);
    assert_eq!(s.steps, 37);
    assert_eq!(fit(&parts, &[], true).steps, 160);
    let read = |d: &Path| {
        bert4rs::models::hub::read_tensors(&d.join("checkpoint/model.safetensors")).unwrap()
    };
    let (a, b) = (read(&whole), read(&parts));
    assert_eq!(a.len(), 4);
    for (name, t) in &a {
        let diff = (t - &b[name]).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(
            diff.to_scalar::<f32>().unwrap(),
            0.0,
            "{name} differs after resume"
        );
    }
}
