//! A small seeded random-number generator whose whole state is one `u64`, so a training run
//! can save it in a checkpoint and resume with exactly the same dropout masks and shuffles.
//!
//! candle's CPU backend draws from an unseedable thread RNG (`Device::set_seed` errors on
//! CPU), which would make runs irreproducible; hence our own. SplitMix64 passes BigCrush and
//! is counter-based: element `i` of a dropout mask is a pure function of `(key, i)`, so masks
//! are filled in parallel and do not depend on the thread count.

use std::cell::Cell;

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: a bijective 64-bit mixer.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform number in `[0, 1)` with 24 random bits, element `i` of the stream `key`.
#[inline]
pub fn uniform_at(key: u64, i: u64) -> f32 {
    (mix64(key.wrapping_add(i.wrapping_mul(GOLDEN))) >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
}

/// 24 random bits for element `i` of the dropout stream `key`: two rounds of a 32-bit
/// integer hash (Wellons' `lowbias32`), keyed by the two halves of `key`. It uses only 32-bit
/// multiplies, so a loop over consecutive `i` vectorises; [`uniform_at`]'s 64-bit multiplies
/// do not on AVX2, and drawing dropout masks with it was about 8 % of a MiniLM training step.
#[inline(always)]
pub fn mask_bits(key: u64, i: u64) -> u32 {
    let x = lowbias32(i as u32 ^ key as u32);
    lowbias32(x ^ (key >> 32) as u32 ^ ((i >> 32) as u32).wrapping_mul(0x9E37_79B9)) >> 8
}

#[inline(always)]
fn lowbias32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

/// A seeded generator (SplitMix64); `state()` / `from_state` save and restore it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng {
            state: mix64(seed ^ 0x5EED),
        }
    }

    /// Restores a generator saved with [`Rng::state`].
    pub fn from_state(state: u64) -> Self {
        Rng { state }
    }

    /// The whole state.
    pub fn state(&self) -> u64 {
        self.state
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix64(self.state)
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `0..n` (`n > 0`), without modulo bias worth measuring (n ≪ 2⁶⁴).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// A standard normal sample (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

thread_local! {
    /// Seed of new weights' initialisation on this thread.
    static INIT_SEED: Cell<u64> = Cell::new(initial_key());
    /// The dropout stream of this thread: the trainer reseeds it before every step.
    static DROPOUT_KEY: Cell<u64> = Cell::new(initial_key());
}

fn initial_key() -> u64 {
    // Unseeded use (a user calling `forward(train = true)` directly) varies run to run, as
    // in PyTorch without `manual_seed`.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    mix64(t)
}

/// Seeds the initialisation of weights created on this thread from now on (new heads).
pub fn seed_init(seed: u64) {
    INIT_SEED.with(|k| k.set(mix64(seed ^ 0x1417)));
}

/// The current initialisation seed of this thread.
pub fn init_seed() -> u64 {
    INIT_SEED.with(|k| k.get())
}

/// A stable 64-bit hash of a string (FNV-1a), to derive per-name streams.
pub fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Reseeds this thread's dropout stream: the same seed gives the same masks.
pub fn seed_dropout(seed: u64) {
    DROPOUT_KEY.with(|k| k.set(mix64(seed ^ 0xD50F)));
}

/// A fresh key for one dropout call (advances this thread's stream).
pub fn next_dropout_key() -> u64 {
    DROPOUT_KEY.with(|k| {
        let next = k.get().wrapping_add(GOLDEN);
        k.set(next);
        mix64(next)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_uniform_mean() {
        let mut a = Rng::new(3);
        let mut b = Rng::new(3);
        let xs: Vec<f64> = (0..10000).map(|_| a.uniform()).collect();
        let ys: Vec<f64> = (0..10000).map(|_| b.uniform()).collect();
        assert_eq!(xs, ys);
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        let m: f32 = (0..10000).map(|i| uniform_at(7, i)).sum::<f32>() / 10000.0;
        assert!((m - 0.5).abs() < 0.01, "{m}");
    }
}
