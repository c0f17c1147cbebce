//! Position tables: the fixed sinusoidal table (Transformer / bert4torch's
//! `get_sinusoid_encoding_table`) and the two ways to lengthen a trained table past the
//! positions it was trained on (copying it, or the hierarchical decomposition of Su
//! Jianlin's "层次分解位置编码", as bert4keras and the notes do).

use crate::error::{Error, Result};
use candle_core::{Device, Tensor};

/// `pe[pos, 2i] = sin(pos / 10000^(2i/d))`, `pe[pos, 2i+1] = cos(pos / 10000^(2i/d))`: the
/// Transformer's table, interleaved as bert4torch writes it. The angle is rounded to f32 at
/// the same steps as torch's f32 arithmetic (at position 500 that rounding alone moves a value
/// by ~3e-5), so the table equals the reference's, not a more exact one.
pub fn sinusoidal_table(rows: usize, dim: usize, device: &Device) -> Result<Tensor> {
    let step = (-(10000f64.ln()) / dim as f64) as f32;
    let mut data = vec![0f32; rows * dim];
    for i in (0..dim).step_by(2) {
        let freq = ((i as f32 * step) as f64).exp() as f32;
        for pos in 0..rows {
            let angle = (pos as f32 * freq) as f64;
            data[pos * dim + i] = angle.sin() as f32;
            if i + 1 < dim {
                data[pos * dim + i + 1] = angle.cos() as f32;
            }
        }
    }
    Ok(Tensor::from_vec(data, (rows, dim), device)?)
}

/// How to fill the rows a table gains.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Extension {
    /// Row `k` is trained row `k mod n`: the table repeated.
    Copy,
    /// `u = (p − α·p[0]) / (1 − α)`, `q[i·n + j] = α·u[i] + (1 − α)·u[j]`: the first `n` rows
    /// stay exactly the trained ones and every later position is distinct (up to `n²`).
    Hierarchical {
        /// Weight of the coarse ("which block of n") part; in (0, 1), 0.4 in the paper.
        alpha: f64,
    },
}

impl Extension {
    /// Checks the parameters against a table of `n` rows grown to `to`.
    pub fn validate(&self, n: usize, to: usize) -> std::result::Result<(), String> {
        if n == 0 {
            return Err("the position table has no rows".into());
        }
        if to <= n {
            return Err(format!(
                "--to {to} must be larger than the current table of {n} positions"
            ));
        }
        if let Extension::Hierarchical { alpha } = *self {
            if !(alpha > 0.0 && alpha < 1.0) {
                return Err(format!("--alpha {alpha} must lie strictly between 0 and 1"));
            }
            if to > n * n {
                return Err(format!(
                    "--to {to}: the hierarchical decomposition of {n} positions reaches at most {}",
                    n * n
                ));
            }
        }
        Ok(())
    }
}

/// `table [n, d]` grown to `[to, d]` by `how`.
pub fn extend_table(table: &Tensor, to: usize, how: Extension) -> Result<Tensor> {
    let (n, _) = table.dims2()?;
    how.validate(n, to).map_err(Error::Invalid)?;
    let idx = |f: &dyn Fn(usize) -> usize| -> Result<Tensor> {
        let ids: Vec<u32> = (0..to).map(|k| f(k) as u32).collect();
        Ok(Tensor::from_vec(ids, to, table.device())?)
    };
    match how {
        Extension::Copy => Ok(table.index_select(&idx(&|k| k % n)?, 0)?),
        Extension::Hierarchical { alpha } => {
            let first = table.narrow(0, 0, 1)?;
            let u = ((table - first.affine(alpha, 0.0)?.broadcast_as(table.shape())?)?
                / (1.0 - alpha))?;
            let coarse = u.index_select(&idx(&|k| k / n)?, 0)?.affine(alpha, 0.0)?;
            let fine = u
                .index_select(&idx(&|k| k % n)?, 0)?
                .affine(1.0 - alpha, 0.0)?;
            Ok((coarse + fine)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(n: usize, d: usize) -> Tensor {
        let v: Vec<f32> = (0..n * d)
            .map(|i| ((i * 37 % 11) as f32) / 7.0 - 0.6)
            .collect();
        Tensor::from_vec(v, (n, d), &Device::Cpu).unwrap()
    }

    #[test]
    fn hierarchical_keeps_the_trained_rows_and_gives_distinct_new_ones() {
        let p = table(4, 3);
        let q = extend_table(&p, 16, Extension::Hierarchical { alpha: 0.4 }).unwrap();
        let (p, q) = (p.to_vec2::<f32>().unwrap(), q.to_vec2::<f32>().unwrap());
        for (a, b) in p.iter().zip(&q) {
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() < 1e-6);
            }
        }
        for i in 0..16 {
            for j in 0..i {
                assert_ne!(q[i], q[j], "rows {i} and {j} coincide");
            }
        }
    }

    #[test]
    fn copy_repeats_the_table() {
        let p = table(3, 2);
        let q = extend_table(&p, 7, Extension::Copy)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let p = p.to_vec2::<f32>().unwrap();
        assert_eq!(q[6], p[0]);
        assert_eq!(q[4], p[1]);
    }

    #[test]
    fn shrinking_or_a_bad_alpha_is_refused() {
        let p = table(4, 2);
        let e = extend_table(&p, 4, Extension::Copy)
            .unwrap_err()
            .to_string();
        assert!(e.contains("larger than the current table of 4"), "{e}");
        let e = extend_table(&p, 8, Extension::Hierarchical { alpha: 1.0 })
            .unwrap_err()
            .to_string();
        assert!(e.contains("--alpha"), "{e}");
        let e = extend_table(&p, 17, Extension::Hierarchical { alpha: 0.4 })
            .unwrap_err()
            .to_string();
        assert!(e.contains("at most 16"), "{e}");
    }

    #[test]
    fn sinusoidal_rows_start_with_sin_and_cos_of_the_position() {
        let t = sinusoidal_table(3, 4, &Device::Cpu)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(t[0], vec![0.0, 1.0, 0.0, 1.0]);
        assert!((t[2][0] - 2f32.sin()).abs() < 1e-7);
        assert!((t[2][1] - 2f32.cos()).abs() < 1e-7);
        assert!((t[2][2] - (2.0f32 / 100.0).sin()).abs() < 1e-7);
    }
}
