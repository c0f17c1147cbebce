//! Sentence-pair blocks for BERT's next-sentence prediction (NSP) and ALBERT's
//! sentence-order prediction (SOP), built as Google's `create_pretraining_data.py` builds them
//! (and HF's `TextDatasetForNextSentencePrediction`, which copies it): a document's sentences
//! are gathered into a chunk of about `max_length − 3` tokens (a shorter random target with
//! `short_seq_probability`), the chunk is cut at a random sentence boundary into A and B, and
//!
//! - NSP: half the time B is replaced by text from a random other document (label 1; 0 when B
//!   follows A), the unused sentences going back to the document;
//! - SOP: half the time A and B are swapped (label 1; 0 in the original order).
//!
//! A chunk of one sentence cannot be cut, so its B is random text under both objectives, as
//! ALBERT does. Then the longer of A and B loses a token from a random end until the pair
//! fits. Pairs are drawn once, from the run's seed; masks are still drawn anew every pass.

use super::pretrain::{tokenize_documents, Block, Pair, TokenizedDoc};
use crate::error::Result;
use crate::rng::Rng;
use crate::tokenize::Tokenizer;
use serde::{Deserialize, Serialize};

/// The sentence-pair objective trained alongside masked LM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairObjective {
    /// Masked LM alone (blocks packed from consecutive text).
    None,
    /// BERT's next-sentence prediction: is B the text after A, or a random document's?
    Nsp,
    /// ALBERT's sentence-order prediction: are A and B in their original order?
    Sop,
}

impl PairObjective {
    /// The config spelling: `none`, `nsp` or `sop`.
    pub fn name(self) -> &'static str {
        match self {
            PairObjective::None => "none",
            PairObjective::Nsp => "nsp",
            PairObjective::Sop => "sop",
        }
    }
}

/// Sentences of a document: cut after `。！？!?…` and after a `.` followed by a space, with
/// closing quotes and brackets kept on the sentence they close.
pub fn split_sentences(doc: &str) -> Vec<&str> {
    const ENDS: &[char] = &['。', '！', '？', '!', '?', '…'];
    const CLOSERS: &[char] = &['”', '’', '"', '\'', '」', '』', '）', ')', '》'];
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = doc.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next = chars.peek().map(|&(_, n)| n);
        let ends = ENDS.contains(&c) || (c == '.' && next.is_some_and(char::is_whitespace));
        if !ends || next.is_some_and(|n| ENDS.contains(&n)) {
            continue;
        }
        let mut end = i + c.len_utf8();
        while let Some(&(j, n)) = chars.peek() {
            if !CLOSERS.contains(&n) {
                break;
            }
            end = j + n.len_utf8();
            chars.next();
        }
        push_trimmed(&mut out, &doc[start..end]);
        start = end;
    }
    push_trimmed(&mut out, &doc[start..]);
    out
}

/// Every document split into sentences ([`split_sentences`]) and tokenized, in order.
pub fn tokenize_sentences(
    docs: &[String],
    tok: &Tokenizer,
    whole_word: bool,
) -> Result<Vec<Vec<TokenizedDoc>>> {
    let mut counts = Vec::with_capacity(docs.len());
    let mut flat = Vec::new();
    for d in docs {
        let sentences = split_sentences(d);
        counts.push(sentences.len());
        flat.extend(sentences.into_iter().map(str::to_string));
    }
    let mut tokenized = tokenize_documents(&flat, tok, whole_word)?.into_iter();
    Ok(counts
        .into_iter()
        .map(|n| tokenized.by_ref().take(n).collect())
        .collect())
}

fn push_trimmed<'a>(out: &mut Vec<&'a str>, s: &'a str) {
    let s = s.trim();
    if !s.is_empty() {
        out.push(s);
    }
}

/// What [`pair_blocks`] needs besides the documents.
#[derive(Clone, Copy, Debug)]
pub struct PairSettings {
    /// NSP or SOP (not `None`).
    pub objective: PairObjective,
    /// Longest block, `[CLS] A [SEP] B [SEP]` (≥ 5).
    pub max_length: usize,
    /// Chance that a chunk aims at a random shorter length (HF and Google: 0.1).
    pub short_seq_probability: f64,
    /// Seeds every draw.
    pub seed: u64,
    /// `[CLS]` and `[SEP]` ids.
    pub cls: u32,
    /// See `cls`.
    pub sep: u32,
}

/// Tokens of a segment with their word starts.
#[derive(Default)]
struct Seg {
    ids: Vec<u32>,
    starts: Vec<bool>,
}

impl Seg {
    fn extend(&mut self, s: &TokenizedDoc) {
        self.ids.extend_from_slice(&s.0);
        self.starts.extend_from_slice(&s.1);
    }

    fn of(sentences: &[&TokenizedDoc]) -> Seg {
        let mut seg = Seg::default();
        for s in sentences {
            seg.extend(s);
        }
        seg
    }

    fn drop_one(&mut self, front: bool) {
        if front {
            self.ids.remove(0);
            self.starts.remove(0);
        } else {
            self.ids.pop();
            self.starts.pop();
        }
    }
}

/// The pair blocks of `docs` (each a document's tokenized sentences; empty sentences and
/// documents are skipped).
pub fn pair_blocks(docs: &[Vec<TokenizedDoc>], s: &PairSettings) -> Vec<Block> {
    let docs: Vec<Vec<&TokenizedDoc>> = docs
        .iter()
        .map(|d| d.iter().filter(|x| !x.0.is_empty()).collect::<Vec<_>>())
        .filter(|d| !d.is_empty())
        .collect();
    let mut rng = Rng::new(s.seed);
    let mut blocks = Vec::new();
    for d in 0..docs.len() {
        document_pairs(&docs, d, s, &mut rng, &mut blocks);
    }
    blocks
}

/// Google's `create_instances_from_document` for document `d`.
fn document_pairs(
    docs: &[Vec<&TokenizedDoc>],
    d: usize,
    s: &PairSettings,
    rng: &mut Rng,
    out: &mut Vec<Block>,
) {
    let max_tokens = s.max_length.saturating_sub(3).max(2);
    let target = match rng.uniform() < s.short_seq_probability {
        true => 2 + rng.below(max_tokens - 1),
        false => max_tokens,
    };
    let doc = &docs[d];
    let (mut chunk, mut len, mut i) = (Vec::new(), 0, 0);
    while i < doc.len() {
        chunk.push(doc[i]);
        len += doc[i].0.len();
        if i + 1 == doc.len() || len >= target {
            let a_end = match chunk.len() {
                1 => 1,
                n => 1 + rng.below(n - 1),
            };
            let mut a = Seg::of(&chunk[..a_end]);
            let random_next =
                chunk.len() == 1 || (s.objective == PairObjective::Nsp && rng.uniform() < 0.5);
            let (mut b, label) = if random_next {
                let b = random_segment(docs, d, target.saturating_sub(a.ids.len()).max(1), rng);
                i -= chunk.len() - a_end;
                (b, 1)
            } else {
                let b = Seg::of(&chunk[a_end..]);
                match s.objective == PairObjective::Sop && rng.uniform() < 0.5 {
                    true => (std::mem::replace(&mut a, b), 1),
                    false => (b, 0),
                }
            };
            truncate_pair(&mut a, &mut b, max_tokens, rng);
            if !a.ids.is_empty() && !b.ids.is_empty() {
                out.push(block(a, b, label, s));
            }
            chunk.clear();
            len = 0;
        }
        i += 1;
    }
}

/// At least `target` tokens from a random sentence on of a random other document (the same
/// one only when there is no other, as Google's ten tries allow).
fn random_segment(docs: &[Vec<&TokenizedDoc>], d: usize, target: usize, rng: &mut Rng) -> Seg {
    let mut other = rng.below(docs.len());
    for _ in 0..10 {
        if other != d {
            break;
        }
        other = rng.below(docs.len());
    }
    let doc = &docs[other];
    let mut seg = Seg::default();
    for sentence in &doc[rng.below(doc.len())..] {
        seg.extend(sentence);
        if seg.ids.len() >= target {
            break;
        }
    }
    seg
}

/// Removes tokens from the longer segment, at the front or the back by a coin, until the
/// two fit in `max_tokens`.
fn truncate_pair(a: &mut Seg, b: &mut Seg, max_tokens: usize, rng: &mut Rng) {
    while a.ids.len() + b.ids.len() > max_tokens {
        let longer = if a.ids.len() > b.ids.len() {
            &mut *a
        } else {
            &mut *b
        };
        let front = rng.uniform() < 0.5;
        longer.drop_one(front);
        if front {
            // A cut word's remainder masks as a word of its own.
            if let Some(x) = longer.starts.first_mut() {
                *x = true;
            }
        }
    }
}

fn block(a: Seg, b: Seg, label: u32, s: &PairSettings) -> Block {
    // Segment B (token type 1) starts after `[CLS] A [SEP]`.
    let b_start = a.ids.len() + 2;
    let n = b_start + b.ids.len() + 1;
    let (mut ids, mut word_start) = (Vec::with_capacity(n), Vec::with_capacity(n));
    ids.push(s.cls);
    word_start.push(true);
    for seg in [a, b] {
        ids.extend(seg.ids);
        word_start.extend(seg.starts);
        ids.push(s.sep);
        word_start.push(true);
    }
    Block {
        ids,
        word_start,
        pair: Some(Pair { b_start, label }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_end_at_terminators_with_their_closing_quotes() {
        assert_eq!(
            split_sentences("我爱北京。天安门很大！！你呢？”他说。没有句号"),
            [
                "我爱北京。",
                "天安门很大！！",
                "你呢？”",
                "他说。",
                "没有句号"
            ]
        );
        assert_eq!(
            split_sentences("It costs 3.14 dollars. Really? Yes"),
            ["It costs 3.14 dollars.", "Really?", "Yes"]
        );
        assert!(split_sentences("  ").is_empty());
    }

    /// Documents whose token ids say where they come from: `doc · 1000 + position`.
    fn numbered_docs(n_docs: usize, sentences: usize, len: usize) -> Vec<Vec<TokenizedDoc>> {
        (0..n_docs)
            .map(|d| {
                (0..sentences)
                    .map(|s| {
                        let ids = (0..len)
                            .map(|k| (d * 1000 + s * len + k) as u32 + 10)
                            .collect();
                        (ids, (0..len).map(|k| k % 3 == 0).collect())
                    })
                    .collect()
            })
            .collect()
    }

    fn settings(objective: PairObjective, seed: u64) -> PairSettings {
        PairSettings {
            objective,
            max_length: 64,
            short_seq_probability: 0.1,
            seed,
            cls: 1,
            sep: 2,
        }
    }

    /// (document, position) of each token of a segment.
    type Origins = Vec<(u32, u32)>;

    /// The origins of A's and of B's tokens.
    fn segments(b: &Block) -> (Origins, Origins) {
        let p = b.pair.unwrap();
        let origin = |ids: &[u32]| -> Vec<(u32, u32)> {
            ids.iter()
                .map(|&i| ((i - 10) / 1000, (i - 10) % 1000))
                .collect()
        };
        (
            origin(&b.ids[1..p.b_start - 1]),
            origin(&b.ids[p.b_start..b.ids.len() - 1]),
        )
    }

    fn contiguous(seg: &[(u32, u32)]) -> bool {
        seg.windows(2)
            .all(|w| w[0].0 == w[1].0 && w[1].1 == w[0].1 + 1)
    }

    #[test]
    fn nsp_pairs_are_continuations_or_other_documents_half_and_half() {
        let docs = numbered_docs(300, 12, 9);
        let blocks = pair_blocks(&docs, &settings(PairObjective::Nsp, 7));
        assert!(blocks.len() > 600);
        let mut random = 0;
        for b in &blocks {
            let p = b.pair.unwrap();
            assert!(b.ids.len() <= 64);
            assert_eq!((b.ids[0], b.ids[p.b_start - 1]), (1, 2));
            assert_eq!(*b.ids.last().unwrap(), 2);
            let types = b.token_type_ids();
            assert!(types[..p.b_start].iter().all(|&t| t == 0));
            assert!(types[p.b_start..].iter().all(|&t| t == 1));
            let (a, bb) = segments(b);
            assert!(!a.is_empty() && !bb.is_empty());
            assert!(
                contiguous(&a) && contiguous(&bb),
                "segments are runs of text"
            );
            match p.label {
                0 => {
                    assert_eq!(a[0].0, bb[0].0, "a continuation is the same document");
                    assert!(bb[0].1 > a[a.len() - 1].1, "… and comes after A");
                }
                _ => {
                    assert_ne!(a[0].0, bb[0].0, "random text is another document");
                    random += 1;
                }
            }
        }
        let share = random as f64 / blocks.len() as f64;
        // 0.5 of the cuttable chunks, plus the one-sentence chunks that must be random.
        assert!((0.45..0.6).contains(&share), "random share {share}");
        // Every sentence of a document is used: the unused ones of a random pair go back.
        let used: std::collections::HashSet<(u32, u32)> = blocks
            .iter()
            .flat_map(|b| segments(b).0)
            .filter(|o| o.0 == 0)
            .collect();
        assert!(
            used.len() >= 12 * 9 / 2,
            "document 0 is mostly used as A: {}",
            used.len()
        );
    }

    #[test]
    fn sop_pairs_are_one_document_in_or_out_of_order() {
        let docs = numbered_docs(200, 12, 9);
        let blocks = pair_blocks(&docs, &settings(PairObjective::Sop, 3));
        let (mut swapped, mut cut) = (0, 0);
        for b in &blocks {
            let (a, bb) = segments(b);
            let (a_end, b_first) = (a[a.len() - 1], bb[0]);
            if a[0].0 != bb[0].0 {
                // A one-sentence chunk: B is random text, labelled 1 as ALBERT does.
                assert_eq!(b.pair.unwrap().label, 1);
                continue;
            }
            cut += 1;
            match b.pair.unwrap().label {
                0 => assert!(b_first.1 > a_end.1),
                _ => {
                    assert!(bb[bb.len() - 1].1 < a[0].1, "swapped: B came first");
                    swapped += 1;
                }
            }
        }
        let share = swapped as f64 / cut as f64;
        assert!((0.45..0.55).contains(&share), "swapped share {share}");
        assert_eq!(
            blocks,
            pair_blocks(&docs, &settings(PairObjective::Sop, 3)),
            "a function of the seed"
        );
        assert_ne!(blocks, pair_blocks(&docs, &settings(PairObjective::Sop, 4)));
    }

    #[test]
    fn long_sentences_are_cut_to_fit_and_short_targets_happen() {
        // Two sentences of 100 tokens each: every pair is truncated to 61 tokens of text.
        let docs = numbered_docs(50, 2, 100);
        let mut s = settings(PairObjective::Nsp, 1);
        s.short_seq_probability = 0.0;
        for b in pair_blocks(&docs, &s) {
            assert_eq!(b.ids.len(), 64, "filled to max_length");
            let (a, bb) = segments(&b);
            assert!(contiguous(&a) && contiguous(&bb));
            let p = b.pair.unwrap();
            assert!(
                b.word_start[1] && b.word_start[p.b_start],
                "segments start words"
            );
        }
        // Short targets make shorter blocks on average.
        let docs = numbered_docs(200, 40, 4);
        let mean = |p: f64| {
            let mut s = settings(PairObjective::Nsp, 2);
            s.short_seq_probability = p;
            let b = pair_blocks(&docs, &s);
            b.iter().map(|b| b.ids.len()).sum::<usize>() as f64 / b.len() as f64
        };
        let (long, short) = (mean(0.0), mean(1.0));
        assert!(short < 0.75 * long, "mean length {short} vs {long}");
    }
}
