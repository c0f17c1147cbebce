//! The register tiles: one job computes up to a tile of C from a packed (or row-major)
//! A panel and packed B panels. Scalar, AVX2 + FMA (6 × 16) and AVX-512 (12 × 32); all
//! sum in the same order, so they agree bit for bit.

use super::{MR, NR};

/// What a tile's product (times `scale`) is stored onto.
#[derive(Clone, Copy)]
pub(super) enum Onto {
    /// Nothing: C is overwritten.
    Zero,
    /// The existing C (accumulation, or a later depth block).
    C,
    /// A bias row: `NR` values for the tile's columns (fewer read for an edge tile).
    Bias(*const f32),
}

/// One tile's job: `C = (onto) + scale · Σ_k a[k] ⊗ b[k]` over `mr × nr` outputs (at most
/// the kernel's tile).
pub(super) struct TileArgs {
    /// Depth.
    pub(super) kc: usize,
    /// A packed 6-row panel (`[k][6]`), or with `DIRECT` the tile's first row of a row-major A.
    pub(super) a: *const f32,
    /// Row stride of a row-major A.
    pub(super) a_rs: usize,
    /// Offset from `a` to rows 6–11 (the next panel or the seventh row); 0 when absent.
    pub(super) a_next: usize,
    /// The first 16-column B panel at this depth block.
    pub(super) b: *const f32,
    /// Offset from `b` to the next B panel (columns 16–31); 0 when absent.
    pub(super) b_next: usize,
    pub(super) c: *mut f32,
    pub(super) c_rs: usize,
    pub(super) mr: usize,
    pub(super) nr: usize,
    pub(super) scale: f32,
    pub(super) onto: Onto,
    /// Cache lines to fetch into L2 during the k loop (a slice of the next B panel, so a
    /// weight streamed from memory arrives before its tiles need it), and how many.
    pub(super) prefetch: (*const f32, usize),
}

pub(super) type Kernel = unsafe fn(&TileArgs);

/// Where row `r` of a 6-row A block starts and how far one step of k moves:
/// packed panels interleave the six rows, row-major A keeps each row contiguous.
#[inline(always)]
pub(super) fn a_layout<const DIRECT: bool>(
    a: *const f32,
    rs: usize,
    mr: usize,
) -> ([*const f32; MR], usize) {
    let mut rows = [a; MR];
    for (r, p) in rows.iter_mut().enumerate() {
        // Rows past the matrix's end re-read its last row (their results are not stored).
        let r = if DIRECT { r.min(mr - 1) } else { r };
        *p = a.wrapping_add(if DIRECT { r * rs } else { r });
    }
    (rows, if DIRECT { 1 } else { MR })
}

pub(super) unsafe fn kernel_scalar<const DIRECT: bool>(t: &TileArgs) {
    let (rows, step) = a_layout::<DIRECT>(t.a, t.a_rs, t.mr);
    let mut acc = [[0f32; NR]; MR];
    for kk in 0..t.kc {
        for (r, row) in acc.iter_mut().enumerate() {
            let av = *rows[r].add(kk * step);
            for (j, v) in row.iter_mut().enumerate() {
                *v = av.mul_add(*t.b.add(kk * NR + j), *v);
            }
        }
    }
    store_tile(&acc, t.c, t.c_rs, (t.mr, t.nr), t.scale, t.onto);
}

pub(super) unsafe fn store_tile(
    acc: &[[f32; NR]; MR],
    c: *mut f32,
    c_rs: usize,
    (mr, nr): (usize, usize),
    scale: f32,
    onto: Onto,
) {
    for (r, row) in acc.iter().enumerate().take(mr) {
        for (j, v) in row.iter().enumerate().take(nr) {
            let p = c.add(r * c_rs + j);
            *p = match onto {
                Onto::C => *p + v * scale,
                Onto::Zero => v * scale,
                Onto::Bias(b) => v * scale + *b.add(j),
            };
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn kernel_avx2<const DIRECT: bool, const ROWS: usize>(t: &TileArgs) {
    use std::arch::x86_64::*;
    let (c, c_rs, mr, nr) = (t.c, t.c_rs, t.mr, t.nr);
    debug_assert_eq!(
        mr, ROWS,
        "Tile::kernel picks the copy for the tile's row count"
    );
    let z = _mm256_setzero_ps();
    let (mut c00, mut c01, mut c10, mut c11, mut c20, mut c21) = (z, z, z, z, z, z);
    let (mut c30, mut c31, mut c40, mut c41, mut c50, mut c51) = (z, z, z, z, z, z);
    let ([mut a0, mut a1, mut a2, mut a3, mut a4, mut a5], step) =
        a_layout::<DIRECT>(t.a, t.a_rs, mr);
    let mut b = t.b;
    // The C tile is read at the end: start fetching its rows now.
    for r in 0..mr {
        // (wrapping: an edge tile's last row may end before column 16; prefetch never faults)
        _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(r * c_rs) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(r * c_rs + NR - 1) as *const i8);
    }
    // Rows from ROWS on are not computed (constant-folded away).
    macro_rules! row {
        ($r:expr, $a:ident, $o:expr, $v0:ident, $v1:ident, $c0:ident, $c1:ident) => {
            if $r < ROWS {
                let x = _mm256_broadcast_ss(&*$a.add($o * step));
                $c0 = _mm256_fmadd_ps(x, $v0, $c0);
                $c1 = _mm256_fmadd_ps(x, $v1, $c1);
            }
        };
    }
    macro_rules! step {
        ($o:expr) => {{
            let b0 = _mm256_loadu_ps(b.add($o * NR));
            let b1 = _mm256_loadu_ps(b.add($o * NR + 8));
            row!(0, a0, $o, b0, b1, c00, c01);
            row!(1, a1, $o, b0, b1, c10, c11);
            row!(2, a2, $o, b0, b1, c20, c21);
            row!(3, a3, $o, b0, b1, c30, c31);
            row!(4, a4, $o, b0, b1, c40, c41);
            row!(5, a5, $o, b0, b1, c50, c51);
        }};
    }
    // Wrapping: in a packed panel, rows 1–5 end up to 5 values past the panel's end.
    macro_rules! advance {
        ($n:expr) => {{
            a0 = a0.wrapping_add($n * step);
            a1 = a1.wrapping_add($n * step);
            a2 = a2.wrapping_add($n * step);
            a3 = a3.wrapping_add($n * step);
            a4 = a4.wrapping_add($n * step);
            a5 = a5.wrapping_add($n * step);
            b = b.wrapping_add($n * NR);
        }};
    }
    let (pf, pf_lines) = t.prefetch;
    for i in 0..t.kc / 4 {
        if i < pf_lines {
            _mm_prefetch::<_MM_HINT_T1>(pf.wrapping_add(i * 16) as *const i8);
        }
        if !DIRECT {
            _mm_prefetch::<_MM_HINT_T0>(a0.wrapping_add(16 * MR) as *const i8);
        }
        step!(0);
        step!(1);
        if !DIRECT {
            _mm_prefetch::<_MM_HINT_T0>(a0.wrapping_add(16 * MR + 16) as *const i8);
        }
        step!(2);
        step!(3);
        advance!(4);
    }
    for _ in 0..t.kc % 4 {
        step!(0);
        advance!(1);
    }
    let rows = [
        [c00, c01],
        [c10, c11],
        [c20, c21],
        [c30, c31],
        [c40, c41],
        [c50, c51],
    ];
    let s = _mm256_set1_ps(t.scale);
    if nr == NR {
        for (r, [v0, v1]) in rows.iter().enumerate().take(mr) {
            let p = c.add(r * c_rs);
            let (mut v0, mut v1) = (_mm256_mul_ps(*v0, s), _mm256_mul_ps(*v1, s));
            let addend = match t.onto {
                Onto::C => Some(p as *const f32),
                Onto::Bias(b) => Some(b),
                Onto::Zero => None,
            };
            if let Some(q) = addend {
                v0 = _mm256_add_ps(v0, _mm256_loadu_ps(q));
                v1 = _mm256_add_ps(v1, _mm256_loadu_ps(q.add(8)));
            }
            _mm256_storeu_ps(p, v0);
            _mm256_storeu_ps(p.add(8), v1);
        }
    } else {
        let mut acc = [[0f32; NR]; MR];
        for (dst, [v0, v1]) in acc.iter_mut().zip(rows.iter()) {
            _mm256_storeu_ps(dst.as_mut_ptr(), *v0);
            _mm256_storeu_ps(dst.as_mut_ptr().add(8), *v1);
        }
        store_tile(&acc, c, c_rs, (mr, nr), t.scale, t.onto);
    }
}

/// The 12 × 32 AVX-512 tile: rows 0–5 and 6–11 from two A panels (or twelve row-major rows),
/// columns 0–15 and 16–31 from two B panels, 24 zmm accumulators. Edges use store masks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn kernel_avx512<const DIRECT: bool, const ROWS: usize>(t: &TileArgs) {
    use std::arch::x86_64::*;
    let (c, c_rs, mr, nr) = (t.c, t.c_rs, t.mr, t.nr);
    debug_assert_eq!(
        mr, ROWS,
        "Tile::kernel picks the copy for the tile's row count"
    );
    let (lo, step) = a_layout::<DIRECT>(t.a, t.a_rs, mr.min(MR));
    // Rows 6–11 exist only in tiles of more than 6 rows (ROWS > 6); else they are not computed.
    let hi = if mr > MR {
        a_layout::<DIRECT>(t.a.wrapping_add(t.a_next), t.a_rs, mr - MR).0
    } else {
        lo
    };
    let [mut a0, mut a1, mut a2, mut a3, mut a4, mut a5] = lo;
    let [mut a6, mut a7, mut a8, mut a9, mut a10, mut a11] = hi;
    let (mut b, b_next) = (t.b, t.b_next);
    let (pf, pf_lines) = t.prefetch;
    for r in 0..mr {
        // The C tile is read at the end: start fetching its rows now (prefetch never faults).
        let p = c.wrapping_add(r * c_rs);
        _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(nr - 1) as *const i8);
    }
    let z = _mm512_setzero_ps();
    let (mut c00, mut c01, mut c10, mut c11, mut c20, mut c21) = (z, z, z, z, z, z);
    let (mut c30, mut c31, mut c40, mut c41, mut c50, mut c51) = (z, z, z, z, z, z);
    let (mut c60, mut c61, mut c70, mut c71, mut c80, mut c81) = (z, z, z, z, z, z);
    let (mut c90, mut c91, mut ca0, mut ca1, mut cb0, mut cb1) = (z, z, z, z, z, z);
    // Rows from ROWS on are not computed (constant-folded away).
    macro_rules! row {
        ($r:expr, $a:ident, $o:expr, $v0:ident, $v1:ident, $c0:ident, $c1:ident) => {
            if $r < ROWS {
                let x = _mm512_set1_ps(*$a.add($o * step));
                $c0 = _mm512_fmadd_ps(x, $v0, $c0);
                $c1 = _mm512_fmadd_ps(x, $v1, $c1);
            }
        };
    }
    macro_rules! step {
        ($o:expr) => {{
            let v0 = _mm512_loadu_ps(b.add($o * NR));
            let v1 = _mm512_loadu_ps(b.add(b_next + $o * NR));
            row!(0, a0, $o, v0, v1, c00, c01);
            row!(1, a1, $o, v0, v1, c10, c11);
            row!(2, a2, $o, v0, v1, c20, c21);
            row!(3, a3, $o, v0, v1, c30, c31);
            row!(4, a4, $o, v0, v1, c40, c41);
            row!(5, a5, $o, v0, v1, c50, c51);
            row!(6, a6, $o, v0, v1, c60, c61);
            row!(7, a7, $o, v0, v1, c70, c71);
            row!(8, a8, $o, v0, v1, c80, c81);
            row!(9, a9, $o, v0, v1, c90, c91);
            row!(10, a10, $o, v0, v1, ca0, ca1);
            row!(11, a11, $o, v0, v1, cb0, cb1);
        }};
    }
    // Wrapping: in a packed panel, rows 1–5 end up to 5 values past the panel's end.
    macro_rules! advance {
        ($n:expr) => {{
            a0 = a0.wrapping_add($n * step);
            a1 = a1.wrapping_add($n * step);
            a2 = a2.wrapping_add($n * step);
            a3 = a3.wrapping_add($n * step);
            a4 = a4.wrapping_add($n * step);
            a5 = a5.wrapping_add($n * step);
            a6 = a6.wrapping_add($n * step);
            a7 = a7.wrapping_add($n * step);
            a8 = a8.wrapping_add($n * step);
            a9 = a9.wrapping_add($n * step);
            a10 = a10.wrapping_add($n * step);
            a11 = a11.wrapping_add($n * step);
            b = b.wrapping_add($n * NR);
        }};
    }
    for i in 0..t.kc / 2 {
        // This tile's slice of the next B panel pair (both panels), two lines per step.
        for l in [2 * i, 2 * i + 1] {
            if l < pf_lines {
                _mm_prefetch::<_MM_HINT_T1>(pf.wrapping_add(l * NR) as *const i8);
                _mm_prefetch::<_MM_HINT_T1>(pf.wrapping_add(b_next + l * NR) as *const i8);
            }
        }
        step!(0);
        step!(1);
        advance!(2);
    }
    if t.kc % 2 == 1 {
        step!(0);
    }
    let rows = [
        [c00, c01],
        [c10, c11],
        [c20, c21],
        [c30, c31],
        [c40, c41],
        [c50, c51],
        [c60, c61],
        [c70, c71],
        [c80, c81],
        [c90, c91],
        [ca0, ca1],
        [cb0, cb1],
    ];
    let mask = |cols: usize| -> __mmask16 {
        if cols >= NR {
            0xffff
        } else {
            ((1u32 << cols) - 1) as __mmask16
        }
    };
    let masks = [mask(nr), mask(nr.saturating_sub(NR))];
    let s = _mm512_set1_ps(t.scale);
    for (r, halves) in rows.iter().enumerate().take(mr) {
        for (h, (&v, &m)) in halves.iter().zip(&masks).enumerate() {
            if m == 0 {
                continue;
            }
            let p = c.add(r * c_rs + h * NR);
            let v = _mm512_mul_ps(v, s);
            // Masked loads and stores touch only the tile's columns (and never fault past them).
            let v = match t.onto {
                Onto::C => _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, p)),
                Onto::Bias(b) => _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, b.add(h * NR))),
                Onto::Zero => v,
            };
            _mm512_mask_storeu_ps(p, m, v);
        }
    }
}
