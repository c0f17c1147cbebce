//! The embedding routes against the reference: `/embed` on MiniLM equals
//! sentence-transformers' vectors (the committed fixture), a batch equals each text alone,
//! OpenAI's route gives the same vectors in its shape, `/tokenize` gives the HF ids, and
//! `/openapi.json` lists exactly the routes served.

mod common;

use base64::Engine;
use bert4rs::kernels::CodeWidth;
use bert4rs::models::hub::WeightStorage;
use bert4rs_server::ServeOptions;
use common::*;
use serde_json::{json, Value};

/// `/embed` of the fixture's sentences = sentence-transformers' normalised vectors (1e-5,
/// f32 with a different summation order), as one batch and one by one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_matches_sentence_transformers_and_batch_equals_single() {
    let minilm = asset("minilm");
    let server = TestServer::start(options(&[("minilm", &minilm)])).await;
    let fx = json("parity/minilm.json");
    let sentences: Vec<String> = serde_json::from_value(fx["sentences"].clone()).unwrap();
    let golden = golden("parity/minilm.safetensors")["st.embeddings"]
        .to_vec2::<f32>()
        .unwrap();
    let client = reqwest::Client::new();
    let (status, body) = post(&client, &server.at("/embed"), &json!({"inputs": sentences})).await;
    assert_eq!(status, 200, "{body}");
    let batch = rows(&body);
    assert!(max_diff(&batch, &golden) < 1e-5, "vs sentence-transformers");
    for (i, s) in sentences.iter().enumerate() {
        let (_, one) = post(&client, &server.at("/embed"), &json!({"inputs": s})).await;
        let one = rows(&one);
        assert!(
            max_diff(&one, &batch[i..i + 1]) < 1e-6,
            "row {i} alone vs in the batch"
        );
    }
    // normalize=false gives the raw mean-pooled vector, of which the default is the unit one.
    let (_, raw) = post(
        &client,
        &server.at("/embed"),
        &json!({"inputs": [&sentences[0]], "normalize": false}),
    )
    .await;
    let raw = rows(&raw);
    let norm: f32 = raw[0].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!(
        (norm - 1.0).abs() > 1e-3,
        "unnormalised vector has norm {norm}"
    );
    assert!(max_diff(&[unit(&raw[0])], &batch[..1]) < 1e-6);
    server.stop().await;
}

/// `--int8`: `/embed` answers from the quantised encoder, within cosine 0.999 of
/// sentence-transformers with 12-bit activation codes (0.99 with 7-bit ones), and a batch
/// still equals each text alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn int8_embed_stays_near_f32_and_batch_equals_single() {
    served_minilm_stays_near_f32(|o| o.int8 = Some(CodeWidth::Wide), 0.999).await;
    served_minilm_stays_near_f32(|o| o.int8 = Some(CodeWidth::U7), 0.99).await;
}

/// A `bert4rs quantize` directory is served as it is, answering exactly as `--int8` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quantized_directory_serves_the_same_embeddings_as_int8_on_the_fly() {
    let tmp = tempfile::tempdir().unwrap();
    let saved = tmp.path().join("int8");
    bert4rs::models::quantize::quantize_dir(&asset("minilm"), &saved, CodeWidth::Wide).unwrap();
    let fx = json("parity/minilm.json");
    let body = json!({"inputs": fx["sentences"].clone()});
    let mut on_the_fly = options(&[("minilm", &asset("minilm"))]);
    on_the_fly.int8 = Some(CodeWidth::Wide);
    let mut answers = Vec::new();
    for opts in [options(&[("minilm", &saved)]), on_the_fly] {
        let server = TestServer::start(opts).await;
        let (status, got) = post(&reqwest::Client::new(), &server.at("/embed"), &body).await;
        assert_eq!(status, 200, "{got}");
        answers.push(rows(&got));
        server.stop().await;
    }
    assert_eq!(answers[0], answers[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bf16_embed_stays_within_0_999_of_f32_and_batch_equals_single() {
    served_minilm_stays_near_f32(|o| o.dtype = WeightStorage::Bf16, 0.999).await;
    let mut both = options(&[("minilm", &asset("minilm"))]);
    (both.int8, both.dtype) = (Some(CodeWidth::default()), WeightStorage::Bf16);
    let err = both.validate().unwrap_err().to_string();
    assert!(err.contains("--int8") && err.contains("bf16"), "{err}");
}

/// MiniLM served with `set`'s options: every sentence within cosine `floor` of
/// sentence-transformers' f32 embedding, and a text alone equal to its row in a batch.
async fn served_minilm_stays_near_f32(set: impl FnOnce(&mut ServeOptions), floor: f32) {
    let minilm = asset("minilm");
    let mut opts = options(&[("minilm", &minilm)]);
    set(&mut opts);
    let server = TestServer::start(opts).await;
    let fx = json("parity/minilm.json");
    let sentences: Vec<String> = serde_json::from_value(fx["sentences"].clone()).unwrap();
    let golden = golden("parity/minilm.safetensors")["st.embeddings"]
        .to_vec2::<f32>()
        .unwrap();
    let client = reqwest::Client::new();
    let (status, body) = post(&client, &server.at("/embed"), &json!({"inputs": sentences})).await;
    assert_eq!(status, 200, "{body}");
    let batch = rows(&body);
    for (i, (q, f)) in batch.iter().zip(&golden).enumerate() {
        // Both are unit vectors: the dot product is the cosine.
        let cos: f32 = q.iter().zip(f).map(|(a, b)| a * b).sum();
        assert!(
            (floor..=1.0001).contains(&cos),
            "sentence {i}: cosine {cos}"
        );
    }
    for (i, s) in sentences.iter().enumerate().take(3) {
        let (_, one) = post(&client, &server.at("/embed"), &json!({"inputs": s})).await;
        assert!(max_diff(&rows(&one), &batch[i..i + 1]) < 1e-6, "row {i}");
    }
    server.stop().await;
}

/// OpenAI's route: the same unit vectors, as floats or little-endian base64, in input
/// order, with token usage; any model name reaches the only embedding model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_route_gives_the_same_vectors_in_openai_shape() {
    let minilm = asset("minilm");
    let server = TestServer::start(options(&[("minilm", &minilm)])).await;
    let client = reqwest::Client::new();
    let texts = ["first text", "a second, longer text here"];
    let (_, tei) = post(&client, &server.at("/embed"), &json!({"inputs": texts})).await;
    let tei = rows(&tei);
    let body = json!({"input": texts, "model": "text-embedding-3-small"});
    let (status, oa) = post(&client, &server.at("/v1/embeddings"), &body).await;
    assert_eq!(status, 200, "{oa}");
    assert_eq!(oa["object"], "list");
    assert_eq!(oa["model"], "minilm");
    let floats: Vec<Vec<f32>> = (0..2)
        .map(|i| {
            assert_eq!(oa["data"][i]["index"], i);
            serde_json::from_value(oa["data"][i]["embedding"].clone()).unwrap()
        })
        .collect();
    assert!(max_diff(&floats, &tei) < 1e-6);
    let usage = &oa["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() >= 8);
    assert_eq!(usage["prompt_tokens"], usage["total_tokens"]);

    let body = json!({"input": texts[1], "model": "minilm", "encoding_format": "base64"});
    let (_, b64) = post(&client, &server.at("/v1/embeddings"), &body).await;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let v: Vec<f32> = (bytes.chunks_exact(4))
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert!(max_diff(&[v], &tei[1..]) < 1e-6);
    server.stop().await;
}

/// `/tokenize` gives the ids HF's tokenizer gives (the committed MiniLM fixture) with
/// each token's text and character span; `add_special_tokens: false` drops the specials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokenize_gives_hf_ids_and_spans() {
    let minilm = asset("minilm");
    let server = TestServer::start(options(&[("minilm", &minilm)])).await;
    let client = reqwest::Client::new();
    let path = repo_root().join("tests/fixtures/tokenize/minilm.jsonl");
    let cases = std::fs::read_to_string(path).unwrap();
    let mut checked = 0;
    for line in cases.lines() {
        let case: Value = serde_json::from_str(line).unwrap();
        let plain = case["pairs"].is_null()
            && case["truncation"] == false
            && case["nfkc"] == false
            && case["padding"] == false;
        if !plain {
            continue;
        }
        let texts: Vec<String> = serde_json::from_value(case["texts"].clone()).unwrap();
        if texts.iter().any(|t| t.trim().is_empty()) {
            continue; // the server refuses empty texts
        }
        let (status, toks) =
            post(&client, &server.at("/tokenize"), &json!({"inputs": texts})).await;
        assert_eq!(status, 200, "{toks}");
        for (i, text) in texts.iter().enumerate() {
            let got = toks[i].as_array().unwrap();
            let ids: Vec<u64> = got.iter().map(|t| t["id"].as_u64().unwrap()).collect();
            let want: Vec<u64> = serde_json::from_value(case["input_ids"][i].clone()).unwrap();
            assert_eq!(ids, want, "{text:?}");
            for (j, t) in got.iter().enumerate() {
                let special = case["special_tokens_mask"][i][j] == 1;
                assert_eq!(t["special"], special);
                if special {
                    assert_eq!(t["text"], case["tokens"][i][j]);
                    continue;
                }
                let (a, b) = (t["start"].as_u64().unwrap(), t["stop"].as_u64().unwrap());
                assert_eq!(json!([a, b]), case["offsets"][i][j], "{text:?} token {j}");
                let span: String = text
                    .chars()
                    .skip(a as usize)
                    .take((b - a) as usize)
                    .collect();
                assert_eq!(t["text"], span);
            }
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} single-text cases checked");
    let body = json!({"inputs": ["hello world"], "add_special_tokens": false});
    let (_, plain) = post(&client, &server.at("/tokenize"), &body).await;
    let texts: Vec<&str> = (plain[0].as_array().unwrap().iter())
        .map(|t| t["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["hello", "world"]);
    server.stop().await;
}

/// Every path and method in `/openapi.json` is served (not 404/405), and every route the
/// server has is in the document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_lists_exactly_the_served_routes() {
    let bert = fixture("models/bert-a");
    let server = TestServer::start(options(&[("bert", &bert)])).await;
    let client = reqwest::Client::new();
    let doc: Value = client
        .get(server.at("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let mut listed = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = client
                .request(m, server.at(path))
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert!(
                r.status() != 404 && r.status() != 405,
                "{method} {path}: {}",
                r.status()
            );
            listed.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    listed.sort();
    let served = [
        "GET /health",
        "GET /info",
        "GET /metrics",
        "GET /openapi.json",
        "POST /",
        "POST /embed",
        "POST /generate",
        "POST /generate_stream",
        "POST /predict",
        "POST /tag",
        "POST /tokenize",
        "POST /v1/embeddings",
    ];
    assert_eq!(listed, served);
    // And a route outside it is a JSON 404.
    let (status, body) = post(&client, &server.at("/embeddings"), &json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(body["error_type"], "not_found");
    server.stop().await;
}

/// `/info` describes the model in TEI's fields; `/metrics` counts requests, batches and
/// the queue under TEI's `te_*` names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_and_metrics_report_the_model_and_the_traffic() {
    let bert = fixture("models/bert-a");
    let server = TestServer::start(options(&[("bert", &bert)])).await;
    let client = reqwest::Client::new();
    let info: Value = (client.get(server.at("/info")).send().await.unwrap())
        .json()
        .await
        .unwrap();
    assert_eq!(info["model_type"]["embedding"]["pooling"], "mean");
    assert_eq!(info["max_batch_tokens"], 16384);
    assert_eq!(info["max_client_batch_size"], 32);
    assert_eq!(info["models"][0]["name"], "bert");
    assert!(info["max_input_length"].as_u64().unwrap() > 8);
    for i in 0..5 {
        let (s, _) = post(
            &client,
            &server.at("/embed"),
            &json!({"inputs": format!("text {i}")}),
        )
        .await;
        assert_eq!(s, 200);
    }
    let (s, _) = post(&client, &server.at("/embed"), &json!({"inputs": []})).await;
    assert_eq!(s, 422);
    let health = client.get(server.at("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let text = (client.get(server.at("/metrics")).send().await.unwrap())
        .text()
        .await
        .unwrap();
    for line in [
        "te_request_count{method=\"embed\"} 6",
        "te_request_success{method=\"embed\"} 5",
        "te_request_failure{err=\"empty\",method=\"embed\"} 1",
        "te_batch_next_size_count{method=\"embed\"} ",
        "te_request_queue_duration_count{method=\"embed\"} 5",
        "te_request_inference_duration_count{method=\"embed\"} 5",
        "te_request_input_length_count{method=\"embed\"} 5",
        "te_queue_size 0",
    ] {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }
    server.stop().await;
}
