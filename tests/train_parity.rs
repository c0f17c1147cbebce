//! The training engine's pieces against PyTorch / transformers on fixed inputs
//! (fixtures from reference/make_train_fixtures.py): every optimiser over 5 steps, every
//! schedule's 20 learning rates, every loss and its gradient, clipping and EMA.

mod common;

use bert4rs::nn::losses::{self, CrossEntropy, MarginLoss};
use bert4rs::train::tricks::{clip_coefficient, global_grad_norm, Ema};
use bert4rs::train::{Optimizer, OptimizerConfig, ParamGroup, ScheduleConfig};
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use common::{golden, json};
use serde_json::Value;

/// |a − b| ≤ tol · max(1, |b|) elementwise: relative for large values, absolute near zero.
fn assert_rel(a: &Tensor, b: &Tensor, tol: f32, what: &str) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        let err = (x - y).abs() / y.abs().max(1.0);
        assert!(
            err <= tol,
            "{what}[{i}]: {x} vs torch {y} (rel err {err:e})"
        );
    }
}

fn optimizer_config(case: &Value) -> OptimizerConfig {
    let mut cfg = OptimizerConfig {
        no_decay: vec![],
        ..Default::default()
    };
    let mut v = serde_json::to_value(&cfg).unwrap();
    for (k, val) in case.as_object().unwrap() {
        match k.as_str() {
            "name" | "groups" => {}
            "optimizer" => v["name"] = val.clone(),
            _ => v[k] = val.clone(),
        }
    }
    // Defaults that differ between torch optimisers.
    if case.get("eps").is_none() {
        v["eps"] = match case["optimizer"].as_str().unwrap() {
            "adagrad" => 1e-10.into(),
            "adadelta" => 1e-6.into(),
            _ => 1e-8.into(),
        };
    }
    if case.get("weight_decay").is_none() {
        v["weight_decay"] = 0.0.into();
    }
    cfg = serde_json::from_value(v).unwrap();
    cfg
}

#[test]
fn every_optimizer_matches_torch_over_five_steps() {
    let meta = json("train/optim.json");
    let t = golden("train/optim.safetensors");
    let n = meta["shapes"].as_array().unwrap().len();
    let steps = meta["steps"].as_u64().unwrap() as usize;
    for case in meta["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let cfg = optimizer_config(case);
        let vars: Vec<Var> = (0..n)
            .map(|i| Var::from_tensor(&t[&format!("init.{i}")]).unwrap())
            .collect();
        let groups = match case.get("groups") {
            Some(gs) => gs
                .as_array()
                .unwrap()
                .iter()
                .map(|g| ParamGroup {
                    lr: g["lr"].as_f64().unwrap(),
                    weight_decay: g["weight_decay"].as_f64().unwrap(),
                    params: g["params"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|i| {
                            let i = i.as_u64().unwrap() as usize;
                            (format!("p{i}"), vars[i].clone())
                        })
                        .collect(),
                })
                .collect(),
            None => vec![ParamGroup {
                lr: cfg.lr,
                weight_decay: cfg.weight_decay,
                params: vars
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (format!("p{i}"), v.clone()))
                    .collect(),
            }],
        };
        let mut opt = Optimizer::new(&cfg, groups).unwrap();
        for s in 0..steps {
            let mut grads = GradStore::default();
            for (i, v) in vars.iter().enumerate() {
                grads.insert(v.as_tensor(), t[&format!("grad.{s}.{i}")].clone());
            }
            opt.step(&grads, 1.0, 1.0).unwrap();
            for (i, v) in vars.iter().enumerate() {
                assert_rel(
                    v.as_tensor(),
                    &t[&format!("{name}.{s}.{i}")],
                    1e-6,
                    &format!("{name} step {s} p{i}"),
                );
            }
        }
    }
}

#[test]
fn every_schedule_matches_transformers_for_twenty_steps() {
    let meta = json("train/schedules.json");
    for case in meta["cases"].as_array().unwrap() {
        let name = case["schedule"].as_str().unwrap();
        let cfg = ScheduleConfig {
            name: serde_json::from_value(case["schedule"].clone()).unwrap(),
            warmup_steps: case["num_warmup_steps"].as_u64(),
            num_cycles: case["num_cycles"].as_f64().unwrap_or(0.5),
            lr_end: case["lr_end"].as_f64().unwrap_or(1e-7),
            power: case["power"].as_f64().unwrap_or(1.0),
            ..Default::default()
        };
        let base = case["base_lr"].as_f64().unwrap();
        let total = case["num_training_steps"].as_u64().unwrap_or(20);
        let sched = cfg.build(total, base).unwrap();
        for (s, want) in case["lrs"].as_array().unwrap().iter().enumerate() {
            let want = want.as_f64().unwrap();
            let got = base * sched.factor(s as u64);
            assert!(
                (got - want).abs() <= 1e-12 + 1e-9 * want.abs(),
                "{name} step {s}: {got} vs {want}"
            );
        }
    }
}

fn labels(t: &Tensor) -> Vec<u32> {
    t.to_dtype(DType::I64)
        .unwrap()
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|v| v as u32)
        .collect()
}

#[test]
fn every_loss_and_its_gradient_matches_torch() {
    let meta = json("train/losses.json");
    let t = golden("train/losses.safetensors");
    let y = labels(&t["labels"]);
    let weights = t["class_weights"].to_vec1::<f32>().unwrap();
    let alpha = t["alpha"].to_vec1::<f32>().unwrap();
    let multi = &t["multi"];
    let target = &t["target"];
    let signs = &t["signs"];
    let logits2 = &t["logits2"];
    let ce = |ls: f64, w: Option<Vec<f32>>| CrossEntropy {
        label_smoothing: ls,
        class_weights: w,
    };
    let mut checked = 0;
    for (name, case) in meta["cases"].as_object().unwrap() {
        if name == "zero_one" {
            let got = losses::zero_one(
                &t["scores"].to_vec1::<f32>().unwrap(),
                &signs.to_vec1::<f32>().unwrap(),
            );
            assert!(
                (got - case["loss"].as_f64().unwrap()).abs() < 1e-12,
                "zero_one"
            );
            checked += 1;
            continue;
        }
        let x = Var::from_tensor(&t[case["input"].as_str().unwrap()]).unwrap();
        let xt = x.as_tensor();
        let loss = match name.as_str() {
            "ce" => losses::cross_entropy(xt, &y, &ce(0.0, None)),
            "ce_smooth" => losses::cross_entropy(xt, &y, &ce(0.1, None)),
            "ce_weighted" => losses::cross_entropy(xt, &y, &ce(0.0, Some(weights.clone()))),
            "ce_weighted_smooth" => losses::cross_entropy(xt, &y, &ce(0.2, Some(weights.clone()))),
            "bce" => losses::bce_with_logits(xt, multi),
            "focal" => losses::focal(xt, &y, 2.0, None),
            "focal_alpha" => losses::focal(xt, &y, 1.5, Some(&alpha)),
            "focal_binary" => losses::focal_binary(xt, multi, 2.0, 0.25),
            "dice" => losses::dice(xt, &y, 1.0),
            "rdrop_kl" => losses::rdrop_kl(xt, logits2),
            "distill_kl" => losses::distill_kl(xt, logits2, 2.0),
            "mse" => losses::mse(xt, target),
            "mse_corr" => losses::mse_corr(xt, target, 0.5),
            "hinge" => MarginLoss::Hinge.loss(xt, signs),
            "exponential" => MarginLoss::Exponential.loss(xt, signs),
            "absolute" => MarginLoss::Absolute.loss(xt, signs),
            "log" => MarginLoss::Log.loss(xt, signs),
            "squared" => MarginLoss::Squared.loss(xt, signs),
            "perceptron" => MarginLoss::Perceptron.loss(xt, signs),
            other => panic!("fixture has a loss the test does not know: {other}"),
        }
        .unwrap();
        let got = loss.to_scalar::<f32>().unwrap() as f64;
        let want = case["loss"].as_f64().unwrap();
        assert!(
            (got - want).abs() <= 1e-6 * want.abs().max(1.0),
            "{name}: {got} vs torch {want}"
        );
        let grads = loss.backward().unwrap();
        let g = grads
            .get(xt)
            .unwrap_or_else(|| panic!("{name}: no gradient reached the input"));
        common::assert_close(
            g,
            &t[&format!("grad.{name}")],
            1e-6,
            &format!("{name} gradient"),
        );
        checked += 1;
    }
    assert_eq!(checked, 20, "every loss of the fixture is checked");
}

#[test]
fn grad_clipping_and_ema_match_torch() {
    let meta = json("train/tricks.json");
    let t = golden("train/tricks.safetensors");
    let n = 3;
    for key in ["clip_1", "clip_100"] {
        let vars: Vec<Var> = (0..n)
            .map(|i| Var::from_tensor(&t[&format!("grad.{i}")].zeros_like().unwrap()).unwrap())
            .collect();
        let mut grads = GradStore::default();
        for (i, v) in vars.iter().enumerate() {
            grads.insert(v.as_tensor(), t[&format!("grad.{i}")].clone());
        }
        let norm = global_grad_norm(&grads, vars.iter()).unwrap();
        let want = meta[key]["total_norm"].as_f64().unwrap();
        assert!(
            (norm - want).abs() < 1e-5 * want,
            "{key}: norm {norm} vs {want}"
        );
        let coef = clip_coefficient(norm, meta[key]["max_norm"].as_f64().unwrap());
        for (i, v) in vars.iter().enumerate() {
            let clipped = (grads.get(v.as_tensor()).unwrap() * coef).unwrap();
            common::assert_close(
                &clipped,
                &t[&format!("{key}.{i}")],
                1e-6,
                &format!("{key} grad {i}"),
            );
        }
    }
    let vars: Vec<Var> = (0..n)
        .map(|i| Var::from_tensor(&t[&format!("ema.param.0.{i}")]).unwrap())
        .collect();
    let names: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
    let mut ema = Ema::new(0.9, names.iter().map(|s| s.as_str()).zip(vars.iter())).unwrap();
    for k in 1..=3 {
        for (i, v) in vars.iter().enumerate() {
            v.set(&t[&format!("ema.param.{k}.{i}")]).unwrap();
        }
        ema.update().unwrap();
    }
    let live: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().copy().unwrap()).collect();
    ema.apply_shadow().unwrap();
    for (i, v) in vars.iter().enumerate() {
        common::assert_close(
            v.as_tensor(),
            &t[&format!("ema.shadow.{i}")],
            1e-6,
            &format!("ema shadow {i}"),
        );
    }
    ema.restore().unwrap();
    for (v, l) in vars.iter().zip(&live) {
        common::assert_close(v.as_tensor(), l, 0.0, "live weights restored");
    }
}
