//! Parameter groups: no weight decay on biases and LayerNorm weights, the head's own lr,
//! layer-wise lr decay from the top layer down to the embeddings, frozen layers.

use bert4rs::train::groups::build_groups;
use bert4rs::train::OptimizerConfig;
use candle_core::{Device, Tensor, Var};

fn var() -> Var {
    Var::from_tensor(&Tensor::zeros(2, candle_core::DType::F32, &Device::Cpu).unwrap()).unwrap()
}

fn names() -> Vec<(String, Var)> {
    [
        "bert.embeddings.word_embeddings.weight",
        "bert.embeddings.LayerNorm.weight",
        "bert.encoder.layer.0.attention.self.query.weight",
        "bert.encoder.layer.0.attention.self.query.bias",
        "bert.encoder.layer.1.output.dense.weight",
        "bert.encoder.layer.1.output.LayerNorm.weight",
        "bert.pooler.dense.weight",
        "classifier.weight",
        "classifier.bias",
    ]
    .iter()
    .map(|n| (n.to_string(), var()))
    .collect()
}

/// (lr, weight decay) of a parameter, or None if frozen.
fn lookup(groups: &[bert4rs::train::ParamGroup], name: &str) -> Option<(f64, f64)> {
    groups
        .iter()
        .find(|g| g.params.iter().any(|(n, _)| n == name))
        .map(|g| (g.lr, g.weight_decay))
}

#[test]
fn decay_groups_head_lr_layer_decay_and_freezing() {
    let cfg = OptimizerConfig {
        lr: 1e-4,
        head_lr: Some(1e-3),
        weight_decay: 0.01,
        layer_decay: 0.5,
        ..Default::default()
    };
    let (groups, summary) = build_groups(names(), &cfg, "bert", 2).unwrap();
    let close = |a: (f64, f64), b: (f64, f64)| (a.0 - b.0).abs() < 1e-15 && a.1 == b.1;
    // Top layer (1 of 2) and pooler: lr; layer 0: lr/2; embeddings: lr/4.
    assert!(close(
        lookup(&groups, "bert.encoder.layer.1.output.dense.weight").unwrap(),
        (1e-4, 0.01)
    ));
    assert!(close(
        lookup(&groups, "bert.encoder.layer.1.output.LayerNorm.weight").unwrap(),
        (1e-4, 0.0)
    ));
    assert!(close(
        lookup(&groups, "bert.pooler.dense.weight").unwrap(),
        (1e-4, 0.01)
    ));
    assert!(close(
        lookup(&groups, "bert.encoder.layer.0.attention.self.query.weight").unwrap(),
        (5e-5, 0.01)
    ));
    assert!(close(
        lookup(&groups, "bert.encoder.layer.0.attention.self.query.bias").unwrap(),
        (5e-5, 0.0)
    ));
    assert!(close(
        lookup(&groups, "bert.embeddings.word_embeddings.weight").unwrap(),
        (2.5e-5, 0.01)
    ));
    assert!(close(
        lookup(&groups, "bert.embeddings.LayerNorm.weight").unwrap(),
        (2.5e-5, 0.0)
    ));
    assert!(close(
        lookup(&groups, "classifier.weight").unwrap(),
        (1e-3, 0.01)
    ));
    assert!(close(
        lookup(&groups, "classifier.bias").unwrap(),
        (1e-3, 0.0)
    ));
    assert_eq!(summary.decayed.0, 5);
    assert_eq!(summary.not_decayed.0, 4);

    let cfg = OptimizerConfig {
        freeze: vec!["embeddings".into(), "encoder.layer.0".into()],
        ..Default::default()
    };
    let (groups, summary) = build_groups(names(), &cfg, "bert", 2).unwrap();
    assert_eq!(summary.frozen.0, 4);
    assert!(lookup(&groups, "bert.embeddings.word_embeddings.weight").is_none());
    assert!(lookup(&groups, "bert.encoder.layer.0.attention.self.query.bias").is_none());
    assert!(lookup(&groups, "bert.encoder.layer.1.output.dense.weight").is_some());

    let cfg = OptimizerConfig {
        freeze: vec!["encoder.layer.7".into()],
        ..Default::default()
    };
    let err = build_groups(names(), &cfg, "bert", 2)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("encoder.layer.7") && err.contains("matches no parameter"),
        "{err}"
    );
}
