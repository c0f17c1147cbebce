//! Bad input never panics: each case exits non-zero with a one-line error that names the
//! problem (file, line, field or tensor), and no partial output file is left behind.

mod common;

use common::fixture;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch copy of the tiny bert-a model directory.
fn model_copy() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    std::fs::create_dir(&dir).unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "vocab.txt",
        "tokenizer_config.json",
    ] {
        std::fs::copy(fixture("models/bert-a").join(f), dir.join(f)).unwrap();
    }
    (tmp, dir)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// `bert4rs CMD --model MODEL --input INPUT --output OUTPUT OPTS...` (`cmd` may carry
/// options of its own before `--model`).
fn run_io(cmd: &[&str], model: &Path, input: &Path, output: &Path, opts: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bert4rs"))
        .args(cmd)
        .arg("--model")
        .arg(model)
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .args(opts)
        .output()
        .unwrap()
}

/// Runs `bert4rs encode` and `embed` on `model` + `input`, expects failure mentioning every
/// string in `needles`, and checks no output file was created.
fn expect_failure(model: &Path, input: &Path, extra: &[&str], needles: &[&str]) {
    for cmd in ["encode", "embed"] {
        let out_dir = tempfile::tempdir().unwrap();
        let output = out_dir.path().join(if cmd == "encode" {
            "out.safetensors"
        } else {
            "out.jsonl"
        });
        let res = run_io(&[cmd], model, input, &output, extra);
        let stderr = String::from_utf8_lossy(&res.stderr);
        assert!(!res.status.success(), "{cmd} should fail; stderr: {stderr}");
        assert!(!stderr.contains("panicked"), "{cmd} panicked: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(lines.len(), 1, "{cmd}: one error line expected: {stderr}");
        for n in needles {
            assert!(
                lines[0].contains(n),
                "{cmd}: error {:?} should mention {n:?}",
                lines[0]
            );
        }
        assert!(
            std::fs::read_dir(out_dir.path()).unwrap().next().is_none(),
            "{cmd} left a file behind"
        );
    }
}

fn good_input(dir: &Path) -> PathBuf {
    write(dir, "in.txt", "hello world\n我爱北京\n".as_bytes())
}

fn edit_config(dir: &Path, f: impl Fn(&mut serde_json::Value)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(p, v.to_string()).unwrap();
}

#[test]
fn malformed_config_names_the_file() {
    let (tmp, dir) = model_copy();
    write(&dir, "config.json", b"{\"model_type\": \"bert\", ");
    expect_failure(
        &dir,
        &good_input(tmp.path()),
        &[],
        &["config.json", "not valid JSON"],
    );
}

#[test]
fn missing_config_names_the_file() {
    let (tmp, dir) = model_copy();
    std::fs::remove_file(dir.join("config.json")).unwrap();
    expect_failure(&dir, &good_input(tmp.path()), &[], &["config.json"]);
}

#[test]
fn missing_weights_file_says_what_was_expected() {
    let (tmp, dir) = model_copy();
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    expect_failure(
        &dir,
        &good_input(tmp.path()),
        &[],
        &["model.safetensors", "pytorch_model.bin"],
    );
}

#[test]
fn truncated_safetensors_names_the_file() {
    let (tmp, dir) = model_copy();
    let p = dir.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    expect_failure(
        &dir,
        &good_input(tmp.path()),
        &[],
        &["model.safetensors", "truncated or corrupt"],
    );
}

#[test]
fn shape_mismatch_names_the_tensor() {
    let (tmp, dir) = model_copy();
    edit_config(&dir, |v| v["intermediate_size"] = 80.into());
    expect_failure(
        &dir,
        &good_input(tmp.path()),
        &[],
        &["encoder.layer.0.intermediate.dense.weight", "[64, 32]"],
    );
}

#[test]
fn unknown_model_type_is_named() {
    let (tmp, dir) = model_copy();
    edit_config(&dir, |v| v["model_type"] = "electra".into());
    expect_failure(
        &dir,
        &good_input(tmp.path()),
        &[],
        &["config.json", "\"electra\""],
    );
}

#[test]
fn hidden_size_not_divisible_by_heads_is_named() {
    let (tmp, dir) = model_copy();
    edit_config(&dir, |v| v["num_attention_heads"] = 5.into());
    expect_failure(
        &dir,
        &good_input(tmp.path()),
        &[],
        &["config.json", "not divisible"],
    );
}

#[test]
fn missing_encoder_tensor_is_named() {
    let (tmp, dir) = model_copy();
    edit_config(&dir, |v| v["num_hidden_layers"] = 3.into());
    expect_failure(
        &dir,
        &good_input(tmp.path()),
        &[],
        &["model.safetensors", "encoder.layer.2."],
    );
}

#[test]
fn invalid_utf8_names_the_line() {
    let (tmp, dir) = model_copy();
    let input = write(tmp.path(), "in.txt", b"fine\nbad \xff\xfe bytes\n");
    expect_failure(&dir, &input, &[], &["in.txt:2", "invalid UTF-8"]);
}

#[test]
fn empty_input_file_is_an_error() {
    let (tmp, dir) = model_copy();
    let input = write(tmp.path(), "in.txt", b"");
    expect_failure(&dir, &input, &[], &["in.txt", "empty"]);
}

#[test]
fn jsonl_line_without_text_names_the_line() {
    let (tmp, dir) = model_copy();
    let input = write(
        tmp.path(),
        "in.jsonl",
        b"{\"text\": \"ok\"}\n{\"txt\": \"typo\"}\n",
    );
    expect_failure(&dir, &input, &[], &["in.jsonl:2", "missing field `text`"]);
}

#[test]
fn over_long_text_without_truncation_is_an_error_and_truncation_fixes_it() {
    let (tmp, dir) = model_copy();
    // bert-a has 64 positions.
    let long = "hello world ".repeat(100);
    let input = write(tmp.path(), "in.txt", long.as_bytes());
    expect_failure(
        &dir,
        &input,
        &[],
        &["longer than the model's 64 positions", "--truncation"],
    );
    let out = tmp.path().join("out.safetensors");
    let opts = ["--max-length", "64", "--truncation"];
    let res = run_io(&["encode"], &dir, &input, &out, &opts);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let t = candle_core::safetensors::load(&out, &candle_core::Device::Cpu).unwrap();
    assert_eq!(t["input_ids"].dims(), &[1, 64]);
}

#[test]
fn unknown_pooling_lists_the_choices() {
    let (tmp, dir) = model_copy();
    let out = tmp.path().join("o.jsonl");
    let res = run_io(
        &["embed"],
        &dir,
        &good_input(tmp.path()),
        &out,
        &["--pooling", "avg"],
    );
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(
        !res.status.success() && stderr.contains("unknown pooling \"avg\""),
        "{stderr}"
    );
}

#[test]
fn a_model_path_that_is_no_directory_is_named_before_any_work() {
    let (tmp, dir) = model_copy();
    let input = good_input(tmp.path());
    for (model, says) in [
        (tmp.path().join("missing"), "no such directory"),
        (dir.join("config.json"), "a file, not a directory"),
    ] {
        for cmd in ["embed", "predict"] {
            let out = tmp.path().join("o.jsonl");
            let res = run_io(&[cmd], &model, &input, &out, &[]);
            let stderr = String::from_utf8_lossy(&res.stderr);
            assert!(!res.status.success(), "{cmd}: {stderr}");
            assert!(
                stderr.contains(says) && stderr.contains("--model"),
                "{cmd}: {stderr}"
            );
            assert!(!out.exists(), "{cmd} wrote an output");
        }
    }
}

#[test]
fn a_new_model_directory_is_not_written_over_an_existing_file() {
    let (tmp, dir) = model_copy();
    let file = write(tmp.path(), "taken", b"keep me");
    let res = Command::new(env!("CARGO_BIN_EXE_bert4rs"))
        .args(["quantize", "--model"])
        .arg(&dir)
        .arg("--output")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(
        !res.status.success() && stderr.contains("is a file"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
}
