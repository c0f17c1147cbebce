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
use super::simd::{dispatch, dot};
use super::softmax::{softmax_row_in_place, softmax_rows_in_place_best};
use super::sparse_attention::{leading_padding, sparse_positions};
use rayon::prelude::*;

/// Keys and values of one attention layer for `rows` sequences, laid out
/// `[rows, heads, capacity, head_dim]` so each (row, head) block is contiguous.
#[derive(Clone, Debug)]
pub struct KvBuffer {
    k: Vec<f32>,
    v: Vec<f32>,
    rows: usize,
    heads: usize,
    head_dim: usize,
    capacity: usize,
    len: usize,
}

impl KvBuffer {
    /// An empty cache for `rows` sequences.
    pub fn new(rows: usize, heads: usize, head_dim: usize) -> Self {
        KvBuffer {
            k: Vec::new(),
            v: Vec::new(),
            rows,
            heads,
            head_dim,
            capacity: 0,
            len: 0,
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
        let d = self.head_dim;
        let grow = |old: &[f32]| {
            let mut new = vec![0f32; self.rows * self.heads * cap * d];
            for blk in 0..self.rows * self.heads {
                let src = &old[blk * self.capacity * d..][..self.len * d];
                new[blk * cap * d..][..self.len * d].copy_from_slice(src);
            }
            new
        };
        self.k = grow(&self.k);
        self.v = grow(&self.v);
        self.capacity = cap;
    }

    /// Keeps sequence `order[i]` as sequence `i` (beam search reorders hypotheses); the
    /// number of rows may change.
    pub fn reorder(&mut self, order: &[usize]) {
        let blk = self.heads * self.capacity * self.head_dim;
        let used = self.len * self.head_dim;
        let pick = |old: &[f32]| {
            let mut new = vec![0f32; order.len() * blk];
            for (dst, &src) in order.iter().enumerate() {
                for h in 0..self.heads {
                    let off = h * self.capacity * self.head_dim;
                    new[dst * blk + off..][..used].copy_from_slice(&old[src * blk + off..][..used]);
                }
            }
            new
        };
        self.k = pick(&self.k);
        self.v = pick(&self.v);
        self.rows = order.len();
    }
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
    let cap = cache.capacity;
    let mut out = vec![0f32; rows * t * h];
    let dst = OutPtr(out.as_mut_ptr());
    let (kc, vc) = (&cache.k, &cache.v);
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
                    None => attend_best(
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
fn attend_gathered(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    positions: &[usize],
    ones: &[f32],
    scale: f32,
    scores: &mut Vec<f32>,
    ctx: &mut [f32],
) {
    let d = q.len();
    scores.clear();
    scores.extend(positions.iter().map(|&p| dot(q, &keys[p * d..][..d])));
    softmax_rows_in_place_best(scores, &ones[..positions.len()], scale);
    ctx.iter_mut().for_each(|c| *c = 0.0);
    for (&p, &w) in positions.iter().zip(scores.iter()) {
        for (c, x) in ctx.iter_mut().zip(&values[p * d..][..d]) {
            *c += w * x;
        }
    }
}

/// Copies the new keys and values into the cache after the `len` cached positions.
fn append(qkv: &[f32], t: usize, cache: &mut KvBuffer) {
    let (heads, d, cap, past) = (cache.heads, cache.head_dim, cache.capacity, cache.len);
    let h = heads * d;
    for r in 0..cache.rows {
        for i in 0..t {
            let src = &qkv[(r * t + i) * 3 * h..][..3 * h];
            for head in 0..heads {
                let at = ((r * heads + head) * cap + past + i) * d;
                cache.k[at..at + d].copy_from_slice(&src[h + head * d..][..d]);
                cache.v[at..at + d].copy_from_slice(&src[2 * h + head * d..][..d]);
            }
        }
    }
}

/// One query: `ctx = softmax(scale · q·Kᵀ, masked) · V`.
#[inline(always)]
fn attend(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    mask: &[f32],
    scores: &mut [f32],
    scale: f32,
    ctx: &mut [f32],
) {
    let d = q.len();
    for (s, k) in scores.iter_mut().zip(keys.chunks_exact(d)) {
        *s = dot(q, k);
    }
    softmax_row_in_place(scores, mask, scale);
    ctx.iter_mut().for_each(|c| *c = 0.0);
    for (&p, v) in scores.iter().zip(values.chunks_exact(d)) {
        if p != 0.0 {
            for (c, x) in ctx.iter_mut().zip(v) {
                *c += p * x;
            }
        }
    }
}

dispatch!(fn attend_best(q: &[f32], keys: &[f32], values: &[f32], mask: &[f32], scores: &mut [f32], scale: f32, ctx: &mut [f32]) => attend);
