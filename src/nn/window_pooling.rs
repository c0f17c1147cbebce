//! One vector per long text from the vectors of its windows (see `data::windows`): their
//! mean, their per-dimension max, or an attention over them (a learned score per window,
//! softmax within the text). Each text's windows are consecutive rows; a text's vector
//! depends only on its own rows, so batching never changes it.

use super::{Linear, Params};
use crate::error::{Error, Result};
use crate::kernels;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// How window vectors are combined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowPool {
    /// The mean of the windows.
    #[default]
    Mean,
    /// The maximum per dimension.
    Max,
    /// `softmax(score(w))`-weighted sum, `score` a learned `Linear(hidden → 1)`.
    Attention,
}

/// A [`WindowPool`] with its parameters.
pub enum WindowPooler {
    /// The mean of the windows.
    Mean,
    /// The maximum per dimension.
    Max,
    /// Softmax over the learned window scores `score(w)`.
    Attention(Linear),
}

impl WindowPooler {
    /// The pooler over `dim`-wide window vectors; the attention score comes from `p`
    /// (`score.weight`, `score.bias`) when present, else is initialised normal(0, `std`).
    pub fn new(kind: WindowPool, p: &Params, dim: usize, std: f64) -> Result<Self> {
        Ok(match kind {
            WindowPool::Mean => WindowPooler::Mean,
            WindowPool::Max => WindowPooler::Max,
            WindowPool::Attention => {
                WindowPooler::Attention(Linear::load_or_init(&p.pp("score"), dim, 1, std)?)
            }
        })
    }

    /// `x [windows, dim]` → `[texts, dim]`, text `b` owning the next `counts[b]` rows.
    pub fn forward(&self, x: &Tensor, counts: &[usize]) -> Result<Tensor> {
        let rows = x.dim(0)?;
        if counts.iter().sum::<usize>() != rows || counts.contains(&0) {
            return Err(Error::Invalid(format!(
                "window pooling: counts {counts:?} do not partition {rows} windows"
            )));
        }
        let member = membership(counts, rows, x.device())?;
        match self {
            WindowPooler::Mean => {
                let n: Vec<f32> = counts.iter().map(|&c| c as f32).collect();
                let n = Tensor::from_vec(n, (counts.len(), 1), x.device())?;
                Ok(member.broadcast_div(&n)?.matmul(x)?)
            }
            WindowPooler::Max => {
                // Rows of other texts sit 1e30 below every real value.
                let bias = ((&member - 1.0)? * 1e30)?.unsqueeze(2)?;
                Ok(x.unsqueeze(0)?.broadcast_add(&bias)?.max(1)?)
            }
            WindowPooler::Attention(score) => {
                let s = score.forward(x)?.t()?; // [1, windows]
                let b = counts.len();
                let s = s.broadcast_as((b, rows))?.reshape((b, 1, 1, rows))?;
                let w = kernels::masked_softmax(&s, &member, 1.0)?.reshape((b, rows))?;
                Ok(w.matmul(x)?)
            }
        }
    }
}

/// `[texts, windows]`: 1 where the window belongs to the text.
fn membership(counts: &[usize], rows: usize, device: &Device) -> Result<Tensor> {
    let mut m = vec![0f32; counts.len() * rows];
    let mut start = 0;
    for (b, &c) in counts.iter().enumerate() {
        m[b * rows + start..b * rows + start + c].fill(1.0);
        start += c;
    }
    Ok(Tensor::from_vec(m, (counts.len(), rows), device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x() -> Tensor {
        let v = vec![1f32, -2.0, 3.0, 4.0, 5.0, -6.0];
        Tensor::from_vec(v, (3, 2), &Device::Cpu).unwrap()
    }

    #[test]
    fn mean_and_max_stay_within_each_text() {
        let p = Params::fresh(&Device::Cpu, false);
        let mean = WindowPooler::new(WindowPool::Mean, &p, 2, 0.02).unwrap();
        let out = mean
            .forward(&x(), &[2, 1])
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(out, vec![vec![2.0, 1.0], vec![5.0, -6.0]]);
        let max = WindowPooler::new(WindowPool::Max, &p, 2, 0.02).unwrap();
        let out = max
            .forward(&x(), &[1, 2])
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(out, vec![vec![1.0, -2.0], vec![5.0, 4.0]]);
    }

    #[test]
    fn attention_over_one_window_is_that_window() {
        let p = Params::fresh(&Device::Cpu, false);
        let att = WindowPooler::new(WindowPool::Attention, &p, 2, 0.5).unwrap();
        let out = att.forward(&x(), &[1, 1, 1]).unwrap();
        assert_eq!(out.to_vec2::<f32>().unwrap(), x().to_vec2::<f32>().unwrap());
        let two = att.forward(&x(), &[3]).unwrap().to_vec2::<f32>().unwrap();
        assert!(two[0][0] > 1.0 && two[0][0] < 5.0, "a convex mix: {two:?}");
    }

    #[test]
    fn counts_that_do_not_cover_the_rows_are_refused() {
        let p = Params::fresh(&Device::Cpu, false);
        let mean = WindowPooler::new(WindowPool::Mean, &p, 2, 0.02).unwrap();
        assert!(mean.forward(&x(), &[2]).is_err());
        assert!(mean.forward(&x(), &[3, 0]).is_err());
    }
}
