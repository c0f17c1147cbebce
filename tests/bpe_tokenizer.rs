//! GPT-2 byte-level BPE from `vocab.json` + `merges.txt` against HF `GPT2TokenizerFast` (and
//! the slow `GPT2Tokenizer`, which the fixture script checks agrees): ids, character
//! offsets and decoding of a varied corpus, and the exact round trip text → ids → text.

mod common;

use bert4rs::{EncodeOptions, TextInput, Tokenizer};
use common::{asset, json};

#[test]
fn bpe_ids_offsets_and_decoding_match_hf_gpt2_tokenizer() {
    let tok = Tokenizer::from_dir(&asset("gpt2-bpe")).unwrap();
    assert_eq!(tok.vocab_size(), 50257);
    let cases = json("gpt2/bpe.json");
    for c in cases["cases"].as_array().unwrap() {
        let text = c["text"].as_str().unwrap();
        let enc = tok
            .encode(&TextInput::single(text), &EncodeOptions::default())
            .unwrap();
        let want: Vec<u32> = c["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(enc.input_ids, want, "ids of {text:?}");
        assert_eq!(
            tok.encode_plain(text).unwrap(),
            want,
            "plain ids of {text:?}"
        );
        let offsets: Vec<(usize, usize)> = c["offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o[0].as_u64().unwrap() as usize,
                    o[1].as_u64().unwrap() as usize,
                )
            })
            .collect();
        assert_eq!(enc.offsets, offsets, "offsets of {text:?}");
        assert_eq!(
            tok.decode_with(&want, false).unwrap(),
            c["decoded"].as_str().unwrap(),
            "decode of {text:?}"
        );
        assert_eq!(
            tok.decode_with(&want, true).unwrap(),
            c["decoded_skip_special"].as_str().unwrap(),
            "decode (skip special) of {text:?}"
        );
        assert_eq!(tok.decode_with(&want, false).unwrap(), text, "round trip");
    }
}

#[test]
fn hello_my_dog_is_cute_has_the_documented_ids() {
    let tok = Tokenizer::from_dir(&asset("gpt2-bpe")).unwrap();
    assert_eq!(
        tok.encode_plain("Hello, my dog is cute").unwrap(),
        vec![15496, 11, 616, 3290, 318, 13779]
    );
    assert_eq!(tok.pad_id(), 50256, "GPT-2 pads with <|endoftext|>");
}

#[test]
fn decoding_an_id_outside_the_vocabulary_is_an_error() {
    let tok = Tokenizer::from_dir(&asset("gpt2-bpe")).unwrap();
    let err = tok
        .decode_with(&[15496, 50257], false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("50257"), "{err}");
}
