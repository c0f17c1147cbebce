//! Chinese word segmentation: BIOES character rows (`prepare zh-seg`'s format) train a
//! from-scratch BiLSTM-CRF whose `eval` entity F1 is word F1, `segment` returns every input
//! character exactly once (spaces dropped), and a model of another kind is refused.

mod common;

use common::{bin, fixture};
use serde_json::Value;
use std::path::{Path, PathBuf};

const SENTENCES: [&[&str]; 4] = [
    &["中国", "人民", "很", "好"],
    &["我们", "爱", "中国"],
    &["人民", "的", "力量", "很", "大"],
    &["好", "人民", "爱", "我们"],
];

fn rows(dir: &Path, name: &str, n: usize) -> String {
    rows_of(&SENTENCES, dir, name, n)
}

fn rows_of(sentences: &[&[&str]], dir: &Path, name: &str, n: usize) -> String {
    let mut out = String::new();
    for i in 0..n {
        let words = sentences[i % sentences.len()];
        let (mut tokens, mut tags) = (Vec::new(), Vec::new());
        for w in words {
            let chars: Vec<String> = w.chars().map(String::from).collect();
            let k = chars.len();
            for (j, c) in chars.into_iter().enumerate() {
                tokens.push(c);
                tags.push(match (j, k) {
                    (_, 1) => "S-W",
                    (0, _) => "B-W",
                    (j, k) if j + 1 == k => "E-W",
                    _ => "I-W",
                });
            }
        }
        let row = serde_json::json!({"text": words.join(" "), "tokens": tokens, "tags": tags});
        out.push_str(&format!("{row}\n"));
    }
    let p = dir.join(name);
    std::fs::write(&p, out).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn a_character_tagger_trains_evaluates_and_segments_without_losing_characters() {
    let tmp = tempfile::tempdir().unwrap();
    let (train, dev) = (
        rows(tmp.path(), "train.jsonl", 40),
        rows(tmp.path(), "dev.jsonl", 8),
    );
    let run = tmp.path().join("run");
    let sets = [
        format!("data.train={train:?}"),
        format!("data.dev={dev:?}"),
        format!("data.test={dev:?}"),
        format!("output_dir={:?}", run.to_str().unwrap()),
        "train.epochs=15".into(),
        "task.lstm_hidden=16".into(),
        "task.embedding_dim=16".into(),
        "train.batch_size=8".into(),
    ];
    train_run("configs/zh-seg-bilstm-crf.toml", &sets);
    let best = run.join("best");
    let b = best.to_str().unwrap();
    let ev = bin(&["eval", "--model", b, "--data", &dev]);
    let ev: Value = serde_json::from_slice(&ev.stdout).unwrap();
    let f1 = ev["entities"]["micro_f1"].as_f64().unwrap();
    assert!(f1 > 0.9, "word F1 on the training sentences: {ev}");

    let got = segment(
        &best,
        tmp.path(),
        "中国人民很好\n我们 爱 中国\n人民的力量很大\n",
    );
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0], "中国 人民 很 好", "{got}");
    for (line, text) in lines
        .iter()
        .zip(["中国人民很好", "我们爱中国", "人民的力量很大"])
    {
        assert_eq!(line.replace(' ', ""), text, "every character once");
    }
}

fn train_run(config: &str, sets: &[String]) {
    let mut args = vec!["train".to_string(), "--config".into()];
    args.push(common::repo_root().join(config).to_str().unwrap().into());
    for s in sets {
        args.extend(["--set".to_string(), s.clone()]);
    }
    let r = bin(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
}

/// `bert4rs segment` of `texts` with `model` in `dir`: the run and the output path.
fn run_segment(model: &Path, dir: &Path, texts: &str) -> (std::process::Output, PathBuf) {
    let (input, out) = (dir.join("texts.txt"), dir.join("words.txt"));
    std::fs::write(&input, texts).unwrap();
    let (m, i, o) = (
        model.to_str().unwrap(),
        input.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let r = bin(&["segment", "--model", m, "--input", i, "--output", o]);
    (r, out)
}

/// The words `segment` writes for `texts`.
fn segment(model: &Path, dir: &Path, texts: &str) -> String {
    let (r, out) = run_segment(model, dir, texts);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    std::fs::read_to_string(&out).unwrap()
}

/// A sub-word encoder reads "hello" as one WordPiece; training reads the characters of a row
/// one by one, so `segment` must too, or it could never split inside a Latin or digit run.
#[test]
fn an_encoder_tagger_splits_inside_a_run_that_its_vocabulary_holds_as_one_piece() {
    let sentences: [&[&str]; 4] = [
        &["hel", "lo", "你", "好"],
        &["wor", "ld", "他", "们"],
        &["你们", "hel", "lo", "wor", "ld"],
        &["好", "wor", "ld", "他"],
    ];
    let tmp = tempfile::tempdir().unwrap();
    let train = rows_of(&sentences, tmp.path(), "train.jsonl", 48);
    let dev = rows_of(&sentences, tmp.path(), "dev.jsonl", 4);
    let run = tmp.path().join("run");
    let sets = [
        format!("model={:?}", fixture("train/tiny-cls").to_str().unwrap()),
        format!("data.train={train:?}"),
        format!("data.dev={dev:?}"),
        format!("data.test={dev:?}"),
        format!("output_dir={:?}", run.to_str().unwrap()),
        "optimizer.lr=5e-3".into(),
        "train.epochs=8".into(),
        "train.batch_size=8".into(),
    ];
    train_run("configs/zh-seg-bert-crf.toml", &sets);
    let got = segment(&run.join("best"), tmp.path(), "hello你好\nhelloworld\n");
    assert_eq!(got, "hel lo 你 好\nhel lo wor ld\n");
}

#[test]
fn segment_refuses_a_model_that_is_not_a_tagger() {
    let tmp = tempfile::tempdir().unwrap();
    let (r, out) = run_segment(&fixture("train/tiny-cls"), tmp.path(), "中国\n");
    assert!(!r.status.success());
    assert!(!out.exists(), "nothing written");
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("not a token-classification model"), "{err}");
}
