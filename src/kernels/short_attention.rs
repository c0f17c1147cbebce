//! Inference self-attention of one (sequence, head) with a block of query rows' scores held
//! in AVX-512 registers, for sequences of up to [`MAX_KEYS`] keys and head sizes a multiple
//! of 16: `q·kᵀ` (K transposed once per head into a small buffer), the softmax and `p·v`
//! run without the two small GEMMs' packing or the softmax's three passes over a score
//! matrix, which at MiniLM's 64-token, 32-wide heads cost about as much as the arithmetic.
//! Same semantics as the softmax kernel (masked keys get exactly 0, a row with every key
//! masked is spread evenly) and the same `exp`. A query row's result never depends on the
//! padding after its sequence: padded keys add exact zeros.

use super::simd::{self, Isa};

/// Keys (the sequence length) that fit: 8 vectors of 16 scores a row.
pub(super) const MAX_KEYS: usize = 128;

/// Whether [`attend`] runs sequences of `t` tokens with heads of `d` values on this CPU.
pub(super) fn fits(t: usize, d: usize) -> bool {
    cfg!(target_arch = "x86_64")
        && simd::isa() == Isa::Avx512
        && (1..=MAX_KEYS).contains(&t)
        && d > 0
        && d.is_multiple_of(16)
}

/// Floats of scratch [`attend`] needs for `t` tokens and heads of `d` values.
pub(super) fn scratch_len(t: usize, d: usize) -> usize {
    let tp = t.div_ceil(16) * 16;
    d * tp + MAX_ROWS * tp
}

/// Query rows per block: at most 24 score vectors live in registers.
pub(super) const MAX_ROWS: usize = 6;

/// One (sequence, head): `t` rows of q, k and v at row stride `ld` (the packed projection),
/// the sequence's key mask (1 = token), the score scale, and where the `t × d` context goes
/// (row stride `out_ld`).
pub(super) struct Head<'a, T = f32> {
    pub(super) q: *const T,
    pub(super) k: *const T,
    pub(super) v: *const T,
    pub(super) ld: usize,
    pub(super) d: usize,
    pub(super) keys: &'a [f32],
    pub(super) scale: f32,
    pub(super) out: *mut f32,
    pub(super) out_ld: usize,
}

/// `softmax(scale · q·kᵀ + mask) · v` for one head.
///
/// # Safety
/// [`fits`]`(keys.len(), d)`; q, k and v are valid for `keys.len()` rows of `d` values at
/// stride `ld`, `out` for as many rows at stride `out_ld` with no one else writing them;
/// `scratch` holds [`scratch_len`] floats.
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn attend(head: &Head, scratch: &mut [f32]) {
    let kv = head.keys.len().div_ceil(16);
    debug_assert!(
        fits(head.keys.len(), head.d) && scratch.len() >= scratch_len(head.keys.len(), head.d)
    );
    by_block_shape!(kv, attend_rows, head, scratch)
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) unsafe fn attend(_head: &Head, _scratch: &mut [f32]) {
    unreachable!("fits() is false off x86-64") // ok: callers check `fits` first
}

/// `$f::<R, KV>(args…)` for `KV` (1–8) vectors of 16 keys and the most query rows `R` a
/// block that keep R × KV ≤ 24 score accumulators in registers.
macro_rules! by_block_shape {
    ($kv:expr, $f:ident, $($arg:expr),*) => {
        match $kv {
            1 => $f::<6, 1>($($arg),*),
            2 => $f::<6, 2>($($arg),*),
            3 => $f::<6, 3>($($arg),*),
            4 => $f::<6, 4>($($arg),*),
            5 => $f::<4, 5>($($arg),*),
            6 => $f::<4, 6>($($arg),*),
            7 => $f::<3, 7>($($arg),*),
            _ => $f::<3, 8>($($arg),*),
        }
    };
}
pub(super) use by_block_shape;

/// [`attend`] with `KV` vectors of 16 keys and `R` query rows a block.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
unsafe fn attend_rows<const R: usize, const KV: usize>(head: &Head, scratch: &mut [f32]) {
    use std::arch::x86_64::*;
    let (t, d, tp) = (head.keys.len(), head.d, KV * 16);
    let (kt, p) = scratch.split_at_mut(d * tp);
    // The head's q and v rows lie a packed row apart (past the stream prefetchers' reach):
    // ask for them now, while the transpose waits on k's.
    for j in 0..t {
        for c in (0..d).step_by(16) {
            _mm_prefetch::<_MM_HINT_T0>(head.q.add(j * head.ld + c) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(head.v.add(j * head.ld + c) as *const i8);
        }
    }
    transpose_keys(head, tp, kt);
    let visible = visible_keys::<KV>(head.keys);
    for first in (0..t).step_by(R) {
        let rows = R.min(t - first);
        // Past the last row the block repeats it (computed, never stored).
        let mut q = [head.q; R];
        for (r, qr) in q.iter_mut().enumerate() {
            *qr = head.q.add((first + r.min(rows - 1)) * head.ld);
        }
        let s = scores::<R, KV>(q, kt.as_ptr(), d);
        for (r, sr) in s.iter().enumerate() {
            let pr = probabilities::<KV>(sr, &visible, head.scale, t);
            for (v, pv) in pr.iter().enumerate() {
                _mm512_storeu_ps(p.as_mut_ptr().add(r * tp + v * 16), *pv);
            }
        }
        let out = head.out.add(first * head.out_ld);
        for col in (0..d).step_by(64) {
            let v = head.v.add(col);
            let (p, o) = (p.as_ptr(), out.add(col));
            match (d - col) / 16 {
                1 => context::<R, 1>(p, tp, (v, head.ld, t), (o, head.out_ld, rows)),
                2 => context::<R, 2>(p, tp, (v, head.ld, t), (o, head.out_ld, rows)),
                3 => context::<R, 3>(p, tp, (v, head.ld, t), (o, head.out_ld, rows)),
                _ => context::<R, 4>(p, tp, (v, head.ld, t), (o, head.out_ld, rows)),
            }
        }
    }
}

/// K's rows as columns: `kt[c·tp + j] = k[j][c]`, zero for the padding keys `j ≥ t`, in
/// 16 × 16 blocks through registers (the plain loop became scatters: a fifth of the
/// kernel's time).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn transpose_keys(head: &Head, tp: usize, kt: &mut [f32]) {
    use std::arch::x86_64::*;
    let t = head.keys.len();
    for j0 in (0..tp).step_by(16) {
        for c0 in (0..head.d).step_by(16) {
            let mut rows = [_mm512_setzero_ps(); 16];
            for (i, row) in rows.iter_mut().enumerate().take(t.saturating_sub(j0)) {
                *row = _mm512_loadu_ps(head.k.add((j0 + i) * head.ld + c0));
            }
            for (i, col) in transpose16(rows).iter().enumerate() {
                _mm512_storeu_ps(kt.as_mut_ptr().add((c0 + i) * tp + j0), *col);
            }
        }
    }
}

/// The 16 × 16 transpose of `r` (row i of the result: element i of every row), by 32-, 64-
/// then twice 128-bit interleaves.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) unsafe fn transpose16(
    r: [std::arch::x86_64::__m512; 16],
) -> [std::arch::x86_64::__m512; 16] {
    use std::arch::x86_64::*;
    // Plain loops: closures (`array::from_fn`) do not inherit the caller's target
    // features, and their intrinsics then become calls.
    let mut t = [_mm512_setzero_ps(); 16];
    for i in (0..16).step_by(2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    let mut u = [_mm512_setzero_ps(); 16];
    for (i, ui) in u.iter_mut().enumerate() {
        let (base, j) = (i / 4 * 4, i % 4);
        let (a, b) = (
            _mm512_castps_pd(t[base + j / 2]),
            _mm512_castps_pd(t[base + 2 + j / 2]),
        );
        *ui = _mm512_castpd_ps(match j % 2 {
            0 => _mm512_unpacklo_pd(a, b),
            _ => _mm512_unpackhi_pd(a, b),
        });
    }
    let mut v = [_mm512_setzero_ps(); 16];
    for (i, vi) in v.iter_mut().enumerate() {
        let (base, j) = (i / 8 * 8, i % 8);
        let (a, b) = (u[base + j % 4], u[base + 4 + j % 4]);
        *vi = match j / 4 {
            0 => _mm512_shuffle_f32x4::<0x88>(a, b),
            _ => _mm512_shuffle_f32x4::<0xdd>(a, b),
        };
    }
    let mut out = [_mm512_setzero_ps(); 16];
    for (i, o) in out.iter_mut().enumerate() {
        let (a, b) = (v[i % 8], v[8 + i % 8]);
        *o = match i / 8 {
            0 => _mm512_shuffle_f32x4::<0x88>(a, b),
            _ => _mm512_shuffle_f32x4::<0xdd>(a, b),
        };
    }
    out
}

/// `q_r · kᵀ` for `R` query rows against `KV·16` keys, summed over the `d` values in order.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn scores<const R: usize, const KV: usize>(
    q: [*const f32; R],
    kt: *const f32,
    d: usize,
) -> [[std::arch::x86_64::__m512; KV]; R] {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); KV]; R];
    for c in 0..d {
        let mut k = [_mm512_setzero_ps(); KV];
        for (v, kv) in k.iter_mut().enumerate() {
            *kv = _mm512_loadu_ps(kt.add(c * KV * 16 + v * 16));
        }
        for (r, ar) in acc.iter_mut().enumerate() {
            let qb = _mm512_set1_ps(*q[r].add(c));
            for (a, kv) in ar.iter_mut().zip(&k) {
                *a = _mm512_fmadd_ps(qb, *kv, *a);
            }
        }
    }
    acc
}

/// Bit `j % 16` of word `j / 16`: whether key `j` is visible (mask 1).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn visible_keys<const KV: usize>(keys: &[f32]) -> [std::arch::x86_64::__mmask16; KV] {
    let mut visible = [0; KV];
    for (j, &m) in keys.iter().enumerate() {
        visible[j / 16] |= ((m > 0.0) as u16) << (j % 16);
    }
    visible
}

/// One row's probabilities from its raw scores (`KV·16` keys, zero past the `t` of the
/// sequence): `softmax(scale · s)` over the visible keys; every key masked → `1/t` each
/// (as an additive `finfo.min` mask gives).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) unsafe fn probabilities<const KV: usize>(
    s: &[std::arch::x86_64::__m512; KV],
    visible: &[std::arch::x86_64::__mmask16; KV],
    scale: f32,
    t: usize,
) -> [std::arch::x86_64::__m512; KV] {
    use std::arch::x86_64::*;
    let (neg_inf, vscale) = (_mm512_set1_ps(f32::NEG_INFINITY), _mm512_set1_ps(scale));
    let (mut x, mut max) = ([neg_inf; KV], neg_inf);
    for v in 0..KV {
        x[v] = _mm512_mask_mov_ps(neg_inf, visible[v], _mm512_mul_ps(s[v], vscale));
        max = _mm512_max_ps(max, x[v]);
    }
    let max = _mm512_reduce_max_ps(max);
    let mut e = [_mm512_setzero_ps(); KV];
    if max == f32::NEG_INFINITY {
        for (v, ev) in e.iter_mut().enumerate() {
            let real = t.saturating_sub(v * 16).min(16);
            *ev = _mm512_maskz_mov_ps(((1u32 << real) - 1) as u16, _mm512_set1_ps(1.0 / t as f32));
        }
        return e;
    }
    let (vmax, mut sum) = (_mm512_set1_ps(max), _mm512_setzero_ps());
    for v in 0..KV {
        e[v] = _mm512_maskz_mov_ps(visible[v], exp16(_mm512_sub_ps(x[v], vmax)));
        sum = _mm512_add_ps(sum, e[v]);
    }
    let inv = _mm512_set1_ps(1.0 / _mm512_reduce_add_ps(sum));
    for ev in e.iter_mut() {
        *ev = _mm512_mul_ps(*ev, inv);
    }
    e
}

/// `out_r = Σ_j p[r][j] · v_j` over the `t` keys for `DV·16` columns; rows past `rows` are
/// not stored.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn context<const R: usize, const DV: usize>(
    p: *const f32,
    tp: usize,
    (v, ld, t): (*const f32, usize, usize),
    (out, out_ld, rows): (*mut f32, usize, usize),
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); DV]; R];
    for j in 0..t {
        let mut vj = [_mm512_setzero_ps(); DV];
        for (u, vu) in vj.iter_mut().enumerate() {
            *vu = _mm512_loadu_ps(v.add(j * ld + u * 16));
        }
        for (r, ar) in acc.iter_mut().enumerate() {
            let pb = _mm512_set1_ps(*p.add(r * tp + j));
            for (a, vv) in ar.iter_mut().zip(&vj) {
                *a = _mm512_fmadd_ps(pb, *vv, *a);
            }
        }
    }
    for (r, ar) in acc.iter().enumerate().take(rows) {
        for (u, a) in ar.iter().enumerate() {
            _mm512_storeu_ps(out.add(r * out_ld + u * 16), *a);
        }
    }
}

/// [`simd::exp`] on 16 lanes: the same operations, so the same bits per lane.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) unsafe fn exp16(x: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    let x = _mm512_min_ps(
        _mm512_max_ps(x, _mm512_set1_ps(-87.3)),
        _mm512_set1_ps(88.0),
    );
    let magic = _mm512_set1_ps(MAGIC);
    let kf = _mm512_fmadd_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E), magic);
    let k = _mm512_sub_ps(kf, magic);
    let r = _mm512_fmadd_ps(k, _mm512_set1_ps(-0.693_145_75), x);
    let r = _mm512_fmadd_ps(k, _mm512_set1_ps(-1.428_606_8e-6), r);
    let mut p = _mm512_set1_ps(1.0 / 720.0);
    for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let bias = _mm512_set1_epi32(127u32.wrapping_sub(0x4B40_0000) as i32);
    let scale = _mm512_slli_epi32::<23>(_mm512_add_epi32(_mm512_castps_si512(kf), bias));
    _mm512_mul_ps(_mm512_castsi512_ps(scale), p)
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn transpose16_swaps_rows_and_columns() {
        if simd::isa() != Isa::Avx512 {
            return;
        }
        let m: Vec<f32> = (0..256).map(|i| i as f32).collect();
        let mut got = [0f32; 256];
        // SAFETY: AVX-512 is present; 16 rows of 16 are read and written.
        unsafe {
            use std::arch::x86_64::*;
            #[target_feature(enable = "avx512f")]
            unsafe fn run(m: &[f32], got: &mut [f32; 256]) {
                let rows = std::array::from_fn(|i| _mm512_loadu_ps(m.as_ptr().add(16 * i)));
                for (i, c) in transpose16(rows).iter().enumerate() {
                    _mm512_storeu_ps(got.as_mut_ptr().add(16 * i), *c);
                }
            }
            run(&m, &mut got);
        }
        for i in 0..16 {
            for j in 0..16 {
                assert_eq!(got[i * 16 + j], m[j * 16 + i], "({i}, {j})");
            }
        }
    }
}
