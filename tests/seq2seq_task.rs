//! `task.kind = "seq2seq"`: ROUGE-L equals Google's `rouge-score` (fixture:
//! reference/make_rouge_fixtures.py); a bert2bert warm start writes the tensors HF's
//! `from_encoder_decoder_pretrained` + `save_pretrained` write, with the BERT weights in
//! place; training on the engine learns a copy task (dev ROUGE-L rises, the best model
//! reloads and generates what the report says); malformed data and settings fail before
//! training, naming the file and line or the setting.

mod common;

use bert4rs::generate::seq2seq::generate_seq2seq;
use bert4rs::models::encoder_decoder::{EncoderDecoderModel, Seq2SeqIds};
use bert4rs::train::generation_metrics::{generation_scores, lead_sentence, rouge_l};
use bert4rs::train::{RunConfig, Seq2SeqTask, Split, Task, Trainer};
use candle_core::Device;
use common::{fixture, json, weights};
use std::path::{Path, PathBuf};

#[test]
fn rouge_l_matches_the_rouge_score_package() {
    for case in json("seq2seq/rouge.json").as_array().unwrap() {
        let (p, r) = (
            case["prediction"].as_str().unwrap(),
            case["reference"].as_str().unwrap(),
        );
        let got = rouge_l(p, r);
        let want = ["precision", "recall", "fmeasure"].map(|k| case[k].as_f64().unwrap());
        for (g, w) in [got.0, got.1, got.2].iter().zip(want) {
            assert!(
                (g - w).abs() < 1e-12,
                "{p:?} vs {r:?}: {got:?}, want {want:?}"
            );
        }
    }
}

#[test]
fn exact_match_ignores_case_and_punctuation_spacing_only() {
    let preds = ["re : [ ilug ] sun solaris..", "sun solaris"].map(String::from);
    let refs = ["Re: [ILUG] Sun Solaris..", "Sun Solaris 2"].map(String::from);
    let (rouge, exact) = generation_scores(&preds, &refs);
    assert_eq!(exact, 0.5);
    assert!((rouge - (1.0 + 0.8) / 2.0).abs() < 1e-12, "{rouge}");
}

#[test]
fn lead_baseline_is_the_first_sentence_cut_to_a_word_budget() {
    assert_eq!(lead_sentence("Hi all. Second one here.", 12), "Hi all.");
    assert_eq!(lead_sentence("one two three four", 2), "one two");
    assert_eq!(lead_sentence("", 5), "");
}

#[test]
fn warm_start_writes_hf_names_and_keeps_the_bert_weights() {
    let bert = fixture("models/bert-a");
    let ids = Seq2SeqIds {
        decoder_start_token_id: 2,
        pad_token_id: 0,
        eos_token_id: 3,
    };
    let m = EncoderDecoderModel::warm_start(&bert, &bert, ids, &Device::Cpu, true).unwrap();
    let dir = tempfile::tempdir().unwrap();
    m.save_pretrained(dir.path()).unwrap();
    let saved = weights(dir.path());
    let mut names: Vec<&String> = saved.keys().collect();
    names.sort();
    let want: Vec<String> = serde_json::from_value(json("seq2seq/warm_start_keys.json")).unwrap();
    assert_eq!(names, want.iter().collect::<Vec<_>>());
    let orig = weights(&bert);
    for (k, v) in &orig {
        assert_eq!(&saved[&format!("encoder.{k}")], v, "encoder.{k}");
        if !k.starts_with("pooler.") {
            assert_eq!(&saved[&format!("decoder.bert.{k}")], v, "decoder.bert.{k}");
        }
    }
    let q = &saved["decoder.bert.encoder.layer.0.crossattention.self.query.weight"];
    assert!(q.iter().any(|x| *x != 0.0), "cross-attention initialised");
    assert!(saved["decoder.cls.predictions.bias"]
        .iter()
        .all(|x| *x == 0.0));
}

/// Sources of 3–6 ordinary words of the fixture vocabulary; the target is the first two.
fn copy_data(dir: &Path, n: usize, seed: usize) -> PathBuf {
    let vocab = std::fs::read_to_string(fixture("seq2seq/model/vocab.txt")).unwrap();
    let words: Vec<&str> = vocab
        .lines()
        .filter(|w| w.len() > 2 && w.chars().all(|c| c.is_ascii_lowercase()))
        .collect();
    let mut lines = String::new();
    for i in 0..n {
        let len = 3 + (i * 7 + seed) % 4;
        let text: Vec<&str> = (0..len)
            .map(|j| words[(i * 31 + j * 17 + seed * 13) % words.len()])
            .collect();
        let row = serde_json::json!({"text": text.join(" "), "summary": text[..2].join(" ")});
        lines.push_str(&row.to_string());
        lines.push('\n');
    }
    let p = dir.join(format!("copy{seed}.jsonl"));
    std::fs::write(&p, lines).unwrap();
    p
}

/// The fixture bert2bert's config and tokenizer without weights (a new model, initialised
/// as HF does with `initializer_range` 0.02), dropout off.
fn new_model(dir: &Path) -> PathBuf {
    let out = dir.join("new");
    std::fs::create_dir_all(&out).unwrap();
    for f in ["vocab.txt", "tokenizer_config.json"] {
        std::fs::copy(fixture("seq2seq/model").join(f), out.join(f)).unwrap();
    }
    let text = std::fs::read_to_string(fixture("seq2seq/model/config.json")).unwrap();
    let mut cfg: serde_json::Value = serde_json::from_str(&text).unwrap();
    for part in ["encoder", "decoder"] {
        cfg[part]["initializer_range"] = 0.02.into();
        cfg[part]["hidden_dropout_prob"] = 0.0.into();
        cfg[part]["attention_probs_dropout_prob"] = 0.0.into();
    }
    std::fs::write(out.join("config.json"), cfg.to_string()).unwrap();
    out
}

fn config(
    dir: &Path,
    train: &Path,
    dev: &Path,
    extra: &[&str],
) -> bert4rs::error::Result<RunConfig> {
    let mut sets = vec![
        format!("model={:?}", new_model(dir).to_str().unwrap()),
        format!("output_dir={:?}", dir.join("out").to_str().unwrap()),
        format!("data.train={:?}", train.to_str().unwrap()),
        format!("data.dev={:?}", dev.to_str().unwrap()),
        format!("data.test={:?}", dev.to_str().unwrap()),
        "data.label_field=\"summary\"".into(),
        "task.kind=\"seq2seq\"".into(),
        "task.seq2seq.max_target_length=4".into(),
    ];
    sets.extend(extra.iter().map(|s| s.to_string()));
    RunConfig::load(None, &sets)
}

/// Every tensor of the model a task builds for `seed` (a new model from a config alone).
fn drawn_model(dir: &Path, seed: u64) -> std::collections::HashMap<String, Vec<f32>> {
    let data = copy_data(dir, 4, 0);
    let cfg = config(dir, &data, &data, &[&format!("seed={seed}")]).unwrap();
    let task = Seq2SeqTask::new(&cfg).unwrap();
    let out = dir.join(format!("drawn-{seed}"));
    task.model().save_pretrained(&out).unwrap();
    weights(&out)
}

#[test]
fn a_new_model_is_drawn_from_the_run_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let first = drawn_model(tmp.path(), 3);
    let other = drawn_model(tmp.path(), 4);
    assert!(
        first == drawn_model(tmp.path(), 3),
        "same seed, same weights"
    );
    let q = "decoder.bert.encoder.layer.0.crossattention.self.query.weight";
    assert_ne!(first[q], other[q], "another seed draws other weights");
}

#[test]
fn training_learns_to_copy_and_the_best_model_generates_the_reported_text() {
    let tmp = tempfile::tempdir().unwrap();
    let (train, dev) = (copy_data(tmp.path(), 256, 0), copy_data(tmp.path(), 16, 1));
    let cfg = config(
        tmp.path(),
        &train,
        &dev,
        &[
            "optimizer.lr=3e-3",
            "train.epochs=40",
            "train.batch_size=32",
            "train.eval_every=80",
            "schedule.warmup_ratio=0.05",
        ],
    )
    .unwrap();
    let task = Seq2SeqTask::new(&cfg).unwrap();
    let before = task.evaluate(Split::Dev, 0, 8).unwrap().unwrap();
    let mut trainer = Trainer::new(cfg.clone(), task, false).unwrap();
    let summary = trainer.fit().unwrap();
    let best = summary.best_dev.unwrap();
    let (r0, r1) = (before.scores["rouge_l"], best.scores["rouge_l"]);
    assert!(r1 > r0 + 0.5 && r1 > 0.7, "dev ROUGE-L {r0:.3} → {r1:.3}");
    assert!(
        best.loss < before.loss / 3.0,
        "dev loss {} → {}",
        before.loss,
        best.loss
    );
    // The saved best model reloads and generates the test split's reported text.
    let rows = std::fs::read_to_string(cfg.output_dir.join("test_generations.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(rows.lines().next().unwrap()).unwrap();
    let m = EncoderDecoderModel::from_dir(&summary.best_dir, &Device::Cpu, false).unwrap();
    let tok = bert4rs::tokenize::Tokenizer::from_dir(&summary.best_dir).unwrap();
    let encs = tok
        .encode_batch(
            &[bert4rs::tokenize::TextInput::single(
                first["source"].as_str().unwrap(),
            )],
            &Default::default(),
        )
        .unwrap();
    let input = bert4rs::data::batch::to_encoder_input(&encs, &Device::Cpu).unwrap();
    let gen = cfg.task.seq2seq.generation();
    let out = generate_seq2seq(&m, &input, &gen).unwrap();
    let text = tok.decode_with(&out[0].ids[1..], true).unwrap();
    assert_eq!(text, first["generated"].as_str().unwrap());
}

#[test]
fn bad_data_and_settings_fail_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let train = copy_data(tmp.path(), 8, 0);
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"text\": \"a b c\", \"summary\": \"a\"}\n{\"text\": \"d e\", \"summary\": \"\"}\n",
    )
    .unwrap();
    let err = |cfg: RunConfig| Seq2SeqTask::new(&cfg).err().unwrap().to_string();
    let e = err(config(tmp.path(), &train, &bad, &[]).unwrap());
    assert!(
        e.contains("bad.jsonl:2") && e.contains("empty target"),
        "{e}"
    );
    let e = err(config(
        tmp.path(),
        &train,
        &train,
        &["task.seq2seq.max_target_length=0"],
    )
    .unwrap());
    assert!(e.contains("max_target_length"), "{e}");
    let nolabel = tmp.path().join("nolabel.jsonl");
    std::fs::write(&nolabel, "{\"text\": \"a b c\"}\n").unwrap();
    let e = err(config(tmp.path(), &nolabel, &train, &[]).unwrap());
    assert!(e.contains("nolabel.jsonl") && e.contains("summary"), "{e}");
}
