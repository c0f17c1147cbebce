//! Training: optimisers, schedules, parameter groups, the tricks (EMA, FGM/PGD, R-Drop,
//! clipping, accumulation), checkpoints with exact resume, metrics and reports.

pub mod checkpoint;
pub mod config;
pub mod groups;
pub mod inplace;
pub mod lm;
pub mod metrics;
pub mod optim;
pub mod report;
mod run_loop;
pub mod schedule;
pub mod trainer;
pub mod tricks;

pub use config::RunConfig;
pub use optim::{Algorithm, Optimizer, OptimizerConfig, ParamGroup};
pub use schedule::{Schedule, ScheduleConfig, ScheduleKind};
pub use trainer::{Batch, Callback, Dataset, Evaluation, FitSummary, Split, StepStats, Trainer};
