//! `bert4rs generate` with an encoder–decoder (bert2bert) directory: source texts from
//! `--prompt` or an `--input` file give HF's generated ids (greedy and beam search; golden
//! from reference/make_seq2seq_fixtures.py), and options that do not apply fail clearly.

mod common;

use common::{fixture, json};
use std::process::{Command, Output};

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bert4rs"))
        .args(args)
        .output()
        .unwrap()
}

fn json_ids(o: &Output) -> Vec<Vec<u64>> {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            serde_json::from_value(v["ids"].clone()).unwrap()
        })
        .collect()
}

fn golden(key: &str) -> Vec<Vec<u64>> {
    let g = json("seq2seq/golden.json");
    serde_json::from_value(g.pointer(key).unwrap().clone()).unwrap()
}

#[test]
fn sources_from_prompts_or_a_file_give_hf_outputs() {
    let model = fixture("seq2seq/model");
    let m = model.to_str().unwrap();
    let g = json("seq2seq/golden.json");
    let sources: Vec<String> = serde_json::from_value(g["sources"].clone()).unwrap();
    let one = bin(&[
        "generate",
        "--model",
        m,
        "--prompt",
        &sources[0],
        "--max-new-tokens",
        "10",
        "--format",
        "json",
    ]);
    assert_eq!(json_ids(&one), vec![golden("/greedy_alone")[0].clone()]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sources.txt");
    std::fs::write(&file, sources.join("\n") + "\n").unwrap();
    let f = file.to_str().unwrap();
    let greedy = bin(&[
        "generate",
        "--model",
        m,
        "--input",
        f,
        "--max-new-tokens",
        "10",
        "--format",
        "json",
    ]);
    assert_eq!(json_ids(&greedy), golden("/greedy"));
    let beam = bin(&[
        "generate",
        "--model",
        m,
        "--input",
        f,
        "--max-new-tokens",
        "10",
        "--num-beams",
        "3",
        "--num-return-sequences",
        "2",
        "--format",
        "json",
    ]);
    assert_eq!(json_ids(&beam), golden("/beam/sequences"));
    let text = bin(&[
        "generate",
        "--model",
        m,
        "--prompt",
        &sources[2],
        "--max-new-tokens",
        "10",
    ]);
    assert!(text.status.success());
    assert_eq!(String::from_utf8_lossy(&text.stdout).lines().count(), 1);
}

#[test]
fn options_that_do_not_apply_and_empty_input_fail_clearly() {
    let model = fixture("seq2seq/model");
    let m = model.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    for (args, needle) in [
        (
            vec!["--prompt", "hello", "--int8"],
            "--int8 is not supported",
        ),
        (vec!["--prompt-ids", "5,6"], "--prompt-ids is not supported"),
        (vec!["--input", empty.to_str().unwrap()], "empty.txt"),
        (
            vec!["--prompt", "hello", "--prompt", " "],
            "source text 2 is empty",
        ),
        (
            vec!["--prompt", "hello", "--max-new-tokens", "80"],
            "max_position_embeddings",
        ),
    ] {
        let mut all = vec!["generate", "--model", m];
        all.extend(args.iter());
        let o = bin(&all);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} should fail");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
