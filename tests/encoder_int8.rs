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
    eprintln!("worst int8 cosine to sentence-transformers: {worst}");
}

#[test]
fn int8_keeps_very_short_and_non_latin_texts_near_f32() {
    // A 3-token text is the hardest case for a per-token grid: a mean over three vectors
    // averages no rounding away. "ok" measured 0.978 without smoothing, 0.983 with it;
    // longer texts stay above 0.99 (see the sentence-transformers test above).
    let texts = ["ok", "我爱北京天安门", "?", "A man is eating food."];
    let f32 = SentenceEncoder::from_dir(&asset("minilm")).unwrap();
    let mut q = SentenceEncoder::from_dir(&asset("minilm")).unwrap();
    q.model.quantize_int8().unwrap();
    let (a, b) = (f32.embed(&texts).unwrap(), q.embed(&texts).unwrap());
    for (t, (x, y)) in texts.iter().zip(a.iter().zip(&b)) {
        let c = cosine(x, y);
        eprintln!("{t:?}: int8 cosine {c}");
        let floor = if t.len() <= 2 { 0.98 } else { 0.99 };
        assert!(c >= floor, "{t:?}: int8 cosine {c} to f32");
    }
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
