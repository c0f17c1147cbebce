//! Adding special tokens keeps tokenizer and model in sync, initialises new rows as HF's
//! `resize_token_embeddings` does, and both save back to a directory that loads again.

mod common;

use bert4rs::models::load_encoder;
use bert4rs::tokenize::{EncodeOptions, TextInput, Tokenizer};
use candle_core::Device;
use common::*;

#[test]
fn resize_appends_mean_rows_like_hf_and_round_trips() {
    let dir = fixture("models/bert-a");
    let mut tok = Tokenizer::from_dir(&dir).unwrap();
    let mut loaded = load_encoder(&dir, &Device::Cpu, false).unwrap();
    let old = loaded.model.embeddings().word_embeddings().weight().clone();
    assert_eq!(
        tok.add_special_tokens(&["[prompt_1]", "[prompt_2]"])
            .unwrap(),
        2
    );
    loaded.resize_token_embeddings(tok.vocab_size()).unwrap();
    let new = loaded.model.embeddings().word_embeddings().weight().clone();
    assert_eq!(new.dims(), &[348, 32]);
    assert_close(&new.narrow(0, 0, 346).unwrap(), &old, 0.0, "old rows kept");
    // HF (mean_resizing=True) draws new rows around the old mean with covariance 1e-9·Σ.
    let hf = load_encoder(&fixture("models/bert-a/resized"), &Device::Cpu, false).unwrap();
    let hf_rows = hf
        .model
        .embeddings()
        .word_embeddings()
        .weight()
        .narrow(0, 346, 2)
        .unwrap();
    assert_close(
        &new.narrow(0, 346, 2).unwrap(),
        &hf_rows,
        1e-3,
        "new rows vs HF",
    );
    let mean = old.mean_keepdim(0).unwrap().broadcast_as((2, 32)).unwrap();
    assert_close(
        &new.narrow(0, 346, 2).unwrap(),
        &mean,
        0.0,
        "new rows are the old mean",
    );

    // Save both, load again: same ids, same outputs.
    let out = tempfile::tempdir().unwrap();
    tok.save(out.path()).unwrap();
    loaded.save_pretrained(out.path()).unwrap();
    let tok2 = Tokenizer::from_dir(out.path()).unwrap();
    let reloaded = load_encoder(out.path(), &Device::Cpu, false).unwrap();
    assert_eq!(reloaded.model.config().vocab_size, 348);
    let text = TextInput::single("[prompt_1] hello world[prompt_2]");
    let a = tok.encode(&text, &EncodeOptions::default()).unwrap();
    let b = tok2.encode(&text, &EncodeOptions::default()).unwrap();
    assert_eq!(a, b);
    assert!(a.input_ids.contains(&346) && a.input_ids.contains(&347));
    let input = bert4rs::data::batch::to_encoder_input(&[a], &Device::Cpu).unwrap();
    let y1 = loaded
        .model
        .forward(&input, false)
        .unwrap()
        .last_hidden_state;
    let y2 = reloaded
        .model
        .forward(&input, false)
        .unwrap()
        .last_hidden_state;
    assert_close(&y1, &y2, 0.0, "reloaded model");
}
