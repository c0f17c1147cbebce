//! Reading the texts of unlabelled example files, in every format the commands accept:
//! plain UTF-8 text (one example per line), JSON lines, CSV and TSV. Every error names the
//! file and line.

use super::dataset::{format_of, read_labelled, text_lines, DataConfig, Format};
use crate::error::{Error, Result};
use crate::tokenize::TextInput;
use std::path::Path;

/// Reads all examples of `path`: `.jsonl` / `.json` are JSON lines (`text`, optional
/// `text_pair`), `.csv` / `.tsv` have a `text` column (and optional `text_pair`), anything
/// else is plain text, one example per line. The same inputs as `predict` reads.
pub fn read_examples(path: &Path) -> Result<Vec<TextInput>> {
    match format_of(path) {
        Format::Csv | Format::Tsv => delimited(path),
        Format::Jsonl => json_lines(path),
        Format::Text | Format::Conll => {
            let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            let lines = text_lines(path, &bytes)?;
            Ok(lines
                .into_iter()
                .map(|(_, t)| TextInput::single(t))
                .collect())
        }
    }
}

fn json_lines(path: &Path) -> Result<Vec<TextInput>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (line_no, line) in text_lines(path, &bytes)? {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |msg: String| Error::Input {
            path: path.into(),
            line: line_no,
            msg,
        };
        out.push(parse_json_line(&line).map_err(bad)?);
    }
    if out.is_empty() {
        return Err(Error::Input {
            path: path.into(),
            line: 1,
            msg: "no examples in the file".into(),
        });
    }
    Ok(out)
}

/// CSV / TSV with a header: the `text` column, and `text_pair` when the header has one.
fn delimited(path: &Path) -> Result<Vec<TextInput>> {
    let mut cfg = DataConfig::default();
    let header = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.lines().next().map(str::to_string))
        .unwrap_or_default();
    if header
        .split([',', '\t'])
        .any(|f| f.trim_matches('"') == "text_pair")
    {
        cfg.text_pair_field = Some("text_pair".into());
    }
    let examples = read_labelled(path, &cfg, false)?;
    Ok(examples
        .into_iter()
        .map(|e| TextInput {
            text: e.text,
            text_pair: e.text_pair,
        })
        .collect())
}

fn parse_json_line(line: &str) -> std::result::Result<TextInput, String> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let text = match v.get("text") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(_) => return Err("field `text` must be a string".into()),
        None => return Err("missing field `text`".into()),
    };
    let text_pair = match v.get("text_pair") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("field `text_pair` must be a string".into()),
    };
    Ok(TextInput { text, text_pair })
}
