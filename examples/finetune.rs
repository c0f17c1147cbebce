//! Fine-tune MiniLM on the polarity sentences from Rust code, with a callback of our own:
//! `cargo run --release --example finetune [-- --epochs 1]`.
//! The same engine as `bert4rs train --config configs/polarity.toml`.

use bert4rs::train::{Callback, Evaluation, RunConfig, SequenceTask, StepStats, Trainer};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Prints a line every 20 steps and after each evaluation.
struct Printer;

impl Callback for Printer {
    fn on_step(&mut self, s: &StepStats) {
        if s.step.is_multiple_of(20) {
            println!("step {:4}  loss {:.4}  lr {:.2e}", s.step, s.loss, s.lr);
        }
    }

    fn on_evaluate(&mut self, e: &Evaluation) {
        if let Some(c) = &e.classification {
            println!(
                "{} @ {}: accuracy {:.4}, macro-F1 {:.4}",
                e.split, e.step, c.accuracy, c.macro_f1
            );
        }
    }
}

fn main() -> bert4rs::Result<()> {
    bert4rs::util::init_process();
    let args: Vec<String> = std::env::args().collect();
    let epochs = args
        .iter()
        .position(|a| a == "--epochs")
        .and_then(|i| args.get(i + 1))
        .map_or("1", |s| s.as_str());
    // Any config key can be set this way; a TOML file is the same tree.
    let cfg = RunConfig::load(
        None,
        &[
            "model=\"asset:minilm\"".into(),
            "output_dir=\"runs/finetune-example\"".into(),
            "data.file=\"asset:polarity-en/sentences.csv\"".into(),
            "data.header=false".into(),
            "data.label_field=\"0\"".into(),
            "data.text_field=\"1\"".into(),
            "task.pooling=\"mean\"".into(),
            "optimizer.lr=5e-5".into(),
            "schedule.warmup_ratio=0.1".into(),
            format!("train.epochs={epochs}"),
        ],
    )?;
    bert4rs::train::prepare_run(&cfg, false)?;
    let task = SequenceTask::new(&cfg)?;
    let mut trainer = Trainer::new(cfg, task, false)?;
    println!("{}", trainer.describe());
    trainer.add_callback(Box::new(Printer));
    let summary = trainer.fit()?;
    if let Some(t) = summary.test.and_then(|t| t.classification) {
        println!("test accuracy {:.4}", t.accuracy);
    }
    println!(
        "model: {}  report: {}",
        summary.best_dir.display(),
        summary.report.display()
    );
    Ok(())
}
