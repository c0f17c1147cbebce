//! `bert4rs prompt`: prompt-based classification metrics of a masked LM on a labelled file —
//! zero-shot (a pre-trained MLM with `--template` and `--verbalizer`) or a model `train`
//! fine-tuned with `task.kind = "prompt"` (its own template and verbalizer).

use super::DataArgs;
use bert4rs::error::{Error, Result};
use bert4rs::tasks::prompt::{PromptClassifier, PromptSpec};
use bert4rs::train::prompt::{evaluate_prompt, PromptData};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A masked LM (HF BertForMaskedLM directory), or a `train` output of kind "prompt".
    #[arg(long, value_parser = super::model_dir)]
    model: PathBuf,
    /// Labelled data: .csv / .tsv / .jsonl.
    #[arg(long)]
    data: PathBuf,
    /// The pattern, `{text}` where the text goes and one `[MASK]` (default: the model's,
    /// else "{text} It was [MASK].").
    #[arg(long)]
    template: Option<String>,
    /// Label → word, as JSON: '{"1": "great", "-1": "terrible"}' (default: the model's).
    #[arg(long)]
    verbalizer: Option<String>,
    /// Write the metrics JSON here (atomically) as well as to stdout.
    #[arg(long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    fields: DataArgs,
}

pub fn run(a: Args) -> Result<()> {
    let spec = spec(&a)?;
    let model = PromptClassifier::from_dir(&a.model, spec, false, a.fields.max_length)?;
    let ex = bert4rs::data::dataset::read_labelled(&a.data, &a.fields.config(), true)?;
    let data = PromptData::new(&model, &a.data, &ex)?;
    let ev = evaluate_prompt(&model, &data, &data.name, 0, a.fields.batch_size)?;
    let text = serde_json::to_string_pretty(&ev).map_err(|e| Error::Invalid(e.to_string()))?;
    if let Some(out) = &a.output {
        bert4rs::util::write_atomic(out, text.as_bytes())?;
    }
    println!("{text}");
    Ok(())
}

/// The flags' spec; `None` (the model's own) when neither flag is given.
fn spec(a: &Args) -> Result<Option<PromptSpec>> {
    if a.template.is_none() && a.verbalizer.is_none() {
        return Ok(None);
    }
    let saved = bert4rs::tasks::prompt::saved_spec(&a.model).ok();
    let verbalizer: BTreeMap<String, String> = match &a.verbalizer {
        Some(v) => serde_json::from_str(v).map_err(|e| {
            Error::Invalid(format!(
                "--verbalizer: {e}; expected a JSON object of label → word, e.g. '{{\"1\": \"great\", \"-1\": \"terrible\"}}'"
            ))
        })?,
        None => saved.as_ref().map(|s| s.verbalizer.clone()).ok_or_else(|| {
            Error::Invalid("--verbalizer is needed: this model has no saved prompt".into())
        })?,
    };
    let learned_tokens = saved.as_ref().map_or(0, |s| s.learned_tokens);
    let template = (a.template.clone())
        .or_else(|| saved.map(|s| s.template))
        .unwrap_or_else(|| PromptSpec::default().template);
    Ok(Some(PromptSpec {
        template,
        verbalizer,
        learned_tokens,
    }))
}
