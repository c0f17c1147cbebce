//! Helpers of the CLI crate's tests: the library tests' helpers (`tests/common`) and those
//! that run the `bert4rs` binary, which only this crate's tests can reach.
#![allow(dead_code, unused_imports)]

#[path = "../../../../tests/common/mod.rs"]
mod shared;

pub use shared::*;
use std::path::Path;

/// Runs the `bert4rs` binary with `args`.
pub fn bin(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_bert4rs"))
        .args(args)
        .output()
        .unwrap()
}

/// `bert4rs pretrain` on the tokenizer corpus with `model`, into `out`, plus `extra` sets.
pub fn pretrain_args(model: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let corpus = fixture("tokenizer_train/corpus.txt");
    let mut a: Vec<String> = vec![
        "pretrain".into(),
        "--set".into(),
        format!("model={:?}", model.to_str().unwrap()),
        "--set".into(),
        format!("output_dir={:?}", out.to_str().unwrap()),
        "--set".into(),
        format!("data.file={:?}", corpus.to_str().unwrap()),
        "--set".into(),
        "data.split=[0.9, 0.1, 0.0]".into(),
        "--set".into(),
        "data.max_length=64".into(),
        "--set".into(),
        "train.batch_size=16".into(),
        "--set".into(),
        "optimizer.lr=1e-3".into(),
    ];
    for e in extra {
        a.push("--set".into());
        a.push(e.to_string());
    }
    a
}

/// Runs the binary with owned arguments.
pub fn run(args: &[String]) -> std::process::Output {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    bin(&a)
}
