//! Texts longer than the model reads, as overlapping windows: the tokens between the leading
//! and trailing special tokens are cut into pieces that each fill a window of `max_length`
//! once the specials are put back around them, each piece starting `stride` tokens before
//! the previous one ends (HF's `stride` with `return_overflowing_tokens=True`).

use crate::tokenize::Encoding;

/// How a long text is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowOptions {
    /// Tokens each window shares with the one before it.
    pub stride: usize,
    /// At most this many windows per text; the rest of a longer text is not read.
    pub max_windows: usize,
}

impl WindowOptions {
    /// Checks the options against a window of `max_length` tokens holding `specials` special
    /// tokens (`[CLS]` and `[SEP]`: 2).
    pub fn validate(&self, max_length: usize, specials: usize) -> Result<(), String> {
        let width = max_length.saturating_sub(specials);
        if self.max_windows == 0 {
            return Err("task.windows.max_windows must be at least 1".into());
        }
        if width == 0 || self.stride >= width {
            return Err(format!(
                "task.windows.stride {} must be smaller than the {width} text tokens a window \
                 of data.max_length {max_length} holds",
                self.stride
            ));
        }
        Ok(())
    }
}

/// The windows of one untruncated single-text encoding (one window when it fits).
pub fn split_windows(enc: &Encoding, max_length: usize, opts: &WindowOptions) -> Vec<Encoding> {
    let n = enc.input_ids.len();
    if n <= max_length {
        return vec![enc.clone()];
    }
    let special = &enc.special_tokens_mask;
    let head = special.iter().take_while(|&&s| s == 1).count();
    let tail = special
        .iter()
        .rev()
        .take_while(|&&s| s == 1)
        .count()
        .min(n - head);
    let body = head..n - tail;
    let width = max_length.saturating_sub(head + tail).max(1);
    let step = width.saturating_sub(opts.stride).max(1);
    let mut out = Vec::new();
    let mut start = body.start;
    while out.len() < opts.max_windows {
        let end = (start + width).min(body.end);
        let rows: Vec<usize> = (0..head).chain(start..end).chain(body.end..n).collect();
        out.push(pick(enc, &rows));
        if end == body.end {
            break;
        }
        start += step;
    }
    out
}

fn pick(enc: &Encoding, rows: &[usize]) -> Encoding {
    let take = |v: &[u32]| rows.iter().map(|&i| v[i]).collect();
    Encoding {
        input_ids: take(&enc.input_ids),
        token_type_ids: take(&enc.token_type_ids),
        attention_mask: take(&enc.attention_mask),
        special_tokens_mask: take(&enc.special_tokens_mask),
        offsets: rows.iter().map(|&i| enc.offsets[i]).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[CLS] 10 11 … [SEP]` with `n` text tokens.
    fn enc(n: u32) -> Encoding {
        let ids: Vec<u32> = std::iter::once(101)
            .chain(10..10 + n)
            .chain(std::iter::once(102))
            .collect();
        let len = ids.len();
        let mut special = vec![0; len];
        special[0] = 1;
        special[len - 1] = 1;
        Encoding {
            token_type_ids: vec![0; len],
            attention_mask: vec![1; len],
            offsets: (0..len).map(|i| (i, i + 1)).collect(),
            special_tokens_mask: special,
            input_ids: ids,
        }
    }

    #[test]
    fn windows_cover_the_text_with_the_stride_as_overlap() {
        let opts = WindowOptions {
            stride: 2,
            max_windows: 10,
        };
        let w = split_windows(&enc(12), 8, &opts);
        let ids: Vec<Vec<u32>> = w.iter().map(|e| e.input_ids.clone()).collect();
        assert_eq!(
            ids,
            vec![
                vec![101, 10, 11, 12, 13, 14, 15, 102],
                vec![101, 14, 15, 16, 17, 18, 19, 102],
                vec![101, 18, 19, 20, 21, 102],
            ]
        );
        assert_eq!(w[1].special_tokens_mask, vec![1, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(w[1].offsets[1], (5, 6), "offsets follow their tokens");
    }

    #[test]
    fn a_text_that_fits_is_one_window_and_the_cap_holds() {
        let opts = WindowOptions {
            stride: 0,
            max_windows: 2,
        };
        assert_eq!(split_windows(&enc(6), 8, &opts), vec![enc(6)]);
        let w = split_windows(&enc(40), 8, &opts);
        assert_eq!(w.len(), 2);
        assert_eq!(w[1].input_ids[1], 16);
    }

    #[test]
    fn a_stride_as_wide_as_the_window_is_refused() {
        let opts = WindowOptions {
            stride: 6,
            max_windows: 2,
        };
        let e = opts.validate(8, 2).unwrap_err();
        assert!(
            e.contains("task.windows.stride 6") && e.contains("6 text tokens"),
            "{e}"
        );
        assert!(opts.validate(9, 2).is_ok());
    }
}
