//! `--int8` on the commands that run an encoder: the same inputs and outputs as f32, values
//! near f32's (not equal: the encoder really runs quantised). Taggers: `token_cli.rs`.

mod common;

use common::{bin, fixture};
use std::path::Path;
use std::process::Output;

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

/// `bert4rs CMD --model MODEL --input INPUT --output OUT` with `opts`.
fn run_io(cmd: &str, model: &Path, input: &Path, out: &Path, opts: &[&str]) -> Output {
    let mut args = vec![cmd, "--model", model.to_str().unwrap()];
    args.extend(["--input", input.to_str().unwrap()]);
    args.extend(["--output", out.to_str().unwrap()]);
    args.extend(opts);
    bin(&args)
}

/// The `field` vectors `cmd` writes for `input` under each of `variants`' options.
fn outputs(cmd: &str, field: &str, input: &Path, variants: &[&[&str]]) -> Vec<Vec<Vec<f32>>> {
    let model = fixture("train/tiny-cls");
    (variants.iter().enumerate())
        .map(|(v, opts)| {
            let out = input.with_file_name(format!("{cmd}-{v}.jsonl"));
            let r = run_io(cmd, &model, input, &out, opts);
            assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
            vectors(&out, field)
        })
        .collect()
}

#[test]
fn embed_and_predict_with_int8_stay_near_f32_but_run_quantised() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.txt");
    std::fs::write(&input, "hello world\nthe lazy dog, again\na fox\n").unwrap();
    for (cmd, field) in [("embed", "embedding"), ("predict", "probabilities")] {
        let outs = outputs(cmd, field, &input, &[&[], &["--int8"]]);
        assert_eq!(outs[1].len(), 3, "{cmd}: one line per text");
        for (f, q) in outs[0].iter().zip(&outs[1]) {
            assert_ne!(f, q, "{cmd}: --int8 gave f32's exact values");
            assert!(cosine(f, q) >= 0.98, "{cmd}: cosine {}", cosine(f, q));
        }
    }
}

#[test]
fn int8_activations_picks_the_code_width_and_rejects_other_values() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.txt");
    std::fs::write(&input, "hello world\nthe lazy dog, again\na fox\n").unwrap();
    let v: [&[&str]; 3] = [
        &["--int8"],
        &["--int8", "--int8-activations", "7"],
        &["--int8", "--int8-activations", "8"],
    ];
    let outs = outputs("embed", "embedding", &input, &v);
    for ((wide, u7), u8) in outs[0].iter().zip(&outs[1]).zip(&outs[2]) {
        assert_ne!(wide, u7, "7-bit codes gave the 12-bit codes' values");
        assert_ne!(u8, u7, "8-bit codes gave the 7-bit codes' values");
        assert_ne!(u8, wide, "8-bit codes gave the 12-bit codes' values");
        for other in [u7, u8] {
            assert!(
                cosine(wide, other) >= 0.98,
                "cosine {}",
                cosine(wide, other)
            );
        }
    }
    let model = fixture("train/tiny-cls");
    let out = tmp.path().join("x.jsonl");
    for (opts, says) in [
        (&["--int8", "--int8-activations", "9"][..], "7, 8 or 12"),
        (&["--int8-activations", "7"][..], "--int8"),
    ] {
        let r = run_io("embed", &model, &input, &out, opts);
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success() && err.contains(says), "{opts:?}: {err}");
        assert!(!out.exists(), "{opts:?} wrote an output");
    }
}

#[test]
fn embed_predict_and_eval_with_bf16_weights_stay_within_cosine_0_9999_of_f32() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fixture("train/tiny-cls");
    let m = model.to_str().unwrap();
    let input = tmp.path().join("in.txt");
    std::fs::write(&input, "hello world\nthe lazy dog, again\na fox\n").unwrap();
    for (cmd, field) in [("embed", "embedding"), ("predict", "probabilities")] {
        let outs = outputs(
            cmd,
            field,
            &input,
            &[&["--dtype", "f32"], &["--dtype", "bf16"]],
        );
        assert_eq!(outs[1].len(), 3, "{cmd}: one line per text");
        for (a, b) in outs[0].iter().zip(&outs[1]) {
            assert!(cosine(a, b) > 0.9999, "{cmd}: {a:?} vs {b:?}");
        }
    }
    let data = tmp.path().join("test.jsonl");
    let rows = ["{\"text\": \"hello world\", \"label\": \"pos\"}"; 4].join("\n");
    std::fs::write(&data, rows).unwrap();
    let mut accuracy = Vec::new();
    for dtype in ["f32", "bf16"] {
        let r = bin(&[
            "eval",
            "--model",
            m,
            "--data",
            data.to_str().unwrap(),
            "--dtype",
            dtype,
        ]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let ev: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
        let score = |k: &str| ev["classification"][k].as_f64().unwrap();
        accuracy.push((score("accuracy"), ev["loss"].as_f64().unwrap()));
    }
    let ((a32, l32), (a16, l16)) = (accuracy[0], accuracy[1]);
    assert_eq!(a32, a16, "eval: bf16 changed a label");
    assert!(
        (l32 - l16).abs() <= 1e-2 * l32.abs(),
        "eval loss {l32} vs {l16}"
    );
}

#[test]
fn bf16_is_refused_with_int8_and_for_taggers_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.txt");
    std::fs::write(&input, "hello world\n").unwrap();
    let out = tmp.path().join("out.jsonl");
    let m = fixture("train/tiny-cls");
    // The command on `model` with these options; its stderr, which must report a failure.
    let refused = |cmd: &str, model: &Path, opts: &[&str]| {
        let r = run_io(cmd, model, &input, &out, opts);
        assert!(!r.status.success(), "{cmd} {opts:?} ran");
        String::from_utf8_lossy(&r.stderr).to_string()
    };
    let err = refused("embed", &m, &["--dtype", "bf16", "--int8"]);
    assert!(err.contains("--int8") && err.contains("--dtype"), "{err}");
    let err = refused("embed", &m, &["--dtype", "fp8"]);
    assert!(err.contains("fp8"), "{err}");
    // A token classifier: the same weights, declared as one.
    let tagger = tmp.path().join("tagger");
    std::fs::create_dir_all(&tagger).unwrap();
    for f in std::fs::read_dir(&m).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, tagger.join(f.file_name().unwrap())).unwrap();
    }
    let cfg = tagger.join("config.json");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = text.replace("ForSequenceClassification", "ForTokenClassification");
    std::fs::write(&cfg, text).unwrap();
    let err = refused("predict", &tagger, &["--dtype", "bf16"]);
    assert!(err.contains("token or relation model"), "{err}");
    assert!(!out.exists(), "nothing written");
}

#[test]
fn a_quantized_directory_runs_every_command_exactly_as_int8_on_the_fly() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.txt");
    std::fs::write(&input, "hello world\nthe lazy dog, again\na fox\n").unwrap();
    let src = fixture("train/tiny-cls");
    let q = tmp.path().join("int8");
    let r = bin(&[
        "quantize",
        "--model",
        src.to_str().unwrap(),
        "--output",
        q.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(summary["activation_bits"], 12);
    assert!(summary["int8_layers"].as_u64().unwrap() > 0, "{summary}");
    let r = bin(&["inspect", "--model", q.to_str().unwrap()]);
    let shown = String::from_utf8_lossy(&r.stdout);
    assert!(shown.contains("int8 linear layers (12-bit"), "{shown}");
    let u7: &[&str] = &["--int8", "--int8-activations", "7"];
    for (cmd, on_src, on_q) in [
        ("embed", &["--int8"][..], &[][..]),
        ("predict", &["--int8"], &[]),
        ("predict", u7, u7),
    ] {
        let (a, b) = (tmp.path().join("a.jsonl"), tmp.path().join("b.jsonl"));
        for (model, opts, out) in [(&src, on_src, &a), (&q, on_q, &b)] {
            let r = run_io(cmd, model, &input, out, opts);
            assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        }
        let (a, b) = (
            std::fs::read_to_string(a).unwrap(),
            std::fs::read_to_string(b).unwrap(),
        );
        assert_eq!(
            a, b,
            "{cmd} {on_q:?}: the int8 directory differs from --int8"
        );
    }
    let data = tmp.path().join("test.jsonl");
    std::fs::write(&data, "{\"text\": \"hello world\", \"label\": \"pos\"}\n").unwrap();
    let eval = |model: &Path, opts: &[&str]| {
        let mut args = vec!["eval", "--model", model.to_str().unwrap()];
        args.extend(["--data", data.to_str().unwrap()]);
        args.extend(opts);
        let r = bin(&args);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        r.stdout
    };
    assert_eq!(eval(&src, &["--int8"]), eval(&q, &[]), "eval");
}

#[test]
fn quantize_refuses_its_own_output_and_int8_directories_refuse_f32_only_work() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture("train/tiny-cls");
    let q = tmp.path().join("int8");
    let (s, qs) = (src.to_str().unwrap(), q.to_str().unwrap());
    let err = |args: &[&str]| {
        let r = bin(args);
        assert!(!r.status.success(), "{args:?} ran");
        String::from_utf8_lossy(&r.stderr).to_string()
    };
    assert!(err(&["quantize", "--model", s, "--output", s]).contains("model directory itself"));
    assert!(err(&[
        "quantize",
        "--model",
        s,
        "--output",
        qs,
        "--int8-activations",
        "9"
    ])
    .contains("7, 8 or 12"));
    let gpt2 = tmp.path().join("gpt2");
    std::fs::create_dir_all(&gpt2).unwrap();
    std::fs::write(gpt2.join("config.json"), r#"{"model_type": "gpt2"}"#).unwrap();
    let g = gpt2.to_str().unwrap();
    assert!(err(&["quantize", "--model", g, "--output", qs]).contains("generate --int8"));
    assert!(!q.exists(), "a refused run wrote nothing");
    assert!(bin(&["quantize", "--model", s, "--output", qs])
        .status
        .success());
    let again = tmp.path().join("again");
    let again = again.to_str().unwrap();
    assert!(err(&["quantize", "--model", qs, "--output", again]).contains("already int8"));
    let input = tmp.path().join("in.txt");
    std::fs::write(&input, "hello world\n").unwrap();
    let out = tmp.path().join("out.jsonl");
    let r = run_io("embed", &q, &input, &out, &["--dtype", "bf16"]);
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("int8 model"),
        "bf16 on int8"
    );
    let heads = [
        "prune-heads",
        "--model",
        qs,
        "--output",
        again,
        "--heads",
        "{\"0\": [0]}",
    ];
    assert!(err(&heads).contains("bert4rs quantize"));
    assert!(
        !out.exists() && !Path::new(again).exists(),
        "nothing written"
    );
}
