//! Load test of a running `bert4rs serve` (loopback): N concurrent clients send requests
//! of 1..=K texts of mixed lengths for S seconds; every answer is checked against that
//! text embedded alone by the library in this process (1e-5), then the same server is
//! driven one request at a time, and the throughputs are compared.
//!
//! ```text
//! bert4rs serve --model DIR --port 8080 &
//! cargo run --release -p bert4rs-server --example load_test -- \
//!     --url http://127.0.0.1:8080 --model DIR --texts LINES.txt --clients 100 --seconds 60 \
//!     [--join 4] [--per-request 4] [--serial-seconds 20]
//! ```
//! (`bench/serve.sh` does both.) The suite runs the same driver for a few seconds
//! (`tests/load.rs`).
#![allow(dead_code)]

use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a load run measured.
#[derive(Debug, Default)]
pub struct Report {
    /// Requests answered 200 with correct vectors.
    pub ok: usize,
    /// Texts in those requests.
    pub texts: usize,
    /// Requests with a non-200 answer or a transport error.
    pub lost: usize,
    /// Requests whose answer had the wrong row count or a vector off by more than 1e-5.
    pub wrong: usize,
    /// Largest |difference| seen against the texts embedded alone.
    pub max_diff: f32,
    /// Median and 99th-percentile request latency.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Wall time of the run.
    pub wall: Duration,
}

impl Report {
    /// Requests per second.
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.wall.as_secs_f64()
    }

    /// Texts per second.
    pub fn texts_per_s(&self) -> f64 {
        self.texts as f64 / self.wall.as_secs_f64()
    }

    /// One line for the terminal.
    pub fn line(&self, what: &str) -> String {
        format!(
            "{what}: {} requests ({} texts) in {:.1} s = {:.1} req/s, {:.1} texts/s; \
             p50 {:.1} ms, p99 {:.1} ms; lost {}, wrong {}, max |diff| {:.1e}",
            self.ok,
            self.texts,
            self.wall.as_secs_f64(),
            self.rps(),
            self.texts_per_s(),
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.lost,
            self.wrong,
            self.max_diff
        )
    }
}

#[derive(Default)]
struct ClientStats {
    latencies: Vec<Duration>,
    texts: usize,
    lost: usize,
    wrong: usize,
    max_diff: f32,
}

/// Drives `url`'s `/embed` with `clients` concurrent clients for `duration`, each request
/// 1..=`per_request` texts drawn from `texts`; `expected[i]` is text i embedded alone
/// (normalised, as `/embed` answers by default).
pub async fn drive(
    url: &str,
    texts: Arc<Vec<String>>,
    expected: Arc<Vec<Vec<f32>>>,
    clients: usize,
    per_request: usize,
    duration: Duration,
) -> Report {
    let start = Instant::now();
    let deadline = start + duration;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .expect("an HTTP client");
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, url) = (http.clone(), format!("{url}/embed"));
        let (texts, expected) = (texts.clone(), expected.clone());
        tasks.push(tokio::spawn(async move {
            client_loop(
                &http,
                &url,
                &texts,
                &expected,
                per_request,
                deadline,
                c as u64,
            )
            .await
        }));
    }
    let mut all = ClientStats::default();
    for t in tasks {
        let s = t.await.expect("a client task");
        all.latencies.extend(s.latencies);
        all.texts += s.texts;
        all.lost += s.lost;
        all.wrong += s.wrong;
        all.max_diff = all.max_diff.max(s.max_diff);
    }
    all.latencies.sort();
    let pct = |p: f64| -> Duration {
        let n = all.latencies.len();
        match n {
            0 => Duration::ZERO,
            _ => all.latencies[((n as f64 * p) as usize).min(n - 1)],
        }
    };
    Report {
        ok: all.latencies.len(),
        texts: all.texts,
        lost: all.lost,
        wrong: all.wrong,
        max_diff: all.max_diff,
        p50: pct(0.50),
        p99: pct(0.99),
        wall: start.elapsed(),
    }
}

async fn client_loop(
    http: &reqwest::Client,
    url: &str,
    texts: &[String],
    expected: &[Vec<f32>],
    per_request: usize,
    deadline: Instant,
    seed: u64,
) -> ClientStats {
    let mut rng = bert4rs::rng::Rng::new(seed + 1);
    let mut s = ClientStats::default();
    while Instant::now() < deadline {
        let k = 1 + rng.below(per_request);
        let picks: Vec<usize> = (0..k).map(|_| rng.below(texts.len())).collect();
        let inputs: Vec<&String> = picks.iter().map(|&i| &texts[i]).collect();
        let body = json!({"inputs": inputs, "truncate": true});
        let sent = Instant::now();
        let answer = match http.post(url).json(&body).send().await {
            Ok(r) if r.status() == 200 => r.json::<Vec<Vec<f32>>>().await.ok(),
            _ => None,
        };
        let Some(rows) = answer else {
            s.lost += 1;
            continue;
        };
        let latency = sent.elapsed();
        if rows.len() != k {
            s.wrong += 1;
            continue;
        }
        let mut worst = 0f32;
        for (row, &i) in rows.iter().zip(&picks) {
            for (a, b) in row.iter().zip(&expected[i]) {
                worst = worst.max((a - b).abs());
            }
            worst = worst.max(if row.len() == expected[i].len() {
                0.0
            } else {
                f32::INFINITY
            });
        }
        s.max_diff = s.max_diff.max(worst);
        if worst > 1e-5 {
            s.wrong += 1;
            continue;
        }
        s.latencies.push(latency);
        s.texts += k;
    }
    s
}

/// Texts of mixed lengths: lines of the polarity corpus or any file, joined in runs of
/// 1..=`join` lines (4: from a few to ~200 tokens).
pub fn mixed_lengths(lines: &[String], n: usize, join: usize) -> Vec<String> {
    let mut rng = bert4rs::rng::Rng::new(7);
    (0..n)
        .map(|_| {
            let k = 1 + rng.below(join);
            let start = rng.below(lines.len());
            (0..k)
                .map(|j| lines[(start + j) % lines.len()].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// Each text embedded alone (batch of one) by the library, normalised.
pub fn embedded_alone(dir: &std::path::Path, texts: &[String], max_len: usize) -> Vec<Vec<f32>> {
    let mut enc = bert4rs::SentenceEncoder::from_dir(dir).expect("the model loads");
    enc.normalize = true;
    enc.max_length = Some(max_len);
    texts
        .iter()
        .map(|t| enc.embed(&[t]).expect("embeds")[0].clone())
        .collect()
}

fn arg(args: &[String], name: &str) -> Option<String> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).cloned()
}

/// The library's own throughput on `texts` in one call (sorted batches of 32, no HTTP):
/// the ceiling the server's batching can approach on this machine.
pub fn offline_texts_per_s(dir: &std::path::Path, texts: &[String], max_len: usize) -> f64 {
    let mut enc = bert4rs::SentenceEncoder::from_dir(dir).expect("the model loads");
    enc.max_length = Some(max_len);
    let t0 = Instant::now();
    enc.embed(texts).expect("embeds");
    texts.len() as f64 / t0.elapsed().as_secs_f64()
}

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    bert4rs::util::init_process(); // before any thread starts
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    rt.block_on(run());
}

async fn run() {
    let args: Vec<String> = std::env::args().collect();
    let need = |n: &str| arg(&args, n).unwrap_or_else(|| panic!("give {n}"));
    let url = need("--url");
    let model = std::path::PathBuf::from(need("--model"));
    let corpus = need("--texts");
    let num = |n: &str, d: usize| arg(&args, n).map_or(d, |v| v.parse().expect("a number"));
    let (clients, seconds) = (num("--clients", 100), num("--seconds", 60));
    let (per_request, serial_seconds) = (num("--per-request", 4), num("--serial-seconds", 20));
    let lines: Vec<String> = std::fs::read_to_string(&corpus)
        .expect("the --texts file")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    let texts = mixed_lengths(&lines, 2000, num("--join", 4));
    let info: serde_json::Value = reqwest::get(format!("{url}/info"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let max_len = info["max_input_length"].as_u64().unwrap_or(512) as usize;
    // Requests ask for truncation at the server's limit; the reference truncates the same.
    let t0 = Instant::now();
    let expected = embedded_alone(&model, &texts, max_len);
    eprintln!(
        "{} texts embedded alone in {:.1} s",
        texts.len(),
        t0.elapsed().as_secs_f64()
    );
    let offline = offline_texts_per_s(&model, &texts, max_len);
    println!("library, one call, no HTTP (the ceiling): {offline:.1} texts/s");
    let (texts, expected) = (Arc::new(texts), Arc::new(expected));
    let serial = drive(
        &url,
        texts.clone(),
        expected.clone(),
        1,
        per_request,
        Duration::from_secs(serial_seconds as u64),
    )
    .await;
    println!(
        "{}",
        serial.line(&format!(
            "one request at a time (1–{per_request} texts/request)"
        ))
    );
    let load = drive(
        &url,
        texts,
        expected,
        clients,
        per_request,
        Duration::from_secs(seconds as u64),
    )
    .await;
    println!(
        "{}",
        load.line(&format!(
            "{clients} clients × {seconds} s (1–{per_request} texts/request)"
        ))
    );
    println!(
        "dynamic batching: {:.2}× the texts/s of one request at a time",
        load.texts_per_s() / serial.texts_per_s()
    );
    if load.lost + load.wrong + serial.lost + serial.wrong > 0 {
        eprintln!("FAILED: lost or wrong answers");
        std::process::exit(1);
    }
}
