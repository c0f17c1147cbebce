//! Relation classification data: JSONL rows `{"text", "subject", "object", "label"}` whose
//! subject and object are `{"start", "end"}` character spans or strings (their first
//! occurrence); the entity markers (`[E1]…[/E1]`, `[E2]…[/E2]`) put into the text; and the
//! DuIE corpus turned into such rows (every triple a positive, sampled entity pairs without
//! one `no_relation`). Every error names the file and line.

use super::dataset::text_lines;
use crate::error::{Error, Result};
use crate::rng::Rng;
use std::path::Path;

/// The label of a pair with no relation.
pub const NO_RELATION: &str = "no_relation";

/// One subject–object pair in a text.
#[derive(Clone, Debug, PartialEq)]
pub struct RelationExample {
    /// The text.
    pub text: String,
    /// The subject's character span `[start, end)`.
    pub subject: (usize, usize),
    /// The object's character span.
    pub object: (usize, usize),
    /// The relation (`None` in prediction inputs).
    pub label: Option<String>,
    /// The line in the file (1-based).
    pub line: usize,
}

/// Reads relation rows; `need_label` makes a missing `label` an error.
pub fn read_relations(path: &Path, need_label: bool) -> Result<Vec<RelationExample>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (no, line) in text_lines(path, &bytes)? {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |msg: String| Error::Input {
            path: path.into(),
            line: no,
            msg,
        };
        let v: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let text = v
            .get("text")
            .and_then(|t| t.as_str())
            .ok_or_else(|| bad("missing string field `text`".into()))?;
        let span = |key: &str| entity_span(text, v.get(key), key).map_err(bad);
        let (subject, object) = (span("subject")?, span("object")?);
        if subject.0 < object.1 && object.0 < subject.1 {
            return Err(bad(format!(
                "subject {subject:?} and object {object:?} overlap: the markers cannot enclose both"
            )));
        }
        let label = match v.get("label") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            None | Some(serde_json::Value::Null) if !need_label => None,
            _ => return Err(bad("missing string field `label`".into())),
        };
        out.push(RelationExample {
            text: text.to_string(),
            subject,
            object,
            label,
            line: no,
        });
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

/// A `{"start", "end"}` span, or a string's first occurrence, as character offsets.
fn entity_span(
    text: &str,
    v: Option<&serde_json::Value>,
    key: &str,
) -> std::result::Result<(usize, usize), String> {
    let n = text.chars().count();
    match v {
        Some(serde_json::Value::String(s)) if !s.is_empty() => {
            let byte = text
                .find(s.as_str())
                .ok_or_else(|| format!("the {key} `{s}` is not in the text"))?;
            let start = text[..byte].chars().count();
            Ok((start, start + s.chars().count()))
        }
        Some(o @ serde_json::Value::Object(_)) => {
            let get = |k: &str| o.get(k).and_then(|x| x.as_u64()).map(|x| x as usize);
            match (get("start"), get("end")) {
                (Some(s), Some(e)) if s < e && e <= n => Ok((s, e)),
                (Some(s), Some(e)) => Err(format!(
                    "the {key} span [{s}, {e}) is empty or outside the text ({n} characters)"
                )),
                _ => Err(format!("the {key} needs integer `start` and `end`")),
            }
        }
        _ => Err(format!(
            "`{key}` must be a non-empty string or {{\"start\", \"end\"}}"
        )),
    }
}

/// The text with `markers` (`[E1]`, `[/E1]`, `[E2]`, `[/E2]`) around the subject and object.
pub fn marked_text(ex: &RelationExample, markers: &[String; 4]) -> String {
    let mut inserts = [
        (ex.subject.0, 0, &markers[0]),
        (ex.subject.1, 1, &markers[1]),
        (ex.object.0, 0, &markers[2]),
        (ex.object.1, 1, &markers[3]),
    ];
    // At one position an end marker comes before a start marker.
    inserts.sort_by_key(|&(pos, kind, _)| (pos, std::cmp::Reverse(kind)));
    let mut out = String::with_capacity(ex.text.len() + 24);
    let mut next = inserts.iter().peekable();
    for (i, c) in ex.text.chars().enumerate() {
        while let Some(&&(_, _, m)) = next.peek().filter(|x| x.0 == i) {
            out.push_str(m);
            next.next();
        }
        out.push(c);
    }
    for &(_, _, m) in next {
        out.push_str(m);
    }
    out
}

/// DuIE's JSON lines as relation rows: every `spo_list` triple whose subject and object are
/// in the text is a positive; up to `negatives` times as many pairs of the sentence's
/// entities without a triple are `no_relation` (drawn with `seed`). Returns the rows as JSON
/// lines and how many triples were skipped (an entity not found in its text).
pub fn duie_rows(
    path: &Path,
    negatives: f64,
    seed: u64,
) -> Result<(Vec<serde_json::Value>, usize)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let mut rng = Rng::new(seed);
    let (mut rows, mut skipped) = (Vec::new(), 0);
    for (no, line) in text_lines(path, &bytes)? {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| Error::Input {
            path: path.into(),
            line: no,
            msg: format!("not valid JSON: {e}"),
        })?;
        let text = v["text"].as_str().unwrap_or_default();
        let mut entities: Vec<String> = Vec::new();
        let mut related = std::collections::HashSet::new();
        for spo in v["spo_list"].as_array().into_iter().flatten() {
            let (s, o) = (
                spo["subject"].as_str().unwrap_or_default(),
                spo["object"].as_str().unwrap_or_default(),
            );
            let p = spo["predicate"].as_str().unwrap_or_default();
            if s.is_empty()
                || o.is_empty()
                || !text.contains(s)
                || !text.contains(o)
                || s.contains(o)
                || o.contains(s)
            {
                skipped += 1;
                continue;
            }
            rows.push(serde_json::json!({"text": text, "subject": s, "object": o, "label": p}));
            related.insert((s.to_string(), o.to_string()));
            for e in [s, o] {
                if !entities.iter().any(|x| x == e) {
                    entities.push(e.to_string());
                }
            }
        }
        let mut pairs: Vec<(String, String)> = entities
            .iter()
            .flat_map(|a| entities.iter().map(move |b| (a.clone(), b.clone())))
            .filter(|(a, b)| {
                a != b
                    && !a.contains(b.as_str())
                    && !b.contains(a.as_str())
                    && !related.contains(&(a.clone(), b.clone()))
            })
            .collect();
        rng.shuffle(&mut pairs);
        let want = (related.len() as f64 * negatives).round() as usize;
        for (s, o) in pairs.into_iter().take(want) {
            rows.push(
                serde_json::json!({"text": text, "subject": s, "object": o, "label": NO_RELATION}),
            );
        }
    }
    Ok((rows, skipped))
}
