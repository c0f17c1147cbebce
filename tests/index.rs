//! The retrieval index: exact cosine top-k equal to a brute force in f64 over 100,000
//! vectors, a stopped build that resumes to the same bytes as one that never stopped, and
//! clear errors for damaged indexes and wrong queries.

use bert4rs::index::{BuildSpec, IndexMeta, IndexWriter, VectorIndex, FORMAT};
use serde_json::json;
use std::path::Path;

/// Deterministic pseudo-random values in [-1, 1) (splitmix64).
fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn spec(dim: usize, count: usize) -> BuildSpec {
    BuildSpec {
        meta: IndexMeta {
            format: FORMAT.into(),
            dim,
            count,
            model: "model-dir".into(),
            pooling: "mean".into(),
            max_length: Some(128),
            source: "corpus.txt".into(),
        },
        source_bytes: 1234,
    }
}

/// Writes rows `rows` of the corpus `vecs` (dim wide) in chunks of `chunk`.
fn append(
    w: &mut IndexWriter,
    vecs: &[f32],
    dim: usize,
    rows: std::ops::Range<usize>,
    chunk: usize,
) {
    let mut r = rows.start;
    while r < rows.end {
        let e = (r + chunk).min(rows.end);
        let v: Vec<Vec<f32>> = (r..e)
            .map(|i| vecs[i * dim..(i + 1) * dim].to_vec())
            .collect();
        let t: Vec<_> = (r..e)
            .map(|i| json!({"text": format!("row {i} ✓")}))
            .collect();
        w.append(&v, &t).unwrap();
        r = e;
    }
}

fn build(out: &Path, vecs: &[f32], dim: usize, chunk: usize) {
    let count = vecs.len() / dim;
    let mut w = IndexWriter::create_or_resume(out, spec(dim, count)).unwrap();
    append(&mut w, vecs, dim, 0..count, chunk);
    w.finish().unwrap();
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn search_equals_a_brute_force_cosine_top_k_over_100k_vectors() {
    let (dim, count, k) = (32, 100_000, 10);
    let vecs = values(1, dim * count);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("idx");
    build(&out, &vecs, dim, 30_000);
    let index = VectorIndex::open(&out).unwrap();
    assert_eq!((index.meta.count, index.meta.dim), (count, dim));
    let unit: Vec<Vec<f64>> = vecs
        .chunks_exact(dim)
        .map(|r| {
            let n = r.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            r.iter().map(|x| *x as f64 / n).collect()
        })
        .collect();
    for qi in 0..20 {
        let q = values(1000 + qi, dim);
        let qn = q.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let mut want: Vec<(f64, usize)> = unit
            .iter()
            .enumerate()
            .map(|(i, r)| {
                (
                    r.iter().zip(&q).map(|(a, b)| a * *b as f64).sum::<f64>() / qn,
                    i,
                )
            })
            .collect();
        want.sort_by(|a, b| b.0.total_cmp(&a.0));
        let hits = index.search(&q, k).unwrap();
        assert_eq!(hits.len(), k);
        for (h, (score, i)) in hits.iter().zip(&want) {
            assert!(
                (h.score as f64 - score).abs() < 1e-5,
                "query {qi}: {h:?} vs ({score}, {i})"
            );
            // Rows may swap only where the f64 scores are closer than f32 can tell.
            if h.index != *i {
                let theirs = want.iter().find(|w| w.1 == h.index).unwrap().0;
                assert!(
                    (theirs - score).abs() < 1e-6,
                    "query {qi}: row {} for {i}",
                    h.index
                );
            }
        }
        assert_eq!(
            index.input(hits[0].index).unwrap()["text"],
            format!("row {} ✓", hits[0].index)
        );
    }
}

#[test]
fn a_stopped_build_resumes_to_the_same_index_as_one_that_never_stopped() {
    let (dim, count) = (8, 1_000);
    let vecs = values(7, dim * count);
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    build(&whole, &vecs, dim, 128);

    let out = dir.path().join("resumed");
    let partial = dir.path().join("resumed.partial");
    let mut w = IndexWriter::create_or_resume(&out, spec(dim, count)).unwrap();
    append(&mut w, &vecs, dim, 0..384, 128);
    drop(w); // the stop: no finish
             // A chunk cut short before its offsets were written (a kill mid-append).
    for name in ["vectors.f32", "texts.jsonl"] {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(partial.join(name))
            .unwrap();
        std::io::Write::write_all(&mut f, &[7u8; 100]).unwrap();
    }
    let unfinished = VectorIndex::open(&out).err().unwrap().to_string();
    assert!(unfinished.contains("resume"), "{unfinished}");
    let mut w = IndexWriter::create_or_resume(&out, spec(dim, count)).unwrap();
    assert_eq!(w.done(), 384, "resumes after the last complete chunk");
    append(&mut w, &vecs, dim, 384..count, 128);
    w.finish().unwrap();
    assert!(!partial.exists());
    assert_eq!(files(&whole), files(&out));

    // Another corpus (or model) under the same output starts afresh.
    let other = dir.path().join("other");
    let mut w = IndexWriter::create_or_resume(&other, spec(dim, count)).unwrap();
    append(&mut w, &vecs, dim, 0..256, 128);
    drop(w);
    let mut changed = spec(dim, count);
    changed.source_bytes += 1;
    assert_eq!(
        IndexWriter::create_or_resume(&other, changed)
            .unwrap()
            .done(),
        0
    );
}

#[test]
fn damaged_indexes_and_wrong_queries_get_clear_errors() {
    let (dim, count) = (4, 10);
    let vecs = values(3, dim * count);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("idx");
    build(&out, &vecs, dim, 4);
    let err = |e: bert4rs::Error| e.to_string();

    let again = IndexWriter::create_or_resume(&out, spec(dim, count))
        .err()
        .unwrap();
    assert!(err(again).contains("already there"));
    let nothing = IndexWriter::create_or_resume(&dir.path().join("e"), spec(dim, 0))
        .err()
        .unwrap();
    assert!(err(nothing).contains("nothing to index"));

    let index = VectorIndex::open(&out).unwrap();
    assert!(err(index.search(&[1.0; 3], 2).unwrap_err()).contains("dim 4"));
    assert!(err(index.search(&[1.0; 4], 0).unwrap_err()).contains("top_k"));
    assert_eq!(
        index.search(&[1.0; 4], 50).unwrap().len(),
        count,
        "k above the count"
    );
    drop(index);

    let v = out.join("vectors.f32");
    let bytes = std::fs::read(&v).unwrap();
    std::fs::write(&v, &bytes[..bytes.len() - 4]).unwrap();
    let e = err(VectorIndex::open(&out).err().unwrap());
    assert!(e.contains("vectors.f32") && e.contains("damaged"), "{e}");
    std::fs::write(&v, &bytes).unwrap();

    let meta = out.join("index.json");
    std::fs::write(&meta, "{\"format\": 1}").unwrap();
    assert!(err(VectorIndex::open(&out).err().unwrap()).contains("index.json"));
    assert!(
        err(VectorIndex::open(&dir.path().join("none")).err().unwrap()).contains("not an index")
    );
}
