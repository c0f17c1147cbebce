//! Relation classification: markers go where the spans are (any script), a tiny encoder
//! learns toy relations from marked pairs, `eval` agrees with the run, a batch predicts what
//! each pair alone does, `no_relation` is left out of the F1, and bad rows (an entity not in
//! the text, a span outside it, overlapping entities, an empty file) fail with one error
//! naming file and line, writing nothing.

mod common;

use bert4rs::data::relation::{marked_text, RelationExample};
use bert4rs::train::evaluation::RelationMetrics;
use common::{bin, fixture};
use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn markers_enclose_the_spans_in_any_script() {
    let m = ["[E1]", "[/E1]", "[E2]", "[/E2]"].map(String::from);
    let ex = |text: &str, s: (usize, usize), o: (usize, usize)| RelationExample {
        text: text.into(),
        subject: s,
        object: o,
        label: None,
        line: 1,
    };
    assert_eq!(
        marked_text(&ex("李柏光从北京大学毕业", (0, 3), (4, 8)), &m),
        "[E1]李柏光[/E1]从[E2]北京大学[/E2]毕业"
    );
    assert_eq!(
        marked_text(&ex("paris: 😀 ｊｏｈｎ", (9, 13), (0, 5)), &m),
        "[E2]paris[/E2]: 😀 [E1]ｊｏｈｎ[/E1]"
    );
    // Adjacent entities: the first's end marker comes before the second's start marker.
    assert_eq!(
        marked_text(&ex("ab", (0, 1), (1, 2)), &m),
        "[E1]a[/E1][E2]b[/E2]"
    );
}

#[test]
fn no_relation_is_left_out_of_the_relation_f1() {
    let labels = ["no_relation", "a", "b"].map(String::from);
    // Gold: a, b, none, none; predicted: a, none, b, none.
    let m = RelationMetrics::new(&[1, 2, 0, 0], &[1, 0, 2, 0], &labels, "no_relation");
    assert_eq!((m.micro_precision, m.micro_recall), (0.5, 0.5));
    assert_eq!(m.micro_f1, 0.5);
    assert_eq!(m.macro_f1, 0.5, "a: F1 1, b: F1 0");
}

/// `subject verb object` sentences: the relation is the verb's; reversed pairs are none.
fn rows(n: usize, seed: u64) -> String {
    let mut rng = bert4rs::rng::Rng::new(seed);
    let people = ["john", "mary", "smith"];
    let (places, verbs) = (
        ["paris", "berlin", "york"],
        [
            ("lives in", "lives_in"),
            ("went to", "visited"),
            ("loved", "loves"),
        ],
    );
    let mut out = String::new();
    for _ in 0..n {
        let (p, q) = (people[rng.below(3)], places[rng.below(3)]);
        let (verb, label) = verbs[rng.below(3)];
        let text = format!("the dog saw {p} who {verb} {q} a city");
        let (s, o, l) = match rng.below(4) {
            0 => (q, p, "no_relation"),
            _ => (p, q, label),
        };
        out.push_str(
            &serde_json::json!({"text": text, "subject": s, "object": o, "label": l}).to_string(),
        );
        out.push('\n');
    }
    out
}

fn train(dir: &Path, train: &Path, dev: &Path, extra: &[&str]) -> std::process::Output {
    let sets = [
        format!("model={:?}", fixture("train/tiny-cls").to_str().unwrap()),
        format!("output_dir={:?}", dir.join("run").to_str().unwrap()),
        format!("data.train={:?}", train.to_str().unwrap()),
        format!("data.dev={:?}", dev.to_str().unwrap()),
        "task.kind=\"relation\"".into(),
        "optimizer.lr=3e-3".into(),
        "train.epochs=4".into(),
        "train.batch_size=16".into(),
    ];
    let mut args = vec!["train".to_string()];
    for s in sets.iter().map(String::as_str).chain(extra.iter().copied()) {
        args.push("--set".into());
        args.push(s.into());
    }
    bin(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn marked_pairs_are_learned_and_a_batch_equals_each_pair_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (tr, dev) = (
        write(d, "train.jsonl", &rows(300, 1)),
        write(d, "dev.jsonl", &rows(60, 2)),
    );
    let o = train(d, &tr, &dev, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let f1 = s["best_dev"]["relations"]["micro_f1"].as_f64().unwrap();
    assert!(f1 > 0.9, "dev relation F1 {f1}: {}", s["best_dev"]);
    let best = d.join("run/best");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(best.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["id2label"]["0"], "no_relation");
    assert_eq!(cfg["bert4rs_relation"]["pooling"], "entity_start");
    let tok = std::fs::read_to_string(best.join("tokenizer.json")).unwrap();
    assert!(
        tok.contains("\"[/E2]\""),
        "the markers are saved with the tokenizer"
    );
    let ev = bin(&[
        "eval",
        "--model",
        best.to_str().unwrap(),
        "--data",
        dev.to_str().unwrap(),
    ]);
    assert!(
        ev.status.success(),
        "{}",
        String::from_utf8_lossy(&ev.stderr)
    );
    let ev: serde_json::Value = serde_json::from_slice(&ev.stdout).unwrap();
    assert!(
        (ev["relations"]["micro_f1"].as_f64().unwrap() - f1).abs() < 1e-9,
        "eval = the run's dev"
    );
    let predict = |input: &Path| -> Vec<serde_json::Value> {
        let out = input.with_extension("pred.jsonl");
        let p = bin(&[
            "predict",
            "--model",
            best.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ]);
        assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
        std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let lines: Vec<&str> = std::fs::read_to_string(&dev)
        .unwrap()
        .leak()
        .lines()
        .take(6)
        .collect();
    let batch = predict(&write(d, "six.jsonl", &(lines.join("\n") + "\n")));
    for (i, line) in lines.iter().enumerate() {
        let one = predict(&write(d, &format!("one{i}.jsonl"), &format!("{line}\n")));
        assert_eq!(one[0]["label"], batch[i]["label"], "pair {i}");
        for (k, v) in one[0]["probabilities"].as_object().unwrap() {
            let (a, b) = (
                v.as_f64().unwrap(),
                batch[i]["probabilities"][k].as_f64().unwrap(),
            );
            assert!((a - b).abs() < 1e-5, "pair {i} {k}: {a} vs {b}");
        }
    }
}

#[test]
fn bad_relation_rows_fail_with_file_and_line_and_write_nothing() {
    let row = |v: serde_json::Value| v.to_string() + "\n";
    let good = row(
        serde_json::json!({"text": "john lives in paris", "subject": "john", "object": "paris", "label": "lives_in"}),
    );
    let cases = [
        (
            row(
                serde_json::json!({"text": "john lives in paris", "subject": "mary", "object": "paris", "label": "x"}),
            ),
            vec!["train.jsonl:2", "`mary` is not in the text"],
        ),
        (
            row(
                serde_json::json!({"text": "john", "subject": {"start": 0, "end": 9}, "object": "john", "label": "x"}),
            ),
            vec!["train.jsonl:2", "outside the text"],
        ),
        (
            row(
                serde_json::json!({"text": "new york city", "subject": "new york", "object": "york city", "label": "x"}),
            ),
            vec!["train.jsonl:2", "overlap"],
        ),
        (
            row(
                serde_json::json!({"text": "john lives in paris", "subject": "john", "object": "paris"}),
            ),
            vec!["train.jsonl:2", "label"],
        ),
    ];
    for (bad, needles) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let tr = write(d, "train.jsonl", &(good.clone() + &bad));
        let o = train(d, &tr, &tr, &[]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "should fail: {bad}");
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(lines.len(), 1, "{err}");
        for n in needles {
            assert!(lines[0].contains(n), "`{}` lacks `{n}`", lines[0]);
        }
        assert!(!d.join("run/best").exists(), "nothing written");
    }
    let tmp = tempfile::tempdir().unwrap();
    let empty = write(tmp.path(), "train.jsonl", "");
    let o = train(tmp.path(), &empty, &empty, &[]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("empty"));
}
