//! Training: the one engine ([`Trainer`]) that trains any [`Task`] — optimisers,
//! schedules, parameter groups, the tricks (EMA, FGM/PGD, R-Drop, clipping, accumulation),
//! checkpoints with exact resume, metrics and reports — and the built-in tasks:
//! [`SequenceTask`] (classification, multi-label, regression), [`TokenTask`] (NER),
//! [`RelationTask`], [`CausalLmTask`], [`MlmTask`] (masked-LM pre-training) and
//! [`SimcseTask`] (contrastive sentence embeddings), [`PromptTask`] (PET) and
//! [`Seq2SeqTask`] (bert2bert text to text).

pub mod checkpoint;
pub mod config;
pub mod distill;
pub mod early_exit;
pub mod embedding_metrics;
mod engine;
pub mod entity_metrics;
pub mod evaluation;
mod fit;
pub mod generation_metrics;
pub mod groups;
pub mod inplace;
pub mod lm;
pub mod metrics;
pub mod mlm;
pub mod optim;
pub mod predict;
pub mod prompt;
pub mod pruning;
pub mod relation;
pub mod report;
pub mod schedule;
pub mod seq2seq;
pub mod sequence;
pub mod simcse;
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
pub use prompt::PromptTask;
pub use relation::RelationTask;
pub use schedule::{Schedule, ScheduleConfig, ScheduleKind};
pub use seq2seq::Seq2SeqTask;
pub use sequence::SequenceTask;
pub use simcse::SimcseTask;
pub use task::{Split, StepOutput, Task};
pub use token::TokenTask;

/// What a front end does with the trainer of a run, whatever its task type
/// ([`with_trainer`] picks the task; a trait because the trainer's type is generic).
pub trait WithTrainer {
    /// What it gives back.
    type Output;
    /// Uses the trainer (prints its plan, fits it, ...).
    fn with<T: Task>(self, trainer: Trainer<T>) -> crate::error::Result<Self::Output>;
}

/// Builds the task `cfg.task.kind` names and its trainer (continuing from
/// `<output_dir>/checkpoint` when `resume`) and hands the trainer to `f`. A missing
/// checkpoint for `resume` fails before any data is read.
pub fn with_trainer<F: WithTrainer>(
    cfg: RunConfig,
    resume: bool,
    f: F,
) -> crate::error::Result<F::Output> {
    use config::TaskKind;
    prepare_run(&cfg, resume)?;
    match cfg.task.kind {
        TaskKind::Classify => f.with(Trainer::new(cfg.clone(), SequenceTask::new(&cfg)?, resume)?),
        TaskKind::CausalLm => f.with(Trainer::new(cfg.clone(), CausalLmTask::new(&cfg)?, resume)?),
        TaskKind::TokenClassification => {
            f.with(Trainer::new(cfg.clone(), TokenTask::new(&cfg)?, resume)?)
        }
        TaskKind::Relation => f.with(Trainer::new(cfg.clone(), RelationTask::new(&cfg)?, resume)?),
        TaskKind::Mlm => f.with(Trainer::new(cfg.clone(), MlmTask::new(&cfg)?, resume)?),
        TaskKind::Simcse => f.with(Trainer::new(cfg.clone(), SimcseTask::new(&cfg)?, resume)?),
        TaskKind::Prompt => f.with(Trainer::new(cfg.clone(), PromptTask::new(&cfg)?, resume)?),
        TaskKind::Seq2seq => f.with(Trainer::new(cfg.clone(), Seq2SeqTask::new(&cfg)?, resume)?),
    }
}

/// Trains the task `cfg.task.kind` names to the end (or to `train.stop_after_steps`):
/// what the Python package's `train()` runs.
pub fn run(cfg: RunConfig, resume: bool) -> crate::error::Result<FitSummary> {
    struct Fit;
    impl WithTrainer for Fit {
        type Output = FitSummary;
        fn with<T: Task>(self, mut trainer: Trainer<T>) -> crate::error::Result<FitSummary> {
            trainer.fit()
        }
    }
    with_trainer(cfg, resume, Fit)
}
