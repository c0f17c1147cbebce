//! `bert4rs train`: fine-tune a classifier / regressor from a TOML run config.

use crate::error::Result;
use crate::train::{RunConfig, Trainer};
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

pub fn run(a: Args) -> Result<()> {
    let cfg = RunConfig::load(a.config.as_deref(), &a.set)?;
    eprintln!("# resolved config\n{}", cfg.to_toml()?);
    if cfg.task.kind == crate::train::config::TaskKind::CausalLm {
        return run_lm(cfg, a.resume, a.dry_run);
    }
    let mut trainer = Trainer::new(cfg, a.resume)?;
    eprintln!("{}", trainer.describe());
    if a.dry_run {
        return Ok(());
    }
    let s = trainer.fit()?;
    if s.interrupted {
        eprintln!(
            "stopped after step {} (train.stop_after_steps); continue with --resume",
            s.steps
        );
    }
    let metric = |e: &Option<crate::train::Evaluation>| -> String {
        e.as_ref()
            .map(|e| match (&e.classification, &e.regression) {
                (Some(c), _) => format!("accuracy {:.4} macro-F1 {:.4}", c.accuracy, c.macro_f1),
                (_, Some(r)) => format!("pearson {:.4} mse {:.4}", r.pearson, r.mse),
                _ => format!("loss {:.4}", e.loss),
            })
            .unwrap_or_else(|| "-".into())
    };
    eprintln!(
        "dev (best, step {}): {} · test: {}\nbest model: {}\nreport: {}",
        s.best_dev.as_ref().map_or(0, |e| e.step),
        metric(&s.best_dev),
        metric(&s.test),
        s.best_dir.display(),
        s.report.display()
    );
    println!(
        "{}",
        serde_json::to_string(&s).map_err(|e| crate::Error::Invalid(e.to_string()))?
    );
    Ok(())
}

/// `[task] kind = "causal_lm"`: GPT-2 language modelling on plain text.
fn run_lm(cfg: RunConfig, resume: bool, dry_run: bool) -> Result<()> {
    let mut trainer = crate::train::lm::LmTrainer::new(cfg, resume)?;
    eprintln!("{}", trainer.describe());
    if dry_run {
        return Ok(());
    }
    let s = trainer.fit()?;
    let ppl = |e: &Option<crate::train::lm::LmEvaluation>| {
        e.as_ref()
            .map(|e| format!("loss {:.4} perplexity {:.2}", e.loss, e.perplexity))
            .unwrap_or_else(|| "-".into())
    };
    eprintln!(
        "dev (best, step {}): {} · test: {}\nbest model: {}",
        s.best_dev.as_ref().map_or(0, |e| e.step),
        ppl(&s.best_dev),
        ppl(&s.test),
        s.best_dir.display()
    );
    println!(
        "{}",
        serde_json::to_string(&s).map_err(|e| crate::Error::Invalid(e.to_string()))?
    );
    Ok(())
}
