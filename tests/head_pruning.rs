//! Attention-head pruning against HF (fixtures: reference/make_pruning_fixtures.py): a
//! checkpoint `transformers` pruned (`pruned_heads` in its config, narrower Q/K/V and
//! attention output) loads and gives HF's logits; our `prune_heads` writes exactly the
//! tensors and config HF's `prune_heads` + `save_pretrained` write (also when pruning an
//! already pruned model); the gradient of the loss with respect to a head gate of ones is
//! HF's `head_mask` gradient (the importance `run_bertology.py` sums), on full and pruned
//! models; the choice of heads keeps one per layer; bad requests fail before writing.

mod common;

use bert4rs::config::BertConfig;
use bert4rs::data::labelled::Targets;
use bert4rs::models::bert::EncoderInput;
use bert4rs::models::pruning::prune_heads;
use bert4rs::tasks::classify::{LossConfig, SequenceClassifier};
use bert4rs::train::pruning::{heads_to_prune, HeadImportance};
use candle_core::{DType, Device, Tensor, Var};
use common::{assert_close, fixture, json, unpadded_row};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Gradients are sums over a few hundred f32 products: 1e-5 absolute on values of ~0.1.
const TOL: f32 = 1e-5;

fn expected() -> Value {
    json("pruning/expected.json")
}

fn input(e: &Value) -> EncoderInput {
    let rows = |v: &Value| -> Vec<Vec<u32>> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
                    .collect()
            })
            .collect()
    };
    let (ids, mask) = (rows(&e["input_ids"]), rows(&e["attention_mask"]));
    let (b, t) = (ids.len(), ids[0].len());
    let ids = Tensor::from_vec(ids.concat(), (b, t), &Device::Cpu).unwrap();
    let mask = Tensor::from_vec(mask.concat(), (b, t), &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    EncoderInput {
        token_type_ids: ids.zeros_like().unwrap(),
        input_ids: ids,
        attention_mask: mask,
    }
}

fn matrix(v: &Value) -> Tensor {
    let rows: Vec<Vec<f32>> = serde_json::from_value(v.clone()).unwrap();
    Tensor::new(rows, &Device::Cpu).unwrap()
}

fn heads(v: &Value) -> BTreeMap<usize, Vec<usize>> {
    let m: BTreeMap<String, Vec<usize>> = serde_json::from_value(v.clone()).unwrap();
    m.into_iter()
        .map(|(k, v)| (k.parse().unwrap(), v))
        .collect()
}

fn load(dir: &Path, trainable: bool) -> SequenceClassifier {
    SequenceClassifier::from_dir(dir, &Device::Cpu, trainable, None).unwrap()
}

#[test]
fn checkpoints_pruned_by_transformers_give_its_logits() {
    let e = expected();
    let x = input(&e);
    for (dir, key) in [
        ("full", "full_logits"),
        ("pruned", "pruned_logits"),
        ("pruned-twice", "twice_logits"),
    ] {
        let model = load(&fixture(&format!("pruning/{dir}")), false);
        let logits = model.forward(&x, false).unwrap();
        assert_close(&logits, &matrix(&e[key]), TOL, dir);
    }
}

#[test]
fn pruned_model_answers_each_row_as_it_does_alone() {
    let e = expected();
    let x = input(&e);
    let model = load(&fixture("pruning/pruned-twice"), false);
    let batched = model.forward(&x, false).unwrap();
    for row in 0..x.input_ids.dim(0).unwrap() {
        let (single, _) = unpadded_row(&x, row);
        let alone = model.forward(&single, false).unwrap();
        let in_batch = batched.narrow(0, row, 1).unwrap();
        assert_close(&alone, &in_batch, 1e-6, &format!("row {row}"));
    }
}

/// Every tensor of two weight files, by name.
fn tensors(dir: &Path) -> BTreeMap<String, Tensor> {
    candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)
        .unwrap()
        .into_iter()
        .collect()
}

fn assert_same_checkpoint(ours: &Path, hf: &Path) {
    let (a, b) = (tensors(ours), tensors(hf));
    let names = |m: &BTreeMap<String, Tensor>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b), "tensor names");
    for (name, t) in &a {
        assert_eq!(t.dims(), b[name].dims(), "{name}: shape");
        assert_close(t, &b[name], 0.0, name);
    }
    let (ca, cb) = (
        BertConfig::from_file(&ours.join("config.json")).unwrap(),
        BertConfig::from_file(&hf.join("config.json")).unwrap(),
    );
    assert_eq!(ca.pruned_heads, cb.pruned_heads, "pruned_heads");
}

#[test]
fn prune_heads_writes_what_transformers_writes() {
    let e = expected();
    let tmp = tempfile::tempdir().unwrap();
    let once = tmp.path().join("once");
    let summary = prune_heads(&fixture("pruning/full"), &heads(&e["prune"]), &once).unwrap();
    assert_same_checkpoint(&once, &fixture("pruning/pruned"));
    assert_eq!(summary.heads_before, vec![4, 4, 4]);
    assert_eq!(summary.heads_after, vec![2, 4, 3]);
    // Three heads of 8 dims: 3 × (3 × (8 × 32 + 8) + 32 × 8) weights gone.
    assert_eq!(
        summary.parameters_before - summary.parameters_after,
        3 * (3 * (8 * 32 + 8) + 32 * 8)
    );

    // Again, in the unpruned model's numbering (head 0 of layer 0 is still there).
    let twice = tmp.path().join("twice");
    prune_heads(&once, &heads(&e["again"]), &twice).unwrap();
    assert_same_checkpoint(&twice, &fixture("pruning/pruned-twice"));
}

/// ∂(mean cross-entropy)/∂gate for the fixture batch, per layer.
fn gate_gradients(dir: &Path, e: &Value) -> Vec<Vec<f32>> {
    let mut model = load(dir, true);
    let gates: Vec<Var> = model
        .encoder()
        .heads_per_layer()
        .into_iter()
        .map(|n| Var::ones(n, DType::F32, &Device::Cpu).unwrap())
        .collect();
    let ts = gates.iter().map(|g| g.as_tensor().clone()).collect();
    model.set_head_gates(Some(ts)).unwrap();
    let logits = model.forward(&input(e), false).unwrap();
    let labels: Vec<u32> = serde_json::from_value(e["labels"].clone()).unwrap();
    let loss = model
        .loss(&logits, &Targets::Classes(labels), &LossConfig::default())
        .unwrap();
    let grads = loss.backward().unwrap();
    gates
        .iter()
        .map(|g| grads.get(g.as_tensor()).unwrap().to_vec1().unwrap())
        .collect()
}

#[test]
fn head_gate_gradient_is_transformers_head_mask_gradient() {
    let e = expected();
    for (dir, key) in [("full", "full_mask_grad"), ("pruned", "pruned_mask_grad")] {
        let ours = gate_gradients(&fixture(&format!("pruning/{dir}")), &e);
        let hf: Vec<Vec<f32>> = serde_json::from_value(e[key].clone()).unwrap();
        assert_eq!(ours.len(), hf.len());
        for (l, (a, b)) in ours.iter().zip(&hf).enumerate() {
            let a = Tensor::new(a.as_slice(), &Device::Cpu).unwrap();
            let b = Tensor::new(b.as_slice(), &Device::Cpu).unwrap();
            assert_close(&a, &b, TOL, &format!("{dir} layer {l}"));
        }
    }
}

fn importance(heads: Vec<Vec<usize>>, scores: Vec<Vec<f32>>) -> HeadImportance {
    HeadImportance {
        raw: scores.clone(),
        heads,
        scores,
        examples: 1,
    }
}

#[test]
fn heads_to_prune_takes_the_lowest_scores_but_never_a_layers_last_head() {
    // Layer 1 has the four lowest scores, but must keep one head.
    let imp = importance(
        vec![vec![0, 1, 2, 3], vec![0, 1, 2, 3]],
        vec![vec![0.5, 0.6, 0.7, 0.8], vec![0.1, 0.2, 0.3, 0.4]],
    );
    let half = heads_to_prune(&imp, 4, 0.5).unwrap();
    assert_eq!(half, BTreeMap::from([(0, vec![0]), (1, vec![0, 1, 2])]));
    assert!(heads_to_prune(&imp, 4, 0.0).unwrap().is_empty());
    assert!(heads_to_prune(&imp, 4, 1.0).is_err());
    assert!(heads_to_prune(&imp, 4, -0.1).is_err());
}

#[test]
fn heads_to_prune_counts_heads_pruned_before() {
    // 8 heads in all, 3 already gone (layer 0 keeps 1 and 3): 50 % means one more.
    let imp = importance(
        vec![vec![1, 3], vec![0, 1, 3]],
        vec![vec![0.9, 0.2], vec![0.5, 0.3, 0.8]],
    );
    let more = heads_to_prune(&imp, 4, 0.5).unwrap();
    assert_eq!(more, BTreeMap::from([(0, vec![3])]));
    assert!(heads_to_prune(&imp, 4, 0.25).unwrap().is_empty());
}

#[test]
fn bad_prune_requests_fail_before_anything_is_written() {
    let src = fixture("pruning/full");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let cases = [
        (BTreeMap::from([(3, vec![0])]), "layer 3"),
        (BTreeMap::from([(0, vec![4])]), "head 4"),
        (BTreeMap::from([(1, vec![0, 1, 2, 3])]), "without heads"),
    ];
    for (heads, needle) in cases {
        let err = prune_heads(&src, &heads, &out).unwrap_err().to_string();
        assert!(err.contains(needle), "{needle}: {err}");
        assert!(!out.exists(), "{needle}: nothing written");
    }
    let err = prune_heads(&src, &BTreeMap::from([(0, vec![0])]), &src)
        .unwrap_err()
        .to_string();
    assert!(err.contains("model directory itself"), "{err}");
}

#[test]
fn config_with_impossible_pruned_heads_is_refused_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("pruning/pruned/config.json")).unwrap();
    let mut cfg: Value = serde_json::from_str(&text).unwrap();
    for (bad, needle) in [
        (serde_json::json!({"0": [0, 1, 2, 3]}), "keep at least one"),
        (serde_json::json!({"5": [0]}), "layer 5"),
        (serde_json::json!({"0": [9]}), "head 9"),
        (serde_json::json!({"0": [1, 1]}), "twice"),
    ] {
        cfg["pruned_heads"] = bad;
        let path = tmp.path().join("config.json");
        std::fs::write(&path, cfg.to_string()).unwrap();
        let err = BertConfig::from_file(&path).unwrap_err().to_string();
        assert!(err.contains(needle) && err.contains("config.json"), "{err}");
    }
}

#[test]
fn a_distillation_student_of_pruned_layers_keeps_their_heads() {
    let tmp = tempfile::tempdir().unwrap();
    let teacher = fixture("pruning/pruned-twice");
    let student = bert4rs::train::distill::student_init(&teacher, &[2, 0], tmp.path()).unwrap();
    let cfg = BertConfig::from_file(&student.join("config.json")).unwrap();
    assert_eq!(
        cfg.pruned_heads,
        BTreeMap::from([(0, vec![0]), (1, vec![0, 1, 3])])
    );
    let (t, s) = (tensors(&teacher), tensors(&student));
    let q = |l: usize| format!("bert.encoder.layer.{l}.attention.self.query.weight");
    assert_close(
        &s[&q(0)],
        &t[&q(2)],
        0.0,
        "student layer 0 = teacher layer 2",
    );
    assert_close(
        &s[&q(1)],
        &t[&q(0)],
        0.0,
        "student layer 1 = teacher layer 0",
    );
    load(&student, false);
}

#[test]
fn a_pruned_model_runs_on_int8() {
    let e = expected();
    let mut model = load(&fixture("pruning/pruned-twice"), false);
    let f32_logits = model.forward(&input(&e), false).unwrap();
    model
        .quantize_int8(bert4rs::kernels::CodeWidth::default())
        .unwrap();
    let q = model.forward(&input(&e), false).unwrap();
    // Layers of 1, 3 and 3 heads of 8 dims: widths the integer GEMM's 16-column panels pad.
    let scale = common::scale(&f32_logits);
    assert_close(&q, &f32_logits, 0.05 * scale, "int8 vs f32 logits");
}
