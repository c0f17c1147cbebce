//! `bert4rs serve` as a process: bad start-up options fail before it listens, with a line
//! naming the option or directory; a good one prints its address, answers, and exits 0 on
//! SIGTERM after finishing what is in flight.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

fn serve(args: &[&str]) -> std::process::Output {
    let mut all = vec!["serve", "--port", "0"];
    all.extend_from_slice(args);
    bin(&all)
}

#[test]
fn bad_startup_options_fail_before_listening() {
    let bert = fixture("models/bert-a");
    let b = bert.to_str().unwrap();
    let named_twice = format!("x={b}");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--model", "/no/such/dir"],
            "/no/such/dir: no such directory",
        ),
        (
            vec!["--model", &named_twice, "--model", &named_twice],
            "two models are named \"x\"",
        ),
        (
            vec!["--model", b, "--max-batch-tokens", "8"],
            "--max-batch-tokens 8 is less than",
        ),
        (
            vec!["--model", b, "--max-batch-tokens", "0"],
            "--max-batch-tokens",
        ),
        (vec!["--model", b, "--pooling", "median"], "median"),
        (vec!["--model", b, "--hostname", "not-an-ip"], "not-an-ip"),
    ];
    for (args, needle) in cases {
        let out = serve(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("listening on"), "{args:?} listened first");
    }
}

/// One HTTP/1.1 request over a plain socket (no client library in this crate's tests).
fn http(addr: &str, method: &str, path: &str, body: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn serve_answers_and_exits_cleanly_on_sigterm() {
    let bert = fixture("models/bert-a");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bert4rs"))
        .args(["serve", "--port", "0", "--model"])
        .arg(&bert)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("serve exited before listening")
            .unwrap();
        if let Some(a) = line.strip_prefix("listening on http://") {
            break a.to_string();
        }
    };
    let answer = http(&addr, "POST", "/embed", r#"{"inputs": ["a b", "c"]}"#);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    let rows: Vec<Vec<f32>> = serde_json::from_str(body).unwrap();
    assert_eq!(rows.len(), 2);
    let bad = http(&addr, "POST", "/embed", r#"{"inputs": 1}"#);
    assert!(bad.starts_with("HTTP/1.1 422"), "{bad}");
    let term = Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(term.success());
    assert!(child.wait().unwrap().success(), "exit code after SIGTERM");
}
