//! The word2vec vocabulary: words counted and kept at `min_count`, most frequent first; the
//! subsampling keep-probabilities, the Huffman tree of hierarchical softmax and the
//! unigram^0.75 table negatives are drawn from — each as the original C word2vec builds it
//! (and gensim: the same formulas).

use crate::error::{Error, Result};
use std::collections::HashMap;

/// Words seen at least `min_count` times, most frequent first (ties in byte order).
pub struct Vocab {
    /// The words, by id.
    pub words: Vec<String>,
    /// Their counts in the corpus.
    pub counts: Vec<u64>,
    /// Word → id.
    pub index: HashMap<String, u32>,
}

impl Vocab {
    /// From raw counts, keeping words seen at least `min_count` times.
    pub fn build(counts: HashMap<String, u64>, min_count: u64) -> Result<Self> {
        let mut kept: Vec<(String, u64)> = counts
            .into_iter()
            .filter(|(_, c)| *c >= min_count)
            .collect();
        if kept.len() < 2 {
            return Err(Error::Invalid(format!(
                "word2vec: {} word(s) occur at least min_count = {min_count} times; a vocabulary \
                 needs two or more (lower --min-count or give more text)",
                kept.len()
            )));
        }
        kept.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let index = (kept.iter().enumerate())
            .map(|(i, (w, _))| (w.clone(), i as u32))
            .collect();
        let (words, counts) = kept.into_iter().unzip();
        Ok(Vocab {
            words,
            counts,
            index,
        })
    }

    /// Words in the vocabulary.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// True when empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Occurrences of vocabulary words in the corpus.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Chance of keeping each occurrence of a word when subsampling frequent words at
    /// `sample` (0: keep all): `(sqrt(c / t) + 1) · t / c` with `t = sample · total`, at most 1.
    pub fn keep_probabilities(&self, sample: f64) -> Vec<f32> {
        let t = sample * self.total() as f64;
        (self.counts.iter())
            .map(|&c| match sample > 0.0 {
                true => (((c as f64 / t).sqrt() + 1.0) * t / c as f64).min(1.0) as f32,
                false => 1.0,
            })
            .collect()
    }
}

/// Hierarchical-softmax paths: for each word, the branch taken at each inner node (`codes`)
/// and those nodes' rows in the output matrix (`points`), root first.
pub struct Huffman {
    /// 0/1 per step.
    pub codes: Vec<Vec<u8>>,
    /// Inner-node rows (0 ..= words − 2), root (`words − 2`) first.
    pub points: Vec<Vec<u32>>,
}

/// The Huffman tree of `counts` (sorted descending, as [`Vocab`] is), built as the C
/// word2vec's `CreateBinaryTree` does: two pointers merging the leaves (from the rarest) with
/// the new inner nodes, the second-smallest child taking code 1.
pub fn huffman(counts: &[u64]) -> Huffman {
    let v = counts.len();
    let mut count: Vec<u64> = counts.to_vec();
    count.resize(2 * v - 1, u64::MAX);
    let mut parent = vec![0usize; 2 * v - 1];
    let mut binary = vec![0u8; 2 * v - 1];
    let (mut leaf, mut inner) = (v as isize - 1, v);
    let mut smallest = |count: &[u64]| -> usize {
        if leaf >= 0 && count[leaf as usize] < count[inner] {
            leaf -= 1;
            (leaf + 1) as usize
        } else {
            inner += 1;
            inner - 1
        }
    };
    for a in 0..v - 1 {
        let first = smallest(&count);
        let second = smallest(&count);
        count[v + a] = count[first] + count[second];
        parent[first] = v + a;
        parent[second] = v + a;
        binary[second] = 1;
    }
    let root = 2 * v - 2;
    let mut codes = Vec::with_capacity(v);
    let mut points = Vec::with_capacity(v);
    for word in 0..v {
        // Leaf to root, then reversed: the nodes above `word` and the branch into each child.
        let (mut code, mut path) = (Vec::new(), Vec::new());
        let mut node = word;
        while node != root {
            code.push(binary[node]);
            node = parent[node];
            path.push((node - v) as u32);
        }
        code.reverse();
        path.reverse();
        codes.push(code);
        points.push(path);
    }
    Huffman { codes, points }
}

/// Negative samples drawn in proportion to `count^0.75` (the C tool's unigram
/// distribution) by Walker's alias method: one uniform word and one coin per draw, two tables
/// of one entry per word. The C tool's 10⁸-entry table (and a 10⁷ one, measured) spends a
/// third of skip-gram's time on cache misses; these tables stay in L2.
pub struct NegativeTable {
    /// Chance of keeping the uniformly drawn word, else its alias.
    keep: Vec<f32>,
    alias: Vec<u32>,
}

impl NegativeTable {
    /// The tables for `counts` (Vose's construction).
    pub fn new(counts: &[u64]) -> Self {
        let n = counts.len();
        let weights: Vec<f64> = counts.iter().map(|&c| (c as f64).powf(0.75)).collect();
        let total: f64 = weights.iter().sum();
        let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| scaled[i] < 1.0);
        let mut keep = vec![1f32; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            keep[s] = scaled[s] as f32;
            alias[s] = l as u32;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        NegativeTable { keep, alias }
    }

    /// The word for two random draws.
    #[inline(always)]
    pub fn sample(&self, r1: u64, r2: u64) -> u32 {
        let i = ((r1 >> 16) % self.keep.len() as u64) as usize;
        let coin = ((r2 >> 40) as u32) as f32 / (1u64 << 24) as f32;
        if coin < self.keep[i] {
            i as u32
        } else {
            self.alias[i]
        }
    }

    /// The probability of drawing each word, as the tables give it (for tests).
    pub fn probabilities(&self) -> Vec<f64> {
        let n = self.keep.len() as f64;
        let mut p: Vec<f64> = self.keep.iter().map(|&k| f64::from(k) / n).collect();
        for (i, (&k, &a)) in self.keep.iter().zip(&self.alias).enumerate() {
            if a as usize != i {
                p[a as usize] += (1.0 - f64::from(k)) / n;
            }
        }
        p
    }
}
