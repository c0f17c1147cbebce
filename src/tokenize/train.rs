//! Training a vocabulary on the `tokenizers` crate's trainers (WordPiece, BPE, Unigram) inside
//! BERT's Chinese-aware pipeline: the BERT normaliser (control characters removed, whitespace
//! unified, every CJK character made its own word, optional lower-casing), BERT's
//! pre-tokeniser (whitespace and punctuation), `[CLS] A [SEP] (B [SEP])` post-processing and
//! the five BERT special tokens at ids 0–4. The saved directory is what `transformers`'
//! `AutoTokenizer` loads (`BertTokenizerFast` for WordPiece, else `PreTrainedTokenizerFast`).

use super::{tk_err, Tokenizer};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use tokenizers::models::bpe::{BpeTrainer, BPE};
use tokenizers::models::unigram::{Unigram, UnigramTrainer};
use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainer};
use tokenizers::models::TrainerWrapper;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{AddedToken, ModelWrapper};

/// BERT's special tokens, in the order they take ids 0–4.
pub const BERT_SPECIALS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// Which sub-word model is trained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenizerKind {
    /// BERT's WordPiece (`##` continuation prefix); also writes `vocab.txt`.
    WordPiece,
    /// Byte-pair merges over characters, with the same `##` continuation prefix.
    Bpe,
    /// SentencePiece's unigram language model (pieces pruned by EM likelihood).
    Unigram,
}

impl FromStr for TokenizerKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "wordpiece" => Ok(TokenizerKind::WordPiece),
            "bpe" => Ok(TokenizerKind::Bpe),
            "unigram" => Ok(TokenizerKind::Unigram),
            _ => Err(Error::Invalid(format!(
                "unknown tokenizer kind {s:?}; choose wordpiece, bpe or unigram"
            ))),
        }
    }
}

impl fmt::Display for TokenizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            TokenizerKind::WordPiece => "wordpiece",
            TokenizerKind::Bpe => "bpe",
            TokenizerKind::Unigram => "unigram",
        };
        f.write_str(name)
    }
}

/// What to train.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// The sub-word model.
    pub kind: TokenizerKind,
    /// Target vocabulary size, special tokens included.
    pub vocab_size: usize,
    /// WordPiece / BPE: a merge must be seen this often (HF's `BertWordPieceTokenizer`
    /// trains with 2).
    pub min_frequency: u64,
    /// WordPiece / BPE: keep at most this many initial characters (the rest become
    /// `[UNK]`); `None` keeps every character, which Chinese needs.
    pub limit_alphabet: Option<usize>,
    /// Lower-case (and, as BERT's uncased models, nothing else: accents are kept).
    pub lowercase: bool,
    /// Extra special tokens after BERT's five (never split, never masked).
    pub extra_special_tokens: Vec<String>,
    /// `model_max_length` written to `tokenizer_config.json`.
    pub model_max_length: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            kind: TokenizerKind::WordPiece,
            vocab_size: 30_000,
            min_frequency: 2,
            limit_alphabet: None,
            lowercase: true,
            extra_special_tokens: Vec::new(),
            model_max_length: 512,
        }
    }
}

impl TrainOptions {
    /// The special tokens, BERT's first.
    fn specials(&self) -> Vec<String> {
        let mut all: Vec<String> = BERT_SPECIALS.iter().map(|s| s.to_string()).collect();
        for t in &self.extra_special_tokens {
            if !all.contains(t) {
                all.push(t.clone());
            }
        }
        all
    }

    /// Checks the options before any text is read.
    pub fn validate(&self) -> Result<()> {
        let n = self.specials().len();
        if self.vocab_size <= n {
            return Err(Error::Invalid(format!(
                "--vocab-size {} leaves no room after the {n} special tokens; ask for more",
                self.vocab_size
            )));
        }
        if self
            .extra_special_tokens
            .iter()
            .any(|t| t.trim().is_empty())
        {
            return Err(Error::Invalid(
                "--special-tokens: a special token cannot be empty".into(),
            ));
        }
        if self.limit_alphabet == Some(0) {
            return Err(Error::Invalid(
                "--limit-alphabet 0 would leave no characters; omit it to keep all".into(),
            ));
        }
        Ok(())
    }

    fn trainer(&self) -> TrainerWrapper {
        let specials: Vec<AddedToken> = self
            .specials()
            .into_iter()
            .map(|t| AddedToken::from(t, true))
            .collect();
        let alphabet = |limit: Option<usize>| limit.unwrap_or(usize::MAX);
        match self.kind {
            TokenizerKind::WordPiece => {
                let t = WordPieceTrainer::builder()
                    .vocab_size(self.vocab_size)
                    .min_frequency(self.min_frequency)
                    .special_tokens(specials)
                    .limit_alphabet(alphabet(self.limit_alphabet))
                    .continuing_subword_prefix("##".into())
                    .show_progress(false)
                    .build();
                TrainerWrapper::WordPieceTrainer(t)
            }
            TokenizerKind::Bpe => {
                let t = BpeTrainer::builder()
                    .vocab_size(self.vocab_size)
                    .min_frequency(self.min_frequency)
                    .special_tokens(specials)
                    .limit_alphabet(alphabet(self.limit_alphabet))
                    .continuing_subword_prefix("##".into())
                    .show_progress(false)
                    .build();
                TrainerWrapper::BpeTrainer(t)
            }
            TokenizerKind::Unigram => {
                let t = UnigramTrainer::builder()
                    .vocab_size(self.vocab_size as u32)
                    .special_tokens(specials)
                    .unk_token(Some("[UNK]".into()))
                    .show_progress(false)
                    .build()
                    // build() fails only for a field without a default, and every
                    // UnigramTrainer field has one; no input reaches it.
                    .expect("every unigram trainer field has a default"); // ok: see above
                TrainerWrapper::UnigramTrainer(t)
            }
        }
    }

    fn untrained_model(&self) -> Result<ModelWrapper> {
        Ok(match self.kind {
            TokenizerKind::WordPiece => WordPiece::builder()
                .unk_token("[UNK]".into())
                .continuing_subword_prefix("##".into())
                .max_input_chars_per_word(100)
                .build()
                .map_err(tk_err)?
                .into(),
            TokenizerKind::Bpe => BPE::builder()
                .unk_token("[UNK]".into())
                .continuing_subword_prefix("##".into())
                .build()
                .map_err(tk_err)?
                .into(),
            TokenizerKind::Unigram => Unigram::default().into(),
        })
    }
}

/// Trains a tokenizer on `texts` (each one example: a line, a record's text).
pub fn train_tokenizer(texts: &[String], opts: &TrainOptions) -> Result<Tokenizer> {
    opts.validate()?;
    if texts.iter().all(|t| t.trim().is_empty()) {
        return Err(Error::Invalid(
            "no text to train a tokenizer on (every input is empty)".into(),
        ));
    }
    let mut tk = tokenizers::Tokenizer::new(opts.untrained_model()?);
    tk.with_normalizer(Some(BertNormalizer::new(true, true, None, opts.lowercase)))
        .map_err(tk_err)?;
    tk.with_pre_tokenizer(Some(BertPreTokenizer));
    let mut trainer = opts.trainer();
    tk.train(&mut trainer, texts.iter()).map_err(tk_err)?;
    let id = |t: &str| {
        tk.token_to_id(t)
            .ok_or_else(|| Error::Tokenizer(format!("the trained vocabulary lacks {t}")))
    };
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    tk.with_post_processor(Some(BertProcessing::new(
        ("[SEP]".into(), sep),
        ("[CLS]".into(), cls),
    )));
    if opts.kind != TokenizerKind::Unigram {
        // Both continue words with `##`; unigram pieces carry no word-boundary marker, so
        // its decode joins pieces with spaces (no decoder), as `tokenizers` does.
        tk.with_decoder(Some(tokenizers::decoders::wordpiece::WordPiece::default()));
    }
    let extra: Vec<String> = opts.specials()[BERT_SPECIALS.len()..].to_vec();
    Ok(Tokenizer {
        inner: tk,
        pad_token: "[PAD]".into(),
        model_max_length: Some(opts.model_max_length),
        added_special: extra,
        lowercase: opts.lowercase,
    })
}
