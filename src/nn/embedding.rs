//! Lookup table with HF's `weight [rows, dim]` layout.

use super::params::Params;
use crate::error::{Error, Result};
use candle_core::{DType, Tensor};

/// Maps ids to rows of a learnable table.
#[derive(Clone, Debug)]
pub struct Embedding {
    weight: Tensor,
    name: String,
    /// Rows after the table's own (ids `rows..rows + extra`), kept apart so they can train
    /// while the table stays frozen: P-tuning's learned prompt tokens.
    extra: Option<Tensor>,
}

impl Embedding {
    /// Loads a `[rows, dim]` table.
    pub fn load(p: &Params, rows: usize, dim: usize) -> Result<Self> {
        Ok(Embedding {
            weight: p.get((rows, dim), "weight")?,
            name: p.full_name("weight"),
            extra: None,
        })
    }

    /// Builds from an explicit table.
    pub fn new(weight: Tensor, name: &str) -> Self {
        Embedding {
            weight,
            name: name.to_string(),
            extra: None,
        }
    }

    /// The table.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// Full HF name of the table's weight.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Rows of the table (without [`Self::set_extra_rows`]'s).
    pub fn rows(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Appends `extra` `[n, dim]` as ids `rows..rows + n` (a separate tensor, so it can
    /// train on its own).
    pub fn set_extra_rows(&mut self, extra: Tensor) -> Result<()> {
        let dim = self.weight.dims()[1];
        if extra.dims().len() != 2 || extra.dims()[1] != dim {
            return Err(Error::Invalid(format!(
                "extra rows for `{}` must be [n, {dim}], got {:?}",
                self.name,
                extra.dims()
            )));
        }
        self.extra = Some(extra);
        Ok(())
    }

    fn all_rows(&self) -> usize {
        self.rows() + self.extra.as_ref().map_or(0, |e| e.dims()[0])
    }

    /// Looks up `ids` (any shape, u32/i64); an out-of-range id is an error naming the table.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let flat = ids.flatten_all()?.to_dtype(DType::I64)?;
        let min = flat.min(0)?.to_scalar::<i64>()?;
        let max = flat.max(0)?.to_scalar::<i64>()?;
        if min < 0 || max as usize >= self.all_rows() {
            let bad = if min < 0 { min } else { max };
            return Err(Error::Invalid(format!(
                "id {bad} is out of range for `{}` with {} rows (is the tokenizer from another model?)",
                self.name,
                self.all_rows()
            )));
        }
        let mut out_dims = ids.dims().to_vec();
        out_dims.push(self.weight.dims()[1]);
        let rows = match &self.extra {
            Some(extra) if max as usize >= self.rows() => self.lookup_split(&flat, extra)?,
            _ => self.weight.index_select(&flat.to_dtype(DType::U32)?, 0)?,
        };
        let rows = match rows.dtype() {
            DType::BF16 => rows.to_dtype(DType::F32)?,
            _ => rows,
        };
        Ok(rows.reshape(out_dims)?)
    }

    /// Rows of ids that may fall in the table or in `extra`: both looked up (out-of-place
    /// ids clamped to row 0) and each id's row picked.
    fn lookup_split(&self, flat: &Tensor, extra: &Tensor) -> Result<Tensor> {
        let n = self.rows() as i64;
        let ids = flat.to_vec1::<i64>()?;
        let own: Vec<u32> = ids
            .iter()
            .map(|&i| if i < n { i as u32 } else { 0 })
            .collect();
        let more: Vec<u32> = ids
            .iter()
            .map(|&i| if i < n { 0 } else { (i - n) as u32 })
            .collect();
        let pick: Vec<u8> = ids.iter().map(|&i| u8::from(i >= n)).collect();
        let dev = self.weight.device();
        let a = (self.weight.index_select(&Tensor::new(own, dev)?, 0)?).to_dtype(extra.dtype())?;
        let b = extra.index_select(&Tensor::new(more, dev)?, 0)?;
        let pick = Tensor::new(pick, dev)?
            .unsqueeze(1)?
            .broadcast_as(a.shape())?;
        Ok(pick.where_cond(&b, &a)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn extra_rows_follow_the_table_and_get_their_own_gradients() {
        let dev = Device::Cpu;
        let table = Var::from_tensor(
            &Tensor::arange(0f32, 12.0, &dev)
                .unwrap()
                .reshape((4, 3))
                .unwrap(),
        )
        .unwrap();
        let extra = Var::from_tensor(
            &Tensor::new(&[[100f32, 101., 102.], [200., 201., 202.]], &dev).unwrap(),
        )
        .unwrap();
        let mut e = Embedding::new(table.as_tensor().clone(), "w");
        e.set_extra_rows(extra.as_tensor().clone()).unwrap();
        let ids = Tensor::new(&[[5u32, 1], [4, 3]], &dev).unwrap();
        let out = e.forward(&ids).unwrap();
        let all = Tensor::cat(&[table.as_tensor(), extra.as_tensor()], 0).unwrap();
        let want = all
            .index_select(&ids.flatten_all().unwrap(), 0)
            .unwrap()
            .reshape((2, 2, 3))
            .unwrap();
        assert_eq!(
            out.to_vec3::<f32>().unwrap(),
            want.to_vec3::<f32>().unwrap()
        );
        let grads = out.sum_all().unwrap().backward().unwrap();
        let g_extra = grads
            .get(extra.as_tensor())
            .unwrap()
            .sum(1)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(
            g_extra,
            [3.0, 3.0],
            "each extra row looked up once, 3 columns"
        );
        let g_table = grads
            .get(table.as_tensor())
            .unwrap()
            .sum(1)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        // Ids 1 and 3 once each; row 0 stands in for the extra ids but gets no gradient.
        assert_eq!(g_table, [0.0, 3.0, 0.0, 3.0]);
        let err = e
            .forward(&Tensor::new(&[6u32], &dev).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("6 rows"), "{err}");
    }
}
