//! Prometheus metrics under text-embeddings-inference's `te_*` names, one registry per
//! server.

use prometheus::{
    exponential_buckets, Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};
use std::time::Duration;

/// Every metric the server keeps.
pub struct Metrics {
    registry: Registry,
    /// Requests per route.
    pub request_count: IntCounterVec,
    /// Answered with 2xx, per route.
    pub request_success: IntCounterVec,
    /// Answered with an error, per route and error type.
    pub request_failure: IntCounterVec,
    /// Tokens per input.
    pub request_input_length: HistogramVec,
    /// Request time, end to end.
    pub request_duration: HistogramVec,
    /// Tokenization time per request.
    pub request_tokenization_duration: HistogramVec,
    /// Longest wait of a request's inputs in the queue.
    pub request_queue_duration: HistogramVec,
    /// Inference time per request (its batches).
    pub request_inference_duration: HistogramVec,
    /// Inputs waiting in the batching queues.
    pub queue_size: IntGauge,
    /// Inputs per batch.
    pub batch_next_size: HistogramVec,
    /// Tokens per batch.
    pub batch_next_tokens: HistogramVec,
    /// Time of one batch's forward pass.
    pub batch_inference_duration: HistogramVec,
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets);
    HistogramVec::new(opts, &["method"]).expect("valid histogram options")
}

fn seconds() -> Vec<f64> {
    exponential_buckets(0.0001, 2.0, 18).expect("valid buckets") // 0.1 ms .. 13 s
}

impl Metrics {
    /// A fresh registry with every family registered.
    pub fn new() -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter options")
        };
        let m = Metrics {
            registry: Registry::new(),
            request_count: counter("te_request_count", "Requests received", &["method"]),
            request_success: counter("te_request_success", "Requests answered", &["method"]),
            request_failure: counter(
                "te_request_failure",
                "Requests refused or failed",
                &["method", "err"],
            ),
            request_input_length: histogram(
                "te_request_input_length",
                "Tokens per input",
                exponential_buckets(2.0, 2.0, 12).expect("valid buckets"),
            ),
            request_duration: histogram("te_request_duration", "End-to-end seconds", seconds()),
            request_tokenization_duration: histogram(
                "te_request_tokenization_duration",
                "Tokenization seconds",
                seconds(),
            ),
            request_queue_duration: histogram(
                "te_request_queue_duration",
                "Seconds in the queue",
                seconds(),
            ),
            request_inference_duration: histogram(
                "te_request_inference_duration",
                "Inference seconds",
                seconds(),
            ),
            queue_size: IntGauge::new("te_queue_size", "Inputs waiting").expect("valid gauge"),
            batch_next_size: histogram(
                "te_batch_next_size",
                "Inputs per batch",
                exponential_buckets(1.0, 2.0, 12).expect("valid buckets"),
            ),
            batch_next_tokens: histogram(
                "te_batch_next_tokens",
                "Tokens per batch",
                exponential_buckets(16.0, 2.0, 12).expect("valid buckets"),
            ),
            batch_inference_duration: histogram(
                "te_batch_inference_duration",
                "Seconds per batch",
                seconds(),
            ),
        };
        m.register_all();
        m
    }

    fn register_all(&self) {
        let families: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.request_count.clone()),
            Box::new(self.request_success.clone()),
            Box::new(self.request_failure.clone()),
            Box::new(self.request_input_length.clone()),
            Box::new(self.request_duration.clone()),
            Box::new(self.request_tokenization_duration.clone()),
            Box::new(self.request_queue_duration.clone()),
            Box::new(self.request_inference_duration.clone()),
            Box::new(self.queue_size.clone()),
            Box::new(self.batch_next_size.clone()),
            Box::new(self.batch_next_tokens.clone()),
            Box::new(self.batch_inference_duration.clone()),
        ];
        for f in families {
            self.registry
                .register(f)
                .expect("metric names are distinct");
        }
    }

    /// Records a duration in seconds.
    pub fn observe(h: &HistogramVec, method: &str, d: Duration) {
        h.with_label_values(&[method]).observe(d.as_secs_f64());
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
