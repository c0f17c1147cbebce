//! Producer/consumer batching: `workers` threads compute the items of positions `0..n` (a
//! pure function of the position) ahead of the consumer, at most `capacity` positions ahead,
//! and the consumer takes them in position order. Because each item depends only on its
//! position, the sequence the consumer sees is the same whatever the threads' timing — and
//! the same as computing it in place, which keeps training runs reproducible and resumable.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

struct Claims {
    /// The next position a worker will take.
    next: usize,
    /// Positions below this have been handed to the consumer.
    consumed: usize,
    stop: bool,
}

struct Shared {
    claims: Mutex<Claims>,
    wake: Condvar,
    /// Items computed and not yet consumed.
    ready: AtomicUsize,
}

/// Items of positions `0..n`, computed ahead by worker threads.
pub struct Prefetcher<T> {
    shared: Arc<Shared>,
    rx: Receiver<(usize, T)>,
    pending: BTreeMap<usize, T>,
    next: usize,
    n: usize,
    workers: Vec<JoinHandle<()>>,
}

impl<T: Send + 'static> Prefetcher<T> {
    /// Starts `workers` threads (at least 1) that compute `make(i)` for `i` in `0..n`.
    pub fn start(
        n: usize,
        workers: usize,
        capacity: usize,
        make: impl Fn(usize) -> T + Send + Sync + 'static,
    ) -> Self {
        let shared = Arc::new(Shared {
            claims: Mutex::new(Claims {
                next: 0,
                consumed: 0,
                stop: false,
            }),
            wake: Condvar::new(),
            ready: AtomicUsize::new(0),
        });
        let (tx, rx) = channel();
        let make = Arc::new(make);
        let capacity = capacity.max(1);
        let handles = (0..workers.max(1))
            .map(|_| {
                let (shared, tx, make) = (shared.clone(), tx.clone(), make.clone());
                std::thread::spawn(move || loop {
                    let pos = {
                        let mut c = lock(&shared.claims);
                        while !c.stop && c.next < n && c.next >= c.consumed + capacity {
                            c = shared.wake.wait(c).unwrap_or_else(|p| p.into_inner());
                        }
                        if c.stop || c.next >= n {
                            return;
                        }
                        c.next += 1;
                        c.next - 1
                    };
                    let item = make(pos);
                    shared.ready.fetch_add(1, Ordering::Relaxed);
                    if tx.send((pos, item)).is_err() {
                        return;
                    }
                })
            })
            .collect();
        Prefetcher {
            shared,
            rx,
            pending: BTreeMap::new(),
            next: 0,
            n,
            workers: handles,
        }
    }

    /// The item of the next position (waiting for it), or `None` after the last.
    pub fn take_next(&mut self) -> Option<T> {
        if self.next >= self.n {
            return None;
        }
        let want = self.next;
        let item = loop {
            if let Some(item) = self.pending.remove(&want) {
                break item;
            }
            let (pos, item) = self.rx.recv().ok()?;
            self.pending.insert(pos, item);
        };
        self.next += 1;
        self.shared.ready.fetch_sub(1, Ordering::Relaxed);
        lock(&self.shared.claims).consumed = self.next;
        self.shared.wake.notify_all();
        Some(item)
    }

    /// The position [`Self::take_next`] returns next.
    pub fn position(&self) -> usize {
        self.next
    }

    /// Items computed ahead and waiting (the queue depth).
    pub fn depth(&self) -> usize {
        self.shared.ready.load(Ordering::Relaxed)
    }
}

impl<T> Drop for Prefetcher<T> {
    fn drop(&mut self) {
        lock(&self.shared.claims).stop = true;
        self.shared.wake.notify_all();
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

fn lock(m: &Mutex<Claims>) -> std::sync::MutexGuard<'_, Claims> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn items_arrive_in_position_order_whatever_the_timing() {
        let mut p = Prefetcher::start(200, 4, 8, |i| {
            // Uneven work, so workers finish out of order.
            std::thread::sleep(Duration::from_micros(((i * 7919) % 13) as u64 * 50));
            i * i
        });
        let got: Vec<usize> = std::iter::from_fn(|| p.take_next()).collect();
        assert_eq!(got, (0..200).map(|i| i * i).collect::<Vec<_>>());
    }

    #[test]
    fn workers_stay_within_capacity_of_the_consumer() {
        let made = Arc::new(AtomicUsize::new(0));
        let m = made.clone();
        let mut p = Prefetcher::start(1000, 3, 5, move |i| {
            m.fetch_add(1, Ordering::SeqCst);
            i
        });
        assert_eq!(p.take_next(), Some(0));
        std::thread::sleep(Duration::from_millis(50));
        let ahead = made.load(Ordering::SeqCst);
        assert!(
            ahead <= 1 + 5,
            "{ahead} items made with 1 consumed and capacity 5"
        );
        assert!(p.depth() <= 5);
        drop(p); // stops the workers without consuming the rest
    }
}
