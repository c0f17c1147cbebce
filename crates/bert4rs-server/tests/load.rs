//! The load test's driver (`examples/load_test.rs`), bounded to a few seconds: 100
//! concurrent clients with mixed lengths get no lost, duplicated or wrong answer (each row
//! equal to its text embedded alone, 1e-5), and the queue really batched across requests.

mod common;

#[path = "../examples/load_test.rs"]
mod load_test;

use common::*;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_clients_get_every_answer_right_and_are_batched() {
    let bert = fixture("models/bert-a");
    let server = TestServer::start(options(&[("bert", &bert)])).await;
    let lines = mixed_texts(200, 40, 3);
    let texts = load_test::mixed_lengths(&lines, 300, 4);
    let info: serde_json::Value = reqwest::get(server.at("/info"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let limit = info["max_input_length"].as_u64().unwrap() as usize;
    let expected = load_test::embedded_alone(&bert, &texts, limit);
    let report = load_test::drive(
        &server.url,
        Arc::new(texts),
        Arc::new(expected),
        100,
        4,
        Duration::from_secs(3),
    )
    .await;
    eprintln!("{}", report.line("100 clients × 3 s"));
    assert!(report.ok > 100, "only {} requests answered", report.ok);
    assert_eq!(
        (report.lost, report.wrong),
        (0, 0),
        "max |diff| {}",
        report.max_diff
    );
    let m = &server.state.metrics;
    let batches = m
        .batch_next_size
        .with_label_values(&["embed"])
        .get_sample_count();
    let inputs = m
        .batch_next_size
        .with_label_values(&["embed"])
        .get_sample_sum();
    assert!(
        (batches as f64) < inputs / 2.0,
        "{batches} batches for {inputs} inputs: the queue did not batch across requests"
    );
    server.stop().await;
}
