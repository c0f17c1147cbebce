//! Token ids, segments, masks, special-token masks and character offsets equal HF's fast
//! BERT tokenizer exactly, on the small test vocab, the real bert-base-chinese vocab
//! (cased) and MiniLM's `tokenizer.json`; plus the bert4torch notes' own numbers.

mod common;

use bert4rs::tokenize::{EncodeOptions, Padding, TextInput, Tokenizer, Truncation};
use common::*;
use serde_json::Value;
use std::path::Path;

fn check_file(tok_dir: &Path, rel: &str, extra_special: &[&str]) {
    let base = Tokenizer::from_dir(tok_dir).unwrap();
    let text = std::fs::read_to_string(fixture(rel)).unwrap();
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        let case: Value = serde_json::from_str(line).unwrap();
        let mut tok = base.clone();
        if case["nfkc"].as_bool() == Some(true) {
            tok.enable_nfkc().unwrap();
        }
        if !extra_special.is_empty() {
            tok.add_special_tokens(extra_special).unwrap();
        }
        let encs = tok
            .encode_batch(&case_inputs(&case), &case_options(&case))
            .unwrap();
        let field = |k: &str| -> Vec<Vec<u32>> { serde_json::from_value(case[k].clone()).unwrap() };
        let got = |f: fn(&bert4rs::tokenize::Encoding) -> Vec<u32>| -> Vec<Vec<u32>> {
            encs.iter().map(f).collect()
        };
        let at = format!("{rel}:{} {:?}", i + 1, case["texts"]);
        assert_eq!(
            got(|e| e.input_ids.clone()),
            field("input_ids"),
            "input_ids at {at}"
        );
        assert_eq!(
            got(|e| e.token_type_ids.clone()),
            field("token_type_ids"),
            "token_type_ids at {at}"
        );
        assert_eq!(
            got(|e| e.attention_mask.clone()),
            field("attention_mask"),
            "attention_mask at {at}"
        );
        assert_eq!(
            got(|e| e.special_tokens_mask.clone()),
            field("special_tokens_mask"),
            "special_tokens_mask at {at}"
        );
        let offsets: Vec<Vec<(usize, usize)>> =
            serde_json::from_value(case["offsets"].clone()).unwrap();
        let ours: Vec<Vec<(usize, usize)>> = encs.iter().map(|e| e.offsets.clone()).collect();
        assert_eq!(ours, offsets, "offsets at {at}");
        n += 1;
    }
    assert!(n >= 5, "{rel} has only {n} cases");
}

#[test]
fn small_vocab_matches_hf_fast_tokenizer() {
    check_file(&fixture("vocab-small"), "tokenize/small.jsonl", &[]);
}

#[test]
fn bert_base_chinese_vocab_matches_hf() {
    check_file(&asset("bert-base-chinese-vocab"), "tokenize/zh.jsonl", &[]);
}

#[test]
fn minilm_tokenizer_json_matches_hf() {
    check_file(&asset("minilm"), "tokenize/minilm.jsonl", &[]);
}

#[test]
fn added_special_tokens_match_hf() {
    check_file(
        &asset("bert-base-chinese-vocab"),
        "tokenize/zh_added.jsonl",
        &["[prompt_1]", "[prompt_2]"],
    );
}

fn zh() -> Tokenizer {
    Tokenizer::from_dir(&asset("bert-base-chinese-vocab")).unwrap()
}

#[test]
fn notes_example_padded_to_max_length_10() {
    let opts = EncodeOptions {
        max_length: Some(10),
        padding: Padding::MaxLength,
        truncation: Some(Truncation::LongestFirst),
    };
    let encs = zh()
        .encode_batch(
            &[
                TextInput::single("我爱祖国"),
                TextInput::single("世界人民大团结"),
            ],
            &opts,
        )
        .unwrap();
    assert_eq!(
        encs[0].input_ids,
        [101, 2769, 4263, 4862, 1744, 102, 0, 0, 0, 0]
    );
    assert_eq!(
        encs[1].input_ids,
        [101, 686, 4518, 782, 3696, 1920, 1730, 5310, 102, 0]
    );
    assert_eq!(encs[0].attention_mask, [1, 1, 1, 1, 1, 1, 0, 0, 0, 0]);
}

#[test]
fn notes_example_unknown_latin_word_keeps_character_offsets() {
    let e = zh()
        .encode(
            &TextInput::single("世界Hello人民大团结"),
            &EncodeOptions::default(),
        )
        .unwrap();
    assert_eq!(
        e.input_ids,
        [101, 686, 4518, 100, 782, 3696, 1920, 1730, 5310, 102]
    );
    assert_eq!(
        e.offsets,
        [
            (0, 0),
            (0, 1),
            (1, 2),
            (2, 7),
            (7, 8),
            (8, 9),
            (9, 10),
            (10, 11),
            (11, 12),
            (0, 0)
        ]
    );
}

#[test]
fn notes_example_prompt_tokens_before_and_after_adding() {
    let mut tok = zh();
    let text = TextInput::single("[prompt_1][prompt_2]");
    let before = tok.encode(&text, &EncodeOptions::default()).unwrap();
    assert_eq!(
        before.input_ids,
        [101, 138, 8376, 9085, 8165, 142, 122, 140, 138, 8376, 9085, 8165, 142, 123, 140, 102]
    );
    assert_eq!(
        tok.add_special_tokens(&["[prompt_1]", "[prompt_2]"])
            .unwrap(),
        2
    );
    assert_eq!(tok.vocab_size(), 21130);
    let after = tok.encode(&text, &EncodeOptions::default()).unwrap();
    assert_eq!(after.input_ids, [101, 21128, 21129, 102]);
}

#[test]
fn a_vocab_only_directory_is_a_tokenizer() {
    // bert-base-chinese-vocab holds vocab.txt + tokenizer_config.json, no tokenizer.json.
    let dir = asset("bert-base-chinese-vocab");
    assert!(!dir.join("tokenizer.json").exists());
    assert_eq!(zh().vocab_size(), 21128);
}

#[test]
fn missing_tokenizer_config_uses_bert_tokenizer_defaults() {
    // Without tokenizer_config.json, BertTokenizer lowercases and strips accents.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("vocab-small/vocab.txt"),
        dir.path().join("vocab.txt"),
    )
    .unwrap();
    let plain = Tokenizer::from_dir(dir.path()).unwrap();
    let configured = Tokenizer::from_dir(&fixture("vocab-small")).unwrap();
    let text = TextInput::single("Café HELLO world");
    let a = plain.encode(&text, &EncodeOptions::default()).unwrap();
    let b = configured.encode(&text, &EncodeOptions::default()).unwrap();
    assert_eq!(a, b);
}

#[test]
fn concurrent_fetches_of_one_asset_both_succeed() {
    let cache = tempfile::tempdir().unwrap();
    // Only this test's own process-wide env: run the fetches in child processes.
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_bert4rs"))
            .args(["fetch", "bert-base-chinese-vocab"])
            .env("BERT4RS_CACHE", cache.path())
            .spawn()
            .unwrap()
    };
    let (a, b) = (run(), run());
    for mut child in [a, b] {
        assert!(child.wait().unwrap().success(), "a concurrent fetch failed");
    }
    let dir = cache.path().join("assets/bert-base-chinese-vocab");
    assert!(dir.join("vocab.txt").is_file() && dir.join("tokenizer_config.json").is_file());
    let leftovers: Vec<_> = std::fs::read_dir(cache.path().join("assets"))
        .unwrap()
        .collect();
    assert_eq!(leftovers.len(), 1, "temp directories left behind");
}
