//! `bert4rs train` with `[task] kind = "causal_lm"`: a new tiny GPT-2 learns a small text,
//! its held-out perplexity falls, the saved model loads and generates, and an interrupted
//! run resumed from its checkpoint ends with exactly the weights of an uninterrupted one.

mod common;

use bert4rs::models::gpt2::Gpt2LMHeadModel;
use candle_core::Device;
use common::fixture;
use std::path::Path;
use std::process::Command;

const LINES: [&str; 6] = [
    "the quick brown fox will jump over the lazy dog",
    "hello world , how are you today ?",
    "the dog and the fox are good friends",
    "she will go to paris in france with her man",
    "we eat bread and food at home",
    "they love to play with the dog and the fox",
];

fn corpus(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("text.txt");
    let text: String = (0..40)
        .map(|i| format!("{}\n", LINES[i % LINES.len()]))
        .collect();
    std::fs::write(&p, text).unwrap();
    p
}

fn train(dir: &Path, extra: &[&str]) -> serde_json::Value {
    let text = corpus(dir);
    let mut args: Vec<String> = vec!["train".into(), "--set".into(), "task.kind=causal_lm".into()];
    for s in [
        format!("model={}", fixture("gpt2-new").display()),
        format!("tokenizer={}", fixture("vocab-small").display()),
        format!("output_dir={}", dir.join("run").display()),
        format!("data.file={}", text.display()),
        "data.split=[0.8, 0.2, 0.0]".into(),
        "data.max_length=16".into(),
        "optimizer.name=adamw".into(),
        "optimizer.lr=0.01".into(),
        "schedule.name=linear".into(),
        "train.epochs=8".into(),
        "train.batch_size=4".into(),
        "train.eval_every=0".into(),
        "train.threads=1".into(),
    ] {
        args.push("--set".into());
        args.push(s);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = Command::new(env!("CARGO_BIN_EXE_bert4rs"))
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "train failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

#[test]
fn a_new_gpt2_learns_a_small_text_and_its_saved_model_generates() {
    let dir = tempfile::tempdir().unwrap();
    let s = train(dir.path(), &[]);
    let ppl = s["best_dev"]["perplexity"].as_f64().unwrap();
    // A uniform guess over 345 tokens is perplexity 345; the text repeats.
    assert!(ppl < 20.0, "dev perplexity {ppl} after training: {s}");
    let best = Path::new(s["best_dir"].as_str().unwrap());
    let model = Gpt2LMHeadModel::from_dir(best, &Device::Cpu, false).unwrap();
    let tok = bert4rs::Tokenizer::from_dir(best).unwrap();
    let prompt: Vec<u32> = [tok.token_to_id("[CLS]").unwrap()]
        .into_iter()
        .chain(tok.encode_plain("the quick brown").unwrap())
        .collect();
    let cfg = bert4rs::generate::GenerationConfig {
        max_new_tokens: 3,
        ..Default::default()
    };
    let out = bert4rs::generate::generate(&model, &[prompt], &cfg, &mut |_| {}).unwrap();
    let text = tok.decode(&out[0].ids).unwrap();
    assert!(text.starts_with("the quick brown fox"), "{text}");
}

#[test]
fn an_interrupted_lm_run_resumes_to_the_same_weights() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    train(a.path(), &["--set", "train.epochs=2"]);
    train(
        b.path(),
        &[
            "--set",
            "train.epochs=2",
            "--set",
            "train.stop_after_steps=5",
        ],
    );
    train(b.path(), &["--set", "train.epochs=2", "--resume"]);
    let read = |d: &Path| {
        candle_core::safetensors::load(d.join("run/checkpoint/model.safetensors"), &Device::Cpu)
            .unwrap()
    };
    let (wa, wb) = (read(a.path()), read(b.path()));
    assert!(!wa.is_empty());
    for (k, t) in &wa {
        let d = common::max_abs_diff(t, &wb[k], k);
        assert_eq!(d, 0.0, "{k} differs after resume by {d}");
    }
}

#[test]
fn blocks_shorter_than_two_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = corpus(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_bert4rs"))
        .args(["train", "--set", "task.kind=causal_lm", "--set"])
        .arg(format!("model={}", fixture("gpt2-new").display()))
        .arg("--set")
        .arg(format!("tokenizer={}", fixture("vocab-small").display()))
        .arg("--set")
        .arg(format!("output_dir={}", dir.path().join("run").display()))
        .arg("--set")
        .arg(format!("data.file={}", text.display()))
        .args(["--set", "data.max_length=1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("max_length") && err.contains("2"), "{err}");
}
