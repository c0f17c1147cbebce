//! Causal self-attention over a key/value cache, for incremental decoding.
//!
//! Each call appends the new tokens' keys and values to the cache and attends every new query
//! to the cached keys before it (causal) that the key mask allows (left padding). The cost of
//! one new token is one pass over the cached keys and values: the prompt is never re-run.
//!
//! Plain Rust on host memory rather than candle ops: at one query row per sequence the work
//! is a few dot products per head, and candle's `cat` + `matmul` + softmax nodes cost more
//! than the arithmetic (and `cat` would copy the whole cache every step). Forward only;
//! training runs the differentiable tensor-op attention.

use super::common::OutPtr;
use super::simd::{dispatch, dot, dot_widened};
use super::softmax::{softmax_row_in_place, softmax_rows_in_place_best};
use super::sparse_attention::{leading_padding, sparse_positions};
use rayon::prelude::*;

/// How a [`KvBuffer`] stores keys and values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvDtype {
    /// Exact: what f32 decoding uses (its tokens equal HF's).
    F32,
    /// bf16 (round to nearest even), widened to f32 as it is read: half the bytes. At batch
    /// 8 the cache is a third of what a decoding step reads (GPT-2 small: ~57 MB of keys and
    /// values against 124 MB of int8 weights), so the int8 decoder, already approximate by
    /// its 7-bit activations (~0.4 % per element), stores bf16 (~0.2 %).
    Bf16,
}

/// A cached element: f32 or bf16 bits.
trait KvElem: Copy + Default + Send + Sync {
    fn from_f32(x: f32) -> Self;
    fn to_f32(self) -> f32;
    /// `q · k` in f32.
    fn dot(q: &[f32], k: &[Self]) -> f32;
    /// [`attend`] compiled for the CPU's instruction set.
    fn attend_best(
        q: &[f32],
        keys: &[Self],
        values: &[Self],
        mask: &[f32],
        scores: &mut [f32],
        scale: f32,
        ctx: &mut [f32],
    );
}

impl KvElem for f32 {
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        x
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn dot(q: &[f32], k: &[f32]) -> f32 {
        dot(q, k)
    }
    fn attend_best(
        q: &[f32],
        keys: &[f32],
        values: &[f32],
        mask: &[f32],
        scores: &mut [f32],
        scale: f32,
        ctx: &mut [f32],
    ) {
        attend_f32(q, keys, values, mask, scores, scale, ctx)
    }
}

impl KvElem for u16 {
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        half::bf16::from_f32(x).to_bits()
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f32::from_bits((self as u32) << 16)
    }
    #[inline(always)]
    fn dot(q: &[f32], k: &[u16]) -> f32 {
        dot_widened(q, k, u16::to_f32)
    }
    fn attend_best(
        q: &[f32],
        keys: &[u16],
        values: &[u16],
        mask: &[f32],
        scores: &mut [f32],
        scale: f32,
        ctx: &mut [f32],
    ) {
        attend_bf16(q, keys, values, mask, scores, scale, ctx)
    }
}

/// The key and value arrays, each `[rows, heads, capacity, head_dim]`.
#[derive(Clone, Debug, Default)]
struct Arrays<T> {
    k: Vec<T>,
    v: Vec<T>,
}

/// The arrays in one element type (keys and values always share it).
#[derive(Clone, Debug)]
enum Store {
    F32(Arrays<f32>),
    Bf16(Arrays<u16>),
}

/// Runs `$body` with `$a` bound to the store's [`Arrays`], whatever their element type.
macro_rules! with_arrays {
    ($store:expr, $a:ident => $body:expr) => {
        match $store {
            Store::F32($a) => $body,
            Store::Bf16($a) => $body,
        }
    };
}

/// Keys and values of one attention layer for `rows` sequences, laid out
/// `[rows, heads, capacity, head_dim]` so each (row, head) block is contiguous.
#[derive(Clone, Debug)]
pub struct KvBuffer {
    store: Store,
    rows: usize,
    heads: usize,
    head_dim: usize,
    capacity: usize,
    len: usize,
}

impl KvBuffer {
    /// An empty f32 cache for `rows` sequences.
    pub fn new(rows: usize, heads: usize, head_dim: usize) -> Self {
        Self::with_dtype(rows, heads, head_dim, KvDtype::F32)
    }

    /// An empty cache for `rows` sequences storing `dtype`.
    pub fn with_dtype(rows: usize, heads: usize, head_dim: usize, dtype: KvDtype) -> Self {
        let store = match dtype {
            KvDtype::F32 => Store::F32(Arrays::default()),
            KvDtype::Bf16 => Store::Bf16(Arrays::default()),
        };
        KvBuffer {
            store,
            rows,
            heads,
            head_dim,
            capacity: 0,
            len: 0,
        }
    }

    /// How keys and values are stored.
    pub fn dtype(&self) -> KvDtype {
        match self.store {
            Store::F32(_) => KvDtype::F32,
            Store::Bf16(_) => KvDtype::Bf16,
        }
    }

    /// Cached positions per sequence.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before the first token.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sequences in the cache.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Makes room for `len` positions, doubling so appends are amortised O(1).
    fn reserve(&mut self, len: usize) {
        if len <= self.capacity {
            return;
        }
        let cap = len.max(2 * self.capacity).max(16);
        let (blocks, d, old_cap, used) = (
            self.rows * self.heads,
            self.head_dim,
            self.capacity,
            self.len,
        );
        with_arrays!(&mut self.store, a => for x in [&mut a.k, &mut a.v] {
            *x = regrid(x, blocks, old_cap * d, cap * d, used * d, |b| b);
        });
        self.capacity = cap;
    }

    /// Keeps sequence `order[i]` as sequence `i` (beam search reorders hypotheses); the
    /// number of rows may change.
    pub fn reorder(&mut self, order: &[usize]) {
        let block = self.capacity * self.head_dim;
        let (heads, used) = (self.heads, self.len * self.head_dim);
        // Block `dst·heads + h` takes block `order[dst]·heads + h`.
        let from = |b: usize| order[b / heads] * heads + b % heads;
        with_arrays!(&mut self.store, a => for x in [&mut a.k, &mut a.v] {
            *x = regrid(x, order.len() * heads, block, block, used, from);
        });
        self.rows = order.len();
    }
}

/// A new array of `blocks` blocks of `new_block` elements, block `b` holding the first
/// `used` elements of old block `from(b)` (blocks of `old_block` elements).
fn regrid<T: Copy + Default>(
    old: &[T],
    blocks: usize,
    old_block: usize,
    new_block: usize,
    used: usize,
    from: impl Fn(usize) -> usize,
) -> Vec<T> {
    let mut new = vec![T::default(); blocks * new_block];
    for b in 0..blocks {
        new[b * new_block..][..used].copy_from_slice(&old[from(b) * old_block..][..used]);
    }
    new
}

/// Appends the keys and values of `t` new tokens and returns the attention context.
///
/// `qkv` is `[rows, t, 3·hidden]` (Q, K, V blocks as GPT-2's `c_attn` writes them),
/// `key_mask` is `[rows, past + t]` with 1 for tokens and 0 for padding, covering the cached
/// and the new positions. Returns `[rows, t, hidden]`. With `sparse = Some(k)` each token
/// attends only to the local + strided positions of [`super::sparse_attention`].
pub fn cached_causal_attention(
    qkv: &[f32],
    t: usize,
    cache: &mut KvBuffer,
    key_mask: &[f32],
    scale: f32,
    sparse: Option<usize>,
) -> Vec<f32> {
    let (rows, heads, d) = (cache.rows, cache.heads, cache.head_dim);
    let h = heads * d;
    let past = cache.len;
    let total = past + t;
    assert_eq!(qkv.len(), rows * t * 3 * h, "qkv shape");
    assert_eq!(key_mask.len(), rows * total, "key mask shape");
    cache.reserve(total);
    append(qkv, t, cache);
    cache.len = total;
    let shape = Shape {
        rows,
        heads,
        d,
        cap: cache.capacity,
        past,
        t,
    };
    with_arrays!(&cache.store, a => attend_all(qkv, &a.k, &a.v, key_mask, shape, scale, sparse))
}

/// The sizes of one [`cached_causal_attention`] call.
#[derive(Clone, Copy)]
struct Shape {
    rows: usize,
    heads: usize,
    d: usize,
    cap: usize,
    past: usize,
    t: usize,
}

/// Every new query of every (row, head) against the cache `kc`, `vc`.
fn attend_all<T: KvElem>(
    qkv: &[f32],
    kc: &[T],
    vc: &[T],
    key_mask: &[f32],
    shape: Shape,
    scale: f32,
    sparse: Option<usize>,
) -> Vec<f32> {
    let Shape {
        rows,
        heads,
        d,
        cap,
        past,
        t,
    } = shape;
    let (h, total) = (heads * d, past + t);
    let mut out = vec![0f32; rows * t * h];
    let dst = OutPtr(out.as_mut_ptr());
    (0..rows * heads).into_par_iter().for_each_init(
        || (vec![0f32; total], Vec::new(), vec![1f32; total]),
        |(scores, gathered, ones), job| {
            let (r, head) = (job / heads, job % heads);
            let keys = &kc[job * cap * d..][..total * d];
            let values = &vc[job * cap * d..][..total * d];
            let mask = &key_mask[r * total..][..total];
            let first = leading_padding(mask);
            for i in 0..t {
                let q = &qkv[(r * t + i) * 3 * h + head * d..][..d];
                let n = past + i + 1;
                // SAFETY: row r, position i, columns head·d.. belong to this task only.
                let ctx = unsafe {
                    std::slice::from_raw_parts_mut(dst.get().add((r * t + i) * h + head * d), d)
                };
                match sparse {
                    Some(k) if n > first => {
                        sparse_positions(n - 1 - first, k, gathered);
                        let keys = &keys[first * d..];
                        let values = &values[first * d..];
                        attend_gathered(q, keys, values, gathered, ones, scale, scores, ctx);
                    }
                    Some(_) => ctx.iter_mut().for_each(|c| *c = 0.0),
                    None => T::attend_best(
                        q,
                        &keys[..n * d],
                        &values[..n * d],
                        &mask[..n],
                        &mut scores[..n],
                        scale,
                        ctx,
                    ),
                }
            }
        },
    );
    out
}

/// One query over the gathered key positions (counted from the row's first real token);
/// `ones` is an all-ones mask at least as long as `positions`.
#[allow(clippy::too_many_arguments)]
fn attend_gathered<T: KvElem>(
    q: &[f32],
    keys: &[T],
    values: &[T],
    positions: &[usize],
    ones: &[f32],
    scale: f32,
    scores: &mut Vec<f32>,
    ctx: &mut [f32],
) {
    let d = q.len();
    scores.clear();
    scores.extend(positions.iter().map(|&p| T::dot(q, &keys[p * d..][..d])));
    softmax_rows_in_place_best(scores, &ones[..positions.len()], scale);
    ctx.iter_mut().for_each(|c| *c = 0.0);
    for (&p, &w) in positions.iter().zip(scores.iter()) {
        for (c, x) in ctx.iter_mut().zip(&values[p * d..][..d]) {
            *c += w * x.to_f32();
        }
    }
}

/// Copies the new keys and values into the cache after the `len` cached positions.
fn append(qkv: &[f32], t: usize, cache: &mut KvBuffer) {
    let (heads, d, cap, past) = (cache.heads, cache.head_dim, cache.capacity, cache.len);
    let h = heads * d;
    with_arrays!(&mut cache.store, a => for (dst, offset) in [(&mut a.k, h), (&mut a.v, 2 * h)] {
        // Token `r·t + i` of `qkv` is row r's new position `past + i`.
        for (token, x) in qkv.chunks_exact(3 * h).enumerate() {
            let (r, i) = (token / t, token % t);
            for (head, x) in x[offset..][..h].chunks_exact(d).enumerate() {
                let at = ((r * heads + head) * cap + past + i) * d;
                for (y, &v) in dst[at..at + d].iter_mut().zip(x) {
                    *y = KvElem::from_f32(v);
                }
            }
        }
    });
}

/// One query: `ctx = softmax(scale · q·Kᵀ, masked) · V`.
#[inline(always)]
fn attend<T: KvElem>(
    q: &[f32],
    keys: &[T],
    values: &[T],
    mask: &[f32],
    scores: &mut [f32],
    scale: f32,
    ctx: &mut [f32],
) {
    let d = q.len();
    for (s, k) in scores.iter_mut().zip(keys.chunks_exact(d)) {
        *s = T::dot(q, k);
    }
    softmax_row_in_place(scores, mask, scale);
    ctx.iter_mut().for_each(|c| *c = 0.0);
    for (&p, v) in scores.iter().zip(values.chunks_exact(d)) {
        if p != 0.0 {
            for (c, x) in ctx.iter_mut().zip(v) {
                *c += p * x.to_f32();
            }
        }
    }
}

dispatch!(fn attend_f32(q: &[f32], keys: &[f32], values: &[f32], mask: &[f32], scores: &mut [f32], scale: f32, ctx: &mut [f32]) => attend);
dispatch!(fn attend_bf16(q: &[f32], keys: &[u16], values: &[u16], mask: &[f32], scores: &mut [f32], scale: f32, ctx: &mut [f32]) => attend);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    const ROWS: usize = 3;
    const HEADS: usize = 2;
    const D: usize = 24;

    fn round_bf16(x: f32) -> f32 {
        half::bf16::from_f32(x).to_f32()
    }

    /// Decodes `steps` chunks of new tokens (a 5-token prompt, then one at a time, crossing
    /// the cache's growth at 16 and 32 positions; rows 1 and 2 reordered halfway), the last
    /// row left-padded by two positions, with or without sparse attention.
    fn decode(dtype: KvDtype, round_kv: bool, sparse: Option<usize>) -> Vec<Vec<f32>> {
        let mut rng = Rng::new(11);
        let h = HEADS * D;
        let mut cache = KvBuffer::with_dtype(ROWS, HEADS, D, dtype);
        let mut mask: Vec<Vec<f32>> = vec![Vec::new(); ROWS];
        let mut outs = Vec::new();
        for step in 0..36 {
            let t = if step == 0 { 5 } else { 1 };
            if step == 18 {
                cache.reorder(&[0, 2, 1]);
                mask.swap(1, 2);
            }
            let mut qkv: Vec<f32> = (0..ROWS * t * 3 * h).map(|_| rng.normal() as f32).collect();
            if round_kv {
                for (i, x) in qkv.iter_mut().enumerate() {
                    if i % (3 * h) >= h {
                        *x = round_bf16(*x);
                    }
                }
            }
            for (r, m) in mask.iter_mut().enumerate() {
                m.extend((0..t).map(|i| {
                    if r == 2 && step == 0 && i < 2 {
                        0.0
                    } else {
                        1.0
                    }
                }));
            }
            let key_mask = mask.concat();
            outs.push(cached_causal_attention(
                &qkv, t, &mut cache, &key_mask, 0.3, sparse,
            ));
        }
        assert_eq!((cache.len(), cache.dtype()), (40, dtype));
        outs
    }

    /// A bf16 cache computes exactly what an f32 cache computes on the bf16-rounded keys
    /// and values (same summation order), through growth, reordering and sparse attention.
    #[test]
    fn a_bf16_cache_attends_exactly_as_an_f32_cache_of_the_rounded_keys_and_values() {
        for sparse in [None, Some(4)] {
            let exact = decode(KvDtype::F32, true, sparse);
            assert_eq!(decode(KvDtype::Bf16, false, sparse), exact, "{sparse:?}");
            assert_eq!(decode(KvDtype::Bf16, true, sparse), exact, "{sparse:?}");
            // And the rounding is really there: unrounded f32 inputs give other outputs.
            assert_ne!(decode(KvDtype::F32, false, sparse), exact, "{sparse:?}");
        }
    }
}
