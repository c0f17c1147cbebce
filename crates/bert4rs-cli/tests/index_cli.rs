//! `bert4rs index build|search` on MiniLM: the index holds exactly `embed --normalize`'s
//! vectors, a search's hits are the exact cosine top-k of those vectors with their texts, the
//! query tower is the index's own model, and bad use fails before any work with a clear error.

mod common;

use common::{asset, bin};
use std::path::Path;

const CORPUS: [&str; 8] = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "A man is riding a horse.",
    "The cat sleeps on the sofa.",
    "Stocks fell sharply today.",
    "Markets dropped after the report.",
    "A woman plays the violin.",
    "北京是中国的首都。",
];

fn ok(o: std::process::Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn fail(o: std::process::Output) -> String {
    assert!(!o.status.success(), "expected a failure");
    String::from_utf8(o.stderr).unwrap()
}

fn embeddings(model: &Path, input: &Path, out: &Path) -> Vec<Vec<f32>> {
    let s = |p: &Path| p.to_str().unwrap().to_string();
    ok(bin(&[
        "embed",
        "--model",
        &s(model),
        "--input",
        &s(input),
        "--output",
        &s(out),
        "--normalize",
    ]));
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            serde_json::from_value(v["embedding"].clone()).unwrap()
        })
        .collect()
}

#[test]
fn search_returns_the_exact_cosine_top_k_of_the_embedded_corpus() {
    let model = asset("minilm");
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.txt");
    std::fs::write(&corpus, CORPUS.join("\n") + "\n").unwrap();
    let idx = dir.path().join("idx");
    let (m, c, i) = (
        model.to_str().unwrap(),
        corpus.to_str().unwrap(),
        idx.to_str().unwrap(),
    );
    ok(bin(&[
        "index",
        "build",
        "--model",
        m,
        "--input",
        c,
        "--output",
        i,
        "--chunk-size",
        "3",
    ]));

    // The stored vectors are embed's, row for row.
    let want = embeddings(&model, &corpus, &dir.path().join("corpus.emb"));
    let stored: Vec<f32> = std::fs::read(idx.join("vectors.f32"))
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let flat: Vec<f32> = want.concat();
    assert_eq!(stored.len(), flat.len());
    for (a, b) in stored.iter().zip(&flat) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }

    // Hits = the brute-force top-k of the query's own embedding against those vectors.
    let queries = ["someone eats a meal", "the stock market", "首都"];
    let qfile = dir.path().join("q.txt");
    std::fs::write(&qfile, queries.join("\n") + "\n").unwrap();
    let qv = embeddings(&model, &qfile, &dir.path().join("q.emb"));
    let out = ok(bin(&[
        "index",
        "search",
        "--index",
        i,
        "--input",
        qfile.to_str().unwrap(),
        "--top-k",
        "3",
    ]));
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), queries.len());
    for ((line, q), v) in lines.iter().zip(queries).zip(&qv) {
        assert_eq!(line["text"], q);
        let mut brute: Vec<(f32, usize)> = want
            .iter()
            .enumerate()
            .map(|(r, w)| (w.iter().zip(v).map(|(a, b)| a * b).sum(), r))
            .collect();
        brute.sort_by(|a, b| b.0.total_cmp(&a.0));
        let hits = line["hits"].as_array().unwrap();
        assert_eq!(hits.len(), 3);
        for (h, (score, row)) in hits.iter().zip(&brute) {
            assert_eq!(h["index"], *row, "query {q:?}: {hits:?}");
            assert_eq!(h["text"], CORPUS[*row]);
            assert!((h["score"].as_f64().unwrap() as f32 - score).abs() < 1e-5);
        }
    }
    assert_eq!(lines[0]["hits"][0]["text"], CORPUS[0]);
    assert_eq!(lines[2]["hits"][0]["text"], CORPUS[7]);
}

#[test]
fn bad_index_use_fails_with_a_clear_error_and_leaves_nothing() {
    let model = asset("minilm");
    let dir = tempfile::tempdir().unwrap();
    let m = model.to_str().unwrap();
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let idx = dir.path().join("idx");
    let i = idx.to_str().unwrap();
    let err = fail(bin(&[
        "index",
        "build",
        "--model",
        m,
        "--input",
        empty.to_str().unwrap(),
        "--output",
        i,
    ]));
    assert!(err.contains("empty.txt"), "{err}");
    assert!(!idx.exists() && !dir.path().join("idx.partial").exists());

    let err = fail(bin(&["index", "search", "--index", i, "--query", "x"]));
    assert!(err.contains("not an index"), "{err}");

    let corpus = dir.path().join("c.txt");
    std::fs::write(&corpus, "one\ntwo\n").unwrap();
    let build = ["index", "build", "--model", m, "--input"];
    let c = corpus.to_str().unwrap();
    ok(bin(&[&build[..], &[c, "--output", i]].concat()));
    let before = std::fs::read(idx.join("vectors.f32")).unwrap();
    let err = fail(bin(&[&build[..], &[c, "--output", i]].concat()));
    assert!(err.contains("already there"), "{err}");
    assert_eq!(std::fs::read(idx.join("vectors.f32")).unwrap(), before);

    let err = fail(bin(&["index", "search", "--index", i]));
    assert!(err.contains("--query"), "{err}");
    let err = fail(bin(&[
        "index", "search", "--index", i, "--query", "x", "--top-k", "0",
    ]));
    assert!(err.contains("top-k") || err.contains("top_k"), "{err}");
}
