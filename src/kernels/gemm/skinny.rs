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
pub(crate) const TASK_OUTPUTS: usize = 48;
const LANES: usize = 8;

/// `x [rows, k]`, `w [n, k]`, `b [n]` → `[rows, n]`; `rows ≤ MAX_ROWS`, all contiguous.
pub fn skinny_linear(x: &[f32], rows: usize, k: usize, w: &[f32], b: &[f32]) -> Vec<f32> {
    // The AVX2 path reads through raw pointers: the shapes must hold in release builds too.
    assert!(w.len() == b.len() * k, "skinny_linear shapes");
    skinny_by(x, rows, k, b, |first, block| {
        let outputs = block.len() / rows;
        block_dots(&w[first * k..(first + outputs) * k], x, rows, k, block)
    })
}

/// [`skinny_linear`] with `w [n, k]` as bf16 bits, widened in registers (half the weight
/// traffic; the products and sums of f32 on the bf16 values).
pub fn skinny_linear_bf16(x: &[f32], rows: usize, k: usize, w: &[u16], b: &[f32]) -> Vec<f32> {
    assert!(w.len() == b.len() * k, "skinny_linear_bf16 shapes");
    skinny_by(x, rows, k, b, |first, block| {
        let outputs = block.len() / rows;
        let w = &w[first * k..(first + outputs) * k];
        if block_dots_narrow(w, x, rows, k, block).is_none() {
            let mut wide = vec![0f32; w.len()];
            super::widen_bf16(w, &mut wide);
            block_dots(&wide, x, rows, k, block);
        }
    })
}

/// `x · Wᵀ + b` with `dots(first, block)` filling `block[o·rows + r] = w[first + o] · x[r]`
/// for a block of outputs (in parallel over blocks).
fn skinny_by(
    x: &[f32],
    rows: usize,
    k: usize,
    b: &[f32],
    dots: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    let n = b.len();
    assert!(
        rows <= MAX_ROWS && x.len() == rows * k,
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
        .for_each(|(task, block)| dots(task * TASK_OUTPUTS, block));
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
        if avx2_available() {
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

/// Whether the explicit AVX2 kernels run (else the plain loop above).
pub(crate) fn avx2_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        crate::kernels::simd::isa() != crate::kernels::simd::Isa::Baseline
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The weight element types the AVX2 kernel reads: f32, bf16 bits (`u16`), int8.
#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::Weight as KernelWeight;
/// The weight element types the AVX2 kernel reads (none on this architecture).
#[cfg(not(target_arch = "x86_64"))]
pub(crate) trait KernelWeight {}
#[cfg(not(target_arch = "x86_64"))]
impl KernelWeight for u16 {}
#[cfg(not(target_arch = "x86_64"))]
impl KernelWeight for i8 {}

/// `out[o·rows + r] = w[o] · x[r]` with `w` in a narrow type, converted to f32 in registers:
/// bf16 for [`crate::kernels::GreedyScreen`]'s screen, int8 (unscaled: the caller applies
/// each output's scale) for [`crate::kernels::Int8Weight`]; `None` without AVX2.
pub(crate) fn block_dots_narrow<T: KernelWeight>(
    w: &[T],
    x: &[f32],
    rows: usize,
    k: usize,
    out: &mut [f32],
) -> Option<()> {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2_available() {
            // SAFETY: AVX2 and FMA were detected at run time.
            unsafe { avx2::block_dots(w, x, rows, k, out) };
            return Some(());
        }
    }
    let _ = (w, x, rows, k, out);
    None
}

/// The value [`skinny_linear`] computes for `w_row · x_row` (before the bias) when `x_row`
/// is in a group of `group` input rows (`rows` are taken 4 at a time; the last group holds
/// the rest), bit for bit: the same unroll, summation order and reduction. `None` without
/// AVX2.
pub(crate) fn skinny_dot(w_row: &[f32], x_row: &[f32], group: usize) -> Option<f32> {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2_available() && w_row.len() == x_row.len() {
            let mut out = [0f32];
            // SAFETY: AVX2 and FMA were detected at run time; one row of each, same length.
            unsafe { avx2::single_dot(w_row, x_row, group, &mut out) };
            return Some(out[0]);
        }
    }
    let _ = (w_row, x_row, group);
    None
}

/// Explicit AVX2 + FMA register blocking. (Written with auto-vectorised lane arrays, LLVM
/// shuffled and spilled the accumulators: 3× slower than streaming the weights.)
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::LANES;
    use std::arch::x86_64::*;

    /// A weight element type: f32, bf16 kept as its bits (`u16`), or int8.
    pub trait Weight: Copy {
        /// Weight rows per register block: each is a separate read stream. 3 for f32 (fewer
        /// input loads per FMA); 1 for bf16, whose rows are half as long: 3 interleaved
        /// streams of 1.5 KB read at 14 GB/s there, one stream at 22 GB/s (LM head of GPT-2
        /// small, batch 1, 2 threads, measured).
        const BLOCK_ROWS: usize;
        /// Weight rows per register block for a call with `rows` input rows.
        fn block_rows(rows: usize) -> usize {
            let _ = rows;
            Self::BLOCK_ROWS
        }
        /// Loads 8 consecutive weights as f32 lanes.
        ///
        /// # Safety
        /// `p` must be valid for 8 reads; AVX2 must be available.
        unsafe fn load8(p: *const Self) -> __m256;
        fn to_f32(self) -> f32;
    }

    impl Weight for f32 {
        const BLOCK_ROWS: usize = 3;
        #[inline(always)]
        unsafe fn load8(p: *const f32) -> __m256 {
            _mm256_loadu_ps(p)
        }
        #[inline(always)]
        fn to_f32(self) -> f32 {
            self
        }
    }

    impl Weight for u16 {
        const BLOCK_ROWS: usize = 1;
        #[inline(always)]
        unsafe fn load8(p: *const u16) -> __m256 {
            // bf16 → f32: the bits become the upper half of the f32.
            let wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast()));
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(wide))
        }
        #[inline(always)]
        fn to_f32(self) -> f32 {
            f32::from_bits((self as u32) << 16)
        }
    }

    impl Weight for i8 {
        // Rows a quarter as long as f32's: one stream reads fastest (as bf16) while the
        // weights bound the time. From 4 input rows on, the FMAs' operand loads do: 2 weight
        // rows share each input load (GPT-2-small decoding at batch 8, 2 threads: 2.8 s
        // against 3.9 s with 1 row, 3.8 s with 3, and 3.3 s with 1 row × groups of 8).
        const BLOCK_ROWS: usize = 1;
        fn block_rows(rows: usize) -> usize {
            if rows >= 4 {
                2
            } else {
                1
            }
        }
        #[inline(always)]
        unsafe fn load8(p: *const i8) -> __m256 {
            _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p.cast())))
        }
        #[inline(always)]
        fn to_f32(self) -> f32 {
            self as f32
        }
    }

    /// Accumulators per (weight row, input row) pair for a group of `take` input rows. It
    /// depends on `take` only, so an output's value does not depend on which weight rows
    /// share its register block ([`super::skinny_dot`] relies on it).
    macro_rules! by_group {
        ($take:expr, $f:ident::<$p:literal>($($a:expr),*)) => {
            match $take {
                4 => $f::<_, $p, 4, 1>($($a),*),
                3 => $f::<_, $p, 3, 1>($($a),*),
                2 => $f::<_, $p, 2, 2>($($a),*),
                _ => $f::<_, $p, 1, 4>($($a),*),
            }
        };
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn block_dots<T: Weight>(
        w: &[T],
        x: &[f32],
        rows: usize,
        k: usize,
        out: &mut [f32],
    ) {
        let n = w.len() / k;
        // 3 weight rows × up to 4 input rows: 12 accumulators, 7 loads per 12 FMAs. One
        // input row is memory-bound: 4 accumulators per weight row keep FMAs in flight.
        let mut o = 0;
        while o < n {
            let p = (n - o).min(T::block_rows(rows));
            let mut r = 0;
            while r < rows {
                let take = (rows - r).min(4);
                let (wo, xr) = (&w[o * k..], &x[r * k..]);
                let dst = &mut out[o * rows + r..];
                match p {
                    3 => by_group!(take, dot::<3>(wo, xr, k, rows, dst)),
                    2 => by_group!(take, dot::<2>(wo, xr, k, rows, dst)),
                    _ => by_group!(take, dot::<1>(wo, xr, k, rows, dst)),
                }
                r += take;
            }
            o += p;
        }
    }

    /// One weight row · one input row with the accumulators of a group of `take` rows.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn single_dot(w: &[f32], x: &[f32], take: usize, out: &mut [f32]) {
        let k = w.len();
        match take {
            4 | 3 => dot::<f32, 1, 1, 1>(w, x, k, 1, out),
            2 => dot::<f32, 1, 1, 2>(w, x, k, 1, out),
            _ => dot::<f32, 1, 1, 4>(w, x, k, 1, out),
        }
    }

    /// `P` weight rows × `R` input rows with `U` accumulators each:
    /// `out[p·stride + r] = w[p] · x[r]`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::needless_range_loop)] // indices into register arrays read clearer here
    unsafe fn dot<T: Weight, const P: usize, const R: usize, const U: usize>(
        w: &[T],
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
                let ws: [__m256; P] = std::array::from_fn(|p| T::load8(wp.add(p * k + at)));
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
                    s += w[p * k + i].to_f32() * x[r * k + i];
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

    /// The greedy screen recomputes single logits with `skinny_dot`: they must be the very
    /// bits `skinny_linear` produces, for every row grouping and weight-row block position.
    #[test]
    fn skinny_dot_reproduces_skinny_linear_bit_for_bit() {
        if !avx2_available() {
            assert_eq!(skinny_dot(&[1.0], &[1.0], 1), None);
            return;
        }
        let (k, n) = (203, 100); // k: a vector tail; n: 100 = 33 blocks of 3 + 1
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 53 % 97) as f32).sin()).collect();
        for rows in 1..=MAX_ROWS {
            let x: Vec<f32> = (0..rows * k)
                .map(|i| ((i * 37 % 101) as f32).cos())
                .collect();
            let y = skinny_linear(&x, rows, k, &w, &vec![0.0; n]);
            for r in 0..rows {
                let group = (rows - (r - r % 4)).min(4);
                for o in 0..n {
                    let d = skinny_dot(&w[o * k..][..k], &x[r * k..][..k], group).unwrap();
                    assert_eq!(d.to_bits(), y[r * n + o].to_bits(), "rows {rows} [{r},{o}]");
                }
            }
        }
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
