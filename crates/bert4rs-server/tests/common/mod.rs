//! Helpers of the server's tests: the library tests' helpers (`tests/common`), an
//! in-process server on a free loopback port, and a JSON client.
#![allow(dead_code, unused_imports)]

#[path = "../../../../tests/common/mod.rs"]
mod shared;

pub use shared::*;

use bert4rs_server::{AppState, ModelSpec, ServeOptions, Shared};
use reqwest::StatusCode;
use serde_json::Value;
use std::path::{Path, PathBuf};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server running inside the test process.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its state (metrics, models).
    pub state: Shared,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<bert4rs::Result<()>>,
}

impl TestServer {
    /// Loads `opts` and serves on a free port.
    pub async fn start(opts: ServeOptions) -> TestServer {
        let state = AppState::load(opts).expect("the test's models load");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(bert4rs_server::serve(state.clone(), listener, shutdown));
        TestServer {
            url,
            state,
            stop: Some(stop),
            task,
        }
    }

    /// The URL of `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Asks for a graceful shutdown and waits until the server has stopped.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.await.unwrap().unwrap();
    }

    /// Sends the shutdown signal without waiting.
    pub fn signal_stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    /// Waits for the server task after [`Self::signal_stop`].
    pub async fn join(self) {
        self.task.await.unwrap().unwrap();
    }
}

/// Options serving `models` (`(name, dir)`), with TEI's defaults otherwise.
pub fn options(models: &[(&str, &Path)]) -> ServeOptions {
    ServeOptions {
        models: (models.iter())
            .map(|(n, d)| ModelSpec {
                name: n.to_string(),
                dir: d.to_path_buf(),
            })
            .collect(),
        ..Default::default()
    }
}

/// POSTs `body` as JSON; the status and the JSON answer (`Null` when not JSON).
pub async fn post(client: &reqwest::Client, url: &str, body: &Value) -> (StatusCode, Value) {
    let r = client.post(url).json(body).send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The rows of a `[[f32]]` answer.
pub fn rows(v: &Value) -> Vec<Vec<f32>> {
    serde_json::from_value(v.clone()).expect("a list of vectors")
}

/// Max |a - b| over two equally shaped lists of vectors.
pub fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len(), "row count");
    let mut m = 0f32;
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.len(), y.len(), "vector length");
        for (p, q) in x.iter().zip(y) {
            m = m.max((p - q).abs());
        }
    }
    m
}

/// `v / |v|`.
pub fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter().map(|x| x / n).collect()
}

/// Texts of mixed lengths (1 to ~`max_words` words), deterministic in `seed`.
pub fn mixed_texts(n: usize, max_words: usize, seed: u64) -> Vec<String> {
    let words = [
        "the", "cat", "sat", "on", "a", "mat", "while", "rain", "fell", "over", "quiet", "hills",
        "and", "nobody", "noticed", "it", "bright", "music", "played", "far", "away",
    ];
    let mut rng = bert4rs::rng::Rng::new(seed);
    (0..n)
        .map(|i| {
            let len = 1 + rng.below(max_words);
            let mut t: Vec<&str> = (0..len).map(|_| words[rng.below(words.len())]).collect();
            t.push(if i % 2 == 0 { "." } else { "!" });
            t.join(" ")
        })
        .collect()
}

/// A classifier trained for a few steps on `good`/`bad` texts (from the `bert-a` fixture).
pub fn train_classifier(dir: &Path) -> PathBuf {
    train_classifier_with(dir, "cls", &[])
}

/// [`train_classifier`] into `dir/name` with more config overrides.
pub fn train_classifier_with(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let rows: Vec<String> = (0..24)
        .flat_map(|i| {
            [("good", "pos"), ("bad", "neg")].map(|(w, l)| {
                serde_json::json!({"text": format!("{w} {w} {i}"), "label": l}).to_string()
            })
        })
        .collect();
    let data = dir.join("cls.jsonl");
    std::fs::write(&data, rows.join("\n") + "\n").unwrap();
    let mut sets = vec![
        format!("model={:?}", fixture("models/bert-a").to_str().unwrap()),
        format!("output_dir={:?}", dir.join(name).to_str().unwrap()),
        format!("data.train={:?}", data.to_str().unwrap()),
        format!("data.dev={:?}", data.to_str().unwrap()),
        "train.epochs=1".into(),
        "train.batch_size=8".into(),
        "data.max_length=16".into(),
    ];
    sets.extend(extra.iter().map(|s| s.to_string()));
    run_training(&sets)
}

/// A token classifier (PER/LOC) trained for a few steps (from the `tiny-cls` fixture).
pub fn train_tagger(dir: &Path) -> PathBuf {
    let mut rng = bert4rs::rng::Rng::new(0);
    let (names, places) = (["john", "mary"], ["berlin", "paris"]);
    let other = ["the", "went", "to", "a", "dog"];
    let rows: Vec<String> = (0..48)
        .map(|_| {
            let (mut words, mut tags) = (Vec::new(), Vec::new());
            for _ in 0..3 + rng.below(5) {
                let (w, t) = match rng.below(4) {
                    0 => (names[rng.below(2)], "B-PER"),
                    1 => (places[rng.below(2)], "B-LOC"),
                    _ => (other[rng.below(5)], "O"),
                };
                words.push(w);
                tags.push(t);
            }
            serde_json::json!({"tokens": words, "tags": tags}).to_string()
        })
        .collect();
    let data = dir.join("ner.jsonl");
    std::fs::write(&data, rows.join("\n") + "\n").unwrap();
    run_training(&[
        format!("model={:?}", fixture("train/tiny-cls").to_str().unwrap()),
        format!("output_dir={:?}", dir.join("ner").to_str().unwrap()),
        format!("data.train={:?}", data.to_str().unwrap()),
        format!("data.dev={:?}", data.to_str().unwrap()),
        "task.kind=\"token_classification\"".into(),
        "optimizer.lr=5e-3".into(),
        "train.epochs=1".into(),
        "train.batch_size=16".into(),
    ])
}

fn run_training(sets: &[String]) -> PathBuf {
    let cfg = bert4rs::train::RunConfig::load(None, sets).unwrap();
    let summary = bert4rs::train::run(cfg, false).unwrap();
    summary.best_dir
}

/// A random GPT-2 fixture with GPT-2's byte-level BPE beside it, as a model directory.
pub fn gpt2_with_tokenizer() -> tempfile::TempDir {
    let dir = gpt2_fixture_dir("gpt2-c");
    let bpe = asset("gpt2-bpe");
    for f in ["vocab.json", "merges.txt"] {
        std::fs::copy(bpe.join(f), dir.path().join(f)).unwrap();
    }
    dir
}
