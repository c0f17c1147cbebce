//! Request and response bodies, shaped as text-embeddings-inference's (TEI), OpenAI's
//! embeddings API and text-generation-inference's (TGI) so their clients work unchanged.
//! Every request may also name a `model` (an extension: the server can hold several).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A text or a list of texts.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(untagged, expecting = "a string or a list of strings")]
pub enum Input {
    /// One text.
    Single(String),
    /// Several texts.
    Batch(Vec<String>),
}

impl Input {
    /// The texts, and whether the request was a list.
    pub fn into_texts(self) -> (Vec<String>, bool) {
        match self {
            Input::Single(s) => (vec![s], false),
            Input::Batch(v) => (v, true),
        }
    }
}

/// `POST /embed`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedRequest {
    /// Text(s) to embed.
    pub inputs: Input,
    /// L2-normalise the vectors (default true, as TEI).
    #[serde(default)]
    pub normalize: Option<bool>,
    /// Cut texts longer than the model takes instead of refusing them (default: the
    /// server's `--auto-truncate`).
    #[serde(default)]
    pub truncate: Option<bool>,
    /// Only `"right"` (TEI's default) is supported.
    #[serde(default)]
    pub truncation_direction: Option<String>,
    /// Served model name (default: the first embedding model).
    #[serde(default)]
    pub model: Option<String>,
}

/// `POST /v1/embeddings` (OpenAI).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenAiEmbedRequest {
    /// Text(s) to embed.
    pub input: Input,
    /// Served model name; with a single embedding model any name reaches it.
    #[serde(default)]
    pub model: Option<String>,
    /// `"float"` (default) or `"base64"` (little-endian f32).
    #[serde(default)]
    pub encoding_format: Option<String>,
    /// Must equal the model's dimension when given (no Matryoshka truncation).
    #[serde(default)]
    pub dimensions: Option<usize>,
    /// Ignored (OpenAI's end-user id).
    #[serde(default)]
    pub user: Option<String>,
}

/// One vector of an OpenAI response.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiEmbedding {
    /// Always `"embedding"`.
    pub object: &'static str,
    /// The vector (a list of floats, or a base64 string).
    #[schema(value_type = Object)]
    pub embedding: serde_json::Value,
    /// Position in the request.
    pub index: usize,
}

/// Token counts of an OpenAI response.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiUsage {
    /// Tokens read.
    pub prompt_tokens: usize,
    /// Same as `prompt_tokens`.
    pub total_tokens: usize,
}

/// `POST /v1/embeddings` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiEmbedResponse {
    /// Always `"list"`.
    pub object: &'static str,
    /// One entry per input, in input order.
    pub data: Vec<OpenAiEmbedding>,
    /// The model that answered.
    pub model: String,
    /// Token counts.
    pub usage: OpenAiUsage,
}

/// A text or a text pair (`["premise", "hypothesis"]`); `["text"]` is a single text.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(untagged, expecting = "a string, [string] or a pair [string, string]")]
pub enum Sequence {
    /// One text.
    Single(String),
    /// One text in a list of one.
    Wrapped((String,)),
    /// A text pair.
    Pair(String, String),
}

/// What `/predict` takes: as TEI, a sequence, or a list of sequences. A two-element list of
/// strings is one pair (TEI's reading); write a batch of two texts as `[["a"], ["b"]]`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(
    untagged,
    expecting = "a string, a pair [string, string] or a list of strings / pairs"
)]
pub enum PredictInput {
    /// One sequence.
    Single(Sequence),
    /// Several.
    Batch(Vec<Sequence>),
}

/// `POST /predict`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// Text(s) or pair(s) to classify.
    pub inputs: PredictInput,
    /// Cut long texts instead of refusing them (default: `--auto-truncate`).
    #[serde(default)]
    pub truncate: Option<bool>,
    /// Not supported (scores are probabilities); `true` is refused.
    #[serde(default)]
    pub raw_scores: Option<bool>,
    /// Served model name (default: the first classifier).
    #[serde(default)]
    pub model: Option<String>,
}

/// One label and its probability.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LabelScore {
    /// Probability (regression: the predicted value).
    pub score: f32,
    /// The label (regression: `"score"`).
    pub label: String,
}

/// `POST /tag`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagRequest {
    /// Text(s) to tag.
    pub inputs: Input,
    /// Served model name (default: the first token model).
    #[serde(default)]
    pub model: Option<String>,
}

/// One entity, in character offsets of its text.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EntitySpan {
    /// First character.
    pub start: usize,
    /// One past the last character.
    pub end: usize,
    /// Entity type.
    pub label: String,
    /// `text[start..end]`.
    pub text: String,
    /// Mean probability of the entity's tags.
    pub score: f32,
}

/// `POST /tokenize`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenizeRequest {
    /// Text(s) to tokenize.
    pub inputs: Input,
    /// Add `[CLS]`/`[SEP]` (or the model's specials); default true.
    #[serde(default)]
    pub add_special_tokens: Option<bool>,
    /// Served model name (default: the first model with a tokenizer).
    #[serde(default)]
    pub model: Option<String>,
}

/// One token of `/tokenize`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SimpleToken {
    /// Token id.
    pub id: u32,
    /// The text the token covers (a special token: its own spelling).
    pub text: String,
    /// True for special tokens.
    pub special: bool,
    /// First character (`null` for special tokens).
    pub start: Option<usize>,
    /// One past the last character (`null` for special tokens).
    pub stop: Option<usize>,
}

/// Decoding parameters of `/generate`, named as TGI's (and HF's `GenerationConfig`).
/// Keys TGI clients send that bert4rs does not use (e.g. `details`) are ignored.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
pub struct GenerateParameters {
    /// Tokens to generate at most (default 20).
    pub max_new_tokens: Option<usize>,
    /// Sample instead of greedy decoding.
    pub do_sample: Option<bool>,
    /// Divides the logits before sampling.
    pub temperature: Option<f32>,
    /// Keep the k most likely tokens when sampling.
    pub top_k: Option<usize>,
    /// Nucleus sampling threshold.
    pub top_p: Option<f32>,
    /// Penalty on repeated tokens.
    pub repetition_penalty: Option<f32>,
    /// Ban repeated n-grams of this size.
    pub no_repeat_ngram_size: Option<usize>,
    /// Beam search width (not with `stream`).
    pub num_beams: Option<usize>,
    /// Sampling seed.
    pub seed: Option<u64>,
    /// Prepend the prompt to `generated_text` (default false, as TGI).
    pub return_full_text: Option<bool>,
}

/// `POST /generate` and `POST /generate_stream`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateRequest {
    /// The prompt.
    pub inputs: String,
    /// Decoding parameters.
    #[serde(default)]
    pub parameters: GenerateParameters,
    /// Answer as server-sent events, one per token (as `/generate_stream`).
    #[serde(default)]
    pub stream: bool,
    /// Served model name (default: the first generator).
    #[serde(default)]
    pub model: Option<String>,
}

/// `/generate` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct GenerateResponse {
    /// The generated text (after the prompt unless `return_full_text`).
    pub generated_text: String,
}

/// One streamed token.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamToken {
    /// Token id.
    pub id: u32,
    /// Text this token completes (empty while a character is unfinished).
    pub text: String,
    /// True for the end-of-text token.
    pub special: bool,
}

/// One server-sent event of a stream; the last one carries `generated_text`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamResponse {
    /// Tokens so far, from 1.
    pub index: usize,
    /// The token.
    pub token: StreamToken,
    /// The whole text, on the last event only.
    pub generated_text: Option<String>,
}

/// Every error's body, as TEI's.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorResponse {
    /// What went wrong and what to do.
    pub error: String,
    /// `validation`, `empty`, `tokenizer`, `overloaded`, `not_found`, `backend`.
    pub error_type: String,
}

/// One served model in `/info`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelInfo {
    /// Name requests use in `model`.
    pub name: String,
    /// Its directory.
    pub model_id: String,
    /// `embedding`, `classifier`, `tagger` or `generator`.
    pub kind: &'static str,
    /// Embedding pooling.
    pub pooling: Option<String>,
    /// Classifier / tagger labels.
    pub labels: Option<Vec<String>>,
    /// Longest input in tokens.
    pub max_input_length: Option<usize>,
}

/// `GET /info`: TEI's fields for the first model, and every served model.
#[derive(Debug, Serialize, ToSchema)]
pub struct Info {
    /// First model's directory.
    pub model_id: String,
    /// Always `float32`.
    pub model_dtype: &'static str,
    /// TEI's `{"embedding": {"pooling"}}` / `{"classifier": {"id2label"}}` of the first model.
    #[schema(value_type = Object)]
    pub model_type: serde_json::Value,
    /// `--max-concurrent-requests`.
    pub max_concurrent_requests: usize,
    /// First model's longest input.
    pub max_input_length: Option<usize>,
    /// `--max-batch-tokens`.
    pub max_batch_tokens: usize,
    /// `--max-batch-requests`.
    pub max_batch_requests: Option<usize>,
    /// `--max-client-batch-size`.
    pub max_client_batch_size: usize,
    /// `--auto-truncate`.
    pub auto_truncate: bool,
    /// bert4rs version.
    pub version: &'static str,
    /// Every served model.
    pub models: Vec<ModelInfo>,
}

/// `id2label` as TEI's info gives it.
pub fn id2label(labels: &[String]) -> BTreeMap<String, String> {
    labels
        .iter()
        .enumerate()
        .map(|(i, l)| (i.to_string(), l.clone()))
        .collect()
}
