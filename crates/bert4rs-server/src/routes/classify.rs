//! `POST /predict` (sequence classification, TEI's shape) and `POST /tag` (entities).

use super::{record, tokenize_checked};
use crate::error::{ApiError, ApiJson};
use crate::types::{
    EntitySpan, ErrorResponse, LabelScore, PredictInput, PredictRequest, Sequence, TagRequest,
};
use crate::{Kind, Shared};
use axum::extract::State;
use axum::Json;
use bert4rs::data::dataset::Example;
use bert4rs::train::predict::Prediction;
use bert4rs::TextInput;
use serde_json::Value;

type Body<T> = Result<ApiJson<T>, ApiError>;

fn is_classifier(k: &Kind) -> bool {
    matches!(k, Kind::Classifier(_))
}

fn is_tagger(k: &Kind) -> bool {
    matches!(k, Kind::Tagger(_))
}

fn as_example((i, seq): (usize, Sequence)) -> Example {
    let (text, text_pair) = match seq {
        Sequence::Single(t) | Sequence::Wrapped((t,)) => (t, None),
        Sequence::Pair(a, b) => (a, Some(b)),
    };
    Example {
        text,
        text_pair,
        label: None,
        line: i + 1,
    }
}

/// Every label with its score, most likely first (TEI's `/predict` answer for one input).
fn scores(p: Prediction) -> Vec<LabelScore> {
    let mut out: Vec<LabelScore> = match p {
        Prediction::Label { probabilities, .. } | Prediction::Labels { probabilities, .. } => {
            (probabilities.into_iter())
                .map(|(label, score)| LabelScore { score, label })
                .collect()
        }
        Prediction::Score(score) => vec![LabelScore {
            score,
            label: "score".into(),
        }],
    };
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

/// Labels and probabilities of a text, a pair, or a list of them.
#[utoipa::path(post, path = "/predict", tag = "Text Embeddings Inference",
    request_body = PredictRequest,
    responses(
        (status = 200, description = "Scores per label, most likely first; a list of such lists for a batch", body = Vec<LabelScore>),
        (status = 400, description = "The model is not a classifier", body = ErrorResponse),
        (status = 422, description = "Malformed or invalid request", body = ErrorResponse),
        (status = 429, description = "Over --max-concurrent-requests", body = ErrorResponse),
    ))]
pub async fn predict(
    State(s): State<Shared>,
    body: Body<PredictRequest>,
) -> Result<Json<Value>, ApiError> {
    s.tracked("predict", async {
        let ApiJson(req) = body?;
        if req.raw_scores == Some(true) {
            return Err(ApiError::validation(
                "raw_scores is not supported: scores are probabilities",
            ));
        }
        let served = s.pick(req.model.as_deref(), "a classifier", is_classifier)?;
        let Kind::Classifier(queue) = &served.kind else {
            return Err(ApiError::wrong_model("not a classifier"));
        };
        let (seqs, batch) = match req.inputs {
            PredictInput::Single(x) => (vec![x], false),
            PredictInput::Batch(v) => (v, true),
        };
        let examples: Vec<Example> = seqs.into_iter().enumerate().map(as_example).collect();
        let _permit = s.admit()?;
        let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
        s.check_inputs(&texts)?;
        let inputs: Vec<TextInput> = (examples.iter())
            .map(|e| TextInput {
                text: e.text.clone(),
                text_pair: e.text_pair.clone(),
            })
            .collect();
        let b = queue.backend();
        if b.classifier.reads_long_texts() && examples.iter().any(|e| e.text_pair.is_some()) {
            return Err(ApiError::validation(
                "this model reads long texts as windows: send single texts, not pairs",
            ));
        }
        let truncate = req.truncate.unwrap_or(s.opts.auto_truncate);
        let tok = b.classifier.tokenizer();
        let encs = tokenize_checked(&s, "predict", tok, &inputs, b.max_input_length, truncate)?;
        let jobs = examples
            .into_iter()
            .zip(&encs)
            .map(|(e, enc)| (e, enc.input_ids.len()));
        let done = queue.submit(jobs.collect()).await?;
        let answers: Vec<Vec<LabelScore>> = record(&s, "predict", done)
            .into_iter()
            .map(scores)
            .collect();
        Ok(Json(super::one_or_list(answers, batch)))
    })
    .await
}

/// The entities of a text (a list of spans) or of each text of a list.
#[utoipa::path(post, path = "/tag", tag = "bert4rs",
    request_body = TagRequest,
    responses(
        (status = 200, description = "Entities in character offsets; a list of lists for a batch", body = Vec<EntitySpan>),
        (status = 400, description = "The model is not a token model", body = ErrorResponse),
        (status = 422, description = "Malformed or invalid request", body = ErrorResponse),
        (status = 429, description = "Over --max-concurrent-requests", body = ErrorResponse),
    ))]
pub async fn tag(State(s): State<Shared>, body: Body<TagRequest>) -> Result<Json<Value>, ApiError> {
    s.tracked("tag", async {
        let ApiJson(req) = body?;
        let served = s.pick(req.model.as_deref(), "a token model", is_tagger)?;
        let Kind::Tagger(queue) = &served.kind else {
            return Err(ApiError::wrong_model("not a token model"));
        };
        let (texts, batch) = req.inputs.into_texts();
        let _permit = s.admit()?;
        s.check_inputs(&texts)?;
        // Long texts are tagged window by window, so any length is taken; the budget
        // counts sub-words when there is a tokenizer, characters otherwise.
        let counts: Vec<usize> = match &queue.backend().tokenizer {
            Some(tok) => {
                let inputs = super::singles(&texts);
                let encs = tokenize_checked(&s, "tag", tok, &inputs, usize::MAX, false)?;
                encs.iter().map(|e| e.input_ids.len()).collect()
            }
            None => texts.iter().map(|t| t.chars().count()).collect(),
        };
        let jobs = texts.into_iter().zip(counts);
        let done = queue.submit(jobs.collect()).await?;
        let answers: Vec<Vec<EntitySpan>> = (record(&s, "tag", done).into_iter())
            .map(|ents| {
                (ents.into_iter())
                    .map(|e| EntitySpan {
                        start: e.start,
                        end: e.end,
                        label: e.label,
                        text: e.text,
                        score: e.score,
                    })
                    .collect()
            })
            .collect();
        Ok(Json(super::one_or_list(answers, batch)))
    })
    .await
}
