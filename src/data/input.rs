//! Reading example files: plain UTF-8 text (one example per line) or JSON lines with `text`
//! and optional `text_pair`. Every error names the file and line.

use crate::error::{Error, Result};
use crate::tokenize::TextInput;
use std::path::Path;

/// Reads all examples of `path`; `.jsonl`/`.json` files are JSON lines, anything else plain text.
pub fn read_examples(path: &Path) -> Result<Vec<TextInput>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let jsonl = path
        .extension()
        .is_some_and(|e| e == "jsonl" || e == "json");
    let mut out = Vec::new();
    let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    if body.is_empty() {
        return Err(Error::Input {
            path: path.into(),
            line: 1,
            msg: "the input file is empty: expected one example per line".into(),
        });
    }
    for (i, raw) in body.split(|b| *b == b'\n').enumerate() {
        let line_no = i + 1;
        let bad = |msg: String| Error::Input {
            path: path.into(),
            line: line_no,
            msg,
        };
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw).map_err(|e| {
            bad(format!(
                "invalid UTF-8 at byte {} of the line",
                e.valid_up_to()
            ))
        })?;
        let line = if line_no == 1 {
            line.trim_start_matches('\u{feff}')
        } else {
            line
        };
        if jsonl {
            if line.trim().is_empty() {
                continue;
            }
            out.push(parse_json_line(line).map_err(bad)?);
        } else {
            out.push(TextInput::single(line));
        }
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
