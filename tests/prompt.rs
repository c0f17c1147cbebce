//! Prompt-based classification (PET) against transformers' BertForMaskedLM (fixtures:
//! reference/make_prompt_fixtures.py): inputs built as PET builds them (the text cut, never
//! the pattern), label logits at the mask and the loss's gradients on a padded batch;
//! `data.shots` keeps k examples per label; a trained prompt model saves its template and
//! verbalizer and reloads to the same answers; malformed templates, verbalizers, labels and
//! models without an MLM head fail before training.

mod common;

use bert4rs::tasks::prompt::{PromptClassifier, PromptSpec};
use bert4rs::train::prompt::{evaluate_prompt, PromptData};
use bert4rs::train::{PromptTask, RunConfig, Task, Trainer};
use candle_core::{Device, Tensor};
use common::{assert_close, fixture, golden, json};
use std::collections::BTreeMap;
use std::path::Path;

/// Logits of order 10 from a random 2-layer model; gradients summed over a few rows.
const TOL: f32 = 1e-4;

fn spec(m: &serde_json::Value) -> PromptSpec {
    PromptSpec {
        template: m["template"].as_str().unwrap().into(),
        verbalizer: serde_json::from_value(m["verbalizer"].clone()).unwrap(),
        learned_tokens: 0,
    }
}

fn write(path: &Path, text: &str) -> std::path::PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

fn labelled(dir: &Path, m: &serde_json::Value) -> std::path::PathBuf {
    let lines: Vec<String> = (m["texts"].as_array().unwrap().iter())
        .zip(m["labels"].as_array().unwrap())
        .map(|(t, l)| serde_json::json!({"text": t, "label": l}).to_string())
        .collect();
    write(&dir.join("data.jsonl"), &(lines.join("\n") + "\n"))
}

#[test]
fn label_logits_loss_and_gradients_match_transformers() {
    let m = json("prompt/prompt.json");
    let max_len = m["max_length"].as_u64().unwrap() as usize;
    let model =
        PromptClassifier::from_dir(&fixture("models/bert-b"), Some(spec(&m)), true, max_len)
            .unwrap();
    let encs: Vec<_> = (m["texts"].as_array().unwrap().iter())
        .map(|t| model.encode(t.as_str().unwrap()).unwrap())
        .collect();
    for (e, want) in encs.iter().zip(m["input_ids"].as_array().unwrap()) {
        let want: Vec<u32> = serde_json::from_value(want.clone()).unwrap();
        assert_eq!(e.input_ids, want);
    }
    let logits = model.label_logits(&encs, false).unwrap();
    let want: Vec<Vec<f32>> = serde_json::from_value(m["label_logits"].clone()).unwrap();
    let want = Tensor::new(want, &Device::Cpu).unwrap();
    assert_close(&logits, &want, TOL, "label logits");
    let tmp = tempfile::tempdir().unwrap();
    let path = labelled(tmp.path(), &m);
    let ex = bert4rs::data::dataset::read_labelled(&path, &Default::default(), true).unwrap();
    let data = PromptData::new(&model, &path, &ex).unwrap();
    let loss =
        bert4rs::nn::losses::cross_entropy(&logits, &data.labels, &Default::default()).unwrap();
    let want_loss = m["loss"].as_f64().unwrap() as f32;
    assert!((loss.to_scalar::<f32>().unwrap() - want_loss).abs() < TOL);
    let grads = loss.backward().unwrap();
    let g = golden("prompt/prompt.safetensors");
    let vars = model.vars();
    for name in m["grads"].as_array().unwrap() {
        let name = name.as_str().unwrap();
        let (_, var) = (vars.iter())
            .find(|(n, _)| model.mlm().saved_name(n) == name)
            .unwrap_or_else(|| panic!("no parameter {name}"));
        assert_close(grads.get(var.as_tensor()).unwrap(), &g[name], TOL, name);
    }
}

fn config(dir: &Path, train: &Path, extra: &[&str]) -> bert4rs::error::Result<RunConfig> {
    let m = json("prompt/prompt.json");
    let mut sets = vec![
        format!("model={:?}", fixture("models/bert-b").to_str().unwrap()),
        format!("output_dir={:?}", dir.join("out").to_str().unwrap()),
        format!("data.train={:?}", train.to_str().unwrap()),
        "task.kind=\"prompt\"".to_string(),
        format!("task.prompt.template={:?}", m["template"].as_str().unwrap()),
        "task.prompt.verbalizer={neg = \"dog\", pos = \"love\"}".to_string(),
        "data.max_length=12".to_string(),
    ];
    sets.extend(extra.iter().map(|s| s.to_string()));
    RunConfig::load(None, &sets)
}

#[test]
fn shots_keep_that_many_training_examples_per_label_the_same_every_time() {
    let tmp = tempfile::tempdir().unwrap();
    let rows: Vec<String> = (0..20)
        .map(|i| {
            let label = if i % 4 == 0 { "pos" } else { "neg" };
            serde_json::json!({"text": format!("hello world {i}"), "label": label}).to_string()
        })
        .collect();
    let train = write(&tmp.path().join("t.jsonl"), &(rows.join("\n") + "\n"));
    let cfg = config(tmp.path(), &train, &["data.shots=3"]).unwrap();
    let a = PromptTask::new(&cfg).unwrap();
    assert_eq!(a.train_len(), 6);
    let kept = std::fs::read_to_string(cfg.output_dir.join("split/train.jsonl")).unwrap();
    let again = PromptTask::new(&cfg).unwrap();
    assert_eq!(again.train_len(), 6);
    let kept_again = std::fs::read_to_string(cfg.output_dir.join("split/train.jsonl")).unwrap();
    assert_eq!(
        kept, kept_again,
        "the same seed must keep the same examples"
    );
    assert_eq!(kept.matches("\"pos\"").count(), 3);
    let err = config(tmp.path(), &train, &["data.shots=6"])
        .and_then(|c| PromptTask::new(&c))
        .err()
        .expect("6 shots of a label with 5 examples")
        .to_string();
    assert!(err.contains("label `pos` has only 5"), "{err}");
}

#[test]
fn trained_prompt_model_reloads_with_its_template_and_the_same_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let m = json("prompt/prompt.json");
    let train = labelled(tmp.path(), &m);
    let sets = [
        format!("data.dev={:?}", train.to_str().unwrap()),
        "train.epochs=2".into(),
        "train.batch_size=2".into(),
        "optimizer.lr=1e-3".into(),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let cfg = config(tmp.path(), &train, &sets).unwrap();
    let mut trainer = Trainer::new(cfg.clone(), PromptTask::new(&cfg).unwrap(), false).unwrap();
    let summary = trainer.fit().unwrap();
    assert_eq!(summary.steps, 4);
    let best = cfg.output_dir.join("best");
    let reread = PromptClassifier::from_dir(&best, None, false, 12).unwrap();
    assert_eq!(reread.labels(), ["neg", "pos"]);
    let ex = bert4rs::data::dataset::read_labelled(&train, &Default::default(), true).unwrap();
    let data = PromptData::new(&reread, &train, &ex).unwrap();
    let ev = evaluate_prompt(&reread, &data, "dev", 0, 3).unwrap();
    let best_dev = summary.best_dev.unwrap();
    assert!(
        (ev.loss - best_dev.loss).abs() < 1e-5,
        "{} vs {}",
        ev.loss,
        best_dev.loss
    );
    let before =
        PromptClassifier::from_dir(&fixture("models/bert-b"), Some(spec(&m)), false, 12).unwrap();
    let untrained = evaluate_prompt(&before, &data, "dev", 0, 3).unwrap();
    assert!(ev.loss < untrained.loss, "training did not lower the loss");
}

#[test]
fn malformed_prompts_and_models_are_named_before_training() {
    let m = json("prompt/prompt.json");
    let b = fixture("models/bert-b");
    let with = |template: &str, words: &[(&str, &str)]| PromptSpec {
        template: template.into(),
        verbalizer: words
            .iter()
            .map(|(l, w)| (l.to_string(), w.to_string()))
            .collect::<BTreeMap<_, _>>(),
        learned_tokens: 0,
    };
    let two = [("neg", "dog"), ("pos", "love")];
    let cases = [
        (
            b.clone(),
            with("it is [MASK] .", &two),
            "exactly one {text}",
        ),
        (b.clone(), with("{text} [MASK] [MASK]", &two), "found 2"),
        (b.clone(), with("{text} it is .", &two), "found 0"),
        (
            b.clone(),
            with("{text} [MASK]", &[("neg", "unbelievable"), ("pos", "love")]),
            "`unbelievable`",
        ),
        (
            b.clone(),
            with("{text} [MASK]", &[("neg", "love"), ("pos", "love")]),
            "two labels",
        ),
        (
            b.clone(),
            with("{text} [MASK]", &[("pos", "love")]),
            "at least 2",
        ),
        (fixture("models/bert-a"), spec(&m), "no masked-LM head"),
    ];
    for (dir, s, want) in cases {
        let err = PromptClassifier::from_dir(&dir, Some(s.clone()), false, 12)
            .err()
            .unwrap_or_else(|| panic!("{s:?} accepted"))
            .to_string();
        assert!(err.contains(want), "{s:?}: `{err}` does not say `{want}`");
    }
    let err = PromptClassifier::from_dir(&b, Some(spec(&m)), false, 4)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no room for text"), "{err}");
    let tmp = tempfile::tempdir().unwrap();
    let train = write(
        &tmp.path().join("t.jsonl"),
        "{\"text\": \"a\", \"label\": \"pos\"}\n{\"text\": \"b\", \"label\": \"meh\"}\n",
    );
    let err = config(tmp.path(), &train, &[])
        .and_then(|c| PromptTask::new(&c))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("t.jsonl:2") && err.contains("unknown label `meh`"),
        "{err}"
    );
}

/// The learned prompt rows a task draws for `seed` (saved and read back).
fn drawn_prompt_rows(dir: &Path, train: &Path, seed: u64) -> Vec<f32> {
    let seed = format!("seed={seed}");
    let template = "task.prompt.template=\"[P0] {text} [P1] it is [MASK] .\"";
    let extra = [template, "task.prompt.learned_tokens=2", seed.as_str()];
    let task = PromptTask::new(&config(dir, train, &extra).unwrap()).unwrap();
    let out = dir.join(format!("drawn-{seed}"));
    task.model().save_pretrained(&out).unwrap();
    common::weights(&out)["prompt_embeddings.weight"].clone()
}

#[test]
fn learned_prompt_rows_are_drawn_from_the_run_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let train = labelled(tmp.path(), &json("prompt/prompt.json"));
    let first = drawn_prompt_rows(tmp.path(), &train, 3);
    // Another seed drawn in between: the seed, not the thread's history, decides.
    let other = drawn_prompt_rows(tmp.path(), &train, 4);
    assert_eq!(
        first,
        drawn_prompt_rows(tmp.path(), &train, 3),
        "same seed, same rows"
    );
    assert_ne!(first, other, "another seed draws other rows");
}

#[test]
fn learned_prompt_tokens_train_alone_when_the_model_is_frozen() {
    let tmp = tempfile::tempdir().unwrap();
    let m = json("prompt/prompt.json");
    let train = labelled(tmp.path(), &m);
    let cfg = config(
        tmp.path(),
        &train,
        &[
            "task.prompt.template=\"[P0] {text} [P1] it is [MASK] .\"",
            "task.prompt.learned_tokens=2",
            "optimizer.freeze=[\"embeddings\", \"encoder\", \"cls\"]",
            "optimizer.lr=1e-2",
            "train.batch_size=4",
            "train.epochs=1",
        ],
    )
    .unwrap();
    let task = PromptTask::new(&cfg).unwrap();
    let enc = task.model().encode("hello world").unwrap();
    let vocab = 346;
    assert_eq!(
        enc.input_ids[1], vocab,
        "[P0] is the first id after the vocabulary"
    );
    let mut trainer = Trainer::new(cfg.clone(), task, false).unwrap();
    trainer.fit().unwrap();
    let best = cfg.output_dir.join("best");
    let after = common::weights(&best);
    let before = common::weights(&fixture("models/bert-b"));
    let rows = &after["prompt_embeddings.weight"];
    assert_eq!(rows.len(), 2 * 48, "two rows of hidden_size 48");
    for (name, w) in &after {
        if name == "prompt_embeddings.weight" {
            continue;
        }
        assert_eq!(
            Some(w),
            before.get(name),
            "{name} changed with the model frozen"
        );
    }
    let trained = trainer.task().model();
    let reread = PromptClassifier::from_dir(&best, None, false, 12).unwrap();
    let again = reread.encode("hello world").unwrap();
    assert_eq!(
        again.input_ids, enc.input_ids,
        "the saved tokenizer keeps [P0] / [P1]"
    );
    let a = trained.label_logits(&[enc], false).unwrap();
    let b = reread.label_logits(&[again], false).unwrap();
    // The trained model runs the autograd ops, the reloaded one the fused inference kernels.
    assert_close(&a, &b, 1e-5, "reloaded prompt model");
    let fresh =
        PromptClassifier::from_dir(&fixture("models/bert-b"), Some(spec(&m)), false, 12).unwrap();
    let plain = fresh.encode("hello world").unwrap();
    assert!(
        !plain.input_ids.contains(&vocab),
        "no learned tokens without learned_tokens"
    );
}
