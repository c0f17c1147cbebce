//! NER from the command line: every head trains on CoNLL and JSONL data and learns; `predict`
//! writes entities whose character spans round-trip to the input text (full-width
//! characters, emoji, CJK); a batch predicts what each text alone does; long sentences are
//! split into windows and joined back; bad data fails with one error naming file and line,
//! and nothing is written.

mod common;

use common::{bin, fixture};
use std::path::{Path, PathBuf};
use std::process::Output;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Sentences over a tiny world: names are PER, cities LOC (some two words long).
fn corpus(n: usize, seed: u64) -> Vec<Vec<(&'static str, &'static str)>> {
    let mut rng = bert4rs::rng::Rng::new(seed);
    let (names, places) = (["john", "mary", "smith"], ["berlin", "york", "paris"]);
    let other = ["the", "went", "to", "a", "dog", "loved", "playing"];
    (0..n)
        .map(|_| {
            let mut s = Vec::new();
            for _ in 0..3 + rng.below(6) {
                match rng.below(5) {
                    0 => s.push((names[rng.below(3)], "B-PER")),
                    1 => {
                        s.push((places[rng.below(3)], "B-LOC"));
                        if rng.below(3) == 0 {
                            s.push(("city", "I-LOC"));
                        }
                    }
                    _ => s.push((other[rng.below(7)], "O")),
                }
            }
            s
        })
        .collect()
}

fn conll(c: &[Vec<(&str, &str)>]) -> String {
    c.iter()
        .map(|s| {
            s.iter()
                .map(|(w, t)| format!("{w}\t{t}\n"))
                .collect::<String>()
                + "\n"
        })
        .collect()
}

fn jsonl(c: &[Vec<(&str, &str)>]) -> String {
    c.iter()
        .map(|s| {
            let (w, t): (Vec<&str>, Vec<&str>) = s.iter().copied().unzip();
            serde_json::json!({ "tokens": w, "tags": t }).to_string() + "\n"
        })
        .collect()
}

fn train(dir: &Path, train: &Path, dev: &Path, extra: &[&str]) -> Output {
    let out = dir.join("run");
    let sets = [
        format!("model={:?}", fixture("train/tiny-cls").to_str().unwrap()),
        format!("output_dir={:?}", out.to_str().unwrap()),
        format!("data.train={:?}", train.to_str().unwrap()),
        format!("data.dev={:?}", dev.to_str().unwrap()),
        "task.kind=\"token_classification\"".into(),
        "optimizer.lr=5e-3".into(),
        "train.epochs=3".into(),
        "train.batch_size=16".into(),
        "task.lstm_hidden=16".into(),
        "task.embedding_dim=32".into(),
    ];
    let mut args = vec!["train".to_string()];
    for s in sets.iter().map(String::as_str).chain(extra.iter().copied()) {
        args.push("--set".into());
        args.push(s.to_string());
    }
    bin(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn summary(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn every_head_learns_the_toy_entities_from_conll_and_jsonl() {
    for (head, extra, file) in [
        ("linear", &[][..], "conll"),
        ("crf", &[][..], "jsonl"),
        (
            "lstm_crf",
            &["optimizer.lr=1e-2", "train.epochs=6"][..],
            "conll",
        ),
        (
            "crf",
            &[
                "task.from_scratch=true",
                "optimizer.lr=1e-2",
                "train.epochs=6",
            ][..],
            "conll",
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let text = |c: &[Vec<(&str, &str)>]| if file == "conll" { conll(c) } else { jsonl(c) };
        let tr = write(d, &format!("train.{file}"), &text(&corpus(200, 1)));
        let dev = write(d, &format!("dev.{file}"), &text(&corpus(40, 2)));
        let head_set = format!("task.head={head:?}");
        let sets: Vec<&str> = std::iter::once(head_set.as_str())
            .chain(extra.iter().copied())
            .collect();
        let s = summary(&train(d, &tr, &dev, &sets));
        let f1 = s["best_dev"]["entities"]["micro_f1"].as_f64().unwrap();
        assert!(f1 > 0.9, "{head} ({extra:?}) on {file}: dev entity F1 {f1}");
        let best = d.join("run/best");
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(best.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(cfg["bert4rs_token"]["head"], head);
        assert_eq!(cfg["id2label"]["0"], "O");
        // `eval` on the saved model agrees with the run's own dev evaluation.
        let ev = bin(&[
            "eval",
            "--model",
            best.to_str().unwrap(),
            "--data",
            dev.to_str().unwrap(),
        ]);
        let ev: serde_json::Value = serde_json::from_slice(&summary_ok(ev)).unwrap();
        assert!(
            (ev["entities"]["micro_f1"].as_f64().unwrap() - f1).abs() < 1e-9,
            "{head}: eval differs"
        );
        // int8: the encoder's taggers keep their entities; an encoder-free one says why not.
        let args = [
            "eval",
            "--model",
            best.to_str().unwrap(),
            "--data",
            dev.to_str().unwrap(),
        ];
        let q = bin(&[&args[..], &["--int8"]].concat());
        if extra.contains(&"task.from_scratch=true") {
            let err = String::from_utf8_lossy(&q.stderr);
            assert!(!q.status.success() && err.contains("--int8"), "{err}");
        } else {
            let q: serde_json::Value = serde_json::from_slice(&summary_ok(q)).unwrap();
            let qf1 = q["entities"]["micro_f1"].as_f64().unwrap();
            assert!(qf1 > 0.9, "{head}: int8 dev entity F1 {qf1}");
        }
    }
}

fn summary_ok(o: Output) -> Vec<u8> {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

/// A linear-head model trained once for the prediction tests.
fn trained(d: &Path) -> PathBuf {
    let tr = write(d, "train.conll", &conll(&corpus(200, 1)));
    let dev = write(d, "dev.conll", &conll(&corpus(40, 2)));
    summary(&train(d, &tr, &dev, &[]));
    d.join("run/best")
}

fn predict(model: &Path, input: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let out = input.with_extension("pred.jsonl");
    let mut args = vec![
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ];
    args.extend(["--output", out.to_str().unwrap()]);
    args.extend_from_slice(extra);
    summary_ok(bin(&args));
    std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn predicted_spans_round_trip_and_a_batch_equals_each_text_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let model = trained(d);
    let texts = [
        "john went to berlin city",
        "ｍａｒｙ 😀 loved paris, smith 北京 york",
        "the dog\u{3000}went to york city with mary",
        "",
    ];
    let input = write(d, "in.txt", &(texts.join("\n") + "\n"));
    let batch = predict(&model, &input, &[]);
    assert_eq!(batch.len(), texts.len());
    let mut found = 0;
    for (text, line) in texts.iter().zip(&batch) {
        let chars: Vec<char> = text.chars().collect();
        for e in line["entities"].as_array().unwrap() {
            let (s, end) = (
                e["start"].as_u64().unwrap() as usize,
                e["end"].as_u64().unwrap() as usize,
            );
            let span: String = chars[s..end].iter().collect();
            assert_eq!(e["text"], span.as_str(), "span [{s}, {end}) of {text:?}");
            found += 1;
        }
    }
    assert!(
        found >= 6,
        "the trained model finds the names and cities: {batch:?}"
    );
    let first = &batch[0]["entities"];
    assert_eq!(first[0]["text"], "john");
    assert_eq!(first[1]["text"], "berlin city");
    assert_eq!(first[1]["label"], "LOC");
    // (A file of one empty line is an empty input file: the batch's empty text has none.)
    assert!(batch[3]["entities"].as_array().unwrap().is_empty());
    for (i, text) in texts.iter().enumerate().take(3) {
        let alone = write(d, &format!("alone{i}.txt"), &format!("{text}\n"));
        let one = predict(&model, &alone, &[]);
        let (a, b) = (&one[0]["entities"], &batch[i]["entities"]);
        assert_eq!(
            a.as_array().unwrap().len(),
            b.as_array().unwrap().len(),
            "text {i}"
        );
        for (x, y) in a.as_array().unwrap().iter().zip(b.as_array().unwrap()) {
            for k in ["start", "end", "label", "text"] {
                assert_eq!(x[k], y[k], "text {i}: {k}");
            }
            let (sx, sy) = (x["score"].as_f64().unwrap(), y["score"].as_f64().unwrap());
            assert!((sx - sy).abs() < 1e-5, "text {i}: score {sx} vs {sy}");
        }
    }
}

#[test]
fn long_sentences_are_split_into_windows_and_joined_back() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let model = trained(d);
    // 40 words, far past an 8-token window ([CLS] + 6 + [SEP]).
    let long = ["john went to berlin city"; 8].join(" ");
    let input = write(d, "long.txt", &format!("{long}\n"));
    let short = predict(&model, &input, &["--max-length", "8"]);
    let entities = short[0]["entities"].as_array().unwrap();
    let people = entities.iter().filter(|e| e["text"] == "john").count();
    let cities = entities
        .iter()
        .filter(|e| e["text"] == "berlin city")
        .count();
    assert!(
        people >= 7 && cities >= 6,
        "windows lost entities: {entities:?}"
    );
    let chars: Vec<char> = long.chars().collect();
    let mut last_end = 0;
    for e in entities {
        let (s, end) = (
            e["start"].as_u64().unwrap() as usize,
            e["end"].as_u64().unwrap() as usize,
        );
        assert!(s >= last_end, "entities in order, not overlapping");
        assert_eq!(e["text"], chars[s..end].iter().collect::<String>().as_str());
        last_end = end;
    }
}

/// Runs a training that must fail with one error line holding every needle, leaving no
/// run output.
fn fails(
    d: &Path,
    train_text: (&str, &str),
    dev_text: Option<(&str, &str)>,
    extra: &[&str],
    needles: &[&str],
) {
    let tr = write(d, train_text.0, train_text.1);
    let dev = match dev_text {
        Some((name, text)) => write(d, name, text),
        None => write(d, "dev.conll", &conll(&corpus(5, 2))),
    };
    let o = train(d, &tr, &dev, extra);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "should fail: {needles:?}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "`{}` lacks `{n}`", lines[0]);
    }
    assert!(
        !d.join("run/best").exists() && !d.join("run/checkpoint").exists(),
        "nothing written"
    );
}

#[test]
fn bad_tagged_data_fails_with_file_and_line_and_writes_nothing() {
    let ok = conll(&corpus(5, 1));
    // (train file, dev file, extra settings, what the error line must say)
    type Case<'a> = (
        (&'a str, String),
        Option<(&'a str, String)>,
        Vec<&'a str>,
        Vec<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (("train.conll", format!("{ok}john\tB-PER\nberlin\n")), None, vec![], vec!["train.conll:", "without a tag"]),
        (("train.conll", ok.clone()), Some(("dev.conll", "john\tB-ORG\n".into())), vec![], vec!["dev.conll:1", "unknown tag `B-ORG`"]),
        (("train.conll", "the\tO\ncity\tI-LOC\n".into()), None, vec!["data.repair_tags=false"], vec!["train.conll:1", "I-LOC", "follows `O`"]),
        (("train.jsonl", format!("{}\n{}\n", serde_json::json!({"tokens": ["a"], "tags": ["O"]}), serde_json::json!({"tokens": ["a", "b"], "tags": ["O"]}))), None, vec![], vec!["train.jsonl:2", "2 tokens but 1 tags"]),
        (("train.jsonl", serde_json::json!({"text": "john", "spans": [{"start": 0, "end": 9, "label": "PER"}]}).to_string()), None, vec![], vec!["train.jsonl:1", "outside the text"]),
        (("train.jsonl", serde_json::json!({"text": "new york city", "spans": [{"start": 0, "end": 8, "label": "LOC"}, {"start": 4, "end": 13, "label": "LOC"}]}).to_string()), None, vec![], vec!["train.jsonl:1", "overlaps"]),
        (("train.conll", String::new()), None, vec![], vec!["train.conll", "empty"]),
    ];
    for ((name, text), dev, extra, needles) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let dev = dev.as_ref().map(|(n, t)| (*n, t.as_str()));
        fails(tmp.path(), (name, &text), dev, &extra, &needles);
    }
}

#[test]
fn an_inside_tag_after_outside_is_repaired_with_a_warning_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let text = format!("{}the\tO\ncity\tI-LOC\n", conll(&corpus(30, 1)));
    let tr = write(d, "train.conll", &text);
    let dev = write(d, "dev.conll", &conll(&corpus(5, 2)));
    let o = train(d, &tr, &dev, &["train.epochs=1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("warning: ") && err.contains("I-LOC") && err.contains("read as B-"),
        "{err}"
    );
}
