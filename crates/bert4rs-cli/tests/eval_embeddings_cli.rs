//! `bert4rs eval-embeddings`: alignment, uniformity and Spearman per pooling equal the
//! library's metrics on the vectors `bert4rs embed` writes for the same texts; pairs without
//! scores are all positives; malformed pair files are named errors.

mod common;

use bert4rs::train::embedding_metrics::{alignment, sts_spearman, uniformity};
use common::{bin, fixture};
use serde_json::Value;
use std::path::Path;

const PAIRS: [(&str, &str, f64); 5] = [
    ("hello world", "hello there world", 4.5),
    ("the quick brown fox", "a quick fox", 4.0),
    ("lazy dog", "the fox played", 1.0),
    ("played", "hello world", 0.5),
    ("a fox", "the quick brown fox", 3.0),
];

fn write(dir: &Path, name: &str, scored: bool) -> String {
    let rows: String = PAIRS
        .iter()
        .map(|(a, b, s)| {
            let mut r = serde_json::json!({"text": a, "text_pair": b});
            if scored {
                r["label"] = (*s).into();
            }
            format!("{r}\n")
        })
        .collect();
    let p = dir.join(name);
    std::fs::write(&p, rows).unwrap();
    p.to_str().unwrap().to_string()
}

fn ok(out: std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `bert4rs embed` of `texts` with `pooling`.
fn embed(dir: &Path, model: &str, texts: &[&str], pooling: &str) -> Vec<Vec<f32>> {
    let input = dir.join("texts.txt");
    std::fs::write(&input, texts.join("\n") + "\n").unwrap();
    let out = dir.join("emb.jsonl");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let r = bin(&[
        "embed",
        "--model",
        model,
        "--input",
        i,
        "--output",
        o,
        "--pooling",
        pooling,
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let text = std::fs::read_to_string(&out).unwrap();
    let rows = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap());
    rows.map(|v| serde_json::from_value(v["embedding"].clone()).unwrap())
        .collect()
}

#[test]
fn metrics_per_pooling_equal_the_library_on_embed_output() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fixture("train/tiny-cls");
    let m = model.to_str().unwrap();
    let data = write(tmp.path(), "pairs.jsonl", true);
    let out = ok(bin(&[
        "eval-embeddings",
        "--model",
        m,
        "--data",
        &data,
        "--pooling",
        "mean,cls",
    ]));
    assert_eq!(out.as_array().unwrap().len(), 2);
    for (row, pooling) in out.as_array().unwrap().iter().zip(["mean", "cls"]) {
        assert_eq!(row["pooling"], pooling);
        assert_eq!(
            (row["pairs"].as_u64(), row["positives"].as_u64()),
            (Some(5), Some(2))
        );
        let lefts: Vec<&str> = PAIRS.iter().map(|p| p.0).collect();
        let rights: Vec<&str> = PAIRS.iter().map(|p| p.1).collect();
        let (l, r) = (
            embed(tmp.path(), m, &lefts, pooling),
            embed(tmp.path(), m, &rights, pooling),
        );
        let all: Vec<(&[f32], &[f32])> = l.iter().zip(&r).map(|(a, b)| (&a[..], &b[..])).collect();
        let gold: Vec<f64> = PAIRS.iter().map(|p| p.2).collect();
        let close = |k: &str, want: f64| {
            let got = row[k].as_f64().unwrap();
            assert!((got - want).abs() < 1e-6, "{pooling} {k}: {got} vs {want}");
        };
        close("alignment", alignment(&all[..2]).unwrap());
        close("spearman", sts_spearman(&all, &gold));
        // Sentences: the 8 distinct texts of both sides (two right texts repeat left ones).
        let mut seen: Vec<&[f32]> = Vec::new();
        for v in l.iter().chain(&r) {
            if !seen.contains(&v.as_slice()) {
                seen.push(v);
            }
        }
        assert_eq!(row["sentences"], 8);
        close("uniformity", uniformity(&seen).unwrap());
    }
    let unscored = write(tmp.path(), "unscored.jsonl", false);
    let out = ok(bin(&["eval-embeddings", "--model", m, "--data", &unscored]));
    assert_eq!(
        out[0]["positives"], 5,
        "no scores: every pair is a positive"
    );
    assert!(out[0]["spearman"].is_null());
}

#[test]
fn malformed_pair_files_are_named_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fixture("train/tiny-cls");
    let cases = [
        ("{\"text\": \"a\"}\n", "text_pair"),
        ("{\"text\": \"a\", \"text_pair\": \"b\", \"label\": \"high\"}\n", "must be a number"),
        ("{\"text\": \"a\", \"text_pair\": \"b\", \"label\": 1}\n{\"text\": \"a\", \"text_pair\": \"c\"}\n", "score all or none"),
    ];
    for (i, (rows, needle)) in cases.iter().enumerate() {
        let p = tmp.path().join(format!("bad{i}.jsonl"));
        std::fs::write(&p, rows).unwrap();
        let r = bin(&[
            "eval-embeddings",
            "--model",
            model.to_str().unwrap(),
            "--data",
            p.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(
            !r.status.success() && err.contains(needle),
            "{needle}: {err}"
        );
    }
}
