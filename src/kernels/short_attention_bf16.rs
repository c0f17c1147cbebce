//! [`super::short_attention`] with attention's two products in bf16 (`vdpbf16ps`, AVX-512
//! BF16: twice the f32 FMA rate): q, k, the probabilities and v are rounded to bf16 (to
//! nearest even), each product of two bf16 values is exact in f32, and the sums, scaling
//! and softmax stay f32. The result equals f32 attention on the rounded operands up to the
//! order of the sums. Pairs of depth values share a 32-bit lane: k is transposed as pairs
//! `(k[j][2c], k[j][2c+1])` per key, v interleaved as `(v[2j][u], v[2j+1][u])` per column.
//! Padded keys add exact zeros, as in the f32 kernel. q, k and v come as f32 or as bf16
//! bits ([`Operand`]) that the Q/K/V projection already rounded the same way.

#[cfg(target_arch = "x86_64")]
use super::short_attention::{by_block_shape, probabilities, transpose16, visible_keys};
use super::short_attention::{Head, MAX_ROWS};
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Whether [`attend`] runs sequences of `t` tokens with heads of `d` values on this CPU.
pub(super) fn fits(t: usize, d: usize) -> bool {
    super::short_attention::fits(t, d) && d.is_multiple_of(32) && super::simd::has_bf16_dot()
}

/// 32-bit words (as floats) of scratch [`attend`] needs: k's pairs, v's pairs, a block's
/// q rows and probabilities.
pub(super) fn scratch_len(t: usize, d: usize) -> usize {
    let tp = t.div_ceil(16) * 16;
    d / 2 * tp + tp / 2 * d + MAX_ROWS * (d / 2 + tp / 2)
}

/// What q, k and v are read from: f32 (rounded to bf16 here, to nearest even) or bf16 bits.
pub(super) trait Operand: Copy {
    /// The 32 values at `src` as bf16, in order: 16 words of pairs `(src[2i], src[2i+1])`.
    ///
    /// # Safety
    /// AVX-512F and BF16 present; 32 values readable at `src`.
    #[cfg(target_arch = "x86_64")]
    unsafe fn pairs(src: *const Self) -> __m512;

    /// The 16 values at `lo` then the 16 at `hi` (zeros for `None`) as 32 bf16 words.
    ///
    /// # Safety
    /// As [`Self::pairs`], 16 values readable at each pointer given.
    #[cfg(target_arch = "x86_64")]
    unsafe fn two_rows(lo: Option<*const Self>, hi: Option<*const Self>) -> __m512i;

    /// A block's query rows (`d` values at each of `rows`) as bf16 pair words: f32 rows
    /// rounded into `buf` (row `r` at `r·d/2`), bf16 rows read where they lie.
    ///
    /// # Safety
    /// As [`Self::pairs`] for every row; `buf` holds `R·d/2` words.
    #[cfg(target_arch = "x86_64")]
    unsafe fn query_rows<const R: usize>(
        rows: [*const Self; R],
        d: usize,
        buf: *mut u32,
    ) -> [*const u32; R];
}

impl Operand for f32 {
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn pairs(src: *const f32) -> __m512 {
        let x = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src.add(16)), _mm512_loadu_ps(src));
        std::mem::transmute::<__m512bh, __m512>(x)
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn two_rows(lo: Option<*const f32>, hi: Option<*const f32>) -> __m512i {
        // No closures here: they would be compiled without the caller's target features.
        let (mut l, mut h) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        if let Some(p) = lo {
            l = _mm512_loadu_ps(p);
        }
        if let Some(p) = hi {
            h = _mm512_loadu_ps(p);
        }
        std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(h, l))
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn query_rows<const R: usize>(
        rows: [*const f32; R],
        d: usize,
        buf: *mut u32,
    ) -> [*const u32; R] {
        let mut out = [buf as *const u32; R];
        for (r, (o, src)) in out.iter_mut().zip(rows).enumerate() {
            let dst = buf.add(r * d / 2);
            for c in (0..d).step_by(32) {
                _mm512_storeu_ps(dst.add(c / 2) as *mut f32, f32::pairs(src.add(c)));
            }
            *o = dst;
        }
        out
    }
}

/// bf16 bits.
impl Operand for u16 {
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn pairs(src: *const u16) -> __m512 {
        _mm512_loadu_ps(src as *const f32)
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn two_rows(lo: Option<*const u16>, hi: Option<*const u16>) -> __m512i {
        let (mut l, mut h) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        if let Some(p) = lo {
            l = _mm256_loadu_si256(p as *const __m256i);
        }
        if let Some(p) = hi {
            h = _mm256_loadu_si256(p as *const __m256i);
        }
        _mm512_inserti64x4::<1>(_mm512_castsi256_si512(l), h)
    }

    /// No copy (a copy loop here became a `memcpy` call per row).
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn query_rows<const R: usize>(
        rows: [*const u16; R],
        _d: usize,
        _buf: *mut u32,
    ) -> [*const u32; R] {
        rows.map(|p| p as *const u32)
    }
}

/// `softmax(scale · q·kᵀ + mask) · v` for one head with bf16 products.
///
/// # Safety
/// As [`super::short_attention::attend`], with [`fits`] and [`scratch_len`] of this module.
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn attend<T: Operand>(head: &Head<T>, scratch: &mut [f32]) {
    debug_assert!(
        fits(head.keys.len(), head.d) && scratch.len() >= scratch_len(head.keys.len(), head.d)
    );
    by_block_shape!(head.keys.len().div_ceil(16), attend_rows, head, scratch)
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) unsafe fn attend<T: Operand>(_head: &Head<T>, _scratch: &mut [f32]) {
    unreachable!("fits() is false off x86-64") // ok: callers check `fits` first
}

/// [`attend`] with `KV` vectors of 16 keys and `R` query rows a block.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx2,fma")]
unsafe fn attend_rows<const R: usize, const KV: usize>(
    head: &Head<impl Operand>,
    scratch: &mut [f32],
) {
    let (t, d, tp) = (head.keys.len(), head.d, KV * 16);
    let kt = scratch.as_mut_ptr() as *mut u32;
    let v2 = kt.add(d / 2 * tp);
    let qb = v2.add(tp / 2 * d);
    let pb = qb.add(R * d / 2);
    keys(head, tp, kt);
    values(head, tp, v2);
    let visible = visible_keys::<KV>(head.keys);
    for first in (0..t).step_by(R) {
        let rows = R.min(t - first);
        // Past the last row the block repeats it (computed, never stored).
        let mut q = [head.q; R];
        for (r, qr) in q.iter_mut().enumerate() {
            *qr = head.q.add((first + r.min(rows - 1)) * head.ld);
        }
        let q = Operand::query_rows(q, d, qb);
        let s = scores::<R, KV>(q, kt, d / 2);
        for (r, sr) in s.iter().enumerate() {
            let pr = probabilities::<KV>(sr, &visible, head.scale, t);
            for (v, pv) in pr.iter().enumerate() {
                let b = std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(*pv));
                _mm256_storeu_si256(pb.add(r * tp / 2 + v * 8) as *mut _, b);
            }
        }
        let out = head.out.add(first * head.out_ld);
        let pairs = t.div_ceil(2);
        for col in (0..d).step_by(64) {
            let (v, o) = (v2.add(col), out.add(col));
            match (d - col) / 16 {
                1 => context::<R, 1>(pb, tp / 2, (v, d, pairs), (o, head.out_ld, rows)),
                2 => context::<R, 2>(pb, tp / 2, (v, d, pairs), (o, head.out_ld, rows)),
                3 => context::<R, 3>(pb, tp / 2, (v, d, pairs), (o, head.out_ld, rows)),
                _ => context::<R, 4>(pb, tp / 2, (v, d, pairs), (o, head.out_ld, rows)),
            }
        }
    }
}

/// k's rows as bf16 pairs, transposed: word `c·tp + j` holds `(k[j][2c], k[j][2c+1])`,
/// zero for the padding keys `j ≥ t`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn keys<T: Operand>(head: &Head<T>, tp: usize, kt: *mut u32) {
    let t = head.keys.len();
    for j0 in (0..tp).step_by(16) {
        for c0 in (0..head.d).step_by(32) {
            let mut rows = [_mm512_setzero_ps(); 16];
            for (i, row) in rows.iter_mut().enumerate().take(t.saturating_sub(j0)) {
                *row = T::pairs(head.k.add((j0 + i) * head.ld + c0));
            }
            for (i, col) in transpose16(rows).iter().enumerate() {
                _mm512_storeu_ps(kt.add((c0 / 2 + i) * tp + j0) as *mut f32, *col);
            }
        }
    }
}

/// v's rows two by two as interleaved bf16: word `jp·d + u` holds `(v[2jp][u],
/// v[2jp+1][u])`, zero past the sequence.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn values<T: Operand>(head: &Head<T>, tp: usize, v2: *mut u32) {
    let t = head.keys.len();
    let mut idx = [0i16; 32];
    for i in 0..16 {
        idx[2 * i] = i as i16;
        idx[2 * i + 1] = 16 + i as i16;
    }
    let idx = _mm512_loadu_si512(idx.as_ptr() as *const _);
    for jp in 0..tp / 2 {
        let (j, d) = (2 * jp, head.d);
        for u0 in (0..d).step_by(16) {
            let row = |j: usize| (j < t).then(|| head.v.add(j * head.ld + u0));
            let (lo, hi) = (row(j), row(j + 1));
            let x = T::two_rows(lo, hi);
            _mm512_storeu_si512(
                v2.add(jp * d + u0) as *mut _,
                _mm512_permutexvar_epi16(idx, x),
            );
        }
    }
}

/// `q_r · kᵀ` for `R` query rows (bf16 pairs, `half` words each) against `KV·16` keys.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn scores<const R: usize, const KV: usize>(
    q: [*const u32; R],
    kt: *const u32,
    half: usize,
) -> [[__m512; KV]; R] {
    let mut acc = [[_mm512_setzero_ps(); KV]; R];
    for c in 0..half {
        let mut k = [_mm512_setzero_si512(); KV];
        for (v, kv) in k.iter_mut().enumerate() {
            *kv = _mm512_loadu_si512(kt.add(c * KV * 16 + v * 16) as *const _);
        }
        for (r, ar) in acc.iter_mut().enumerate() {
            let qv = std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(
                q[r].add(c).read_unaligned() as i32,
            ));
            for (a, kv) in ar.iter_mut().zip(&k) {
                *a = _mm512_dpbf16_ps(*a, qv, std::mem::transmute::<__m512i, __m512bh>(*kv));
            }
        }
    }
    acc
}

/// `out_r = Σ_j p[r][j] · v_j` over `pairs` key pairs for `DV·16` columns; rows past
/// `rows` are not stored.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn context<const R: usize, const DV: usize>(
    p: *const u32,
    ph: usize,
    (v, ld, pairs): (*const u32, usize, usize),
    (out, out_ld, rows): (*mut f32, usize, usize),
) {
    let mut acc = [[_mm512_setzero_ps(); DV]; R];
    for jp in 0..pairs {
        let mut vj = [_mm512_setzero_si512(); DV];
        for (u, vu) in vj.iter_mut().enumerate() {
            *vu = _mm512_loadu_si512(v.add(jp * ld + u * 16) as *const _);
        }
        for (r, ar) in acc.iter_mut().enumerate() {
            let pv = std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(
                *p.add(r * ph + jp) as i32,
            ));
            for (a, vv) in ar.iter_mut().zip(&vj) {
                *a = _mm512_dpbf16_ps(*a, pv, std::mem::transmute::<__m512i, __m512bh>(*vv));
            }
        }
    }
    for (r, ar) in acc.iter().enumerate().take(rows) {
        for (u, a) in ar.iter().enumerate() {
            _mm512_storeu_ps(out.add(r * out_ld + u * 16), *a);
        }
    }
}
