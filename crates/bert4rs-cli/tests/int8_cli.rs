//! `--int8` on the commands that run an encoder: the same inputs and outputs as f32, values
//! near f32's (not equal: the encoder really runs quantised). Taggers: `token_cli.rs`.

mod common;

use common::{bin, fixture};
use std::path::Path;

fn vectors(path: &Path, field: &str) -> Vec<Vec<f32>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let x = &v[field];
            match x.as_array() {
                Some(a) => a.iter().map(|f| f.as_f64().unwrap() as f32).collect(),
                // predict's {"probabilities": {label: p}}
                None => x
                    .as_object()
                    .unwrap()
                    .values()
                    .map(|f| f.as_f64().unwrap() as f32)
                    .collect(),
            }
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (n(a) * n(b))
}

#[test]
fn embed_and_predict_with_int8_stay_near_f32_but_run_quantised() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fixture("train/tiny-cls");
    let input = tmp.path().join("in.txt");
    std::fs::write(&input, "hello world\nthe lazy dog, again\na fox\n").unwrap();
    for (cmd, field) in [("embed", "embedding"), ("predict", "probabilities")] {
        let mut outs = Vec::new();
        for int8 in [false, true] {
            let out = tmp.path().join(format!("{cmd}-{int8}.jsonl"));
            let mut args = vec![cmd, "--model", model.to_str().unwrap()];
            args.extend([
                "--input",
                input.to_str().unwrap(),
                "--output",
                out.to_str().unwrap(),
            ]);
            if int8 {
                args.push("--int8");
            }
            let o = bin(&args);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            outs.push(vectors(&out, field));
        }
        assert_eq!(outs[1].len(), 3, "{cmd}: one line per text");
        for (f, q) in outs[0].iter().zip(&outs[1]) {
            assert_ne!(f, q, "{cmd}: --int8 gave f32's exact values");
            assert!(cosine(f, q) >= 0.98, "{cmd}: cosine {}", cosine(f, q));
        }
    }
}
