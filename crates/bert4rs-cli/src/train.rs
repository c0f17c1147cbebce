//! `bert4rs train`: train any built-in task from a TOML run config (`[task] kind`).

use bert4rs::error::{Error, Result};
use bert4rs::train::{RunConfig, Task, Trainer, WithTrainer};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run config (TOML; see configs/). Without it every default applies.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a config key, e.g. --set optimizer.lr=3e-5 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Continue from <output_dir>/checkpoint.
    #[arg(long)]
    resume: bool,
    /// Load everything, write the data split, print the plan, and stop.
    #[arg(long)]
    dry_run: bool,
}

/// `bert4rs pretrain`: `train` with `task.kind = "mlm"`.
pub fn run_pretrain(mut a: Args) -> Result<()> {
    a.set.insert(0, "task.kind=\"mlm\"".into());
    run(a)
}

pub fn run(a: Args) -> Result<()> {
    let cfg = RunConfig::load(a.config.as_deref(), &a.set)?;
    // Fail fast (a missing checkpoint for --resume) before printing or loading anything.
    bert4rs::train::prepare_run(&cfg, a.resume)?;
    eprintln!("# resolved config\n{}", cfg.to_toml()?);
    bert4rs::train::with_trainer(cfg, a.resume, Fit { dry_run: a.dry_run })
}

/// Prints the plan, then (unless `--dry-run`) trains and prints the summary.
struct Fit {
    dry_run: bool,
}

impl WithTrainer for Fit {
    type Output = ();

    fn with<T: Task>(self, mut trainer: Trainer<T>) -> Result<()> {
        eprintln!("{}", trainer.describe());
        if self.dry_run {
            return Ok(());
        }
        fit(&mut trainer)
    }
}

fn fit<T: Task>(trainer: &mut Trainer<T>) -> Result<()> {
    let s = trainer.fit()?;
    if s.interrupted {
        eprintln!(
            "stopped after step {} (train.stop_after_steps); continue with --resume",
            s.steps
        );
    }
    let line = |e: &Option<bert4rs::train::Evaluation>| {
        e.as_ref()
            .map_or_else(|| "-".to_string(), bert4rs::train::one_line)
    };
    eprintln!(
        "dev (best, step {}): {} · test: {}\nbest model: {}\nreport: {}",
        s.best_dev.as_ref().map_or(0, |e| e.step),
        line(&s.best_dev),
        line(&s.test),
        s.best_dir.display(),
        s.report.display()
    );
    let json = serde_json::to_string(&s).map_err(|e| Error::Invalid(e.to_string()))?;
    println!("{json}");
    Ok(())
}
