//! word2vec: one update of every kind (skip-gram / CBOW × hierarchical softmax / negative
//! sampling / both, and products past the sigmoid table's ±6) equals the NumPy reference
//! written from the C tool (reference/word2vec_step.py; 1e-6); the Huffman tree is C's; the
//! negative table draws ∝ count^0.75; subsampling keeps C's fraction; training puts words of
//! the same contexts together and is reproducible on one thread; both file formats round-trip
//! exactly; bad corpora, settings and files are named errors.

mod common;

use bert4rs::word2vec::sgd::{cbow, sigmoid_table, skip_gram_pair, Hogwild, Outputs};
use bert4rs::word2vec::vocab::{huffman, NegativeTable, Vocab};
use bert4rs::word2vec::{train, Corpus, Word2VecConfig, WordVectors};
use serde_json::Value;
use std::collections::HashMap;

fn matrix(v: &Value) -> (Vec<f32>, usize) {
    let rows: Vec<Vec<f32>> = serde_json::from_value(v.clone()).unwrap();
    let dim = rows[0].len();
    (rows.concat(), dim)
}

fn ids(v: &Value) -> Vec<u32> {
    serde_json::from_value(v.clone()).unwrap_or_default()
}

fn assert_rows(ours: &[f32], want: &Value, what: &str) {
    let (want, _) = matrix(want);
    let worst = ours
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst <= 1e-6, "{what}: max abs diff {worst:e}");
}

#[test]
fn one_update_of_each_kind_matches_the_numpy_reference() {
    let f = common::json("word2vec/steps.json");
    let table = sigmoid_table();
    for case in f["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (syn0, dim) = matrix(&f["syn0"]);
        let (syn0, syn1, syn1neg) = (
            Hogwild::new(syn0, dim),
            Hogwild::new(matrix(&f["syn1"]).0, dim),
            Hogwild::new(matrix(&f["syn1neg"]).0, dim),
        );
        let (hs, ns) = (case["hs"] == true, case["ns"] == true);
        let out = Outputs {
            syn1: hs.then_some(&syn1),
            syn1neg: ns.then_some(&syn1neg),
            table: &table,
        };
        let codes: Vec<u8> = serde_json::from_value(case["codes"].clone()).unwrap_or_default();
        let points = ids(&case["points"]);
        let path = hs.then_some((codes.as_slice(), points.as_slice()));
        let (contexts, negatives) = (ids(&case["contexts"]), ids(&case["negatives"]));
        let word = case["word"].as_u64().unwrap() as u32;
        let alpha = case["alpha"].as_f64().unwrap() as f32;
        let (mut mean, mut grad) = (vec![0f32; dim], vec![0f32; dim]);
        if case["sg"] == true {
            skip_gram_pair(
                &syn0,
                &out,
                contexts[0],
                word,
                path,
                &negatives,
                alpha,
                &mut grad,
            );
        } else {
            let bufs = (mean.as_mut_slice(), grad.as_mut_slice());
            cbow(&syn0, &out, &contexts, word, path, &negatives, alpha, bufs);
        }
        assert_rows(&syn0.into_inner(), &case["syn0"], &format!("{name}: syn0"));
        assert_rows(&syn1.into_inner(), &case["syn1"], &format!("{name}: syn1"));
        assert_rows(
            &syn1neg.into_inner(),
            &case["syn1neg"],
            &format!("{name}: syn1neg"),
        );
    }
}

#[test]
fn huffman_tree_is_the_c_tools() {
    // Worked by hand through CreateBinaryTree for counts 3, 2, 1.
    let t = huffman(&[3, 2, 1]);
    assert_eq!(t.codes, vec![vec![1], vec![0, 1], vec![0, 0]]);
    assert_eq!(t.points, vec![vec![1], vec![1, 0], vec![1, 0]]);
    // A larger tree: prefix-free, complete (Kraft sum 1), frequent words no deeper.
    let counts = [50u64, 30, 20, 9, 7, 5, 3, 2, 1, 1];
    let t = huffman(&counts);
    let kraft: f64 = t.codes.iter().map(|c| 0.5f64.powi(c.len() as i32)).sum();
    assert!((kraft - 1.0).abs() < 1e-12, "{kraft}");
    for (i, a) in t.codes.iter().enumerate() {
        assert_eq!(t.points[i][0] as usize, counts.len() - 2, "root first");
        for (j, b) in t.codes.iter().enumerate() {
            if i != j {
                assert!(!b.starts_with(a), "code {i} is a prefix of code {j}");
            }
        }
        if i > 0 {
            assert!(
                t.codes[i - 1].len() <= a.len(),
                "word {i} is rarer but shallower"
            );
        }
    }
}

#[test]
fn negatives_are_drawn_in_proportion_to_count_to_the_three_quarters() {
    let counts = [100u64, 10, 1, 7, 7, 3000];
    let table = NegativeTable::new(&counts);
    let w: Vec<f64> = counts.iter().map(|&c| (c as f64).powf(0.75)).collect();
    let total: f64 = w.iter().sum();
    let exact = table.probabilities();
    let mut seen = [0usize; 6];
    let mut rng = bert4rs::word2vec::sgd::Lcg(3);
    let draws = 600_000;
    for _ in 0..draws {
        seen[table.sample(rng.draw(), rng.draw()) as usize] += 1;
    }
    for k in 0..counts.len() {
        let want = w[k] / total;
        assert!(
            (exact[k] - want).abs() < 1e-6,
            "word {k}: tables give {}",
            exact[k]
        );
        let got = seen[k] as f64 / draws as f64;
        // Four standard deviations of a binomial share.
        let sd = (want * (1.0 - want) / draws as f64).sqrt();
        assert!(
            (got - want).abs() < 4.0 * sd + 1e-6,
            "word {k}: drew {got} vs {want}"
        );
    }
}

#[test]
fn subsampling_keeps_the_c_tools_fraction() {
    let counts = HashMap::from([("the".to_string(), 10_000u64), ("rare".to_string(), 10)]);
    let v = Vocab::build(counts, 1).unwrap();
    let keep = v.keep_probabilities(1e-3);
    let t = 1e-3 * 10_010.0;
    let want = ((10_000.0f64 / t).sqrt() + 1.0) * t / 10_000.0;
    assert!(
        (keep[0] as f64 - want).abs() < 1e-6,
        "{} vs {want}",
        keep[0]
    );
    assert_eq!(keep[1], 1.0, "rare words are always kept");
    assert!(v.keep_probabilities(0.0).iter().all(|&p| p == 1.0));
}

/// Sentences where `cat` and `dog` share every context, and `car` / `bus` share others.
fn toy_corpus(dir: &std::path::Path) -> std::path::PathBuf {
    let mut text = String::new();
    for i in 0..400 {
        let pet = ["cat", "dog"][i % 2];
        let vehicle = ["car", "bus"][(i / 2) % 2];
        text.push_str(&format!("the {pet} eats food and sleeps at home\n"));
        text.push_str(&format!("a {vehicle} drives on the road with wheels\n"));
    }
    let p = dir.join("toy.txt");
    std::fs::write(&p, text).unwrap();
    p
}

fn cosine(v: &WordVectors, a: &str, b: &str) -> f32 {
    let (x, y) = (v.vector(a).unwrap(), v.vector(b).unwrap());
    let dot: f32 = x.iter().zip(y).map(|(a, b)| a * b).sum();
    let n = |z: &[f32]| z.iter().map(|a| a * a).sum::<f32>().sqrt();
    dot / (n(x) * n(y))
}

#[test]
fn words_of_the_same_contexts_end_up_together_and_one_thread_is_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = Corpus::read(&toy_corpus(tmp.path()), 1).unwrap();
    for (sg, hs, negative) in [(true, false, 5), (false, false, 5), (true, true, 0)] {
        let cfg = Word2VecConfig {
            vector_size: 16,
            sg,
            hs,
            negative,
            epochs: 20,
            workers: 1,
            sample: 0.0,
            min_count: 1,
            ..Default::default()
        };
        let (v, stats) = train(&corpus, &cfg).unwrap();
        let what = format!("sg {sg} hs {hs} negative {negative}");
        assert!(
            cosine(&v, "cat", "dog") > cosine(&v, "cat", "car") + 0.3,
            "{what}"
        );
        assert!(
            cosine(&v, "car", "bus") > cosine(&v, "bus", "dog") + 0.3,
            "{what}"
        );
        assert_eq!(v.most_similar("cat", 1).unwrap()[0].word, "dog", "{what}");
        assert_eq!(stats.raw_words, 800 * 8);
        let (again, _) = train(&corpus, &cfg).unwrap();
        assert_eq!(
            again.vector("cat"),
            v.vector("cat"),
            "{what}: same seed, same vectors"
        );
    }
}

#[test]
fn both_file_formats_round_trip_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let words = vec!["北京".to_string(), "a".to_string(), "b".to_string()];
    let data: Vec<f32> = (0..9)
        .map(|i| (i as f32 * 0.37 - 1.1).powi(3) / 7.0)
        .collect();
    let v = WordVectors::new(words.clone(), 3, data.clone()).unwrap();
    for name in ["v.txt", "v.bin"] {
        let p = tmp.path().join(name);
        v.save(&p).unwrap();
        let back = WordVectors::load(&p).unwrap();
        assert_eq!(back.words(), words.as_slice(), "{name}");
        for (i, w) in words.iter().enumerate() {
            assert_eq!(
                back.vector(w).unwrap(),
                &data[i * 3..i * 3 + 3],
                "{name}: {w}"
            );
        }
    }
    let text = std::fs::read_to_string(tmp.path().join("v.txt")).unwrap();
    assert!(text.starts_with("3 3\n北京 "), "{text}");
}

#[test]
fn bad_corpora_settings_and_files_are_named_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.txt");
    std::fs::write(&bad, b"good words here\nbad \xff byte\n").unwrap();
    let err = Corpus::read(&bad, 1).err().unwrap().to_string();
    assert!(err.contains("bad.txt:2") && err.contains("UTF-8"), "{err}");
    let empty = tmp.path().join("empty.txt");
    std::fs::write(&empty, "  \n\n").unwrap();
    assert!(Corpus::read(&empty, 1)
        .err()
        .unwrap()
        .to_string()
        .contains("no words"));
    let err = Corpus::read(&toy_corpus(tmp.path()), 100_000)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("min_count"), "{err}");
    let cfg = Word2VecConfig {
        negative: 0,
        ..Default::default()
    };
    assert!(cfg
        .validate()
        .err()
        .unwrap()
        .to_string()
        .contains("negative = 0"));
    let cfg = Word2VecConfig {
        min_alpha: 0.5,
        ..Default::default()
    };
    assert!(cfg.validate().is_err());
    let vec_file = tmp.path().join("v.txt");
    std::fs::write(&vec_file, "2 3\na 1 2 3\nb 1 2\n").unwrap();
    let err = WordVectors::load(&vec_file).err().unwrap().to_string();
    assert!(err.contains("line 3") && err.contains("2 values"), "{err}");
    std::fs::write(&vec_file, "two three\n").unwrap();
    assert!(WordVectors::load(&vec_file)
        .err()
        .unwrap()
        .to_string()
        .contains("header"));
    let v = WordVectors::new(vec!["a".into(), "b".into()], 1, vec![1.0, 2.0]).unwrap();
    assert!(v
        .most_similar("zebra", 3)
        .err()
        .unwrap()
        .to_string()
        .contains("zebra"));
    let q = tmp.path().join("q.txt");
    std::fs::write(&q, ": s\na b a\n").unwrap();
    let err = v.evaluate_analogies(&q).err().unwrap().to_string();
    assert!(err.contains("q.txt:2"), "{err}");
}
