//! `bert4rs predict`: labels and probabilities for every input line, in input order.

use super::DataArgs;
use bert4rs::error::Result;
use bert4rs::train::predict::{Prediction, TextClassifier};
use serde_json::json;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Fine-tuned model directory.
    #[arg(long, value_parser = super::model_dir)]
    model: PathBuf,
    /// Input: .csv / .tsv / .jsonl (a label field, if present, is ignored).
    #[arg(long)]
    input: PathBuf,
    /// Output .jsonl: {"label", "probabilities"} (multi-label: {"labels", ...};
    /// regression: {"score"}) per input line.
    #[arg(long)]
    output: PathBuf,
    /// Run the encoder on dynamically quantised int8 (weights per output channel, each
    /// token's activations at run time): about 1.3-1.6x faster on AVX2. Any model with a
    /// pre-trained encoder (classifiers, taggers, relation models).
    #[arg(long)]
    int8: bool,
    #[command(flatten)]
    int8_activations: super::Int8Activations,
    /// Weight storage: f32, or bf16 (half the weight memory, f32 arithmetic; not with
    /// --int8).
    #[arg(long, value_enum, default_value = "f32", conflicts_with = "int8")]
    dtype: super::WeightDtype,
    /// Early exit (a model trained with task.early_exit): each text stops at the first layer
    /// whose off-ramp's prediction entropy (nats) is below this; its line gets "exit_layer".
    #[arg(long)]
    early_exit_entropy: Option<f32>,
    #[command(flatten)]
    fields: DataArgs,
}

pub fn run(a: Args) -> Result<()> {
    super::check_early_exit(&a.model, a.early_exit_entropy)?;
    super::check_dtype(a.dtype, &a.model)?;
    let int8 = a.int8_activations.with(a.int8);
    if bert4rs::tasks::relation::is_relation_model(&a.model) {
        let n = super::relation::predict(&a.model, &a.input, &a.output, &a.fields, int8)?;
        eprintln!("{n} predictions → {}", a.output.display());
        return Ok(());
    }
    if bert4rs::tasks::token_classify::is_token_model(&a.model) {
        let n = super::token::predict_entities(&a.model, &a.input, &a.output, &a.fields, int8)?;
        eprintln!("{n} predictions → {}", a.output.display());
        return Ok(());
    }
    let mut classifier = TextClassifier::from_dir_as(&a.model, a.dtype.storage())?;
    if let Some(width) = int8 {
        classifier.quantize_int8(width)?;
    }
    let ex = bert4rs::data::dataset::read_labelled(&a.input, &a.fields.config(), false)?;
    let (max_len, batch) = (a.fields.max_length, a.fields.batch_size);
    let (predictions, layers) = match a.early_exit_entropy {
        None => (classifier.predict(&a.input, ex, max_len, batch)?, None),
        Some(e) => {
            let (p, l) = classifier.predict_early_exit(&a.input, ex, max_len, batch, e)?;
            (p, Some(l))
        }
    };
    let mut out = String::new();
    for (i, p) in predictions.iter().enumerate() {
        let line = match p {
            Prediction::Label {
                label,
                probabilities,
            } => json!({"label": label, "probabilities": as_map(probabilities)}),
            Prediction::Labels {
                labels,
                probabilities,
            } => json!({"labels": labels, "probabilities": as_map(probabilities)}),
            Prediction::Score(s) => json!({"score": s}),
        };
        let line = match (&layers, line) {
            (Some(l), serde_json::Value::Object(mut m)) => {
                m.insert("exit_layer".into(), json!(l[i]));
                serde_json::Value::Object(m)
            }
            (_, line) => line,
        };
        out.push_str(&line.to_string());
        out.push('\n');
    }
    bert4rs::util::write_atomic(&a.output, out.as_bytes())?;
    eprintln!("{} predictions → {}", predictions.len(), a.output.display());
    Ok(())
}

fn as_map(p: &[(String, f32)]) -> serde_json::Map<String, serde_json::Value> {
    p.iter().map(|(l, v)| (l.clone(), json!(v))).collect()
}
