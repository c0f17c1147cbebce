//! `/predict`, `/tag` and `/generate` answer as the library's own `TextClassifier`,
//! `EntityTagger` and `generate` do on the same inputs (the library is checked against
//! transformers elsewhere), batched or alone, with several models behind one server.

mod common;

use bert4rs::generate::{self, GenerationConfig, TextGenerator};
use bert4rs::train::predict::{EntityTagger, Prediction, TextClassifier};
use common::*;
use serde_json::{json, Value};

/// Same labels in the same order, scores within 1e-6 (a batch sums in another order).
fn assert_same_scores(a: &Value, b: &Value) {
    let (a, b) = (a.as_array().unwrap(), b.as_array().unwrap());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x["label"], y["label"], "alone = in the batch");
        let d = x["score"].as_f64().unwrap() - y["score"].as_f64().unwrap();
        assert!(d.abs() < 1e-6, "alone = in the batch: {x} vs {y}");
    }
}

/// Same spans and labels, scores within 1e-6.
fn assert_same_entities(a: &Value, b: &Value) {
    let (a, b) = (a.as_array().unwrap(), b.as_array().unwrap());
    assert_eq!(a.len(), b.len(), "alone = in the batch");
    for (x, y) in a.iter().zip(b) {
        for k in ["start", "end", "label", "text"] {
            assert_eq!(x[k], y[k], "alone = in the batch");
        }
        let d = x["score"].as_f64().unwrap() - y["score"].as_f64().unwrap();
        assert!(d.abs() < 1e-6, "alone = in the batch: {x} vs {y}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predict_and_tag_answer_as_the_library_batched_or_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let cls = train_classifier(tmp.path());
    let ner = train_tagger(tmp.path());
    let bert = fixture("models/bert-a");
    let server = TestServer::start(options(&[("emb", &bert), ("cls", &cls), ("ner", &ner)])).await;
    let client = reqwest::Client::new();

    let texts = ["good good 3", "bad bad 7", "good", "bad news and good news"];
    let lib = TextClassifier::from_dir(&cls).unwrap();
    let want = lib.predict_texts(&texts, 512, 32).unwrap();
    let (status, batch) = post(&client, &server.at("/predict"), &json!({"inputs": texts})).await;
    assert_eq!(status, 200, "{batch}");
    for (i, w) in want.iter().enumerate() {
        let Prediction::Label {
            label,
            probabilities,
        } = w
        else {
            panic!("single-label model")
        };
        let got = batch[i].as_array().unwrap();
        assert_eq!(got[0]["label"], label.as_str(), "most likely first");
        for (l, p) in probabilities {
            let s = got.iter().find(|x| x["label"] == l.as_str()).unwrap()["score"].as_f64();
            assert!((s.unwrap() as f32 - p).abs() < 1e-6, "{l}");
        }
        let (_, alone) = post(
            &client,
            &server.at("/predict"),
            &json!({"inputs": texts[i]}),
        )
        .await;
        assert_same_scores(&alone, &batch[i]);
    }
    // A pair is one input; `model` picks the classifier by name from any position.
    let (s, pair) = post(
        &client,
        &server.at("/predict"),
        &json!({"inputs": ["good good", "bad"], "model": "cls"}),
    )
    .await;
    assert_eq!(s, 200);
    assert!(pair.as_array().unwrap()[0]["label"].is_string(), "{pair}");
    // POST / answers with the first model's kind: here embeddings.
    let (s, v) = post(&client, &server.at("/"), &json!({"inputs": "good"})).await;
    assert_eq!((s.as_u16(), rows(&v).len()), (200, 1));

    let sentences = ["john went to paris", "the dog and mary in berlin", "a dog"];
    let tagger = EntityTagger::from_dir(&ner).unwrap();
    let want = tagger.tag_texts(&sentences, 512, 32).unwrap();
    let (status, tagged) = post(&client, &server.at("/tag"), &json!({"inputs": sentences})).await;
    assert_eq!(status, 200, "{tagged}");
    for (i, ents) in want.iter().enumerate() {
        let got = tagged[i].as_array().unwrap();
        assert_eq!(got.len(), ents.len(), "{}", sentences[i]);
        for (g, e) in got.iter().zip(ents) {
            assert_eq!(
                (g["start"].as_u64(), g["end"].as_u64()),
                (Some(e.start as u64), Some(e.end as u64))
            );
            assert_eq!(g["label"], e.label.as_str());
            assert_eq!(g["text"], e.text.as_str());
        }
        let (_, alone) = post(
            &client,
            &server.at("/tag"),
            &json!({"inputs": sentences[i]}),
        )
        .await;
        assert_same_entities(&alone, &tagged[i]);
    }
    let info: Value = (client.get(server.at("/info")).send().await.unwrap())
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = (info["models"].as_array().unwrap().iter())
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["embedding", "classifier", "tagger"]);
    server.stop().await;
}

/// Greedy `/generate` = the library's `generate` on the same prompt; the stream's token
/// events add up to the same text, and its last event carries it whole; sampling with a
/// seed repeats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_and_its_stream_give_the_library_s_text() {
    let dir = gpt2_with_tokenizer();
    let server = TestServer::start(options(&[("gpt2", dir.path())])).await;
    let client = reqwest::Client::new();
    let prompt = "Hello, naïve world";
    let g = TextGenerator::from_dir(dir.path(), None).unwrap();
    let ids = g.encode_prompt(prompt).unwrap();
    let cfg = GenerationConfig {
        max_new_tokens: 12,
        eos_token_id: g.eos(None),
        ..Default::default()
    };
    let out = generate::generate(g.model(), std::slice::from_ref(&ids), &cfg, &mut |_| {}).unwrap();
    let full = g.decode(&out[0].ids).unwrap().unwrap();
    let new_text = full.strip_prefix(prompt).unwrap().to_string();

    let body = json!({"inputs": prompt, "parameters": {"max_new_tokens": 12}});
    let (s, plain) = post(&client, &server.at("/generate"), &body).await;
    assert_eq!(s, 200, "{plain}");
    assert_eq!(plain["generated_text"], new_text.as_str());
    let body =
        json!({"inputs": prompt, "parameters": {"max_new_tokens": 12, "return_full_text": true}});
    let (_, whole) = post(&client, &server.at("/generate"), &body).await;
    assert_eq!(whole["generated_text"], full.as_str());

    let body = json!({"inputs": prompt, "parameters": {"max_new_tokens": 12}});
    let r = client
        .post(server.at("/generate_stream"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = r.text().await.unwrap();
    let events: Vec<Value> = (text.lines())
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(
        events.len(),
        out[0].ids.len() - ids.len(),
        "one event per token"
    );
    let pieces: String = events
        .iter()
        .map(|e| e["token"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(pieces, new_text);
    let (last, rest) = events.split_last().unwrap();
    assert_eq!(last["generated_text"], new_text.as_str());
    assert!(rest.iter().all(|e| e["generated_text"].is_null()));
    let streamed_ids: Vec<u64> = events
        .iter()
        .map(|e| e["token"]["id"].as_u64().unwrap())
        .collect();
    let want_ids: Vec<u64> = out[0].ids[ids.len()..].iter().map(|&i| i as u64).collect();
    assert_eq!(streamed_ids, want_ids);

    let sample = json!({"inputs": prompt, "parameters": {"max_new_tokens": 8, "do_sample": true, "seed": 5}});
    let (_, a) = post(&client, &server.at("/generate"), &sample).await;
    let (_, b) = post(&client, &server.at("/generate"), &sample).await;
    assert_eq!(a, b, "seeded sampling repeats");

    for (what, body, status) in [
        (
            "beams with stream",
            json!({"inputs": prompt, "stream": true, "parameters": {"num_beams": 2}}),
            422,
        ),
        (
            "zero new tokens",
            json!({"inputs": prompt, "parameters": {"max_new_tokens": 0}}),
            422,
        ),
        (
            "past the positions",
            json!({"inputs": prompt, "parameters": {"max_new_tokens": 100000}}),
            422,
        ),
        (
            "max_new_tokens that overflows",
            json!({"inputs": prompt, "parameters": {"max_new_tokens": u64::MAX}}),
            422,
        ),
        (
            "too many beams",
            json!({"inputs": prompt, "parameters": {"num_beams": 1000000}}),
            422,
        ),
        ("empty prompt", json!({"inputs": ""}), 422),
        ("prompt not a string", json!({"inputs": ["a"]}), 422),
        ("embed on a generator", json!({"inputs": "a"}), 400),
    ] {
        let path = if what.starts_with("embed") {
            "/embed"
        } else {
            "/generate"
        };
        let (s, e) = post(&client, &server.at(path), &body).await;
        assert_eq!(s.as_u16(), status, "{what}: {e}");
        assert!(e["error"].is_string(), "{what}");
    }
    server.stop().await;
}

/// `--early-exit-entropy`: `/predict` answers as the library's early exit at the same
/// threshold (0: the full model; 10 nats: every text at the first off-ramp), and a server
/// that cannot exit early refuses to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predict_exits_early_as_the_library_does() {
    let tmp = tempfile::tempdir().unwrap();
    let cls = train_classifier_with(tmp.path(), "ramps", &["task.early_exit=\"joint\""]);
    let texts = ["good good 3", "bad bad 7", "good", "bad news and good news"];
    let lib = TextClassifier::from_dir(&cls).unwrap();
    let client = reqwest::Client::new();
    for entropy in [0.0, 10.0] {
        let (want, layers) = lib
            .predict_texts_early_exit(&texts, 512, 32, entropy)
            .unwrap();
        let mut opts = options(&[("cls", &cls)]);
        opts.early_exit_entropy = Some(entropy);
        let server = TestServer::start(opts).await;
        let (status, got) = post(&client, &server.at("/predict"), &json!({"inputs": texts})).await;
        assert_eq!(status, 200, "{got}");
        for (i, w) in want.iter().enumerate() {
            let Prediction::Label { probabilities, .. } = w else {
                panic!("single-label model")
            };
            for (l, p) in probabilities {
                let row = got[i].as_array().unwrap();
                let s = row.iter().find(|x| x["label"] == l.as_str()).unwrap()["score"].as_f64();
                assert!((s.unwrap() as f32 - p).abs() < 1e-6, "{entropy}: {l}");
            }
        }
        let full = lib.predict_texts(&texts, 512, 32).unwrap();
        assert_eq!(entropy == 0.0, want == full, "exit at {layers:?}");
        server.stop().await;
    }
    let plain = train_classifier(tmp.path());
    for (dir, needle) in [
        (&plain, "no off-ramps"),
        (&fixture("models/bert-a"), "no served model"),
    ] {
        let mut opts = options(&[("m", dir)]);
        opts.early_exit_entropy = Some(0.5);
        let err = bert4rs_server::AppState::load(opts)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(needle), "{err}");
    }
    let mut opts = options(&[("cls", &cls)]);
    opts.early_exit_entropy = Some(f32::NAN);
    let err = opts.validate().unwrap_err().to_string();
    assert!(err.contains("--early-exit-entropy"), "{err}");
}
