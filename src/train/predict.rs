//! Prediction as every front end does it (`bert4rs predict`, the server, the Python
//! package): a fine-tuned sequence classifier (texts in, labels and probabilities out, with
//! the model's own long-text windows when it was trained with them) and an entity tagger.

use super::early_exit::predict_with_exits;
use super::sequence::{predict_logits, windowed};
use crate::data::dataset::Example;
use crate::data::labelled::{Dataset, Problem};
use crate::error::Result;
use crate::kernels::CodeWidth;
use crate::models::hub::WeightStorage;
use crate::tasks::classify::{argmax, probabilities, SequenceClassifier};
use crate::tokenize::Tokenizer;
use candle_core::Device;
use std::path::Path;

/// What the classifier says about one text.
#[derive(Clone, Debug, PartialEq)]
pub enum Prediction {
    /// Single-label: the most probable label and every label's probability.
    Label {
        /// The argmax label.
        label: String,
        /// `(label, probability)` in `id2label` order.
        probabilities: Vec<(String, f32)>,
    },
    /// Multi-label: the labels whose sigmoid is above 0.5, and every probability.
    Labels {
        /// The labels on.
        labels: Vec<String>,
        /// `(label, probability)` in `id2label` order.
        probabilities: Vec<(String, f32)>,
    },
    /// Regression: the predicted value.
    Score(f32),
}

/// A fine-tuned `*ForSequenceClassification` directory with its tokenizer.
pub struct TextClassifier {
    model: SequenceClassifier,
    tokenizer: Tokenizer,
}

impl TextClassifier {
    /// Loads `dir` (written by `bert4rs train`, or an HF classification directory).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Self::from_dir_as(dir, WeightStorage::F32)
    }

    /// [`Self::from_dir`] with the encoder's matrices stored as `storage` says.
    pub fn from_dir_as(dir: &Path, storage: WeightStorage) -> Result<Self> {
        Ok(TextClassifier {
            model: SequenceClassifier::for_inference(dir, &Device::Cpu, storage)?,
            tokenizer: Tokenizer::from_dir(dir)?,
        })
    }

    /// The labels, in `id2label` order.
    pub fn labels(&self) -> &[String] {
        &self.model.spec().labels
    }

    /// Whether the model has DeeBERT off-ramps (for [`Self::predict_early_exit`]).
    pub fn has_exit_ramps(&self) -> bool {
        self.model.exit_ramps().is_some()
    }

    /// Runs the encoder on dynamically quantised int8 (see
    /// [`crate::models::bert::BertModel::quantize_int8`]).
    pub fn quantize_int8(&mut self, width: CodeWidth) -> Result<()> {
        self.model.quantize_int8(width)
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// True when the model reads long texts whole, as windows (no length limit).
    pub fn reads_long_texts(&self) -> bool {
        self.model.spec().windows.is_some()
    }

    /// The longest input (tokens, specials included) the model's position table holds.
    pub fn max_sequence_length(&self) -> usize {
        self.model.encoder().config().max_sequence_length()
    }

    /// Predictions for `examples` read from `source` (named in errors), in input order
    /// (`text`, optional `text_pair`), each truncated to `max_length` tokens (or cut into
    /// the model's windows), `batch_size` per forward pass.
    pub fn predict(
        &self,
        source: &Path,
        examples: Vec<Example>,
        max_length: usize,
        batch_size: usize,
    ) -> Result<Vec<Prediction>> {
        let ds = self.dataset(source, examples, max_length)?;
        let pad = self.tokenizer.pad_id();
        let logits = predict_logits(&self.model, &ds, batch_size, pad, &Device::Cpu)?;
        Ok(logits.iter().map(|row| self.prediction(row)).collect())
    }

    /// [`Self::predict`] with early exit (DeeBERT: a model trained with `task.early_exit`):
    /// each text stops at the first layer whose off-ramp's softmax entropy is below
    /// `max_entropy`. Also returns the layers each text ran.
    pub fn predict_early_exit(
        &self,
        source: &Path,
        examples: Vec<Example>,
        max_length: usize,
        batch_size: usize,
        max_entropy: f32,
    ) -> Result<(Vec<Prediction>, Vec<usize>)> {
        let ds = self.dataset(source, examples, max_length)?;
        let pad = self.tokenizer.pad_id();
        let out = predict_with_exits(&self.model, &ds, batch_size, pad, max_entropy)?;
        let preds = out.logits.iter().map(|row| self.prediction(row)).collect();
        Ok((preds, out.layers))
    }

    fn dataset(&self, source: &Path, examples: Vec<Example>, max_length: usize) -> Result<Dataset> {
        let spec = self.model.spec();
        let labels = (spec.labels.as_slice(), spec.problem);
        let ds = Dataset::unlabelled(source, examples, &self.tokenizer, labels, max_length)?;
        windowed(ds, &self.model, &self.tokenizer)
    }

    /// [`Self::predict_early_exit`] for plain texts.
    pub fn predict_texts_early_exit<S: AsRef<str>>(
        &self,
        texts: &[S],
        max_length: usize,
        batch_size: usize,
        max_entropy: f32,
    ) -> Result<(Vec<Prediction>, Vec<usize>)> {
        let ex = examples_of(texts);
        self.predict_early_exit(
            Path::new("<texts>"),
            ex,
            max_length,
            batch_size,
            max_entropy,
        )
    }

    /// Predictions for plain texts.
    pub fn predict_texts<S: AsRef<str>>(
        &self,
        texts: &[S],
        max_length: usize,
        batch_size: usize,
    ) -> Result<Vec<Prediction>> {
        self.predict(
            Path::new("<texts>"),
            examples_of(texts),
            max_length,
            batch_size,
        )
    }

    fn prediction(&self, row: &[f32]) -> Prediction {
        let spec = self.model.spec();
        let p = probabilities(spec.problem, row);
        let probs = || spec.labels.iter().cloned().zip(p.iter().copied()).collect();
        match spec.problem {
            Problem::SingleLabel => Prediction::Label {
                label: spec.labels[argmax(row)].clone(),
                probabilities: probs(),
            },
            Problem::MultiLabel => Prediction::Labels {
                labels: (spec.labels.iter().zip(&p))
                    .filter(|(_, v)| **v > 0.5)
                    .map(|(l, _)| l.clone())
                    .collect(),
                probabilities: probs(),
            },
            Problem::Regression => Prediction::Score(row[0]),
        }
    }
}

/// A fine-tuned token-classification (NER) directory: texts in, entities out in character
/// offsets of each text (`bert4rs predict` on a token model, the Python `Tagger`).
pub struct EntityTagger {
    model: crate::tasks::token_classify::TokenClassifier,
    vocab: super::token::TokenVocab,
}

impl EntityTagger {
    /// Loads `dir` (written by `bert4rs train` with `kind = "token_classification"`).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        use crate::tasks::token_classify::TokenClassifier;
        let model = TokenClassifier::from_dir(dir, &Device::Cpu, false, None)?;
        let vocab = super::token::TokenVocab::from_dir(dir, &model)?;
        Ok(EntityTagger { model, vocab })
    }

    /// Runs the encoder on dynamically quantised int8 (an error for an encoder-free
    /// tagger).
    pub fn quantize_int8(&mut self, width: CodeWidth) -> Result<()> {
        self.model.quantize_int8(width)
    }

    /// The entity labels (`PER`, `LOC`, ...) the model tags, in first-seen tag order.
    pub fn labels(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for tag in &self.model.spec().labels {
            let name = tag.split_once('-').map_or(tag.as_str(), |(_, l)| l);
            if tag != "O" && !out.iter().any(|l| l == name) {
                out.push(name.to_string());
            }
        }
        out
    }

    /// The longest window (tokens) the encoder's position table holds; `None` for a model
    /// without a pre-trained encoder (a BiLSTM over words), which takes any length.
    pub fn max_sequence_length(&self) -> Option<usize> {
        (self.model.encoder()).map(|e| e.config().max_sequence_length())
    }

    /// The entities of each example read from `source` (named in errors), in input order;
    /// long texts are cut into windows of `max_length` and joined back.
    pub fn tag(
        &self,
        source: &Path,
        examples: Vec<Example>,
        max_length: usize,
        batch_size: usize,
    ) -> Result<Vec<Vec<super::token::Entity>>> {
        let split = crate::data::tagged::split_words;
        self.tag_words(source, examples, max_length, batch_size, split)
    }

    /// Word segmentation with a model trained on `prepare zh-seg` data (each word an entity,
    /// every character a token): each text's words, in order; a character the model leaves
    /// outside every word is a word of its own, whitespace is dropped.
    pub fn segment(
        &self,
        source: &Path,
        examples: Vec<Example>,
        max_length: usize,
        batch_size: usize,
    ) -> Result<Vec<Vec<String>>> {
        let chars = |t: &str| -> Vec<(usize, usize)> {
            (t.chars().enumerate())
                .filter(|(_, c)| !c.is_whitespace())
                .map(|(i, _)| (i, i + 1))
                .collect()
        };
        // The characters joined as training joined the `tokens` of its rows (a space between
        // two unless both are CJK): a sub-word tokenizer then reads a run of digits or Latin
        // letters one character at a time, as it did in training, instead of as one piece
        // whose later characters get no tag.
        let spaced: Vec<String> = (examples.iter())
            .map(|e| {
                let cs: Vec<String> = (e.text.chars())
                    .filter(|c| !c.is_whitespace())
                    .map(String::from)
                    .collect();
                crate::data::tagged::join_words(&cs).0
            })
            .collect();
        let examples = (examples.into_iter().zip(&spaced))
            .map(|(e, text)| Example {
                text: text.clone(),
                ..e
            })
            .collect();
        let tagged = self.tag_words(source, examples, max_length, batch_size, chars)?;
        let unspaced = |w: String| w.chars().filter(|c| !c.is_whitespace()).collect();
        Ok(spaced
            .iter()
            .zip(tagged)
            .map(|(text, entities)| {
                words_of(text, &entities)
                    .into_iter()
                    .map(unspaced)
                    .collect()
            })
            .collect())
    }

    /// [`Self::tag`] with the words of each text given by `split` (character spans).
    fn tag_words(
        &self,
        source: &Path,
        examples: Vec<Example>,
        max_length: usize,
        batch_size: usize,
        split: impl Fn(&str) -> Vec<(usize, usize)>,
    ) -> Result<Vec<Vec<super::token::Entity>>> {
        use crate::data::aligned::TokenDataset;
        use crate::data::tagged::TaggedSentence;
        let sentences: Vec<TaggedSentence> = examples
            .into_iter()
            .map(|e| TaggedSentence {
                words: split(&e.text),
                text: e.text,
                tags: None,
                line: e.line,
            })
            .collect();
        let layout = self.vocab.layout();
        let ds = TokenDataset::new(source, sentences, &layout, None, max_length)?;
        let pad = self.vocab.pad_id();
        let (pred, _) = super::token::predict(&self.model, &ds, pad, batch_size, &Device::Cpu)?;
        let labels = &self.model.spec().labels;
        Ok(ds
            .sentences
            .iter()
            .zip(&pred)
            .map(|(s, p)| super::token::sentence_entities(s, p, labels))
            .collect())
    }

    /// [`Self::tag`] for plain texts.
    pub fn tag_texts<S: AsRef<str>>(
        &self,
        texts: &[S],
        max_length: usize,
        batch_size: usize,
    ) -> Result<Vec<Vec<super::token::Entity>>> {
        self.tag(
            Path::new("<texts>"),
            examples_of(texts),
            max_length,
            batch_size,
        )
    }
}

/// The words of `text` from segmentation entities (character spans): each entity a word, each
/// other non-space character a word of its own.
fn words_of(text: &str, entities: &[super::token::Entity]) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut words = Vec::new();
    let mut next = entities.iter().peekable();
    let mut i = 0;
    while i < chars.len() {
        while next.peek().is_some_and(|e| e.start < i) {
            next.next();
        }
        match next.peek() {
            Some(e) if e.start == i && e.end > i => {
                words.push(chars[i..e.end.min(chars.len())].iter().collect());
                i = e.end;
            }
            _ => {
                if !chars[i].is_whitespace() {
                    words.push(chars[i].to_string());
                }
                i += 1;
            }
        }
    }
    words
}

/// Unlabelled examples of plain texts, numbered from 1.
fn examples_of<S: AsRef<str>>(texts: &[S]) -> Vec<Example> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| Example {
            text: t.as_ref().to_string(),
            text_pair: None,
            label: None,
            line: i + 1,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::token::Entity;
    use super::words_of;

    fn word(start: usize, end: usize) -> Entity {
        Entity {
            start,
            end,
            label: "W".into(),
            text: String::new(),
            score: 1.0,
        }
    }

    #[test]
    fn segmentation_keeps_every_character_once_and_drops_spaces() {
        let text = "中国人民 很好！";
        // 中国 | 人民 | (space) | 很 untagged | 好！ ; the untagged 很 is a word of its own.
        let words = words_of(text, &[word(0, 2), word(2, 4), word(6, 8)]);
        assert_eq!(words, vec!["中国", "人民", "很", "好！"]);
        assert_eq!(words.concat(), text.replace(' ', ""));
        assert_eq!(words_of("ab", &[]), vec!["a", "b"]);
    }
}
