//! Labelled sentence-level data ready for a head: each example tokenized and its label
//! mapped to an id (or a multi-hot row, or a score), padded into batches; and the
//! train / dev / test files of a run, read or split from one file.

use super::batch::{pad_batch, to_encoder_input, EncoderInput};
use super::dataset::{self, DataConfig, Example, RawLabel};
use super::windows::{split_windows, WindowOptions};
use crate::error::{Error, Result};
use crate::tokenize::{EncodeOptions, Encoding, TextInput, Tokenizer, Truncation};
use candle_core::Device;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a sentence-level head predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// One class per example (softmax).
    SingleLabel,
    /// Any subset of the classes (sigmoid per class).
    MultiLabel,
    /// One real number per example.
    Regression,
}

impl Problem {
    /// HF's `problem_type` string.
    pub fn hf_name(self) -> &'static str {
        match self {
            Problem::SingleLabel => "single_label_classification",
            Problem::MultiLabel => "multi_label_classification",
            Problem::Regression => "regression",
        }
    }

    /// The problem of HF's `problem_type` string.
    pub fn from_hf(s: &str) -> Option<Self> {
        match s {
            "single_label_classification" => Some(Problem::SingleLabel),
            "multi_label_classification" => Some(Problem::MultiLabel),
            "regression" => Some(Problem::Regression),
            _ => None,
        }
    }
}

/// Gold answers of a batch, in the form a head's loss takes.
#[derive(Clone, Debug)]
pub enum Targets {
    /// Class ids (single-label).
    Classes(Vec<u32>),
    /// Multi-hot rows `[batch, labels]` (multi-label).
    Multi(Vec<Vec<f32>>),
    /// One score per example (regression).
    Scores(Vec<f32>),
}

/// One example's gold answer, already mapped to ids.
#[derive(Clone, Debug)]
pub enum Target {
    /// Class id.
    Class(u32),
    /// Multi-hot row.
    Multi(Vec<f32>),
    /// Regression score.
    Score(f32),
}

/// A padded batch with its gold answers.
pub struct Batch {
    /// Model input: one row per example, or, for long texts, one per window.
    pub input: EncoderInput,
    /// Long texts: how many consecutive rows of `input` each example has.
    pub windows: Option<Vec<usize>>,
    /// Gold answers.
    pub targets: Targets,
}

/// A tokenized, labelled data set.
pub struct Dataset {
    /// Where it came from (for messages and reports).
    pub source: PathBuf,
    /// The examples as read.
    pub examples: Vec<Example>,
    /// Unpadded encodings (truncated to `max_length`).
    pub encodings: Vec<Encoding>,
    /// Gold answers.
    pub targets: Vec<Target>,
    /// Long texts: every example's windows (see [`Dataset::with_windows`]).
    pub windows: Option<Vec<Vec<Encoding>>>,
}

impl Dataset {
    /// Tokenizes `examples` and maps their labels to `labels`' ids; an unknown label names
    /// file and line.
    pub fn new(
        source: &Path,
        examples: Vec<Example>,
        tokenizer: &Tokenizer,
        (labels, problem): (&[String], Problem),
        max_length: usize,
    ) -> Result<Self> {
        let targets = examples
            .iter()
            .map(|e| target_of(e, labels, problem, source))
            .collect::<Result<Vec<_>>>()?;
        let inputs: Vec<TextInput> = examples
            .iter()
            .map(|e| TextInput {
                text: e.text.clone(),
                text_pair: e.text_pair.clone(),
            })
            .collect();
        let opts = EncodeOptions {
            max_length: Some(max_length),
            truncation: Some(Truncation::LongestFirst),
            ..Default::default()
        };
        let encodings = tokenizer.encode_batch(&inputs, &opts)?;
        Ok(Dataset {
            source: source.to_path_buf(),
            examples,
            encodings,
            targets,
            windows: None,
        })
    }

    /// Reads every text whole, as windows of `max_length` tokens ([`split_windows`]); a
    /// text pair is refused (its windows would have no clear meaning).
    pub fn with_windows(
        mut self,
        tokenizer: &Tokenizer,
        max_length: usize,
        opts: &WindowOptions,
    ) -> Result<Self> {
        if let Some(e) = self.examples.iter().find(|e| e.text_pair.is_some()) {
            return Err(Error::Input {
                path: self.source.clone(),
                line: e.line,
                msg: "task.windows reads single long texts; this example is a text pair".into(),
            });
        }
        let inputs: Vec<TextInput> = self
            .examples
            .iter()
            .map(|e| TextInput {
                text: e.text.clone(),
                text_pair: None,
            })
            .collect();
        let whole = tokenizer.encode_batch(&inputs, &EncodeOptions::default())?;
        self.windows = Some(
            whole
                .iter()
                .map(|e| split_windows(e, max_length, opts))
                .collect(),
        );
        Ok(self)
    }

    /// A data set for prediction: the examples need no labels (each gets a placeholder).
    pub fn unlabelled(
        source: &Path,
        examples: Vec<Example>,
        tokenizer: &Tokenizer,
        (labels, problem): (&[String], Problem),
        max_length: usize,
    ) -> Result<Self> {
        let placeholder = match problem {
            Problem::Regression => RawLabel::Number(0.0),
            Problem::MultiLabel => RawLabel::Names(Vec::new()),
            Problem::SingleLabel => RawLabel::Name(labels.first().cloned().unwrap_or_default()),
        };
        let examples = examples
            .into_iter()
            .map(|mut e| {
                e.label = Some(placeholder.clone());
                e
            })
            .collect();
        Dataset::new(source, examples, tokenizer, (labels, problem), max_length)
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// True when there are no examples.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// Token counts (for length bucketing; all windows of a long text).
    pub fn token_lengths(&self) -> Vec<usize> {
        match &self.windows {
            Some(w) => w
                .iter()
                .map(|ws| ws.iter().map(|e| e.input_ids.len()).sum())
                .collect(),
            None => self.encodings.iter().map(|e| e.input_ids.len()).collect(),
        }
    }

    /// Gold answers of the examples `idx`, in the form the head's loss takes.
    pub fn targets_of(&self, idx: &[usize]) -> Targets {
        let pick = |i: &usize| self.targets[*i].clone();
        match self.targets.first() {
            Some(Target::Multi(_)) => Targets::Multi(
                idx.iter()
                    .map(|i| match pick(i) {
                        Target::Multi(r) => r,
                        _ => Vec::new(),
                    })
                    .collect(),
            ),
            Some(Target::Score(_)) => Targets::Scores(
                idx.iter()
                    .map(|i| match pick(i) {
                        Target::Score(s) => s,
                        _ => 0.0,
                    })
                    .collect(),
            ),
            _ => Targets::Classes(
                idx.iter()
                    .map(|i| match pick(i) {
                        Target::Class(c) => c,
                        _ => 0,
                    })
                    .collect(),
            ),
        }
    }

    /// A padded batch of the examples `idx`.
    pub fn batch(&self, idx: &[usize], pad_id: u32, device: &Device) -> Result<Batch> {
        let (encs, windows): (Vec<Encoding>, _) = match &self.windows {
            Some(w) => (
                idx.iter().flat_map(|&i| w[i].iter().cloned()).collect(),
                Some(idx.iter().map(|&i| w[i].len()).collect()),
            ),
            None => (
                idx.iter().map(|&i| self.encodings[i].clone()).collect(),
                None,
            ),
        };
        let input = to_encoder_input(&pad_batch(&encs, pad_id), device)?;
        let targets = self.targets_of(idx);
        Ok(Batch {
            input,
            windows,
            targets,
        })
    }
}

fn target_of(e: &Example, labels: &[String], problem: Problem, source: &Path) -> Result<Target> {
    let bad = |msg: String| Error::Input {
        path: source.into(),
        line: e.line,
        msg,
    };
    let label = e
        .label
        .as_ref()
        .ok_or_else(|| bad("missing label".into()))?;
    let id = |name: &str| -> Result<u32> {
        labels
            .iter()
            .position(|l| l == name)
            .map(|i| i as u32)
            .ok_or_else(|| {
                bad(format!(
                    "unknown label `{name}` (known: {})",
                    labels.join(", ")
                ))
            })
    };
    match problem {
        Problem::SingleLabel => match label {
            RawLabel::Names(v) => Err(bad(format!(
                "a single-label task got a list of labels {v:?}"
            ))),
            l => Ok(Target::Class(id(&l.names()[0])?)),
        },
        Problem::MultiLabel => {
            let mut row = vec![0f32; labels.len()];
            for n in label.names() {
                row[id(&n)? as usize] = 1.0;
            }
            Ok(Target::Multi(row))
        }
        Problem::Regression => match label {
            RawLabel::Number(x) => Ok(Target::Score(*x as f32)),
            RawLabel::Name(s) => s
                .trim()
                .parse::<f32>()
                .map(Target::Score)
                .map_err(|_| bad(format!("regression label `{s}` is not a number"))),
            RawLabel::Names(_) => Err(bad("regression label must be a number".into())),
        },
    }
}

/// A data file and the examples read from it.
pub type Source = (PathBuf, Vec<Example>);

/// The examples of a run: train, and dev / test when there are any.
pub struct Splits {
    /// The training examples.
    pub train: Source,
    /// Dev examples (evaluation during training, best-checkpoint choice).
    pub dev: Option<Source>,
    /// Test examples (evaluated once, with the best weights).
    pub test: Option<Source>,
}

/// Reads `data.train` (+ `dev`, `test`), or splits `data.file` and writes the split to
/// `<output_dir>/split/*.jsonl` (so a reference run can use the very same examples).
pub fn read_splits(d: &DataConfig, output_dir: &Path) -> Result<Splits> {
    let mut splits = read_all_splits(d, output_dir)?;
    if d.shots > 0 {
        let (path, ex) = splits.train;
        let kept = few_shot(ex, d.shots, d.split_seed, &path)?;
        let dir = output_dir.join("split");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let p = dir.join("train.jsonl");
        dataset::write_jsonl(&p, &kept)?;
        splits.train = (p, kept);
    }
    Ok(splits)
}

/// `shots` examples of each label (by its first name), drawn with `seed`, in file order.
/// A label with fewer examples is an error naming it.
pub fn few_shot(ex: Vec<Example>, shots: usize, seed: u64, path: &Path) -> Result<Vec<Example>> {
    let label = |e: &Example| e.label.as_ref().map(|l| l.names().join("|"));
    let mut order: Vec<usize> = (0..ex.len()).collect();
    crate::rng::Rng::new(seed ^ 0x5107).shuffle(&mut order);
    let mut taken: std::collections::BTreeMap<String, usize> = Default::default();
    let mut keep = vec![false; ex.len()];
    for i in order {
        let count = taken.entry(label(&ex[i]).unwrap_or_default()).or_default();
        if *count < shots {
            *count += 1;
            keep[i] = true;
        }
    }
    if let Some((name, n)) = taken.iter().find(|(_, n)| **n < shots) {
        return Err(Error::config(
            path,
            format!("data.shots = {shots}, but label `{name}` has only {n} training examples"),
        ));
    }
    Ok(ex
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(e, _)| e)
        .collect())
}

fn read_all_splits(d: &DataConfig, output_dir: &Path) -> Result<Splits> {
    if let Some(train) = &d.train {
        let read = |p: &PathBuf| -> Result<Source> {
            let p = crate::assets::resolve_file(p)?;
            let ex = dataset::read_labelled(&p, d, true)?;
            Ok((p, ex))
        };
        return Ok(Splits {
            train: read(train)?,
            dev: d.dev.as_ref().map(read).transpose()?,
            test: d.test.as_ref().map(read).transpose()?,
        });
    }
    let file = d.file.as_ref().ok_or_else(|| {
        Error::Invalid("set data.train (and data.dev / data.test) or data.file".into())
    })?;
    let file = crate::assets::resolve_file(file)?;
    let all = dataset::read_labelled(&file, d, true)?;
    let [train, dev, test] = dataset::split(all, d.split, d.split_seed)?;
    let dir = output_dir.join("split");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let write = |name: &str, ex: Vec<Example>| -> Result<Option<Source>> {
        if ex.is_empty() {
            return Ok(None);
        }
        let p = dir.join(format!("{name}.jsonl"));
        dataset::write_jsonl(&p, &ex)?;
        Ok(Some((p, ex)))
    };
    let train = write("train", train)?.ok_or_else(|| {
        Error::Invalid(format!("{}: the training split is empty", file.display()))
    })?;
    Ok(Splits {
        train,
        dev: write("dev", dev)?,
        test: write("test", test)?,
    })
}
