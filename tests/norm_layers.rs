//! Normalisation layers against `torch.nn` (fixtures: reference/make_norm_fixtures.py):
//! BatchNorm1d (2-D and 3-D input) and BatchNorm2d, LayerNorm over one and two trailing
//! dimensions, InstanceNorm1d (affine) and 2d, GroupNorm on 3-D and 4-D input, RMSNorm with
//! torch's default and an explicit eps. For each: the training-mode output, the gradients of
//! `sum(y · g)` with respect to the input, weight and bias, BatchNorm's running statistics
//! after that pass, and an eval-mode output (BatchNorm: from the running statistics).
//! Tolerance 1e-5 (1e-4 on gradients, sums over up to 120 values of order one).

mod common;

use bert4rs::nn::norm::{BatchNorm, GroupNorm, InstanceNorm, LayerNormNd, RmsNorm, RunningStats};
use candle_core::{Tensor, Var};
use common::{assert_close, golden};
use std::collections::HashMap;

type Golden = HashMap<String, Tensor>;

fn g(f: &Golden, case: &str, name: &str) -> Tensor {
    f.get(&format!("{case}.{name}"))
        .unwrap_or_else(|| panic!("{case}.{name} in the fixture"))
        .clone()
}

fn opt(f: &Golden, case: &str, name: &str) -> Option<Var> {
    f.get(&format!("{case}.{name}"))
        .map(|t| Var::from_tensor(t).unwrap())
}

/// Runs `forward` in training on a trainable input and compares output and gradients, then
/// on `x2` in eval mode.
fn check(
    f: &Golden,
    case: &str,
    params: (Option<Var>, Option<Var>),
    forward: impl Fn(&Tensor, bool) -> Tensor,
) {
    let x = Var::from_tensor(&g(f, case, "x")).unwrap();
    let y = forward(x.as_tensor(), true);
    assert_close(&y, &g(f, case, "y_train"), 1e-5, &format!("{case}: output"));
    let loss = (y * g(f, case, "g")).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let grad = |v: &Var| grads.get(v.as_tensor()).unwrap().clone();
    assert_close(&grad(&x), &g(f, case, "dx"), 1e-4, &format!("{case}: dx"));
    if let Some(w) = &params.0 {
        assert_close(
            &grad(w),
            &g(f, case, "dweight"),
            1e-4,
            &format!("{case}: dweight"),
        );
    }
    if let Some(b) = &params.1 {
        assert_close(
            &grad(b),
            &g(f, case, "dbias"),
            1e-4,
            &format!("{case}: dbias"),
        );
    }
    let y2 = forward(&g(f, case, "x2"), false);
    assert_close(
        &y2,
        &g(f, case, "y_eval"),
        1e-5,
        &format!("{case}: eval output"),
    );
}

fn tensors(p: &(Option<Var>, Option<Var>)) -> (Option<Tensor>, Option<Tensor>) {
    (
        p.0.as_ref().map(|v| v.as_tensor().clone()),
        p.1.as_ref().map(|v| v.as_tensor().clone()),
    )
}

fn fixture() -> Golden {
    golden("norm/norm.safetensors")
}

#[test]
fn batch_norm_matches_torch_in_training_eval_and_running_statistics() {
    let f = fixture();
    for (case, eps, momentum) in [
        ("batch_norm_1d", 1e-5, 0.1),
        ("batch_norm_1d_seq", 1e-3, 0.3),
        ("batch_norm_2d", 1e-5, 0.1),
    ] {
        let p = (opt(&f, case, "weight"), opt(&f, case, "bias"));
        let (w, b) = tensors(&p);
        let stats = RunningStats {
            mean: g(&f, case, "running_mean_before"),
            var: g(&f, case, "running_var_before"),
            batches_tracked: 0,
        };
        let bn = BatchNorm::from_tensors(w, b, stats, eps, momentum).unwrap();
        check(&f, case, p, |x, train| bn.forward(x, train).unwrap());
        // One training pass: the eval pass must not move them.
        let s = bn.running_stats();
        assert_close(&s.mean, &g(&f, case, "running_mean_after"), 1e-6, case);
        assert_close(&s.var, &g(&f, case, "running_var_after"), 1e-5, case);
        assert_eq!(s.batches_tracked, 1);
    }
}

#[test]
fn layer_norm_over_trailing_dimensions_matches_torch() {
    let f = fixture();
    for (case, shape, eps) in [
        ("layer_norm", vec![6], 1e-5),
        ("layer_norm_2d", vec![4, 6], 1e-6),
    ] {
        let p = (opt(&f, case, "weight"), opt(&f, case, "bias"));
        let (w, b) = tensors(&p);
        let ln = LayerNormNd::new(&shape, w, b, eps);
        check(&f, case, p, |x, _| ln.forward(x).unwrap());
    }
}

#[test]
fn instance_and_group_norm_match_torch() {
    let f = fixture();
    for (case, channels) in [("instance_norm_1d", 4), ("instance_norm_2d", 3)] {
        let p = (opt(&f, case, "weight"), opt(&f, case, "bias"));
        let (w, b) = tensors(&p);
        let norm = InstanceNorm::new(channels, w, b, 1e-5).unwrap();
        check(&f, case, p, |x, _| norm.forward(x).unwrap());
    }
    for (case, groups, eps) in [("group_norm", 2, 1e-5), ("group_norm_2d", 3, 1e-3)] {
        let p = (opt(&f, case, "weight"), opt(&f, case, "bias"));
        let (w, b) = tensors(&p);
        let norm = GroupNorm::new(groups, 6, w, b, eps).unwrap();
        check(&f, case, p, |x, _| norm.forward(x).unwrap());
    }
}

#[test]
fn rms_norm_matches_torch_with_its_default_and_a_given_eps() {
    let f = fixture();
    for (case, shape, eps) in [
        ("rms_norm", vec![6], None),
        ("rms_norm_eps", vec![4, 6], Some(1e-5)),
    ] {
        let p = (opt(&f, case, "weight"), None);
        let w = p.0.as_ref().map(|v| v.as_tensor().clone());
        let norm = RmsNorm::new(&shape, w, eps);
        check(&f, case, p, |x, _| norm.forward(x).unwrap());
    }
}

#[test]
fn wrong_shapes_are_named_errors() {
    let dev = candle_core::Device::Cpu;
    let bn = BatchNorm::new(3, 1e-5, 0.1, &dev).unwrap();
    let x = Tensor::zeros((2, 4), candle_core::DType::F32, &dev).unwrap();
    let err = bn.forward(&x, true).unwrap_err().to_string();
    assert!(err.contains("[N, 3, …]"), "{err}");
    let one = Tensor::zeros((1, 3), candle_core::DType::F32, &dev).unwrap();
    let err = bn.forward(&one, true).unwrap_err().to_string();
    assert!(err.contains("more than one value per channel"), "{err}");
    assert!(
        bn.forward(&one, false).is_ok(),
        "eval takes a single example"
    );
    let err = GroupNorm::new(4, 6, None, None, 1e-5)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("must divide"), "{err}");
    let err = RmsNorm::new(&[5], None, None)
        .forward(&x)
        .unwrap_err()
        .to_string();
    assert!(err.contains("ending in [5]"), "{err}");
    let inst = InstanceNorm::new(3, None, None, 1e-5).unwrap();
    let flat = Tensor::zeros((2, 3), candle_core::DType::F32, &dev).unwrap();
    assert!(
        inst.forward(&flat).is_err(),
        "instance norm needs positions"
    );
}
