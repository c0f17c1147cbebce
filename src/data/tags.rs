//! Entity tag schemes: BIO and BIOES tags (`B-PER`, `I-PER`, `E-PER`, `S-PER`, `O`),
//! conversion between them, repair of invalid BIO sequences, entity spans as seqeval's
//! default mode reads them, and the moves a tagger may make (for CRF decode constraints).

use serde::{Deserialize, Serialize};

/// How entity tags mark spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// `B-X` begins, `I-X` continues, `O` is outside.
    Bio,
    /// As BIO, plus `E-X` ends a span of two or more and `S-X` is a span of one.
    Bioes,
}

/// The prefix of a tag (`B`, `I`, `E`, `S`, or `O` for outside) and its type (`PER`).
/// BMES files' `M-` (middle) is read as `I-`.
pub fn split(tag: &str) -> (char, &str) {
    if tag == "O" {
        return ('O', "");
    }
    match tag.split_once(['-', '_']) {
        Some(("M", t)) => ('I', t),
        Some((p, t)) if p.len() == 1 => (p.chars().next().unwrap_or('O'), t),
        _ => ('?', tag),
    }
}

/// Why a tag is not valid in a scheme, or `None` when it is.
pub fn invalid(tag: &str, scheme: Scheme) -> Option<String> {
    let (p, t) = split(tag);
    let ok = match scheme {
        Scheme::Bio => matches!(p, 'B' | 'I' | 'O'),
        Scheme::Bioes => matches!(p, 'B' | 'I' | 'E' | 'S' | 'O'),
    };
    match (ok, p != 'O' && t.is_empty()) {
        (true, false) => None,
        _ => Some(format!(
            "tag `{tag}` is not a {scheme:?} tag (expected O or {} followed by `-TYPE`)",
            match scheme {
                Scheme::Bio => "B / I",
                Scheme::Bioes => "B / I / E / S",
            }
        )),
    }
}

/// Entity spans `(type, first, last + 1)` over tag positions, as seqeval's default mode
/// (conlleval) reads them: a span starts at `B`/`S`, or at an `I`/`E` whose type differs from
/// the running span's (or after `O`), and ends before `O`, `B`, `S` or a type change, and
/// after `E` / `S`.
pub fn entities(tags: &[String]) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut open: Option<(String, usize)> = None;
    for (i, tag) in tags.iter().enumerate() {
        let (p, t) = split(tag);
        let continues = matches!(p, 'I' | 'E') && open.as_ref().is_some_and(|(ty, _)| ty == t);
        if !continues {
            if let Some((ty, s)) = open.take() {
                out.push((ty, s, i));
            }
            if p != 'O' {
                open = Some((t.to_string(), i));
            }
        }
        if matches!(p, 'E' | 'S') {
            if let Some((ty, s)) = open.take() {
                out.push((ty, s, i + 1));
            }
        }
    }
    if let Some((ty, s)) = open {
        out.push((ty, s, tags.len()));
    }
    out
}

/// The tags of `len` positions holding `spans` `(type, first, last + 1)` (no overlaps).
pub fn from_entities(len: usize, spans: &[(String, usize, usize)], scheme: Scheme) -> Vec<String> {
    let mut tags = vec!["O".to_string(); len];
    for (ty, s, e) in spans {
        for (i, tag) in tags.iter_mut().enumerate().take(*e).skip(*s) {
            let p = match (scheme, i == *s, i + 1 == *e) {
                (Scheme::Bioes, true, true) => 'S',
                (Scheme::Bioes, false, true) => 'E',
                (_, true, _) => 'B',
                _ => 'I',
            };
            *tag = format!("{p}-{ty}");
        }
    }
    tags
}

/// `tags` rewritten in `to` (the same entities).
pub fn convert(tags: &[String], to: Scheme) -> Vec<String> {
    from_entities(tags.len(), &entities(tags), to)
}

/// A BIO sequence with each `I-X` that does not continue an `X` span (after `O`, at the
/// start, or after another type) turned into `B-X`; also the positions changed.
pub fn repair_bio(tags: &[String]) -> (Vec<String>, Vec<usize>) {
    let mut out = tags.to_vec();
    let mut changed = Vec::new();
    for i in 0..out.len() {
        let (p, t) = split(&out[i]);
        if p != 'I' {
            continue;
        }
        let prev_type = match i {
            0 => None,
            _ => Some(split(&out[i - 1])).filter(|(pp, _)| matches!(pp, 'B' | 'I')),
        };
        if prev_type.is_none_or(|(_, pt)| pt != t) {
            out[i] = format!("B-{t}");
            changed.push(i);
        }
    }
    (out, changed)
}

/// Whether tag `to` may follow tag `from` in `scheme` (`None`: the start or the end of a
/// sequence): the moves a CRF may make at decode time.
pub fn allowed(from: Option<&str>, to: Option<&str>, scheme: Scheme) -> bool {
    let (fp, ft) = from.map_or(('O', ""), split);
    let (tp, tt) = to.map_or(('O', ""), split);
    let inside = |p: char| match scheme {
        Scheme::Bio => p == 'I',
        Scheme::Bioes => matches!(p, 'I' | 'E'),
    };
    // Does the span `from` opened still need its end (BIOES: after B or I comes I or E)?
    let open = scheme == Scheme::Bioes && matches!(fp, 'B' | 'I');
    match (inside(tp), open) {
        (true, _) => matches!(fp, 'B' | 'I') && ft == tt,
        (false, true) => false,
        (false, false) => true,
    }
}
