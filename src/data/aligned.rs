//! Tagged sentences laid out for a token model: each sentence tokenized once, each word's
//! first sub-token found through the character offsets (the word's tag is read and trained
//! there; the other sub-tokens are ignored, as HF's `-100`), and sentences longer than
//! `max_length` split into windows of whole words, whose predictions are joined back.
//! A word no sub-token starts in (a character the tokenizer drops) is predicted `O`.

use super::batch::EncoderInput;
use super::tagged::TaggedSentence;
use crate::error::{Error, Result};
use crate::tokenize::Tokenizer;
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// How sentences become ids: a sub-word tokenizer, or a word (character) vocabulary.
pub enum Vocabulary<'a> {
    /// A pre-trained model's tokenizer (sub-tokens, special tokens around each window).
    Tokenizer(&'a Tokenizer),
    /// One id per word (0 = padding, 1 = unknown), no special tokens.
    Words(&'a HashMap<String, u32>),
}

/// One window of a sentence as the model sees it.
#[derive(Clone, Debug)]
pub struct Window {
    /// Index of the sentence.
    pub sentence: usize,
    /// Model input ids (special tokens included).
    pub ids: Vec<u32>,
    /// For each word of the window that has a sub-token: its index in the sentence, and
    /// the position of its first sub-token in `ids`.
    pub words: Vec<(usize, usize)>,
}

/// A tagged data set laid out in windows.
pub struct TokenDataset {
    /// Where it came from.
    pub source: PathBuf,
    /// The sentences as read.
    pub sentences: Vec<TaggedSentence>,
    /// Windows in sentence order.
    pub windows: Vec<Window>,
    /// Tag ids per sentence and word (empty for unlabelled data).
    pub tag_ids: Vec<Vec<i64>>,
}

/// A padded batch of windows.
pub struct TokenBatch {
    /// Encoder input `[batch, seq]`.
    pub input: EncoderInput,
    /// First-sub-token position per word `[batch, words]`.
    pub word_positions: Tensor,
    /// Words per window.
    pub word_counts: Vec<usize>,
    /// Tag ids per window and word (0 where unlabelled).
    pub tags: Vec<Vec<i64>>,
}

impl TokenDataset {
    /// Lays out `sentences`; with `labels`, every tag must be one of them (an unknown tag
    /// names the file and line).
    pub fn new(
        source: &Path,
        sentences: Vec<TaggedSentence>,
        vocab: &Vocabulary,
        labels: Option<&[String]>,
        max_length: usize,
    ) -> Result<Self> {
        let tag_ids = match labels {
            Some(l) => tag_ids(source, &sentences, l)?,
            None => Vec::new(),
        };
        let windows = match vocab {
            Vocabulary::Tokenizer(tok) => sub_token_windows(&sentences, tok, max_length)?,
            Vocabulary::Words(map) => word_windows(&sentences, map, max_length),
        };
        Ok(TokenDataset {
            source: source.to_path_buf(),
            sentences,
            windows,
            tag_ids,
        })
    }

    /// Number of windows.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// True without windows.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Ids per window (for length bucketing).
    pub fn lengths(&self) -> Vec<usize> {
        self.windows.iter().map(|w| w.ids.len()).collect()
    }

    /// A padded batch of the windows `idx`.
    pub fn batch(&self, idx: &[usize], pad_id: u32, device: &Device) -> Result<TokenBatch> {
        let ws: Vec<&Window> = idx.iter().map(|&i| &self.windows[i]).collect();
        let t = ws.iter().map(|w| w.ids.len()).max().unwrap_or(0);
        let n = ws.iter().map(|w| w.words.len()).max().unwrap_or(0).max(1);
        let (b, mut ids, mut mask, mut pos) = (ws.len(), Vec::new(), Vec::new(), Vec::new());
        let mut tags = Vec::with_capacity(b);
        for w in &ws {
            ids.extend(
                w.ids
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(pad_id, t - w.ids.len())),
            );
            mask.extend((0..t).map(|i| if i < w.ids.len() { 1f32 } else { 0.0 }));
            pos.extend(
                w.words
                    .iter()
                    .map(|&(_, p)| p as u32)
                    .chain(std::iter::repeat_n(0, n - w.words.len())),
            );
            let sentence_tags = self.tag_ids.get(w.sentence);
            tags.push(
                w.words
                    .iter()
                    .map(|&(word, _)| sentence_tags.map_or(0, |t| t[word]))
                    .collect(),
            );
        }
        Ok(TokenBatch {
            input: EncoderInput {
                input_ids: Tensor::from_vec(ids, (b, t), device)?,
                attention_mask: Tensor::from_vec(mask, (b, t), device)?,
                token_type_ids: Tensor::zeros((b, t), candle_core::DType::U32, device)?,
            },
            word_positions: Tensor::from_vec(pos, (b, n), device)?,
            word_counts: ws.iter().map(|w| w.words.len()).collect(),
            tags,
        })
    }

    /// Predicted tags per sentence and word from per-window predictions (in window order):
    /// words without a sub-token get `O`'s id `outside` and score 1.
    pub fn join(&self, per_window: &[Vec<(usize, f32)>], outside: usize) -> Vec<Vec<(usize, f32)>> {
        let mut out: Vec<Vec<(usize, f32)>> = self
            .sentences
            .iter()
            .map(|s| vec![(outside, 1.0); s.words.len()])
            .collect();
        for (w, preds) in self.windows.iter().zip(per_window) {
            for (&(word, _), &p) in w.words.iter().zip(preds) {
                out[w.sentence][word] = p;
            }
        }
        out
    }
}

fn tag_ids(
    source: &Path,
    sentences: &[TaggedSentence],
    labels: &[String],
) -> Result<Vec<Vec<i64>>> {
    sentences
        .iter()
        .map(|s| {
            let tags = s.tags.as_ref().ok_or_else(|| Error::Input {
                path: source.into(),
                line: s.line,
                msg: "this sentence has no tags".into(),
            })?;
            tags.iter()
                .map(|t| {
                    labels
                        .iter()
                        .position(|l| l == t)
                        .map(|i| i as i64)
                        .ok_or_else(|| Error::Input {
                            path: source.into(),
                            line: s.line,
                            msg: format!(
                                "unknown tag `{t}` (the model's tags: {})",
                                labels.join(", ")
                            ),
                        })
                })
                .collect()
        })
        .collect()
}

/// Windows of whole words, each within `max_length` ids with the special tokens.
fn sub_token_windows(
    sentences: &[TaggedSentence],
    tok: &Tokenizer,
    max_length: usize,
) -> Result<Vec<Window>> {
    let (pre, post) = tok.single_text_specials()?;
    let room = max_length.saturating_sub(pre.len() + post.len()).max(1);
    let texts: Vec<&str> = sentences.iter().map(|s| s.text.as_str()).collect();
    let encoded = tok.encode_with_offsets(&texts)?;
    let mut out = Vec::new();
    for (si, (s, (ids, offsets))) in sentences.iter().zip(encoded).enumerate() {
        // The word each sub-token starts in (None: between words).
        let word_of: Vec<Option<usize>> = offsets
            .iter()
            .map(|&(start, _)| s.words.iter().position(|&(a, b)| a <= start && start < b))
            .collect();
        let mut cut = 0;
        while cut < ids.len() {
            let mut end = (cut + room).min(ids.len());
            // Back up to a word boundary unless one word fills the whole window.
            while end < ids.len()
                && end > cut + 1
                && word_of[end].is_some()
                && word_of[end] == word_of[end - 1]
            {
                end -= 1;
            }
            if end == cut + 1 && end < ids.len() {
                end = (cut + room).min(ids.len());
            }
            let mut w = Window {
                sentence: si,
                ids: pre.clone(),
                words: Vec::new(),
            };
            for i in cut..end {
                if let Some(word) = word_of[i] {
                    let first = i == 0 || word_of[i - 1] != Some(word);
                    if first {
                        w.words.push((word, w.ids.len()));
                    }
                }
                w.ids.push(ids[i]);
            }
            w.ids.extend(&post);
            out.push(w);
            cut = end;
        }
    }
    Ok(out)
}

/// Windows of at most `max_length` words, one id per word.
fn word_windows(
    sentences: &[TaggedSentence],
    map: &HashMap<String, u32>,
    max_length: usize,
) -> Vec<Window> {
    let mut out = Vec::new();
    for (si, s) in sentences.iter().enumerate() {
        let chars: Vec<char> = s.text.chars().collect();
        let ids: Vec<u32> = s
            .words
            .iter()
            .map(|&(a, b)| {
                map.get(&chars[a..b].iter().collect::<String>())
                    .copied()
                    .unwrap_or(1)
            })
            .collect();
        for start in (0..ids.len()).step_by(max_length.max(1)) {
            let end = (start + max_length.max(1)).min(ids.len());
            out.push(Window {
                sentence: si,
                ids: ids[start..end].to_vec(),
                words: (start..end).map(|w| (w, w - start)).collect(),
            });
        }
    }
    out
}

/// A word vocabulary from training sentences: `[PAD]` = 0, `[UNK]` = 1, then every word
/// seen at least `min_count` times, most frequent first (ties in first-seen order).
pub fn word_vocabulary(sentences: &[TaggedSentence], min_count: usize) -> Vec<String> {
    let mut counts: HashMap<String, (usize, usize)> = HashMap::new();
    for s in sentences {
        let chars: Vec<char> = s.text.chars().collect();
        for &(a, b) in &s.words {
            let n = counts.len();
            counts
                .entry(chars[a..b].iter().collect())
                .or_insert((0, n))
                .0 += 1;
        }
    }
    let mut words: Vec<(String, (usize, usize))> = counts
        .into_iter()
        .filter(|(_, (c, _))| *c >= min_count)
        .collect();
    words.sort_by_key(|(_, (c, first))| (std::cmp::Reverse(*c), *first));
    ["[PAD]", "[UNK]"]
        .into_iter()
        .map(String::from)
        .chain(words.into_iter().map(|(w, _)| w))
        .collect()
}
