//! What every front end of generation shares (the CLI, the server's streaming route, the
//! Python package): a GPT-2 with its tokenizer, prompt encoding, the default end-of-text
//! token, and incremental decoding of a stream of tokens into text.

use crate::error::{Error, Result};
use crate::models::gpt2::Gpt2LMHeadModel;
use crate::tokenize::{TextInput, Tokenizer};
use candle_core::Device;
use std::path::Path;

/// A GPT-2 and (when its directory or a given one has one) its tokenizer.
pub struct TextGenerator {
    model: Gpt2LMHeadModel,
    tokenizer: Option<Tokenizer>,
}

/// True when `dir` holds tokenizer files.
fn has_tokenizer(dir: &Path) -> bool {
    ["tokenizer.json", "vocab.json", "vocab.txt"]
        .iter()
        .any(|f| dir.join(f).is_file())
}

impl TextGenerator {
    /// Loads the model of `model_dir` and the tokenizer of `tokenizer_dir` (default: the
    /// model's directory; there it is optional, since prompts may be given as ids).
    pub fn from_dir(model_dir: &Path, tokenizer_dir: Option<&Path>) -> Result<Self> {
        let model = Gpt2LMHeadModel::from_dir(model_dir, &Device::Cpu, false)?;
        let dir = tokenizer_dir.unwrap_or(model_dir);
        let tokenizer = if has_tokenizer(dir) {
            Some(Tokenizer::from_dir(dir)?)
        } else if tokenizer_dir.is_some() {
            return Err(Error::config(dir, "no tokenizer files in this directory"));
        } else {
            None
        };
        if let Some(t) = &tokenizer {
            let (tv, mv) = (t.vocab_size(), model.config().vocab_size);
            if tv > mv {
                return Err(Error::Invalid(format!(
                    "the tokenizer has {tv} tokens but the model only {mv} (vocab_size): \
                     wrong tokenizer?"
                )));
            }
        }
        Ok(TextGenerator { model, tokenizer })
    }

    /// The model.
    pub fn model(&self) -> &Gpt2LMHeadModel {
        &self.model
    }

    /// Decodes with int8 weights from now on ([`Gpt2LMHeadModel::quantize_int8`]).
    pub fn quantize_int8(&mut self) -> Result<()> {
        self.model.quantize_int8()
    }

    /// The tokenizer, or an error saying how to give one.
    pub fn tokenizer(&self) -> Result<&Tokenizer> {
        self.tokenizer.as_ref().ok_or_else(|| {
            Error::Invalid(
                "text prompts need a tokenizer: pass --tokenizer DIR or --prompt-ids".into(),
            )
        })
    }

    /// True when there is a tokenizer (outputs can be decoded to text).
    pub fn has_tokenizer(&self) -> bool {
        self.tokenizer.is_some()
    }

    /// Prompt ids: byte-level BPE as is; a BERT vocabulary starts with `[CLS]` and, as the
    /// Chinese GPT-2s are trained, has no trailing `[SEP]`.
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>> {
        let tok = self.tokenizer()?;
        if text.is_empty() {
            return Err(Error::Invalid("empty prompt: give some text".into()));
        }
        if !tok.is_wordpiece() {
            return tok.encode_plain(text);
        }
        let mut ids = tok
            .encode(&TextInput::single(text), &Default::default())?
            .input_ids;
        if ids.last() == tok.token_to_id("[SEP]").as_ref() {
            ids.pop();
        }
        Ok(ids)
    }

    /// The text of `ids` (special tokens skipped), or `None` without a tokenizer.
    pub fn decode(&self, ids: &[u32]) -> Result<Option<String>> {
        match &self.tokenizer {
            Some(t) => Ok(Some(t.decode_with(ids, true)?)),
            None => Ok(None),
        }
    }

    /// One token as the tokenizer spells it (special tokens kept; empty without one).
    pub fn token_text(&self, id: u32) -> String {
        self.tokenizer
            .as_ref()
            .and_then(|t| t.decode_with(&[id], false).ok())
            .unwrap_or_default()
    }

    /// The end-of-text token: `explicit`, else `[SEP]` for a BERT vocabulary (the Chinese
    /// GPT-2s end texts with it), else the model config's `eos_token_id`.
    pub fn eos(&self, explicit: Option<u32>) -> Option<u32> {
        explicit.or_else(|| match &self.tokenizer {
            Some(t) if t.is_wordpiece() => t.token_to_id("[SEP]"),
            _ => self.model.config().eos_token_id,
        })
    }

    /// An incremental decoder of a sequence that starts with `prompt`.
    pub fn stream<'a>(&'a self, prompt: &[u32]) -> TextStream<'a> {
        TextStream {
            generator: self,
            ids: prompt.to_vec(),
            shown: String::new(),
        }
    }
}

/// Turns a growing token sequence into text pieces as they become final: a token that
/// ends inside a multi-byte character waits for the next one, and when a decoder rewrites
/// the end of earlier text (WordPiece joins `it '` + `s` into `it's`) the text after the
/// common prefix is given again, so the pieces always add up to at least the full text.
pub struct TextStream<'a> {
    generator: &'a TextGenerator,
    ids: Vec<u32>,
    shown: String,
}

impl TextStream<'_> {
    /// The text so far that has not been given yet (the prompt's, before any token).
    pub fn start(&mut self) -> Result<String> {
        self.flush()
    }

    /// Adds `token`; returns the new text (empty while a character is incomplete).
    pub fn push(&mut self, token: u32) -> Result<String> {
        self.ids.push(token);
        self.flush()
    }

    /// Every id so far, prompt included.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    fn flush(&mut self) -> Result<String> {
        let Some(text) = self.generator.decode(&self.ids)? else {
            return Ok(String::new());
        };
        if text.ends_with('\u{FFFD}') {
            return Ok(String::new()); // a multi-byte character is still incomplete
        }
        let from = match text.starts_with(&self.shown) {
            true => self.shown.len(),
            false => self
                .shown
                .char_indices()
                .zip(text.chars())
                .find(|((_, a), b)| a != b)
                .map_or(self.shown.len().min(text.len()), |((i, _), _)| i),
        };
        let piece = text[from..].to_string();
        self.shown = text;
        Ok(piece)
    }
}
