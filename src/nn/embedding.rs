//! Lookup table with HF's `weight [rows, dim]` layout.

use super::params::Params;
use crate::error::{Error, Result};
use candle_core::Tensor;

/// Maps ids to rows of a learnable table.
#[derive(Clone, Debug)]
pub struct Embedding {
    weight: Tensor,
    name: String,
}

impl Embedding {
    /// Loads a `[rows, dim]` table.
    pub fn load(p: &Params, rows: usize, dim: usize) -> Result<Self> {
        Ok(Embedding {
            weight: p.get((rows, dim), "weight")?,
            name: p.full_name("weight"),
        })
    }

    /// Builds from an explicit table.
    pub fn new(weight: Tensor, name: &str) -> Self {
        Embedding {
            weight,
            name: name.to_string(),
        }
    }

    /// The table.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// Rows of the table.
    pub fn rows(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Looks up `ids` (any shape, u32/i64); an out-of-range id is an error naming the table.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let max = ids
            .flatten_all()?
            .to_dtype(candle_core::DType::I64)?
            .max(0)?
            .to_scalar::<i64>()?;
        if max as usize >= self.rows()
            || ids
                .flatten_all()?
                .to_dtype(candle_core::DType::I64)?
                .min(0)?
                .to_scalar::<i64>()?
                < 0
        {
            return Err(Error::Invalid(format!(
                "id {max} is out of range for `{}` with {} rows (is the tokenizer from another model?)",
                self.name,
                self.rows()
            )));
        }
        let mut out_dims = ids.dims().to_vec();
        out_dims.push(self.weight.dims()[1]);
        let flat = ids.flatten_all()?.to_dtype(candle_core::DType::U32)?;
        Ok(self.weight.index_select(&flat, 0)?.reshape(out_dims)?)
    }
}
