//! `bert4rs train / eval / predict` from the command line: a tiny run end to end, and bad
//! input (malformed rows, unknown labels, an empty dev set, an unknown config key, a loss
//! that becomes NaN) failing with one clear error line and losing nothing.

mod common;

use common::fixture;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bert4rs"))
        .args(args)
        .output()
        .unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn rows(labels: &[&str]) -> String {
    let texts = [
        "hello world",
        "the quick brown fox",
        "lazy dog",
        "playing played",
        "a fox",
    ];
    labels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            format!(
                "{}\n",
                serde_json::json!({"text": texts[i % texts.len()], "label": l})
            )
        })
        .collect()
}

fn train_args(model: &Path, out: &Path, train: &Path, dev: &Path) -> Vec<String> {
    let (model, out, train, dev) = (
        model.to_str().unwrap(),
        out.to_str().unwrap(),
        train.to_str().unwrap(),
        dev.to_str().unwrap(),
    );
    vec![
        "train".into(),
        "--set".into(),
        format!("model={model:?}"),
        "--set".into(),
        format!("output_dir={out:?}"),
        "--set".into(),
        format!("data.train={train:?}"),
        "--set".into(),
        format!("data.dev={dev:?}"),
        "--set".into(),
        "train.batch_size=2".into(),
        "--set".into(),
        "train.epochs=1".into(),
    ]
}

/// Appends `--set k=v` for each of `sets`.
fn with_sets(mut args: Vec<String>, sets: &[&str]) -> Vec<String> {
    for s in sets {
        args.push("--set".into());
        args.push(s.to_string());
    }
    args
}

/// Runs and asserts success, showing stderr otherwise.
fn run_ok(args: &[String]) -> Output {
    let res = run(args);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    res
}

fn run(args: &[String]) -> Output {
    let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    bin(&a)
}

fn one_error_line(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {stderr}");
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    let errs: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errs.len(), 1, "one error line: {stderr}");
    for n in needles {
        assert!(errs[0].contains(n), "error line lacks `{n}`: {}", errs[0]);
    }
}

#[test]
fn train_eval_predict_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let model = fixture("train/tiny-cls");
    let train = write(
        d,
        "train.jsonl",
        &rows(&["neg", "pos", "neu", "pos", "neg", "neu"]),
    );
    let dev = write(d, "dev.jsonl", &rows(&["neg", "pos", "neu"]));
    let out = d.join("run");
    let args = train_args(&model, &out, &train, &dev);
    let res = run_ok(&args);
    let summary: serde_json::Value = serde_json::from_slice(&res.stdout).unwrap();
    assert_eq!(summary["steps"], 3);
    for f in [
        "best/config.json",
        "best/model.safetensors",
        "best/tokenizer.json",
        "checkpoint/optimizer.safetensors",
        "metrics.jsonl",
        "report.html",
        "resolved_config.toml",
    ] {
        assert!(out.join(f).is_file(), "{f} written");
    }
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("best/config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["architectures"][0], "BertForSequenceClassification");
    assert_eq!(cfg["id2label"]["2"], "pos");

    let best = out.join("best");
    let ev = bin(&[
        "eval",
        "--model",
        best.to_str().unwrap(),
        "--data",
        dev.to_str().unwrap(),
    ]);
    assert!(
        ev.status.success(),
        "{}",
        String::from_utf8_lossy(&ev.stderr)
    );
    let ev: serde_json::Value = serde_json::from_slice(&ev.stdout).unwrap();
    assert_eq!(ev["examples"], 3);
    let acc = ev["classification"]["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));

    let pred_out = d.join("pred.jsonl");
    let p = bin(&[
        "predict",
        "--model",
        best.to_str().unwrap(),
        "--input",
        dev.to_str().unwrap(),
        "--output",
        pred_out.to_str().unwrap(),
    ]);
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&pred_out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    let correct = lines
        .iter()
        .zip(["neg", "pos", "neu"])
        .filter(|(l, g)| l["label"] == *g)
        .count();
    assert!(
        (correct as f64 / 3.0 - acc).abs() < 1e-9,
        "predict agrees with eval"
    );
    for l in &lines {
        let s: f64 = l["probabilities"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!((s - 1.0).abs() < 1e-5);
    }
    // A fine-tuned directory also works with the core's `embed`.
    let emb_out = d.join("emb.jsonl");
    let e = bin(&[
        "embed",
        "--model",
        best.to_str().unwrap(),
        "--input",
        dev.to_str().unwrap(),
        "--output",
        emb_out.to_str().unwrap(),
    ]);
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
}

#[test]
fn malformed_row_names_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let model = fixture("train/tiny-cls");
    let mut text = rows(&["neg", "pos"]);
    text.push_str("{\"text\": \"broken\", \"label\": \n");
    let train = write(d, "train.jsonl", &text);
    let dev = write(d, "dev.jsonl", &rows(&["neg"]));
    let out = d.join("run");
    let res = run(&train_args(&model, &out, &train, &dev));
    one_error_line(&res, &["train.jsonl:3", "not valid JSON"]);
    assert!(!out.join("checkpoint").exists());
}

#[test]
fn unknown_dev_label_names_file_line_and_known_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let model = fixture("train/tiny-cls");
    let train = write(d, "train.jsonl", &rows(&["neg", "pos"]));
    let dev = write(d, "dev.jsonl", &rows(&["neg", "meh"]));
    let out = d.join("run");
    let res = run(&train_args(&model, &out, &train, &dev));
    one_error_line(&res, &["dev.jsonl:2", "unknown label `meh`", "neg, pos"]);
}

#[test]
fn empty_dev_set_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let model = fixture("train/tiny-cls");
    let train = write(d, "train.jsonl", &rows(&["neg", "pos"]));
    let dev = write(d, "dev.jsonl", "\n");
    let out = d.join("run");
    let res = run(&train_args(&model, &out, &train, &dev));
    one_error_line(&res, &["dev.jsonl", "no examples"]);
}

#[test]
fn unknown_config_key_lists_the_valid_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write(
        tmp.path(),
        "run.toml",
        "[optimizer]\nname = \"adamw\"\nlearning_rate = 3e-5\n",
    );
    let res = bin(&["train", "--config", cfg.to_str().unwrap(), "--dry-run"]);
    one_error_line(
        &res,
        &[
            "run.toml",
            "unknown field `learning_rate`",
            "`lr`",
            "`weight_decay`",
        ],
    );
    let res = bin(&["train", "--set", "train.epochz=2", "--dry-run"]);
    one_error_line(&res, &["unknown field `epochz`", "`epochs`"]);
}

#[test]
fn nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let model = fixture("train/tiny-cls");
    let scores: String = (0..8)
        .map(|i| {
            format!(
                "{}\n",
                serde_json::json!({"text": format!("hello world {i}"), "label": i as f64 / 8.0})
            )
        })
        .collect();
    let train = write(d, "train.jsonl", &scores);
    let dev = write(d, "dev.jsonl", &scores);
    let out = d.join("run");
    let args = with_sets(
        train_args(&model, &out, &train, &dev),
        &[
            "task.problem=\"regression\"",
            "task.pooling=\"cls\"",
            "train.metric=\"pearson\"",
            "optimizer.name=\"sgd\"",
            "optimizer.lr=1e30",
            "train.max_grad_norm=0",
            "train.save_every=1",
            "train.epochs=3",
        ],
    );
    let res = run(&args);
    one_error_line(&res, &["loss became", "last good checkpoint"]);
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("checkpoint/trainer_state.json")).unwrap(),
    )
    .unwrap();
    let step = state["global_step"].as_u64().unwrap();
    assert!(step >= 1, "a checkpoint from before the NaN is kept");
    let w = candle_core::safetensors::load(
        out.join("checkpoint/model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let finite = w.values().all(|t| {
        t.flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .all(|v| v.is_finite())
    });
    assert!(finite, "the kept checkpoint has finite weights");
}

#[test]
fn multi_label_and_regression_runs_train_and_predict() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let model = fixture("train/tiny-cls");
    let texts = [
        "hello world",
        "the quick brown fox",
        "lazy dog",
        "playing played",
    ];
    // Multi-label from CSV with `a|b` label lists.
    let mut csv = String::from("text,tags\n");
    for (i, t) in texts.iter().enumerate() {
        csv.push_str(&format!("{t},{}\n", ["x|y", "y", "z|x", "x"][i]));
    }
    let train = write(d, "multi.csv", &csv);
    let out = d.join("multi");
    let args = with_sets(
        train_args(&model, &out, &train, &train),
        &[
            "task.problem=\"multi_label\"",
            "data.label_field=\"tags\"",
            "train.metric=\"micro_f1\"",
        ],
    );
    run_ok(&args);
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("best/config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["problem_type"], "multi_label_classification");
    assert_eq!(cfg["id2label"].as_object().unwrap().len(), 3);
    let pred = d.join("multi-pred.jsonl");
    let p = bin(&[
        "predict",
        "--model",
        out.join("best").to_str().unwrap(),
        "--input",
        train.to_str().unwrap(),
        "--output",
        pred.to_str().unwrap(),
    ]);
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&pred)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert!(first["labels"].is_array());
    assert_eq!(first["probabilities"].as_object().unwrap().len(), 3);

    // Regression from TSV.
    let mut tsv = String::from("text\tscore\n");
    for (i, t) in texts.iter().enumerate() {
        tsv.push_str(&format!("{t}\t{}\n", i as f64 * 0.5));
    }
    let train = write(d, "reg.tsv", &tsv);
    let out = d.join("reg");
    let args = with_sets(
        train_args(&model, &out, &train, &train),
        &[
            "task.problem=\"regression\"",
            "data.label_field=\"score\"",
            "train.metric=\"pearson\"",
            "loss.name=\"mse_corr\"",
        ],
    );
    let res = run_ok(&args);
    let summary: serde_json::Value = serde_json::from_slice(&res.stdout).unwrap();
    assert!(summary["best_dev"]["regression"]["pearson"].is_number());
}

#[test]
fn pgd_layerwise_and_frozen_embeddings_run_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let model = fixture("train/tiny-cls");
    let train = write(d, "train.jsonl", &rows(&["neg", "pos", "neu", "pos"]));
    let out = d.join("run");
    let args = with_sets(
        train_args(&model, &out, &train, &train),
        &[
            "tricks.adversarial=\"pgd\"",
            "tricks.pgd_steps=2",
            "optimizer.layer_decay=0.8",
            "optimizer.freeze=[\"encoder.layer.0\"]",
            "optimizer.name=\"rmsprop\"",
            "loss.label_smoothing=0.1",
            "loss.class_weights=[1.0, 2.0, 1.0]",
        ],
    );
    let res = run_ok(&args);
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(
        stderr.contains("frozen"),
        "the plan reports frozen parameters: {stderr}"
    );
    // The frozen layer did not move; a trained one did.
    let load = |p: std::path::PathBuf| {
        candle_core::safetensors::load(p, &candle_core::Device::Cpu).unwrap()
    };
    let before = load(model.join("model.safetensors"));
    let after = load(out.join("checkpoint/model.safetensors"));
    let same = |k: &str| {
        let a = before[k].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = after[k].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        a == b
    };
    assert!(same("bert.encoder.layer.0.attention.self.query.weight"));
    assert!(!same("bert.encoder.layer.1.attention.self.query.weight"));
}

/// The notes' BERT + BiLSTM + attention classifier: trains, saves the LSTM and the
/// attention head beside the encoder, and the saved model predicts the same probabilities
/// one text at a time as in a padded batch (padding never reaches the RNN's answer).
#[test]
fn rnn_with_attention_pooling_trains_saves_and_predicts_batch_equal_single() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let model = fixture("train/tiny-cls");
    let train = write(
        d,
        "train.jsonl",
        &rows(&["neg", "pos", "neu", "pos", "neg", "neu"]),
    );
    let dev = write(d, "dev.jsonl", &rows(&["neg", "pos", "neu", "pos", "neg"]));
    let out = d.join("run");
    let args = with_sets(
        train_args(&model, &out, &train, &dev),
        &[
            "task.rnn=\"lstm\"",
            "task.pooling=\"attention\"",
            "task.lstm_hidden=8",
            "task.lstm_layers=2",
        ],
    );
    run_ok(&args);
    let best = out.join("best");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(best.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["bert4rs_rnn"]["mode"], "lstm");
    assert_eq!(cfg["bert4rs_rnn"]["num_layers"], 2);
    assert_eq!(cfg["bert4rs_pooling"], "attention");
    let saved =
        candle_core::safetensors::load(best.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    for k in [
        "rnn.weight_ih_l0",
        "rnn.weight_hh_l1_reverse",
        "pooling.dense.weight",
        "pooling.score.bias",
    ] {
        assert!(saved.contains_key(k), "{k} saved");
    }
    assert_eq!(saved["rnn.weight_ih_l1"].dims(), &[32, 16]);

    let predict = |batch: &str| -> Vec<Vec<f64>> {
        let pred = d.join(format!("pred-{batch}.jsonl"));
        let p = bin(&[
            "predict",
            "--model",
            best.to_str().unwrap(),
            "--input",
            dev.to_str().unwrap(),
            "--output",
            pred.to_str().unwrap(),
            "--batch-size",
            batch,
        ]);
        assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
        std::fs::read_to_string(&pred)
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                ["neg", "neu", "pos"]
                    .iter()
                    .map(|k| v["probabilities"][k].as_f64().unwrap())
                    .collect()
            })
            .collect()
    };
    let (batched, single) = (predict("8"), predict("1"));
    assert_eq!(batched.len(), 5);
    for (i, (a, b)) in batched.iter().zip(&single).enumerate() {
        for (x, y) in a.iter().zip(b) {
            assert!(
                (x - y).abs() < 1e-5,
                "row {i}: batched {a:?} vs alone {b:?}"
            );
        }
    }
}

/// A pooling that needs the encoder's layers cannot read an RNN: refused before any work.
#[test]
fn rnn_with_a_layer_pooling_is_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let train = write(d, "train.jsonl", &rows(&["neg", "pos"]));
    let out = d.join("run");
    let args = with_sets(
        train_args(&fixture("train/tiny-cls"), &out, &train, &train),
        &["task.rnn=\"gru\"", "task.pooling=\"first_last_avg\""],
    );
    let res = run(&args);
    one_error_line(&res, &["task.pooling", "first_last_avg", "task.rnn"]);
    assert!(!out.exists(), "nothing written");
}
