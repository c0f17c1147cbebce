//! `y = x · Wᵀ + b` for a few rows of `x` (token-by-token decoding: one row per sequence).
//!
//! With 1–16 rows a linear layer is a matrix–vector product: each weight is used once per
//! row, so the time is the time to stream `W` from memory. GEMM libraries pack `W` into
//! tiles first (an extra pass over it) and tune for many rows; measured on GPT-2-small
//! decoding (AVX2, 2 threads) the `gemm` crate reached 13 GB/s of weight traffic where the
//! machine reads 32 GB/s. This kernel walks `W [out, in]` row by row exactly once, keeps the
//! rows of `x` in L1, and accumulates each output with independent FMA chains.

use rayon::prelude::*;

/// Most rows this kernel takes; above it the GEMM's packing pays off.
pub const MAX_ROWS: usize = 16;
/// Output features per parallel task (a multiple of the 3-row register block).
const TASK_OUTPUTS: usize = 48;
const LANES: usize = 8;

/// `x [rows, k]`, `w [n, k]`, `b [n]` → `[rows, n]`; `rows ≤ MAX_ROWS`, all contiguous.
pub fn skinny_linear(x: &[f32], rows: usize, k: usize, w: &[f32], b: &[f32]) -> Vec<f32> {
    let n = b.len();
    // The AVX2 path reads through raw pointers: the shapes must hold in release builds too.
    assert!(
        rows <= MAX_ROWS && x.len() == rows * k && w.len() == n * k,
        "skinny_linear shapes"
    );
    if rows == 0 || n == 0 {
        return Vec::new();
    }
    // outᵀ [n, rows]: each task owns a block of outputs.
    let mut out_t = vec![0f32; n * rows];
    out_t
        .par_chunks_mut(TASK_OUTPUTS * rows)
        .enumerate()
        .for_each(|(task, block)| {
            let first = task * TASK_OUTPUTS;
            let outputs = block.len() / rows;
            let w_block = &w[first * k..(first + outputs) * k];
            block_dots(w_block, x, rows, k, block);
        });
    let mut out = vec![0f32; rows * n];
    for (o, col) in out_t.chunks_exact(rows).enumerate() {
        for (r, v) in col.iter().enumerate() {
            out[r * n + o] = v + b[o];
        }
    }
    out
}

/// `out[o·rows + r] = w[o] · x[r]` for every row `o` of `w` and `r` of `x`.
fn block_dots(w: &[f32], x: &[f32], rows: usize, k: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if super::simd::isa() != super::simd::Isa::Baseline {
            // SAFETY: AVX2 and FMA were detected at run time.
            unsafe { avx2::block_dots(w, x, rows, k, out) };
            return;
        }
    }
    for (o, dst) in out.chunks_exact_mut(rows).enumerate() {
        for (r, d) in dst.iter_mut().enumerate() {
            *d = w[o * k..][..k]
                .iter()
                .zip(&x[r * k..][..k])
                .map(|(a, b)| a * b)
                .sum();
        }
    }
}

/// Explicit AVX2 + FMA register blocking. (Written with auto-vectorised lane arrays, LLVM
/// shuffled and spilled the accumulators: 3× slower than streaming the weights.)
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::LANES;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn block_dots(w: &[f32], x: &[f32], rows: usize, k: usize, out: &mut [f32]) {
        let n = w.len() / k;
        // 3 weight rows × up to 4 input rows: 12 accumulators, 7 loads per 12 FMAs. One
        // input row is memory-bound: 4 accumulators per weight row keep FMAs in flight.
        let mut o = 0;
        while o < n {
            let p = (n - o).min(3);
            let mut r = 0;
            while r < rows {
                let take = (rows - r).min(4);
                let (wo, xr) = (&w[o * k..], &x[r * k..]);
                let dst = &mut out[o * rows + r..];
                match (p, take) {
                    (3, 4) => dot::<3, 4, 1>(wo, xr, k, rows, dst),
                    (3, 3) => dot::<3, 3, 1>(wo, xr, k, rows, dst),
                    (3, 2) => dot::<3, 2, 2>(wo, xr, k, rows, dst),
                    (3, _) => dot::<3, 1, 4>(wo, xr, k, rows, dst),
                    (2, 4) => dot::<2, 4, 1>(wo, xr, k, rows, dst),
                    (2, 3) => dot::<2, 3, 1>(wo, xr, k, rows, dst),
                    (2, 2) => dot::<2, 2, 2>(wo, xr, k, rows, dst),
                    (2, _) => dot::<2, 1, 4>(wo, xr, k, rows, dst),
                    (_, 4) => dot::<1, 4, 2>(wo, xr, k, rows, dst),
                    (_, 3) => dot::<1, 3, 2>(wo, xr, k, rows, dst),
                    (_, 2) => dot::<1, 2, 4>(wo, xr, k, rows, dst),
                    _ => dot::<1, 1, 4>(wo, xr, k, rows, dst),
                }
                r += take;
            }
            o += p;
        }
    }

    /// `P` weight rows × `R` input rows with `U` accumulators each:
    /// `out[p·stride + r] = w[p] · x[r]`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::needless_range_loop)] // indices into register arrays read clearer here
    unsafe fn dot<const P: usize, const R: usize, const U: usize>(
        w: &[f32],
        x: &[f32],
        k: usize,
        stride: usize,
        out: &mut [f32],
    ) {
        let step = LANES * U;
        let main = k - k % step;
        let mut acc = [[[_mm256_setzero_ps(); U]; R]; P];
        let (wp, xp) = (w.as_ptr(), x.as_ptr());
        let mut c = 0;
        while c < main {
            for u in 0..U {
                let at = c + u * LANES;
                // P weight vectors + 1 input vector + P·R accumulators ≤ 16 registers.
                let ws: [__m256; P] = std::array::from_fn(|p| _mm256_loadu_ps(wp.add(p * k + at)));
                for r in 0..R {
                    let xv = _mm256_loadu_ps(xp.add(r * k + at));
                    for p in 0..P {
                        acc[p][r][u] = _mm256_fmadd_ps(ws[p], xv, acc[p][r][u]);
                    }
                }
            }
            c += step;
        }
        for p in 0..P {
            for r in 0..R {
                let mut v = acc[p][r][0];
                for a in &acc[p][r][1..] {
                    v = _mm256_add_ps(v, *a);
                }
                let mut lanes = [0f32; LANES];
                _mm256_storeu_ps(lanes.as_mut_ptr(), v);
                let mut s: f32 = lanes.iter().sum();
                for i in main..k {
                    s += w[p * k + i] * x[r * k + i];
                }
                out[p * stride + r] = s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skinny_linear_of_no_rows_is_empty() {
        assert!(skinny_linear(&[], 0, 4, &[0.0; 8], &[0.0; 2]).is_empty());
    }

    #[test]
    fn skinny_linear_matches_a_plain_loop() {
        for (rows, k, n) in [
            (1, 13, 70),
            (3, 64, 33),
            (8, 100, 65),
            (11, 40, 7),
            (16, 24, 40),
        ] {
            let x: Vec<f32> = (0..rows * k)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 48.0)
                .collect();
            let b: Vec<f32> = (0..n).map(|i| i as f32 / 10.0).collect();
            let y = skinny_linear(&x, rows, k, &w, &b);
            for r in 0..rows {
                for o in 0..n {
                    let want: f32 = b[o] + (0..k).map(|i| x[r * k + i] * w[o * k + i]).sum::<f32>();
                    assert!(
                        (y[r * n + o] - want).abs() < 1e-4,
                        "{rows}x{k}x{n} [{r},{o}]"
                    );
                }
            }
        }
    }
}
