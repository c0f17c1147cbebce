//! word2vec (Mikolov et al., 2013): skip-gram and CBOW word vectors trained with negative
//! sampling and/or hierarchical softmax, frequent words subsampled, the learning rate decayed
//! linearly, several threads updating shared vectors without locks — the C tool's algorithm,
//! with gensim's option names and defaults. Vectors are saved in the word2vec text and binary
//! formats that gensim's `KeyedVectors.load_word2vec_format` reads.

pub mod sgd;
mod vectors;
pub mod vocab;

use crate::error::{Error, Result};
use crate::kernels::simd::dispatch;
use sgd::{cbow, sigmoid_table, skip_gram_pair, Hogwild, Lcg, Outputs};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
pub use vectors::{Analogies, Neighbour, WordVectors};
use vocab::{huffman, Huffman, NegativeTable, Vocab};

/// Training settings (gensim's `Word2Vec` names and defaults).
#[derive(Clone, Debug)]
pub struct Word2VecConfig {
    /// Vector size.
    pub vector_size: usize,
    /// Largest distance between the centre and a context word (each position draws a
    /// window of 1 ..= this, as the C tool and gensim do).
    pub window: usize,
    /// Words seen fewer times are dropped.
    pub min_count: u64,
    /// Subsampling threshold for frequent words (0: off).
    pub sample: f64,
    /// Skip-gram (else CBOW with the mean of the context vectors).
    pub sg: bool,
    /// Hierarchical softmax.
    pub hs: bool,
    /// Negative samples per prediction (0: none; then `hs` must be on).
    pub negative: usize,
    /// Learning rate at the start, falling linearly to `min_alpha`.
    pub alpha: f32,
    /// Learning rate at the end.
    pub min_alpha: f32,
    /// Passes over the corpus.
    pub epochs: usize,
    /// Training threads.
    pub workers: usize,
    /// Seed of the initial vectors and of every thread's draws.
    pub seed: u64,
}

impl Default for Word2VecConfig {
    fn default() -> Self {
        Word2VecConfig {
            vector_size: 100,
            window: 5,
            min_count: 5,
            sample: 1e-3,
            sg: false,
            hs: false,
            negative: 5,
            alpha: 0.025,
            min_alpha: 0.0001,
            epochs: 5,
            workers: 2,
            seed: 1,
        }
    }
}

impl Word2VecConfig {
    /// An error naming the first setting that cannot train.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(format!("word2vec: {m}")));
        if self.vector_size == 0 || self.window == 0 || self.epochs == 0 || self.workers == 0 {
            return bad("vector_size, window, epochs and workers must be ≥ 1".into());
        }
        if !self.hs && self.negative == 0 {
            return bad("negative = 0 without hs: nothing would be trained".into());
        }
        if !(self.alpha > 0.0 && self.min_alpha >= 0.0 && self.min_alpha <= self.alpha) {
            return bad(format!(
                "need 0 ≤ min_alpha ≤ alpha and alpha > 0, got alpha {} and min_alpha {}",
                self.alpha, self.min_alpha
            ));
        }
        if !(self.sample >= 0.0 && self.sample.is_finite()) {
            return bad(format!("sample must be ≥ 0, got {}", self.sample));
        }
        Ok(())
    }
}

/// A tokenised corpus: word ids of the vocabulary (other words dropped) and where each
/// sentence (line) ends.
pub struct Corpus {
    /// The vocabulary, most frequent first.
    pub vocab: Vocab,
    ids: Vec<u32>,
    ends: Vec<usize>,
    /// Whitespace-separated words read, vocabulary or not.
    pub raw_words: u64,
}

impl Corpus {
    /// Reads `path` (UTF-8 text, one sentence per line, words separated by whitespace) and
    /// keeps the words seen at least `min_count` times.
    pub fn read(path: &Path, min_count: u64) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            Error::Invalid(format!("{}:{line}: not valid UTF-8", path.display()))
        })?;
        let mut counts: HashMap<&str, u64> = HashMap::new();
        let mut raw_words = 0u64;
        for w in text.split_whitespace() {
            *counts.entry(w).or_default() += 1;
            raw_words += 1;
        }
        if raw_words == 0 {
            return Err(Error::Invalid(format!("{}: no words", path.display())));
        }
        let owned = counts
            .into_iter()
            .map(|(w, c)| (w.to_string(), c))
            .collect();
        let vocab = Vocab::build(owned, min_count)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        let (mut ids, mut ends) = (Vec::new(), Vec::new());
        for line in text.lines() {
            ids.extend(line.split_whitespace().filter_map(|w| vocab.index.get(w)));
            if ends.last() != Some(&ids.len()) {
                ends.push(ids.len());
            }
        }
        Ok(Corpus {
            vocab,
            ids,
            ends,
            raw_words,
        })
    }

    /// The sentences, as word ids.
    fn sentences(&self) -> impl Iterator<Item = &[u32]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(s, &e)| &self.ids[s..e])
    }
}

/// What training did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrainStats {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Words read per epoch (vocabulary or not).
    pub raw_words: u64,
    /// Vocabulary words per epoch (before subsampling).
    pub train_words: u64,
    /// Seconds of training (after the corpus was read).
    pub seconds: f64,
    /// `raw_words × epochs / seconds`.
    pub words_per_second: f64,
}

/// What every thread reads while training.
struct Shared<'a> {
    syn0: &'a Hogwild,
    out: Outputs<'a>,
    tree: Option<&'a Huffman>,
    negatives: Option<&'a NegativeTable>,
    cfg: &'a Word2VecConfig,
}

/// A thread's buffers.
struct Work {
    kept: Vec<u32>,
    contexts: Vec<u32>,
    negs: Vec<u32>,
    mean: Vec<f32>,
    grad: Vec<f32>,
}

/// Trains on `corpus`; returns the input vectors (`syn0`), as the C tool and gensim save.
pub fn train(corpus: &Corpus, cfg: &Word2VecConfig) -> Result<(WordVectors, TrainStats)> {
    cfg.validate()?;
    let (v, dim) = (corpus.vocab.len(), cfg.vector_size);
    let mut rng = Lcg(cfg.seed);
    // The C tool's start: uniform in (−0.5, 0.5) / dim; outputs at zero.
    let init = (0..v * dim)
        .map(|_| (((rng.draw() & 0xFFFF) as f32 / 65536.0) - 0.5) / dim as f32)
        .collect();
    let syn0 = Hogwild::new(init, dim);
    let syn1 = cfg.hs.then(|| Hogwild::new(vec![0.0; v * dim], dim));
    let syn1neg = (cfg.negative > 0).then(|| Hogwild::new(vec![0.0; v * dim], dim));
    let tree = cfg.hs.then(|| huffman(&corpus.vocab.counts));
    let negatives = (cfg.negative > 0).then(|| NegativeTable::new(&corpus.vocab.counts));
    let table = sigmoid_table();
    let shared = Shared {
        syn0: &syn0,
        out: Outputs {
            syn1neg: syn1neg.as_ref(),
            syn1: syn1.as_ref(),
            table: &table,
        },
        tree: tree.as_ref(),
        negatives: negatives.as_ref(),
        cfg,
    };
    let keep = corpus.vocab.keep_probabilities(cfg.sample);
    let train_words = corpus.vocab.total();
    let total = (train_words * cfg.epochs as u64).max(1);
    let progress = AtomicU64::new(0);
    let start = std::time::Instant::now();
    let sentences: Vec<&[u32]> = corpus.sentences().collect();
    let chunk = sentences.len().div_ceil(cfg.workers).max(1);
    std::thread::scope(|s| {
        for (t, part) in sentences.chunks(chunk).enumerate() {
            let (shared, keep, progress) = (&shared, &keep, &progress);
            s.spawn(move || {
                let mut rng = Lcg(cfg.seed.wrapping_add(t as u64 + 1));
                let mut work = Work {
                    kept: Vec::new(),
                    contexts: Vec::new(),
                    negs: Vec::new(),
                    mean: vec![0.0; dim],
                    grad: vec![0.0; dim],
                };
                for _ in 0..cfg.epochs {
                    for sentence in part {
                        let done = progress.load(Ordering::Relaxed) as f32 / total as f32;
                        let alpha =
                            (cfg.alpha - (cfg.alpha - cfg.min_alpha) * done).max(cfg.min_alpha);
                        work.kept.clear();
                        for &w in sentence.iter() {
                            let p = keep[w as usize];
                            if p >= 1.0 || p >= (rng.draw() & 0xFFFF) as f32 / 65536.0 {
                                work.kept.push(w);
                            }
                        }
                        train_sentence(shared, &mut rng, alpha, &mut work);
                        progress.fetch_add(sentence.len() as u64, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let seconds = start.elapsed().as_secs_f64();
    let vectors = WordVectors::new(corpus.vocab.words.clone(), dim, syn0.into_inner())?;
    let stats = TrainStats {
        vocab_size: v,
        raw_words: corpus.raw_words,
        train_words,
        seconds,
        words_per_second: (corpus.raw_words * cfg.epochs as u64) as f64 / seconds.max(1e-9),
    };
    Ok((vectors, stats))
}

/// Every prediction of one (subsampled) sentence.
#[inline(always)]
fn sentence_body(sh: &Shared, rng: &mut Lcg, alpha: f32, work: &mut Work) {
    let cfg = sh.cfg;
    let n = work.kept.len();
    for pos in 0..n {
        let reach = cfg.window - (rng.draw() % cfg.window as u64) as usize;
        let (lo, hi) = (pos.saturating_sub(reach), (pos + reach).min(n - 1));
        let word = work.kept[pos];
        let path = sh.tree.map(|t| {
            (
                t.codes[word as usize].as_slice(),
                t.points[word as usize].as_slice(),
            )
        });
        if cfg.sg {
            for c in (lo..=hi).filter(|&c| c != pos) {
                draw(sh, rng, &mut work.negs);
                let context = work.kept[c];
                skip_gram_pair(
                    sh.syn0,
                    &sh.out,
                    context,
                    word,
                    path,
                    &work.negs,
                    alpha,
                    &mut work.grad,
                );
            }
        } else {
            work.contexts.clear();
            work.contexts
                .extend((lo..=hi).filter(|&c| c != pos).map(|c| work.kept[c]));
            draw(sh, rng, &mut work.negs);
            let bufs = (work.mean.as_mut_slice(), work.grad.as_mut_slice());
            cbow(
                sh.syn0,
                &sh.out,
                &work.contexts,
                word,
                path,
                &work.negs,
                alpha,
                bufs,
            );
        }
    }
}

dispatch!(fn train_sentence(sh: &Shared, rng: &mut Lcg, alpha: f32, work: &mut Work) => sentence_body);

/// `negative` draws from the unigram table.
#[inline(always)]
fn draw(sh: &Shared, rng: &mut Lcg, negs: &mut Vec<u32>) {
    negs.clear();
    if let Some(t) = sh.negatives {
        negs.extend((0..sh.cfg.negative).map(|_| t.sample(rng.draw(), rng.draw())));
    }
}
