//! `POST /tokenize`: the tokens of each text with their character spans, as TEI gives them.

use crate::error::{ApiError, ApiJson};
use crate::types::{ErrorResponse, SimpleToken, TokenizeRequest};
use crate::Shared;
use axum::extract::State;
use axum::Json;
use bert4rs::Tokenizer;

/// Tokens of one or more texts (always a list of lists, as TEI).
#[utoipa::path(post, path = "/tokenize", tag = "Text Embeddings Inference",
    request_body = TokenizeRequest,
    responses(
        (status = 200, description = "Tokens per input", body = Vec<Vec<SimpleToken>>),
        (status = 422, description = "Malformed or invalid request", body = ErrorResponse),
        (status = 429, description = "Over --max-concurrent-requests", body = ErrorResponse),
    ))]
pub async fn tokenize(
    State(s): State<Shared>,
    body: Result<ApiJson<TokenizeRequest>, ApiError>,
) -> Result<Json<Vec<Vec<SimpleToken>>>, ApiError> {
    s.tracked("tokenize", async {
        let ApiJson(req) = body?;
        let served = s.pick(req.model.as_deref(), "a model with a tokenizer", |k| {
            k.tokenizer().is_some()
        })?;
        let tok = served
            .kind
            .tokenizer()
            .ok_or_else(|| ApiError::wrong_model("this model has no tokenizer"))?;
        let (texts, _) = req.inputs.into_texts();
        let _permit = s.admit()?;
        s.check_inputs(&texts)?;
        // CPU work on up to --payload-limit of text: off the async threads.
        let out = tokio::task::block_in_place(|| match req.add_special_tokens.unwrap_or(true) {
            true => with_specials(tok, &texts),
            false => without_specials(tok, &texts),
        })?;
        Ok(Json(out))
    })
    .await
}

/// Byte position of every character of `text` (and of its end), so a character span is a
/// slice in O(1).
fn char_starts(text: &str) -> Vec<usize> {
    let mut v: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    v.push(text.len());
    v
}

fn span(text: &str, starts: &[usize], (start, stop): (usize, usize)) -> String {
    let at = |c: usize| starts[c.min(starts.len() - 1)];
    text[at(start)..at(stop.max(start))].to_string()
}

fn with_specials(tok: &Tokenizer, texts: &[String]) -> Result<Vec<Vec<SimpleToken>>, ApiError> {
    let inputs = super::singles(texts);
    let encs = (tok.encode_batch(&inputs, &Default::default()))
        .map_err(|e| ApiError::tokenizer(e.to_string()))?;
    Ok(encs
        .iter()
        .zip(texts)
        .map(|(e, text)| {
            let starts = char_starts(text);
            (0..e.input_ids.len())
                .map(|i| {
                    let id = e.input_ids[i];
                    let special = e.special_tokens_mask[i] == 1;
                    let own = || tok.inner().id_to_token(id).unwrap_or_default();
                    SimpleToken {
                        id,
                        text: if special {
                            own()
                        } else {
                            span(text, &starts, e.offsets[i])
                        },
                        special,
                        start: (!special).then_some(e.offsets[i].0),
                        stop: (!special).then_some(e.offsets[i].1),
                    }
                })
                .collect()
        })
        .collect())
}

fn without_specials(tok: &Tokenizer, texts: &[String]) -> Result<Vec<Vec<SimpleToken>>, ApiError> {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let encs = (tok.encode_with_offsets(&refs)).map_err(|e| ApiError::tokenizer(e.to_string()))?;
    Ok(encs
        .iter()
        .zip(texts)
        .map(|((ids, offsets), text)| {
            let starts = char_starts(text);
            (ids.iter().zip(offsets))
                .map(|(&id, &o)| SimpleToken {
                    id,
                    text: span(text, &starts, o),
                    special: false,
                    start: Some(o.0),
                    stop: Some(o.1),
                })
                .collect()
        })
        .collect())
}
