//! The real all-MiniLM-L6-v2 checkpoint gives sentence-transformers' embeddings.

mod common;

use bert4rs::tasks::embed::cosine;
use bert4rs::{EncoderInput, SentenceEncoder};
use candle_core::DType;
use common::*;

#[test]
fn minilm_embeddings_match_sentence_transformers() {
    let meta = json("parity/minilm.json");
    let g = golden("parity/minilm.safetensors");
    let sentences: Vec<String> = serde_json::from_value(meta["sentences"].clone()).unwrap();
    let enc = SentenceEncoder::from_dir(&asset("minilm")).unwrap();
    assert!(enc.normalize, "modules.json declares Normalize");
    let ours = enc.embed(&sentences).unwrap();
    let want = g["st.embeddings"].to_vec2::<f32>().unwrap();
    for (i, (a, b)) in ours.iter().zip(&want).enumerate() {
        let c = cosine(a, b);
        assert!(
            c >= 0.99999,
            "sentence {i}: cosine {c} to sentence-transformers"
        );
        let d = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(d <= 1e-5, "sentence {i}: max abs diff {d}");
    }
    let cos = cosine(&ours[0], &ours[1]);
    assert!((cos - 0.7553).abs() <= 0.0005, "cos = {cos}");
}

#[test]
fn minilm_hidden_states_match_hf_on_a_padded_batch() {
    let g = golden("parity/minilm.safetensors");
    let loaded =
        bert4rs::models::load_encoder(&asset("minilm"), &candle_core::Device::Cpu, false).unwrap();
    let input = EncoderInput {
        input_ids: g["batch.input_ids"].to_dtype(DType::U32).unwrap(),
        attention_mask: g["batch.attention_mask"].to_dtype(DType::F32).unwrap(),
        token_type_ids: g["batch.token_type_ids"].to_dtype(DType::U32).unwrap(),
    };
    let out = loaded.model.forward(&input, false).unwrap();
    assert_close(
        &out.last_hidden_state,
        &g["batch.last_hidden_state"],
        1e-5,
        "minilm last_hidden_state",
    );
}
