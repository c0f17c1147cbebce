//! HF's sequence-classification heads (fixtures: reference/make_head_fixtures.py): a
//! `BertForSequenceClassification` and a `RobertaForSequenceClassification` saved by
//! `transformers` load with their heads (RoBERTa's is `classifier.dense` → tanh →
//! `classifier.out_proj` on the `<s>` state, with no pooler) and give HF's logits (≤ 1e-5,
//! f32); saving them again writes exactly HF's tensor names and shapes, so `transformers`
//! loads what we save with nothing missing or unexpected.

mod common;

use bert4rs::models::bert::EncoderInput;
use bert4rs::tasks::classify::SequenceClassifier;
use candle_core::{DType, Device, Tensor};
use common::{assert_close, fixture, json};
use std::collections::BTreeMap;
use std::path::Path;

/// A JSON array of arrays, each value read by `f`.
fn rows<T>(v: &serde_json::Value, f: impl Fn(&serde_json::Value) -> T) -> Vec<Vec<T>> {
    let arr = |v: &serde_json::Value| v.as_array().unwrap().clone();
    arr(v)
        .iter()
        .map(|r| arr(r).iter().map(&f).collect())
        .collect()
}

fn input(expected: &serde_json::Value) -> EncoderInput {
    let id = |v: &serde_json::Value| v.as_u64().unwrap() as u32;
    let (ids, mask) = (
        rows(&expected["input_ids"], id),
        rows(&expected["attention_mask"], id),
    );
    let (b, t) = (ids.len(), ids[0].len());
    let dev = Device::Cpu;
    let ids = Tensor::from_vec(ids.concat(), (b, t), &dev).unwrap();
    let mask = Tensor::from_vec(mask.concat(), (b, t), &dev)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let token_type_ids = ids.zeros_like().unwrap();
    EncoderInput {
        input_ids: ids,
        attention_mask: mask,
        token_type_ids,
    }
}

fn logits_of(expected: &serde_json::Value) -> Tensor {
    let logits = rows(&expected["logits"], |v| v.as_f64().unwrap() as f32);
    Tensor::new(logits, &Device::Cpu).unwrap()
}

/// Tensor names and shapes of a safetensors file.
fn names_and_shapes(path: &Path) -> BTreeMap<String, Vec<usize>> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(k, v)| (k, v.shape().to_vec()))
        .collect()
}

#[test]
fn hf_classifiers_load_with_their_heads_and_give_hf_logits() {
    for name in ["bert-cls", "roberta-cls"] {
        let dir = fixture(&format!("heads/{name}"));
        let expected = json(&format!("heads/{name}/expected.json"));
        let model = SequenceClassifier::from_dir(&dir, &Device::Cpu, false, None).unwrap();
        assert_eq!(model.spec().labels, ["neg", "neu", "pos"], "{name}");
        let logits = model.forward(&input(&expected), false).unwrap();
        assert_close(&logits, &logits_of(&expected), 1e-5, name);
    }
}

#[test]
fn saved_classifiers_have_exactly_hf_names_and_reload_to_the_same_logits() {
    for name in ["bert-cls", "roberta-cls"] {
        let dir = fixture(&format!("heads/{name}"));
        let expected = json(&format!("heads/{name}/expected.json"));
        let model = SequenceClassifier::from_dir(&dir, &Device::Cpu, false, None).unwrap();
        let out = tempfile::tempdir().unwrap();
        model.save_pretrained(out.path()).unwrap();
        assert_eq!(
            names_and_shapes(&out.path().join("model.safetensors")),
            names_and_shapes(&dir.join("model.safetensors")),
            "{name}: saved tensors differ from what transformers saves"
        );
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.path().join("config.json")).unwrap())
                .unwrap();
        assert_eq!(cfg["architectures"][0], expected["architecture"], "{name}");
        let again = SequenceClassifier::from_dir(out.path(), &Device::Cpu, false, None).unwrap();
        let logits = again.forward(&input(&expected), false).unwrap();
        assert_close(&logits, &logits_of(&expected), 1e-5, name);
    }
}

/// A RoBERTa encoder without a head gets a new HF-shaped one (dense + out_proj on `<s>`)
/// under the default pooling, not an error about the missing pooler.
#[test]
fn a_new_roberta_head_is_hf_shaped() {
    use bert4rs::nn::Pooling;
    use bert4rs::tasks::classify::{HeadSpec, Problem};
    let dir = fixture("models/roberta-a");
    let spec = HeadSpec {
        problem: Problem::SingleLabel,
        labels: vec!["a".into(), "b".into()],
        pooling: Pooling::Pooler,
        rnn: None,
        windows: None,
    };
    let model = SequenceClassifier::from_dir(&dir, &Device::Cpu, true, Some(spec)).unwrap();
    assert_eq!(model.spec().pooling, Pooling::Cls);
    let names: Vec<String> = model
        .vars()
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("classifier."))
        .collect();
    assert_eq!(
        names,
        [
            "classifier.dense.bias",
            "classifier.dense.weight",
            "classifier.out_proj.bias",
            "classifier.out_proj.weight"
        ]
    );
}

/// A directory with only `config.json` is a new encoder, initialised as HF's
/// `_init_weights`: normal(0, initializer_range) weights with the padding row zeroed, zero
/// biases, unit LayerNorms, no pooler — and reproducible under one seed.
#[test]
fn a_config_only_directory_is_a_new_encoder_initialised_as_hf_does() {
    use bert4rs::nn::Pooling;
    use bert4rs::tasks::classify::{HeadSpec, Problem};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::copy(
        fixture("models/bert-a/config.json"),
        dir.join("config.json"),
    )
    .unwrap();
    let spec = || HeadSpec {
        problem: Problem::SingleLabel,
        labels: vec!["a".into(), "b".into()],
        pooling: Pooling::Mean,
        rnn: None,
        windows: None,
    };
    bert4rs::rng::seed_init(5);
    let model = SequenceClassifier::from_dir(dir, &Device::Cpu, true, Some(spec())).unwrap();
    assert!(!model.encoder().has_pooler());
    let t: BTreeMap<String, Tensor> = model.params().named_tensors().into_iter().collect();
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let std = cfg["initializer_range"].as_f64().unwrap();
    let pad = cfg["pad_token_id"].as_u64().unwrap() as usize;
    let emb = &t["embeddings.word_embeddings.weight"];
    let pad_row: Vec<f32> = emb.get(pad).unwrap().to_vec1().unwrap();
    assert!(pad_row.iter().all(|&v| v == 0.0), "padding row zeroed");
    let q: Vec<f32> = t["encoder.layer.0.attention.self.query.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let sd = (q.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / q.len() as f64).sqrt();
    assert!((sd / std - 1.0).abs() < 0.1, "weight std {sd} vs {std}");
    let ones = |k: &str| t[k].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(ones("embeddings.LayerNorm.weight")
        .iter()
        .all(|&v| v == 1.0));
    assert!(ones("encoder.layer.0.output.dense.bias")
        .iter()
        .all(|&v| v == 0.0));
    bert4rs::rng::seed_init(5);
    let again = SequenceClassifier::from_dir(dir, &Device::Cpu, true, Some(spec())).unwrap();
    let a: BTreeMap<String, Tensor> = again.params().named_tensors().into_iter().collect();
    assert_close(
        &a["embeddings.word_embeddings.weight"],
        emb,
        0.0,
        "same seed, same init",
    );
}
