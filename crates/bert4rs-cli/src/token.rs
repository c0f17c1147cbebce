//! `predict` and `eval` on a token-classification (NER) model directory: entities in
//! character offsets of each input text, and entity-level metrics on tagged data.

use super::DataArgs;
use bert4rs::data::aligned::TokenDataset;
use bert4rs::data::tagged::{read_tagged, TaggedFormat};
use bert4rs::error::{Error, Result};
use bert4rs::kernels::CodeWidth;
use bert4rs::tasks::token_classify::TokenClassifier;
use bert4rs::train::entity_metrics::entity_metrics;
use bert4rs::train::predict::EntityTagger;
use bert4rs::train::token::{predict, TokenVocab};
use bert4rs::train::Evaluation;
use candle_core::Device;
use std::path::Path;

fn load(dir: &Path, int8: Option<CodeWidth>) -> Result<(TokenClassifier, TokenVocab)> {
    let mut model = TokenClassifier::from_dir(dir, &Device::Cpu, false, None)?;
    if let Some(width) = int8 {
        model.quantize_int8(width)?;
    }
    let vocab = TokenVocab::from_dir(dir, &model)?;
    Ok((model, vocab))
}

fn layout<'a>(v: &'a TokenVocab) -> bert4rs::data::aligned::Vocabulary<'a> {
    v.layout()
}

/// Writes `{"entities": [{"start", "end", "label", "text", "score"}]}` per input text.
pub fn predict_entities(
    dir: &Path,
    input: &Path,
    output: &Path,
    fields: &DataArgs,
    int8: Option<CodeWidth>,
) -> Result<usize> {
    let mut tagger = EntityTagger::from_dir(dir)?;
    if let Some(width) = int8 {
        tagger.quantize_int8(width)?;
    }
    let ex = bert4rs::data::dataset::read_labelled(input, &fields.config(), false)?;
    let all = tagger.tag(input, ex, fields.max_length, fields.batch_size)?;
    let mut out = String::new();
    for entities in &all {
        let line = serde_json::json!({ "entities": entities });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    bert4rs::util::write_atomic(output, out.as_bytes())?;
    Ok(all.len())
}

/// Entity metrics of the model on a tagged file (CoNLL or JSONL).
pub fn evaluate(
    dir: &Path,
    data: &Path,
    fields: &DataArgs,
    int8: Option<CodeWidth>,
) -> Result<Evaluation> {
    let (model, vocab) = load(dir, int8)?;
    let spec = model.spec();
    let fmt = TaggedFormat {
        scheme: spec.scheme,
        repair: true,
    };
    let cfg = fields.config();
    let sentences = read_tagged(data, cfg.format, fmt)?;
    let ds = TokenDataset::new(
        data,
        sentences,
        &layout(&vocab),
        Some(&spec.labels),
        fields.max_length,
    )?;
    let (pred, loss) = predict(&model, &ds, vocab.pad_id(), fields.batch_size, &Device::Cpu)?;
    let name = |t: usize| spec.labels[t].clone();
    let gold: Vec<Vec<String>> = ds
        .tag_ids
        .iter()
        .map(|r| r.iter().map(|&t| name(t as usize)).collect())
        .collect();
    let pred: Vec<Vec<String>> = pred
        .iter()
        .map(|r| r.iter().map(|&(t, _)| name(t)).collect())
        .collect();
    let mut ev = Evaluation::new(
        &data.display().to_string(),
        0,
        loss.ok_or_else(|| Error::Invalid("no labels".into()))?,
        gold.len(),
    );
    ev.entities = Some(entity_metrics(&gold, &pred));
    Ok(ev)
}
