//! Model compression from the command line.
//! `bert4rs prune-heads`: heads scored on labelled data and the least important removed (or
//! the heads named), into a directory that `eval` and `train` load with its narrower layers;
//! bad requests fail before anything is scored or written.
//! Early exit: `task.early_exit` trains off-ramps (`frozen`: nothing else changes; `joint`:
//! the encoder too), `eval` / `predict --early-exit-entropy` use them; misuse is an error
//! before any training.

mod common;

use common::{bin, fixture};
use serde_json::Value;
use std::path::Path;

fn dev(dir: &Path) -> String {
    let texts = [
        "hello world",
        "the quick brown fox",
        "lazy dog",
        "played",
        "a fox",
    ];
    let labels = ["neg", "neu", "pos"];
    let rows: String = (0..12)
        .map(|i| {
            let row = serde_json::json!({"text": texts[i % 5], "label": labels[i % 3]});
            format!("{row}\n")
        })
        .collect();
    let p = dir.join("dev.jsonl");
    std::fs::write(&p, rows).unwrap();
    p.to_str().unwrap().to_string()
}

fn ok(out: std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "failed: {err}");
    String::from_utf8(out.stdout).unwrap()
}

fn config(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()
}

/// `bert4rs train` on tiny-cls with `dev(dir)` as train and dev data, plus `sets`.
fn train(dir: &Path, sets: &[&str]) -> std::process::Output {
    let data = dev(dir);
    let model = fixture("train/tiny-cls");
    let mut args = vec!["train".to_string()];
    let base = [
        format!("model={:?}", model.to_str().unwrap()),
        format!("output_dir={:?}", dir.join("run").to_str().unwrap()),
        format!("data.train={data:?}"),
        format!("data.dev={data:?}"),
        "train.batch_size=4".into(),
        "train.epochs=2".into(),
    ];
    for s in base.iter().map(String::as_str).chain(sets.iter().copied()) {
        args.extend(["--set".to_string(), s.to_string()]);
    }
    bin(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn half_the_heads_pruned_by_importance_then_evaluated_and_trained_again() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fixture("train/tiny-cls"); // 2 layers × 4 heads
    let (data, out) = (dev(tmp.path()), tmp.path().join("pruned"));
    let summary: Value = serde_json::from_str(&ok(bin(&[
        "prune-heads",
        "--model",
        model.to_str().unwrap(),
        "--data",
        &data,
        "--fraction",
        "0.5",
        "--output",
        out.to_str().unwrap(),
    ])))
    .unwrap();
    let after: Vec<usize> = serde_json::from_value(summary["heads_after"].clone()).unwrap();
    assert_eq!(after.iter().sum::<usize>(), 4, "{summary}");
    assert!(after.iter().all(|&h| h >= 1));
    assert_eq!(config(&out)["pruned_heads"], summary["pruned_heads"]);
    let imp: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("head_importance.json")).unwrap())
            .unwrap();
    assert_eq!(imp["examples"], 12);
    assert_eq!(imp["scores"].as_array().unwrap().len(), 2);

    let out_s = out.to_str().unwrap();
    let ev: Value =
        serde_json::from_str(&ok(bin(&["eval", "--model", out_s, "--data", &data]))).unwrap();
    assert_eq!(ev["examples"], 12, "{ev}");

    let run = tmp.path().join("run");
    let sets = [
        format!("model={out_s:?}"),
        format!("output_dir={:?}", run.to_str().unwrap()),
        format!("data.train={data:?}"),
        format!("data.dev={data:?}"),
        "train.batch_size=4".into(),
        "train.epochs=1".into(),
    ];
    let mut args = vec!["train".to_string()];
    for s in sets {
        args.extend(["--set".to_string(), s]);
    }
    ok(bin(&args.iter().map(String::as_str).collect::<Vec<_>>()));
    let best = run.join("best");
    assert_eq!(config(&best)["pruned_heads"], summary["pruned_heads"]);
    let w = common::weights(&best);
    for (layer, heads) in after.iter().enumerate() {
        let q = format!("bert.encoder.layer.{layer}.attention.self.query.weight");
        assert_eq!(w[&q].len(), heads * 8 * 32, "{q}");
    }
}

#[test]
fn heads_named_on_the_command_line_are_pruned_without_data() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("pruned");
    ok(bin(&[
        "prune-heads",
        "--model",
        fixture("train/tiny-cls").to_str().unwrap(),
        "--heads",
        r#"{"1": [3, 0]}"#,
        "--output",
        out.to_str().unwrap(),
    ]));
    assert_eq!(
        config(&out)["pruned_heads"],
        serde_json::json!({"1": [0, 3]})
    );
    assert!(out.join("tokenizer.json").is_file(), "tokenizer copied");
}

#[test]
fn bad_prune_requests_fail_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fixture("train/tiny-cls");
    let model = model.to_str().unwrap();
    let data = dev(tmp.path());
    let out = tmp.path().join("out");
    let o = out.to_str().unwrap();
    let cases: [(Vec<&str>, &str); 6] = [
        (
            vec!["--data", &data, "--fraction", "1.0"],
            "must be in [0, 1)",
        ),
        (vec!["--fraction", "0.5"], "--data"),
        (vec!["--heads", "[1, 2]"], "not a JSON object"),
        (vec!["--heads", r#"{"x": [1]}"#], "not a layer number"),
        (vec!["--heads", r#"{"2": [0]}"#], "layer 2"),
        (vec!["--heads", r#"{"0": [0, 1, 2, 3]}"#], "without heads"),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["prune-heads", "--model", model, "--output", o];
        args.extend(extra);
        let r = bin(&args);
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(
            !r.status.success() && err.contains(needle),
            "{needle}: {err}"
        );
        assert!(!out.exists(), "{needle}: nothing written");
    }
    let r = bin(&[
        "prune-heads",
        "--model",
        model,
        "--heads",
        r#"{"0": [1]}"#,
        "--output",
        model,
    ]);
    assert!(String::from_utf8_lossy(&r.stderr).contains("model directory itself"));
}

#[test]
fn frozen_ramps_train_alone_and_eval_predict_exit_early() {
    let tmp = tempfile::tempdir().unwrap();
    ok(train(
        tmp.path(),
        &[
            "task.early_exit=\"frozen\"",
            "train.metric=\"loss\"",
            "optimizer.lr=1e-2",
        ],
    ));
    let best = tmp.path().join("run/best");
    let (before, after) = (
        common::weights(&fixture("train/tiny-cls")),
        common::weights(&best),
    );
    for (name, w) in &before {
        assert_eq!(&after[name], w, "{name} must not change");
    }
    let ramp = "bert.encoder.highway.0.classifier.weight";
    assert_eq!(
        after[ramp].len(),
        3 * 32,
        "one ramp of 3 labels for a 2-layer model"
    );
    assert!(!after.contains_key("bert.encoder.highway.1.classifier.weight"));

    let (b, data) = (best.to_str().unwrap(), dev(tmp.path()));
    let eval = |extra: &[&str]| -> Value {
        let mut args = vec!["eval", "--model", b, "--data", &data];
        args.extend(extra);
        serde_json::from_str(&ok(bin(&args))).unwrap()
    };
    let (plain, never, always) = (
        eval(&[]),
        eval(&["--early-exit-entropy", "0"]),
        eval(&["--early-exit-entropy", "5"]),
    );
    assert_eq!(never["scores"]["average_layers"], 2.0);
    assert_eq!(never["classification"], plain["classification"]);
    assert_eq!(always["scores"]["average_layers"], 1.0);

    let out = tmp.path().join("pred.jsonl");
    let o = out.to_str().unwrap();
    ok(bin(&[
        "predict",
        "--model",
        b,
        "--input",
        &data,
        "--output",
        o,
        "--early-exit-entropy",
        "5",
    ]));
    let first: Value = serde_json::from_str(
        std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["exit_layer"], 1, "{first}");
}

#[test]
fn joint_ramps_train_with_the_encoder() {
    let tmp = tempfile::tempdir().unwrap();
    ok(train(tmp.path(), &["task.early_exit=\"joint\""]));
    let after = common::weights(&tmp.path().join("run/best"));
    let before = common::weights(&fixture("train/tiny-cls"));
    let q = "bert.encoder.layer.0.attention.self.query.weight";
    assert_ne!(after[q], before[q], "the encoder trains too");
    assert!(after.contains_key("bert.encoder.highway.0.classifier.weight"));
}

#[test]
fn early_exit_misuse_fails_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (
            &["task.early_exit=\"frozen\"", "train.metric=\"accuracy\""],
            "train.metric",
        ),
        (
            &["task.early_exit=\"joint\"", "task.problem=\"multi_label\""],
            "single-label",
        ),
        (
            &["task.early_exit=\"joint\"", "task.rnn=\"lstm\""],
            "task.rnn",
        ),
    ];
    for (sets, needle) in cases {
        let r = train(tmp.path(), sets);
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(
            !r.status.success() && err.contains(needle),
            "{needle}: {err}"
        );
        assert!(
            !tmp.path().join("run/best").exists(),
            "{needle}: nothing trained"
        );
    }
    let model = fixture("train/tiny-cls");
    let (m, data) = (model.to_str().unwrap(), dev(tmp.path()));
    for (e, needle) in [
        ("=0.5", "no early-exit ramps"),
        ("=-1", "≥ 0"),
        ("=NaN", "≥ 0"),
    ] {
        let flag = format!("--early-exit-entropy{e}");
        let r = bin(&["eval", "--model", m, "--data", &data, &flag]);
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(
            !r.status.success() && err.contains(needle),
            "{needle}: {err}"
        );
    }
}
