//! bf16 weight storage (`WeightStorage::Bf16`, `--dtype bf16`): the encoder's matrices are
//! read as bf16 straight from the file and widened to f32 exactly as the layers read them,
//! so a bf16 load computes what an f32 load computes on the bf16-rounded weights; MiniLM's
//! embeddings stay within cosine 0.999 of f32.

mod common;

use bert4rs::models::hub::{read_tensors, write_safetensors, WeightStorage};
use bert4rs::models::load_encoder_as;
use bert4rs::tasks::embed::cosine;
use bert4rs::{EncoderInput, SentenceEncoder};
use candle_core::{DType, Device, Tensor};
use common::*;
use std::path::Path;

/// 1e-5: both sides run the same f32 arithmetic on the same values; only the few-row and
/// packed kernels' summation orders can differ between a row alone and in a batch.
const TOL: f32 = 1e-5;

/// A copy of `dir` whose 2-D encoder weights are rounded to bf16 and stored as f32.
fn rounded_copy(dir: &Path, out: &Path) {
    for f in ["config.json", "vocab.txt", "tokenizer_config.json"] {
        if dir.join(f).is_file() {
            std::fs::copy(dir.join(f), out.join(f)).unwrap();
        }
    }
    let mut tensors: Vec<(String, Tensor)> = read_tensors(&dir.join("model.safetensors"))
        .unwrap()
        .into_iter()
        .map(|(k, t)| {
            let t = if t.rank() == 2 && t.dtype() == DType::F32 {
                t.to_dtype(DType::BF16)
                    .unwrap()
                    .to_dtype(DType::F32)
                    .unwrap()
            } else {
                t
            };
            (k, t)
        })
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    write_safetensors(&tensors, &out.join("model.safetensors")).unwrap();
}

fn input(ids: &[&[u32]]) -> EncoderInput {
    let len = ids.iter().map(|r| r.len()).max().unwrap();
    let (mut flat, mut mask) = (Vec::new(), Vec::new());
    for r in ids {
        for i in 0..len {
            flat.push(r.get(i).copied().unwrap_or(0));
            mask.push(if i < r.len() { 1f32 } else { 0.0 });
        }
    }
    let dev = Device::Cpu;
    EncoderInput {
        input_ids: Tensor::from_vec(flat, (ids.len(), len), &dev).unwrap(),
        attention_mask: Tensor::from_vec(mask, (ids.len(), len), &dev).unwrap(),
        token_type_ids: Tensor::zeros((ids.len(), len), DType::U32, &dev).unwrap(),
    }
}

#[test]
fn a_bf16_load_computes_what_f32_computes_on_the_bf16_rounded_weights() {
    let dir = fixture("models/bert-a");
    let tmp = tempfile::tempdir().unwrap();
    rounded_copy(&dir, tmp.path());
    let bf16 = load_encoder_as(&dir, &Device::Cpu, false, WeightStorage::Bf16).unwrap();
    let f32 = load_encoder_as(tmp.path(), &Device::Cpu, false, WeightStorage::F32).unwrap();
    assert!(bf16.model.is_bf16() && !f32.model.is_bf16());
    // No f32 copy of a matrix is kept: the parameters hold the bf16 tensors themselves.
    for (name, t) in bf16.params.named_tensors() {
        let want = if t.rank() == 2 {
            DType::BF16
        } else {
            DType::F32
        };
        assert_eq!(t.dtype(), want, "{name}");
    }
    // 5 tokens: the few-row kernel (≤ 16 rows); 3 × 9 and 40 tokens: the packed GEMM.
    let long: Vec<u32> = (0..40).map(|i| 5 + (i * 7) % 300).collect();
    let cases: [&[&[u32]]; 3] = [
        &[&[2, 17, 40, 9, 3]],
        &[
            &[2, 11, 12, 13, 14, 15, 16, 17, 3],
            &[2, 99, 3],
            &[2, 5, 6, 7, 3],
        ],
        &[&long],
    ];
    for ids in cases {
        let x = input(ids);
        let (a, b) = (
            bf16.model.forward(&x, false).unwrap(),
            f32.model.forward(&x, false).unwrap(),
        );
        let what = format!("{} rows", x.input_ids.elem_count());
        assert_close(&a.last_hidden_state, &b.last_hidden_state, TOL, &what);
        assert_close(
            a.pooler_output.as_ref().unwrap(),
            b.pooler_output.as_ref().unwrap(),
            TOL,
            &what,
        );
    }
}

#[test]
fn a_padded_bf16_batch_equals_each_text_alone() {
    let model = load_encoder_as(
        &fixture("models/bert-a"),
        &Device::Cpu,
        false,
        WeightStorage::Bf16,
    )
    .unwrap()
    .model;
    let batch = input(&[
        &[2, 11, 12, 13, 14, 15, 16, 17, 3],
        &[2, 99, 3],
        &[2, 5, 6, 7, 3],
    ]);
    assert_batch_equals_alone(&model, &batch, TOL, "bf16");
}

#[test]
fn bf16_minilm_embeddings_stay_within_cosine_0_999_of_sentence_transformers() {
    let sentences: Vec<String> =
        serde_json::from_value(json("parity/minilm.json")["sentences"].clone()).unwrap();
    let want = golden("parity/minilm.safetensors")["st.embeddings"]
        .to_vec2::<f32>()
        .unwrap();
    let enc = SentenceEncoder::with_pooling_as(
        &asset("minilm"),
        bert4rs::nn::Pooling::Mean,
        &Device::Cpu,
        WeightStorage::Bf16,
    )
    .unwrap();
    assert!(enc.model.is_bf16());
    let ours = enc.embed(&sentences).unwrap();
    let mut worst = 1f32;
    for (i, (a, b)) in ours.iter().zip(&want).enumerate() {
        let c = cosine(a, b);
        worst = worst.min(c);
        assert!(c >= 0.999, "sentence {i}: bf16 cosine {c} to f32");
    }
    eprintln!("worst bf16 cosine to sentence-transformers: {worst}");
}

#[test]
fn bf16_weights_refuse_training() {
    let err = load_encoder_as(
        &fixture("models/bert-a"),
        &Device::Cpu,
        true,
        WeightStorage::Bf16,
    )
    .err()
    .expect("a trainable bf16 load must fail")
    .to_string();
    assert!(err.contains("inference") && err.contains("f32"), "{err}");
}
