//! Every parameter of the encoder is trainable and its gradient equals a finite difference:
//! the check that would catch a LayerNorm, softmax or dropout that silently stops gradients
//! (as candle-nn's fused LayerNorm does). Runs in f64 so central differences are exact to
//! ~1e-8 (the tolerance, 1e-4 relative, allows for candle's erf approximation inside GELU,
//! which autograd differentiates as exact); the fused f32 kernels' own backward passes are checked in `kernels.rs`.

mod common;

use bert4rs::models::{bert::BertModel, hub::read_tensors};
use bert4rs::nn::Params;
use bert4rs::{BertConfig, EncoderInput};
use candle_core::{DType, Device, Tensor, Var};
use common::*;

fn f64_model() -> (BertModel, Params) {
    let dir = fixture("models/bert-a");
    let cfg = BertConfig::from_file(&dir.join("config.json")).unwrap();
    let tensors = read_tensors(&dir.join("model.safetensors"))
        .unwrap()
        .into_iter()
        .map(|(k, t)| {
            let t = if t.dtype() == DType::F32 {
                t.to_dtype(DType::F64).unwrap()
            } else {
                t
            };
            (k, t)
        })
        .collect();
    let params = Params::from_tensors(tensors, &dir, &Device::Cpu, true);
    let model = BertModel::load(&params, &cfg).unwrap();
    (model, params)
}

fn loss(model: &BertModel, input: &EncoderInput, r1: &Tensor, r2: &Tensor) -> Tensor {
    let out = model.forward(input, false).unwrap();
    let a = (out.last_hidden_state * r1).unwrap().sum_all().unwrap();
    let b = (out.pooler_output.unwrap() * r2)
        .unwrap()
        .sum_all()
        .unwrap();
    (a + b).unwrap()
}

#[test]
fn every_parameter_gradient_matches_finite_differences() {
    let (model, params) = f64_model();
    let g = golden("parity/bert-a.safetensors");
    // A padded batch of pairs: exercises the mask, segments and every position.
    let input = EncoderInput {
        input_ids: g["case2.input_ids"].to_dtype(DType::U32).unwrap(),
        attention_mask: g["case2.attention_mask"].to_dtype(DType::F32).unwrap(),
        token_type_ids: g["case2.token_type_ids"].to_dtype(DType::U32).unwrap(),
    };
    let (b, t) = input.input_ids.dims2().unwrap();
    let mask = input
        .attention_mask
        .to_dtype(DType::F64)
        .unwrap()
        .reshape((b, t, 1))
        .unwrap();
    // Weighting only real tokens: padded rows' outputs are not part of any loss.
    let r1 = Tensor::randn(0f64, 1.0, (b, t, 32), &Device::Cpu)
        .unwrap()
        .broadcast_mul(&mask)
        .unwrap();
    let r2 = Tensor::randn(0f64, 1.0, (b, 32), &Device::Cpu).unwrap();
    let grads = loss(&model, &input, &r1, &r2).backward().unwrap();
    let vars: Vec<(String, Var)> = params.vars();
    assert_eq!(
        vars.len(),
        5 + 2 * 16 + 2,
        "every weight is a trainable variable"
    );
    let eps = 1e-5;
    for (name, var) in &vars {
        let grad = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient reaches {name}"))
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let base = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        // Check the elements with the largest gradient (those that must be right) plus one
        // fixed element.
        let mut idx: Vec<usize> = (0..grad.len()).collect();
        idx.sort_by(|&a, &b| grad[b].abs().total_cmp(&grad[a].abs()));
        idx.truncate(2);
        idx.push(grad.len() / 3);
        for i in idx {
            let at = |delta: f64| {
                let mut v = base.clone();
                v[i] += delta;
                var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                loss(&model, &input, &r1, &r2).to_scalar::<f64>().unwrap()
            };
            let fd = (at(eps) - at(-eps)) / (2.0 * eps);
            var.set(&Tensor::from_vec(base.clone(), var.shape(), &Device::Cpu).unwrap())
                .unwrap();
            let err = (fd - grad[i]).abs();
            assert!(
                err <= 1e-4 * fd.abs().max(1.0),
                "{name}[{i}]: autograd {} vs finite difference {fd}",
                grad[i]
            );
        }
        assert!(
            grad.iter().any(|g| *g != 0.0),
            "{name}: gradient is all zero"
        );
    }
}
