//! The decoding cache and the decoding forward pass: tokens appended to the keys and values
//! of earlier ones, so each step runs only the new tokens.

use super::{position_of, Gpt2Model};
use crate::error::{Error, Result};
use crate::kernels::{self, KvBuffer, KvDtype};
use candle_core::Tensor;

/// Keys, values, masks and next positions of every sequence being decoded.
pub struct Gpt2Cache {
    layers: Vec<KvBuffer>,
    /// Per sequence, 1 for every cached token and 0 for padding.
    mask: Vec<Vec<f32>>,
    /// Per sequence, the position id of its next real token.
    next_position: Vec<u32>,
}

impl Gpt2Cache {
    /// Cached positions per sequence (padding included).
    pub fn len(&self) -> usize {
        self.mask.first().map_or(0, Vec::len)
    }

    /// True before the first token.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sequences in the cache.
    pub fn rows(&self) -> usize {
        self.mask.len()
    }

    /// How keys and values are stored (`None` for a model without layers).
    pub fn kv_dtype(&self) -> Option<KvDtype> {
        self.layers.first().map(KvBuffer::dtype)
    }

    /// Keeps sequence `order[i]` as sequence `i` (beam search).
    pub fn reorder(&mut self, order: &[usize]) {
        for l in &mut self.layers {
            l.reorder(order);
        }
        self.mask = order.iter().map(|&i| self.mask[i].clone()).collect();
        self.next_position = order.iter().map(|&i| self.next_position[i]).collect();
    }
}

impl Gpt2Model {
    /// An empty cache for `rows` sequences: f32, or bf16 for the int8 decoder (see
    /// [`KvDtype::Bf16`]).
    pub fn new_cache(&self, rows: usize) -> Gpt2Cache {
        let c = &self.config;
        let dtype = if self.is_int8() {
            KvDtype::Bf16
        } else {
            KvDtype::F32
        };
        Gpt2Cache {
            layers: (0..c.n_layer)
                .map(|_| KvBuffer::with_dtype(rows, c.n_head, c.head_dim(), dtype))
                .collect(),
            mask: vec![Vec::new(); rows],
            next_position: vec![0; rows],
        }
    }

    /// Appends `ids` (`rows × t`, equal lengths; `mask` 0 marks left padding) to the cache
    /// and returns the final hidden state of each row's last token, `[rows, n_embd]`.
    pub fn forward_cached(
        &self,
        ids: &[Vec<u32>],
        mask: &[Vec<f32>],
        cache: &mut Gpt2Cache,
    ) -> Result<Tensor> {
        kernels::on_pool(|| self.forward_cached_here(ids, mask, cache))
    }

    fn forward_cached_here(
        &self,
        ids: &[Vec<u32>],
        mask: &[Vec<f32>],
        cache: &mut Gpt2Cache,
    ) -> Result<Tensor> {
        let rows = cache.rows();
        let t = ids.first().map_or(0, Vec::len);
        if ids.len() != rows || mask.len() != rows || t == 0 {
            return Err(Error::Invalid(format!(
                "forward_cached: {} id rows and {} mask rows for a cache of {rows} sequences (need equal, non-empty rows)",
                ids.len(),
                mask.len()
            )));
        }
        let mut positions = Vec::with_capacity(rows * t);
        for r in 0..rows {
            if ids[r].len() != t || mask[r].len() != t {
                return Err(Error::Invalid(
                    "forward_cached: rows of different lengths".into(),
                ));
            }
            let mut next = cache.next_position[r];
            for &m in &mask[r] {
                positions.push(position_of(m, &mut next));
            }
            self.check_positions(next)?;
            cache.next_position[r] = next;
            cache.mask[r].extend_from_slice(&mask[r]);
        }
        let dev = self.wte.weight().device();
        let flat: Vec<u32> = ids.concat();
        let ids = Tensor::from_vec(flat, (rows, t), dev)?;
        let positions = Tensor::from_vec(positions, (rows, t), dev)?;
        let mut x = (self.wte.forward(&ids)? + self.wpe.forward(&positions)?)?;
        let key_mask: Vec<f32> = cache.mask.concat();
        for (block, kv) in self.h.iter().zip(&mut cache.layers) {
            x = block.forward_cached(&x, kv, &key_mask)?;
        }
        let last = x.narrow(1, t - 1, 1)?.squeeze(1)?;
        self.ln_f.forward(&last)
    }
}
