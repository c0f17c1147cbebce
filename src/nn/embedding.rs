//! Lookup table with HF's `weight [rows, dim]` layout.

use super::params::Params;
use crate::error::{Error, Result};
use candle_core::{DType, Tensor};

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

    /// Full HF name of the table's weight.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Rows of the table.
    pub fn rows(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Looks up `ids` (any shape, u32/i64); an out-of-range id is an error naming the table.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let flat = ids.flatten_all()?.to_dtype(DType::I64)?;
        let min = flat.min(0)?.to_scalar::<i64>()?;
        let max = flat.max(0)?.to_scalar::<i64>()?;
        if min < 0 || max as usize >= self.rows() {
            let bad = if min < 0 { min } else { max };
            return Err(Error::Invalid(format!(
                "id {bad} is out of range for `{}` with {} rows (is the tokenizer from another model?)",
                self.name,
                self.rows()
            )));
        }
        let mut out_dims = ids.dims().to_vec();
        out_dims.push(self.weight.dims()[1]);
        let flat = flat.to_dtype(DType::U32)?;
        Ok(self.weight.index_select(&flat, 0)?.reshape(out_dims)?)
    }
}
