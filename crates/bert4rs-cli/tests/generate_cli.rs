//! `bert4rs generate` / `bert4rs score` from the command line: JSON output equal to HF's
//! `generate` ids, BPE prompts, seeded sampling, and bad input failing with a clear error.

mod common;

use common::{asset, gpt2_fixture_dir, json};
use std::process::{Command, Output};

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bert4rs"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Runs and expects failure with `needle` in the one-line error.
fn fails_with(args: &[&str], needle: &str) {
    let o = bin(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{args:?} should fail");
    assert!(
        err.contains(needle),
        "{args:?}: error {err:?} lacks {needle:?}"
    );
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
}

fn ids_of(line: &str) -> Vec<u64> {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

#[test]
fn json_output_has_hf_generate_ids_for_greedy_and_beam() {
    let dir = gpt2_fixture_dir("gpt2-a");
    let m = dir.path().to_str().unwrap();
    let cases = json("gpt2/gpt2-a/cases.json");
    let eos = cases["eos_token_id"].to_string();
    let prompt: Vec<String> = cases["prompts"][1]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    let prompt = prompt.join(",");
    let greedy = stdout(&bin(&[
        "generate",
        "--model",
        m,
        "--prompt-ids",
        &prompt,
        "--max-new-tokens",
        "20",
        "--eos-token-id",
        &eos,
        "--format",
        "json",
    ]));
    let want: Vec<u64> = cases["generate"]["greedy"]["results"][1]["sequences"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert_eq!(ids_of(greedy.trim()), want);
    let beam = stdout(&bin(&[
        "generate",
        "--model",
        m,
        "--prompt-ids",
        &prompt,
        "--max-new-tokens",
        "12",
        "--num-beams",
        "3",
        "--no-repeat-ngram-size",
        "2",
        "--eos-token-id",
        &eos,
        "--format",
        "json",
    ]));
    let want: Vec<u64> = cases["generate"]["beam3_ngram2"]["results"][1]["sequences"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert_eq!(ids_of(beam.trim()), want);
}

#[test]
fn text_prompts_are_bpe_encoded_and_sampling_is_seeded() {
    let dir = gpt2_fixture_dir("gpt2-c");
    let m = dir.path().to_str().unwrap();
    let bpe = asset("gpt2-bpe");
    let t = bpe.to_str().unwrap();
    let run = |seed: &str| {
        stdout(&bin(&[
            "generate",
            "--model",
            m,
            "--tokenizer",
            t,
            "--prompt",
            "Hello, my dog is cute",
            "--max-new-tokens",
            "8",
            "--do-sample",
            "--top-k",
            "20",
            "--top-p",
            "0.9",
            "--temperature",
            "0.8",
            "--seed",
            seed,
            "--format",
            "json",
        ]))
    };
    let a = run("1");
    let ids = ids_of(a.trim());
    assert_eq!(&ids[..6], &[15496, 11, 616, 3290, 318, 13779]);
    assert_eq!(ids.len(), 14);
    let v: serde_json::Value = serde_json::from_str(a.trim()).unwrap();
    assert!(v["text"]
        .as_str()
        .unwrap()
        .starts_with("Hello, my dog is cute"));
    assert_eq!(run("1"), a, "same seed, same sample");
    assert!(
        (2..6).any(|s| run(&s.to_string()) != a),
        "other seeds never differ"
    );
    // Streamed text output ends with the same text.
    let streamed = stdout(&bin(&[
        "generate",
        "--model",
        m,
        "--tokenizer",
        t,
        "--prompt",
        "Hello, my dog is cute",
        "--max-new-tokens",
        "8",
        "--do-sample",
        "--top-k",
        "20",
        "--top-p",
        "0.9",
        "--temperature",
        "0.8",
        "--seed",
        "1",
    ]));
    assert_eq!(streamed.trim_end_matches('\n'), v["text"].as_str().unwrap());
}

#[test]
fn score_prints_the_library_log_probs() {
    let dir = gpt2_fixture_dir("gpt2-a");
    let m = dir.path().to_str().unwrap();
    let bpe = asset("gpt2-bpe");
    let out = stdout(&bin(&[
        "score",
        "--model",
        m,
        "--tokenizer",
        bpe.to_str().unwrap(),
        "--prompt",
        "Hello, my dog is cute",
        "--continuation",
        " and very fluffy",
    ]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let cases = json("gpt2/gpt2-a/cases.json");
    let want = cases["logprobs"][0]["logprob"].as_f64().unwrap();
    assert!(
        (v["logprob"].as_f64().unwrap() - want).abs() < 1e-4,
        "{v} vs {want}"
    );
}

#[test]
fn bad_generation_input_fails_with_a_clear_error() {
    let dir = gpt2_fixture_dir("gpt2-c"); // n_positions 48
    let m = dir.path().to_str().unwrap();
    let long: Vec<String> = (0..49).map(|i| (100 + i).to_string()).collect();
    let long = long.join(",");
    let base = ["generate", "--model", m, "--prompt-ids"];
    let with = |extra: &[&str], ids: &str| {
        let mut v: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        v.push(ids.to_string());
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let check = |extra: &[&str], ids: &str, needle: &str| {
        let v = with(extra, ids);
        fails_with(&v.iter().map(String::as_str).collect::<Vec<_>>(), needle);
    };
    check(&[], &long, "longer than the model's n_positions (48)");
    check(
        &["--max-new-tokens", "40"],
        "1,2,3,4,5,6,7,8,9,10",
        "exceeds the model's n_positions",
    );
    check(
        &["--do-sample", "--top-p", "0"],
        "1,2",
        "top_p must be in (0, 1]",
    );
    check(
        &["--do-sample", "--top-p", "1.5"],
        "1,2",
        "top_p must be in (0, 1]",
    );
    check(&["--num-beams", "0"], "1,2", "num_beams must be at least 1");
    check(
        &[],
        "1,60000",
        "token id 60000 is outside the model's vocabulary",
    );
    check(
        &["--max-new-tokens", "0"],
        "1,2",
        "max_new_tokens must be at least 1",
    );
    check(
        &["--early-stopping", "maybe"],
        "1,2",
        "--early-stopping must be",
    );
    // A text prompt without any tokenizer.
    fails_with(
        &["generate", "--model", m, "--prompt", "hi"],
        "need a tokenizer",
    );
    // A BPE vocabulary without its merges file.
    let tk = tempfile::tempdir().unwrap();
    std::fs::copy(
        asset("gpt2-bpe").join("vocab.json"),
        tk.path().join("vocab.json"),
    )
    .unwrap();
    fails_with(
        &[
            "generate",
            "--model",
            m,
            "--tokenizer",
            tk.path().to_str().unwrap(),
            "--prompt",
            "hi",
        ],
        "missing merges file",
    );
    // Not a GPT-2 directory.
    let bert = common::fixture("models/bert-a");
    fails_with(
        &[
            "generate",
            "--model",
            bert.to_str().unwrap(),
            "--prompt-ids",
            "1",
        ],
        "model_type",
    );
}

#[test]
fn int8_generation_answers_a_batch_as_each_prompt_alone() {
    let dir = gpt2_fixture_dir("gpt2-a");
    let m = dir.path().to_str().unwrap();
    let run = |prompts: &[&str]| -> Vec<Vec<u64>> {
        let mut args = vec!["generate", "--model", m, "--int8", "--format", "json"];
        args.extend(["--max-new-tokens", "8", "--eos-token-id", "0"]);
        for p in prompts {
            args.extend(["--prompt-ids", p]);
        }
        stdout(&bin(&args)).lines().map(ids_of).collect()
    };
    let (a, b) = ("464,3290,318", "15496,11,616,3290,318,13779");
    let batch = run(&[a, b]);
    assert_eq!(batch.len(), 2);
    assert_eq!(batch[0], run(&[a])[0]);
    assert_eq!(batch[1], run(&[b])[0]);
    assert!(batch[1].len() > 6, "tokens were generated");
}
