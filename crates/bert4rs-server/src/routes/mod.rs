//! The routes, and what several of them share: tokenizing a request's texts with a length
//! check, and recording where its time went.

pub mod classify;
pub mod embed;
pub mod generate;
pub mod meta;
pub mod tokenize;

use crate::error::{ApiError, ApiJson};
use crate::queue::Done;
use crate::{Kind, Metrics, Shared};
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bert4rs::tokenize::{EncodeOptions, Encoding, Padding, TextInput, Truncation};
use bert4rs::Tokenizer;
use std::time::{Duration, Instant};

/// Every route.
pub fn router(state: Shared) -> Router {
    let limit = state.opts.payload_limit;
    Router::new()
        .route("/", post(compat))
        .route("/embed", post(embed::embed))
        .route("/v1/embeddings", post(embed::openai))
        .route("/predict", post(classify::predict))
        .route("/tag", post(classify::tag))
        .route("/tokenize", post(tokenize::tokenize))
        .route("/generate", post(generate::generate))
        .route("/generate_stream", post(generate::generate_stream))
        .route("/health", get(meta::health))
        .route("/info", get(meta::info))
        .route("/metrics", get(meta::metrics))
        .route("/openapi.json", get(meta::openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route {} {}: see GET /openapi.json",
        req.method(),
        req.uri().path()
    ))
}

async fn method_not_allowed(req: Request) -> Response {
    let msg = format!(
        "{} is not allowed on {}: see GET /openapi.json",
        req.method(),
        req.uri().path()
    );
    let mut e = ApiError::validation(msg);
    e.status = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    e.into_response()
}

/// As TEI: the route of the first model's kind (`/embed`, `/predict`, `/tag` or
/// `/generate`), with that route's body.
#[utoipa::path(post, path = "/", tag = "Text Embeddings Inference",
    request_body(content = Object, description = "The body of the first model's route"),
    responses(
        (status = 200, description = "That route's answer"),
        (status = 422, description = "Malformed or invalid request", body = crate::types::ErrorResponse),
    ))]
pub async fn compat(State(s): State<Shared>, req: Request) -> Response {
    let Some(first) = s.models.first() else {
        return ApiError::not_found("no model is served").into_response();
    };
    macro_rules! call {
        ($handler:path) => {{
            let body = ApiJson::from_request(req, &s).await;
            $handler(State(s.clone()), body).await.into_response()
        }};
    }
    match first.kind {
        Kind::Embedding(_) => call!(embed::embed),
        Kind::Classifier(_) => call!(classify::predict),
        Kind::Tagger(_) => call!(classify::tag),
        Kind::Generator(_) => call!(generate::generate),
    }
}

/// Each text as a single-text tokenizer input.
pub fn singles(texts: &[String]) -> Vec<TextInput> {
    texts
        .iter()
        .map(|t| TextInput::single(t.as_str()))
        .collect()
}

/// The answer for one input (`single`) or the list of them, as the request had it.
pub fn one_or_list<T: serde::Serialize>(mut answers: Vec<T>, list: bool) -> serde_json::Value {
    match list {
        true => serde_json::json!(answers),
        false => serde_json::json!(answers.swap_remove(0)),
    }
}

/// Tokenizes `inputs`; a text longer than `max_len` tokens is cut when `truncate`, else
/// refused with a message that says how to send it.
pub fn tokenize_checked(
    s: &Shared,
    method: &str,
    tokenizer: &Tokenizer,
    inputs: &[TextInput],
    max_len: usize,
    truncate: bool,
) -> Result<Vec<Encoding>, ApiError> {
    let start = Instant::now();
    let limited = truncate && max_len < usize::MAX;
    let opts = EncodeOptions {
        max_length: limited.then_some(max_len),
        padding: Padding::None,
        truncation: limited.then_some(Truncation::LongestFirst),
    };
    // CPU work on up to --payload-limit of text: off the async threads.
    let encs = tokio::task::block_in_place(|| tokenizer.encode_batch(inputs, &opts))
        .map_err(|e| ApiError::tokenizer(e.to_string()))?;
    for (i, e) in encs.iter().enumerate() {
        let n = e.input_ids.len();
        (s.metrics.request_input_length)
            .with_label_values(&[method])
            .observe(n as f64);
        if n > max_len {
            return Err(ApiError::validation(format!(
                "`inputs[{i}]` has {n} tokens but the model takes at most {max_len}: \
                 shorten it or send \"truncate\": true"
            )));
        }
    }
    let m = &s.metrics.request_tokenization_duration;
    Metrics::observe(m, method, start.elapsed());
    Ok(encs)
}

/// Records a request's longest queue wait and inference time; returns the answers.
pub fn record<O>(s: &Shared, method: &str, done: Vec<Done<O>>) -> Vec<O> {
    let queued = done.iter().map(|d| d.queued).max().unwrap_or_default();
    let inference: Duration = done.iter().map(|d| d.inference).max().unwrap_or_default();
    Metrics::observe(&s.metrics.request_queue_duration, method, queued);
    Metrics::observe(&s.metrics.request_inference_duration, method, inference);
    done.into_iter().map(|d| d.value).collect()
}
