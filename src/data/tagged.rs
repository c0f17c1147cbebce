//! Token-level (NER) data: sentences as their text, the words in it (character spans) and
//! one tag per word. Read from CoNLL files (token and tag per line, tab or space separated,
//! a blank line between sentences), JSONL with `tokens` + `tags`, or JSONL with `text` +
//! `spans` (`[{"start", "end", "label"}]`, character offsets); unlabelled texts are split
//! into words the way BERT's pre-tokenizer splits them. Every error names file and line.

use super::dataset::{format_of, text_lines, Format};
use super::tags::{self, Scheme};
use crate::error::{Error, Result};
use std::path::Path;

/// One sentence.
#[derive(Clone, Debug, PartialEq)]
pub struct TaggedSentence {
    /// The text (for CoNLL: the tokens joined, with a space between two words unless both
    /// sides are CJK characters).
    pub text: String,
    /// The words as character spans `[start, end)` of `text`.
    pub words: Vec<(usize, usize)>,
    /// One tag per word (`None` for unlabelled input).
    pub tags: Option<Vec<String>>,
    /// The line the sentence starts on (1-based), for messages.
    pub line: usize,
}

/// Where tagged data is read from: the format, and what to do with invalid BIO moves.
#[derive(Clone, Copy, Debug)]
pub struct TaggedFormat {
    /// The tag scheme the model is trained in (files in the other scheme are converted).
    pub scheme: Scheme,
    /// Turn an `I-X` that continues nothing into `B-X` with a warning (true), or refuse it.
    pub repair: bool,
}

/// Reads a labelled file: JSONL when `format` says so or the extension is `.jsonl` /
/// `.json`, else CoNLL (`.conll`, `.bio`, `.txt`, ...).
pub fn read_tagged(
    path: &Path,
    format: Option<Format>,
    fmt: TaggedFormat,
) -> Result<Vec<TaggedSentence>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let lines = text_lines(path, &bytes)?;
    let jsonl = match format {
        Some(f) => f == Format::Jsonl,
        None => format_of(path) == Format::Jsonl,
    };
    let sentences = match jsonl {
        true => read_jsonl(path, &lines)?,
        false => read_conll(path, &lines)?,
    };
    if sentences.is_empty() {
        return Err(Error::Input {
            path: path.into(),
            line: 1,
            msg: "no sentences in the file".into(),
        });
    }
    sentences
        .into_iter()
        .map(|s| normalise_tags(path, s, fmt))
        .collect()
}

fn read_conll(path: &Path, lines: &[(usize, String)]) -> Result<Vec<TaggedSentence>> {
    let mut out = Vec::new();
    let mut cur: Vec<(String, String)> = Vec::new();
    let mut first_line = 0;
    let flush = |cur: &mut Vec<(String, String)>, line: usize, out: &mut Vec<TaggedSentence>| {
        if cur.is_empty() {
            return;
        }
        let (words, tags): (Vec<String>, Vec<String>) = cur.drain(..).unzip();
        let (text, spans) = join_words(&words);
        out.push(TaggedSentence {
            text,
            words: spans,
            tags: Some(tags),
            line,
        });
    };
    for (no, line) in lines {
        let line = line.trim_end();
        if line.trim().is_empty() || line.starts_with("-DOCSTART-") {
            flush(&mut cur, first_line, &mut out);
            continue;
        }
        let mut parts = line.split(['\t', ' ']).filter(|p| !p.is_empty());
        let (Some(word), Some(tag)) = (parts.next(), parts.next_back()) else {
            return Err(Error::Input {
                path: path.into(),
                line: *no,
                msg: format!("expected `token<TAB>tag`, got `{line}` (a token without a tag?)"),
            });
        };
        if cur.is_empty() {
            first_line = *no;
        }
        cur.push((word.to_string(), tag.to_string()));
    }
    flush(&mut cur, first_line, &mut out);
    Ok(out)
}

fn read_jsonl(path: &Path, lines: &[(usize, String)]) -> Result<Vec<TaggedSentence>> {
    let mut out = Vec::new();
    for (no, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |msg: String| Error::Input {
            path: path.into(),
            line: *no,
            msg,
        };
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let strings = |key: &str| -> Result<Option<Vec<String>>> {
            match v.get(key) {
                None => Ok(None),
                Some(x) => serde_json::from_value(x.clone())
                    .map(Some)
                    .map_err(|_| bad(format!("`{key}` must be a list of strings"))),
            }
        };
        let sentence = match (strings("tokens")?, v.get("text")) {
            (Some(words), _) => {
                let tags = strings("tags")?;
                if let Some(t) = &tags {
                    if t.len() != words.len() {
                        return Err(bad(format!(
                            "{} tokens but {} tags: they must pair up",
                            words.len(),
                            t.len()
                        )));
                    }
                }
                let (text, spans) = join_words(&words);
                TaggedSentence {
                    text,
                    words: spans,
                    tags,
                    line: *no,
                }
            }
            (None, Some(serde_json::Value::String(text))) => {
                with_spans(text, v.get("spans"), *no).map_err(bad)?
            }
            _ => {
                return Err(bad(
                    "expected `tokens` (+ `tags`) or `text` (+ `spans`)".into()
                ))
            }
        };
        out.push(sentence);
    }
    Ok(out)
}

/// A `text` + `spans` row: words from [`split_words`], each tagged by the span it lies in.
fn with_spans(
    text: &str,
    spans: Option<&serde_json::Value>,
    line: usize,
) -> std::result::Result<TaggedSentence, String> {
    let words = split_words(text);
    let Some(spans) = spans else {
        return Ok(TaggedSentence {
            text: text.to_string(),
            words,
            tags: None,
            line,
        });
    };
    let spans: Vec<serde_json::Value> = serde_json::from_value(spans.clone())
        .map_err(|_| "`spans` must be a list of {\"start\", \"end\", \"label\"}".to_string())?;
    let n_chars = text.chars().count();
    let mut entities = Vec::new();
    let mut taken = vec![false; words.len()];
    for s in &spans {
        let (Some(start), Some(end), Some(label)) = (
            s.get("start").and_then(|x| x.as_u64()),
            s.get("end").and_then(|x| x.as_u64()),
            s.get("label").and_then(|x| x.as_str()),
        ) else {
            return Err(format!(
                "span {s} needs integer `start`, `end` and a string `label`"
            ));
        };
        let (start, end) = (start as usize, end as usize);
        if start >= end || end > n_chars {
            return Err(format!(
                "span [{start}, {end}) `{label}` is outside the text ({n_chars} characters) or empty"
            ));
        }
        let inside: Vec<usize> = (0..words.len())
            .filter(|&i| words[i].0 < end && words[i].1 > start)
            .collect();
        let (Some(&first), Some(&last)) = (inside.first(), inside.last()) else {
            return Err(format!("span [{start}, {end}) `{label}` covers no word"));
        };
        if words[first].0 < start || words[last].1 > end {
            return Err(format!(
                "span [{start}, {end}) `{label}` cuts a word: spans must start and end at word boundaries"
            ));
        }
        if inside.iter().any(|&i| taken[i]) {
            return Err(format!(
                "span [{start}, {end}) `{label}` overlaps another span"
            ));
        }
        inside.iter().for_each(|&i| taken[i] = true);
        entities.push((label.to_string(), first, last + 1));
    }
    let tags = tags::from_entities(words.len(), &entities, Scheme::Bio);
    Ok(TaggedSentence {
        text: text.to_string(),
        words,
        tags: Some(tags),
        line,
    })
}

/// Checks every tag against the scheme (a tag of the other scheme is converted), repairs
/// or refuses invalid BIO moves.
fn normalise_tags(path: &Path, mut s: TaggedSentence, fmt: TaggedFormat) -> Result<TaggedSentence> {
    let Some(t) = s.tags.take() else {
        return Ok(s);
    };
    let bad = |msg: String| Error::Input {
        path: path.into(),
        line: s.line,
        msg,
    };
    let bioes = t.iter().any(|x| matches!(tags::split(x).0, 'E' | 'S'));
    let read_as = if bioes { Scheme::Bioes } else { Scheme::Bio };
    if let Some(msg) = t.iter().find_map(|x| tags::invalid(x, read_as)) {
        return Err(bad(msg));
    }
    let t = match read_as {
        Scheme::Bio => {
            let (fixed, changed) = tags::repair_bio(&t);
            if let Some(&i) = changed.first() {
                let msg = format!(
                    "`{}` at word {} follows `{}`: an I- tag must continue a span of its type",
                    t[i],
                    i + 1,
                    if i == 0 { "the start" } else { &t[i - 1] }
                );
                if !fmt.repair {
                    return Err(bad(format!(
                        "{msg} (set data.repair_tags = true to repair)"
                    )));
                }
                log::warn!("{}:{}: {msg}; read as B-", path.display(), s.line);
            }
            fixed
        }
        Scheme::Bioes => t,
    };
    s.tags = Some(match read_as == fmt.scheme {
        true => t,
        false => tags::convert(&t, fmt.scheme),
    });
    Ok(s)
}

/// `words` joined into a text, and each word's character span in it.
pub fn join_words(words: &[String]) -> (String, Vec<(usize, usize)>) {
    let mut text = String::new();
    let mut spans = Vec::with_capacity(words.len());
    let mut pos = 0;
    let mut prev_cjk = false;
    for (i, w) in words.iter().enumerate() {
        let first_cjk = w.chars().next().is_some_and(is_cjk);
        if i > 0 && !(prev_cjk && first_cjk) {
            text.push(' ');
            pos += 1;
        }
        let n = w.chars().count();
        text.push_str(w);
        spans.push((pos, pos + n));
        pos += n;
        prev_cjk = w.chars().last().is_some_and(is_cjk);
    }
    (text, spans)
}

/// The words of a raw text as character spans, split as BERT's pre-tokenizer does: at
/// whitespace, and around each punctuation mark and each CJK character.
pub fn split_words(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for (i, c) in text.chars().enumerate() {
        let alone = is_cjk(c) || is_punctuation(c);
        if c.is_whitespace() || alone {
            if let Some(s) = start.take() {
                out.push((s, i));
            }
            if alone {
                out.push((i, i + 1));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push((s, text.chars().count()));
    }
    out
}

/// CJK ideographs as BERT's tokenizer defines them (`_is_chinese_char`).
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

/// Punctuation as BERT's tokenizer defines it: ASCII symbols and Unicode `P*` classes.
fn is_punctuation(c: char) -> bool {
    use unicode_categories::UnicodeCategories;
    matches!(c as u32, 33..=47 | 58..=64 | 91..=96 | 123..=126) || c.is_punctuation()
}
