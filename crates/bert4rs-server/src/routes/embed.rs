//! `POST /embed` (TEI) and `POST /v1/embeddings` (OpenAI).

use super::{record, tokenize_checked};
use crate::error::{ApiError, ApiJson};
use crate::types::{
    EmbedRequest, ErrorResponse, OpenAiEmbedRequest, OpenAiEmbedResponse, OpenAiEmbedding,
    OpenAiUsage,
};
use crate::{Kind, Served, Shared};
use axum::extract::State;
use axum::Json;
use base64::Engine;

type Body<T> = Result<ApiJson<T>, ApiError>;

fn is_embedding(k: &Kind) -> bool {
    matches!(k, Kind::Embedding(_))
}

/// Embeddings of one or more texts, in input order.
#[utoipa::path(post, path = "/embed", tag = "Text Embeddings Inference",
    request_body = EmbedRequest,
    responses(
        (status = 200, description = "One vector per input", body = Vec<Vec<f32>>),
        (status = 413, description = "Body over --payload-limit", body = ErrorResponse),
        (status = 415, description = "Not a JSON body", body = ErrorResponse),
        (status = 422, description = "Malformed or invalid request", body = ErrorResponse),
        (status = 429, description = "Over --max-concurrent-requests", body = ErrorResponse),
    ))]
pub async fn embed(
    State(s): State<Shared>,
    body: Body<EmbedRequest>,
) -> Result<Json<Vec<Vec<f32>>>, ApiError> {
    s.tracked("embed", async {
        let ApiJson(req) = body?;
        if let Some(d) = &req.truncation_direction {
            if !d.eq_ignore_ascii_case("right") {
                return Err(ApiError::validation(format!(
                    "truncation_direction {d:?} is not supported: only \"right\""
                )));
            }
        }
        let served = s.pick(req.model.as_deref(), "an embedding model", is_embedding)?;
        let (texts, _) = req.inputs.into_texts();
        let truncate = req.truncate.unwrap_or(s.opts.auto_truncate);
        let (mut vecs, _) = embed_texts(&s, served, &texts, truncate, "embed").await?;
        if req.normalize.unwrap_or(true) {
            vecs.iter_mut().for_each(|v| l2_normalize(v));
        }
        Ok(Json(vecs))
    })
    .await
}

/// OpenAI's embeddings API: normalised vectors, as float lists or base64.
#[utoipa::path(post, path = "/v1/embeddings", tag = "OpenAI",
    request_body = OpenAiEmbedRequest,
    responses(
        (status = 200, description = "Embeddings", body = OpenAiEmbedResponse),
        (status = 422, description = "Malformed or invalid request", body = ErrorResponse),
        (status = 429, description = "Over --max-concurrent-requests", body = ErrorResponse),
    ))]
pub async fn openai(
    State(s): State<Shared>,
    body: Body<OpenAiEmbedRequest>,
) -> Result<Json<OpenAiEmbedResponse>, ApiError> {
    s.tracked("openai", async {
        let ApiJson(req) = body?;
        let base64 = match req.encoding_format.as_deref() {
            None | Some("float") => false,
            Some("base64") => true,
            Some(other) => {
                return Err(ApiError::validation(format!(
                    "encoding_format {other:?}: use \"float\" or \"base64\""
                )))
            }
        };
        let served = openai_model(&s, req.model.as_deref())?;
        if let (Some(d), Kind::Embedding(q)) = (req.dimensions, &served.kind) {
            if d != q.backend().dim {
                return Err(ApiError::validation(format!(
                    "dimensions {d}: this model gives {}-dimensional vectors",
                    q.backend().dim
                )));
            }
        }
        let (texts, _) = req.input.into_texts();
        let (mut vecs, tokens) =
            embed_texts(&s, served, &texts, s.opts.auto_truncate, "openai").await?;
        vecs.iter_mut().for_each(|v| l2_normalize(v));
        let data = vecs
            .into_iter()
            .enumerate()
            .map(|(index, v)| OpenAiEmbedding {
                object: "embedding",
                embedding: match base64 {
                    true => serde_json::Value::String(base64_f32(&v)),
                    false => serde_json::json!(v),
                },
                index,
            })
            .collect();
        Ok(Json(OpenAiEmbedResponse {
            object: "list",
            data,
            model: served.name.clone(),
            usage: OpenAiUsage {
                prompt_tokens: tokens,
                total_tokens: tokens,
            },
        }))
    })
    .await
}

/// OpenAI clients always send a model name: a served one picks it; any other reaches the
/// embedding model when there is only one.
fn openai_model<'a>(s: &'a Shared, name: Option<&str>) -> Result<&'a Served, ApiError> {
    let embedders = s.models.iter().filter(|m| is_embedding(&m.kind)).count();
    match name {
        Some(n) if embedders == 1 && !s.models.iter().any(|m| m.name == n) => {
            s.pick(None, "an embedding model", is_embedding)
        }
        _ => s.pick(name, "an embedding model", is_embedding),
    }
}

/// Tokenizes, queues and waits: the vectors (unnormalised) and the tokens read.
async fn embed_texts(
    s: &Shared,
    served: &Served,
    texts: &[String],
    truncate: bool,
    method: &'static str,
) -> Result<(Vec<Vec<f32>>, usize), ApiError> {
    let Kind::Embedding(queue) = &served.kind else {
        return Err(ApiError::wrong_model("not an embedding model"));
    };
    let _permit = s.admit()?;
    s.check_inputs(texts)?;
    let b = queue.backend();
    let inputs = super::singles(texts);
    let encs = tokenize_checked(
        s,
        method,
        &b.encoder.tokenizer,
        &inputs,
        b.max_input_length,
        truncate,
    )?;
    let tokens = encs.iter().map(|e| e.input_ids.len()).sum();
    let jobs = encs.into_iter().map(|e| {
        let n = e.input_ids.len();
        (e, n)
    });
    let done = queue.submit(jobs.collect()).await?;
    Ok((record(s, method, done), tokens))
}

/// Divides by the L2 norm (as `torch.nn.functional.normalize`, eps 1e-12).
fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

/// Little-endian f32 bytes in base64, as OpenAI's `encoding_format = "base64"`.
fn base64_f32(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
