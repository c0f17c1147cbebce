//! Bad input gets the right 4xx with a JSON `{"error", "error_type"}` body and the server
//! keeps answering: malformed bodies, wrong types, limits, a flood beyond
//! `--max-concurrent-requests` (429), and a graceful shutdown that finishes what is in flight.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// One bad request: what is sent and the status it must get.
struct Case {
    what: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
}

fn case(what: &'static str, path: &'static str, body: Value, status: u16) -> Case {
    Case {
        what,
        method: "POST",
        path,
        content_type: Some("application/json"),
        body: body.to_string().into_bytes(),
        status,
    }
}

fn raw(what: &'static str, body: &[u8], content_type: Option<&'static str>, status: u16) -> Case {
    Case {
        what,
        method: "POST",
        path: "/embed",
        content_type,
        body: body.to_vec(),
        status,
    }
}

fn cases() -> Vec<Case> {
    let long = "word ".repeat(400);
    let many: Vec<String> = (0..33).map(|i| format!("t{i}")).collect();
    let huge = format!("{{\"inputs\": \"{}\"}}", "a".repeat(2_100_000));
    vec![
        raw(
            "truncated JSON",
            b"{\"inputs\": ",
            Some("application/json"),
            422,
        ),
        raw("not JSON", b"inputs=hello", Some("application/json"), 422),
        raw(
            "invalid UTF-8",
            b"{\"inputs\": \"\xff\xfe\"}",
            Some("application/json"),
            422,
        ),
        raw(
            "text/plain body",
            b"{\"inputs\": \"a\"}",
            Some("text/plain"),
            415,
        ),
        raw("no content type", b"{\"inputs\": \"a\"}", None, 415),
        raw(
            "body over --payload-limit",
            huge.as_bytes(),
            Some("application/json"),
            413,
        ),
        case("inputs a number", "/embed", json!({"inputs": 5}), 422),
        case(
            "a number in the list",
            "/embed",
            json!({"inputs": ["a", 3]}),
            422,
        ),
        case("inputs null", "/embed", json!({"inputs": null}), 422),
        case("no inputs", "/embed", json!({}), 422),
        case("a JSON list body", "/embed", json!(["a", "b"]), 422),
        case(
            "unknown field",
            "/embed",
            json!({"inputs": "a", "normalise": true}),
            422,
        ),
        case(
            "normalize not a bool",
            "/embed",
            json!({"inputs": "a", "normalize": "yes"}),
            422,
        ),
        case("empty list", "/embed", json!({"inputs": []}), 422),
        case("empty text", "/embed", json!({"inputs": ""}), 422),
        case(
            "whitespace text",
            "/embed",
            json!({"inputs": ["ok", "   "]}),
            422,
        ),
        case("33 inputs", "/embed", json!({"inputs": many}), 422),
        case(
            "over-long without truncate",
            "/embed",
            json!({"inputs": long, "truncate": false}),
            422,
        ),
        case(
            "left truncation",
            "/embed",
            json!({"inputs": "a", "truncation_direction": "left"}),
            422,
        ),
        case(
            "unknown model",
            "/embed",
            json!({"inputs": "a", "model": "nope"}),
            404,
        ),
        case(
            "predict on an embedding model",
            "/predict",
            json!({"inputs": "a"}),
            400,
        ),
        case(
            "tag on an embedding model",
            "/tag",
            json!({"inputs": "a"}),
            400,
        ),
        case(
            "generate without a generator",
            "/generate",
            json!({"inputs": "a"}),
            400,
        ),
        case(
            "openai: unknown encoding",
            "/v1/embeddings",
            json!({"input": "a", "encoding_format": "hex"}),
            422,
        ),
        case(
            "openai: wrong dimensions",
            "/v1/embeddings",
            json!({"input": "a", "dimensions": 7}),
            422,
        ),
        case(
            "openai: token arrays",
            "/v1/embeddings",
            json!({"input": [[1, 2]]}),
            422,
        ),
        case(
            "tokenize: empty list",
            "/tokenize",
            json!({"inputs": []}),
            422,
        ),
        case("unknown route", "/embedz", json!({"inputs": "a"}), 404),
        Case {
            what: "GET on a POST route",
            method: "GET",
            path: "/embed",
            content_type: None,
            body: vec![],
            status: 405,
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_request_gets_its_4xx_and_the_server_keeps_answering() {
    let bert = fixture("models/bert-a");
    let server = TestServer::start(options(&[("bert", &bert)])).await;
    let client = reqwest::Client::new();
    let all = cases();
    assert!(all.len() >= 20);
    for c in all {
        let m = reqwest::Method::from_bytes(c.method.as_bytes()).unwrap();
        let mut req = client.request(m, server.at(c.path)).body(c.body);
        if let Some(ct) = c.content_type {
            req = req.header("content-type", ct);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, c.status, "{}: {body}", c.what);
        let msg = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no error text", c.what));
        assert!(
            !msg.is_empty() && body["error_type"].is_string(),
            "{}",
            c.what
        );
    }
    // The over-long text is taken when truncation is asked for.
    let long = "word ".repeat(400);
    let (s, _) = post(
        &client,
        &server.at("/embed"),
        &json!({"inputs": long, "truncate": true}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, v) = post(
        &client,
        &server.at("/embed"),
        &json!({"inputs": "still here"}),
    )
    .await;
    assert_eq!((s.as_u16(), rows(&v).len()), (200, 1));
    server.stop().await;
}

/// Beyond `--max-concurrent-requests` the answer is 429 at once; the requests admitted
/// get correct answers, and the server answers normally after the flood.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_beyond_the_concurrency_limit_gets_429_and_the_rest_are_answered() {
    let minilm = asset("minilm");
    let mut opts = options(&[("minilm", &minilm)]);
    opts.max_concurrent_requests = 3;
    let server = TestServer::start(opts).await;
    let client = reqwest::Client::new();
    let texts = mixed_texts(32, 60, 1);
    let (_, expected) = post(&client, &server.at("/embed"), &json!({"inputs": texts})).await;
    let expected = rows(&expected);
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let (client, url, texts) = (client.clone(), server.at("/embed"), texts.clone());
        tasks.push(tokio::spawn(async move {
            post(&client, &url, &json!({"inputs": texts})).await
        }));
    }
    let (mut ok, mut refused) = (0, 0);
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status.as_u16() {
            200 => {
                assert!(max_diff(&rows(&body), &expected) < 1e-5);
                ok += 1;
            }
            429 => {
                assert_eq!(body["error_type"], "overloaded");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(ok >= 3 && refused > 0, "{ok} answered, {refused} refused");
    let (s, _) = post(&client, &server.at("/embed"), &json!({"inputs": "after"})).await;
    assert_eq!(s, 200);
    server.stop().await;
}

/// A shutdown while a request is being computed lets it finish with its answer, and the
/// server stops accepting connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_the_requests_in_flight() {
    let minilm = asset("minilm");
    let mut server = TestServer::start(options(&[("minilm", &minilm)])).await;
    let client = reqwest::Client::new();
    let texts: Vec<String> = mixed_texts(32, 200, 2);
    let (url, c) = (server.at("/embed"), client.clone());
    let body = json!({"inputs": texts, "truncate": true});
    let in_flight = tokio::spawn(async move { post(&c, &url, &body).await });
    let metrics = server.state.metrics.clone();
    while metrics.request_count.with_label_values(&["embed"]).get() == 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.signal_stop();
    let (status, answer) = in_flight.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(rows(&answer).len(), 32);
    let url = server.at("/health");
    server.join().await;
    assert!(
        client.get(url).send().await.is_err(),
        "still accepting after shutdown"
    );
}
