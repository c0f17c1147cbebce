//! `bert4rs predict`: labels and probabilities for every input line, in input order.

use super::DataArgs;
use bert4rs::data::labelled::Dataset;
use bert4rs::error::Result;
use bert4rs::tasks::classify::{argmax, probabilities, Problem, SequenceClassifier};
use bert4rs::train::sequence::predict_logits;
use bert4rs::Tokenizer;
use candle_core::Device;
use serde_json::json;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Fine-tuned model directory.
    #[arg(long)]
    model: PathBuf,
    /// Input: .csv / .tsv / .jsonl (a label field, if present, is ignored).
    #[arg(long)]
    input: PathBuf,
    /// Output .jsonl: {"label", "probabilities"} (multi-label: {"labels", ...};
    /// regression: {"score"}) per input line.
    #[arg(long)]
    output: PathBuf,
    #[command(flatten)]
    fields: DataArgs,
}

pub fn run(a: Args) -> Result<()> {
    if bert4rs::tasks::relation::is_relation_model(&a.model) {
        let n = super::relation::predict(&a.model, &a.input, &a.output, &a.fields)?;
        eprintln!("{n} predictions → {}", a.output.display());
        return Ok(());
    }
    if bert4rs::tasks::token_classify::is_token_model(&a.model) {
        let n = super::token::predict_entities(&a.model, &a.input, &a.output, &a.fields)?;
        eprintln!("{n} predictions → {}", a.output.display());
        return Ok(());
    }
    let model = SequenceClassifier::from_dir(&a.model, &Device::Cpu, false, None)?;
    let tokenizer = Tokenizer::from_dir(&a.model)?;
    let ex = bert4rs::data::dataset::read_labelled(&a.input, &a.fields.config(), false)?;
    let labels = (model.spec().labels.as_slice(), model.spec().problem);
    let ds = Dataset::unlabelled(&a.input, ex, &tokenizer, labels, a.fields.max_length)?;
    let ds = bert4rs::train::sequence::windowed(ds, &model, &tokenizer)?;
    let logits = predict_logits(
        &model,
        &ds,
        a.fields.batch_size,
        tokenizer.pad_id(),
        &Device::Cpu,
    )?;
    let spec = model.spec();
    let mut out = String::new();
    for row in &logits {
        let p = probabilities(spec.problem, row);
        let probs: serde_json::Map<String, serde_json::Value> = spec
            .labels
            .iter()
            .cloned()
            .zip(p.iter().map(|v| json!(v)))
            .collect();
        let line = match spec.problem {
            Problem::SingleLabel => {
                json!({"label": spec.labels[argmax(row)], "probabilities": probs})
            }
            Problem::MultiLabel => {
                let on: Vec<&String> = spec
                    .labels
                    .iter()
                    .zip(&p)
                    .filter(|(_, v)| **v > 0.5)
                    .map(|(l, _)| l)
                    .collect();
                json!({"labels": on, "probabilities": probs})
            }
            Problem::Regression => json!({"score": row[0]}),
        };
        out.push_str(&line.to_string());
        out.push('\n');
    }
    bert4rs::util::write_atomic(&a.output, out.as_bytes())?;
    eprintln!("{} predictions → {}", logits.len(), a.output.display());
    Ok(())
}
