//! The generation pipeline every front end shares (`bert4rs::generate::pipeline`): prompt
//! encoding and the incremental text stream, on a random GPT-2 fixture with GPT-2's real
//! byte-level BPE (where one character can span several tokens).

mod common;

use bert4rs::generate::{self, GenerationConfig, TextGenerator};
use common::{asset, gpt2_fixture_dir};

/// The pieces a stream gives add up to the decoded text, and no piece ever holds half a
/// character: a token that ends inside one waits for the next.
#[test]
fn stream_pieces_add_up_to_the_text_and_never_split_a_character() {
    let dir = gpt2_fixture_dir("gpt2-c");
    let bpe = asset("gpt2-bpe");
    let g = TextGenerator::from_dir(dir.path(), Some(&bpe)).unwrap();
    let text = "naïve 你好🙂 ok";
    let ids = g.encode_prompt(text).unwrap();
    let mut stream = g.stream(&[]);
    let mut pieces = vec![stream.start().unwrap()];
    let mut waited = 0;
    for &id in &ids {
        let piece = stream.push(id).unwrap();
        waited += usize::from(piece.is_empty());
        assert!(!piece.contains('\u{FFFD}'), "half a character: {piece:?}");
        pieces.push(piece);
    }
    assert!(waited > 0, "some tokens end inside a character");
    assert_eq!(pieces.concat(), text);
    assert_eq!(stream.ids(), &ids[..]);

    // Generated tokens stream the same way: pieces after the prompt = the continuation.
    let cfg = GenerationConfig {
        max_new_tokens: 12,
        eos_token_id: g.eos(None),
        ..Default::default()
    };
    let out = generate::generate(g.model(), std::slice::from_ref(&ids), &cfg, &mut |_| {}).unwrap();
    let mut stream = g.stream(&ids);
    let mut streamed = stream.start().unwrap();
    for &id in &out[0].ids[ids.len()..] {
        streamed.push_str(&stream.push(id).unwrap());
    }
    let full = g.decode(&out[0].ids).unwrap().unwrap();
    assert_eq!(streamed, full.trim_end_matches('\u{FFFD}'));
}

#[test]
fn text_prompts_without_a_tokenizer_are_a_clear_error() {
    let dir = gpt2_fixture_dir("gpt2-c");
    let g = TextGenerator::from_dir(dir.path(), None).unwrap();
    assert!(!g.has_tokenizer());
    let err = g.encode_prompt("hello").unwrap_err().to_string();
    assert!(
        err.contains("--tokenizer") && err.contains("--prompt-ids"),
        "{err}"
    );
    assert_eq!(g.decode(&[1, 2]).unwrap(), None);
    let empty = tempfile::tempdir().unwrap();
    let err = TextGenerator::from_dir(dir.path(), Some(empty.path()))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no tokenizer files"), "{err}");
}
