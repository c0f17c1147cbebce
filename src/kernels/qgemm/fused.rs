//! The AVX-512 VNNI byte-code kernel with its store fused in: `R` rows (6, or 4 where that
//! computes fewer padding rows) × [`PANELS`] whole weight panels (64 columns) summed in
//! registers and scaled back to f32 there, straight into the output. The tile + store pair
//! (`tiles.rs`, `super::store`) hands each 6 × 16 tile's sums through memory and pays a
//! call, a copy and a store pass per tile: at MiniLM's depth of 384 that GEMM ran at 52–58 %
//! of the int8 peak, fused at 80–90 %. Four panels also broadcast each row's codes once per
//! four `vpdpbusd` instead of once per one (6 rows: 24 accumulators, 4 weight vectors and a
//! broadcast, 29 of 32 registers).
//!
//! Same integers and the same f32 operations in the same order as the plain store, so the
//! same bits.

use super::dst::{bf16_bits, Dst};
use super::tiles::NR;
use crate::kernels::gelu::Gelu;

/// Panels per fused block.
pub(super) const PANELS: usize = 4;

/// Where a block's values go and what scales them: its rows' scales and zero points (one
/// per real row: padding rows past the end are neither computed past the last group of
/// `R` nor stored), its columns' weight sums, scales and biases ([`PANELS`]·16 each), the
/// activation, and the output at the block's first row and column with its row stride.
pub(super) struct BlockOut<'a> {
    pub(super) scale: &'a [f32],
    pub(super) zero: &'a [i32],
    pub(super) colsum: &'a [i32],
    pub(super) wscale: &'a [f32],
    pub(super) bias: &'a [f32],
    pub(super) act: Option<Gelu>,
    pub(super) dst: Dst,
    pub(super) ld: usize,
}

/// A fused block kernel: codes, panels, padded depth, where the values go. It runs a
/// whole column of row tiles (one call per task: a call per tile and its set-up cost
/// 2.4 % of a BERT-base pass).
pub(super) type BlockFn<T> = unsafe fn(&[T], &[i8], usize, &BlockOut);

/// The rows of byte codes (`kp` each) that `out` takes, `R` at a time, × [`PANELS`]
/// consecutive panels of `b` → f32 outputs.
///
/// # Safety
/// AVX-512F and VNNI present; `a` holds the codes of `out.scale.len()` rows rounded up to
/// a multiple of `R`, `b` [`PANELS`] panels; `out.dst` is valid for `out.scale.len()`
/// rows of 64 values at stride `out.ld`, and no one else writes them.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
pub(super) unsafe fn block_vnni<const R: usize>(a: &[u8], b: &[i8], kp: usize, out: &BlockOut) {
    let rows = out.scale.len();
    debug_assert!(a.len() >= rows.div_ceil(R) * R * kp && b.len() >= PANELS * NR * kp);
    for first in (0..rows).step_by(R) {
        rows_vnni::<R>(a.as_ptr().add(first * kp), b.as_ptr(), kp, out, first);
    }
}

/// Rows `first..first + R` of [`block_vnni`] (codes from `ap`). Not inlined: inlined, its
/// sums went to memory through a `memset` per call.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
#[inline(never)]
unsafe fn rows_vnni<const R: usize>(
    ap: *const u8,
    bp: *const i8,
    kp: usize,
    out: &BlockOut,
    first: usize,
) {
    use std::arch::x86_64::*;
    let mut c = [[_mm512_setzero_si512(); PANELS]; R];
    for g in 0..kp / 4 {
        let bv = panel_group(bp, kp, g);
        for (r, cr) in c.iter_mut().enumerate() {
            let av = _mm512_set1_epi32((ap.add(r * kp + g * 4) as *const i32).read_unaligned());
            for (cp, w) in cr.iter_mut().zip(&bv) {
                *cp = _mm512_dpbusd_epi32(*cp, av, *w);
            }
        }
    }
    // Handed over whole: an epilogue reading `c` by a run-time row kept `c` in memory
    // for the loop above too (and zeroed it with a `memset` call per block).
    let sums = c;
    store(&sums, out, first)
}

/// [`block_vnni`] for wide codes split into bytes ([`super::quantize::Codes::Split`], 2·kp
/// bytes a row): the low and the high bytes into their own sums, `256·high + low` at the
/// end, `R` rows at a time (3 keeps the 24 sums in registers).
///
/// # Safety
/// As [`block_vnni`], with `2·kp` bytes a row.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
pub(super) unsafe fn block_split_vnni<const R: usize>(
    a: &[u8],
    b: &[i8],
    kp: usize,
    out: &BlockOut,
) {
    let rows = out.scale.len();
    debug_assert!(a.len() >= rows.div_ceil(R) * R * 2 * kp && b.len() >= PANELS * NR * kp);
    for first in (0..rows).step_by(R) {
        rows_split_vnni::<R>(a.as_ptr().add(first * 2 * kp), b.as_ptr(), kp, out, first);
    }
}

/// Rows `first..first + R` of [`block_split_vnni`] (codes from `ap`; not inlined, as
/// [`rows_vnni`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
#[inline(never)]
unsafe fn rows_split_vnni<const R: usize>(
    ap: *const u8,
    bp: *const i8,
    kp: usize,
    out: &BlockOut,
    first: usize,
) {
    use std::arch::x86_64::*;
    let mut lo = [[_mm512_setzero_si512(); PANELS]; R];
    let mut hi = [[_mm512_setzero_si512(); PANELS]; R];
    for g in 0..kp / 4 {
        let bv = panel_group(bp, kp, g);
        for (r, (lr, hr)) in lo.iter_mut().zip(hi.iter_mut()).enumerate() {
            let at = ap.add(r * 2 * kp + g * 8) as *const i32;
            let l = _mm512_set1_epi32(at.read_unaligned());
            let h = _mm512_set1_epi32(at.add(1).read_unaligned());
            for ((lp, hp), w) in lr.iter_mut().zip(hr.iter_mut()).zip(&bv) {
                *lp = _mm512_dpbusd_epi32(*lp, l, *w);
                *hp = _mm512_dpbusd_epi32(*hp, h, *w);
            }
        }
    }
    let mut sums = lo;
    for (sr, hr) in sums.iter_mut().zip(&hi) {
        for (s, h) in sr.iter_mut().zip(hr) {
            *s = _mm512_add_epi32(_mm512_slli_epi32::<8>(*h), *s);
        }
    }
    store(&sums, out, first)
}

/// Depth group `g` (4 depths × 16 columns, one zmm) of each of the [`PANELS`] panels at `bp`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn panel_group(bp: *const i8, kp: usize, g: usize) -> [std::arch::x86_64::__m512i; PANELS] {
    use std::arch::x86_64::*;
    std::array::from_fn(|p| _mm512_loadu_si512(bp.add(p * NR * kp + g * 64) as *const __m512i))
}

/// The epilogue of rows `first..` of a block: each real row's sums scaled back to f32,
/// biased, activated and written out.
///
/// # Safety
/// AVX-512F present; `out` as in [`block_vnni`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn store(sums: &[[std::arch::x86_64::__m512i; PANELS]], out: &BlockOut, first: usize) {
    use std::arch::x86_64::*;
    let real = out.scale.len() - first;
    for (i, sums) in sums.iter().enumerate().take(real) {
        let r = first + i;
        let (s, z) = (_mm512_set1_ps(out.scale[r]), _mm512_set1_epi32(out.zero[r]));
        let dst = out.dst.add(r * out.ld);
        for (p, v) in sums.iter().enumerate() {
            let cs = _mm512_loadu_si512(out.colsum.as_ptr().add(p * NR) as *const __m512i);
            let ws = _mm512_loadu_ps(out.wscale.as_ptr().add(p * NR));
            let bias = _mm512_loadu_ps(out.bias.as_ptr().add(p * NR));
            // As the plain store: (sum − z·colsum) as f32 · (s · wscale) + bias.
            let exact = _mm512_sub_epi32(*v, _mm512_mullo_epi32(z, cs));
            let y = _mm512_mul_ps(_mm512_cvtepi32_ps(exact), _mm512_mul_ps(s, ws));
            let y = _mm512_add_ps(y, bias);
            // The activation on the register (its slice kernel, called per row, cost a
            // call and its constants' set-up per 64 values: 7 % of a BERT-base pass).
            let y = match out.act {
                Some(act) => std::mem::transmute::<[f32; 16], __m512>(
                    act.lanes_coarse(std::mem::transmute::<__m512, [f32; 16]>(y)),
                ),
                None => y,
            };
            match dst.add(p * NR) {
                Dst::F32(o) => _mm512_storeu_ps(o.get(), y),
                Dst::Bf16(o) => _mm256_storeu_si256(o.get() as *mut __m256i, bf16_bits(y)),
            }
        }
    }
}
