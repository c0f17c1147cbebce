//! Plain-text corpora for language modelling: documents read from `.txt` (one per line) or
//! the text field of CSV/TSV/JSONL, tokenized, joined with an end-of-text token and packed
//! into fixed-length blocks (HF `run_clm`'s `group_texts`: the remainder is dropped).

use super::dataset::{read_labelled, DataConfig};
use crate::error::{Error, Result};
use std::path::Path;

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
