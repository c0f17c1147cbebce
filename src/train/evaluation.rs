//! What the engine reports: each step's numbers, each evaluation's metrics (one type for
//! every task; each fills the sections that apply to it), and how a run ended.

use super::config::BestMetric;
use super::entity_metrics::EntityMetrics;
use super::metrics::{ClassMetrics, LengthBucket, RegressionMetrics};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What one optimiser step did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepStats {
    /// Step number (1 = first).
    pub step: u64,
    /// Mean training loss over the step's micro-batches.
    pub loss: f64,
    /// Learning rate of the first (highest-lr) group.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

/// Results of evaluating one data set.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Evaluation {
    /// `dev` or `test` (or a file name).
    pub split: String,
    /// Optimiser steps done when evaluated.
    pub step: u64,
    /// Mean loss.
    pub loss: f64,
    /// Examples (or blocks) evaluated.
    pub examples: usize,
    /// Classification metrics (single- and multi-label).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub classification: Option<ClassMetrics>,
    /// Regression metrics.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub regression: Option<RegressionMetrics>,
    /// Token classification: entity-level precision / recall / F1.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub entities: Option<EntityMetrics>,
    /// Relation classification: micro / macro F1 over the real relations.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub relations: Option<RelationMetrics>,
    /// Language modelling: `exp(loss)`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub perplexity: Option<f64>,
    /// Language modelling: tokens scored.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tokens: Option<usize>,
    /// Single-label macro P/R/F1 by text length (characters, buckets of 50).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub by_length: Vec<LengthBucket>,
    /// Further named numbers (a custom task's own metrics).
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub scores: BTreeMap<String, f64>,
}

impl Evaluation {
    /// An evaluation with only the common fields set.
    pub fn new(split: &str, step: u64, loss: f64, examples: usize) -> Self {
        Evaluation {
            split: split.to_string(),
            step,
            loss,
            examples,
            ..Default::default()
        }
    }

    /// The value of `metric`, oriented so that higher is better (NaN when this evaluation
    /// does not have it).
    pub fn score(&self, metric: BestMetric) -> f64 {
        let c = self.classification.as_ref();
        let r = self.regression.as_ref();
        match metric {
            BestMetric::Accuracy => c.map_or(f64::NAN, |m| m.accuracy),
            BestMetric::MacroF1 => c.map_or(f64::NAN, |m| m.macro_f1),
            BestMetric::MicroF1 => c.map_or(f64::NAN, |m| m.micro_f1),
            BestMetric::Pearson => r.map_or(f64::NAN, |m| m.pearson),
            BestMetric::Spearman => (r.map(|m| m.spearman))
                .or_else(|| self.scores.get("spearman").copied())
                .unwrap_or(f64::NAN),
            BestMetric::Loss => -self.loss,
            BestMetric::EntityF1 => self.entities.as_ref().map_or(f64::NAN, |m| m.micro_f1),
            BestMetric::RelationF1 => self.relations.as_ref().map_or(f64::NAN, |m| m.micro_f1),
            BestMetric::RougeL => self.scores.get("rouge_l").copied().unwrap_or(f64::NAN),
        }
    }

    /// The one number a line of output or a chart shows: accuracy, Pearson's r, or the
    /// perplexity; `None` for a task that has only a loss.
    pub fn headline(&self) -> Option<(&'static str, f64)> {
        if let Some(c) = &self.classification {
            return Some(("accuracy", c.accuracy));
        }
        if let Some(m) = &self.entities {
            return Some(("entity F1", m.micro_f1));
        }
        if let Some(m) = &self.relations {
            return Some(("relation F1", m.micro_f1));
        }
        if let Some(r) = &self.regression {
            return Some(("Pearson r", r.pearson));
        }
        if let Some(s) = self.scores.get("spearman") {
            return Some(("Spearman", *s));
        }
        if let Some(s) = self.scores.get("rouge_l") {
            return Some(("ROUGE-L", *s));
        }
        self.perplexity.map(|p| ("perplexity", p))
    }
}

/// Relation extraction's scores: precision / recall / F1 over the pairs whose gold or
/// predicted label is a real relation (the negative label, `no_relation`, excluded).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RelationMetrics {
    /// Correct real-relation predictions / real-relation predictions.
    pub micro_precision: f64,
    /// Correct real-relation predictions / real-relation gold pairs.
    pub micro_recall: f64,
    /// Their harmonic mean.
    pub micro_f1: f64,
    /// Mean F1 over the real relations present in the gold data.
    pub macro_f1: f64,
}

impl RelationMetrics {
    /// Scores of `pred` against `gold` (label ids into `labels`), `negative` excluded.
    pub fn new(gold: &[usize], pred: &[usize], labels: &[String], negative: &str) -> Self {
        let neg = labels.iter().position(|l| l == negative);
        let real = |i: usize| Some(i) != neg;
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let f1 = |p: f64, r: f64| {
            if p + r == 0.0 {
                0.0
            } else {
                2.0 * p * r / (p + r)
            }
        };
        let hits = gold
            .iter()
            .zip(pred)
            .filter(|(g, p)| g == p && real(**g))
            .count();
        let (n_pred, n_gold) = (
            pred.iter().filter(|&&p| real(p)).count(),
            gold.iter().filter(|&&g| real(g)).count(),
        );
        let (p, r) = (ratio(hits, n_pred), ratio(hits, n_gold));
        let per: Vec<f64> = (0..labels.len())
            .filter(|&c| real(c) && gold.contains(&c))
            .map(|c| {
                let tp = gold
                    .iter()
                    .zip(pred)
                    .filter(|(g, p)| **g == c && **p == c)
                    .count();
                let np = pred.iter().filter(|&&p| p == c).count();
                let ng = gold.iter().filter(|&&g| g == c).count();
                f1(ratio(tp, np), ratio(tp, ng))
            })
            .collect();
        RelationMetrics {
            micro_precision: p,
            micro_recall: r,
            micro_f1: f1(p, r),
            macro_f1: if per.is_empty() {
                0.0
            } else {
                per.iter().sum::<f64>() / per.len() as f64
            },
        }
    }
}

/// Called by [`super::Trainer::fit`] after each logged step and each evaluation.
pub trait Callback {
    /// After an optimiser step that is logged (`train.log_every`).
    fn on_step(&mut self, _stats: &StepStats) {}
    /// After a dev evaluation.
    fn on_evaluate(&mut self, _eval: &Evaluation) {}
}

/// How a call to [`super::Trainer::fit`] ended.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FitSummary {
    /// Steps done in total.
    pub steps: u64,
    /// True when it stopped early on purpose (`stop_after_steps`); resume to continue.
    pub interrupted: bool,
    /// Best dev evaluation.
    pub best_dev: Option<Evaluation>,
    /// Test evaluation with the best weights.
    pub test: Option<Evaluation>,
    /// Where the best model was written.
    pub best_dir: PathBuf,
    /// Where the HTML report was written.
    pub report: PathBuf,
}
