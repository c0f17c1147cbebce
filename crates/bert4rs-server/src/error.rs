//! Errors as HTTP answers: every bad request is a 4xx with TEI's `{"error", "error_type"}`
//! body and a message that says what to change; 5xx only for a failure of the server itself.

use crate::types::ErrorResponse;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The message.
    pub error: String,
    /// TEI's error type.
    pub error_type: &'static str,
}

impl ApiError {
    fn new(status: StatusCode, error_type: &'static str, error: impl Into<String>) -> Self {
        ApiError {
            status,
            error: error.into(),
            error_type,
        }
    }

    /// 422: a well-formed request the model cannot take (too many inputs, too long, ...).
    pub fn validation(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", msg)
    }

    /// 422: nothing to work on.
    pub fn empty(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "empty", msg)
    }

    /// 422: the tokenizer refused the text.
    pub fn tokenizer(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "tokenizer", msg)
    }

    /// 429: `--max-concurrent-requests` are in flight.
    pub fn overloaded(limit: usize) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "overloaded",
            format!("model is overloaded: {limit} requests in flight (--max-concurrent-requests); retry later"),
        )
    }

    /// 404: no such model or route.
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", msg)
    }

    /// 400: the route does not fit the chosen model (e.g. `/predict` on an embedding model).
    pub fn wrong_model(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "validation", msg)
    }

    /// 500: the model failed on a valid request.
    pub fn backend(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "backend", msg)
    }

    /// The answer for a body axum's JSON extractor refused: wrong content type → 415,
    /// too large → 413, malformed JSON or wrong types → 422.
    pub fn from_json_rejection(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "validation",
                "expected a `Content-Type: application/json` body",
            ),
            JsonRejection::JsonSyntaxError(e) => {
                Self::validation(format!("malformed JSON: {}", source_text(&e.body_text())))
            }
            JsonRejection::JsonDataError(e) => {
                Self::validation(format!("invalid request: {}", source_text(&e.body_text())))
            }
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "validation",
                "request body is larger than --payload-limit",
            ),
            other => Self::new(other.status(), "validation", other.body_text()),
        }
    }
}

/// serde's message without axum's "Failed to deserialize..." preamble.
fn source_text(body: &str) -> String {
    body.split_once(": ")
        .map_or(body, |(_, rest)| rest)
        .to_string()
}

impl From<bert4rs::Error> for ApiError {
    fn from(e: bert4rs::Error) -> Self {
        ApiError::backend(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorResponse {
            error: self.error,
            error_type: self.error_type.to_string(),
        };
        (self.status, Json(body)).into_response()
    }
}

/// A JSON body whose rejections are [`ApiError`]s.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(r) => Err(ApiError::from_json_rejection(r)),
        }
    }
}
