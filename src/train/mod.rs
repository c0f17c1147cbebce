//! Training: optimisers, schedules, parameter groups, the tricks (EMA, FGM/PGD, R-Drop,
//! clipping, accumulation), checkpoints with exact resume, metrics and reports.

pub mod inplace;
pub mod optim;
pub mod schedule;
pub mod tricks;

pub use optim::{Algorithm, Optimizer, OptimizerConfig, ParamGroup};
pub use schedule::{Schedule, ScheduleConfig, ScheduleKind};
