//! Plain text for masked-LM pre-training: documents tokenized once, each token marked where
//! a word begins (for whole-word masking), then packed into blocks of `[CLS] … [SEP]` of at
//! most `max_length` tokens, documents separated by `[SEP]` within a block (as HF
//! `run_mlm`'s `group_texts` concatenates tokenized lines).
//!
//! Word boundaries: a WordPiece `##` continuation joins the token before it, and Chinese text
//! is segmented into words by jieba (`jieba-rs`, its bundled dictionary, no HMM for unseen
//! words): the Chinese whole-word-masking BERTs segment with a word segmenter the same way
//! (HFL used LTP, which has no Rust port); jieba is the most used Chinese segmenter and its
//! Rust port is a pure-Rust, well-kept crate with the same dictionary.

use crate::error::Result;
use crate::tokenize::Tokenizer;
use std::sync::OnceLock;

/// One packed training sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    /// `[CLS] … [SEP]`.
    pub ids: Vec<u32>,
    /// Where a word begins (true for special tokens).
    pub word_start: Vec<bool>,
    /// For NSP / SOP: where segment B begins and the pair's label
    /// ([`super::sentence_pairs`]); `None` for a block of consecutive text.
    pub pair: Option<Pair>,
}

/// The sentence-pair facts of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pair {
    /// Index of B's first token: token type 0 before it (`[CLS] A [SEP]`), 1 from it on.
    pub b_start: usize,
    /// NSP: 0 when B follows A, 1 when B is random text. SOP: 0 in order, 1 swapped.
    pub label: u32,
}

impl Block {
    /// HF's `token_type_ids`: 0 for `[CLS] A [SEP]`, 1 for `B [SEP]` (all 0 without a pair).
    pub fn token_type_ids(&self) -> Vec<u32> {
        let b = self.pair.map_or(self.ids.len(), |p| p.b_start);
        (0..self.ids.len()).map(|i| u32::from(i >= b)).collect()
    }
}

/// A tokenized document: ids without special tokens, and word starts.
pub type TokenizedDoc = (Vec<u32>, Vec<bool>);

fn jieba() -> &'static jieba_rs::Jieba {
    static JIEBA: OnceLock<jieba_rs::Jieba> = OnceLock::new();
    JIEBA.get_or_init(jieba_rs::Jieba::new)
}

/// The word index of every character of `text` by jieba's segmentation.
fn word_of_char(text: &str) -> Vec<usize> {
    let mut out = Vec::with_capacity(text.chars().count());
    for (w, word) in jieba().cut(text, false).iter().enumerate() {
        out.extend(std::iter::repeat_n(w, word.end - word.start));
    }
    out
}

/// Tokenizes `docs` (in parallel); `whole_word` also computes word starts (else every token
/// starts a word).
pub fn tokenize_documents(
    docs: &[String],
    tok: &Tokenizer,
    whole_word: bool,
) -> Result<Vec<TokenizedDoc>> {
    use rayon::prelude::*;
    let wordpiece = tok.is_wordpiece();
    docs.par_chunks(256)
        .map(|chunk| {
            let texts: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let encoded = tok.encode_with_offsets(&texts)?;
            Ok(encoded
                .into_iter()
                .zip(chunk)
                .map(|((ids, offsets), text)| {
                    let starts = match whole_word {
                        false => vec![true; ids.len()],
                        true => word_starts(text, &ids, &offsets, tok, wordpiece),
                    };
                    (ids, starts)
                })
                .collect::<Vec<_>>())
        })
        .collect::<Result<Vec<Vec<_>>>>()
        .map(|v| v.into_iter().flatten().collect())
}

/// A token starts a word unless it is a `##` continuation or lies in the same jieba word as
/// the token before it.
fn word_starts(
    text: &str,
    ids: &[u32],
    offsets: &[(usize, usize)],
    tok: &Tokenizer,
    wordpiece: bool,
) -> Vec<bool> {
    let words = word_of_char(text);
    let mut prev_word = None;
    ids.iter()
        .zip(offsets)
        .map(|(&id, &(start, _))| {
            let cont = wordpiece
                && tok
                    .inner()
                    .id_to_token(id)
                    .is_some_and(|t| t.starts_with("##"));
            let w = words.get(start).copied();
            let starts = !cont && (w.is_none() || w != prev_word);
            prev_word = w;
            starts
        })
        .collect()
}

/// Packs documents into blocks of at most `max_length` tokens (`max_length ≥ 3`): the last,
/// shorter block is kept.
pub fn pack_blocks(docs: &[TokenizedDoc], cls: u32, sep: u32, max_length: usize) -> Vec<Block> {
    let room = max_length.saturating_sub(2).max(1);
    let mut blocks = Vec::new();
    let (mut ids, mut starts) = (Vec::with_capacity(room), Vec::with_capacity(room));
    let mut flush = |ids: &mut Vec<u32>, starts: &mut Vec<bool>| {
        if ids.is_empty() {
            return;
        }
        // A block never ends on a document separator.
        if ids.last() == Some(&sep) {
            ids.pop();
            starts.pop();
        }
        let mut b = Block {
            ids: vec![cls],
            word_start: vec![true],
            pair: None,
        };
        b.ids.append(ids);
        b.word_start.append(starts);
        b.ids.push(sep);
        b.word_start.push(true);
        blocks.push(b);
    };
    for (doc_ids, doc_starts) in docs.iter().filter(|(d, _)| !d.is_empty()) {
        if !ids.is_empty() {
            ids.push(sep);
            starts.push(true);
        }
        for (&id, &s) in doc_ids.iter().zip(doc_starts) {
            if ids.len() >= room {
                flush(&mut ids, &mut starts);
            }
            ids.push(id);
            starts.push(s);
        }
    }
    flush(&mut ids, &mut starts);
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_cls_text_sep_with_documents_separated() {
        let docs = vec![
            (vec![10, 11, 12], vec![true, false, true]),
            (vec![], vec![]),
            (vec![20, 21], vec![true, true]),
        ];
        let b = pack_blocks(&docs, 2, 3, 6);
        // The separator that would end the first block is dropped with the block's end.
        assert_eq!(b[0].ids, [2, 10, 11, 12, 3]);
        assert_eq!(b[0].word_start, [true, true, false, true, true]);
        assert_eq!(b[1].ids, [2, 20, 21, 3]);
        for blk in &b {
            assert!(blk.ids.len() <= 6);
            assert_eq!(blk.ids.len(), blk.word_start.len());
        }
        // A document that ends exactly at a block's room still starts a new block.
        let exact = vec![(vec![10, 11, 12, 13], vec![true; 4]); 3];
        let b = pack_blocks(&exact, 2, 3, 6);
        assert_eq!(b.len(), 3);
        assert!(b.iter().all(|blk| blk.ids == [2, 10, 11, 12, 13, 3]));
    }

    #[test]
    fn jieba_groups_the_characters_of_a_chinese_word() {
        let w = word_of_char("我爱北京天安门");
        assert_eq!(w.len(), 7);
        // 我 / 爱 / 北京 / 天安门
        assert_eq!(w[2], w[3], "北京 is one word");
        assert_eq!(w[4], w[5]);
        assert_eq!(w[5], w[6], "天安门 is one word");
        assert_ne!(w[1], w[2]);
    }
}
