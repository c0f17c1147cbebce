//! Integer GEMM for dynamically quantised inference (W8A8): `y = x · Wᵀ + b` with the
//! weight int8 per output channel (symmetric) and each row of `x` quantised at run time,
//! products summed exactly in i32 and scaled back to f32 once per output.
//!
//! Activations are quantised per row (per token) to **7 bits, asymmetric**: `x ≈ s·(q − z)`
//! with `q` in [0, 127] over the row's range [min(x, 0), max(x, 0)]. Why 7 bits: AVX2's
//! `vpmaddubsw` multiplies u8 by s8 and adds pairs into a *saturating* i16, and with 8-bit
//! activations a pair can reach 2·255·127 > 32767 (ONNX Runtime's U8S8 path accepts that
//! risk and offers `reduce_range` to avoid it). With `q ≤ 127` a pair is at most
//! 2·127·127 = 32258, so no sum ever saturates and every product is exact. The asymmetric
//! range keeps a one-sided row (after GELU) at full resolution, which a symmetric 8-bit
//! scale would halve, so the 7-bit grid is as fine as symmetric 8 bits on such rows.
//!
//! Tiles: AVX-512 VNNI (`vpdpbusd`, where present), AVX2, plain Rust, chosen at run time.
//! Because the sums are exact integers, every tile, thread split and batch composition
//! gives bit-identical outputs: a row's result never depends on the other rows, and an
//! AVX2 machine computes the same bits as a VNNI one.
//!
//! Measured and set aside: symmetric 8-bit codes (exact on AVX2 by moving the sign onto
//! the weight with `vpsignb`) made BERT-base 8 × 128 35 % slower (617 → 838 ms) for a
//! small gain (MiniLM's worst test-sentence cosine 0.9939 → 0.9941).

use super::common::OutPtr;
use rayon::prelude::*;

/// Columns of a packed weight panel (two AVX2 vectors of 8 i32 sums).
const NR: usize = 16;
/// Rows of a register tile (the most; see [`tile_rows`]).
const MR: usize = 6;
/// Rows of the short tile, for a few rows (decoding): 8 rows take two 4-row tiles instead
/// of two 6-row tiles that compute 4 padding rows.
const MR_SHORT: usize = 4;

/// Rows per tile for a GEMM of `rows` rows: the short tile where it computes fewer padding
/// rows and the rows are few (the full tile uses the registers better).
fn tile_rows(rows: usize) -> usize {
    let padded = |r: usize| rows.div_ceil(r) * r;
    if rows <= 16 && padded(MR_SHORT) < padded(MR) {
        MR_SHORT
    } else {
        MR
    }
}
/// Largest activation code: 7 bits (see the module docs).
const QMAX: f32 = 127.0;

/// A `[n, k]` int8 weight packed for [`gemm`]: 16-column panels, depth in groups of 4
/// (`[k/4][16][4]` bytes per panel), zero-padded to whole panels and groups.
#[derive(Clone, Debug)]
pub struct PackedI8 {
    panels: Vec<i8>,
    /// Σ_k q[o][k] per output: the zero point's correction.
    colsum: Vec<i32>,
    n: usize,
    k: usize,
}

impl PackedI8 {
    /// Packs row-major int8 weights `q [n, k]`.
    pub fn pack(q: &[i8], n: usize, k: usize) -> Self {
        let kp = k.div_ceil(4) * 4;
        let np = n.div_ceil(NR);
        let mut panels = vec![0i8; np * NR * kp];
        panels
            .par_chunks_mut(NR * kp)
            .enumerate()
            .for_each(|(p, panel)| {
                for c in 0..NR.min(n - p * NR) {
                    let row = &q[(p * NR + c) * k..][..k];
                    for (i, v) in row.iter().enumerate() {
                        panel[(i / 4) * NR * 4 + c * 4 + i % 4] = *v;
                    }
                }
            });
        let colsum = q
            .chunks_exact(k.max(1))
            .map(|r| r.iter().map(|v| *v as i32).sum())
            .collect();
        PackedI8 {
            panels,
            colsum,
            n,
            k,
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.panels.len() + 4 * self.colsum.len()
    }

    fn kp(&self) -> usize {
        self.k.div_ceil(4) * 4
    }
}

/// Rows of activations quantised per row to 7-bit codes (see the module docs), padded to
/// whole register tiles and depth groups of 4.
pub struct QuantRows {
    q: Vec<u8>,
    scale: Vec<f32>,
    zero: Vec<i32>,
    rows: usize,
    kp: usize,
}

/// Quantises `x [rows, k]` row by row: `s = (max − min) / 127` over the row and 0,
/// `z = round(−min / s)`, `q = clamp(round(x / s) + z, 0, 127)`. A row of zeros gets
/// `s = 1, z = 0`.
pub fn quantize_rows(x: &[f32], rows: usize, k: usize) -> QuantRows {
    quantize_rows_with(x, rows, k, None, true)
}

/// [`quantize_rows`] of `x · diag(inv)` (each input channel scaled first; SmoothQuant's
/// migration, see [`crate::kernels::Int8Weight::quantize_smoothed`]), in the same pass.
pub fn quantize_rows_scaled(x: &[f32], rows: usize, k: usize, inv: &[f32]) -> QuantRows {
    quantize_rows_with(x, rows, k, Some(inv), true)
}

/// [`quantize_rows`] with the AVX2 code (`avx2`, where present) or the plain one.
fn quantize_rows_with(
    x: &[f32],
    rows: usize,
    k: usize,
    inv: Option<&[f32]>,
    avx2: bool,
) -> QuantRows {
    let ones;
    let inv = match inv {
        Some(v) => v,
        None => {
            ones = vec![1f32; k];
            &ones
        }
    };
    let avx2 = avx2 && crate::kernels::simd::isa() != crate::kernels::simd::Isa::Baseline;
    let kp = k.div_ceil(4) * 4;
    // Whole tiles of either height (12 = both heights' multiple).
    let padded = rows.div_ceil(12) * 12;
    let mut q = vec![0u8; padded * kp];
    let mut scale = vec![1f32; padded];
    let mut zero = vec![0i32; padded];
    q.par_chunks_mut(kp)
        .zip(scale.par_iter_mut().zip(zero.par_iter_mut()))
        .take(rows)
        .enumerate()
        .for_each(|(r, (qr, (s, z)))| {
            let xr = &x[r * k..][..k];
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: AVX2 + FMA are present.
                return unsafe { quantize_row_avx2(xr, inv, qr, s, z) };
            }
            let _ = avx2;
            quantize_row(xr, inv, qr, s, z)
        });
    QuantRows {
        q,
        scale,
        zero,
        rows,
        kp,
    }
}

/// [`quantize_row`] with AVX2 intrinsics (LLVM's own vectorisation of the plain loop
/// shuffled lanes back and forth: 10 % of an int8 BERT pass). Same rounding (ties to
/// even), same order of operations, so the same codes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_row_avx2(x: &[f32], c: &[f32], q: &mut [u8], s: &mut f32, z: &mut i32) {
    use std::arch::x86_64::*;
    let body = x.len() / 8 * 8;
    let at = |i: usize| {
        _mm256_mul_ps(
            _mm256_loadu_ps(x.as_ptr().add(i)),
            _mm256_loadu_ps(c.as_ptr().add(i)),
        )
    };
    let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for i in (0..body).step_by(8) {
        let v = at(i);
        lo = _mm256_min_ps(lo, v);
        hi = _mm256_max_ps(hi, v);
    }
    let (mut l8, mut h8) = ([0f32; 8], [0f32; 8]);
    _mm256_storeu_ps(l8.as_mut_ptr(), lo);
    _mm256_storeu_ps(h8.as_mut_ptr(), hi);
    let tail: Vec<f32> = x[body..]
        .iter()
        .zip(&c[body..])
        .map(|(v, c)| v * c)
        .collect();
    let lo = l8.iter().chain(&tail).fold(0f32, |m, v| m.min(*v));
    let hi = h8.iter().chain(&tail).fold(0f32, |m, v| m.max(*v));
    let Some((scale, zf)) = row_grid(lo, hi) else {
        return;
    };
    (*s, *z) = (scale, zf as i32);
    let inv = 1.0 / scale;
    let (vinv, vz) = (_mm256_set1_ps(inv), _mm256_set1_ps(zf));
    let (zero, top) = (_mm256_setzero_ps(), _mm256_set1_ps(QMAX));
    for i in (0..body).step_by(8) {
        let v = _mm256_add_ps(_mm256_mul_ps(at(i), vinv), vz);
        let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
        let c = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, zero), top));
        // 8 × i32 (each ≤ 127) → 8 bytes.
        let w = _mm_packs_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256::<1>(c));
        let b = _mm_packus_epi16(w, w);
        (q.as_mut_ptr().add(i) as *mut i64).write_unaligned(_mm_cvtsi128_si64(b));
    }
    for (d, v) in q[body..].iter_mut().zip(&tail) {
        *d = (v * inv + zf).round_ties_even().clamp(0.0, QMAX) as u8;
    }
}

/// A row's scale and zero point from its range (which includes 0); `None` for an all-zero
/// (or non-finite) row, which keeps `s = 1, z = 0` and codes 0.
fn row_grid(lo: f32, hi: f32) -> Option<(f32, f32)> {
    let range = hi - lo;
    if range <= 0.0 || !range.is_finite() {
        return None;
    }
    let s = range / QMAX;
    Some((s, (-lo / s).round_ties_even()))
}

fn quantize_row(x: &[f32], c: &[f32], q: &mut [u8], s: &mut f32, z: &mut i32) {
    let x: Vec<f32> = x.iter().zip(c).map(|(v, c)| v * c).collect();
    let lo = x.iter().fold(0f32, |m, v| m.min(*v));
    let hi = x.iter().fold(0f32, |m, v| m.max(*v));
    let Some((scale, zf)) = row_grid(lo, hi) else {
        return;
    };
    (*s, *z) = (scale, zf as i32);
    let inv = 1.0 / scale;
    for (d, v) in q.iter_mut().zip(&x) {
        *d = (v * inv + zf).round_ties_even().clamp(0.0, QMAX) as u8;
    }
}

/// `[rows, n] = x · Wᵀ · diag(wscale) + bias` from quantised rows and a packed weight.
pub fn gemm(a: &QuantRows, w: &PackedI8, wscale: &[f32], bias: &[f32]) -> Vec<f32> {
    let avx2 = crate::kernels::simd::isa() != crate::kernels::simd::Isa::Baseline;
    gemm_with(a, w, wscale, bias, avx2)
}

/// [`gemm`] with the AVX2 tile and store (`avx2`, where present) or the plain ones.
fn gemm_with(a: &QuantRows, w: &PackedI8, wscale: &[f32], bias: &[f32], avx2: bool) -> Vec<f32> {
    let (rows, n) = (a.rows, w.n);
    assert!(
        a.kp == w.kp() && wscale.len() == n && bias.len() == n,
        "qgemm::gemm shapes"
    ); // ok: Int8Weight checks shapes before calling
       // Not zeroed first (a page-sized memset per layer showed in profiles): the tiles
       // below cover every row < rows and column < n, each written exactly once.
    let mut out = Vec::<f32>::with_capacity(rows * n);
    let mr = tile_rows(rows);
    let tiles = rows.div_ceil(mr);
    let panels = n.div_ceil(NR);
    // Tasks: a block of row tiles × a block of panels, small enough that two threads
    // share the work evenly, big enough that a panel is reused across many row tiles.
    let tile_block = 16usize.min(tiles).max(1);
    let panel_block = 4usize;
    let row_blocks = tiles.div_ceil(tile_block);
    let col_blocks = panels.div_ceil(panel_block);
    let dst = OutPtr(out.as_mut_ptr());
    if rows == 0 || n == 0 {
        return out;
    }
    let avx2 = avx2 && crate::kernels::simd::isa() != crate::kernels::simd::Isa::Baseline;
    (0..row_blocks * col_blocks)
        .into_par_iter()
        .for_each(|task| {
            let (rb, cb) = (task % row_blocks, task / row_blocks);
            for p in cb * panel_block..((cb + 1) * panel_block).min(panels) {
                for t in rb * tile_block..((rb + 1) * tile_block).min(tiles) {
                    let mut acc = [[0i32; NR]; MR];
                    let ap = &a.q[t * mr * a.kp..][..mr * a.kp];
                    let bp = &w.panels[p * NR * a.kp..][..NR * a.kp];
                    tile(ap, bp, a.kp, &mut acc[..mr], avx2);
                    store(a, w, wscale, bias, (t * mr, p * NR), &acc[..mr], dst, avx2);
                }
            }
        });
    // SAFETY: every element was written above (see the comment at the allocation).
    unsafe { out.set_len(rows * n) };
    out
}

/// Scales one tile's exact sums back to f32 and writes the rows and columns that exist.
#[allow(clippy::too_many_arguments)]
fn store(
    a: &QuantRows,
    w: &PackedI8,
    wscale: &[f32],
    bias: &[f32],
    at: (usize, usize),
    acc: &[[i32; NR]],
    dst: OutPtr,
    avx2: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: the caller checked AVX2 + FMA (`avx2` is only set then).
        return unsafe { store_avx2(a, w, wscale, bias, at, acc, dst) };
    }
    let _ = avx2;
    store_rows(a, w, wscale, bias, at, acc, dst)
}

/// [`store_rows`] compiled for AVX2 + FMA (the 16-lane loops become vector code; no
/// contraction into FMAs, so the bits equal the plain build's).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn store_avx2(
    a: &QuantRows,
    w: &PackedI8,
    wscale: &[f32],
    bias: &[f32],
    at: (usize, usize),
    acc: &[[i32; NR]],
    dst: OutPtr,
) {
    store_rows(a, w, wscale, bias, at, acc, dst)
}

#[inline(always)]
fn store_rows(
    a: &QuantRows,
    w: &PackedI8,
    wscale: &[f32],
    bias: &[f32],
    (r0, c0): (usize, usize),
    acc: &[[i32; NR]],
    dst: OutPtr,
) {
    let n = w.n;
    let cols = NR.min(n - c0);
    let (mut cs, mut ws, mut bs) = ([0i32; NR], [0f32; NR], [0f32; NR]);
    cs[..cols].copy_from_slice(&w.colsum[c0..c0 + cols]);
    ws[..cols].copy_from_slice(&wscale[c0..c0 + cols]);
    bs[..cols].copy_from_slice(&bias[c0..c0 + cols]);
    let valid = a.rows.saturating_sub(r0).min(acc.len());
    for (i, row) in acc.iter().enumerate().take(valid) {
        let r = r0 + i;
        let (s, z) = (a.scale[r], a.zero[r]);
        let mut y = [0f32; NR];
        for j in 0..NR {
            y[j] = (row[j] - z * cs[j]) as f32 * (s * ws[j]) + bs[j];
        }
        // SAFETY: each task writes only its own tiles' outputs, inside `out`.
        let o = unsafe { std::slice::from_raw_parts_mut(dst.get().add(r * n + c0), cols) };
        o.copy_from_slice(&y[..cols]);
    }
}

/// Whether this CPU has AVX-512 VNNI (`vpdpbusd`) and AVX-512 is not switched off
/// (`BERT4RS_NO_AVX512`).
#[cfg(target_arch = "x86_64")]
fn has_vnni() -> bool {
    static VNNI: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *VNNI.get_or_init(|| {
        crate::kernels::simd::isa() == crate::kernels::simd::Isa::Avx512
            && is_x86_feature_detected!("avx512vnni")
    })
}

/// One tile's sums: the AVX-512 VNNI or AVX2 tile where `simd` is asked for and present.
/// A SIMD tile of one height.
#[cfg(target_arch = "x86_64")]
type TileFn = unsafe fn(&[u8], &[i8], usize, &mut [[i32; NR]]);

/// `acc` has [`MR`] or [`MR_SHORT`] rows (the tile's height), `a` that many rows of `kp`.
fn tile(a: &[u8], b: &[i8], kp: usize, acc: &mut [[i32; NR]], simd: bool) {
    #[cfg(target_arch = "x86_64")]
    {
        let mut x86 = |f6: TileFn, f4: TileFn| {
            // SAFETY: the caller checked the instruction set; both slices hold whole tiles
            // of `kp` depth.
            unsafe {
                match acc.len() {
                    MR => f6(a, b, kp, acc),
                    _ => f4(a, b, kp, acc),
                }
            }
        };
        if simd && has_vnni() {
            return x86(tile_vnni::<MR>, tile_vnni::<MR_SHORT>);
        }
        if simd && crate::kernels::simd::isa() != crate::kernels::simd::Isa::Baseline {
            return x86(tile_avx2::<MR>, tile_avx2::<MR_SHORT>);
        }
    }
    let _ = simd;
    tile_scalar(a, b, kp, acc)
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

/// Reference tile: the same exact integer sums as the SIMD tile.
fn tile_scalar(a: &[u8], b: &[i8], kp: usize, acc: &mut [[i32; NR]]) {
    for g in 0..kp / 4 {
        for (r, row) in acc.iter_mut().enumerate() {
            let av = &a[r * kp + g * 4..][..4];
            for (c, v) in row.iter_mut().enumerate() {
                let bv = &b[g * NR * 4 + c * 4..][..4];
                *v += (0..4).map(|i| av[i] as i32 * bv[i] as i32).sum::<i32>();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 1013) as f32 / 506.0 - 1.0) * 0.5)
            .collect()
    }

    fn weights(n: usize, k: usize) -> Vec<i8> {
        (0..n * k)
            .map(|i| ((i * 37 % 255) as i32 - 127) as i8)
            .collect()
    }

    #[test]
    fn sums_are_the_exact_integer_products_for_any_shape() {
        for (rows, n, k) in [(1, 1, 1), (5, 17, 7), (13, 33, 64), (7, 16, 130)] {
            let x = values(rows * k, rows + n);
            let wq = weights(n, k);
            let a = quantize_rows(&x, rows, k);
            let w = PackedI8::pack(&wq, n, k);
            let (ws, b) = (vec![1f32; n], vec![0f32; n]);
            let out = gemm(&a, &w, &ws, &b);
            for r in 0..rows {
                for o in 0..n {
                    let exact: i64 = (0..k)
                        .map(|i| {
                            (a.q[r * a.kp + i] as i64 - a.zero[r] as i64) * wq[o * k + i] as i64
                        })
                        .sum();
                    let want = exact as f32 * a.scale[r];
                    let got = out[r * n + o];
                    assert!(
                        (got - want).abs() <= want.abs() * 1e-6 + 1e-6,
                        "[{rows},{n},{k}] ({r},{o}): {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_simd_tile_equals_the_scalar_tile_even_at_the_code_extremes() {
        let kp = 40;
        let mut a: Vec<u8> = (0..MR * kp).map(|i| (i * 31 % 128) as u8).collect();
        // The largest pair sums: 127 × ±127 twice over (2 · 127² = 32258 < i16::MAX).
        a[..kp].fill(127);
        let b = weights(NR, kp);
        for r in [MR, MR_SHORT] {
            let (mut simd, mut scalar) = ([[0i32; NR]; MR], [[0i32; NR]; MR]);
            tile(&a, &b, kp, &mut simd[..r], true);
            tile_scalar(&a[..r * kp], &b, kp, &mut scalar[..r]);
            assert_eq!(simd, scalar, "{r}-row tile");
        }
    }

    #[test]
    fn row_codes_are_seven_bit_and_within_half_a_step() {
        let k = 50;
        let mut x = values(3 * k, 9);
        x[k..2 * k].iter_mut().for_each(|v| *v = v.abs() + 0.1); // one-sided row
        x[2 * k..].fill(0.0);
        let a = quantize_rows(&x, 3, k);
        for r in 0..3 {
            for i in 0..k {
                let q = a.q[r * a.kp + i];
                assert!(q <= 127);
                let back = a.scale[r] * (q as f32 - a.zero[r] as f32);
                assert!((back - x[r * k + i]).abs() <= a.scale[r] * 0.5 + 1e-6);
            }
        }
        assert_eq!((a.scale[2], a.zero[2]), (1.0, 0));
    }

    #[test]
    fn a_row_gives_the_same_bits_alone_and_in_a_batch() {
        let (rows, n, k) = (11, 40, 96);
        let x = values(rows * k, 3);
        let w = PackedI8::pack(&weights(n, k), n, k);
        let (ws, b) = (values(n, 4), values(n, 5));
        let all = gemm(&quantize_rows(&x, rows, k), &w, &ws, &b);
        for r in 0..rows {
            let one = gemm(&quantize_rows(&x[r * k..][..k], 1, k), &w, &ws, &b);
            assert_eq!(one, all[r * n..][..n]);
        }
    }

    #[test]
    fn a_cpu_without_avx2_computes_the_same_bits() {
        let (rows, n, k) = (9, 35, 70);
        let x = values(rows * k, 6);
        let a = quantize_rows(&x, rows, k);
        let plain = quantize_rows_with(&x, rows, k, None, false);
        assert_eq!(
            (&a.q, &a.scale, &a.zero),
            (&plain.q, &plain.scale, &plain.zero)
        );
        let w = PackedI8::pack(&weights(n, k), n, k);
        let (ws, b) = (values(n, 7), values(n, 8));
        assert_eq!(gemm_with(&a, &w, &ws, &b, false), gemm(&a, &w, &ws, &b));
    }
}
