//! `bert4rs quantize` directories: loading one gives exactly the model `--int8` quantises on
//! the fly, at a fraction of the file size; a damaged or misused one is refused, naming
//! what is wrong.

mod common;

use bert4rs::kernels::CodeWidth;
use bert4rs::models::quantize::quantize_dir;
use bert4rs::models::{hub, load_encoder};
use bert4rs::SentenceEncoder;
use candle_core::Device;
use common::*;
use std::path::Path;

fn sentences() -> Vec<String> {
    serde_json::from_value(json("parity/minilm.json")["sentences"].clone()).unwrap()
}

#[test]
fn a_quantized_directory_embeds_bit_for_bit_as_int8_on_the_fly_at_a_fraction_of_the_size() {
    let src = asset("minilm");
    let texts = sentences();
    for width in [CodeWidth::Wide, CodeWidth::U8, CodeWidth::U7] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("int8");
        let summary = quantize_dir(&src, &out, width).unwrap();
        assert_eq!(summary.activation_bits, width.bits());
        assert_eq!(
            summary.int8_layers,
            6 * 6 + 1,
            "6 layers × (Q, K, V, 3 dense) + pooler"
        );
        let ratio = summary.weight_bytes_after as f64 / summary.weight_bytes_before as f64;
        assert!(ratio < 0.7, "weight file {ratio:.2} of the f32 one");
        let saved = SentenceEncoder::from_dir(&out).unwrap();
        assert!(saved.model.is_int8(), "the saved directory loads as int8");
        let mut fly = SentenceEncoder::from_dir(&src).unwrap();
        fly.model.quantize_int8(width).unwrap();
        let (a, b) = (saved.embed(&texts).unwrap(), fly.embed(&texts).unwrap());
        assert_eq!(a, b, "{width:?}: saved int8 differs from --int8 on the fly");
        // The sentence-transformers side files came along (pooling, normalisation).
        assert_eq!(saved.pooling(), fly.pooling());
        assert!(out.join("tokenizer.json").is_file() || out.join("vocab.txt").is_file());
    }
}

/// A quantized MiniLM in a temp dir.
fn quantized() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("int8");
    quantize_dir(&asset("minilm"), &out, CodeWidth::Wide).unwrap();
    (tmp, out)
}

fn load_error(dir: &Path) -> String {
    match SentenceEncoder::from_dir(dir) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
}

#[test]
fn a_damaged_int8_config_or_weight_file_is_refused_naming_the_field_or_tensor() {
    let (_tmp, dir) = quantized();
    let q = |v: &mut serde_json::Value| v["quantization_config"].clone();
    let original = {
        let mut v = serde_json::Value::Null;
        edit_config(&dir, |c| v = q(c));
        v
    };
    edit_config(&dir, |c| {
        c["quantization_config"]["activation_bits"] = 9.into()
    });
    assert!(load_error(&dir).contains("activation_bits is 9"));
    edit_config(&dir, |c| {
        c["quantization_config"]["quant_method"] = "gptq".into()
    });
    assert!(load_error(&dir).contains("quant_method is \"gptq\""));
    edit_config(&dir, |c| c["quantization_config"] = original.clone());

    // A weight scale removed: rewrite the file without it.
    let file = dir.join("model.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let gone = "encoder.layer.2.output.dense.weight_scale";
    let kept: Vec<_> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != gone)
        .collect();
    safetensors::serialize_to_file(kept, None, &file).unwrap();
    let err = load_error(&dir);
    assert!(
        err.contains(gone) && err.contains("model.safetensors"),
        "{err}"
    );
}

#[test]
fn an_int8_directory_refuses_training_bf16_and_f32_readers_with_a_pointer_to_its_source() {
    let (_tmp, dir) = quantized();
    for err in [
        load_encoder(&dir, &Device::Cpu, true)
            .err()
            .unwrap()
            .to_string(),
        bert4rs::models::load_encoder_as(&dir, &Device::Cpu, false, hub::WeightStorage::Bf16)
            .err()
            .unwrap()
            .to_string(),
    ] {
        assert!(err.contains("int8") && err.contains("f32 model"), "{err}");
    }
    // Tools that read the f32 tensors themselves (prune-heads, extend-positions, resume).
    let err = hub::read_tensors(&dir.join("model.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("bert4rs quantize"), "{err}");
    // Its layers hold no f32 weights to save.
    let enc = SentenceEncoder::from_dir(&dir).unwrap();
    let err = enc
        .save_pretrained(&dir.with_file_name("saved"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("int8 layer") && err.contains("f32 model"),
        "{err}"
    );
    // The same for an encoder quantised on the fly: its f32 matrices were freed.
    let mut fly = SentenceEncoder::from_dir(&asset("minilm")).unwrap();
    fly.quantize_int8(CodeWidth::Wide).unwrap();
    assert!(fly.save_pretrained(&dir.with_file_name("fly")).is_err());
    let again = quantize_dir(&dir, &dir.with_file_name("again"), CodeWidth::Wide);
    assert!(again.unwrap_err().to_string().contains("already int8"));
    let same = quantize_dir(&asset("minilm"), &asset("minilm"), CodeWidth::Wide);
    assert!(same
        .unwrap_err()
        .to_string()
        .contains("model directory itself"));
}
