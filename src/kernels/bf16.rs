//! bf16 weight storage for inference (`--dtype bf16`): a linear layer keeps its weight as
//! bf16 (`[out, in]`, for the few-row kernel) and the GEMM's 16-column panels as bf16, half
//! the memory of f32; compute stays f32. Each value is widened exactly (its bits become the
//! upper half of an f32) in registers or in an L1 panel, so a layer computes what the f32
//! kernels compute on the bf16-rounded weight, bit for bit.

use super::gemm::{self as sgemm, skinny, Strided};
use super::Gelu;
use candle_core::{CpuStorage, Result, Tensor};
use half::bf16;

/// The bits of a contiguous CPU bf16 tensor, handed to `f` (read-locked, no copy).
pub fn with_bf16_bits<T>(t: &Tensor, f: impl FnOnce(&[u16]) -> Result<T>) -> Result<T> {
    let (st, l) = t.storage_and_layout();
    let candle_core::Storage::Cpu(CpuStorage::BF16(data)) = &*st else {
        candle_core::bail!("bf16 kernel: expected a CPU bf16 tensor");
    };
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("bf16 kernel: expected a contiguous tensor");
    };
    let bits: &[bf16] = &data[a..b];
    // SAFETY: `bf16` is a `repr(transparent)` wrapper of its `u16` bits.
    f(unsafe { std::slice::from_raw_parts(bits.as_ptr().cast::<u16>(), bits.len()) })
}

/// A frozen weight's bf16 GEMM copy: `wᵀ` in the packed GEMM's panels, as bits.
#[derive(Debug)]
pub struct Bf16Panels {
    panels: Vec<u16>,
    n: usize,
    k: usize,
}

impl Bf16Panels {
    /// Panels of `w [n, k]` (bf16 bits; no further rounding).
    pub fn new(w: &[u16], n: usize, k: usize) -> Self {
        let mut wide = vec![0f32; w.len()];
        sgemm::widen_bf16(w, &mut wide);
        Bf16Panels {
            panels: sgemm::pack_weight_t_bf16(&wide, n, k),
            n,
            k,
        }
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        self.n
    }

    /// Input features.
    pub fn cols(&self) -> usize {
        self.k
    }

    /// `act(x [rows, k] · wᵀ + b)` with `w` = this weight, `w_rows` its `[n, k]` bits (the
    /// few-row kernel streams those; more rows run the packed GEMM on the panels).
    pub fn linear(
        &self,
        w_rows: &[u16],
        (x, rows): (&[f32], usize),
        b: &[f32],
        act: Option<Gelu>,
    ) -> Result<Vec<f32>> {
        let (n, k) = (self.n, self.k);
        if x.len() != rows * k || b.len() != n || w_rows.len() != n * k {
            candle_core::bail!(
                "bf16 linear: x of {} values for [{rows}, {k}], bias {}, weight {}",
                x.len(),
                b.len(),
                w_rows.len()
            );
        }
        let mut out = if rows <= skinny::MAX_ROWS {
            skinny::skinny_linear_bf16(x, rows, k, w_rows, b)
        } else {
            let mut out = Vec::with_capacity(rows * n);
            let xs = Strided {
                ptr: x.as_ptr(),
                rs: k,
                cs: 1,
            };
            let threads = super::linear::threads(rows * n * k);
            // SAFETY: x covers rows·k values, the panels [k, n], out rows·n; the GEMM writes
            // every output (bias + product) before `set_len` exposes them.
            unsafe {
                let bias = (false, Some(b));
                let out_ptr = out.as_mut_ptr();
                let (panels, tile) = (sgemm::PackedB::Bf16(&self.panels), sgemm::Tile::best());
                let c = (out_ptr, n);
                sgemm::gemm_packed_on(tile, (rows, n, k), xs, panels, c, 1.0, bias, threads);
                out.set_len(rows * n);
            }
            out
        };
        if let Some(act) = act {
            act.forward_in_place(&mut out);
        }
        Ok(out)
    }
}
