//! Dynamic batching: every input of every request waits in one queue per model; a worker
//! thread takes whatever has arrived, up to a token budget (`--max-batch-tokens`) and an
//! input count (`--max-batch-requests`), and runs it as one batch while the next requests
//! gather. The backend sorts a batch by length so padding stays small; each input's answer
//! goes back on its own channel, so a request's answers come back in its own order.

use crate::error::ApiError;
use crate::metrics::Metrics;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// A model that answers a batch of inputs, one output per input, in order.
pub trait Backend: Send + Sync + 'static {
    /// One input (an encoding, a text, ...).
    type Input: Send + 'static;
    /// One answer.
    type Output: Send + 'static;
    /// Runs a batch.
    fn run(&self, batch: Vec<Self::Input>) -> bert4rs::Result<Vec<Self::Output>>;
}

/// The limits of one batch.
#[derive(Clone, Copy, Debug)]
pub struct BatchLimits {
    /// Sum of input tokens per batch.
    pub max_batch_tokens: usize,
    /// Inputs per batch (`None`: only the token budget limits it).
    pub max_batch_requests: Option<usize>,
}

/// An input's answer with the time it waited and the time its batch took.
pub struct Done<O> {
    /// The answer.
    pub value: O,
    /// Time in the queue.
    pub queued: Duration,
    /// Time of the batch's forward pass.
    pub inference: Duration,
}

type Reply<O> = oneshot::Sender<Result<Done<O>, String>>;

struct Entry<I, O> {
    input: I,
    tokens: usize,
    queued_at: Instant,
    reply: Reply<O>,
}

/// The sending side of a model's queue; the worker thread ends when it is dropped.
pub struct Queue<B: Backend> {
    tx: mpsc::Sender<Entry<B::Input, B::Output>>,
    backend: Arc<B>,
    depth: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl<B: Backend> Queue<B> {
    /// Starts the worker thread of `backend`.
    pub fn start(backend: B, limits: BatchLimits, metrics: Arc<Metrics>, name: &str) -> Self {
        let (tx, rx) = mpsc::channel();
        let backend = Arc::new(backend);
        let depth = Arc::new(AtomicUsize::new(0));
        let worker = Worker {
            rx,
            backend: backend.clone(),
            limits,
            depth: depth.clone(),
            metrics: metrics.clone(),
            method: name.to_string(),
            held: None,
        };
        std::thread::Builder::new()
            .name(format!("batch-{name}"))
            .spawn(move || worker.run())
            .expect("the OS refused to start a thread");
        Queue {
            tx,
            backend,
            depth,
            metrics,
        }
    }

    /// The backend (handlers tokenize with its tokenizer).
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Inputs waiting.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// Queues `inputs` (each with its token count) and waits for every answer; answers are
    /// in input order.
    pub async fn submit(
        &self,
        inputs: Vec<(B::Input, usize)>,
    ) -> Result<Vec<Done<B::Output>>, ApiError> {
        let mut waiting = Vec::with_capacity(inputs.len());
        for (input, tokens) in inputs {
            let (reply, rx) = oneshot::channel();
            let entry = Entry {
                input,
                tokens,
                queued_at: Instant::now(),
                reply,
            };
            self.depth.fetch_add(1, Ordering::Relaxed);
            self.metrics.queue_size.inc();
            if self.tx.send(entry).is_err() {
                return Err(ApiError::backend("the batching worker has stopped"));
            }
            waiting.push(rx);
        }
        let mut out = Vec::with_capacity(waiting.len());
        for rx in waiting {
            match rx.await {
                Ok(Ok(done)) => out.push(done),
                Ok(Err(msg)) => return Err(ApiError::backend(msg)),
                Err(_) => return Err(ApiError::backend("the batching worker has stopped")),
            }
        }
        Ok(out)
    }
}

struct Worker<B: Backend> {
    rx: mpsc::Receiver<Entry<B::Input, B::Output>>,
    backend: Arc<B>,
    limits: BatchLimits,
    depth: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
    method: String,
    /// The entry that did not fit the last batch: it opens the next one.
    held: Option<Entry<B::Input, B::Output>>,
}

impl<B: Backend> Worker<B> {
    fn run(mut self) {
        while let Some(batch) = self.next_batch() {
            self.answer(batch);
        }
    }

    /// Blocks for the first entry, then takes what has already arrived within the limits.
    fn next_batch(&mut self) -> Option<Vec<Entry<B::Input, B::Output>>> {
        let first = match self.held.take() {
            Some(e) => e,
            None => self.rx.recv().ok()?,
        };
        let max_n = self.limits.max_batch_requests.unwrap_or(usize::MAX);
        let mut tokens = first.tokens;
        let mut batch = vec![first];
        while batch.len() < max_n {
            let Ok(e) = self.rx.try_recv() else { break };
            if tokens + e.tokens > self.limits.max_batch_tokens {
                self.held = Some(e);
                break;
            }
            tokens += e.tokens;
            batch.push(e);
        }
        self.depth.fetch_sub(batch.len(), Ordering::Relaxed);
        self.metrics.queue_size.sub(batch.len() as i64);
        let m = &self.method;
        let size = &self.metrics.batch_next_size;
        size.with_label_values(&[m]).observe(batch.len() as f64);
        let tok = &self.metrics.batch_next_tokens;
        tok.with_label_values(&[m]).observe(tokens as f64);
        Some(batch)
    }

    fn answer(&self, batch: Vec<Entry<B::Input, B::Output>>) {
        let start = Instant::now();
        let mut inputs = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        for e in batch {
            inputs.push(e.input);
            replies.push((e.reply, start - e.queued_at));
        }
        let n = inputs.len();
        // A panic in a model must not take the worker (and every later request) with it.
        let result = catch_unwind(AssertUnwindSafe(|| self.backend.run(inputs)));
        let inference = start.elapsed();
        Metrics::observe(
            &self.metrics.batch_inference_duration,
            &self.method,
            inference,
        );
        let outputs = match result {
            Ok(Ok(v)) if v.len() == n => Ok(v),
            Ok(Ok(v)) => Err(format!("the model gave {} answers for {n} inputs", v.len())),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the model panicked on this batch".to_string()),
        };
        match outputs {
            Ok(values) => {
                for ((reply, queued), value) in replies.into_iter().zip(values) {
                    let _ = reply.send(Ok(Done {
                        value,
                        queued,
                        inference,
                    }));
                }
            }
            Err(msg) => {
                log::error!("batch of {n} failed: {msg}");
                for (reply, _) in replies {
                    let _ = reply.send(Err(msg.clone()));
                }
            }
        }
    }
}
