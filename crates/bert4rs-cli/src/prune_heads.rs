//! `bert4rs prune-heads`: remove the least important attention heads of a fine-tuned
//! classifier (importance as Michel et al. / HF's `run_bertology.py`, scored on a labelled
//! file), or the heads named, into a new directory `transformers` loads (`pruned_heads`).

use super::DataArgs;
use bert4rs::data::labelled::Dataset;
use bert4rs::error::{Error, Result};
use bert4rs::models::hub::check_output;
use bert4rs::models::pruning::prune_heads;
use bert4rs::tasks::classify::SequenceClassifier;
use bert4rs::train::pruning::{check_fraction, head_importance, heads_to_prune};
use bert4rs::Tokenizer;
use candle_core::Device;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Fine-tuned classifier directory (or any BERT-family directory with `--heads`).
    #[arg(long, value_parser = super::model_dir)]
    model: PathBuf,
    /// Output directory: the model without the pruned heads, tokenizer files copied.
    #[arg(long)]
    output: PathBuf,
    /// Share of all heads (of the unpruned model) to have removed, in [0, 1): the least
    /// important first, one head always left per layer. Needs --data.
    #[arg(long, conflicts_with = "heads", required_unless_present = "heads")]
    fraction: Option<f64>,
    /// Labelled data the importance is measured on (dev data): .csv / .tsv / .jsonl.
    #[arg(long, requires = "fraction")]
    data: Option<PathBuf>,
    /// Heads to remove instead of measuring: HF's `prune_heads` argument as JSON, layer →
    /// head numbers, e.g. '{"0": [1, 3], "5": [0]}'.
    #[arg(long)]
    heads: Option<String>,
    #[command(flatten)]
    fields: DataArgs,
}

pub fn run(a: Args) -> Result<()> {
    check_output(&a.model, &a.output)?;
    let (heads, importance) = match (&a.heads, a.fraction) {
        (Some(json), _) => (parse_heads(json)?, None),
        (None, Some(fraction)) => {
            let data = a.data.as_ref().ok_or_else(|| {
                Error::Invalid(
                    "--fraction needs --data: the labelled file to score heads on".into(),
                )
            })?;
            let imp = score(&a, data, fraction)?;
            let heads = heads_to_prune(&imp, num_heads(&a.model)?, fraction)?;
            (heads, Some(imp))
        }
        (None, None) => {
            return Err(Error::Invalid(
                "give --fraction (with --data) or --heads".into(),
            ))
        }
    };
    let summary = prune_heads(&a.model, &heads, &a.output)?;
    if let Some(imp) = &importance {
        // Beside the weights: which heads mattered, for a later, deeper cut.
        let path = a.output.join("head_importance.json");
        bert4rs::util::write_atomic(&path, pretty(serde_json::json!(imp))?.as_bytes())?;
    }
    println!("{}", pretty(serde_json::json!(summary))?);
    Ok(())
}

fn pretty(v: serde_json::Value) -> Result<String> {
    serde_json::to_string_pretty(&v).map_err(|e| Error::Invalid(e.to_string()))
}

/// `{"layer": [heads]}` → the map `prune_heads` takes.
fn parse_heads(json: &str) -> Result<BTreeMap<usize, Vec<usize>>> {
    let raw: BTreeMap<String, Vec<usize>> = serde_json::from_str(json).map_err(|e| {
        Error::Invalid(format!(
            "--heads {json:?} is not a JSON object of layer → head lists like {{\"0\": [1, 3]}}: {e}"
        ))
    })?;
    raw.into_iter()
        .map(|(k, v)| match k.parse::<usize>() {
            Ok(layer) => Ok((layer, v)),
            Err(_) => Err(Error::Invalid(format!(
                "--heads: layer {k:?} is not a layer number"
            ))),
        })
        .collect()
}

fn num_heads(model: &std::path::Path) -> Result<usize> {
    Ok(bert4rs::config::BertConfig::from_file(&model.join("config.json"))?.num_attention_heads)
}

/// Head importance of the classifier on `data`, checked (fraction, data) before scoring.
fn score(
    a: &Args,
    data: &std::path::Path,
    fraction: f64,
) -> Result<bert4rs::train::pruning::HeadImportance> {
    check_fraction(fraction)?;
    let mut model = SequenceClassifier::from_dir(&a.model, &Device::Cpu, true, None)?;
    let tokenizer = Tokenizer::from_dir(&a.model)?;
    let ex = bert4rs::data::dataset::read_labelled(data, &a.fields.config(), true)?;
    let labels = (model.spec().labels.as_slice(), model.spec().problem);
    let ds = Dataset::new(data, ex, &tokenizer, labels, a.fields.max_length)?;
    let ds = bert4rs::train::sequence::windowed(ds, &model, &tokenizer)?;
    head_importance(&mut model, &ds, a.fields.batch_size, tokenizer.pad_id())
}
