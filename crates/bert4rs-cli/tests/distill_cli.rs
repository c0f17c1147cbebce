//! Distillation (`task.distill_from`, `task.student_layers`): a student made of chosen
//! layers trains on a teacher's soft labels and saves with its own depth; bad settings fail
//! before any training.

mod common;

use common::{bin, fixture};
use std::path::Path;

const TEXTS: [&str; 5] = [
    "hello world",
    "the quick brown fox",
    "lazy dog",
    "played",
    "a fox",
];

fn data(dir: &Path, name: &str, labels: &[&str], n: usize) -> String {
    let rows: String = (0..n)
        .map(|i| {
            let row = serde_json::json!({"text": TEXTS[i % 5], "label": labels[i % labels.len()]});
            format!("{row}\n")
        })
        .collect();
    let p = dir.join(name);
    std::fs::write(&p, rows).unwrap();
    p.to_str().unwrap().to_string()
}

fn train(dir: &Path, labels: &[&str], sets: &[String]) -> std::process::Output {
    let model = fixture("train/tiny-cls");
    let mut args: Vec<String> = vec![
        "train".into(),
        "--set".into(),
        format!("model={:?}", model.to_str().unwrap()),
        "--set".into(),
        format!("output_dir={:?}", dir.join("run").to_str().unwrap()),
        "--set".into(),
        format!("data.train={:?}", data(dir, "train.jsonl", labels, 20)),
        "--set".into(),
        format!("data.dev={:?}", data(dir, "dev.jsonl", labels, 6)),
        "--set".into(),
        "train.batch_size=4".into(),
        "--set".into(),
        "train.epochs=2".into(),
    ];
    for s in sets {
        args.extend(["--set".to_string(), s.clone()]);
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    bin(&a)
}

#[test]
fn a_student_of_chosen_layers_learns_from_the_teacher_and_keeps_its_depth() {
    let tmp = tempfile::tempdir().unwrap();
    let teacher = fixture("train/tiny-cls"); // a 2-layer neg/neu/pos classifier
    let sets = [
        format!("task.distill_from={:?}", teacher.to_str().unwrap()),
        "task.student_layers=[1]".to_string(),
        "task.distill_alpha=0.9".to_string(),
        "task.distill_temperature=3.0".to_string(),
    ];
    let o = train(tmp.path(), &["neg", "neu", "pos"], &sets);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run = tmp.path().join("run");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("best/config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["num_hidden_layers"], 1);
    // The student started from the teacher's layer 1, renumbered 0.
    let init =
        bert4rs::models::hub::read_tensors(&run.join("student-init/model.safetensors")).unwrap();
    let full = bert4rs::models::hub::read_tensors(&teacher.join("model.safetensors")).unwrap();
    let key = |i: usize| format!("bert.encoder.layer.{i}.output.dense.weight");
    let (a, b) = (&init[&key(0)], &full[&key(1)]);
    let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
    assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
    assert!(!init.contains_key(&key(1)), "only the chosen layer is kept");
}

#[test]
fn bad_distillation_settings_fail_before_training() {
    let teacher = fixture("train/tiny-cls");
    let from = format!("task.distill_from={:?}", teacher.to_str().unwrap());
    let cases: [(&[&str], Vec<String>, &str); 5] = [
        (
            &["neg", "pos"],
            vec!["task.student_layers=[5]".into()],
            "layer 5 of a 2-layer",
        ),
        (
            &["neg", "pos"],
            vec!["task.distill_alpha=1.5".into()],
            "task.distill_alpha",
        ),
        (
            &["neg", "pos"],
            vec!["task.student_layers=[1, 1]".into()],
            "each once",
        ),
        (&["bad", "good"], vec![from], "teacher's labels"),
        (
            &["neg", "pos"],
            vec!["task.distill_from=\"/no/such/teacher\"".into()],
            "task.distill_from",
        ),
    ];
    for (labels, sets, needle) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let o = train(tmp.path(), labels, &sets);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(needle),
            "{sets:?}: {err}"
        );
        assert!(
            !tmp.path().join("run/best").exists(),
            "{sets:?}: nothing trained"
        );
    }
}
