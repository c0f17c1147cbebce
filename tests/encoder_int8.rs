//! Dynamically quantised int8 encoders (int8 weights, per-token 7-bit activations, exact
//! integer sums) stay close to f32 and keep batch == single exactly.

mod common;

use bert4rs::tasks::embed::cosine;
use bert4rs::SentenceEncoder;
use common::*;

fn sentences() -> Vec<String> {
    serde_json::from_value(json("parity/minilm.json")["sentences"].clone()).unwrap()
}

#[test]
fn int8_minilm_embeddings_stay_within_cosine_0_99_of_sentence_transformers() {
    let sentences = sentences();
    let want = golden("parity/minilm.safetensors")["st.embeddings"]
        .to_vec2::<f32>()
        .unwrap();
    let mut enc = SentenceEncoder::from_dir(&asset("minilm")).unwrap();
    enc.model.quantize_int8().unwrap();
    assert!(enc.model.is_int8());
    let ours = enc.embed(&sentences).unwrap();
    let mut worst = 1f32;
    for (i, (a, b)) in ours.iter().zip(&want).enumerate() {
        let c = cosine(a, b);
        worst = worst.min(c);
        assert!(c >= 0.99, "sentence {i}: int8 cosine {c} to f32");
    }
    // The similarities users rank by move little: every pair's cosine within 0.03.
    for i in 0..want.len() {
        for j in i + 1..want.len() {
            let (q, f) = (cosine(&ours[i], &ours[j]), cosine(&want[i], &want[j]));
            assert!((q - f).abs() <= 0.03, "pair ({i},{j}): int8 {q} vs f32 {f}");
        }
    }
    eprintln!("worst int8 cosine to f32: {worst}");
}

#[test]
fn int8_embeddings_of_a_batch_equal_each_text_alone_bit_for_bit() {
    let sentences = sentences();
    let mut enc = SentenceEncoder::from_dir(&asset("minilm")).unwrap();
    enc.model.quantize_int8().unwrap();
    let batch = enc.embed(&sentences).unwrap();
    for (s, b) in sentences.iter().zip(&batch) {
        let one = enc.embed(std::slice::from_ref(s)).unwrap();
        assert_eq!(&one[0], b, "{s:?}");
    }
}

#[test]
fn quantizing_a_trainable_encoder_is_an_error_naming_the_layer() {
    let dir = asset("minilm");
    let loaded = bert4rs::models::load_encoder(&dir, &candle_core::Device::Cpu, true).unwrap();
    let mut model = loaded.model;
    let err = model.quantize_int8().unwrap_err().to_string();
    assert!(
        err.contains("encoder.layer.0.attention.self.query") && err.contains("frozen"),
        "{err}"
    );
    assert!(
        !model.is_int8(),
        "nothing may change when a layer is refused"
    );
}
