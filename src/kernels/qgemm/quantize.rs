//! Per-row (per-token) quantisation of activations for [`super::gemm`]: each row gets an
//! asymmetric grid over its range [min(x, 0), max(x, 0)], `x ≈ s·(q − z)` with `q` in
//! [0, Q]. Codes are bytes (7-bit, `Q` = 127; 8-bit, `Q` = 255, where VNNI multiplies
//! them exactly) or i16 (12-bit, `Q` = 4095 where the sums allow it, see
//! [`wide_qmax`]; and 8-bit codes on CPUs without VNNI, for the same sums).

use super::row::{row_codes, Code};
use super::tiles::{MR, MR_SHORT};
use crate::kernels::common::filled_by;
use rayon::prelude::*;

/// Largest 7-bit code (see the parent module's docs for why 7 bits, not 8).
const QMAX_U7: u16 = 127;
/// Largest 8-bit code.
const QMAX_U8: u16 = 255;
/// Largest wide code: 12 bits, as fine as the activations need (an f32 layer's answers on
/// Pang & Lee, docs/benchmarks.md) and exact in i32 sums up to ~4k inputs.
const QMAX_WIDE: u16 = 4095;

/// Which activation codes a dynamically quantised layer uses (its weights are int8 either
/// way).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CodeWidth {
    /// 7-bit codes in bytes: `vpmaddubsw` (AVX2) / `vpdpbusd` (VNNI), the fastest on AVX2.
    U7,
    /// 8-bit codes: bytes on AVX-512 VNNI or AVX-VNNI (`vpdpbusd` multiplies u8 by s8
    /// with no saturating step, as fast as 7-bit codes there, half their rounding);
    /// elsewhere in i16 on the 12-bit path's tiles (its speed, the same integer sums).
    U8,
    /// 12-bit codes in i16 (`vpmaddwd` on AVX2; with VNNI split into low and high bytes
    /// for two `vpdpbusd`): 32× finer steps for the same exact integer sums; on Pang & Lee the
    /// classifier keeps its f32 accuracy, where 7-bit codes lose 0.75 points. The cost:
    /// ~20 % more tile time than 7-bit codes on AVX2, 1.6–1.8× 8-bit codes' time on VNNI
    /// (docs/benchmarks.md has the runs).
    #[default]
    Wide,
}

impl CodeWidth {
    /// The width of `bits`-bit codes: 7, 8 or 12.
    pub fn from_bits(bits: u32) -> Option<Self> {
        match bits {
            7 => Some(CodeWidth::U7),
            8 => Some(CodeWidth::U8),
            12 => Some(CodeWidth::Wide),
            _ => None,
        }
    }

    /// Bits per code: 7, 8 or 12 (the inverse of [`Self::from_bits`]).
    pub fn bits(self) -> u32 {
        match self {
            CodeWidth::U7 => 7,
            CodeWidth::U8 => 8,
            CodeWidth::Wide => 12,
        }
    }
}

/// The codes of a batch of rows: bytes (7-bit, or 8-bit where VNNI multiplies them), i16,
/// or wide codes split into bytes for VNNI.
pub(super) enum Codes {
    Bytes(Vec<u8>),
    Wide(Vec<i16>),
    /// Wide codes `c = 256·h + l` as bytes, per row and group of 4 depths
    /// `[l0 l1 l2 l3 h0 h1 h2 h3]` (2·kp bytes a row): `vpdpbusd` multiplies each half by
    /// the int8 panel as it is, where `vpdpwssd` needs the panel sign-extended to i16
    /// first (the conversions held the 12-bit VNNI tile to ~37 % of the int8 peak).
    Split(Vec<u8>),
}

impl Codes {
    /// The codes as levels, row-major `[rows, kp]`.
    #[cfg(test)]
    pub(super) fn levels(&self, kp: usize) -> Vec<i32> {
        match self {
            Codes::Bytes(q) => q.iter().map(|v| *v as i32).collect(),
            Codes::Wide(q) => q.iter().map(|v| *v as i32).collect(),
            Codes::Split(q) => (0..q.len() / 2)
                .map(|i| {
                    let at = (i / kp) * 2 * kp + (i % kp) / 4 * 8 + i % 4;
                    q[at] as i32 + 256 * q[at + 4] as i32
                })
                .collect(),
        }
    }
}

/// One row of wide codes (`kp` of them) in [`Codes::Split`]'s byte layout (`2·kp` bytes):
/// per group, the little-endian bytes `[l0 h0 l1 h1 l2 h2 l3 h3]` reordered to
/// `[l0 l1 l2 l3 h0 h1 h2 h3]` (codes are in [0, 4095], so both halves are bytes).
pub(super) fn split_row(row: &[i16], out: &mut [u8]) {
    assert_eq!(out.len(), 2 * row.len(), "split_row sizes");
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::simd::isa() != crate::kernels::simd::Isa::Baseline {
        // SAFETY: AVX2 is present; the sizes were checked above.
        done = unsafe { split_row_avx2(row, out) };
    }
    for (og, g) in out[2 * done..]
        .chunks_exact_mut(8)
        .zip(row[done..].chunks_exact(4))
    {
        for (i, c) in g.iter().enumerate() {
            (og[i], og[4 + i]) = ((*c & 0xff) as u8, (*c >> 8) as u8);
        }
    }
}

/// [`split_row`] 16 codes at a time with one byte shuffle; returns the codes done.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn split_row_avx2(row: &[i16], out: &mut [u8]) -> usize {
    use std::arch::x86_64::*;
    let order = _mm256_setr_epi8(
        0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15, //
        0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15,
    );
    let body = row.len() / 16 * 16;
    for i in (0..body).step_by(16) {
        let v = _mm256_loadu_si256(row.as_ptr().add(i) as *const __m256i);
        let s = _mm256_shuffle_epi8(v, order);
        _mm256_storeu_si256(out.as_mut_ptr().add(2 * i) as *mut __m256i, s);
    }
    body
}

/// Rows of activations quantised per row, padded to whole register tiles and depth
/// groups of 4.
pub struct QuantRows {
    pub(super) codes: Codes,
    pub(super) scale: Vec<f32>,
    pub(super) zero: Vec<i32>,
    pub(super) rows: usize,
    pub(super) kp: usize,
    /// The largest code: byte codes above 127 need a tile without a saturating step.
    pub(super) qmax: u16,
}

/// The largest wide code for sums over `kp` depths: every partial and final sum
/// `Σ q·w` (|q| ≤ Q, |w| ≤ 127) must fit in i32, so `Q ≤ i32::MAX / (127·kp)`, taken as
/// `2^b − 1` and at most [`QMAX_WIDE`] (12 bits up to 4128 inputs, e.g. BERT-large's FFN).
pub(super) fn wide_qmax(kp: usize) -> u16 {
    let cap = (i32::MAX as u64 / (127 * kp.max(1) as u64)).min(QMAX_WIDE as u64);
    // 2^b − 1 ≤ cap (cap ≥ 1 for any kp below 16.9 M inputs).
    let bits = 64 - (cap + 1).leading_zeros() - 1;
    ((1u64 << bits) - 1).max(1) as u16
}

/// Quantises `x [rows, k] · diag(inv)` (each input channel scaled first: SmoothQuant's
/// migration, see [`crate::kernels::Int8Weight::quantize_smoothed`]; `None` for no scaling)
/// row by row: `s = (max − min) / Q` over the row and 0, `z = round(−min / s)`,
/// `q = clamp(round(x / s) + z, 0, Q)`. A row of zeros gets `s = 1, z = 0`.
pub fn quantize_rows(
    x: &[f32],
    rows: usize,
    k: usize,
    inv: Option<&[f32]>,
    width: CodeWidth,
) -> QuantRows {
    quantize_rows_with(x, rows, k, inv, width, true)
}

/// [`quantize_rows`] with the AVX2 code (`avx2`, where present) or the plain one.
fn quantize_rows_with(
    x: &[f32],
    rows: usize,
    k: usize,
    inv: Option<&[f32]>,
    width: CodeWidth,
    avx2: bool,
) -> QuantRows {
    let avx2 = avx2 && crate::kernels::simd::isa() != crate::kernels::simd::Isa::Baseline;
    let kp = k.div_ceil(4) * 4;
    // Whole tiles of either height (a multiple of both).
    let padded = rows.div_ceil(MR * MR_SHORT / 2) * (MR * MR_SHORT / 2);
    let mut scale = vec![1f32; padded];
    let mut zero = vec![0i32; padded];
    let g = Grid {
        x,
        inv,
        rows,
        k,
        kp,
        padded,
        avx2,
    };
    let rows_out = (&mut scale[..], &mut zero[..]);
    // Sums over very long rows shrink 8-bit codes as they shrink 12-bit ones.
    let (vnni, qmax) = match width {
        CodeWidth::U7 => (false, QMAX_U7),
        CodeWidth::U8 => (super::tiles::has_byte_dot(), QMAX_U8.min(wide_qmax(kp))),
        CodeWidth::Wide => (super::tiles::has_byte_dot(), wide_qmax(kp)),
    };
    let codes = match (width, vnni) {
        (CodeWidth::U7, _) | (CodeWidth::U8, true) => Codes::Bytes(codes_of(g, qmax, rows_out)),
        (CodeWidth::Wide, true) => Codes::Split(split_codes_of(g, qmax, rows_out)),
        _ => Codes::Wide(codes_of(g, qmax, rows_out)),
    };
    QuantRows {
        codes,
        scale,
        zero,
        rows,
        kp,
        qmax,
    }
}

/// What quantising a batch of rows reads: `x [rows, k]` (scaled by `inv` per input
/// channel), its codes padded to `[padded, kp]`, AVX2 or not.
#[derive(Clone, Copy)]
struct Grid<'a> {
    x: &'a [f32],
    inv: Option<&'a [f32]>,
    rows: usize,
    k: usize,
    kp: usize,
    padded: usize,
    avx2: bool,
}

impl Grid<'_> {
    /// Row `r`'s codes (up to `qmax`) into `qr` (`kp` of them), its scale and zero point.
    fn row_codes<T: Code>(self, r: usize, qmax: u16, qr: &mut [T], sz: (&mut f32, &mut i32)) {
        row_codes(
            &self.x[r * self.k..][..self.k],
            self.inv,
            qmax,
            self.avx2,
            qr,
            sz,
        )
    }

    /// `padded` rows of `len` codes: row `r < rows` from `write(scratch, r, row, (s, z))`
    /// in parallel (each task's `scratch` from `init`), the padding rows zero.
    ///
    /// # Safety
    /// `write` must write every element of its row.
    unsafe fn rows_by<T: Copy + Default + Send, S>(
        self,
        len: usize,
        (scale, zero): (&mut [f32], &mut [i32]),
        init: impl Fn() -> S + Send + Sync,
        write: impl Fn(&mut S, usize, &mut [T], (&mut f32, &mut i32)) + Send + Sync,
    ) -> Vec<T> {
        // SAFETY: the caller's `write` fills rows < `rows`; the padding rows are zeroed.
        unsafe {
            filled_by(self.padded * len, |q: &mut [T]| {
                q[self.rows * len..].fill(T::default());
                q.par_chunks_mut(len)
                    .zip(scale.par_iter_mut().zip(zero.par_iter_mut()))
                    .take(self.rows)
                    .enumerate()
                    .for_each_init(init, |st, (r, (qr, sz))| write(st, r, qr, sz))
            })
        }
    }
}

/// The codes of a batch (`[padded, kp]`, zero in the padding), filling each row's scale
/// and zero point.
fn codes_of<T: Code>(g: Grid, qmax: u16, rows_out: (&mut [f32], &mut [i32])) -> Vec<T> {
    // SAFETY: `row_codes` writes every code of a row (the depth padding included).
    unsafe {
        g.rows_by(
            g.kp,
            rows_out,
            || (),
            |_, r, qr, sz| g.row_codes(r, qmax, qr, sz),
        )
    }
}

/// [`codes_of`] for wide codes in [`Codes::Split`]'s layout, each row split as it is
/// quantised (a separate pass over the codes cost ~15 % of a 3072-deep GEMM).
fn split_codes_of(g: Grid, qmax: u16, rows_out: (&mut [f32], &mut [i32])) -> Vec<u8> {
    let init = || vec![0i16; g.kp];
    // SAFETY: `split_row` writes every byte of a row.
    unsafe {
        g.rows_by(2 * g.kp, rows_out, init, |wide, r, qr, sz| {
            g.row_codes(r, qmax, wide, sz);
            split_row(wide, qr);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 1013) as f32 / 506.0 - 1.0) * 0.5)
            .collect()
    }

    fn levels(a: &QuantRows) -> Vec<i32> {
        a.codes.levels(a.kp)
    }

    #[test]
    fn row_codes_stay_on_their_grid_and_within_half_a_step() {
        let k = 50;
        let mut x = values(3 * k, 9);
        x[k..2 * k].iter_mut().for_each(|v| *v = v.abs() + 0.1); // one-sided row
        x[2 * k..].fill(0.0);
        for (width, top) in [
            (CodeWidth::U7, 127),
            (CodeWidth::U8, 255),
            (CodeWidth::Wide, 4095),
        ] {
            let a = quantize_rows(&x, 3, k, None, width);
            let q = levels(&a);
            for r in 0..3 {
                for i in 0..k {
                    let c = q[r * a.kp + i];
                    assert!((0..=top).contains(&c), "{width:?}: code {c}");
                    let back = a.scale[r] * (c as f32 - a.zero[r] as f32);
                    assert!((back - x[r * k + i]).abs() <= a.scale[r] * 0.5 + 1e-6);
                }
            }
            assert_eq!((a.scale[2], a.zero[2]), (1.0, 0));
            // The grid spans the row: its extreme value gets the extreme code.
            assert!(q[a.kp..a.kp + k].contains(&top), "{width:?}");
        }
    }

    #[test]
    fn wide_codes_shrink_as_the_depth_grows_so_sums_fit_in_i32() {
        assert_eq!(wide_qmax(768), 4095);
        assert_eq!(wide_qmax(4128), 4095);
        assert_eq!(wide_qmax(4132), 2047);
        assert_eq!(wide_qmax(1 << 20), 15);
        for kp in [4, 768, 3072, 4132, 70_000, 1 << 20] {
            assert!(
                127 * kp as i64 * wide_qmax(kp) as i64 <= i32::MAX as i64,
                "{kp}"
            );
        }
    }

    #[test]
    fn the_avx2_and_plain_quantisers_give_the_same_codes() {
        let (rows, k) = (9, 70);
        let x = values(rows * k, 6);
        let inv = values(k, 2).iter().map(|v| 1.5 + v).collect::<Vec<_>>();
        for width in [CodeWidth::U7, CodeWidth::U8, CodeWidth::Wide] {
            for smooth in [Some(&inv[..]), None] {
                let a = quantize_rows(&x, rows, k, smooth, width);
                let plain = quantize_rows_with(&x, rows, k, smooth, width, false);
                assert_eq!(levels(&a), levels(&plain), "{width:?}");
                assert_eq!((&a.scale, &a.zero), (&plain.scale, &plain.zero));
            }
        }
    }
}
