//! `POST /generate` and `POST /generate_stream`, as text-generation-inference's: JSON with
//! the generated text, or server-sent events, one per token, the last with the whole text.

use crate::error::{ApiError, ApiJson};
use crate::types::{
    ErrorResponse, GenerateParameters, GenerateRequest, GenerateResponse, StreamResponse,
    StreamToken,
};
use crate::{Kind, Shared};
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bert4rs::generate::{self, GenerationConfig, TextGenerator};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

type Body = Result<ApiJson<GenerateRequest>, ApiError>;

/// Most beams a request may ask for.
const MAX_BEAMS: usize = 16;

/// A checked request: the model, prompt ids and decoding settings.
struct Job {
    generator: Arc<TextGenerator>,
    prompt: Vec<u32>,
    cfg: GenerationConfig,
    full_text: bool,
}

fn config(g: &TextGenerator, p: &GenerateParameters) -> Result<GenerationConfig, ApiError> {
    let d = GenerationConfig::default();
    let cfg = GenerationConfig {
        max_new_tokens: p.max_new_tokens.unwrap_or(d.max_new_tokens),
        do_sample: p.do_sample.unwrap_or(false),
        temperature: p.temperature.unwrap_or(d.temperature),
        top_k: p.top_k.unwrap_or(d.top_k),
        top_p: p.top_p.unwrap_or(d.top_p),
        repetition_penalty: p.repetition_penalty.unwrap_or(d.repetition_penalty),
        no_repeat_ngram_size: p.no_repeat_ngram_size.unwrap_or(0),
        num_beams: p.num_beams.unwrap_or(1),
        seed: p.seed.unwrap_or(0),
        eos_token_id: g.eos(None),
        ..d
    };
    cfg.validate()
        .map_err(|e| ApiError::validation(format!("parameters: {e}")))?;
    // Each beam keeps a KV cache and a vocabulary-sized score row: bound what a client
    // can make the server allocate.
    if cfg.num_beams > MAX_BEAMS {
        return Err(ApiError::validation(format!(
            "parameters: num_beams {} is over the server's limit of {MAX_BEAMS}",
            cfg.num_beams
        )));
    }
    Ok(cfg)
}

fn job(s: &Shared, req: GenerateRequest) -> Result<Job, ApiError> {
    let is_generator = |k: &Kind| matches!(k, Kind::Generator(_));
    let served = s.pick(req.model.as_deref(), "a generator (GPT-2)", is_generator)?;
    let Kind::Generator(g) = &served.kind else {
        return Err(ApiError::wrong_model("not a generator"));
    };
    let cfg = config(g, &req.parameters)?;
    let prompt = (g.encode_prompt(&req.inputs)).map_err(|e| ApiError::validation(e.to_string()))?;
    let room = g.model().config().n_positions;
    if prompt.len().saturating_add(cfg.max_new_tokens) > room {
        return Err(ApiError::validation(format!(
            "the prompt has {} tokens and max_new_tokens is {}: together over the model's {room} positions",
            prompt.len(),
            cfg.max_new_tokens
        )));
    }
    Ok(Job {
        generator: g.clone(),
        prompt,
        cfg,
        full_text: req.parameters.return_full_text.unwrap_or(false),
    })
}

/// The text of `ids` after the prompt (or all of it).
fn text_of(j: &Job, ids: &[u32]) -> bert4rs::Result<String> {
    let full = j.generator.decode(ids)?.unwrap_or_default();
    if j.full_text {
        return Ok(full);
    }
    let prompt = j.generator.decode(&j.prompt)?.unwrap_or_default();
    match full.strip_prefix(&prompt) {
        Some(rest) => Ok(rest.to_string()),
        None => Ok(j
            .generator
            .decode(&ids[j.prompt.len()..])?
            .unwrap_or_default()),
    }
}

/// Generated text for a prompt; `"stream": true` answers as `/generate_stream` does.
#[utoipa::path(post, path = "/generate", tag = "Text Generation Inference",
    request_body = GenerateRequest,
    responses(
        (status = 200, description = "The generated text", body = GenerateResponse),
        (status = 422, description = "Malformed or invalid request", body = ErrorResponse),
        (status = 429, description = "Over --max-concurrent-requests", body = ErrorResponse),
    ))]
pub async fn generate(State(s): State<Shared>, body: Body) -> Response {
    let streamed = matches!(&body, Ok(ApiJson(r)) if r.stream);
    if streamed {
        return generate_stream(State(s), body).await;
    }
    let work = async {
        let ApiJson(req) = body?;
        let permit = s.admit()?;
        let j = job(&s, req)?;
        let text = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let out = generate::generate(
                j.generator.model(),
                std::slice::from_ref(&j.prompt),
                &j.cfg,
                &mut |_| {},
            )?;
            text_of(&j, &out[0].ids)
        })
        .await
        .map_err(|_| ApiError::backend("generation panicked"))??;
        Ok(Json(GenerateResponse {
            generated_text: text,
        }))
    };
    s.tracked("generate", work).await.into_response()
}

/// Server-sent events: one `StreamResponse` per token, `generated_text` on the last.
#[utoipa::path(post, path = "/generate_stream", tag = "Text Generation Inference",
    request_body = GenerateRequest,
    responses(
        (status = 200, description = "One event per token", body = StreamResponse, content_type = "text/event-stream"),
        (status = 422, description = "Malformed or invalid request", body = ErrorResponse),
        (status = 429, description = "Over --max-concurrent-requests", body = ErrorResponse),
    ))]
pub async fn generate_stream(State(s): State<Shared>, body: Body) -> Response {
    let work = async {
        let ApiJson(req) = body?;
        let permit = s.admit()?;
        let j = job(&s, req)?;
        if j.cfg.num_beams > 1 {
            return Err(ApiError::validation(
                "streaming decodes one token at a time: num_beams must be 1",
            ));
        }
        // Unbounded (at most n_positions events): a client that stops reading must not
        // block the decoding thread, which runs on the compute pool.
        let (tx, rx) = mpsc::unbounded_channel::<Result<Event, Infallible>>();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            stream_tokens(&j, &tx);
        });
        Ok(Sse::new(UnboundedReceiverStream::new(rx)).keep_alive(KeepAlive::default()))
    };
    s.tracked("generate_stream", work).await.into_response()
}

/// Sends each token as the next one is chosen (TGI puts `generated_text` on the last
/// token's event, so one is held back); a failure ends the stream with an `error` event. A
/// client that went away stops receiving; the decode runs out its `max_new_tokens`.
fn stream_tokens(j: &Job, tx: &mpsc::UnboundedSender<Result<Event, Infallible>>) {
    let send = |r: &StreamResponse| {
        let e = Event::default().json_data(r).unwrap_or_default();
        let _ = tx.send(Ok(e));
    };
    let eos = j.cfg.eos_token_id;
    let mut stream = j.generator.stream(&j.prompt);
    let _ = stream.start(); // the prompt's own text is not streamed back
    let mut held: Option<StreamResponse> = None;
    let mut failed = None;
    let mut on_step = |step: &generate::StepInfo| {
        let text = stream.push(step.token).unwrap_or_else(|e| {
            failed.get_or_insert(e.to_string());
            String::new()
        });
        let index = held.as_ref().map_or(1, |h| h.index + 1);
        let ev = StreamResponse {
            index,
            token: StreamToken {
                id: step.token,
                text,
                special: Some(step.token) == eos,
            },
            generated_text: None,
        };
        if let Some(h) = held.replace(ev) {
            send(&h);
        }
    };
    let result = generate::generate(
        j.generator.model(),
        std::slice::from_ref(&j.prompt),
        &j.cfg,
        &mut on_step,
    );
    let last = result.and_then(|out| text_of(j, &out[0].ids));
    let error = |error: String| {
        let body = ErrorResponse {
            error,
            error_type: "backend".into(),
        };
        let e = Event::default().event("error").json_data(&body);
        let _ = tx.send(Ok(e.unwrap_or_default()));
    };
    match (last, failed, held) {
        (Ok(text), None, Some(mut h)) => {
            h.generated_text = Some(text);
            send(&h);
        }
        (Ok(_), None, None) => error("no token was generated".into()),
        (Err(e), _, _) => error(e.to_string()),
        (_, Some(e), _) => error(e),
    }
}
