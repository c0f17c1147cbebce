//! Prediction with a fine-tuned sequence classifier, as every front end does it (`bert4rs
//! predict`, the server's `/predict`, the Python `Classifier`): texts in, labels and
//! probabilities out, with the model's own long-text windows when it was trained with them.

use super::sequence::{predict_logits, windowed};
use crate::data::dataset::Example;
use crate::data::labelled::{Dataset, Problem};
use crate::error::Result;
use crate::tasks::classify::{argmax, probabilities, SequenceClassifier};
use crate::tokenize::Tokenizer;
use candle_core::Device;
use std::path::Path;

/// What the classifier says about one text.
#[derive(Clone, Debug, PartialEq)]
pub enum Prediction {
    /// Single-label: the most probable label and every label's probability.
    Label {
        /// The argmax label.
        label: String,
        /// `(label, probability)` in `id2label` order.
        probabilities: Vec<(String, f32)>,
    },
    /// Multi-label: the labels whose sigmoid is above 0.5, and every probability.
    Labels {
        /// The labels on.
        labels: Vec<String>,
        /// `(label, probability)` in `id2label` order.
        probabilities: Vec<(String, f32)>,
    },
    /// Regression: the predicted value.
    Score(f32),
}

/// A fine-tuned `*ForSequenceClassification` directory with its tokenizer.
pub struct TextClassifier {
    model: SequenceClassifier,
    tokenizer: Tokenizer,
}

impl TextClassifier {
    /// Loads `dir` (written by `bert4rs train`, or an HF classification directory).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Ok(TextClassifier {
            model: SequenceClassifier::from_dir(dir, &Device::Cpu, false, None)?,
            tokenizer: Tokenizer::from_dir(dir)?,
        })
    }

    /// The labels, in `id2label` order.
    pub fn labels(&self) -> &[String] {
        &self.model.spec().labels
    }

    /// Predictions for `examples` read from `source` (named in errors), in input order
    /// (`text`, optional `text_pair`), each truncated to `max_length` tokens (or cut into
    /// the model's windows), `batch_size` per forward pass.
    pub fn predict(
        &self,
        source: &Path,
        examples: Vec<Example>,
        max_length: usize,
        batch_size: usize,
    ) -> Result<Vec<Prediction>> {
        let spec = self.model.spec();
        let labels = (spec.labels.as_slice(), spec.problem);
        let ds = Dataset::unlabelled(source, examples, &self.tokenizer, labels, max_length)?;
        let ds = windowed(ds, &self.model, &self.tokenizer)?;
        let pad = self.tokenizer.pad_id();
        let logits = predict_logits(&self.model, &ds, batch_size, pad, &Device::Cpu)?;
        Ok(logits.iter().map(|row| self.prediction(row)).collect())
    }

    /// Predictions for plain texts.
    pub fn predict_texts<S: AsRef<str>>(
        &self,
        texts: &[S],
        max_length: usize,
        batch_size: usize,
    ) -> Result<Vec<Prediction>> {
        let examples = texts
            .iter()
            .enumerate()
            .map(|(i, t)| Example {
                text: t.as_ref().to_string(),
                text_pair: None,
                label: None,
                line: i + 1,
            })
            .collect();
        self.predict(Path::new("<texts>"), examples, max_length, batch_size)
    }

    fn prediction(&self, row: &[f32]) -> Prediction {
        let spec = self.model.spec();
        let p = probabilities(spec.problem, row);
        let probs = || spec.labels.iter().cloned().zip(p.iter().copied()).collect();
        match spec.problem {
            Problem::SingleLabel => Prediction::Label {
                label: spec.labels[argmax(row)].clone(),
                probabilities: probs(),
            },
            Problem::MultiLabel => Prediction::Labels {
                labels: (spec.labels.iter().zip(&p))
                    .filter(|(_, v)| **v > 0.5)
                    .map(|(l, _)| l.clone())
                    .collect(),
                probabilities: probs(),
            },
            Problem::Regression => Prediction::Score(row[0]),
        }
    }
}
