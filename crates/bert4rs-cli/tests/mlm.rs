//! Masked-LM against transformers' `BertForMaskedLM` (fixtures by
//! `reference/make_mlm_fixtures.py` on the random checkpoint `models/bert-b`): logits of a
//! padded batch, the `fill-mask` pipeline's top-5 tokens and scores, and one AdamW training
//! step with `-100` labels; then `bert4rs pretrain` end to end — a new model from a
//! `config.json` that trains, saves as `BertForMaskedLM`, resumes exactly (same masks) after
//! an interruption — and its bad input.

mod common;

use bert4rs::data::masking::{Masked, IGNORE};
use bert4rs::models::bert::EncoderInput;
use bert4rs::tasks::masked_lm::MaskedLm;
use bert4rs::train::mlm::MlmBatch;
use bert4rs::train::{MlmTask, Trainer};
use candle_core::{DType, Device, Tensor};
use common::{
    assert_close, bin, fixture, golden, json, pretrain_args, run, run_config, scale, step_model,
    tiny_bert, weights,
};
use std::collections::HashMap;
use std::path::Path;

fn input_of(g: &HashMap<String, Tensor>, prefix: &str) -> EncoderInput {
    let ids = g[&format!("{prefix}input_ids")]
        .to_dtype(DType::U32)
        .unwrap();
    EncoderInput {
        token_type_ids: ids.zeros_like().unwrap(),
        attention_mask: g[&format!("{prefix}attention_mask")]
            .to_dtype(DType::F32)
            .unwrap(),
        input_ids: ids,
    }
}

/// Logits reach |x| ≈ 30 on this scrambled checkpoint: 1e-5 relative to that scale.
#[test]
fn logits_match_bert_for_masked_lm() {
    let g = golden("mlm/mlm.safetensors");
    let model = MaskedLm::from_dir(&fixture("models/bert-b"), &Device::Cpu, false).unwrap();
    let logits = model.forward(&input_of(&g, ""), false).unwrap();
    // Padded positions are compared too: HF computes them, and so do we.
    assert_close(&logits, &g["logits"], 1e-5 * scale(&g["logits"]), "logits");
}

#[test]
fn fill_mask_gives_the_pipelines_tokens_and_scores() {
    let meta = json("mlm/mlm.json");
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("masked.txt");
    let texts: Vec<String> = serde_json::from_value(meta["texts"].clone()).unwrap();
    std::fs::write(&input, texts.join("\n") + "\n").unwrap();
    for batch in ["1", "8"] {
        let out = tmp.path().join(format!("fill-{batch}.jsonl"));
        let res = bin(&[
            "fill-mask",
            "--model",
            fixture("models/bert-b").to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--batch-size",
            batch,
        ]);
        assert!(
            res.status.success(),
            "{}",
            String::from_utf8_lossy(&res.stderr)
        );
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), texts.len());
        for (i, (got, want)) in lines
            .iter()
            .zip(meta["fill_mask"].as_array().unwrap())
            .enumerate()
        {
            let (got, want) = (got["masks"].as_array().unwrap(), want.as_array().unwrap());
            assert_eq!(got.len(), want.len(), "line {i}: masks");
            for (g, w) in got.iter().zip(want) {
                for (gc, wc) in g.as_array().unwrap().iter().zip(w.as_array().unwrap()) {
                    assert_eq!(gc["token"], wc["token"], "line {i} (batch {batch})");
                    assert_eq!(gc["token_str"], wc["token_str"], "line {i}");
                    let (a, b) = (gc["score"].as_f64().unwrap(), wc["score"].as_f64().unwrap());
                    assert!((a - b).abs() < 1e-5, "line {i}: score {a} vs {b}");
                }
            }
        }
    }
}

#[test]
fn one_mlm_step_matches_bert_for_masked_lm() {
    let meta = json("mlm/mlm.json");
    let g = golden("mlm/mlm.safetensors");
    let tmp = tempfile::tempdir().unwrap();
    let train = tmp.path().join("train.txt");
    std::fs::write(&train, "hello world\n").unwrap();
    let cfg = run_config(
        &step_model(tmp.path()),
        &tmp.path().join("run"),
        &train,
        &[
            "optimizer.lr=1e-2",
            "optimizer.weight_decay=0.01",
            "schedule.name=\"constant\"",
            "train.max_grad_norm=1000.0",
            "optimizer.eps=1e-3",
        ],
    );
    let task = MlmTask::new(&cfg).unwrap();
    let mut trainer = Trainer::new(cfg, task, false).unwrap();
    let ids = g["step.input_ids"].to_vec2::<i64>().unwrap();
    let labels = g["step.labels"].to_vec2::<i64>().unwrap();
    let mask = g["step.attention_mask"].to_vec2::<i64>().unwrap();
    let masked: Vec<Masked> = ids
        .iter()
        .zip(&labels)
        .zip(&mask)
        .map(|((ids, labels), mask)| {
            let n = mask.iter().filter(|&&m| m == 1).count();
            Masked {
                input_ids: ids[..n].iter().map(|&i| i as u32).collect(),
                labels: labels[..n].to_vec(),
            }
        })
        .collect();
    assert!(masked.iter().flat_map(|m| &m.labels).any(|&l| l != IGNORE));
    let batch = MlmBatch::new(&masked, 0, &Device::Cpu).unwrap();
    let stats = trainer.step(&[batch]).unwrap();
    common::assert_step_stats(&stats, &meta["step"]);
    let ours: HashMap<String, Tensor> =
        trainer.task().model().named_tensors().into_iter().collect();
    let checked = common::assert_updated(&ours, &g);
    assert_eq!(checked, 74, "every BertForMaskedLM parameter compared");
    assert_eq!(ours.len(), 74, "no pooler, no untied decoder");
}

/// A new BERT from `config.json` learns (dev loss falls), saves as `BertForMaskedLM`, and an
/// interrupted run resumed gives bit-identical weights to an uninterrupted one: masks are
/// drawn from (seed, epoch, example) by the producer threads, whatever their timing.
#[test]
fn pretrain_learns_saves_and_resumes_with_the_same_masks() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_bert(tmp.path());
    let full = tmp.path().join("full");
    let common = [
        "train.epochs=2",
        "task.mask_workers=2",
        "task.whole_word_mask=true",
    ];
    let res = run(&pretrain_args(&model, &full, &common));
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&res.stdout).unwrap();
    let log = std::fs::read_to_string(full.join("metrics.jsonl")).unwrap();
    let dev: Vec<f64> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["evaluation"]["split"] == "dev")
        .map(|v| v["evaluation"]["loss"].as_f64().unwrap())
        .collect();
    assert!(
        dev.len() >= 2 && dev[dev.len() - 1] < dev[0],
        "dev loss falls: {dev:?}"
    );
    assert!(dev[0] < (400f64).ln() + 0.5, "starts near uniform: {dev:?}");
    let best = full.join("best");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(best.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["architectures"][0], "BertForMaskedLM");
    let w = weights(&best);
    assert!(w.contains_key("cls.predictions.bias"));
    assert!(w.contains_key("cls.predictions.transform.LayerNorm.weight"));
    assert!(!w
        .keys()
        .any(|k| k.contains("decoder") || k.contains("pooler")));
    assert!(
        summary["best_dev"]["scores"]["masked_accuracy"]
            .as_f64()
            .unwrap()
            > 0.0
    );

    let part = tmp.path().join("part");
    let mut stop = common.to_vec();
    stop.push("train.stop_after_steps=7");
    let res = run(&pretrain_args(&model, &part, &stop));
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let mut resume = pretrain_args(&model, &part, &common);
    resume.push("--resume".into());
    let res = run(&resume);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let (a, b) = (
        weights(&full.join("checkpoint")),
        weights(&part.join("checkpoint")),
    );
    assert_eq!(a.len(), b.len());
    for (k, v) in &a {
        assert!(v == &b[k], "{k} differs after resume");
    }
}

#[test]
fn bad_pretraining_input_fails_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_bert(tmp.path());
    let out = tmp.path().join("run");
    let check = |extra: &[&str], needles: &[&str]| {
        let res = run(&pretrain_args(&model, &out, extra));
        let stderr = String::from_utf8_lossy(&res.stderr);
        assert!(!res.status.success(), "should fail: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        let err = stderr
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap_or("");
        for n in needles {
            assert!(err.contains(n), "error lacks `{n}`: {stderr}");
        }
        assert!(!out.join("checkpoint").exists(), "nothing trained");
    };
    check(&["task.mlm_probability=1.5"], &["mlm_probability"]);
    check(
        &["task.mlm_probability=0.0"],
        &["mlm_probability", "(0, 1)"],
    );
    let empty = tmp.path().join("empty.txt");
    std::fs::write(&empty, "\n  \n").unwrap();
    let set_file = |f: &Path| format!("data.file=\"{}\"", f.display());
    check(&[&set_file(&empty)], &["empty.txt", "no text"]);
    let specials = tmp.path().join("specials.txt");
    std::fs::write(&specials, "[CLS] [SEP]\n[MASK][PAD]\n[UNK]\n").unwrap();
    check(
        &[&set_file(&specials)],
        &["specials.txt", "only special tokens"],
    );
    check(
        &["task.mask_replace=0.9", "task.random_replace=0.2"],
        &["mask_replace"],
    );
    check(&["data.max_length=2"], &["data.max_length"]);
    // A tokenizer larger than the model's table.
    let small = tmp.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    for f in std::fs::read_dir(&model).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, small.join(f.file_name().unwrap())).unwrap();
    }
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(small.join("config.json")).unwrap()).unwrap();
    cfg["vocab_size"] = 100.into();
    std::fs::write(small.join("config.json"), cfg.to_string()).unwrap();
    let res = run(&pretrain_args(&small, &out, &[]));
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(
        stderr.contains("vocab_size") && stderr.contains("400"),
        "{stderr}"
    );
    // fill-mask on a line without [MASK] names the line.
    let input = tmp.path().join("no-mask.txt");
    std::fs::write(&input, "hello [MASK]\nno mask here\n").unwrap();
    let res = bin(&[
        "fill-mask",
        "--model",
        fixture("models/bert-b").to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(
        !res.status.success() && stderr.contains("no-mask.txt:2"),
        "{stderr}"
    );
    // A config-only directory trains from scratch, but never answers: fill-mask on it
    // names the missing weights.
    let res = bin(&[
        "fill-mask",
        "--model",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(
        !res.status.success() && stderr.contains("model.safetensors"),
        "{stderr}"
    );
}
