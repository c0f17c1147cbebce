//! The bert2bert encoder–decoder against HF `EncoderDecoderModel` (fixtures:
//! reference/make_seq2seq_fixtures.py, a random 2-layer encoder and 3-layer decoder saved by
//! `save_pretrained`): teacher-forcing logits, loss and gradients; greedy and beam-search
//! outputs and beam scores, batched and per input; the cached decoder equals re-running
//! whole sequences; saving writes HF's names and reloads to the same model; malformed
//! configs fail with the field named.

mod common;

use bert4rs::data::batch::to_encoder_input;
use bert4rs::generate::seq2seq::generate_seq2seq;
use bert4rs::generate::GenerationConfig;
use bert4rs::models::bert::EncoderInput;
use bert4rs::models::encoder_decoder::EncoderDecoderModel;
use bert4rs::tokenize::{EncodeOptions, Padding, TextInput, Tokenizer};
use candle_core::{Device, Tensor};
use common::{assert_close, fixture, golden, json, scale};
use serde_json::Value;

/// Logits of order 10 through 5 f32 blocks: 1e-5 relative to the largest.
const REL: f32 = 1e-5;

fn model(trainable: bool) -> EncoderDecoderModel {
    EncoderDecoderModel::from_dir(&fixture("seq2seq/model"), &Device::Cpu, trainable).unwrap()
}

fn sources(g: &Value, padding: Padding) -> Vec<EncoderInput> {
    let tok = Tokenizer::from_dir(&fixture("seq2seq/model")).unwrap();
    let texts: Vec<String> = serde_json::from_value(g["sources"].clone()).unwrap();
    let opts = |padding| EncodeOptions {
        max_length: None,
        padding,
        truncation: None,
    };
    let enc = |t: &[String], padding| {
        let inputs: Vec<TextInput> = t.iter().cloned().map(TextInput::single).collect();
        let encs = tok.encode_batch(&inputs, &opts(padding)).unwrap();
        to_encoder_input(&encs, &Device::Cpu).unwrap()
    };
    match padding {
        Padding::Longest => vec![enc(&texts, Padding::Longest)],
        _ => texts.chunks(1).map(|t| enc(t, Padding::None)).collect(),
    }
}

fn targets(g: &Value) -> Vec<Vec<u32>> {
    serde_json::from_value(g["targets"].clone()).unwrap()
}

fn ids_of(out: &[bert4rs::generate::Generated]) -> Vec<Vec<u32>> {
    out.iter().map(|o| o.ids.clone()).collect()
}

#[test]
fn teacher_forcing_logits_loss_and_gradients_match_hf() {
    let g = json("seq2seq/golden.json");
    let want = golden("seq2seq/golden.safetensors");
    let m = model(true);
    let input = &sources(&g, Padding::Longest)[0];
    let ys = targets(&g);
    let (start, pad) = (m.config().decoder_start_token_id, m.config().pad_token_id);
    let t = ys.iter().map(Vec::len).max().unwrap();
    let mut dec = Vec::new();
    for y in &ys {
        dec.push(start);
        dec.extend_from_slice(&y[..y.len() - 1]);
        dec.extend(std::iter::repeat_n(pad, t - y.len()));
    }
    let dec = Tensor::from_vec(dec, (ys.len(), t), &Device::Cpu).unwrap();
    let logits = m.forward(input, &dec, false).unwrap();
    // Only real target positions: HF masks its padded decoder inputs, we leave them to the
    // causal mask; neither changes a real position.
    for (r, y) in ys.iter().enumerate() {
        let got = logits.get(r).unwrap().narrow(0, 0, y.len()).unwrap();
        let exp = want["logits"]
            .get(r)
            .unwrap()
            .narrow(0, 0, y.len())
            .unwrap();
        assert_close(&got, &exp, REL * scale(&exp), &format!("logits row {r}"));
    }
    let loss = m.loss(input, &ys, false).unwrap();
    let l = loss.to_scalar::<f32>().unwrap();
    let hf = g["loss"].as_f64().unwrap() as f32;
    assert!(
        (l - hf).abs() < 1e-5 * hf.abs().max(1.0),
        "loss {l} vs HF {hf}"
    );
    let grads = loss.backward().unwrap();
    let vars: std::collections::HashMap<String, candle_core::Var> =
        m.params().vars().into_iter().collect();
    for name in g["grads"].as_array().unwrap() {
        let name = name.as_str().unwrap();
        let got = grads.get(vars[name].as_tensor()).unwrap();
        let exp = &want[&format!("grad.{name}")];
        assert_close(got, exp, 2e-5 * scale(exp), &format!("gradient of {name}"));
    }
}

fn greedy_cfg(g: &Value) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens: g["max_new_tokens"].as_u64().unwrap() as usize,
        ..Default::default()
    }
}

#[test]
fn greedy_generation_matches_hf_batched_and_alone() {
    let g = json("seq2seq/golden.json");
    let m = model(false);
    let want: Vec<Vec<u32>> = serde_json::from_value(g["greedy"].clone()).unwrap();
    let batch = &sources(&g, Padding::Longest)[0];
    let out = generate_seq2seq(&m, batch, &greedy_cfg(&g)).unwrap();
    assert_eq!(ids_of(&out), want, "batched greedy");
    assert!(out.iter().all(|o| o.prompt_len == 1));
    let alone: Vec<Vec<u32>> = serde_json::from_value(g["greedy_alone"].clone()).unwrap();
    for (i, input) in sources(&g, Padding::None).iter().enumerate() {
        let out = generate_seq2seq(&m, input, &greedy_cfg(&g)).unwrap();
        assert_eq!(ids_of(&out), vec![alone[i].clone()], "input {i} alone");
    }
}

#[test]
fn beam_search_matches_hf_sequences_and_scores() {
    let g = json("seq2seq/golden.json");
    let m = model(false);
    let b = &g["beam"];
    let cfg = GenerationConfig {
        num_beams: b["num_beams"].as_u64().unwrap() as usize,
        num_return_sequences: b["num_return_sequences"].as_u64().unwrap() as usize,
        ..greedy_cfg(&g)
    };
    let batch = &sources(&g, Padding::Longest)[0];
    let out = generate_seq2seq(&m, batch, &cfg).unwrap();
    let want: Vec<Vec<u32>> = serde_json::from_value(b["sequences"].clone()).unwrap();
    assert_eq!(ids_of(&out), want);
    let scores: Vec<f32> = serde_json::from_value(b["scores"].clone()).unwrap();
    for (o, s) in out.iter().zip(scores) {
        let got = o.score.unwrap();
        assert!((got - s).abs() < 1e-5, "beam score {got} vs HF {s}");
    }
}

#[test]
fn cached_decoding_equals_rerunning_whole_sequences() {
    let g = json("seq2seq/golden.json");
    let m = model(false);
    let batch = &sources(&g, Padding::Longest)[0];
    for beams in [1, 3] {
        let cfg = GenerationConfig {
            num_beams: beams,
            ..greedy_cfg(&g)
        };
        let cached = generate_seq2seq(&m, batch, &cfg).unwrap();
        let plain = GenerationConfig {
            use_cache: false,
            ..cfg
        };
        let uncached = generate_seq2seq(&m, batch, &plain).unwrap();
        assert_eq!(ids_of(&cached), ids_of(&uncached), "{beams} beams");
    }
}

#[test]
fn saved_model_keeps_hf_names_and_reloads_identically() {
    let g = json("seq2seq/golden.json");
    let m = model(false);
    let dir = tempfile::tempdir().unwrap();
    m.save_pretrained(dir.path()).unwrap();
    let names = |p: &std::path::Path| {
        let mut k: Vec<String> = bert4rs::models::hub::read_tensors(p)
            .unwrap()
            .into_keys()
            .collect();
        k.sort();
        k
    };
    assert_eq!(
        names(&dir.path().join("model.safetensors")),
        names(&fixture("seq2seq/model/model.safetensors")),
        "the tensors HF's save_pretrained writes"
    );
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["model_type"], "encoder-decoder");
    assert_eq!(cfg["decoder"]["add_cross_attention"], true);
    let back = EncoderDecoderModel::from_dir(dir.path(), &Device::Cpu, false).unwrap();
    let batch = &sources(&g, Padding::Longest)[0];
    let a = generate_seq2seq(&m, batch, &greedy_cfg(&g)).unwrap();
    let b = generate_seq2seq(&back, batch, &greedy_cfg(&g)).unwrap();
    assert_eq!(ids_of(&a), ids_of(&b));
}

/// A change that breaks a config.
type Edit = fn(&mut Value);

#[test]
fn malformed_encoder_decoder_configs_name_the_field() {
    let src: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("seq2seq/model/config.json")).unwrap(),
    )
    .unwrap();
    let cases: [(&str, Edit); 4] = [
        ("decoder_start_token_id", |c| {
            c.as_object_mut().unwrap().remove("decoder_start_token_id");
        }),
        ("decoder.is_decoder", |c| {
            c["decoder"]["is_decoder"] = false.into()
        }),
        ("missing field `encoder`", |c| {
            c.as_object_mut().unwrap().remove("encoder");
        }),
        ("eos_token_id 999", |c| c["eos_token_id"] = 999.into()),
    ];
    for (want, edit) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut c = src.clone();
        edit(&mut c);
        std::fs::write(dir.path().join("config.json"), c.to_string()).unwrap();
        std::fs::copy(
            fixture("seq2seq/model/model.safetensors"),
            dir.path().join("model.safetensors"),
        )
        .unwrap();
        let err = EncoderDecoderModel::from_dir(dir.path(), &Device::Cpu, false)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains(want) && err.contains("config.json"),
            "{want}: {err}"
        );
    }
}

#[test]
fn seeded_sampling_is_reproducible_and_returns_every_sequence() {
    let g = json("seq2seq/golden.json");
    let m = model(false);
    let batch = &sources(&g, Padding::Longest)[0];
    let cfg = GenerationConfig {
        do_sample: true,
        top_k: 20,
        temperature: 1.5,
        num_return_sequences: 2,
        seed: 7,
        ..greedy_cfg(&g)
    };
    let a = generate_seq2seq(&m, batch, &cfg).unwrap();
    let b = generate_seq2seq(&m, batch, &cfg).unwrap();
    assert_eq!(ids_of(&a), ids_of(&b), "same seed, same samples");
    assert_eq!(a.len(), 6, "2 sequences for each of 3 sources");
    let vocab = m.config().decoder.vocab_size as u32;
    assert!(a
        .iter()
        .all(|o| o.ids[0] == m.config().decoder_start_token_id
            && o.ids.iter().all(|&t| t < vocab)
            && o.ids.len() <= 11));
    let other = GenerationConfig { seed: 8, ..cfg };
    let c = generate_seq2seq(&m, batch, &other).unwrap();
    assert_ne!(ids_of(&a), ids_of(&c), "another seed, other samples");
}
