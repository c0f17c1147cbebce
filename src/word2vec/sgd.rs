//! The word2vec updates, as the C word2vec makes them: skip-gram (each context word's input
//! vector predicts the centre word) and CBOW (the mean of the context vectors predicts it),
//! each with negative sampling and/or hierarchical softmax, plain SGD at rate `alpha`, the
//! sigmoid read from a 1000-entry table over (−6, 6).
//!
//! Training threads share the matrices without locks (Hogwild, as the C tool and gensim): two
//! threads may update one row at once and one update may be lost, which SGD tolerates. The
//! rows are reached through raw pointers ([`Hogwild`]) for that reason; a thread only ever
//! reads and writes whole `f32`s.

use crate::kernels::simd::dot;

/// Largest |x| the sigmoid table covers.
pub const MAX_EXP: f32 = 6.0;
/// Entries of the sigmoid table.
pub const EXP_TABLE_SIZE: usize = 1000;

/// `σ` at the 1000 points the C word2vec tabulates.
pub fn sigmoid_table() -> Vec<f32> {
    (0..EXP_TABLE_SIZE)
        .map(|i| {
            let x = (i as f32 / EXP_TABLE_SIZE as f32 * 2.0 - 1.0) * MAX_EXP;
            let e = x.exp();
            e / (e + 1.0)
        })
        .collect()
}

#[inline(always)]
fn sigmoid(table: &[f32], f: f32) -> f32 {
    let i = ((f + MAX_EXP) * (EXP_TABLE_SIZE as f32 / MAX_EXP / 2.0)) as usize;
    table[i.min(EXP_TABLE_SIZE - 1)]
}

/// The C word2vec's generator: `r = r · 25214903917 + 11`.
#[derive(Clone, Copy, Debug)]
pub struct Lcg(pub u64);

impl Lcg {
    /// The next draw.
    #[inline(always)]
    pub fn draw(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(25_214_903_917).wrapping_add(11);
        self.0
    }
}

/// A `[rows, dim]` matrix that training threads update in place without locks.
pub struct Hogwild {
    data: Vec<f32>,
    ptr: *mut f32,
    dim: usize,
}

// SAFETY: see the module doc: concurrent whole-f32 reads and writes of shared rows are the
// algorithm (Hogwild); the buffer outlives every thread (scoped threads borrow it).
unsafe impl Sync for Hogwild {}
unsafe impl Send for Hogwild {}

impl Hogwild {
    /// Wraps `data` (`rows × dim` values).
    pub fn new(mut data: Vec<f32>, dim: usize) -> Self {
        let ptr = data.as_mut_ptr();
        Hogwild { data, ptr, dim }
    }

    /// Row `i` for reading and writing.
    ///
    /// # Safety
    /// `i` must be a row of the matrix; other threads may write the row meanwhile.
    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    pub unsafe fn row(&self, i: u32) -> &mut [f32] {
        std::slice::from_raw_parts_mut(self.ptr.add(i as usize * self.dim), self.dim)
    }

    /// The values, once training is over.
    pub fn into_inner(self) -> Vec<f32> {
        self.data
    }
}

/// `y += a · x`.
#[inline(always)]
fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// The output side of one prediction: the target word's outputs and where the gradient for
/// the input goes.
pub struct Outputs<'a> {
    /// Negative sampling: `syn1neg` rows by word.
    pub syn1neg: Option<&'a Hogwild>,
    /// Hierarchical softmax: `syn1` rows by inner node.
    pub syn1: Option<&'a Hogwild>,
    /// The sigmoid table.
    pub table: &'a [f32],
}

/// Updates the outputs for predicting `word` from `input` at rate `alpha`, and adds the
/// gradient for `input` into `grad`: hierarchical softmax along `path` (codes, points) if
/// given, then negative sampling with the target and `negatives` (C's order). `negatives`
/// equal to `word` are skipped.
#[inline(always)]
pub fn predict(
    out: &Outputs,
    input: &[f32],
    word: u32,
    path: Option<(&[u8], &[u32])>,
    negatives: &[u32],
    alpha: f32,
    grad: &mut [f32],
) {
    if let (Some(syn1), Some((codes, points))) = (out.syn1, path) {
        for (&code, &node) in codes.iter().zip(points) {
            // SAFETY: points are inner-node rows of syn1 (< words − 1).
            let row = unsafe { syn1.row(node) };
            let f = dot(input, row);
            if f <= -MAX_EXP || f >= MAX_EXP {
                continue;
            }
            let g = (1.0 - f32::from(code) - sigmoid(out.table, f)) * alpha;
            axpy(g, row, grad);
            axpy(g, input, row);
        }
    }
    if let Some(syn1neg) = out.syn1neg {
        let targets = std::iter::once((word, 1.0)).chain(
            (negatives.iter())
                .filter(|&&n| n != word)
                .map(|&n| (n, 0.0)),
        );
        for (target, label) in targets {
            // SAFETY: targets are word ids of the vocabulary (rows of syn1neg).
            let row = unsafe { syn1neg.row(target) };
            let f = dot(input, row);
            let g = if f > MAX_EXP {
                (label - 1.0) * alpha
            } else if f < -MAX_EXP {
                label * alpha
            } else {
                (label - sigmoid(out.table, f)) * alpha
            };
            axpy(g, row, grad);
            axpy(g, input, row);
        }
    }
}

/// One skip-gram pair: `context`'s input vector predicts `word`; its vector then moves by the
/// summed gradient.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn skip_gram_pair(
    syn0: &Hogwild,
    out: &Outputs,
    context: u32,
    word: u32,
    path: Option<(&[u8], &[u32])>,
    negatives: &[u32],
    alpha: f32,
    grad: &mut [f32],
) {
    grad.fill(0.0);
    // SAFETY: context is a word id (a row of syn0).
    let input = unsafe { syn0.row(context) };
    predict(out, input, word, path, negatives, alpha, grad);
    axpy(1.0, grad, input);
}

/// One CBOW prediction: the mean of `contexts`' input vectors predicts `word`; each context
/// vector then moves by the (unscaled) gradient, as in C and gensim's `cbow_mean=1`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn cbow(
    syn0: &Hogwild,
    out: &Outputs,
    contexts: &[u32],
    word: u32,
    path: Option<(&[u8], &[u32])>,
    negatives: &[u32],
    alpha: f32,
    (mean, grad): (&mut [f32], &mut [f32]),
) {
    if contexts.is_empty() {
        return;
    }
    mean.fill(0.0);
    grad.fill(0.0);
    for &c in contexts {
        // SAFETY: contexts are word ids (rows of syn0).
        axpy(1.0, unsafe { syn0.row(c) }, mean);
    }
    let inv = 1.0 / contexts.len() as f32;
    mean.iter_mut().for_each(|v| *v *= inv);
    predict(out, mean, word, path, negatives, alpha, grad);
    for &c in contexts {
        // SAFETY: as above.
        axpy(1.0, grad, unsafe { syn0.row(c) });
    }
}
