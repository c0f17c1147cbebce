//! Long-text classification by sliding windows (`[task.windows]`): a text's logits are what
//! its windows give when pooled (checked window by window, independently of the batching
//! code), padding and batching never change them, a trained model saves its windows and
//! `predict` / `eval` read texts past the model's positions the same way, and bad settings
//! are refused before any work.

mod common;

use bert4rs::data::batch::{pad_batch, to_encoder_input};
use bert4rs::data::dataset::Example;
use bert4rs::data::labelled::{Dataset, Problem};
use bert4rs::nn::{Pooling, WindowPool};
use bert4rs::tasks::classify::{HeadSpec, SequenceClassifier, WindowSpec};
use bert4rs::tokenize::Tokenizer;
use candle_core::{Device, Tensor};
use common::{assert_close, bin, fixture};
use std::path::Path;

/// Space-separated letters (one token each in the fixture vocabularies).
fn text(seed: usize, words: usize) -> String {
    (0..words)
        .map(|i| ((b'a' + ((seed * 7 + i * 13) % 26) as u8) as char).to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn examples() -> Vec<Example> {
    [(0, 150), (1, 9), (2, 61), (3, 40)]
        .into_iter()
        .enumerate()
        .map(|(line, (seed, n))| Example {
            text: text(seed, n),
            text_pair: None,
            label: Some(bert4rs::data::dataset::RawLabel::Name(
                ["neg", "pos"][line % 2].into(),
            )),
            line: line + 1,
        })
        .collect()
}

fn model(pool: WindowPool) -> (SequenceClassifier, Tokenizer, WindowSpec) {
    let dir = fixture("models/bert-a");
    let windows = WindowSpec {
        stride: 4,
        max_windows: 8,
        pool,
        max_length: 16,
    };
    let spec = HeadSpec {
        problem: Problem::SingleLabel,
        labels: vec!["neg".into(), "pos".into()],
        pooling: Pooling::Mean,
        rnn: None,
        windows: Some(windows),
    };
    let m = SequenceClassifier::from_dir(&dir, &Device::Cpu, false, Some(spec)).unwrap();
    (m, Tokenizer::from_dir(&dir).unwrap(), windows)
}

fn dataset(tok: &Tokenizer, w: &WindowSpec) -> Dataset {
    let labels = ["neg".to_string(), "pos".to_string()];
    Dataset::new(
        Path::new("long.jsonl"),
        examples(),
        tok,
        (&labels, Problem::SingleLabel),
        16,
    )
    .unwrap()
    .with_windows(tok, w.max_length, &w.options())
    .unwrap()
}

/// With a linear head, the logits of the mean window vector are the mean of the windows'
/// own logits, each window run alone as a short text.
#[test]
fn mean_window_logits_are_the_mean_of_each_windows_logits() {
    let (m, tok, w) = model(WindowPool::Mean);
    let ds = dataset(&tok, &w);
    let windows = ds.windows.as_ref().unwrap();
    assert_eq!(windows[0].len(), 8, "150 tokens hit the cap of 8 windows");
    assert_eq!(windows[1].len(), 1, "a short text is one window");
    let batch = ds.batch(&[0, 1, 2, 3], tok.pad_id(), &Device::Cpu).unwrap();
    let logits = m.forward_batch(&batch, false).unwrap();
    for (i, ws) in windows.iter().enumerate() {
        let rows: Vec<Tensor> = ws
            .iter()
            .map(|e| {
                let input = to_encoder_input(std::slice::from_ref(e), &Device::Cpu).unwrap();
                m.forward(&input, false).unwrap()
            })
            .collect();
        let want = Tensor::cat(&rows, 0).unwrap().mean_keepdim(0).unwrap();
        let got = logits.narrow(0, i, 1).unwrap();
        assert_close(&got, &want, 1e-5, &format!("text {i}"));
    }
}

#[test]
fn batching_and_padding_never_change_a_long_texts_logits() {
    for pool in [WindowPool::Mean, WindowPool::Max, WindowPool::Attention] {
        let (m, tok, w) = model(pool);
        let ds = dataset(&tok, &w);
        let all = m
            .forward_batch(
                &ds.batch(&[0, 1, 2, 3], tok.pad_id(), &Device::Cpu).unwrap(),
                false,
            )
            .unwrap();
        for i in 0..4 {
            let one = m
                .forward_batch(&ds.batch(&[i], tok.pad_id(), &Device::Cpu).unwrap(), false)
                .unwrap();
            let row = all.narrow(0, i, 1).unwrap();
            assert_close(&one, &row, 1e-5, &format!("{pool:?} text {i}"));
        }
    }
    // Windows of one text padded together with a shorter last window: the padded rows of
    // the last window are masked (same check, explicit).
    let (_, tok, w) = model(WindowPool::Mean);
    let ds = dataset(&tok, &w);
    let ws = &ds.windows.as_ref().unwrap()[2];
    assert!(ws.last().unwrap().input_ids.len() < 16);
    assert_eq!(
        pad_batch(ws, tok.pad_id()).last().unwrap().input_ids.len(),
        16
    );
}

fn write(dir: &Path, name: &str, rows: &[(String, &str)]) -> std::path::PathBuf {
    let p = dir.join(name);
    let text: String = rows
        .iter()
        .map(|(t, l)| format!("{}\n", serde_json::json!({"text": t, "label": l})))
        .collect();
    std::fs::write(&p, text).unwrap();
    p
}

fn train_args(out: &Path, train: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "train",
        "--set",
        &format!("model={:?}", fixture("train/tiny-cls").to_str().unwrap()),
        "--set",
        &format!("output_dir={:?}", out.to_str().unwrap()),
        "--set",
        &format!("data.train={:?}", train.to_str().unwrap()),
        "--set",
        &format!("data.dev={:?}", train.to_str().unwrap()),
        "--set",
        &format!("data.test={:?}", train.to_str().unwrap()),
        "--set",
        "data.max_length=32",
        "--set",
        "train.batch_size=2",
        "--set",
        "train.epochs=2",
        "--set",
        "task.pooling=\"mean\"",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for e in extra {
        a.push("--set".into());
        a.push(e.to_string());
    }
    a
}

fn run(args: &[String]) -> std::process::Output {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    bin(&a)
}

/// Texts of up to 200 tokens on a model of 64 positions: trained by windows, saved with
/// them, and read the same way by `eval` (its accuracy is the run's test accuracy) and
/// `predict`.
#[test]
fn windowed_training_saves_its_windows_and_eval_and_predict_read_long_texts() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let rows: Vec<(String, &str)> = (0..8)
        .map(|i| (text(i, 60 + 20 * i), ["neg", "pos"][i % 2]))
        .collect();
    let train = write(d, "train.jsonl", &rows);
    let out = d.join("run");
    let res = run(&train_args(
        &out,
        &train,
        &["task.windows={stride = 8, max_windows = 6, pool = \"attention\"}"],
    ));
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&res.stdout).unwrap();
    let best = out.join("best");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(best.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        cfg["bert4rs_windows"],
        serde_json::json!({"stride": 8, "max_windows": 6, "pool": "attention", "max_length": 32})
    );
    let weights =
        candle_core::safetensors::load(best.join("model.safetensors"), &Device::Cpu).unwrap();
    assert!(weights.contains_key("window_pooling.score.weight"));
    let b = best.to_str().unwrap();
    let ev = bin(&["eval", "--model", b, "--data", train.to_str().unwrap()]);
    assert!(
        ev.status.success(),
        "{}",
        String::from_utf8_lossy(&ev.stderr)
    );
    let ev: serde_json::Value = serde_json::from_slice(&ev.stdout).unwrap();
    assert_eq!(
        ev["classification"]["accuracy"],
        summary["test"]["classification"]["accuracy"]
    );
    let pred = d.join("pred.jsonl");
    let p = bin(&[
        "predict",
        "--model",
        b,
        "--input",
        train.to_str().unwrap(),
        "--output",
        pred.to_str().unwrap(),
    ]);
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
    assert_eq!(std::fs::read_to_string(&pred).unwrap().lines().count(), 8);
}

#[test]
fn bad_window_settings_are_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let train = write(
        d,
        "train.jsonl",
        &[(text(0, 80), "neg"), (text(1, 90), "pos")],
    );
    let out = d.join("run");
    let check = |extra: &[&str], needles: &[&str]| {
        let res = run(&train_args(&out, &train, extra));
        let err = String::from_utf8_lossy(&res.stderr);
        assert!(!res.status.success() && !err.contains("panicked"), "{err}");
        for n in needles {
            assert!(err.contains(n), "error lacks `{n}`: {err}");
        }
        assert!(!out.join("checkpoint").exists(), "nothing trained");
    };
    check(
        &["task.windows={stride = 30}"],
        &["task.windows.stride 30", "30 text tokens"],
    );
    check(&["task.windows={max_windows = 0}"], &["max_windows"]);
    check(
        &["task.windows={stride = 8}", "data.max_length=100"],
        &["data.max_length 100", "64 positions"],
    );
    check(&["task.windows={pool = \"median\"}"], &["median"]);
    let pairs = d.join("pairs.jsonl");
    std::fs::write(
        &pairs,
        "{\"text\": \"a b\", \"text_pair\": \"c\", \"label\": \"neg\"}\n{\"text\": \"a\", \"text_pair\": \"b\", \"label\": \"pos\"}\n",
    )
    .unwrap();
    let res = run(&train_args(
        &out,
        &pairs,
        &[
            "task.windows={stride = 8}",
            "data.text_pair_field=\"text_pair\"",
        ],
    ));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        !res.status.success() && err.contains("pairs.jsonl:1") && err.contains("text pair"),
        "{err}"
    );
}
