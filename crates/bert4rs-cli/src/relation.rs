//! `predict` and `eval` on a relation model directory.

use super::DataArgs;
use bert4rs::data::relation::read_relations;
use bert4rs::error::Result;
use bert4rs::kernels::CodeWidth;
use bert4rs::tasks::classify::probabilities;
use bert4rs::tasks::relation::RelationClassifier;
use bert4rs::train::relation::{evaluate_logits, predict_logits, RelationDataset};
use bert4rs::train::Evaluation;
use candle_core::Device;
use std::path::Path;

fn dataset(
    dir: &Path,
    data: &Path,
    labelled: bool,
    fields: &DataArgs,
    int8: Option<CodeWidth>,
) -> Result<(RelationClassifier, RelationDataset, Vec<Vec<f32>>)> {
    let (mut model, tok) = RelationClassifier::from_dir(dir, &Device::Cpu, false, None)?;
    if let Some(width) = int8 {
        model.quantize_int8(width)?;
    }
    let ex = read_relations(data, labelled)?;
    let ds = RelationDataset::new(data, ex, &tok, model.spec(), fields.max_length)?;
    let logits = predict_logits(&model, &ds, tok.pad_id(), fields.batch_size, &Device::Cpu)?;
    Ok((model, ds, logits))
}

/// Writes `{"label", "probabilities"}` per input pair.
pub fn predict(
    dir: &Path,
    input: &Path,
    output: &Path,
    fields: &DataArgs,
    int8: Option<CodeWidth>,
) -> Result<usize> {
    let (model, _, logits) = dataset(dir, input, false, fields, int8)?;
    let labels = &model.spec().labels;
    let mut out = String::new();
    for row in &logits {
        let p = probabilities(bert4rs::data::labelled::Problem::SingleLabel, row);
        let best = bert4rs::tasks::classify::argmax(row);
        let probs: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .cloned()
            .zip(p.iter().map(|v| serde_json::json!(v)))
            .collect();
        out.push_str(
            &serde_json::json!({"label": labels[best], "probabilities": probs}).to_string(),
        );
        out.push('\n');
    }
    bert4rs::util::write_atomic(output, out.as_bytes())?;
    Ok(logits.len())
}

/// Loss, accuracy and relation F1 on a labelled file.
pub fn evaluate(
    dir: &Path,
    data: &Path,
    fields: &DataArgs,
    int8: Option<CodeWidth>,
) -> Result<Evaluation> {
    let (model, ds, logits) = dataset(dir, data, true, fields, int8)?;
    evaluate_logits(&model, &ds, &logits, &data.display().to_string(), 0)
}
