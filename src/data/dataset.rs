//! Labelled data sets for training and evaluation: CSV / TSV / JSONL with configurable
//! text, text-pair and label fields; a label vocabulary; seeded splits; length-bucketed
//! shuffled batches. Every error names the file and line.

use crate::error::{Error, Result};
use crate::rng::Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// File format; by default chosen from the extension (`.csv`, `.tsv`, `.jsonl`/`.json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma-separated, RFC 4180 quoting.
    Csv,
    /// Tab-separated.
    Tsv,
    /// One JSON object per line.
    Jsonl,
    /// Plain UTF-8 text, one example per line (no labels: prediction inputs).
    Text,
    /// CoNLL: a token and its tag per line, a blank line between sentences (token tasks).
    Conll,
}

/// Where the examples come from and which fields hold what (section `[data]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Training file.
    pub train: Option<PathBuf>,
    /// Dev file (evaluation during training, best-checkpoint choice).
    pub dev: Option<PathBuf>,
    /// Test file (evaluated once at the end).
    pub test: Option<PathBuf>,
    /// A single file split into train/dev/test by `split` (used when `train` is unset).
    pub file: Option<PathBuf>,
    /// Train/dev/test fractions for `file`.
    pub split: [f64; 3],
    /// Seed of the split shuffle.
    pub split_seed: u64,
    /// Format; `None` = from the extension.
    pub format: Option<Format>,
    /// CSV/TSV: the first row names the columns. Without a header, fields are column
    /// numbers (`"0"`, `"1"`, ...).
    pub header: bool,
    /// Field (or column) of the text.
    pub text_field: String,
    /// Field of the second text of a pair.
    pub text_pair_field: Option<String>,
    /// Field of the label: a class name, a list of names (multi-label; `|`-separated in
    /// CSV), or a number (regression).
    pub label_field: String,
    /// Fixed label order; `None` = the sorted labels of the training file.
    pub labels: Option<Vec<String>>,
    /// Tokens per example after truncation (`[CLS]` and `[SEP]` included); token tasks split
    /// longer sentences into windows of this many.
    pub max_length: usize,
    /// Token tasks: an `I-X` that continues no `X` span is read as `B-X` with a warning
    /// (true, the default) or refused (false).
    pub repair_tags: bool,
    /// Few-shot runs: keep this many training examples of each label, drawn with
    /// `split_seed` (0 = every example); dev and test are kept whole.
    pub shots: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            train: None,
            dev: None,
            test: None,
            file: None,
            split: [0.8, 0.1, 0.1],
            split_seed: 42,
            format: None,
            header: true,
            text_field: "text".into(),
            text_pair_field: None,
            label_field: "label".into(),
            labels: None,
            max_length: 128,
            repair_tags: true,
            shots: 0,
        }
    }
}

/// A label as read, before it is mapped to ids.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawLabel {
    /// A number (regression target, or a numeric class name).
    Number(f64),
    /// A class name.
    Name(String),
    /// Several class names (multi-label).
    Names(Vec<String>),
}

impl RawLabel {
    /// The label as class names.
    pub fn names(&self) -> Vec<String> {
        match self {
            RawLabel::Number(x) => vec![number_name(*x)],
            RawLabel::Name(s) => vec![s.clone()],
            RawLabel::Names(v) => v.clone(),
        }
    }
}

fn number_name(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// One labelled example.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// The text.
    pub text: String,
    /// The second text of a pair.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub text_pair: Option<String>,
    /// The label (absent in prediction inputs).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub label: Option<RawLabel>,
    /// Line in the source file (1-based), for error messages.
    #[serde(skip)]
    pub line: usize,
}

/// Reads every example of `path`; `need_label` makes a missing label an error.
pub fn read_labelled(path: &Path, cfg: &DataConfig, need_label: bool) -> Result<Vec<Example>> {
    let format = cfg.format.unwrap_or_else(|| format_of(path));
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let out = match format {
        Format::Text => plain_examples(path, &bytes, need_label)?,
        Format::Conll => {
            return Err(Error::config(
                path,
                "CoNLL files are token-level data: set task.kind = \"token_classification\"",
            ))
        }
        Format::Jsonl => read_jsonl(path, utf8(path, &bytes)?, cfg, need_label)?,
        Format::Csv | Format::Tsv => {
            read_delimited(path, utf8(path, &bytes)?, cfg, need_label, format)?
        }
    };
    if out.is_empty() {
        return Err(Error::Input {
            path: path.into(),
            line: 1,
            msg: "no examples in the file".into(),
        });
    }
    Ok(out)
}

/// The whole file as UTF-8 (without a BOM), or an error naming the first bad line.
fn utf8<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        Error::Input {
            path: path.into(),
            line,
            msg: "invalid UTF-8".into(),
        }
    })?;
    Ok(text.trim_start_matches('\u{feff}'))
}

/// Plain text: every line one unlabelled example (an empty line is an empty text).
fn plain_examples(path: &Path, bytes: &[u8], need_label: bool) -> Result<Vec<Example>> {
    if need_label {
        return Err(Error::config(
            path,
            "plain text (one example per line) has no labels: use .csv, .tsv or .jsonl, or set data.format",
        ));
    }
    let lines = text_lines(path, bytes)?;
    Ok(lines
        .into_iter()
        .map(|(line, text)| Example {
            text,
            text_pair: None,
            label: None,
            line,
        })
        .collect())
}

/// The format a file's extension names: `.csv`, `.tsv`, `.jsonl` / `.json`; anything else
/// is plain text, one example per line.
pub fn format_of(path: &Path) -> Format {
    match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => Format::Csv,
        Some("tsv") => Format::Tsv,
        Some("jsonl" | "json") => Format::Jsonl,
        _ => Format::Text,
    }
}

/// The lines of a UTF-8 file with their 1-based numbers (a BOM, `\r\n` endings and one
/// final newline removed); invalid UTF-8 names the line, an empty file is an error.
pub fn text_lines(path: &Path, bytes: &[u8]) -> Result<Vec<(usize, String)>> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if body.is_empty() {
        return Err(Error::Input {
            path: path.into(),
            line: 1,
            msg: "the input file is empty: expected one example per line".into(),
        });
    }
    let mut out = Vec::new();
    for (i, raw) in body.split(|b| *b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw).map_err(|e| Error::Input {
            path: path.into(),
            line: i + 1,
            msg: format!("invalid UTF-8 at byte {} of the line", e.valid_up_to()),
        })?;
        let line = if i == 0 {
            line.trim_start_matches('\u{feff}')
        } else {
            line
        };
        out.push((i + 1, line.to_string()));
    }
    Ok(out)
}

fn read_jsonl(path: &Path, text: &str, cfg: &DataConfig, need_label: bool) -> Result<Vec<Example>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |msg: String| Error::Input {
            path: path.into(),
            line: i + 1,
            msg,
        };
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let get_text = |field: &str| -> Result<Option<String>> {
            match v.get(field) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(bad(format!("field `{field}` must be a string"))),
            }
        };
        let text = get_text(&cfg.text_field)?
            .ok_or_else(|| bad(format!("missing field `{}`", cfg.text_field)))?;
        let text_pair = match &cfg.text_pair_field {
            Some(f) => Some(get_text(f)?.ok_or_else(|| bad(format!("missing field `{f}`")))?),
            None => None,
        };
        let label = match v.get(&cfg.label_field) {
            None | Some(serde_json::Value::Null) if need_label => {
                return Err(bad(format!("missing label field `{}`", cfg.label_field)))
            }
            None | Some(serde_json::Value::Null) => None,
            Some(l) => Some(serde_json::from_value::<RawLabel>(l.clone()).map_err(|_| {
                bad(format!(
                    "label `{l}` must be a string, a number or a list of strings"
                ))
            })?),
        };
        out.push(Example {
            text,
            text_pair,
            label,
            line: i + 1,
        });
    }
    Ok(out)
}

fn read_delimited(
    path: &Path,
    text: &str,
    cfg: &DataConfig,
    need_label: bool,
    format: Format,
) -> Result<Vec<Example>> {
    let delim = if format == Format::Tsv { b'\t' } else { b',' };
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delim)
        .has_headers(cfg.header)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = if cfg.header {
        rdr.headers()
            .map_err(|e| Error::Input {
                path: path.into(),
                line: 1,
                msg: format!("bad header: {e}"),
            })?
            .iter()
            .map(|s| s.trim().to_string())
            .collect()
    } else {
        Vec::new()
    };
    let column = |field: &str| -> Result<usize> {
        if cfg.header {
            headers.iter().position(|h| h == field).ok_or_else(|| {
                Error::config(
                    path,
                    format!(
                        "no column `{field}` in the header (columns: {})",
                        headers.join(", ")
                    ),
                )
            })
        } else {
            field.parse().map_err(|_| {
                Error::config(
                    path,
                    format!("without a header, fields are column numbers; got `{field}`"),
                )
            })
        }
    };
    let text_col = column(&cfg.text_field)?;
    let pair_col = cfg.text_pair_field.as_deref().map(column).transpose()?;
    let label_col = match column(&cfg.label_field) {
        Ok(c) => Some(c),
        Err(e) if need_label => return Err(e),
        Err(_) => None,
    };
    let mut out = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| Error::Input {
            path: path.into(),
            line: e.position().map_or(0, |p| p.line() as usize),
            msg: format!("bad row: {e}"),
        })?;
        let line = rec.position().map_or(0, |p| p.line() as usize);
        if rec.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let bad = |msg: String| Error::Input {
            path: path.into(),
            line,
            msg,
        };
        let field = |c: usize| -> Result<String> {
            rec.get(c).map(|s| s.to_string()).ok_or_else(|| {
                bad(format!(
                    "row has {} fields, column {c} is missing",
                    rec.len()
                ))
            })
        };
        let label = match label_col {
            Some(c) => {
                let raw = field(c)?;
                let raw = raw.trim();
                if raw.is_empty() {
                    return Err(bad("empty label".into()));
                }
                Some(if raw.contains('|') {
                    RawLabel::Names(raw.split('|').map(|s| s.trim().to_string()).collect())
                } else {
                    RawLabel::Name(raw.to_string())
                })
            }
            None => None,
        };
        out.push(Example {
            text: field(text_col)?,
            text_pair: pair_col.map(field).transpose()?,
            label,
            line,
        });
    }
    Ok(out)
}

/// Sorted unique class names of `examples` (or `fixed`, checked to cover them).
pub fn label_vocab(
    examples: &[Example],
    fixed: Option<&[String]>,
    path: &Path,
) -> Result<Vec<String>> {
    let seen: BTreeSet<String> = examples
        .iter()
        .filter_map(|e| e.label.as_ref())
        .flat_map(|l| l.names())
        .collect();
    match fixed {
        Some(f) => {
            check_labels(examples, f, path)?;
            Ok(f.to_vec())
        }
        None => Ok(seen.into_iter().collect()),
    }
}

/// An error naming file and line for the first example whose label is not in `labels`.
pub fn check_labels(examples: &[Example], labels: &[String], path: &Path) -> Result<()> {
    for e in examples {
        for name in e.label.iter().flat_map(|l| l.names()) {
            if !labels.contains(&name) {
                return Err(Error::Input {
                    path: path.into(),
                    line: e.line,
                    msg: format!("unknown label `{name}` (known: {})", labels.join(", ")),
                });
            }
        }
    }
    Ok(())
}

/// Shuffles `examples` with `seed` and cuts them into train/dev/test by `ratios`.
pub fn split(examples: Vec<Example>, ratios: [f64; 3], seed: u64) -> Result<[Vec<Example>; 3]> {
    let total: f64 = ratios.iter().sum();
    if ratios.iter().any(|r| *r < 0.0) || (total - 1.0).abs() > 1e-6 {
        return Err(Error::Invalid(format!(
            "data.split {ratios:?} must be ≥ 0 and sum to 1"
        )));
    }
    let mut ex = examples;
    Rng::new(seed).shuffle(&mut ex);
    let n = ex.len();
    let n_train = (ratios[0] * n as f64).round() as usize;
    let n_dev = ((ratios[1] * n as f64).round() as usize).min(n - n_train);
    let test = ex.split_off(n_train + n_dev);
    let dev = ex.split_off(n_train);
    Ok([ex, dev, test])
}

/// Writes examples as JSON lines (`text`, `text_pair`, `label`), atomically.
pub fn write_jsonl(path: &Path, examples: &[Example]) -> Result<()> {
    let mut s = String::new();
    for e in examples {
        let line = serde_json::to_string(e).map_err(|err| Error::Invalid(format!("{err}")))?;
        s.push_str(&line);
        s.push('\n');
    }
    crate::util::write_atomic(path, s.as_bytes())
}

/// Batches for one epoch: indices shuffled with `seed`, grouped into pools of 50 batches
/// sorted by length (little padding), cut into batches, and the batches shuffled.
pub fn bucketed_batches(lengths: &[usize], batch_size: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = Rng::new(seed);
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    rng.shuffle(&mut order);
    let bs = batch_size.max(1);
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for pool in order.chunks(bs * 50) {
        let mut pool = pool.to_vec();
        pool.sort_by_key(|&i| lengths[i]);
        batches.extend(pool.chunks(bs).map(|c| c.to_vec()));
    }
    rng.shuffle(&mut batches);
    batches
}
