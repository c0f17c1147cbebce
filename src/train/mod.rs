//! Training: the one engine ([`Trainer`]) that trains any [`Task`] — optimisers,
//! schedules, parameter groups, the tricks (EMA, FGM/PGD, R-Drop, clipping, accumulation),
//! checkpoints with exact resume, metrics and reports — and the built-in tasks:
//! [`SequenceTask`] (classification, multi-label, regression), [`TokenTask`] (NER),
//! [`RelationTask`], [`CausalLmTask`] and [`MlmTask`] (masked-LM pre-training).

pub mod checkpoint;
pub mod config;
mod engine;
pub mod entity_metrics;
pub mod evaluation;
mod fit;
pub mod groups;
pub mod inplace;
pub mod lm;
pub mod metrics;
pub mod mlm;
pub mod optim;
pub mod predict;
pub mod relation;
pub mod report;
pub mod schedule;
pub mod sequence;
pub mod task;
pub mod token;
pub mod tricks;

pub use config::RunConfig;
pub use engine::{prepare_run, Trainer};
pub use evaluation::{Callback, Evaluation, FitSummary, StepStats};
pub use fit::one_line;
pub use lm::CausalLmTask;
pub use mlm::MlmTask;
pub use optim::{Algorithm, Optimizer, OptimizerConfig, ParamGroup};
pub use relation::RelationTask;
pub use schedule::{Schedule, ScheduleConfig, ScheduleKind};
pub use sequence::SequenceTask;
pub use task::{Split, StepOutput, Task};
pub use token::TokenTask;

/// Trains the task `cfg.task.kind` names to the end (or to `train.stop_after_steps`),
/// continuing from `<output_dir>/checkpoint` when `resume`: what the Python package's
/// `train()` runs (the CLI adds its printing and `--dry-run` around the same steps).
pub fn run(cfg: RunConfig, resume: bool) -> crate::error::Result<FitSummary> {
    use config::TaskKind;
    prepare_run(&cfg, resume)?;
    match cfg.task.kind {
        TaskKind::Classify => Trainer::new(cfg.clone(), SequenceTask::new(&cfg)?, resume)?.fit(),
        TaskKind::CausalLm => Trainer::new(cfg.clone(), CausalLmTask::new(&cfg)?, resume)?.fit(),
        TaskKind::TokenClassification => {
            Trainer::new(cfg.clone(), TokenTask::new(&cfg)?, resume)?.fit()
        }
        TaskKind::Relation => Trainer::new(cfg.clone(), RelationTask::new(&cfg)?, resume)?.fit(),
        TaskKind::Mlm => Trainer::new(cfg.clone(), MlmTask::new(&cfg)?, resume)?.fit(),
    }
}
