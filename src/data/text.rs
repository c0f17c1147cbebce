//! Plain-text corpora for language modelling: documents read from `.txt` (one per line) or
//! the text field of CSV/TSV/JSONL, tokenized, joined with an end-of-text token and packed
//! into fixed-length blocks (HF `run_clm`'s `group_texts`: the remainder is dropped).

use super::dataset::{read_labelled, DataConfig};
use crate::error::{Error, Result};
use crate::rng::Rng;
use std::path::{Path, PathBuf};

/// The documents of a file: non-empty lines of a `.txt`, else the text field of each record.
pub fn read_documents(path: &Path, cfg: &DataConfig) -> Result<Vec<String>> {
    if path.extension().is_some_and(|e| e == "txt") {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            Error::Input {
                path: path.into(),
                line: good.iter().filter(|b| **b == b'\n').count() + 1,
                msg: "invalid UTF-8".into(),
            }
        })?;
        let docs: Vec<String> = text
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        if docs.is_empty() {
            return Err(Error::Input {
                path: path.into(),
                line: 1,
                msg: "no text in the file".into(),
            });
        }
        return Ok(docs);
    }
    Ok(read_labelled(path, cfg, false)?
        .into_iter()
        .map(|e| e.text)
        .collect())
}

/// Train / dev / test documents: `data.train` (+ `dev`, `test`) files, or `data.file` split
/// by document with `data.split` ratios (shuffled with `data.split_seed`).
pub fn read_text_splits(d: &DataConfig) -> Result<[Vec<String>; 3]> {
    let path_of = |p: &PathBuf| crate::assets::resolve_file(p);
    if let Some(train) = &d.train {
        let read = |p: Option<&PathBuf>| -> Result<Vec<String>> {
            p.map(|p| read_documents(&path_of(p)?, d))
                .transpose()
                .map(Option::unwrap_or_default)
        };
        return Ok([
            read(Some(train))?,
            read(d.dev.as_ref())?,
            read(d.test.as_ref())?,
        ]);
    }
    let file = d.file.as_ref().ok_or_else(|| {
        Error::Invalid("set data.train (and data.dev / data.test) or data.file".into())
    })?;
    let mut all = read_documents(&path_of(file)?, d)?;
    Rng::new(d.split_seed).shuffle(&mut all);
    let n = all.len() as f64;
    let n_dev = (n * d.split[1]).round() as usize;
    let n_test = (n * d.split[2]).round() as usize;
    let test = all.split_off(all.len() - n_test.min(all.len()));
    let dev = all.split_off(all.len() - n_dev.min(all.len()));
    Ok([all, dev, test])
}

/// Concatenates tokenized documents, each followed by `eos` (when given), and cuts the
/// stream into blocks of `block` tokens.
pub fn pack_blocks(docs: &[Vec<u32>], eos: Option<u32>, block: usize) -> Vec<Vec<u32>> {
    let mut stream = Vec::with_capacity(docs.iter().map(|d| d.len() + 1).sum());
    for d in docs {
        stream.extend_from_slice(d);
        stream.extend(eos);
    }
    stream
        .chunks_exact(block.max(1))
        .map(<[u32]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_joins_documents_with_eos_and_drops_the_remainder() {
        let blocks = pack_blocks(&[vec![1, 2, 3], vec![4, 5]], Some(9), 3);
        assert_eq!(blocks, vec![vec![1, 2, 3], vec![9, 4, 5]]);
    }
}
