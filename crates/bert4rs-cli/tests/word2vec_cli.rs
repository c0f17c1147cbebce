//! `bert4rs word2vec train|similar|analogy` end to end on a toy corpus, and its bad inputs.

mod common;

use common::bin;
use serde_json::Value;
use std::path::Path;

fn corpus(dir: &Path) -> String {
    let mut text = String::new();
    for i in 0..300 {
        let (pet, vehicle) = (["cat", "dog"][i % 2], ["car", "bus"][(i / 2) % 2]);
        text.push_str(&format!("the {pet} eats food and sleeps at home\n"));
        text.push_str(&format!("a {vehicle} drives on the road with wheels\n"));
    }
    let p = dir.join("corpus.txt");
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

fn ok(out: std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn train_then_query_in_both_formats() {
    let tmp = tempfile::tempdir().unwrap();
    let input = corpus(tmp.path());
    for name in ["v.txt", "v.bin"] {
        let out = tmp.path().join(name);
        let o = out.to_str().unwrap();
        let stats = ok(bin(&[
            "word2vec",
            "train",
            "--input",
            &input,
            "--output",
            o,
            "--sg",
            "--min-count",
            "1",
            "--epochs",
            "20",
            "--vector-size",
            "16",
            "--sample",
            "0",
            "--workers",
            "1",
        ]));
        assert_eq!(stats["vocab_size"], 17, "{stats}");
        let near = ok(bin(&[
            "word2vec",
            "similar",
            "--vectors",
            o,
            "--word",
            "cat",
            "--top-k",
            "3",
        ]));
        assert_eq!(near[0]["word"], "dog", "{near}");
        let ans = ok(bin(&[
            "word2vec",
            "analogy",
            "--vectors",
            o,
            "--words",
            "cat",
            "dog",
            "car",
        ]));
        assert_eq!(ans.as_array().unwrap().len(), 5);
        let q = tmp.path().join("q.txt");
        std::fs::write(&q, ": toy\ncat dog car bus\nzebra cat dog car\n").unwrap();
        let acc = ok(bin(&[
            "word2vec",
            "analogy",
            "--vectors",
            o,
            "--questions",
            q.to_str().unwrap(),
        ]));
        assert_eq!(
            (acc["attempted"].as_u64(), acc["skipped"].as_u64()),
            (Some(1), Some(1))
        );
    }
}

#[test]
fn bad_word2vec_requests_are_named_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let input = corpus(tmp.path());
    let out = tmp.path().join("v.txt");
    let o = out.to_str().unwrap();
    let missing = tmp.path().join("nope.txt");
    let cases: [(Vec<&str>, &str); 3] = [
        (
            vec!["train", "--input", missing.to_str().unwrap(), "--output", o],
            "nope.txt",
        ),
        (
            vec!["train", "--input", &input, "--output", o, "--negative", "0"],
            "negative = 0",
        ),
        (
            vec![
                "train",
                "--input",
                &input,
                "--output",
                o,
                "--min-count",
                "100000",
            ],
            "min_count",
        ),
    ];
    for (args, needle) in cases {
        let mut a = vec!["word2vec"];
        a.extend(args);
        let r = bin(&a);
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(
            !r.status.success() && err.contains(needle),
            "{needle}: {err}"
        );
        assert!(!out.exists(), "{needle}: nothing written");
    }
    ok(bin(&[
        "word2vec",
        "train",
        "--input",
        &input,
        "--output",
        o,
        "--min-count",
        "1",
    ]));
    let r = bin(&["word2vec", "similar", "--vectors", o, "--word", "zebra"]);
    assert!(String::from_utf8_lossy(&r.stderr).contains("\"zebra\" is not in the vocabulary"));
    let r = bin(&["word2vec", "analogy", "--vectors", o]);
    assert_eq!(
        r.status.code(),
        Some(2),
        "clap: --words or --questions is required"
    );
}
