//! What a new user tries first: every command that reads texts takes the same inputs (txt,
//! jsonl, csv, tsv), HF's option spellings work, counts of 0 are refused, repeated
//! `--prompt-ids` make a batch, and `train --resume` without a checkpoint fails before it
//! prints anything else.

mod common;

use common::{bin, fixture, gpt2_fixture_dir, json};
use std::path::{Path, PathBuf};
use std::process::Output;

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const TEXTS: [&str; 3] = ["hello world", "the lazy dog, again", "a fox"];

/// The same three texts as .txt, .jsonl, .csv and .tsv.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let json: String = TEXTS
        .iter()
        .map(|t| format!("{}\n", serde_json::json!({ "text": t })))
        .collect();
    let csv: String = TEXTS.iter().map(|t| format!("\"{t}\",x\n")).collect();
    let tsv: String = TEXTS.iter().map(|t| format!("{t}\tx\n")).collect();
    vec![
        write(dir, "in.txt", &(TEXTS.join("\n") + "\n")),
        write(dir, "in.jsonl", &json),
        write(dir, "in.csv", &format!("text,other\n{csv}")),
        write(dir, "in.tsv", &format!("text\tother\n{tsv}")),
    ]
}

fn run_on_each(cmd: &str, model: &Path, dir: &Path, extra: &[&str]) -> Vec<String> {
    inputs(dir)
        .iter()
        .map(|input| {
            let out = input.with_extension(format!("{cmd}.out"));
            let mut args = vec![
                cmd,
                "--model",
                model.to_str().unwrap(),
                "--input",
                input.to_str().unwrap(),
                "--output",
                out.to_str().unwrap(),
            ];
            args.extend_from_slice(extra);
            ok(bin(&args));
            std::fs::read_to_string(&out).unwrap()
        })
        .collect()
}

#[test]
fn every_text_command_reads_txt_jsonl_csv_and_tsv_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fixture("train/tiny-cls");
    for cmd in ["embed", "tokenize", "predict"] {
        let outs = run_on_each(cmd, &model, tmp.path(), &[]);
        assert_eq!(outs[0].lines().count(), 3, "{cmd}: one line per text");
        for (o, ext) in outs.iter().zip(["txt", "jsonl", "csv", "tsv"]) {
            assert_eq!(o, &outs[0], "{cmd} on .{ext} differs from .txt");
        }
    }
}

#[test]
fn hf_spellings_of_padding_and_truncation_are_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fixture("train/tiny-cls");
    let hf = run_on_each(
        "tokenize",
        &model,
        tmp.path(),
        &[
            "--padding",
            "max_length",
            "--max-length",
            "8",
            "--truncation",
            "longest_first",
        ],
    );
    let ours = run_on_each(
        "tokenize",
        &model,
        tmp.path(),
        &[
            "--padding",
            "max-length",
            "--max-length",
            "8",
            "--truncation",
            "longest-first",
        ],
    );
    assert_eq!(hf[0], ours[0]);
    let first: serde_json::Value = serde_json::from_str(hf[0].lines().next().unwrap()).unwrap();
    assert_eq!(
        first["input_ids"].as_array().unwrap().len(),
        8,
        "padded to 8"
    );
}

#[test]
fn a_batch_size_of_zero_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write(tmp.path(), "in.txt", "hello\n");
    let out = tmp.path().join("out.jsonl");
    let model = fixture("train/tiny-cls");
    for cmd in ["embed", "predict"] {
        let o = bin(&[
            cmd,
            "--model",
            model.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--batch-size",
            "0",
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{cmd} --batch-size 0 succeeded");
        assert!(
            err.contains("--batch-size") && err.contains("at least 1"),
            "{cmd}: {err}"
        );
        assert!(!out.exists(), "{cmd}: output written");
    }
}

#[test]
fn repeated_prompt_ids_are_a_batch() {
    let dir = gpt2_fixture_dir("gpt2-a");
    let cases = json("gpt2/gpt2-a/cases.json");
    let ids = |i: usize| -> String {
        let v: Vec<String> = cases["prompts"][i]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.to_string())
            .collect();
        v.join(",")
    };
    let gen = |prompts: &[String]| -> Vec<serde_json::Value> {
        let mut args = vec!["generate", "--model", dir.path().to_str().unwrap()];
        for p in prompts {
            args.extend(["--prompt-ids", p]);
        }
        args.extend(["--max-new-tokens", "4", "--format", "json"]);
        let o = ok(bin(&args));
        String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let (a, b) = (ids(0), ids(1));
    let both = gen(&[a.clone(), b.clone()]);
    assert_eq!(both.len(), 2, "two prompts, two results: {both:?}");
    assert_eq!(both[0]["ids"], gen(&[a])[0]["ids"]);
    assert_eq!(both[1]["ids"], gen(&[b])[0]["ids"]);
    let o = bin(&[
        "generate",
        "--model",
        dir.path().to_str().unwrap(),
        "--prompt-ids",
        "1,x",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("`x` is not a token id"));
}

#[test]
fn resume_without_a_checkpoint_fails_before_printing_the_config() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = bin(&[
        "train",
        "--set",
        &format!("output_dir={:?}", out.to_str().unwrap()),
        "--resume",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert_eq!(err.lines().count(), 1, "only the error: {err}");
    assert!(err.contains("no checkpoint"), "{err}");
}
