//! `bert4rs train-tokenizer` against the reference (`reference/make_tokenizer_fixtures.py`):
//! the directories it writes load in `transformers.AutoTokenizer` (the class recorded), which
//! gives the same ids, type ids and character offsets as bert4rs on held-out text (singles
//! and pairs); a fresh training run learns the vocabulary HF's own trainer learns on the same
//! corpus and settings (up to tie-breaking, which is hash-order dependent in the `tokenizers`
//! trainers, HF's included: huggingface/tokenizers#1794); bad input fails before any work.

mod common;

use bert4rs::tokenize::{EncodeOptions, TextInput, Tokenizer};
use common::{bin, fixture, json};
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;

const KINDS: [&str; 3] = ["wordpiece", "bpe", "unigram"];

fn heldout() -> Vec<String> {
    std::fs::read_to_string(fixture("tokenizer_train/heldout.txt"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn as_ids(v: &Value) -> Vec<Vec<u32>> {
    serde_json::from_value(v.clone()).unwrap()
}

fn as_offsets(v: &Value) -> Vec<Vec<(usize, usize)>> {
    serde_json::from_value(v.clone()).unwrap()
}

fn train(kind: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    let corpus = fixture("tokenizer_train/corpus.txt");
    let mut args = vec![
        "train-tokenizer",
        "--kind",
        kind,
        "--input",
        corpus.to_str().unwrap(),
        "--vocab-size",
        "400",
        "--output",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    bin(&args)
}

#[test]
fn trained_directories_tokenize_as_transformers_loads_them() {
    let expected = json("tokenizer_train/expected.json");
    let held = heldout();
    let singles: Vec<TextInput> = held.iter().map(TextInput::single).collect();
    let pairs: Vec<TextInput> = held
        .windows(2)
        .map(|w| TextInput::pair(w[0].clone(), w[1].clone()))
        .collect();
    let opts = EncodeOptions::default();
    for kind in KINDS {
        let want = &expected["kinds"][kind];
        let tok = Tokenizer::from_dir(&fixture(&format!("tokenizer_train/{kind}"))).unwrap();
        let class = if kind == "wordpiece" {
            "BertTokenizerFast"
        } else {
            "PreTrainedTokenizerFast"
        };
        assert_eq!(want["class"], class, "{kind}: transformers' class");
        for (i, t) in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
            .iter()
            .enumerate()
        {
            assert_eq!(tok.token_to_id(t), Some(i as u32), "{kind}: {t}");
            assert_eq!(want["special_ids"][t], i, "{kind}: HF's id of {t}");
        }
        let got = tok.encode_batch(&singles, &opts).unwrap();
        let (ids, offs) = (
            as_ids(&want["single_ids"]),
            as_offsets(&want["single_offsets"]),
        );
        for (j, e) in got.iter().enumerate() {
            assert_eq!(
                e.input_ids, ids[j],
                "{kind}: ids of line {j}: {:?}",
                held[j]
            );
            assert_eq!(e.offsets, offs[j], "{kind}: offsets of line {j}");
        }
        let got = tok.encode_batch(&pairs, &opts).unwrap();
        let (ids, types, offs) = (
            as_ids(&want["pair_ids"]),
            as_ids(&want["pair_type_ids"]),
            as_offsets(&want["pair_offsets"]),
        );
        for (j, e) in got.iter().enumerate() {
            assert_eq!(e.input_ids, ids[j], "{kind}: ids of pair {j}");
            assert_eq!(e.token_type_ids, types[j], "{kind}: type ids of pair {j}");
            assert_eq!(e.offsets, offs[j], "{kind}: offsets of pair {j}");
        }
    }
}

/// The vocabulary a fresh run learns is HF's trainer's on the same corpus and settings: the
/// same size and alphabet, and the same merges up to ties (at least 97 % of tokens shared;
/// two HF runs differ by about as much). Case, CJK splitting and the `##` prefix would each
/// change far more.
#[test]
fn a_fresh_vocabulary_is_the_one_hf_trains_up_to_ties() {
    let expected = json("tokenizer_train/expected.json");
    let tmp = tempfile::tempdir().unwrap();
    for kind in KINDS {
        let out = tmp.path().join(kind);
        let res = train(kind, &out, &[]);
        assert!(
            res.status.success(),
            "{}",
            String::from_utf8_lossy(&res.stderr)
        );
        let summary: Value = serde_json::from_slice(&res.stdout).unwrap();
        let tok = Tokenizer::from_dir(&out).unwrap();
        let hf: Vec<String> =
            serde_json::from_value(expected["kinds"][kind]["hf_trained_vocab"].clone()).unwrap();
        assert_eq!(tok.vocab_size(), hf.len(), "{kind}: vocabulary size");
        assert_eq!(summary["vocab_size"], hf.len());
        let ours: HashSet<String> = tok.inner().get_vocab(false).into_keys().collect();
        let hf: HashSet<String> = hf.into_iter().collect();
        let shared = ours.intersection(&hf).count() as f64 / hf.len() as f64;
        assert!(
            shared >= 0.97,
            "{kind}: only {shared:.3} of HF's vocabulary"
        );
        let single_chars = |v: &HashSet<String>| -> HashSet<String> {
            v.iter()
                .filter(|t| t.chars().count() == 1)
                .cloned()
                .collect()
        };
        assert_eq!(single_chars(&ours), single_chars(&hf), "{kind}: alphabet");
        // CJK characters are words of their own: no learned token joins two of them.
        let cjk = |c: char| ('\u{4E00}'..='\u{9FFF}').contains(&c);
        assert!(
            !ours
                .iter()
                .any(|t| t.chars().filter(|c| cjk(*c)).count() > 1),
            "{kind}: a token spans two CJK characters"
        );
        let mut learned = ours.iter().filter(|t| !t.starts_with('['));
        assert!(
            !learned.any(|t| t.chars().any(char::is_uppercase)),
            "{kind}: lower-cased"
        );
        if kind == "wordpiece" {
            let lines = std::fs::read_to_string(out.join("vocab.txt")).unwrap();
            assert_eq!(
                lines.lines().count(),
                tok.vocab_size(),
                "vocab.txt: a line per id"
            );
            assert_eq!(lines.lines().nth(4), Some("[MASK]"));
        }
    }
}

#[test]
fn cased_training_keeps_capitals_and_extra_specials_are_never_split() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cased");
    let res = train(
        "wordpiece",
        &out,
        &["--cased", "--special-tokens", "[E1]", "[/E1]"],
    );
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let tok = Tokenizer::from_dir(&out).unwrap();
    assert_eq!(tok.token_to_id("[E1]"), Some(5));
    assert_eq!(tok.token_to_id("[/E1]"), Some(6));
    let vocab = tok.inner().get_vocab(false);
    assert!(vocab
        .keys()
        .any(|t| !t.starts_with('[') && t.chars().any(char::is_uppercase)));
    let e = tok
        .encode_batch(
            &[TextInput::single("xo [E1]ka[/E1]")],
            &EncodeOptions::default(),
        )
        .unwrap();
    assert!(e[0].input_ids.contains(&5) && e[0].input_ids.contains(&6));
}

fn one_error(out: &std::process::Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {stderr}");
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    let errs: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errs.len(), 1, "one error line: {stderr}");
    for n in needles {
        assert!(errs[0].contains(n), "error line lacks `{n}`: {}", errs[0]);
    }
}

#[test]
fn bad_input_fails_with_one_clear_error_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = d.join("out");
    let empty = d.join("empty.txt");
    std::fs::write(&empty, "\n  \n").unwrap();
    let bad_utf8 = d.join("bad.txt");
    std::fs::write(&bad_utf8, b"fine line\nbad \xff byte\n").unwrap();
    let o = out.to_str().unwrap();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--input", empty.to_str().unwrap(), "--output", o],
            vec!["empty.txt", "no text"],
        ),
        (
            vec!["--input", bad_utf8.to_str().unwrap(), "--output", o],
            vec!["bad.txt:2", "UTF-8"],
        ),
        (
            vec!["--input", "missing.txt", "--output", o],
            vec!["missing.txt"],
        ),
        (
            vec![
                "--input",
                empty.to_str().unwrap(),
                "--vocab-size",
                "5",
                "--output",
                o,
            ],
            vec!["--vocab-size 5"],
        ),
        (
            vec![
                "--input",
                empty.to_str().unwrap(),
                "--kind",
                "sentencepiece",
                "--output",
                o,
            ],
            vec!["sentencepiece", "wordpiece, bpe or unigram"],
        ),
    ];
    for (args, needles) in cases {
        let mut all = vec!["train-tokenizer"];
        all.extend(args);
        one_error(&bin(&all), &needles);
        assert!(!out.exists(), "nothing written for {all:?}");
    }
}
