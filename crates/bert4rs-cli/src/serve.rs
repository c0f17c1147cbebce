//! `bert4rs serve`: the models over HTTP (text-embeddings-inference's routes, OpenAI's
//! embeddings, /predict, /tag, /generate) until SIGTERM or Ctrl-C.

use bert4rs::error::{Error, Result};
use bert4rs_server::{ModelSpec, ServeOptions};
use std::net::{IpAddr, SocketAddr};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A model directory, or NAME=DIR; repeat for several (the first of each kind answers
    /// requests that name no `model`).
    #[arg(long = "model", required = true)]
    models: Vec<String>,
    /// Address to listen on (0.0.0.0 for every interface).
    #[arg(long, default_value = "127.0.0.1")]
    hostname: IpAddr,
    /// Port (0: a free one, printed on start).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Pooling of embedding models (default: their sentence-transformers config, else mean).
    #[arg(long)]
    pooling: Option<String>,
    /// Sum of input tokens in one batch.
    #[arg(long, default_value_t = 16384, value_parser = super::at_least_one())]
    max_batch_tokens: usize,
    /// Inputs in one batch (default: only the token budget limits).
    #[arg(long, value_parser = super::at_least_one())]
    max_batch_requests: Option<usize>,
    /// Requests in flight; one more is answered 429 at once.
    #[arg(long, default_value_t = 512, value_parser = super::at_least_one())]
    max_concurrent_requests: usize,
    /// Inputs in one request.
    #[arg(long, default_value_t = 32, value_parser = super::at_least_one())]
    max_client_batch_size: usize,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 2_000_000, value_parser = super::at_least_one())]
    payload_limit: usize,
    /// Truncate over-long inputs unless a request says "truncate": false.
    #[arg(long)]
    auto_truncate: bool,
    /// Serve every model on int8: encoders dynamically quantised (int8 weights, each token's
    /// activations at run time), GPT-2 on int8 weights.
    #[arg(long)]
    int8: bool,
    #[command(flatten)]
    int8_activations: super::Int8Activations,
    /// Weight storage for classifiers and sentence encoders: f32, or bf16 (half the weight
    /// memory, f32 arithmetic; not with --int8).
    #[arg(long, value_enum, default_value = "f32", conflicts_with = "int8")]
    dtype: super::WeightDtype,
    /// Early exit for classifiers trained with task.early_exit: each text stops at the
    /// first layer whose off-ramp's prediction entropy (nats) is below this.
    #[arg(long)]
    early_exit_entropy: Option<f32>,
    /// Compute threads (default: one per core).
    #[arg(long, value_parser = super::at_least_one())]
    threads: Option<usize>,
}

pub fn run(a: Args) -> Result<()> {
    let models = (a.models.iter())
        .map(|m| m.parse::<ModelSpec>())
        .collect::<Result<Vec<_>>>()?;
    let opts = ServeOptions {
        models,
        pooling: a.pooling.as_deref().map(str::parse).transpose()?,
        max_batch_tokens: a.max_batch_tokens,
        max_batch_requests: a.max_batch_requests,
        max_concurrent_requests: a.max_concurrent_requests,
        max_client_batch_size: a.max_client_batch_size,
        payload_limit: a.payload_limit,
        auto_truncate: a.auto_truncate,
        int8: a.int8_activations.with(a.int8),
        dtype: a.dtype.storage(),
        early_exit_entropy: a.early_exit_entropy,
    };
    opts.validate()?;
    if let Some(n) = a.threads {
        if !bert4rs::util::init_threads(n) {
            return Err(Error::Invalid(format!(
                "--threads {n}: the thread pool was already started"
            )));
        }
    }
    let addr = SocketAddr::new(a.hostname, a.port);
    bert4rs_server::run(opts, addr, |bound| {
        // Scripts wait for this line (and read the port from it when --port 0).
        eprintln!("listening on http://{bound}");
    })
}
