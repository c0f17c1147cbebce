//! A run stopped mid-epoch and resumed ends with exactly the weights (and loss curve) of an
//! uninterrupted run with the same seed — with dropout, EMA, FGM and R-Drop all on, so the
//! dropout stream, batch order, optimiser and EMA state must all be restored.

mod common;

use bert4rs::train::{FitSummary, RunConfig, SequenceTask, Trainer};
use common::fixture;
use std::path::{Path, PathBuf};

const WORDS: [&str; 12] = [
    "hello", "world", "the", "quick", "brown", "fox", "jumped", "over", "lazy", "dog", "playing",
    "played",
];

/// tiny-cls with dropout switched on.
fn model_with_dropout(dir: &Path) -> PathBuf {
    let m = dir.join("model");
    std::fs::create_dir_all(&m).unwrap();
    for e in std::fs::read_dir(fixture("train/tiny-cls")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), m.join(e.file_name())).unwrap();
    }
    let cfg_path = m.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["hidden_dropout_prob"] = 0.1.into();
    cfg["attention_probs_dropout_prob"] = 0.1.into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    m
}

fn data(dir: &Path, name: &str, n: usize, offset: usize) -> PathBuf {
    let labels = ["neg", "neu", "pos"];
    let mut s = String::new();
    for i in 0..n {
        let k = i + offset;
        let text: Vec<&str> = (0..(2 + k % 7))
            .map(|j| WORDS[(k * 5 + j * 3) % WORDS.len()])
            .collect();
        s.push_str(
            &serde_json::json!({"text": text.join(" "), "label": labels[k % 3]}).to_string(),
        );
        s.push('\n');
    }
    let p = dir.join(name);
    std::fs::write(&p, s).unwrap();
    p
}

fn config(model: &Path, out: &Path, train: &Path, dev: &Path, extra: &[&str]) -> RunConfig {
    let mut o = vec![
        format!("model={:?}", model.to_str().unwrap()),
        format!("output_dir={:?}", out.to_str().unwrap()),
        format!("data.train={:?}", train.to_str().unwrap()),
        format!("data.dev={:?}", dev.to_str().unwrap()),
        "seed=7".into(),
        "optimizer.lr=1e-3".into(),
        "schedule.warmup_steps=2".into(),
        "train.batch_size=4".into(),
        "train.grad_accum=2".into(),
        "train.epochs=2".into(),
        "train.eval_every=3".into(),
        "train.log_every=1".into(),
        "tricks.ema_decay=0.9".into(),
        "tricks.adversarial=\"fgm\"".into(),
        "tricks.rdrop_alpha=0.5".into(),
    ];
    o.extend(extra.iter().map(|s| s.to_string()));
    RunConfig::load(None, &o).unwrap()
}

fn weights(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let t =
        candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    let mut v: Vec<(String, Vec<f32>)> = t
        .into_iter()
        .map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn losses(out: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r.get("loss").is_some())
        .map(|r| (r["step"].as_u64().unwrap(), r["loss"].as_f64().unwrap()))
        .collect()
}

/// Trains the classification task of `cfg` (continuing its checkpoint with `resume`).
fn fit(cfg: RunConfig, resume: bool) -> FitSummary {
    let task = SequenceTask::new(&cfg).unwrap();
    Trainer::new(cfg, task, resume).unwrap().fit().unwrap()
}

#[test]
fn resumed_run_ends_with_the_weights_of_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_with_dropout(tmp.path());
    let train = data(tmp.path(), "train.jsonl", 30, 0);
    let dev = data(tmp.path(), "dev.jsonl", 9, 100);

    let whole = tmp.path().join("whole");
    let s = fit(config(&model, &whole, &train, &dev, &[]), false);
    assert!(!s.interrupted);
    assert_eq!(s.steps, 16, "2 epochs × ceil(30/4) steps");

    let parts = tmp.path().join("parts");
    // Stop after 5 steps: mid-epoch, between evaluations, after a partial accumulation.
    let s = fit(
        config(&model, &parts, &train, &dev, &["train.stop_after_steps=5"]),
        false,
    );
    assert!(s.interrupted);
    assert_eq!(s.steps, 5);
    let s = fit(config(&model, &parts, &train, &dev, &[]), true);
    assert_eq!(s.steps, 16);

    let a = weights(&whole.join("checkpoint"));
    let b = weights(&parts.join("checkpoint"));
    assert_eq!(a.len(), b.len());
    for ((ka, va), (kb, vb)) in a.iter().zip(&b) {
        assert_eq!(ka, kb);
        assert_eq!(va, vb, "`{ka}` differs after resume");
    }
    assert_eq!(
        weights(&whole.join("best")),
        weights(&parts.join("best")),
        "best (EMA) weights"
    );
    assert_eq!(losses(&whole), losses(&parts), "loss curves");
    // The weights moved at all (the test would pass vacuously otherwise).
    let init = weights(&model);
    let moved = init.iter().zip(&a).any(|((_, x), (_, y))| x != y);
    assert!(moved, "training changed the weights");
}
