//! `bert4rs prompt` and `train` with `kind = "prompt"` end to end: zero-shot metrics equal
//! the library's evaluation of the same prompt; a trained prompt model is evaluated with its
//! own template and verbalizer (no flags); bad flags and MLM-less models are named errors.

mod common;

use bert4rs::tasks::prompt::{PromptClassifier, PromptSpec};
use bert4rs::train::prompt::{evaluate_prompt, PromptData};
use common::{bin, fixture};
use serde_json::Value;

const ROWS: &str = "{\"text\": \"hello world\", \"label\": \"pos\"}\n\
                    {\"text\": \"the lazy dog\", \"label\": \"neg\"}\n\
                    {\"text\": \"i love to play\", \"label\": \"pos\"}\n\
                    {\"text\": \"how are you today\", \"label\": \"neg\"}\n";
const VERBALIZER: &str = "{\"neg\": \"dog\", \"pos\": \"love\"}";
const TEMPLATE: &str = "{text} it is [MASK] .";

fn accuracy(out: std::process::Output) -> f64 {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["classification"]["accuracy"].as_f64().unwrap()
}

#[test]
fn zero_shot_then_trained_prompt_metrics_match_the_library() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d.jsonl");
    std::fs::write(&data, ROWS).unwrap();
    let (model, data_s) = (fixture("models/bert-b"), data.to_str().unwrap());
    let zero = accuracy(bin(&[
        "prompt",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data_s,
        "--template",
        TEMPLATE,
        "--verbalizer",
        VERBALIZER,
    ]));
    let spec = PromptSpec {
        template: TEMPLATE.into(),
        verbalizer: serde_json::from_str(VERBALIZER).unwrap(),
        learned_tokens: 0,
    };
    let lib = PromptClassifier::from_dir(&model, Some(spec), false, 128).unwrap();
    let ex = bert4rs::data::dataset::read_labelled(&data, &Default::default(), true).unwrap();
    let want =
        evaluate_prompt(&lib, &PromptData::new(&lib, &data, &ex).unwrap(), "d", 0, 8).unwrap();
    assert_eq!(zero, want.classification.unwrap().accuracy);
    let out_dir = tmp.path().join("run");
    let sets = [
        format!("model={:?}", model.to_str().unwrap()),
        format!("output_dir={:?}", out_dir.to_str().unwrap()),
        format!("data.train={data_s:?}"),
        format!("data.dev={data_s:?}"),
        "task.kind=\"prompt\"".into(),
        format!("task.prompt.template={TEMPLATE:?}"),
        "task.prompt.verbalizer={neg = \"dog\", pos = \"love\"}".into(),
        "train.epochs=1".into(),
    ];
    let mut args = vec!["train".to_string()];
    for s in &sets {
        args.extend(["--set".to_string(), s.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = bin(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let best = out_dir.join("best");
    let trained = accuracy(bin(&[
        "prompt",
        "--model",
        best.to_str().unwrap(),
        "--data",
        data_s,
    ]));
    assert!((0.0..=1.0).contains(&trained));
}

#[test]
fn bad_prompt_flags_and_models_are_named_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d.jsonl");
    std::fs::write(&data, ROWS).unwrap();
    let b = fixture("models/bert-b");
    let a = fixture("models/bert-a");
    let d = data.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &["--model", b.to_str().unwrap(), "--verbalizer", "{neg: dog}"],
            "--verbalizer",
        ),
        (&["--model", b.to_str().unwrap()], "no `bert4rs_prompt`"),
        (
            &["--model", a.to_str().unwrap(), "--verbalizer", VERBALIZER],
            "no masked-LM head",
        ),
        (
            &[
                "--model",
                b.to_str().unwrap(),
                "--verbalizer",
                "{\"neg\": \"dog\"}",
            ],
            "at least 2",
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec!["prompt", "--data", d];
        args.extend_from_slice(extra);
        let out = bin(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {err}");
        assert!(
            err.contains(want),
            "{extra:?}: `{err}` does not say `{want}`"
        );
    }
}
