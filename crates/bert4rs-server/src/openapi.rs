//! The OpenAPI document served at `/openapi.json`, derived from the handlers' annotations
//! and the request/response types (a test checks it lists exactly the routes served).

use crate::routes::{self, classify, embed, generate, meta, tokenize};
use crate::types::*;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "bert4rs",
        description = "bert4rs serve: text-embeddings-inference-compatible routes, OpenAI embeddings, classification, tagging and generation"
    ),
    paths(
        routes::compat,
        embed::embed,
        embed::openai,
        classify::predict,
        classify::tag,
        tokenize::tokenize,
        generate::generate,
        generate::generate_stream,
        meta::health,
        meta::info,
        meta::metrics,
        meta::openapi,
    ),
    components(schemas(
        Input,
        EmbedRequest,
        OpenAiEmbedRequest,
        OpenAiEmbedResponse,
        OpenAiEmbedding,
        OpenAiUsage,
        Sequence,
        PredictInput,
        PredictRequest,
        LabelScore,
        TagRequest,
        EntitySpan,
        TokenizeRequest,
        SimpleToken,
        GenerateParameters,
        GenerateRequest,
        GenerateResponse,
        StreamToken,
        StreamResponse,
        ErrorResponse,
        ModelInfo,
        Info,
    ))
)]
struct ApiDoc;

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
