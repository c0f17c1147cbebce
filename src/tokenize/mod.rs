//! Tokenization on the `tokenizers` crate: WordPiece from `vocab.txt` or any `tokenizer.json`,
//! pairs, padding, truncation, character offsets as HF's `return_offsets_mapping` gives them,
//! added special tokens, optional NFKC, and saving back to an HF directory.

use crate::error::{Error, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::{BertNormalizer, Sequence, NFKC};
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::utils::padding::{PaddingDirection, PaddingParams, PaddingStrategy};
use tokenizers::utils::truncation::{TruncationDirection, TruncationParams, TruncationStrategy};
use tokenizers::{AddedToken, NormalizerWrapper};

pub mod train;

/// How a batch is padded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Padding {
    /// No padding: every row keeps its own length.
    #[default]
    None,
    /// Pad to the longest row of the batch.
    Longest,
    /// Pad every row to `max_length`.
    MaxLength,
}

/// Which text loses tokens when a pair is too long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truncation {
    /// Remove from the longer of the two, one token at a time (HF's default).
    LongestFirst,
    /// Remove only from the second text.
    OnlySecond,
    /// Remove only from the first text.
    OnlyFirst,
}

/// Per-call encoding settings, as HF's `tokenizer(..., max_length, padding, truncation)`.
#[derive(Clone, Debug, Default)]
pub struct EncodeOptions {
    /// Length limit for truncation and `Padding::MaxLength`.
    pub max_length: Option<usize>,
    /// Padding strategy.
    pub padding: Padding,
    /// Truncation strategy, or `None` to keep every token.
    pub truncation: Option<Truncation>,
}

/// One encoded text (or pair).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Encoding {
    /// Token ids.
    pub input_ids: Vec<u32>,
    /// 0 for the first text, 1 for the pair.
    pub token_type_ids: Vec<u32>,
    /// 1 for tokens, 0 for padding.
    pub attention_mask: Vec<u32>,
    /// 1 for special tokens (`[CLS]`, `[SEP]`, padding).
    pub special_tokens_mask: Vec<u32>,
    /// `(start, end)` character offsets into the text the token came from; `(0, 0)` for
    /// special and padding tokens.
    pub offsets: Vec<(usize, usize)>,
}

/// A text or a text pair.
#[derive(Clone, Debug)]
pub struct TextInput {
    /// First text.
    pub text: String,
    /// Optional second text.
    pub text_pair: Option<String>,
}

impl TextInput {
    /// A single text.
    pub fn single(text: impl Into<String>) -> Self {
        TextInput {
            text: text.into(),
            text_pair: None,
        }
    }

    /// A text pair.
    pub fn pair(a: impl Into<String>, b: impl Into<String>) -> Self {
        TextInput {
            text: a.into(),
            text_pair: Some(b.into()),
        }
    }
}

/// Settings read from `tokenizer_config.json`, with `BertTokenizer`'s defaults.
#[derive(Clone, Debug)]
struct BertTokenizerConfig {
    do_lower_case: bool,
    tokenize_chinese_chars: bool,
    strip_accents: Option<bool>,
    unk_token: String,
    sep_token: String,
    pad_token: String,
    cls_token: String,
    mask_token: String,
    model_max_length: Option<usize>,
    additional_special_tokens: Vec<String>,
    /// The whole file, for fields only some tokenizer classes have.
    raw: Value,
}

impl BertTokenizerConfig {
    fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer_config.json");
        let v: Value = if path.is_file() {
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            serde_json::from_str(&text)
                .map_err(|e| Error::config(&path, format!("not valid JSON: {e}")))?
        } else {
            Value::Null
        };
        let s = |k: &str, d: &str| token_field(&v, k).unwrap_or_else(|| d.to_string());
        Ok(BertTokenizerConfig {
            do_lower_case: v
                .get("do_lower_case")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            tokenize_chinese_chars: v
                .get("tokenize_chinese_chars")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            strip_accents: v.get("strip_accents").and_then(Value::as_bool),
            unk_token: s("unk_token", "[UNK]"),
            sep_token: s("sep_token", "[SEP]"),
            pad_token: s("pad_token", "[PAD]"),
            cls_token: s("cls_token", "[CLS]"),
            mask_token: s("mask_token", "[MASK]"),
            // HF writes a huge sentinel (1e30) when there is no limit.
            model_max_length: v
                .get("model_max_length")
                .and_then(Value::as_f64)
                .filter(|n| *n < 1e9)
                .map(|n| n as usize),
            additional_special_tokens: v
                .get("additional_special_tokens")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(token_value).collect())
                .unwrap_or_default(),
            raw: v,
        })
    }
}

/// A token field is either a string or an `AddedToken` object with `content`.
fn token_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(token_value)
}

fn token_value(t: &Value) -> Option<String> {
    match t {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// Sub-token ids and their character offsets `[start, end)`.
pub type IdsWithOffsets = (Vec<u32>, Vec<(usize, usize)>);

/// A tokenizer loaded from an HF directory.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    pad_token: String,
    model_max_length: Option<usize>,
    added_special: Vec<String>,
    lowercase: bool,
}

fn tk_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

impl Tokenizer {
    /// Loads `tokenizer.json` when the directory has one, else builds HF's `BertTokenizer`
    /// pipeline from `vocab.txt` and `tokenizer_config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let cfg = BertTokenizerConfig::read(dir)?;
        let json = dir.join("tokenizer.json");
        let vocab = dir.join("vocab.txt");
        let bpe_vocab = dir.join("vocab.json");
        let mut pad_default = cfg.pad_token.clone();
        let inner = if json.is_file() {
            tokenizers::Tokenizer::from_file(&json)
                .map_err(|e| Error::config(&json, format!("cannot load tokenizer: {e}")))?
        } else if bpe_vocab.is_file() {
            let (tk, eos) = byte_level_bpe(dir)?;
            // GPT-2 has no padding token; HF pads with end-of-text.
            pad_default = token_field(&cfg.raw, "pad_token").unwrap_or(eos);
            tk
        } else if vocab.is_file() {
            wordpiece_from_vocab(&vocab, &cfg)?
        } else {
            return Err(Error::config(
                dir,
                "no tokenizer: expected tokenizer.json, vocab.json + merges.txt or vocab.txt in this directory",
            ));
        };
        let pad_token = match inner.get_padding() {
            Some(p) => p.pad_token.clone(),
            None => pad_default,
        };
        let mut tok = Tokenizer {
            inner,
            pad_token,
            model_max_length: cfg.model_max_length,
            added_special: Vec::new(),
            lowercase: cfg.do_lower_case,
        };
        // Neither padding nor truncation is baked in: each call chooses its own.
        tok.inner.with_padding(None);
        tok.inner.with_truncation(None).map_err(tk_err)?;
        if !cfg.additional_special_tokens.is_empty() {
            let extra = cfg.additional_special_tokens.clone();
            tok.add_special_tokens(&extra.iter().map(String::as_str).collect::<Vec<_>>())?;
        }
        Ok(tok)
    }

    /// The wrapped `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Vocabulary size including added tokens (the rows an embedding table needs).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Id of a token, if the vocabulary has it.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Id of the padding token (`[PAD]` for BERT vocabularies, `<pad>` for RoBERTa's,
    /// `<|endoftext|>` for GPT-2's), 0 if the vocabulary has none of them.
    pub fn pad_id(&self) -> u32 {
        self.token_to_id(&self.pad_token)
            .or_else(|| self.token_to_id("[PAD]"))
            .or_else(|| self.token_to_id("<pad>"))
            .unwrap_or(0)
    }

    /// `model_max_length` from `tokenizer_config.json`, when it sets a real limit.
    pub fn model_max_length(&self) -> Option<usize> {
        self.model_max_length
    }

    /// Adds NFKC normalisation in front of the existing normaliser (full-width → half-width,
    /// compatibility forms folded); offsets still point into the original text.
    pub fn enable_nfkc(&mut self) -> Result<()> {
        let nfkc: NormalizerWrapper = NFKC.into();
        let seq = match self.inner.get_normalizer() {
            Some(existing) => Sequence::new(vec![nfkc, existing.clone()]),
            None => Sequence::new(vec![nfkc]),
        };
        self.inner.with_normalizer(Some(seq)).map_err(tk_err)?;
        Ok(())
    }

    /// Adds tokens that are never split (like HF `add_special_tokens({"additional_special_tokens": ..})`)
    /// and returns how many were new. Resize the model's embeddings to [`Self::vocab_size`].
    pub fn add_special_tokens(&mut self, tokens: &[&str]) -> Result<usize> {
        let added: Vec<AddedToken> = tokens
            .iter()
            .map(|t| AddedToken::from(t.to_string(), true))
            .collect();
        for t in tokens {
            if !self.added_special.iter().any(|a| a == t) {
                self.added_special.push(t.to_string());
            }
        }
        self.inner.add_special_tokens(added).map_err(tk_err)
    }

    /// Encodes a batch with per-call padding and truncation; offsets are in characters.
    pub fn encode_batch(
        &self,
        inputs: &[TextInput],
        opts: &EncodeOptions,
    ) -> Result<Vec<Encoding>> {
        let mut tk = self.inner.clone();
        if let Some(strategy) = opts.truncation {
            let max_length = opts.max_length.or(self.model_max_length).ok_or_else(|| {
                Error::Invalid("truncation needs a max length (--max-length)".into())
            })?;
            tk.with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length,
                strategy: match strategy {
                    Truncation::LongestFirst => TruncationStrategy::LongestFirst,
                    Truncation::OnlySecond => TruncationStrategy::OnlySecond,
                    Truncation::OnlyFirst => TruncationStrategy::OnlyFirst,
                },
                stride: 0,
            }))
            .map_err(tk_err)?;
        }
        let strategy = match opts.padding {
            Padding::None => None,
            Padding::Longest => Some(PaddingStrategy::BatchLongest),
            Padding::MaxLength => Some(PaddingStrategy::Fixed(opts.max_length.ok_or_else(
                || Error::Invalid("padding to max_length needs --max-length".into()),
            )?)),
        };
        if let Some(strategy) = strategy {
            let pad_id = self.token_to_id(&self.pad_token).ok_or_else(|| {
                Error::Tokenizer(format!(
                    "pad token {:?} is not in the vocabulary",
                    self.pad_token
                ))
            })?;
            tk.with_padding(Some(PaddingParams {
                strategy,
                direction: PaddingDirection::Right,
                pad_to_multiple_of: None,
                pad_id,
                pad_type_id: 0,
                pad_token: self.pad_token.clone(),
            }));
        }
        let raw: Vec<tokenizers::EncodeInput> = inputs
            .iter()
            .map(|i| match &i.text_pair {
                Some(p) => (i.text.as_str(), p.as_str()).into(),
                None => i.text.as_str().into(),
            })
            .collect();
        let encs = tk.encode_batch_char_offsets(raw, true).map_err(tk_err)?;
        Ok(encs.into_iter().map(convert).collect())
    }

    /// Encodes one text or pair.
    pub fn encode(&self, input: &TextInput, opts: &EncodeOptions) -> Result<Encoding> {
        let mut v = self.encode_batch(std::slice::from_ref(input), opts)?;
        v.pop()
            .ok_or_else(|| Error::Tokenizer("empty batch".into()))
    }

    /// Decodes ids back to text, skipping special tokens.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(tk_err)
    }

    /// Decodes ids back to text, keeping special tokens unless `skip_special`; ids outside
    /// the vocabulary are an error (not silently dropped).
    pub fn decode_with(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        let size = self.vocab_size() as u32;
        if let Some(bad) = ids.iter().find(|&&i| i >= size) {
            return Err(Error::Tokenizer(format!(
                "token id {bad} is outside the vocabulary of {size} tokens"
            )));
        }
        self.inner.decode(ids, skip_special).map_err(tk_err)
    }

    /// Ids of `text` as the tokenizer's model splits it, with no special tokens added
    /// (generation prompts, scored continuations).
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, false).map_err(tk_err)?;
        Ok(enc.get_ids().to_vec())
    }

    /// Sub-token ids of `texts` without special tokens, with their character offsets
    /// (token-level tasks, which lay out their own windows).
    pub fn encode_with_offsets(&self, texts: &[&str]) -> Result<Vec<IdsWithOffsets>> {
        let raw: Vec<tokenizers::EncodeInput> = texts.iter().map(|t| (*t).into()).collect();
        let encs = self
            .inner
            .encode_batch_char_offsets(raw, false)
            .map_err(tk_err)?;
        Ok(encs
            .into_iter()
            .map(|e| (e.get_ids().to_vec(), e.get_offsets().to_vec()))
            .collect())
    }

    /// The special tokens put before and after a single text (`[CLS]` / `[SEP]`, `<s>` /
    /// `</s>`), as the post-processor adds them.
    pub fn single_text_specials(&self) -> Result<(Vec<u32>, Vec<u32>)> {
        let e = self.inner.encode("a", true).map_err(tk_err)?;
        let special = e.get_special_tokens_mask();
        let first = special
            .iter()
            .position(|&m| m == 0)
            .unwrap_or(special.len());
        let last = special
            .iter()
            .rposition(|&m| m == 0)
            .map_or(first, |i| i + 1);
        let ids = e.get_ids();
        Ok((ids[..first].to_vec(), ids[last..].to_vec()))
    }

    /// True for a WordPiece (`vocab.txt`) tokenizer, whose texts start with `[CLS]`.
    pub fn is_wordpiece(&self) -> bool {
        matches!(
            self.inner.get_model(),
            tokenizers::ModelWrapper::WordPiece(_)
        )
    }

    /// Writes `tokenizer.json`, `vocab.txt` (WordPiece models), `tokenizer_config.json` and
    /// `special_tokens_map.json` so `transformers.AutoTokenizer` loads the directory.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let json = dir.join("tokenizer.json");
        let tmp = dir.join(".tokenizer.json.tmp");
        self.inner.save(&tmp, true).map_err(tk_err)?;
        std::fs::rename(&tmp, &json).map_err(|e| Error::io(&json, e))?;
        let wordpiece = self.is_wordpiece();
        if wordpiece {
            let vocab = self.inner.get_vocab(false);
            let mut by_id: Vec<(&String, &u32)> = vocab.iter().collect();
            by_id.sort_by_key(|(_, id)| **id);
            let text: String = by_id.iter().map(|(t, _)| format!("{t}\n")).collect();
            crate::util::write_atomic(&dir.join("vocab.txt"), text.as_bytes())?;
        }
        let byte_level = matches!(
            self.inner.get_pre_tokenizer(),
            Some(tokenizers::pre_tokenizers::PreTokenizerWrapper::ByteLevel(
                _
            ))
        );
        let class = match (wordpiece, byte_level) {
            (true, _) => "BertTokenizerFast",
            (false, true) => "GPT2TokenizerFast",
            // A trained BPE / unigram model in BERT's pipeline: the generic fast class reads
            // tokenizer.json as it is.
            (false, false) => "PreTrainedTokenizerFast",
        };
        let cfg = serde_json::json!({
            "tokenizer_class": class,
            "do_lower_case": self.lowercase && wordpiece,
            "model_max_length": self.model_max_length.unwrap_or(512),
            "pad_token": self.pad_token,
            "additional_special_tokens": self.added_special,
        });
        crate::util::write_json_atomic(&dir.join("tokenizer_config.json"), &cfg)?;
        let specials: HashMap<&str, Value> = [
            ("eos_token", "<|endoftext|>"),
            ("bos_token", "<|endoftext|>"),
            ("unk_token", "[UNK]"),
            ("sep_token", "[SEP]"),
            ("pad_token", self.pad_token.as_str()),
            ("cls_token", "[CLS]"),
            ("mask_token", "[MASK]"),
        ]
        .into_iter()
        .filter(|(_, t)| self.token_to_id(t).is_some())
        .map(|(k, t)| (k, Value::String(t.to_string())))
        .chain(std::iter::once((
            "additional_special_tokens",
            serde_json::json!(self.added_special),
        )))
        .collect();
        crate::util::write_json_atomic(
            &dir.join("special_tokens_map.json"),
            &serde_json::json!(specials),
        )
    }
}

/// HF `GPT2TokenizerFast` built from `vocab.json` + `merges.txt`: byte-level BPE, no prefix
/// space, `<|endoftext|>` special. Returns the tokenizer and its end-of-text token.
fn byte_level_bpe(dir: &Path) -> Result<(tokenizers::Tokenizer, String)> {
    use tokenizers::models::bpe::BPE;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
    if !merges.is_file() {
        return Err(Error::config(
            &merges,
            "missing merges file: a byte-level BPE tokenizer needs vocab.json and merges.txt",
        ));
    }
    let path_str = |p: &Path| p.to_string_lossy().into_owned();
    let model = BPE::from_file(&path_str(&vocab), &path_str(&merges))
        .build()
        .map_err(|e| Error::config(dir, format!("cannot load vocab.json + merges.txt: {e}")))?;
    let mut tk = tokenizers::Tokenizer::new(model);
    let byte_level = ByteLevel::new(false, false, true);
    tk.with_pre_tokenizer(Some(byte_level));
    tk.with_decoder(Some(byte_level));
    tk.with_post_processor(Some(byte_level));
    let eos = "<|endoftext|>".to_string();
    if tk.token_to_id(&eos).is_some() {
        tk.add_special_tokens(vec![AddedToken::from(eos.clone(), true)])
            .map_err(tk_err)?;
    }
    Ok((tk, eos))
}

/// HF `BertTokenizerFast` built from a `vocab.txt`.
fn wordpiece_from_vocab(path: &Path, cfg: &BertTokenizerConfig) -> Result<tokenizers::Tokenizer> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8(bytes)
        .map_err(|e| Error::config(path, format!("vocab is not valid UTF-8: {e}")))?;
    let mut vocab = ahash::AHashMap::new();
    let body = text.strip_suffix('\n').unwrap_or(&text);
    for (i, line) in body.split('\n').enumerate() {
        // HF's load_vocab strips only the newline, and a repeated token keeps its last id.
        vocab.insert(line.to_string(), i as u32);
    }
    if vocab.is_empty() {
        return Err(Error::config(path, "vocab is empty"));
    }
    let id = |t: &str| {
        vocab
            .get(t)
            .copied()
            .ok_or_else(|| Error::config(path, format!("special token {t:?} is not in the vocab")))
    };
    let (cls, sep) = (id(&cfg.cls_token)?, id(&cfg.sep_token)?);
    id(&cfg.unk_token)?;
    let model = WordPiece::builder()
        .vocab(vocab.clone())
        .unk_token(cfg.unk_token.clone())
        .continuing_subword_prefix("##".into())
        .max_input_chars_per_word(100)
        .build()
        .map_err(tk_err)?;
    let mut tk = tokenizers::Tokenizer::new(model);
    tk.with_normalizer(Some(BertNormalizer::new(
        true,
        cfg.tokenize_chinese_chars,
        cfg.strip_accents,
        cfg.do_lower_case,
    )))
    .map_err(tk_err)?;
    tk.with_pre_tokenizer(Some(BertPreTokenizer));
    tk.with_post_processor(Some(BertProcessing::new(
        (cfg.sep_token.clone(), sep),
        (cfg.cls_token.clone(), cls),
    )));
    tk.with_decoder(Some(tokenizers::decoders::wordpiece::WordPiece::default()));
    let specials: Vec<AddedToken> = [
        &cfg.pad_token,
        &cfg.unk_token,
        &cfg.cls_token,
        &cfg.sep_token,
        &cfg.mask_token,
    ]
    .into_iter()
    .filter(|t| vocab.contains_key(*t))
    .map(|t| AddedToken::from(t.clone(), true))
    .collect();
    tk.add_special_tokens(specials).map_err(tk_err)?;
    Ok(tk)
}

fn convert(e: tokenizers::Encoding) -> Encoding {
    Encoding {
        input_ids: e.get_ids().to_vec(),
        token_type_ids: e.get_type_ids().to_vec(),
        attention_mask: e.get_attention_mask().to_vec(),
        special_tokens_mask: e.get_special_tokens_mask().to_vec(),
        offsets: e.get_offsets().to_vec(),
    }
}
