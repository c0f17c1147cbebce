//! Masked LM with a sentence-pair objective (`task.next_sentence = "nsp" | "sop"`) against
//! transformers' `BertForPreTraining` (fixtures by `reference/make_nsp_fixtures.py` on the
//! random checkpoint `models/bert-b`): prediction and seq-relationship logits of a padded
//! batch of pairs, and one AdamW step on masked-LM + next-sentence loss; then `bert4rs
//! pretrain` with SOP end to end (saved as `BertForPreTraining`, read back by `fill-mask`)
//! and its bad settings.

mod common;

use bert4rs::data::masking::{Masked, IGNORE};
use bert4rs::data::pretrain::Pair;
use bert4rs::models::bert::EncoderInput;
use bert4rs::tasks::masked_lm::MaskedLm;
use bert4rs::train::mlm::MlmBatch;
use bert4rs::train::{MlmTask, Trainer};
use candle_core::{DType, Device, Tensor};
use common::{
    assert_close, fixture, golden, json, pretrain_args, run, run_config, scale, step_model,
    tiny_bert, weights,
};
use std::collections::HashMap;

fn pair_input(g: &HashMap<String, Tensor>) -> EncoderInput {
    let u32_of = |k: &str| g[k].to_dtype(DType::U32).unwrap();
    EncoderInput {
        input_ids: u32_of("input_ids"),
        token_type_ids: u32_of("token_type_ids"),
        attention_mask: g["attention_mask"].to_dtype(DType::F32).unwrap(),
    }
}

/// Logits reach |x| ≈ 30 on this scrambled checkpoint: 1e-5 relative to that scale.
#[test]
fn pair_logits_match_bert_for_pretraining() {
    let g = golden("mlm/nsp.safetensors");
    let model = MaskedLm::for_pretraining(&fixture("models/bert-b"), &Device::Cpu, false).unwrap();
    assert!(model.has_next_sentence_head());
    let input = pair_input(&g);
    let (b, t) = input.input_ids.dims2().unwrap();
    let all = Tensor::arange(0u32, (b * t) as u32, &Device::Cpu).unwrap();
    let (logits, pairs) = model.forward_pretraining(&input, &all, false).unwrap();
    let want = &g["prediction_logits"];
    let logits = logits.reshape(want.shape()).unwrap();
    // Padded positions are not compared: HF computes them too, but nothing reads them.
    let mask = g["attention_mask"].to_vec2::<i64>().unwrap();
    for (r, row) in mask.iter().enumerate() {
        let n = row.iter().filter(|&&m| m == 1).count();
        let ours = logits.get(r).unwrap().narrow(0, 0, n).unwrap();
        let theirs = want.get(r).unwrap().narrow(0, 0, n).unwrap();
        assert_close(&ours, &theirs, 1e-5 * scale(&theirs), "prediction_logits");
    }
    let want = &g["seq_relationship_logits"];
    assert_close(
        &pairs.expect("a next-sentence head"),
        want,
        1e-5 * scale(want),
        "seq_relationship_logits",
    );
}

/// The step fixture's pairs: masked rows and, from `token_type_ids`, where B starts.
fn step_batch(g: &HashMap<String, Tensor>) -> MlmBatch {
    let ids = g["step.input_ids"].to_vec2::<i64>().unwrap();
    let labels = g["step.labels"].to_vec2::<i64>().unwrap();
    let mask = g["attention_mask"].to_vec2::<i64>().unwrap();
    let types = g["token_type_ids"].to_vec2::<i64>().unwrap();
    let next = g["step.next_sentence_label"].to_vec1::<i64>().unwrap();
    let mut masked = Vec::new();
    let mut pairs = Vec::new();
    for r in 0..ids.len() {
        let n = mask[r].iter().filter(|&&m| m == 1).count();
        masked.push(Masked {
            input_ids: ids[r][..n].iter().map(|&i| i as u32).collect(),
            labels: labels[r][..n].to_vec(),
        });
        pairs.push(Pair {
            b_start: types[r][..n].iter().position(|&t| t == 1).unwrap(),
            label: next[r] as u32,
        });
    }
    assert!(masked.iter().flat_map(|m| &m.labels).any(|&l| l != IGNORE));
    let batch = MlmBatch::with_pairs(&masked, &pairs, 0, &Device::Cpu).unwrap();
    let ours = batch.input.token_type_ids.to_dtype(DType::I64).unwrap();
    let theirs = g["token_type_ids"].to_vec2::<i64>().unwrap();
    for (r, row) in ours.to_vec2::<i64>().unwrap().iter().enumerate() {
        let n = masked[r].input_ids.len();
        assert_eq!(row[..n], theirs[r][..n], "token types of row {r}");
    }
    batch
}

#[test]
fn one_pair_step_matches_bert_for_pretraining() {
    let meta = json("mlm/nsp.json");
    let g = golden("mlm/nsp.safetensors");
    let tmp = tempfile::tempdir().unwrap();
    let train = tmp.path().join("train.txt");
    std::fs::write(
        &train,
        "hello world. the quick brown fox!\ntoday is a good day.\n",
    )
    .unwrap();
    let cfg = run_config(
        &step_model(tmp.path()),
        &tmp.path().join("run"),
        &train,
        &[
            "task.next_sentence=\"nsp\"",
            "optimizer.lr=1e-2",
            "optimizer.weight_decay=0.01",
            "schedule.name=\"constant\"",
            "train.max_grad_norm=1000.0",
            "optimizer.eps=1e-3",
        ],
    );
    let task = MlmTask::new(&cfg).unwrap();
    let mut trainer = Trainer::new(cfg, task, false).unwrap();
    let stats = trainer.step(&[step_batch(&g)]).unwrap();
    common::assert_step_stats(&stats, &meta["step"]);
    let ours: HashMap<String, Tensor> =
        trainer.task().model().named_tensors().into_iter().collect();
    let checked = common::assert_updated(&ours, &g);
    assert_eq!(checked, 78, "every BertForPreTraining parameter compared");
    assert_eq!(
        ours.len(),
        78,
        "pooler and seq_relationship, no untied decoder"
    );
}

/// A new model trained with SOP saves as `BertForPreTraining` with the pair head and the
/// pooler, reports the pair accuracy, and `fill-mask` reads the directory back.
#[test]
fn pretrain_with_sentence_order_saves_bert_for_pretraining() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_bert(tmp.path());
    let out = tmp.path().join("sop");
    let res = run(&pretrain_args(
        &model,
        &out,
        &["train.epochs=2", "task.next_sentence=\"sop\""],
    ));
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{stderr}");
    assert!(stderr.contains("sentence pairs (sop)"), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&res.stdout).unwrap();
    let acc = summary["best_dev"]["scores"]["next_sentence_accuracy"]
        .as_f64()
        .expect("dev next_sentence_accuracy");
    assert!((0.0..=1.0).contains(&acc));
    let scores = &summary["best_dev"]["scores"];
    let (mlm, pair) = (
        scores["mlm_loss"].as_f64().unwrap(),
        scores["next_sentence_loss"].as_f64().unwrap(),
    );
    let loss = summary["best_dev"]["loss"].as_f64().unwrap();
    assert!(
        (loss - (mlm + pair)).abs() < 1e-6 * loss,
        "loss = mlm + pair"
    );
    let best = out.join("best");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(best.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["architectures"][0], "BertForPreTraining");
    let w = weights(&best);
    for k in [
        "cls.seq_relationship.weight",
        "cls.seq_relationship.bias",
        "bert.pooler.dense.weight",
        "cls.predictions.bias",
    ] {
        assert!(w.contains_key(k), "saved {k}");
    }
    assert_eq!(w["cls.seq_relationship.weight"].len(), 2 * 32);

    let input = tmp.path().join("masked.txt");
    std::fs::write(&input, "nesha [MASK] 世乙\n").unwrap();
    let res = run(&[
        "fill-mask".into(),
        "--model".into(),
        best.to_str().unwrap().into(),
        "--input".into(),
        input.to_str().unwrap().into(),
    ]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let line: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&res.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(line["masks"][0].as_array().unwrap().len(), 5);
}

#[test]
fn bad_pair_settings_are_named_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_bert(tmp.path());
    let out = tmp.path().join("run");
    let check = |extra: &[&str], needles: &[&str]| {
        let res = run(&pretrain_args(&model, &out, extra));
        let stderr = String::from_utf8_lossy(&res.stderr);
        assert!(!res.status.success(), "should fail: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        for n in needles {
            assert!(stderr.contains(n), "error lacks `{n}`: {stderr}");
        }
        assert!(!out.join("checkpoint").exists(), "nothing trained");
    };
    check(&["task.next_sentence=\"nxp\""], &["next_sentence", "nsp"]);
    check(
        &[
            "task.next_sentence=\"nsp\"",
            "task.short_seq_probability=1.5",
        ],
        &["short_seq_probability", "[0, 1]"],
    );
    check(
        &["task.next_sentence=\"sop\"", "data.max_length=4"],
        &["max_length", "≥ 5"],
    );
    let mut classify = pretrain_args(&model, &out, &["task.next_sentence=\"nsp\""]);
    classify[0] = "train".into();
    classify.extend(["--set".into(), "task.kind=\"classify\"".into()]);
    let res = run(&classify);
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success());
    assert!(
        stderr.contains("task.next_sentence applies to kind = \"mlm\""),
        "{stderr}"
    );
}
