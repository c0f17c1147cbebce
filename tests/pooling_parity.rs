//! Every pooling mode equals a torch reference on a padded batch, and padding never changes
//! a pooled vector.

mod common;

use bert4rs::models::load_encoder;
use bert4rs::nn::{Params, Pooler, Pooling};
use bert4rs::EncoderInput;
use candle_core::{DType, Device, Tensor};
use common::*;
use std::collections::HashMap;

fn pooling_params(g: &HashMap<String, Tensor>) -> Params {
    let mut map = HashMap::new();
    map.insert(
        "layer_weights".to_string(),
        g["param.weighted_layer.weights"].clone(),
    );
    for k in [
        "dense.weight",
        "dense.bias",
        "norm.weight",
        "norm.bias",
        "score.weight",
        "score.bias",
    ] {
        map.insert(k.to_string(), g[&format!("param.attention.{k}")].clone());
    }
    Params::from_tensors(
        map,
        std::path::Path::new("pooling.safetensors"),
        &Device::Cpu,
        false,
    )
}

#[test]
fn every_pooling_matches_torch_and_ignores_padding() {
    let g = golden("parity/pooling.safetensors");
    let model = load_encoder(&fixture("models/bert-b"), &Device::Cpu, false)
        .unwrap()
        .model;
    let input = EncoderInput {
        input_ids: g["input_ids"].to_dtype(DType::U32).unwrap(),
        attention_mask: g["attention_mask"].to_dtype(DType::F32).unwrap(),
        token_type_ids: g["token_type_ids"].to_dtype(DType::U32).unwrap(),
    };
    let out = model.forward(&input, false).unwrap();
    let params = pooling_params(&g);
    let modes = [
        ("cls", Pooling::Cls),
        ("pooler", Pooling::Pooler),
        ("mean", Pooling::Mean),
        ("max", Pooling::Max),
        ("min", Pooling::Min),
        ("mean_kmax", Pooling::MeanKmax { k: 3 }),
        ("mean_kmax_k5", Pooling::MeanKmax { k: 5 }),
        ("first_last_avg", Pooling::FirstLastAvg),
        ("last4_concat_cls", Pooling::Last4ConcatCls),
        ("weighted_layer", Pooling::WeightedLayer { layer_start: 2 }),
        ("attention", Pooling::Attention),
    ];
    for (name, mode) in modes {
        let pooler = Pooler::new(mode, &params, 48, 4, 0.02).unwrap();
        let got = pooler
            .forward(
                &out.hidden_states,
                out.pooler_output.as_ref(),
                &input.attention_mask,
            )
            .unwrap();
        assert_eq!(got.dim(1).unwrap(), pooler.output_dim(48), "{name} width");
        assert_close(
            &got,
            &g[&format!("pool.{name}")],
            1e-5,
            &format!("pool.{name} vs torch"),
        );
        // The same text alone, unpadded.
        for row in 0..input.input_ids.dim(0).unwrap() {
            let (single, _) = unpadded_row(&input, row);
            let o = model.forward(&single, false).unwrap();
            let alone = pooler
                .forward(
                    &o.hidden_states,
                    o.pooler_output.as_ref(),
                    &single.attention_mask,
                )
                .unwrap();
            assert_close(
                &alone,
                &got.narrow(0, row, 1).unwrap(),
                1e-5,
                &format!("{name} row {row} alone vs batched"),
            );
        }
    }
}

#[test]
fn pooling_names_parse_and_print() {
    for s in [
        "cls",
        "pooler",
        "mean",
        "max",
        "min",
        "mean_kmax:3",
        "first_last_avg",
        "last4_concat_cls",
        "weighted_layer:2",
        "attention",
    ] {
        let p: Pooling = s.parse().unwrap();
        assert_eq!(p.to_string(), s);
    }
    assert_eq!(
        "mean-kmax".parse::<Pooling>().unwrap(),
        Pooling::MeanKmax { k: 3 }
    );
    let err = "avg".parse::<Pooling>().unwrap_err().to_string();
    assert!(
        err.contains("unknown pooling") && err.contains("first_last_avg"),
        "{err}"
    );
}
