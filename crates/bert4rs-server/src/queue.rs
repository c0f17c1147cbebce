//! Dynamic batching: every input of every request waits in one queue per model; a worker
//! thread takes whatever has arrived, up to a token budget (`--max-batch-tokens`) and an
//! input count (`--max-batch-requests`), and runs it as one batch while the next requests
//! gather. The backend sorts a batch by length so padding stays small; each input's answer
//! goes back on its own channel, so a request's answers come back in its own order.

use crate::error::ApiError;
use crate::metrics::Metrics;
use std::panic::{catch_unwind, AssertUnwindSafe};
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
    fn run(&self, batch: &[Self::Input]) -> bert4rs::Result<Vec<Self::Output>>;
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
    metrics: Arc<Metrics>,
}

impl<B: Backend> Queue<B> {
    /// Starts the worker thread of `backend`.
    pub fn start(backend: B, limits: BatchLimits, metrics: Arc<Metrics>, name: &str) -> Self {
        let (tx, rx) = mpsc::channel();
        let backend = Arc::new(backend);
        let worker = Worker {
            rx,
            backend: backend.clone(),
            limits,
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
            metrics,
        }
    }

    /// The backend (handlers tokenize with its tokenizer).
    pub fn backend(&self) -> &B {
        &self.backend
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
            self.metrics.queue_size.inc();
            if self.tx.send(entry).is_err() {
                self.metrics.queue_size.dec();
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

    /// Counts an entry out of the queue.
    fn taken(&self) {
        self.metrics.queue_size.dec();
    }

    /// The next entry whose request still waits (a client that went away dropped its
    /// receiver: its inputs are not computed).
    fn next_live(&mut self, block: bool) -> Option<Entry<B::Input, B::Output>> {
        loop {
            let e = match self.held.take() {
                Some(e) => e,
                None if block => self.rx.recv().ok()?,
                None => self.rx.try_recv().ok()?,
            };
            if !e.reply.is_closed() {
                return Some(e);
            }
            self.taken();
        }
    }

    /// Blocks for the first entry, then takes what has already arrived within the limits
    /// (an entry over the token budget alone still runs, alone).
    fn next_batch(&mut self) -> Option<Vec<Entry<B::Input, B::Output>>> {
        let first = self.next_live(true)?;
        let max_n = self.limits.max_batch_requests.unwrap_or(usize::MAX);
        let mut tokens = first.tokens;
        let mut batch = vec![first];
        while batch.len() < max_n {
            let Some(e) = self.next_live(false) else {
                break;
            };
            if tokens + e.tokens > self.limits.max_batch_tokens {
                self.held = Some(e);
                break;
            }
            tokens += e.tokens;
            batch.push(e);
        }
        batch.iter().for_each(|_| self.taken());
        let m = &self.method;
        let size = &self.metrics.batch_next_size;
        size.with_label_values(&[m]).observe(batch.len() as f64);
        let tok = &self.metrics.batch_next_tokens;
        tok.with_label_values(&[m]).observe(tokens as f64);
        Some(batch)
    }

    fn answer(&self, batch: Vec<Entry<B::Input, B::Output>>) {
        let start = Instant::now();
        let (inputs, replies): (Vec<_>, Vec<_>) = (batch.into_iter())
            .map(|e| (e.input, (e.reply, start - e.queued_at)))
            .unzip();
        let result = self.run_batch(&inputs);
        let inference = start.elapsed();
        Metrics::observe(
            &self.metrics.batch_inference_duration,
            &self.method,
            inference,
        );
        match result {
            Ok(values) => {
                for ((reply, queued), value) in replies.into_iter().zip(values) {
                    let _ = reply.send(Ok(Done {
                        value,
                        queued,
                        inference,
                    }));
                }
            }
            // One input the model refuses must not fail the other requests of its batch:
            // run each alone, so only its own request gets the error.
            Err(msg) if inputs.len() > 1 => {
                log::warn!(
                    "batch of {} failed ({msg}); running its inputs one by one",
                    inputs.len()
                );
                for (input, (reply, queued)) in inputs.iter().zip(replies) {
                    let alone = Instant::now();
                    let answer = self
                        .run_batch(std::slice::from_ref(input))
                        .map(|mut v| Done {
                            value: v.remove(0),
                            queued,
                            inference: inference + alone.elapsed(),
                        });
                    let _ = reply.send(answer);
                }
            }
            Err(msg) => {
                log::error!("{}: {msg}", self.method);
                for (reply, _) in replies {
                    let _ = reply.send(Err(msg.clone()));
                }
            }
        }
    }

    /// The backend on `inputs`, with a panic or a wrong answer count as an error.
    fn run_batch(&self, inputs: &[B::Input]) -> Result<Vec<B::Output>, String> {
        let n = inputs.len();
        // A panic in a model must not take the worker (and every later request) with it.
        match catch_unwind(AssertUnwindSafe(|| self.backend.run(inputs))) {
            Ok(Ok(v)) if v.len() == n => Ok(v),
            Ok(Ok(v)) => Err(format!("the model gave {} answers for {n} inputs", v.len())),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the model panicked on this input".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Every batch a backend ran.
    type Seen = Arc<Mutex<Vec<Vec<u32>>>>;

    /// Doubles numbers; 13 is refused and 666 panics; records every batch it runs.
    struct Doubler(Seen);

    impl Backend for Doubler {
        type Input = u32;
        type Output = u32;
        fn run(&self, batch: &[u32]) -> bert4rs::Result<Vec<u32>> {
            self.0.lock().unwrap().push(batch.to_vec());
            std::thread::sleep(Duration::from_millis(2));
            if batch.contains(&666) {
                panic!("the test's model panics");
            }
            if batch.contains(&13) {
                return Err(bert4rs::Error::Invalid("13 is refused".into()));
            }
            Ok(batch.iter().map(|x| x * 2).collect())
        }
    }

    fn queue(max_tokens: usize, max_n: Option<usize>) -> (Arc<Queue<Doubler>>, Seen) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let limits = BatchLimits {
            max_batch_tokens: max_tokens,
            max_batch_requests: max_n,
        };
        let q = Queue::start(Doubler(seen.clone()), limits, Arc::new(Metrics::new()), "t");
        (Arc::new(q), seen)
    }

    fn values(done: Vec<Done<u32>>) -> Vec<u32> {
        done.into_iter().map(|d| d.value).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_get_their_own_answers_in_order_within_the_budget() {
        let (q, seen) = queue(10, Some(4));
        let mut tasks = Vec::new();
        for r in 0..50u32 {
            let q = q.clone();
            tasks.push(tokio::spawn(async move {
                let inputs: Vec<(u32, usize)> = (0..1 + r % 5).map(|i| (r * 10 + i, 3)).collect();
                let want: Vec<u32> = inputs.iter().map(|(x, _)| x * 2).collect();
                (values(q.submit(inputs).await.unwrap()), want)
            }));
        }
        for t in tasks {
            let (got, want) = t.await.unwrap();
            assert_eq!(got, want);
        }
        let batches = seen.lock().unwrap().clone();
        assert!(
            batches.iter().all(|b| b.len() <= 3),
            "3 tokens each, budget 10"
        );
        assert!(
            batches.iter().any(|b| b.len() > 1),
            "requests were batched together"
        );
        assert_eq!(
            batches.iter().map(Vec::len).sum::<usize>(),
            (0..50).map(|r| 1 + r % 5).sum::<usize>()
        );
        assert_eq!(
            q.metrics.queue_size.get(),
            0,
            "every queued input counted out"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_or_panicking_input_fails_only_its_own_request() {
        let (q, _) = queue(1000, None);
        let (a, b, c) = (q.clone(), q.clone(), q.clone());
        let good = tokio::spawn(async move { a.submit(vec![(1, 1), (2, 1)]).await });
        let bad = tokio::spawn(async move { b.submit(vec![(13, 1)]).await });
        let boom = tokio::spawn(async move { c.submit(vec![(666, 1)]).await });
        assert_eq!(values(good.await.unwrap().unwrap()), [2, 4]);
        let e = bad.await.unwrap().err().unwrap();
        assert!(e.error.contains("13 is refused"), "{}", e.error);
        assert!(boom.await.unwrap().is_err());
        // The worker survived the panic.
        assert_eq!(values(q.submit(vec![(5, 1)]).await.unwrap()), [10]);
    }
}
