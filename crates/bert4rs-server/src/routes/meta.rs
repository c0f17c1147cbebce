//! `GET /health`, `/info`, `/metrics`, `/openapi.json`.

use crate::types::{id2label, Info, ModelInfo};
use crate::{Kind, Served, Shared};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

/// 200 once the models are loaded (they load before the server listens).
#[utoipa::path(get, path = "/health", tag = "Text Embeddings Inference",
    responses((status = 200, description = "Ready")))]
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({}))
}

fn model_info(m: &Served) -> ModelInfo {
    let (pooling, labels, max_input_length) = match &m.kind {
        Kind::Embedding(q) => {
            let b = q.backend();
            (
                Some(b.encoder.pooling().to_string()),
                None,
                Some(b.max_input_length),
            )
        }
        Kind::Classifier(q) => {
            let b = q.backend();
            let max = (b.max_input_length < usize::MAX).then_some(b.max_input_length);
            (None, Some(b.classifier.labels().to_vec()), max)
        }
        Kind::Tagger(q) => (None, Some(q.backend().tagger.labels()), None),
        Kind::Generator(g) => (None, None, Some(g.model().config().n_positions)),
    };
    ModelInfo {
        name: m.name.clone(),
        model_id: m.dir.display().to_string(),
        kind: m.kind.name(),
        pooling,
        labels,
        max_input_length,
    }
}

/// The served models and the server's limits (TEI's fields describe the first model).
#[utoipa::path(get, path = "/info", tag = "Text Embeddings Inference",
    responses((status = 200, description = "Served models and limits", body = Info)))]
pub async fn info(State(s): State<Shared>) -> Json<Info> {
    let models: Vec<ModelInfo> = s.models.iter().map(model_info).collect();
    let first = &models[0];
    let model_type = match (first.kind, &first.labels) {
        ("embedding", _) => json!({"embedding": {"pooling": first.pooling}}),
        ("classifier", Some(l)) => json!({"classifier": {"id2label": id2label(l)}}),
        (kind, _) => json!({ kind: {} }),
    };
    Json(Info {
        model_id: first.model_id.clone(),
        model_dtype: "float32",
        model_type,
        max_concurrent_requests: s.opts.max_concurrent_requests,
        max_input_length: first.max_input_length,
        max_batch_tokens: s.opts.max_batch_tokens,
        max_batch_requests: s.opts.max_batch_requests,
        max_client_batch_size: s.opts.max_client_batch_size,
        auto_truncate: s.opts.auto_truncate,
        version: env!("CARGO_PKG_VERSION"),
        models,
    })
}

/// Prometheus text exposition (`te_*` families).
#[utoipa::path(get, path = "/metrics", tag = "Text Embeddings Inference",
    responses((status = 200, description = "Prometheus metrics", content_type = "text/plain")))]
pub async fn metrics(State(s): State<Shared>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "bert4rs",
    responses((status = 200, description = "The OpenAPI document")))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(crate::openapi::document())
}
