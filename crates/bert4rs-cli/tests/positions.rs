//! Position tables against the notes' formulas computed in torch
//! (`reference/make_position_fixtures.py`): the sinusoidal table, `extend-positions` by copy and
//! by hierarchical decomposition on the committed BERT and RoBERTa checkpoints, the extended
//! model's hidden states past its old limit as transformers computes them, a sinusoidal new
//! model (fixed, saved loadable), and the command's bad input.

mod common;

use bert4rs::models::bert::EncoderInput;
use bert4rs::models::load_encoder;
use bert4rs::nn::positions::sinusoidal_table;
use candle_core::{DType, Device, Tensor};
use common::{assert_close, bin, fixture, golden, scale};
use std::path::Path;

const TABLE: &str = "embeddings.position_embeddings.weight";

fn extend(model: &Path, out: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec![
        "extend-positions",
        "--model",
        model.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    bin(&all)
}

fn table_of(dir: &Path) -> Tensor {
    let file = bert4rs::models::hub::find_weights(dir).unwrap();
    let t = bert4rs::models::hub::read_tensors(&file).unwrap();
    t.iter()
        .find(|(k, _)| k.ends_with(TABLE))
        .map(|(_, v)| v.clone())
        .expect("a position table")
}

fn config_of(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()
}

/// torch's f32 sin/cos of the same f32 angles: within an ulp or two.
#[test]
fn sinusoidal_table_matches_torch() {
    let g = golden("positions/positions.safetensors");
    let ours = sinusoidal_table(600, 32, &Device::Cpu).unwrap();
    assert_close(&ours, &g["sinusoid"], 1e-6, "sinusoid 600 x 32");
}

/// The same f32 arithmetic on both sides (values of order 1): 1e-6.
#[test]
fn extended_tables_equal_the_formulas_in_torch() {
    let g = golden("positions/positions.safetensors");
    let cases: [(&str, &[&str], &str, usize); 4] = [
        (
            "bert-a",
            &["--to", "150", "--method", "copy"],
            "bert_copy_150",
            150,
        ),
        ("bert-a", &["--to", "300"], "bert_hier_300", 300),
        (
            "bert-a",
            &["--to", "300", "--alpha", "0.3"],
            "bert_hier_300_a03",
            300,
        ),
        ("roberta-a", &["--to", "100"], "roberta_hier_100", 100),
    ];
    for (model, args, want, rows) in cases {
        let out = tempfile::tempdir().unwrap();
        let dir = out.path().join("long");
        let o = extend(&fixture(&format!("models/{model}")), &dir, args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_close(&table_of(&dir), &g[want], 1e-6, want);
        assert_eq!(config_of(&dir)["max_position_embeddings"], rows, "{want}");
        assert!(dir.join("vocab.txt").is_file(), "{want}: tokenizer copied");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("model.safetensors"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(
                mode & 0o044,
                0o044,
                "{want}: weights readable like the other files"
            );
        }
    }
}

/// bert-a was made with 64 positions; extended to 300 it encodes 200 tokens exactly as
/// transformers' BertModel does with the same table (1e-5 of the hidden-state scale).
#[test]
fn extended_model_encodes_past_its_old_limit_as_transformers() {
    let g = golden("positions/positions.safetensors");
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("long");
    let o = extend(&fixture("models/bert-a"), &dir, &["--to", "300"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let enc = load_encoder(&dir, &Device::Cpu, false).unwrap();
    let ids = g["long_ids"]
        .to_dtype(DType::U32)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let input = EncoderInput {
        token_type_ids: ids.zeros_like().unwrap(),
        attention_mask: ids.ones_like().unwrap().to_dtype(DType::F32).unwrap(),
        input_ids: ids,
    };
    let h = enc.model.forward(&input, false).unwrap().last_hidden_state;
    let want = &g["long_hidden"];
    assert_close(
        &h.squeeze(0).unwrap(),
        want,
        1e-5 * scale(want),
        "hidden states",
    );
    // The original refuses the same input: the table really was the limit.
    let short = load_encoder(&fixture("models/bert-a"), &Device::Cpu, false).unwrap();
    assert!(short.model.forward(&input, false).is_err());
}

/// A new model with `position_embedding_type = "sinusoidal"`: the table is the sinusoid, is
/// not trained, and is saved as an absolute table with our flag, which loads back unchanged;
/// extending it recomputes the sinusoid.
#[test]
fn sinusoidal_positions_are_fixed_saved_and_recomputed_when_extended() {
    let g = golden("positions/positions.safetensors");
    let tmp = tempfile::tempdir().unwrap();
    let new = tmp.path().join("new");
    std::fs::create_dir_all(&new).unwrap();
    let mut cfg = config_of(&fixture("models/bert-a"));
    cfg["position_embedding_type"] = "sinusoidal".into();
    cfg["max_position_embeddings"] = 600.into();
    std::fs::write(new.join("config.json"), cfg.to_string()).unwrap();
    let enc = load_encoder(&new, &Device::Cpu, true).unwrap();
    assert!(
        enc.params.vars().iter().all(|(k, _)| !k.ends_with(TABLE)),
        "the sinusoidal table must not be trained"
    );
    let saved = tmp.path().join("saved");
    enc.save_pretrained(&saved).unwrap();
    assert_close(&table_of(&saved), &g["sinusoid"], 1e-6, "saved table");
    let c = config_of(&saved);
    assert_eq!(
        c["position_embedding_type"], "absolute",
        "transformers reads it"
    );
    assert_eq!(c["sinusoidal_position_embeddings"], true);
    let back = load_encoder(&saved, &Device::Cpu, true).unwrap();
    assert!(back.params.vars().iter().all(|(k, _)| !k.ends_with(TABLE)));
    let long = tmp.path().join("long");
    let o = extend(&saved, &long, &["--to", "1000", "--method", "copy"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = table_of(&long);
    assert_close(
        &t.narrow(0, 0, 600).unwrap(),
        &g["sinusoid"],
        1e-6,
        "recomputed",
    );
    let want = sinusoidal_table(1000, 32, &Device::Cpu).unwrap();
    assert_close(&t, &want, 0.0, "the sinusoid, not a copy");
}

#[test]
fn bad_extension_arguments_are_clear_errors_that_write_nothing() {
    let model = fixture("models/bert-a");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x");
    let cases: [(&[&str], &str); 4] = [
        (
            &["--to", "32"],
            "must be larger than the current table of 64",
        ),
        (
            &["--to", "64"],
            "must be larger than the current table of 64",
        ),
        (
            &["--to", "128", "--alpha", "1"],
            "--alpha 1 must lie strictly between 0 and 1",
        ),
        (&["--to", "5000"], "reaches at most 4096"),
    ];
    for (args, msg) in cases {
        let o = extend(&model, &out, args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(msg), "{args:?}: {err}");
        assert!(!out.exists(), "{args:?} wrote output");
    }
    let o = extend(&model, &model, &["--to", "128"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("the model directory itself"),
        "{err}"
    );
}
