//! Train a task of your own with the bert4rs engine:
//! `cargo run --release --example custom_task`.
//! `xor.rs` implements `bert4rs::train::Task`; everything else here is configuration.

mod xor;

use bert4rs::train::{RunConfig, Trainer};

fn main() -> bert4rs::Result<()> {
    let cfg = RunConfig::load(
        None,
        &[
            "output_dir=\"runs/custom-task\"".into(),
            "optimizer.lr=0.05".into(),
            "schedule.name=\"constant\"".into(),
            "train.batch_size=16".into(),
            "train.epochs=30".into(),
            "tricks.ema_decay=0.9".into(),
        ],
    )?;
    bert4rs::train::prepare_run(&cfg, false)?;
    let mut trainer = Trainer::new(cfg, xor::Xor::new(256, 7)?, false)?;
    println!("{}", trainer.describe());
    let s = trainer.fit()?;
    let dev = s.best_dev.expect("the task has a dev set");
    println!(
        "best dev loss {:.4}, accuracy {:.3} at step {}; model in {}, report {}",
        dev.loss,
        dev.scores["accuracy"],
        dev.step,
        s.best_dir.display(),
        s.report.display()
    );
    Ok(())
}
