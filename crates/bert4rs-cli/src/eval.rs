//! `bert4rs eval`: metrics of a fine-tuned model directory on a labelled file.

use super::DataArgs;
use bert4rs::data::labelled::Dataset;
use bert4rs::error::Result;
use bert4rs::tasks::classify::SequenceClassifier;
use bert4rs::train::early_exit::{add_exit_scores, predict_with_exits};
use bert4rs::train::sequence::{evaluate_logits, predict_logits};
use bert4rs::Tokenizer;
use candle_core::Device;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Fine-tuned model directory (written by `bert4rs train`, or an HF
    /// *ForSequenceClassification directory).
    #[arg(long, value_parser = super::model_dir)]
    model: PathBuf,
    /// Labelled data: .csv / .tsv / .jsonl.
    #[arg(long)]
    data: PathBuf,
    /// Write the metrics JSON here (atomically) as well as to stdout.
    #[arg(long)]
    output: Option<PathBuf>,
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
    /// Early exit (a classifier trained with task.early_exit): each text stops at the first
    /// layer whose off-ramp's prediction entropy (nats) is below this; the metrics are of
    /// those answers, with "average_layers" under "scores".
    #[arg(long)]
    early_exit_entropy: Option<f32>,
    #[command(flatten)]
    fields: DataArgs,
}

pub fn run(a: Args) -> Result<()> {
    super::check_early_exit(&a.model, a.early_exit_entropy)?;
    super::check_dtype(a.dtype, &a.model)?;
    let int8 = a.int8_activations.with(a.int8);
    let ev = if bert4rs::tasks::relation::is_relation_model(&a.model) {
        super::relation::evaluate(&a.model, &a.data, &a.fields, int8)?
    } else if bert4rs::tasks::token_classify::is_token_model(&a.model) {
        super::token::evaluate(&a.model, &a.data, &a.fields, int8)?
    } else {
        evaluate_classifier(&a)?
    };
    let text =
        serde_json::to_string_pretty(&ev).map_err(|e| bert4rs::Error::Invalid(e.to_string()))?;
    if let Some(out) = &a.output {
        bert4rs::util::write_atomic(out, text.as_bytes())?;
    }
    println!("{text}");
    Ok(())
}

fn evaluate_classifier(a: &Args) -> Result<bert4rs::train::Evaluation> {
    let mut model = SequenceClassifier::for_inference(&a.model, &Device::Cpu, a.dtype.storage())?;
    if let Some(width) = a.int8_activations.with(a.int8) {
        model.quantize_int8(width)?;
    }
    let tokenizer = Tokenizer::from_dir(&a.model)?;
    let dcfg = a.fields.config();
    let ex = bert4rs::data::dataset::read_labelled(&a.data, &dcfg, true)?;
    let labels = (model.spec().labels.as_slice(), model.spec().problem);
    let ds = Dataset::new(&a.data, ex, &tokenizer, labels, a.fields.max_length)?;
    let ds = bert4rs::train::sequence::windowed(ds, &model, &tokenizer)?;
    let pad = tokenizer.pad_id();
    let batch = a.fields.batch_size;
    let name = a.data.display().to_string();
    let Some(e) = a.early_exit_entropy else {
        let logits = predict_logits(&model, &ds, batch, pad, &Device::Cpu)?;
        return evaluate_logits(&model, &ds, &logits, &name, 0, &Default::default());
    };
    let out = predict_with_exits(&model, &ds, batch, pad, e)?;
    let mut ev = evaluate_logits(&model, &ds, &out.logits, &name, 0, &Default::default())?;
    add_exit_scores(&mut ev, &out.layers, e);
    Ok(ev)
}
