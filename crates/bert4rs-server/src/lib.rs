//! `bert4rs serve`: the library's models over HTTP, with text-embeddings-inference's routes
//! (so its clients work unchanged), OpenAI's `/v1/embeddings`, classification, entity
//! tagging and TGI-style generation with server-sent-event streaming.
//!
//! Requests of many clients are batched dynamically ([`queue`]); at most
//! `--max-concurrent-requests` are admitted, beyond which the answer is 429 at once. The
//! library knows nothing of HTTP: this crate is routes, request types and the queue.

pub mod error;
pub mod metrics;
pub mod models;
pub mod openapi;
pub mod queue;
mod routes;
pub mod types;

pub use error::ApiError;
pub use metrics::Metrics;
pub use models::{Kind, ModelSpec, Served};

use bert4rs::{Error, Pooling, Result};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Everything `bert4rs serve` is told, with TEI's defaults.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The models (the first of each kind answers requests that name none).
    pub models: Vec<ModelSpec>,
    /// Pooling of embedding models (default: their sentence-transformers config, else mean).
    pub pooling: Option<Pooling>,
    /// Sum of input tokens in one batch.
    pub max_batch_tokens: usize,
    /// Inputs in one batch (`None`: only the token budget limits).
    pub max_batch_requests: Option<usize>,
    /// Requests in flight; one more gets 429.
    pub max_concurrent_requests: usize,
    /// Inputs in one request.
    pub max_client_batch_size: usize,
    /// Largest request body in bytes.
    pub payload_limit: usize,
    /// Truncate over-long inputs unless a request says `"truncate": false`.
    pub auto_truncate: bool,
    /// Run every model on int8: encoders dynamically quantised with activation codes of
    /// this width, GPT-2 on int8 weights; `None`: f32.
    pub int8: Option<bert4rs::kernels::CodeWidth>,
    /// How classifiers and sentence encoders keep their encoder's matrices (bf16: half the
    /// weight memory, f32 arithmetic).
    pub dtype: bert4rs::models::hub::WeightStorage,
    /// Early exit for classifiers trained with `task.early_exit`: each text stops at the
    /// first off-ramp whose prediction entropy (nats) is below this.
    pub early_exit_entropy: Option<f32>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            models: Vec::new(),
            pooling: None,
            max_batch_tokens: 16384,
            max_batch_requests: None,
            max_concurrent_requests: 512,
            max_client_batch_size: 32,
            payload_limit: 2_000_000,
            auto_truncate: false,
            int8: None,
            dtype: bert4rs::models::hub::WeightStorage::F32,
            early_exit_entropy: None,
        }
    }
}

impl ServeOptions {
    /// Checks the limits; every error names the option.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Invalid(m.to_string()));
        if self.models.is_empty() {
            return bad("give at least one --model DIR (or NAME=DIR)");
        }
        if self.int8.is_some() && self.dtype != bert4rs::models::hub::WeightStorage::F32 {
            return bad("--int8 and --dtype bf16 exclude each other: pick one");
        }
        if let Some(e) = self
            .early_exit_entropy
            .filter(|e| !(e.is_finite() && *e >= 0.0))
        {
            return Err(Error::Invalid(format!(
                "--early-exit-entropy {e}: expected a finite entropy ≥ 0 (nats)"
            )));
        }
        for (i, m) in self.models.iter().enumerate() {
            if self.models[..i].iter().any(|o| o.name == m.name) {
                return Err(Error::Invalid(format!(
                    "two models are named {:?}: name them with --model NAME=DIR",
                    m.name
                )));
            }
        }
        if self.max_batch_tokens == 0 || self.max_batch_requests == Some(0) {
            return bad("--max-batch-tokens and --max-batch-requests must be ≥ 1");
        }
        if self.max_concurrent_requests == 0 || self.max_client_batch_size == 0 {
            return bad("--max-concurrent-requests and --max-client-batch-size must be ≥ 1");
        }
        if self.payload_limit == 0 {
            return bad("--payload-limit must be ≥ 1 byte");
        }
        Ok(())
    }
}

/// The loaded models and what every handler shares.
pub struct AppState {
    /// Served models, in `--model` order.
    pub models: Vec<Served>,
    /// The options.
    pub opts: ServeOptions,
    limiter: Arc<Semaphore>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
}

/// The state handlers see.
pub type Shared = Arc<AppState>;

impl AppState {
    /// Loads every model (all errors come before the server listens).
    pub fn load(opts: ServeOptions) -> Result<Shared> {
        opts.validate()?;
        let metrics = Arc::new(Metrics::new());
        let limits = queue::BatchLimits {
            max_batch_tokens: opts.max_batch_tokens,
            max_batch_requests: opts.max_batch_requests,
        };
        let load = models::LoadOptions {
            pooling: opts.pooling,
            int8: opts.int8,
            storage: opts.dtype,
            early_exit_entropy: opts.early_exit_entropy,
        };
        let mut models = Vec::new();
        for spec in &opts.models {
            let served = models::load(spec, load, limits, &metrics)?;
            check_budget(&served, opts.max_batch_tokens)?;
            log::info!(
                "{}: {} model from {}",
                served.name,
                served.kind.name(),
                spec.dir.display()
            );
            models.push(served);
        }
        let classifies = (models.iter()).any(|m| matches!(m.kind, models::Kind::Classifier(_)));
        if opts.early_exit_entropy.is_some() && !classifies {
            return Err(Error::Invalid(
                "--early-exit-entropy is for classifiers; no served model is one".into(),
            ));
        }
        Ok(Arc::new(AppState {
            models,
            limiter: Arc::new(Semaphore::new(opts.max_concurrent_requests)),
            opts,
            metrics,
        }))
    }

    /// A place among the `--max-concurrent-requests`, or 429 now.
    pub fn admit(&self) -> std::result::Result<OwnedSemaphorePermit, ApiError> {
        (self.limiter.clone().try_acquire_owned())
            .map_err(|_| ApiError::overloaded(self.opts.max_concurrent_requests))
    }

    /// The model named `name`, or the first that `fits` when no name is given.
    pub fn pick(
        &self,
        name: Option<&str>,
        what: &str,
        fits: fn(&Kind) -> bool,
    ) -> std::result::Result<&Served, ApiError> {
        let served = || -> String {
            let list: Vec<String> = (self.models.iter())
                .map(|m| format!("{} ({})", m.name, m.kind.name()))
                .collect();
            list.join(", ")
        };
        match name {
            Some(n) => {
                let m = (self.models.iter().find(|m| m.name == n)).ok_or_else(|| {
                    ApiError::not_found(format!("no model named {n:?}; served: {}", served()))
                })?;
                match fits(&m.kind) {
                    true => Ok(m),
                    false => Err(ApiError::wrong_model(format!(
                        "model {n:?} is a {} model; this route needs {what}",
                        m.kind.name()
                    ))),
                }
            }
            None => (self.models.iter().find(|m| fits(&m.kind))).ok_or_else(|| {
                ApiError::wrong_model(format!("no {what} is served here; served: {}", served()))
            }),
        }
    }

    /// Counts a request and its outcome under `method`.
    pub async fn tracked<T>(
        &self,
        method: &'static str,
        work: impl Future<Output = std::result::Result<T, ApiError>>,
    ) -> std::result::Result<T, ApiError> {
        let start = Instant::now();
        let m = &self.metrics;
        m.request_count.with_label_values(&[method]).inc();
        let result = work.await;
        match &result {
            Ok(_) => m.request_success.with_label_values(&[method]).inc(),
            Err(e) => (m.request_failure)
                .with_label_values(&[method, e.error_type])
                .inc(),
        }
        Metrics::observe(&m.request_duration, method, start.elapsed());
        result
    }

    /// Refuses an empty list, one over `--max-client-batch-size`, and empty texts.
    pub fn check_inputs<S: AsRef<str>>(&self, texts: &[S]) -> std::result::Result<(), ApiError> {
        let max = self.opts.max_client_batch_size;
        if texts.is_empty() {
            return Err(ApiError::empty("`inputs` cannot be empty"));
        }
        if texts.len() > max {
            return Err(ApiError::validation(format!(
                "batch size {} > maximum allowed batch size {max} (--max-client-batch-size): \
                 split the request",
                texts.len()
            )));
        }
        if let Some(i) = texts.iter().position(|t| t.as_ref().trim().is_empty()) {
            return Err(ApiError::empty(format!(
                "`inputs[{i}]` is empty (or only whitespace): give some text"
            )));
        }
        Ok(())
    }
}

/// A batch should hold the longest input the model takes (a longer one would always run
/// alone, past the budget the operator set).
fn check_budget(served: &Served, budget: usize) -> Result<()> {
    let longest = match &served.kind {
        Kind::Embedding(q) => q.backend().max_input_length,
        Kind::Classifier(q) if !q.backend().classifier.reads_long_texts() => {
            q.backend().max_input_length
        }
        _ => 0,
    };
    if longest > budget {
        return Err(Error::Invalid(format!(
            "--max-batch-tokens {budget} is less than {}'s longest input ({longest} tokens): \
             raise it",
            served.name
        )));
    }
    Ok(())
}

/// The HTTP routes over `state`.
pub fn router(state: Shared) -> axum::Router {
    routes::router(state)
}

/// Serves `state` on `listener` until `shutdown` resolves, then finishes the requests in
/// flight.
pub async fn serve(
    state: Shared,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::Invalid(format!("server stopped: {e}")))
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    log::info!("shutting down: finishing the requests in flight");
}

/// Loads the models, listens on `addr` and serves until SIGTERM / Ctrl-C (the CLI's
/// `bert4rs serve`). `on_listen` is told the bound address (port 0 picks a free one).
pub fn run(opts: ServeOptions, addr: SocketAddr, on_listen: impl FnOnce(SocketAddr)) -> Result<()> {
    let state = AppState::load(opts)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("http")
        .build()
        .map_err(|e| Error::Invalid(format!("could not start the async runtime: {e}")))?;
    rt.block_on(async move {
        let listener = (tokio::net::TcpListener::bind(addr).await)
            .map_err(|e| Error::Invalid(format!("cannot listen on {addr}: {e}")))?;
        let bound = listener
            .local_addr()
            .map_err(|e| Error::Invalid(e.to_string()))?;
        on_listen(bound);
        serve(state, listener, shutdown_signal()).await
    })
}
