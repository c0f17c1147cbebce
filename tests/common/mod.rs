//! Helpers shared by the integration tests: fixture paths, golden tensors, comparisons.
#![allow(dead_code)]

use bert4rs::tokenize::{EncodeOptions, Padding, TextInput, Truncation};
use bert4rs::EncoderInput;
use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The repository root: the library's tests run from it, those of a front-end crate
/// (`crates/<name>/tests`, whose helpers include this module) two levels below it.
pub fn repo_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .find(|d| d.join("tests/fixtures").is_dir())
        .expect("the crate lies inside the repository")
        .to_path_buf()
}

/// `tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(rel)
}

/// Golden tensors of a `.safetensors` fixture.
pub fn golden(rel: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture(rel), &Device::Cpu).expect("fixture loads")
}

/// A JSON fixture.
pub fn json(rel: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(rel)).expect("fixture exists"))
        .expect("fixture is JSON")
}

/// Max |a - b| over all elements; panics on shape mismatch with `what` in the message.
pub fn max_abs_diff(a: &Tensor, b: &Tensor, what: &str) -> f32 {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes differ");
    let a = a.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
    let b = b.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Asserts two tensors agree within `tol` absolute.
pub fn assert_close(a: &Tensor, b: &Tensor, tol: f32, what: &str) {
    let d = max_abs_diff(a, b, what);
    assert!(d <= tol, "{what}: max abs diff {d:e} > {tol:e}");
}

/// The scale of a golden tensor for a relative tolerance: max |x|, at least 1.
pub fn scale(t: &Tensor) -> f32 {
    let m = t.abs().unwrap().max_all().unwrap();
    m.to_scalar::<f32>().unwrap().max(1.0)
}

/// A 2-D integer fixture tensor as rows of u32.
pub fn rows_u32(t: &Tensor) -> Vec<Vec<u32>> {
    t.to_dtype(DType::I64)
        .unwrap()
        .to_vec2::<i64>()
        .unwrap()
        .into_iter()
        .map(|r| r.into_iter().map(|v| v as u32).collect())
        .collect()
}

/// Texts (and pairs) of a fixture case.
pub fn case_inputs(case: &Value) -> Vec<TextInput> {
    let texts: Vec<String> = serde_json::from_value(case["texts"].clone()).unwrap();
    let pairs: Option<Vec<String>> = serde_json::from_value(case["pairs"].clone()).unwrap();
    match pairs {
        Some(p) => texts
            .into_iter()
            .zip(p)
            .map(|(a, b)| TextInput::pair(a, b))
            .collect(),
        None => texts.into_iter().map(TextInput::single).collect(),
    }
}

/// Encode options of a fixture case (`padding`/`truncation` as HF's call had them).
pub fn case_options(case: &Value) -> EncodeOptions {
    EncodeOptions {
        max_length: case["max_length"].as_u64().map(|n| n as usize),
        padding: match case["padding"].as_str() {
            Some("longest") => Padding::Longest,
            Some("max_length") => Padding::MaxLength,
            _ => Padding::None,
        },
        truncation: match case["truncation"].as_str() {
            Some("longest_first") => Some(Truncation::LongestFirst),
            Some("only_second") => Some(Truncation::OnlySecond),
            Some("only_first") => Some(Truncation::OnlyFirst),
            _ => None,
        },
    }
}

/// Directory of a registry asset, fetching it on first use (CI reaches the registries).
pub fn asset(name: &str) -> PathBuf {
    let a = bert4rs::assets::find(name).unwrap();
    bert4rs::assets::fetch(a).unwrap_or_else(|e| {
        panic!("asset {name} is needed by this test and could not be fetched: {e}")
    })
}

/// Row `row` of a right-padded batch, without its padding, and its real length.
pub fn unpadded_row(batch: &EncoderInput, row: usize) -> (EncoderInput, usize) {
    let mask = batch.attention_mask.to_vec2::<f32>().unwrap();
    let len = mask[row].iter().filter(|v| **v > 0.0).count();
    let cut = |t: &Tensor| {
        t.narrow(0, row, 1)
            .unwrap()
            .narrow(1, 0, len)
            .unwrap()
            .contiguous()
            .unwrap()
    };
    let single = EncoderInput {
        input_ids: cut(&batch.input_ids),
        attention_mask: cut(&batch.attention_mask),
        token_type_ids: cut(&batch.token_type_ids),
    };
    (single, len)
}

/// Each row of the right-padded `batch` run alone through `model` equals its rows in the
/// batch within `tol`: the last hidden state, and the pooler output where there is one.
pub fn assert_batch_equals_alone(
    model: &bert4rs::models::bert::BertModel,
    batch: &EncoderInput,
    tol: f32,
    what: &str,
) {
    let out = model.forward(batch, false).unwrap();
    for row in 0..batch.input_ids.dim(0).unwrap() {
        let (single, len) = unpadded_row(batch, row);
        let alone = model.forward(&single, false).unwrap();
        let in_batch = (out.last_hidden_state.narrow(0, row, 1).unwrap())
            .narrow(1, 0, len)
            .unwrap();
        let at = format!("{what} row {row}");
        assert_close(&alone.last_hidden_state, &in_batch, tol, &at);
        if let (Some(a), Some(b)) = (&alone.pooler_output, &out.pooler_output) {
            let b = b.narrow(0, row, 1).unwrap();
            assert_close(a, &b, tol, &format!("{what} pooler row {row}"));
        }
    }
}

/// Rebuilds a tiny random GPT-2 fixture (`tests/fixtures/gpt2/<name>`) as an HF model
/// directory in a temp dir: every weight is a pure function of (seed, name, index), the
/// generator `reference/make_gpt2_fixtures.py` used, so no megabyte weights are committed.
pub fn gpt2_fixture_dir(name: &str) -> tempfile::TempDir {
    use bert4rs::rng::{hash_str, uniform_at};
    let src = fixture(&format!("gpt2/{name}"));
    let spec = json(&format!("gpt2/{name}/weights.json"));
    let seed = spec["seed"].as_u64().unwrap();
    let mut tensors = HashMap::new();
    for t in spec["tensors"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        let shape: Vec<usize> = t["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let scale = t["scale"].as_f64().unwrap() as f32;
        let ln = t["kind"].as_str() == Some("ln_weight");
        let key = hash_str(name) ^ seed;
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n as u64)
            .map(|i| {
                let v = uniform_at(key, i) * 2.0 - 1.0;
                if ln {
                    1.0 + v * scale
                } else {
                    v * scale
                }
            })
            .collect();
        tensors.insert(
            name.to_string(),
            Tensor::from_vec(data, shape, &Device::Cpu).unwrap(),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    candle_core::safetensors::save(&tensors, dir.path().join("model.safetensors")).unwrap();
    std::fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
    dir
}

/// A step's loss (1e-5 relative, floored at 1) and gradient norm (1e-4 relative) against a
/// step fixture's `loss` and `total_norm`.
pub fn assert_step_stats(stats: &bert4rs::train::StepStats, step: &Value) {
    let want = step["loss"].as_f64().unwrap();
    assert!(
        (stats.loss - want).abs() < 1e-5 * want.abs().max(1.0),
        "loss {} vs {want}",
        stats.loss
    );
    let norm = step["total_norm"].as_f64().unwrap();
    assert!(
        (stats.grad_norm - norm).abs() < 1e-4 * norm,
        "grad norm {} vs {norm}",
        stats.grad_norm
    );
}

/// Compares every `updated.<name>` tensor of a step fixture with our parameter `<name>`
/// (1e-5; the attention key bias within 2e-2, see `train_step.rs`); returns how many.
pub fn assert_updated(ours: &HashMap<String, Tensor>, golden: &HashMap<String, Tensor>) -> usize {
    let mut checked = 0;
    for (k, want) in golden {
        if let Some(name) = k.strip_prefix("updated.") {
            let got = ours
                .get(name)
                .unwrap_or_else(|| panic!("no parameter `{name}`"));
            // The key bias adds the same q·b to every score of a softmax row, so its exact
            // gradient is 0 and both frameworks see only rounding noise (~1e-9), which Adam
            // normalises to steps of ±lr. Its update is noise in torch too; bound it by lr.
            let tol = if name.ends_with("attention.self.key.bias") {
                2e-2
            } else {
                1e-5
            };
            assert_close(got, want, tol, name);
            checked += 1;
        }
    }
    checked
}

/// A 2-layer BERT `config.json` (no weights: `pretrain` creates it) with the trained
/// WordPiece fixture tokenizer.
pub fn tiny_bert(dir: &Path) -> PathBuf {
    let out = dir.join("tiny");
    std::fs::create_dir_all(&out).unwrap();
    let tok = fixture("tokenizer_train/wordpiece");
    for f in std::fs::read_dir(&tok).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, out.join(f.file_name().unwrap())).unwrap();
    }
    let cfg = serde_json::json!({
        "model_type": "bert", "vocab_size": 400, "hidden_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 64, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": 64, "type_vocab_size": 2, "initializer_range": 0.02,
        "layer_norm_eps": 1e-12, "pad_token_id": 0
    });
    std::fs::write(out.join("config.json"), cfg.to_string()).unwrap();
    out
}

/// Every tensor of `dir/model.safetensors`, flattened.
pub fn weights(dir: &Path) -> HashMap<String, Vec<f32>> {
    candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)
        .unwrap()
        .into_iter()
        .map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect()
}

/// bert-b with dropout 0 (the fixture's step ran without dropout).
pub fn step_model(dir: &Path) -> PathBuf {
    let out = dir.join("model");
    std::fs::create_dir_all(&out).unwrap();
    for f in std::fs::read_dir(fixture("models/bert-b")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, out.join(f.file_name().unwrap())).unwrap();
    }
    let cfg_path = out.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["hidden_dropout_prob"] = 0.0.into();
    cfg["attention_probs_dropout_prob"] = 0.0.into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    out
}

/// A masked-LM run of `model` on the text file `train`, into `out`, plus `extra` sets.
pub fn run_config(
    model: &Path,
    out: &Path,
    train: &Path,
    extra: &[&str],
) -> bert4rs::train::RunConfig {
    let mut sets = vec![
        format!("model={:?}", model.to_str().unwrap()),
        format!("output_dir={:?}", out.to_str().unwrap()),
        format!("data.train={:?}", train.to_str().unwrap()),
        "task.kind=\"mlm\"".into(),
    ];
    sets.extend(extra.iter().map(|s| s.to_string()));
    bert4rs::train::RunConfig::load(None, &sets).unwrap()
}
