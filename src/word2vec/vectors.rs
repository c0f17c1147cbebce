//! Word vectors: the word2vec text and binary formats (as the C tool writes them and gensim's
//! `load_word2vec_format` reads them), cosine nearest neighbours and analogies (3CosAdd, as
//! gensim's `most_similar(positive=[b, c], negative=[a])`), and analogy accuracy on a
//! question file in the C tool's `questions-words.txt` format.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// Words and their vectors.
pub struct WordVectors {
    words: Vec<String>,
    index: HashMap<String, usize>,
    dim: usize,
    data: Vec<f32>,
    /// Unit-length copies, for cosines.
    unit: Vec<f32>,
}

/// A word and its cosine to the query.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Neighbour {
    /// The word.
    pub word: String,
    /// Cosine similarity.
    pub cosine: f32,
}

/// Analogy accuracy over a question file.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Analogies {
    /// Questions answered right.
    pub correct: usize,
    /// Questions whose four words are all in the vocabulary.
    pub attempted: usize,
    /// Questions skipped for a word outside the vocabulary.
    pub skipped: usize,
    /// `correct / attempted`.
    pub accuracy: f64,
    /// Per `: section`: (section, correct, attempted).
    pub sections: Vec<(String, usize, usize)>,
}

impl WordVectors {
    /// `data`: `words.len() × dim` values, row per word.
    pub fn new(words: Vec<String>, dim: usize, data: Vec<f32>) -> Result<Self> {
        if dim == 0 || data.len() != words.len() * dim {
            return Err(Error::Invalid(format!(
                "{} values for {} words of dimension {dim}",
                data.len(),
                words.len()
            )));
        }
        let index = (words.iter().enumerate())
            .map(|(i, w)| (w.clone(), i))
            .collect();
        let mut unit = data.clone();
        for row in unit.chunks_exact_mut(dim) {
            let n = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            if n > 0.0 {
                row.iter_mut().for_each(|v| *v /= n);
            }
        }
        Ok(WordVectors {
            words,
            index,
            dim,
            data,
            unit,
        })
    }

    /// The words, in file order.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// Vector size.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The vector of `word`.
    pub fn vector(&self, word: &str) -> Option<&[f32]> {
        let i = *self.index.get(word)?;
        Some(&self.data[i * self.dim..(i + 1) * self.dim])
    }

    /// Writes the word2vec binary format when `path` ends in `.bin`, else the text format;
    /// atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let binary = path.extension().is_some_and(|e| e == "bin");
        let mut out = format!("{} {}\n", self.words.len(), self.dim).into_bytes();
        for (w, row) in self.words.iter().zip(self.data.chunks_exact(self.dim)) {
            out.extend_from_slice(w.as_bytes());
            if binary {
                out.push(b' ');
                row.iter()
                    .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
            } else {
                for v in row {
                    out.extend_from_slice(format!(" {v}").as_bytes());
                }
            }
            out.push(b'\n');
        }
        crate::util::write_atomic(path, &out)
    }

    /// Reads either format (binary when the file is not text after its header line).
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let bad = |m: String| Error::Invalid(format!("{}: {m}", path.display()));
        let nl = bytes
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| bad("no header line".into()))?;
        let header =
            std::str::from_utf8(&bytes[..nl]).map_err(|_| bad("header is not text".into()))?;
        let nums: Vec<usize> = header
            .split_whitespace()
            .filter_map(|t| t.parse().ok())
            .collect();
        let [count, dim] = nums[..] else {
            return Err(bad(format!(
                "header {header:?} is not `<words> <dimension>`"
            )));
        };
        let body = &bytes[nl + 1..];
        let text_body = std::str::from_utf8(body).ok();
        let (words, data) = match text_body {
            Some(t) if path.extension().is_none_or(|e| e != "bin") => parse_text(t, count, dim),
            _ => parse_binary(body, count, dim),
        }
        .map_err(bad)?;
        Self::new(words, dim, data)
    }

    /// The `k` words closest to `word` by cosine (itself excluded).
    pub fn most_similar(&self, word: &str, k: usize) -> Result<Vec<Neighbour>> {
        let i = self.id(word)?;
        let q = self.unit_row(i).to_vec();
        Ok(self.nearest(&q, &[i], k))
    }

    /// `a` is to `b` as `c` is to …: the `k` words closest to `unit(b) − unit(a) + unit(c)`,
    /// the three excluded.
    pub fn analogy(&self, a: &str, b: &str, c: &str, k: usize) -> Result<Vec<Neighbour>> {
        let (ia, ib, ic) = (self.id(a)?, self.id(b)?, self.id(c)?);
        let mut q: Vec<f32> = (0..self.dim)
            .map(|j| self.unit_row(ib)[j] - self.unit_row(ia)[j] + self.unit_row(ic)[j])
            .collect();
        let n = q.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        q.iter_mut().for_each(|v| *v /= n);
        Ok(self.nearest(&q, &[ia, ib, ic], k))
    }

    /// Accuracy on a question file: `: section` lines, then `a b c d` lines (d expected as
    /// the top answer of `analogy(a, b, c)`); questions with a word outside the vocabulary
    /// are skipped and counted.
    pub fn evaluate_analogies(&self, path: &Path) -> Result<Analogies> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut r = Analogies::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if let Some(name) = line.strip_prefix(':') {
                r.sections.push((name.trim().to_string(), 0, 0));
                continue;
            }
            let w: Vec<&str> = line.split_whitespace().collect();
            if w.is_empty() {
                continue;
            }
            let [a, b, c, d] = w[..] else {
                return Err(Error::Invalid(format!(
                    "{}:{}: expected four words `a b c d`, got {line:?}",
                    path.display(),
                    n + 1
                )));
            };
            if [a, b, c, d].iter().any(|x| !self.index.contains_key(*x)) {
                r.skipped += 1;
                continue;
            }
            let right = self
                .analogy(a, b, c, 1)?
                .first()
                .is_some_and(|x| x.word == d);
            r.attempted += 1;
            r.correct += usize::from(right);
            if r.sections.is_empty() {
                r.sections.push((String::new(), 0, 0));
            }
            if let Some(s) = r.sections.last_mut() {
                s.1 += usize::from(right);
                s.2 += 1;
            }
        }
        r.accuracy = r.correct as f64 / r.attempted.max(1) as f64;
        Ok(r)
    }

    fn id(&self, word: &str) -> Result<usize> {
        self.index
            .get(word)
            .copied()
            .ok_or_else(|| Error::Invalid(format!("{word:?} is not in the vocabulary")))
    }

    fn unit_row(&self, i: usize) -> &[f32] {
        &self.unit[i * self.dim..(i + 1) * self.dim]
    }

    fn nearest(&self, q: &[f32], exclude: &[usize], k: usize) -> Vec<Neighbour> {
        let mut scored: Vec<(f32, usize)> = (0..self.words.len())
            .filter(|i| !exclude.contains(i))
            .map(|i| (self.unit_row(i).iter().zip(q).map(|(a, b)| a * b).sum(), i))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        (scored.into_iter().take(k))
            .map(|(cosine, i)| Neighbour {
                word: self.words[i].clone(),
                cosine,
            })
            .collect()
    }
}

fn parse_text(
    body: &str,
    count: usize,
    dim: usize,
) -> std::result::Result<(Vec<String>, Vec<f32>), String> {
    let (mut words, mut data) = (Vec::with_capacity(count), Vec::with_capacity(count * dim));
    for (n, line) in body.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let mut parts = line.split_whitespace();
        let word = parts.next().unwrap_or_default();
        let before = data.len();
        for p in parts {
            data.push(
                p.parse::<f32>()
                    .map_err(|_| format!("line {}: {p:?} is not a number", n + 2))?,
            );
        }
        if data.len() - before != dim {
            return Err(format!(
                "line {}: {} values, the header says {dim}",
                n + 2,
                data.len() - before
            ));
        }
        words.push(word.to_string());
    }
    if words.len() != count {
        return Err(format!("{} words, the header says {count}", words.len()));
    }
    Ok((words, data))
}

fn parse_binary(
    mut body: &[u8],
    count: usize,
    dim: usize,
) -> std::result::Result<(Vec<String>, Vec<f32>), String> {
    let (mut words, mut data) = (Vec::with_capacity(count), Vec::with_capacity(count * dim));
    for n in 0..count {
        while body.first() == Some(&b'\n') {
            body = &body[1..];
        }
        let sp = body
            .iter()
            .position(|&b| b == b' ')
            .ok_or(format!("word {n}: truncated"))?;
        let word =
            std::str::from_utf8(&body[..sp]).map_err(|_| format!("word {n} is not UTF-8"))?;
        let vals = body
            .get(sp + 1..sp + 1 + 4 * dim)
            .ok_or(format!("word {n}: truncated"))?;
        data.extend(
            vals.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        words.push(word.to_string());
        body = &body[sp + 1 + 4 * dim..];
    }
    Ok((words, data))
}
