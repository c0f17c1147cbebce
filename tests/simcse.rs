//! SimCSE against PyTorch (fixtures: reference/make_simcse_fixtures.py, the SimCSE code's
//! formula): the contrastive loss and its gradients with and without hard negatives; the
//! task's loss and encoder gradients on a tiny BERT with mean and CLS pooling (all rows
//! padded together, as one batch); unsupervised batches give each text two dropout masks;
//! a trained model saves as a sentence-transformers directory that `embed` reads back the
//! same way; malformed data and settings fail before training with the file and line.

mod common;

use bert4rs::nn::contrastive::simcse_loss;
use bert4rs::tasks::embed::SentenceEncoder;
use bert4rs::train::{RunConfig, SimcseTask, Split, Task, Trainer};
use candle_core::{Tensor, Var};
use common::{assert_close, fixture, golden, json, max_abs_diff};
use std::path::Path;

/// Cosines of f32 vectors divided by τ = 0.05 amplify rounding twentyfold: 1e-5 on losses
/// and gradients of order 1.
const TOL: f32 = 1e-5;

#[test]
fn simcse_loss_and_gradients_match_torch() {
    let g = golden("simcse/loss.safetensors");
    for (case, keys) in [
        ("pairs", &["z1", "z2"][..]),
        ("hard", &["z1", "z2", "z3"][..]),
    ] {
        let vars: Vec<Var> = keys
            .iter()
            .map(|k| Var::from_tensor(&g[*k]).unwrap())
            .collect();
        let z3 = vars.get(2).map(|v| v.as_tensor());
        let loss = simcse_loss(vars[0].as_tensor(), vars[1].as_tensor(), z3, 0.05).unwrap();
        let want = &g[&format!("{case}.loss")];
        assert_close(
            &loss.reshape(1).unwrap(),
            want,
            TOL,
            &format!("{case} loss"),
        );
        let grads = loss.backward().unwrap();
        for (k, v) in keys.iter().zip(&vars) {
            let got = grads.get(v.as_tensor()).unwrap();
            assert_close(
                got,
                &g[&format!("{case}.d{k}")],
                TOL,
                &format!("{case} d{k}"),
            );
        }
    }
}

fn write(path: &Path, text: &str) -> std::path::PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

fn config(dir: &Path, train: &Path, extra: &[&str]) -> bert4rs::error::Result<RunConfig> {
    let mut sets = vec![
        format!("model={:?}", fixture("models/bert-a").to_str().unwrap()),
        format!("output_dir={:?}", dir.join("out").to_str().unwrap()),
        format!("data.train={:?}", train.to_str().unwrap()),
        "task.kind=\"simcse\"".to_string(),
    ];
    sets.extend(extra.iter().map(|s| s.to_string()));
    RunConfig::load(None, &sets)
}

fn triples_file(dir: &Path) -> std::path::PathBuf {
    let m = json("simcse/model.json");
    let lines: Vec<String> = m["triples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| serde_json::json!({"text": t[0], "text_pair": t[1], "hard_neg": t[2]}).to_string())
        .collect();
    write(&dir.join("triples.jsonl"), &(lines.join("\n") + "\n"))
}

#[test]
fn supervised_task_loss_and_gradients_match_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    let train = triples_file(tmp.path());
    let m = json("simcse/model.json");
    let g = golden("simcse/model.safetensors");
    for pooling in ["mean", "cls"] {
        let cfg = config(
            tmp.path(),
            &train,
            &[
                "data.text_pair_field=\"text_pair\"",
                "task.simcse.hard_negative_field=\"hard_neg\"",
                &format!("task.pooling=\"{pooling}\""),
            ],
        )
        .unwrap();
        let task = SimcseTask::new(&cfg).unwrap();
        let batch = task.batch(&[0, 1, 2, 3]).unwrap();
        assert_eq!((batch.rows, batch.groups), (4, 3));
        let loss = task.forward(&batch, false).unwrap().loss;
        let want = m[format!("{pooling}.loss")].as_f64().unwrap() as f32;
        let got = loss.to_scalar::<f32>().unwrap();
        assert!(
            (got - want).abs() < TOL,
            "{pooling}: loss {got} vs torch {want}"
        );
        let grads = loss.backward().unwrap();
        let params = task.params();
        for name in m["grads"].as_array().unwrap() {
            let name = name.as_str().unwrap();
            let (_, var) = params.iter().find(|(n, _)| n == name).unwrap();
            let got = grads.get(var.as_tensor()).unwrap();
            assert_close(got, &g[&format!("{pooling}.{name}")], TOL, name);
        }
    }
}

#[test]
fn unsupervised_batches_pass_each_text_twice_under_different_dropout() {
    let tmp = tempfile::tempdir().unwrap();
    let train = write(
        &tmp.path().join("texts.txt"),
        "hello world\nthe quick brown fox\nhow are you today\n",
    );
    let cfg = config(tmp.path(), &train, &["task.pooling=\"mean\""]).unwrap();
    let task = SimcseTask::new(&cfg).unwrap();
    let batch = task.batch(&[2, 0]).unwrap();
    assert_eq!((batch.rows, batch.groups), (2, 2));
    let copies = |z: Tensor| {
        max_abs_diff(
            &z.narrow(0, 0, 2).unwrap(),
            &z.narrow(0, 2, 2).unwrap(),
            "copies",
        )
    };
    let diff = copies(task.encoder().pool(&batch.input, true).unwrap());
    assert!(
        diff > 1e-4,
        "dropout made the two copies equal (max diff {diff})"
    );
    let same = copies(task.encoder().pool(&batch.input, false).unwrap());
    assert_eq!(same, 0.0, "without dropout the copies must be identical");
}

#[test]
fn trained_model_saves_as_a_sentence_transformers_directory_that_embeds_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let train = write(
        &tmp.path().join("texts.txt"),
        "hello world\nthe quick brown fox\nhow are you today\ni love to play\n",
    );
    let dev = write(
        &tmp.path().join("dev.jsonl"),
        "{\"text\": \"hello world\", \"text_pair\": \"hello the world\", \"label\": 4.5}\n\
         {\"text\": \"quick fox\", \"text_pair\": \"how are you\", \"label\": 0.5}\n\
         {\"text\": \"i love to play\", \"text_pair\": \"play and love\", \"label\": 3.0}\n",
    );
    let cfg = config(
        tmp.path(),
        &train,
        &[
            &format!("data.dev={:?}", dev.to_str().unwrap()),
            "task.pooling=\"max\"",
            "train.batch_size=2",
            "train.epochs=1",
            "optimizer.lr=1e-3",
        ],
    )
    .unwrap();
    let task = SimcseTask::new(&cfg).unwrap();
    let before = task.evaluate(Split::Dev, 0, 8).unwrap().unwrap();
    for key in ["spearman", "alignment", "uniformity"] {
        assert!(before.scores[key].is_finite(), "{key} missing: {before:?}");
    }
    let mut trainer = Trainer::new(cfg.clone(), task, false).unwrap();
    let summary = trainer.fit().unwrap();
    assert_eq!(summary.steps, 2);
    let best = cfg.output_dir.join("best");
    for f in [
        "modules.json",
        "1_Pooling/config.json",
        "vocab.txt",
        "model.safetensors",
    ] {
        assert!(best.join(f).is_file(), "{f} not saved");
    }
    let pooling: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(best.join("1_Pooling/config.json")).unwrap())
            .unwrap();
    assert_eq!(pooling["pooling_mode_max_tokens"], true);
    let reread = SentenceEncoder::from_dir(&best).unwrap();
    assert_eq!(reread.pooling().to_string(), "max");
    let texts = ["hello world", "the lazy dog is over the fox"];
    let got = reread.embed(&texts).unwrap();
    let trained = trainer.task().encoder().embed(&texts).unwrap();
    let t = |v: &Vec<Vec<f32>>| Tensor::new(v.concat(), &candle_core::Device::Cpu).unwrap();
    assert_close(&t(&got), &t(&trained), 0.0, "saved vs in-memory embeddings");
    let base = SentenceEncoder::with_pooling(
        &fixture("models/bert-a"),
        bert4rs::nn::Pooling::Max,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    assert_ne!(base.embed(&texts).unwrap(), got, "training changed nothing");
}

fn new_task_error(file: &str, text: &str, extra: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let train = write(&tmp.path().join(file), text);
    match config(tmp.path(), &train, extra).and_then(|c| SimcseTask::new(&c)) {
        Ok(_) => panic!("{file} with {extra:?} was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn malformed_data_and_settings_are_named_before_training() {
    let pairs = ["data.text_pair_field=\"text_pair\""];
    let cases: Vec<(&str, &str, Vec<&str>, &str)> = vec![
        ("t.txt", "one\n\nthree\n", vec![], "t.txt:2:"),
        ("t.txt", "only one\n", vec![], "at least 2"),
        ("t.jsonl", "{\"text\": \"a\", \"text_pair\": \"b\"}\n{\"text\": \"c\"}\n", pairs.to_vec(), "t.jsonl:2:"),
        (
            "t.jsonl",
            "{\"text\": \"a\", \"text_pair\": \"b\"}\n{\"text\": \"c\", \"text_pair\": \"d\"}\n",
            vec!["task.simcse.hard_negative_field=\"neg\""],
            "text_pair_field",
        ),
        (
            "t.jsonl",
            "{\"text\": \"a\", \"text_pair\": \"b\", \"neg\": \"x\"}\n{\"text\": \"c\", \"text_pair\": \"d\"}\n",
            vec![pairs[0], "task.simcse.hard_negative_field=\"neg\""],
            "neg",
        ),
        ("t.txt", "a\nb\n", vec!["task.pooling=\"first_last_avg\""], "cls, mean or max"),
        ("t.txt", "a\nb\n", vec!["task.simcse.temperature=0"], "temperature"),
    ];
    for (file, text, extra, want) in cases {
        let err = new_task_error(file, text, &extra);
        assert!(
            err.contains(want),
            "{extra:?}: `{err}` does not name `{want}`"
        );
    }
}

#[test]
fn dev_pairs_must_all_be_scored_with_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let train = write(&tmp.path().join("t.txt"), "a b\nc d\n");
    for (dev, want) in [
        ("{\"text\": \"a\", \"text_pair\": \"b\", \"label\": 1}\n{\"text\": \"c\", \"text_pair\": \"d\"}\n", "score all or none"),
        ("{\"text\": \"a\", \"text_pair\": \"b\", \"label\": \"high\"}\n", "must be a number"),
        ("{\"text\": \"a\"}\n", "dev.jsonl:1:"),
    ] {
        let d = write(&tmp.path().join("dev.jsonl"), dev);
        let cfg = config(tmp.path(), &train, &[&format!("data.dev={:?}", d.to_str().unwrap())]).unwrap();
        let err = SimcseTask::new(&cfg).err().expect("bad dev file accepted").to_string();
        assert!(err.contains(want), "`{err}` does not say `{want}`");
    }
}
