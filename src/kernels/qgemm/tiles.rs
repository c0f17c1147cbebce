//! Register tiles of the integer GEMM: `R` rows of activation codes × one 16-column weight
//! panel (`[kp/4][16][4]` int8) → exact i32 sums. Byte codes: AVX-512 VNNI (`vpdpbusd` on
//! zmm), AVX-VNNI (the same instruction on ymm, for client cores without AVX-512), AVX2
//! (`vpmaddubsw` + `vpmaddwd`, 7-bit codes only) or plain Rust; wide i16 codes: AVX2
//! (`vpmaddwd` on sign-extended weights) or plain Rust; wide codes split into bytes: AVX-512
//! VNNI or AVX-VNNI (`vpdpbusd` per byte) or plain Rust. Every tile of a width gives the
//! same integers.

use crate::kernels::simd::{has_avx512_vnni, has_avx_vnni};

/// Columns of a packed weight panel (two AVX2 vectors of 8 i32 sums).
pub(super) const NR: usize = 16;
/// Rows of a register tile (the most; see [`super::tile_rows`]).
pub(super) const MR: usize = 6;
/// Rows of the short tile, for a few rows (decoding): 8 rows take two 4-row tiles instead
/// of two 6-row tiles that compute 4 padding rows.
pub(super) const MR_SHORT: usize = 4;

/// Whether this CPU sums u8 × s8 products into i32 without a saturating step (AVX-512
/// VNNI or AVX-VNNI): then 8-bit codes and split wide codes are exact as bytes.
pub(super) fn has_byte_dot() -> bool {
    has_avx512_vnni() || has_avx_vnni()
}

/// A tile kernel of one height; the SIMD ones need their instruction set (checked by
/// [`Tile::bytes`] / [`Tile::split`] / [`Tile::wide`]).
type TileFn<T> = unsafe fn(&[T], &[i8], usize, &mut [[i32; NR]]);

/// The tiles of one code type for this CPU, chosen once per GEMM (a per-tile choice cost
/// ~2 % of a MiniLM pass).
pub(super) struct Tile<T> {
    full: TileFn<T>,
    short: TileFn<T>,
    /// Codes per row per depth: 1, or 2 for split wide codes.
    pub(super) stride: usize,
}

// By hand: a derive would ask `T: Copy`, but only the function pointers are copied.
impl<T> Clone for Tile<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Tile<T> {}

/// Whether the AVX2 tiles can run here.
#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    crate::kernels::simd::isa() != crate::kernels::simd::Isa::Baseline
}
impl Tile<u8> {
    /// Byte codes up to `qmax`: the AVX-512 VNNI tiles where `simd` is asked for and
    /// present, else the AVX-VNNI ones, else the AVX2 ones for 7-bit codes (AVX2's pair
    /// sums saturate above 127), else the plain one.
    pub(super) fn bytes(simd: bool, qmax: u16) -> Self {
        #[cfg(target_arch = "x86_64")]
        if simd && has_avx512_vnni() {
            return Tile::of(tile_vnni::<MR>, tile_vnni::<MR_SHORT>);
        } else if simd && has_avx_vnni() {
            return Tile::of(tile_avx_vnni::<MR>, tile_avx_vnni::<MR_SHORT>);
        } else if simd && has_avx2() && qmax <= 127 {
            return Tile::of(tile_avx2::<MR>, tile_avx2::<MR_SHORT>);
        }
        let _ = (simd, qmax);
        Tile::of(tile_scalar, tile_scalar)
    }

    /// Wide codes split into bytes ([`super::quantize::Codes::Split`]): the AVX-512 VNNI
    /// tiles where `simd` is asked for and present, else the AVX-VNNI ones, else the plain
    /// one.
    pub(super) fn split(simd: bool) -> Self {
        let (full, short): (TileFn<u8>, TileFn<u8>) =
            match (simd, has_avx512_vnni(), has_avx_vnni()) {
                #[cfg(target_arch = "x86_64")]
                (true, true, _) => (tile_split_vnni::<MR>, tile_split_vnni::<MR_SHORT>),
                #[cfg(target_arch = "x86_64")]
                (true, false, true) => (tile_split_avx_vnni::<MR>, tile_split_avx_vnni::<MR_SHORT>),
                _ => (tile_split_scalar, tile_split_scalar),
            };
        Tile {
            stride: 2,
            ..Tile::of(full, short)
        }
    }
}

impl Tile<i16> {
    /// Wide i16 codes (CPUs without VNNI): the AVX2 tiles where `simd` is asked for and
    /// present, else the plain one.
    pub(super) fn wide(simd: bool) -> Self {
        #[cfg(target_arch = "x86_64")]
        if simd && has_avx2() {
            return Tile::of(tile_wide_avx2::<MR>, tile_wide_avx2::<MR_SHORT>);
        }
        let _ = simd;
        Tile::of(tile_scalar, tile_scalar)
    }
}

impl<T> Tile<T> {
    fn of(full: TileFn<T>, short: TileFn<T>) -> Self {
        Tile {
            full,
            short,
            stride: 1,
        }
    }

    /// `acc` (of [`MR`] or [`MR_SHORT`] rows) = the products of `acc.len()` rows of `a`
    /// (`kp` codes each) and the panel `b` (overwritten, not accumulated).
    pub(super) fn run(self, a: &[T], b: &[i8], kp: usize, acc: &mut [[i32; NR]]) {
        assert!(a.len() >= acc.len() * kp * self.stride && b.len() >= NR * kp); // ok: whole tiles
        let f = if acc.len() == MR {
            self.full
        } else {
            self.short
        };
        // SAFETY: the constructor checked the instruction set; the slices hold whole tiles.
        unsafe { f(a, b, kp, acc) }
    }
}

/// `R` × 16 tile on AVX-512 VNNI: a group of 4 depths of a panel is one zmm (16 columns × 4
/// bytes), and `vpdpbusd` multiplies u8 by s8, sums the 4 products into i32 and accumulates
/// in one instruction (the AVX2 tile needs three): the same exact integers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn tile_vnni<const R: usize>(a: &[u8], b: &[i8], kp: usize, acc: &mut [[i32; NR]]) {
    use std::arch::x86_64::*;
    let mut c = [_mm512_setzero_si512(); R];
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    for g in 0..kp / 4 {
        let bv = _mm512_loadu_si512(bp.add(g * 64) as *const __m512i);
        for (r, cr) in c.iter_mut().enumerate() {
            let av = _mm512_set1_epi32((ap.add(r * kp + g * 4) as *const i32).read_unaligned());
            *cr = _mm512_dpbusd_epi32(*cr, av, bv);
        }
    }
    for (cr, out) in c.iter().zip(acc.iter_mut()) {
        _mm512_storeu_si512(out.as_mut_ptr() as *mut __m512i, *cr);
    }
}

/// `R` × 16 tile on AVX-VNNI: [`tile_avx2`]'s layout (two ymm of 8 columns a row), with
/// `vpdpbusd` doing its three instructions' work (and taking 8-bit codes, which it never
/// saturates).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avxvnni")]
unsafe fn tile_avx_vnni<const R: usize>(a: &[u8], b: &[i8], kp: usize, acc: &mut [[i32; NR]]) {
    use std::arch::x86_64::*;
    let mut c = [[_mm256_setzero_si256(); 2]; R];
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    for g in 0..kp / 4 {
        let b0 = _mm256_loadu_si256(bp.add(g * 64) as *const __m256i);
        let b1 = _mm256_loadu_si256(bp.add(g * 64 + 32) as *const __m256i);
        for (r, cr) in c.iter_mut().enumerate() {
            let av = _mm256_set1_epi32((ap.add(r * kp + g * 4) as *const i32).read_unaligned());
            cr[0] = _mm256_dpbusd_avx_epi32(cr[0], av, b0);
            cr[1] = _mm256_dpbusd_avx_epi32(cr[1], av, b1);
        }
    }
    for (cr, out) in c.iter().zip(acc.iter_mut()) {
        _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, cr[0]);
        _mm256_storeu_si256(out.as_mut_ptr().add(8) as *mut __m256i, cr[1]);
    }
}

/// Reference tile: the same exact integer sums as the SIMD tiles (written over `acc`), for
/// either code type.
pub(super) fn tile_scalar<T: Copy + Into<i32>>(
    a: &[T],
    b: &[i8],
    kp: usize,
    acc: &mut [[i32; NR]],
) {
    acc.iter_mut().for_each(|row| row.fill(0));
    for g in 0..kp / 4 {
        for (r, row) in acc.iter_mut().enumerate() {
            let av = &a[r * kp + g * 4..][..4];
            for (c, v) in row.iter_mut().enumerate() {
                let bv = &b[g * NR * 4 + c * 4..][..4];
                *v += (0..4).map(|i| av[i].into() * bv[i] as i32).sum::<i32>();
            }
        }
    }
}

/// `R` × 16 tile: per group of 4 depths, `vpmaddubsw` (u8 × s8 → pairs in i16, never
/// saturating with 7-bit activations), `vpmaddwd` by ones (→ i32 sums of 4) and an add.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn tile_avx2<const R: usize>(a: &[u8], b: &[i8], kp: usize, acc: &mut [[i32; NR]]) {
    use std::arch::x86_64::*;
    let ones = _mm256_set1_epi16(1);
    let mut c = [[_mm256_setzero_si256(); 2]; R];
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    for g in 0..kp / 4 {
        let b0 = _mm256_loadu_si256(bp.add(g * 64) as *const __m256i);
        let b1 = _mm256_loadu_si256(bp.add(g * 64 + 32) as *const __m256i);
        for (r, cr) in c.iter_mut().enumerate() {
            let av = _mm256_set1_epi32((ap.add(r * kp + g * 4) as *const i32).read_unaligned());
            let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(av, b0), ones);
            let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(av, b1), ones);
            cr[0] = _mm256_add_epi32(cr[0], p0);
            cr[1] = _mm256_add_epi32(cr[1], p1);
        }
    }
    for (cr, out) in c.iter().zip(acc.iter_mut()) {
        _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, cr[0]);
        _mm256_storeu_si256(out.as_mut_ptr().add(8) as *mut __m256i, cr[1]);
    }
}

/// `R` × 16 tile over i16 codes, as two 8-column halves of the panel. Per group of 4
/// depths, 4 columns' 16 weight bytes are sign-extended to i16 (`vpmovsxbw`), so each i32
/// lane holds one column's depths (0, 1) or (2, 3); the row's 4 codes are broadcast as one
/// 64-bit value to match, and `vpmaddwd` + `vpaddd` accumulate. Sums of the lane pairs
/// (`vphaddd`) give the columns at the end. Exact while `Q·127·kp` fits in i32
/// ([`super::quantize::wide_qmax`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn tile_wide_avx2<const R: usize>(a: &[i16], b: &[i8], kp: usize, acc: &mut [[i32; NR]]) {
    use std::arch::x86_64::*;
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    for half in 0..2 {
        let mut c = [[_mm256_setzero_si256(); 2]; R];
        for g in 0..kp / 4 {
            let w = bp.add(g * 64 + half * 32);
            let w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(w as *const __m128i));
            let w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.add(16) as *const __m128i));
            for (r, cr) in c.iter_mut().enumerate() {
                let av =
                    _mm256_set1_epi64x((ap.add(r * kp + g * 4) as *const i64).read_unaligned());
                cr[0] = _mm256_add_epi32(cr[0], _mm256_madd_epi16(av, w0));
                cr[1] = _mm256_add_epi32(cr[1], _mm256_madd_epi16(av, w1));
            }
        }
        for (cr, out) in c.iter().zip(acc.iter_mut()) {
            // [c0 c1 c4 c5 | c2 c3 c6 c7] → columns in order.
            let s = _mm256_hadd_epi32(cr[0], cr[1]);
            let s = _mm256_permute4x64_epi64::<0b11_01_10_00>(s);
            _mm256_storeu_si256(out.as_mut_ptr().add(half * 8) as *mut __m256i, s);
        }
    }
}

/// Reference tile for split wide codes: `Σ (l + 256·h)·w` per column, the same integers as
/// [`tile_split_vnni`] (written over `acc`).
pub(super) fn tile_split_scalar(a: &[u8], b: &[i8], kp: usize, acc: &mut [[i32; NR]]) {
    acc.iter_mut().for_each(|row| row.fill(0));
    for g in 0..kp / 4 {
        for (r, row) in acc.iter_mut().enumerate() {
            let codes = &a[r * 2 * kp + g * 8..][..8];
            for (c, v) in row.iter_mut().enumerate() {
                let bv = &b[g * NR * 4 + c * 4..][..4];
                *v += (0..4)
                    .map(|i| (codes[i] as i32 + 256 * codes[4 + i] as i32) * bv[i] as i32)
                    .sum::<i32>();
            }
        }
    }
}

/// `R` × 16 tile over split wide codes on AVX-512 VNNI: per group of 4 depths, the low and
/// the high bytes of a row's 4 codes are each broadcast and multiplied by the panel's zmm
/// with `vpdpbusd` into their own accumulators; `256·high + low` at the end. Exact: each
/// partial sum is bounded by the full codes' (see [`super::quantize::wide_qmax`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn tile_split_vnni<const R: usize>(a: &[u8], b: &[i8], kp: usize, acc: &mut [[i32; NR]]) {
    use std::arch::x86_64::*;
    let (mut lo, mut hi) = ([_mm512_setzero_si512(); R], [_mm512_setzero_si512(); R]);
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    for g in 0..kp / 4 {
        let bv = _mm512_loadu_si512(bp.add(g * 64) as *const __m512i);
        for r in 0..R {
            let at = ap.add(r * 2 * kp + g * 8) as *const i32;
            let (l, h) = (at.read_unaligned(), at.add(1).read_unaligned());
            lo[r] = _mm512_dpbusd_epi32(lo[r], _mm512_set1_epi32(l), bv);
            hi[r] = _mm512_dpbusd_epi32(hi[r], _mm512_set1_epi32(h), bv);
        }
    }
    for ((l, h), out) in lo.iter().zip(&hi).zip(acc.iter_mut()) {
        let sums = _mm512_add_epi32(_mm512_slli_epi32::<8>(*h), *l);
        _mm512_storeu_si512(out.as_mut_ptr() as *mut __m512i, sums);
    }
}

/// [`tile_split_vnni`] on AVX-VNNI, one 8-column half of the panel at a time: a row's low
/// and high sums of both halves at once would take 4·R of the 16 ymm registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avxvnni")]
unsafe fn tile_split_avx_vnni<const R: usize>(
    a: &[u8],
    b: &[i8],
    kp: usize,
    acc: &mut [[i32; NR]],
) {
    use std::arch::x86_64::*;
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    for half in 0..2 {
        let (mut lo, mut hi) = ([_mm256_setzero_si256(); R], [_mm256_setzero_si256(); R]);
        for g in 0..kp / 4 {
            let bv = _mm256_loadu_si256(bp.add(g * 64 + half * 32) as *const __m256i);
            for r in 0..R {
                let at = ap.add(r * 2 * kp + g * 8) as *const i32;
                let (l, h) = (at.read_unaligned(), at.add(1).read_unaligned());
                lo[r] = _mm256_dpbusd_avx_epi32(lo[r], _mm256_set1_epi32(l), bv);
                hi[r] = _mm256_dpbusd_avx_epi32(hi[r], _mm256_set1_epi32(h), bv);
            }
        }
        for ((l, h), out) in lo.iter().zip(&hi).zip(acc.iter_mut()) {
            let sums = _mm256_add_epi32(_mm256_slli_epi32::<8>(*h), *l);
            _mm256_storeu_si256(out.as_mut_ptr().add(half * 8) as *mut __m256i, sums);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(kp: usize) -> Vec<i8> {
        (0..NR * kp)
            .map(|i| ((i * 37 % 255) as i32 - 127) as i8)
            .collect()
    }

    /// Every byte tile this CPU can run for codes up to `top` (whatever the dispatch would
    /// pick), by name.
    fn byte_tiles(top: u8) -> Vec<(&'static str, Tile<u8>)> {
        #[allow(unused_mut)]
        let mut tiles = vec![("plain", Tile::of(tile_scalar, tile_scalar))];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni") {
                tiles.push((
                    "AVX-512 VNNI",
                    Tile::of(tile_vnni::<MR>, tile_vnni::<MR_SHORT>),
                ));
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("avxvnni") {
                let t = Tile::of(tile_avx_vnni::<MR>, tile_avx_vnni::<MR_SHORT>);
                tiles.push(("AVX-VNNI", t));
            }
            if is_x86_feature_detected!("avx2") && top <= 127 {
                tiles.push(("AVX2", Tile::of(tile_avx2::<MR>, tile_avx2::<MR_SHORT>)));
            }
        }
        tiles
    }

    /// Every tile for split wide codes this CPU can run, by name.
    fn split_tiles() -> Vec<(&'static str, Tile<u8>)> {
        let split = |full, short| Tile {
            stride: 2,
            ..Tile::of(full, short)
        };
        #[allow(unused_mut)]
        let mut tiles = vec![("plain", split(tile_split_scalar, tile_split_scalar))];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni") {
                let t = split(tile_split_vnni::<MR>, tile_split_vnni::<MR_SHORT>);
                tiles.push(("AVX-512 VNNI", t));
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("avxvnni") {
                let t = split(tile_split_avx_vnni::<MR>, tile_split_avx_vnni::<MR_SHORT>);
                tiles.push(("AVX-VNNI", t));
            }
        }
        tiles
    }

    #[test]
    fn every_byte_tile_equals_the_scalar_tile_even_at_the_code_extremes() {
        let kp = 40;
        // 7-bit codes: the largest AVX2 pair sums are 127 × ±127 twice over (2 · 127² =
        // 32258 < i16::MAX); 8-bit codes (VNNI, else the plain tile) reach 255 × ±127.
        for top in [127u8, 255] {
            let mut a: Vec<u8> = (0..MR * kp)
                .map(|i| (i * 31 % (top as usize + 1)) as u8)
                .collect();
            a[..kp].fill(top);
            let mut b = weights(kp);
            b[..8].fill(-127);
            for (name, tile) in byte_tiles(top) {
                for r in [MR, MR_SHORT] {
                    // Both start dirty: a tile writes its sums over `acc`.
                    let (mut simd, mut scalar) = ([[7i32; NR]; MR], [[-3i32; NR]; MR]);
                    tile.run(&a, &b, kp, &mut simd[..r]);
                    tile_scalar(&a[..r * kp], &b, kp, &mut scalar[..r]);
                    assert_eq!(simd[..r], scalar[..r], "{name} {r}-row tile, codes ≤ {top}");
                }
            }
        }
    }

    #[test]
    fn the_wide_and_every_split_tile_equal_the_scalar_tile_at_the_largest_sums() {
        // 4092 depths of the largest 12-bit code against ±127: sums near ±2.1e9.
        let kp = 4092;
        let mut a: Vec<i16> = (0..MR * kp).map(|i| (i * 31 % 4096) as i16).collect();
        a[..kp].fill(4095);
        let mut b = weights(kp);
        for g in 0..kp / 4 {
            b[g * 64..g * 64 + 4].fill(127); // column 0 all +127
            b[g * 64 + 60..g * 64 + 64].fill(-127); // column 15 all −127
        }
        let mut split = vec![0u8; 2 * a.len()];
        for (row, out) in a.chunks_exact(kp).zip(split.chunks_exact_mut(2 * kp)) {
            super::super::quantize::split_row(row, out);
        }
        for r in [MR, MR_SHORT] {
            // All start dirty: a tile writes its sums over `acc`.
            let (mut simd, mut scalar) = ([[7i32; NR]; MR], [[-3i32; NR]; MR]);
            Tile::wide(true).run(&a, &b, kp, &mut simd[..r]);
            tile_scalar(&a[..r * kp], &b, kp, &mut scalar[..r]);
            assert_eq!(simd[..r], scalar[..r], "{r}-row tile");
            assert_eq!(simd[0][0], 4095 * 127 * kp as i32);
            assert_eq!(simd[0][15], -4095 * 127 * kp as i32);
            for (name, tile) in split_tiles() {
                let mut sums = [[5i32; NR]; MR];
                tile.run(&split, &b, kp, &mut sums[..r]);
                assert_eq!(sums[..r], scalar[..r], "{name} {r}-row split tile");
            }
        }
    }
}
