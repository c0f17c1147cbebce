//! One row's activation codes, scale and zero point: the plain quantiser and its AVX2 and
//! AVX-512 versions (the same codes from each), for [`super::quantize_rows`].

/// A code type: bytes or i16.
pub(super) trait Code: Copy + Default + Send + Sync {
    fn from_level(v: f32) -> Self;
    /// `q[..8] = levels` (8 × i32, each in [0, Q]), AVX2.
    #[cfg(target_arch = "x86_64")]
    unsafe fn store8(q: *mut Self, levels: std::arch::x86_64::__m256i);
    /// `q[i] = levels[i]` for the lanes `i` set in `mask` (16 × i32, each in [0, Q]),
    /// AVX-512F.
    #[cfg(target_arch = "x86_64")]
    unsafe fn store16(q: *mut Self, levels: std::arch::x86_64::__m512i, mask: u16);
}

impl Code for u8 {
    fn from_level(v: f32) -> Self {
        v as u8
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn store8(q: *mut u8, c: std::arch::x86_64::__m256i) {
        use std::arch::x86_64::*;
        let w = _mm_packs_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256::<1>(c));
        let b = _mm_packus_epi16(w, w);
        (q as *mut i64).write_unaligned(_mm_cvtsi128_si64(b));
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn store16(q: *mut u8, c: std::arch::x86_64::__m512i, mask: u16) {
        std::arch::x86_64::_mm512_mask_cvtusepi32_storeu_epi8(q as *mut i8, mask, c)
    }
}

impl Code for i16 {
    fn from_level(v: f32) -> Self {
        v as i16
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn store8(q: *mut i16, c: std::arch::x86_64::__m256i) {
        use std::arch::x86_64::*;
        let w = _mm_packs_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256::<1>(c));
        _mm_storeu_si128(q as *mut __m128i, w);
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn store16(q: *mut i16, c: std::arch::x86_64::__m512i, mask: u16) {
        std::arch::x86_64::_mm512_mask_cvtsepi32_storeu_epi16(q, mask, c)
    }
}

/// One row's codes (all `qr.len()` of them: zero past `xr`'s length and for a row of
/// zeros), scale and zero point, with AVX2 where `avx2` is set.
pub(super) fn row_codes<T: Code>(
    xr: &[f32],
    inv: Option<&[f32]>,
    qmax: u16,
    avx2: bool,
    qr: &mut [T],
    (s, z): (&mut f32, &mut i32),
) {
    let (codes, pad) = qr.split_at_mut(xr.len());
    pad.fill(T::default());
    #[cfg(target_arch = "x86_64")]
    if avx2 && crate::kernels::simd::isa() == crate::kernels::simd::Isa::Avx512 {
        // SAFETY: AVX-512F is present.
        return unsafe {
            match inv {
                Some(c) => quantize_row_avx512::<T, true>(xr, c, qmax as f32, codes, s, z),
                None => quantize_row_avx512::<T, false>(xr, &[], qmax as f32, codes, s, z),
            }
        };
    }
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: AVX2 + FMA are present.
        return unsafe {
            match inv {
                Some(c) => quantize_row_avx2::<T, true>(xr, c, qmax as f32, codes, s, z),
                None => quantize_row_avx2::<T, false>(xr, &[], qmax as f32, codes, s, z),
            }
        };
    }
    let _ = avx2;
    match inv {
        Some(c) => quantize_row(xr, c, qmax as f32, codes, s, z),
        None => quantize_row(xr, &vec![1.0; xr.len()], qmax as f32, codes, s, z),
    }
}

/// [`quantize_row`] with AVX2 intrinsics (LLVM's own vectorisation of the plain loop
/// shuffled lanes back and forth: 10 % of an int8 BERT pass). Same rounding (ties to
/// even), same order of operations, so the same codes. `SMOOTH`: scale `x` by `c` (else
/// `c` is not read: the multiply by ones cost a load and a multiply per vector, twice).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_row_avx2<T: Code, const SMOOTH: bool>(
    x: &[f32],
    c: &[f32],
    qmax: f32,
    q: &mut [T],
    s: &mut f32,
    z: &mut i32,
) {
    use std::arch::x86_64::*;
    let body = x.len() / 8 * 8;
    let at = |i: usize| match SMOOTH {
        true => _mm256_mul_ps(
            _mm256_loadu_ps(x.as_ptr().add(i)),
            _mm256_loadu_ps(c.as_ptr().add(i)),
        ),
        false => _mm256_loadu_ps(x.as_ptr().add(i)),
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
    let tail: Vec<f32> = match SMOOTH {
        true => x[body..]
            .iter()
            .zip(&c[body..])
            .map(|(v, c)| v * c)
            .collect(),
        false => x[body..].to_vec(),
    };
    let lo = l8.iter().chain(&tail).fold(0f32, |m, v| m.min(*v));
    let hi = h8.iter().chain(&tail).fold(0f32, |m, v| m.max(*v));
    let Some((scale, zf)) = row_grid(lo, hi, qmax) else {
        // A row of zeros: code 0 with zero point 0.
        return q.fill(T::default());
    };
    (*s, *z) = (scale, zf as i32);
    let inv = 1.0 / scale;
    let (vinv, vz) = (_mm256_set1_ps(inv), _mm256_set1_ps(zf));
    let (zero, top) = (_mm256_setzero_ps(), _mm256_set1_ps(qmax));
    for i in (0..body).step_by(8) {
        let v = _mm256_add_ps(_mm256_mul_ps(at(i), vinv), vz);
        let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
        T::store8(
            q.as_mut_ptr().add(i),
            _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, zero), top)),
        );
    }
    for (d, v) in q[body..].iter_mut().zip(&tail) {
        *d = T::from_level((v * inv + zf).round_ties_even().clamp(0.0, qmax));
    }
}

/// [`quantize_row_avx2`] 16 values at a time, the tail under a mask (half the
/// instructions: the rounding and the conversion are one, the narrowing store another).
/// Same rounding (ties to even), same order of operations, so the same codes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn quantize_row_avx512<T: Code, const SMOOTH: bool>(
    x: &[f32],
    c: &[f32],
    qmax: f32,
    q: &mut [T],
    s: &mut f32,
    z: &mut i32,
) {
    use std::arch::x86_64::*;
    let n = x.len();
    let lanes = |i: usize| -> u16 {
        if n - i >= 16 {
            u16::MAX
        } else {
            (1u16 << (n - i)) - 1
        }
    };
    // Lanes past the end read as 0, which the range [min(x, 0), max(x, 0)] ignores.
    let at = |i: usize, m: u16| match SMOOTH {
        true => _mm512_mul_ps(
            _mm512_maskz_loadu_ps(m, x.as_ptr().add(i)),
            _mm512_maskz_loadu_ps(m, c.as_ptr().add(i)),
        ),
        false => _mm512_maskz_loadu_ps(m, x.as_ptr().add(i)),
    };
    let (mut lo, mut hi) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    for i in (0..n).step_by(16) {
        let v = at(i, lanes(i));
        lo = _mm512_min_ps(lo, v);
        hi = _mm512_max_ps(hi, v);
    }
    let (lo, hi) = (_mm512_reduce_min_ps(lo), _mm512_reduce_max_ps(hi));
    let Some((scale, zf)) = row_grid(lo, hi, qmax) else {
        // A row of zeros: code 0 with zero point 0.
        return q.fill(T::default());
    };
    (*s, *z) = (scale, zf as i32);
    let (vinv, vz) = (_mm512_set1_ps(1.0 / scale), _mm512_set1_ps(zf));
    let (zero, top) = (_mm512_setzero_si512(), _mm512_set1_epi32(qmax as i32));
    for i in (0..n).step_by(16) {
        let m = lanes(i);
        let v = _mm512_add_ps(_mm512_mul_ps(at(i, m), vinv), vz);
        // Rounded to nearest even as it converts; clamping integers after rounding equals
        // rounding after clamping to the integer bounds (NaN converts to i32::MIN → 0,
        // as the float clamp maps it to 0).
        let r = _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
        T::store16(
            q.as_mut_ptr().add(i),
            _mm512_min_epi32(_mm512_max_epi32(r, zero), top),
            m,
        );
    }
}

/// A row's scale and zero point from its range (which includes 0) on a grid of `qmax`
/// steps; `None` for an all-zero (or non-finite) row, which keeps `s = 1, z = 0` and
/// codes 0.
fn row_grid(lo: f32, hi: f32, qmax: f32) -> Option<(f32, f32)> {
    let range = hi - lo;
    if range <= 0.0 || !range.is_finite() {
        return None;
    }
    let s = range / qmax;
    Some((s, (-lo / s).round_ties_even()))
}

fn quantize_row<T: Code>(x: &[f32], c: &[f32], qmax: f32, q: &mut [T], s: &mut f32, z: &mut i32) {
    let x: Vec<f32> = x.iter().zip(c).map(|(v, c)| v * c).collect();
    let lo = x.iter().fold(0f32, |m, v| m.min(*v));
    let hi = x.iter().fold(0f32, |m, v| m.max(*v));
    let Some((scale, zf)) = row_grid(lo, hi, qmax) else {
        // A row of zeros: code 0 with zero point 0.
        return q.fill(T::default());
    };
    (*s, *z) = (scale, zf as i32);
    let inv = 1.0 / scale;
    for (d, v) in q.iter_mut().zip(&x) {
        *d = T::from_level((v * inv + zf).round_ties_even().clamp(0.0, qmax));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_vector_quantiser_gives_the_plain_codes_for_any_row_length() {
        use crate::kernels::simd::{isa, Isa};
        type Row = unsafe fn(&[f32], &[f32], f32, &mut [u8], &mut f32, &mut i32);
        let mut kernels: Vec<(&str, Row, Row)> = Vec::new();
        if isa() != Isa::Baseline {
            kernels.push((
                "avx2",
                quantize_row_avx2::<u8, true>,
                quantize_row_avx2::<u8, false>,
            ));
        }
        if isa() == Isa::Avx512 {
            kernels.push((
                "avx512",
                quantize_row_avx512::<u8, true>,
                quantize_row_avx512::<u8, false>,
            ));
        }
        for len in (1..=40).chain([383, 768]) {
            let mut x: Vec<f32> = (0..len)
                .map(|i| ((i * 7919 + len * 31) % 1013) as f32 / 506.0 - 1.0)
                .collect();
            x[len / 2] = 3.5; // an outlier: the rest of the row gets few levels
            let c: Vec<f32> = (0..len).map(|i| 0.5 + (i % 7) as f32 * 0.25).collect();
            let ones = vec![1f32; len];
            for qmax in [127.0, 255.0] {
                for (name, smooth, plain) in &kernels {
                    for (kernel, scale) in [(smooth, &c), (plain, &ones)] {
                        let (mut want, mut got) = (vec![0u8; len], vec![0u8; len]);
                        let (mut sw, mut zw, mut sg, mut zg) = (1f32, 0i32, 1f32, 0i32);
                        quantize_row(&x, scale, qmax, &mut want, &mut sw, &mut zw);
                        // SAFETY: `isa()` reported the instruction set.
                        unsafe { kernel(&x, scale, qmax, &mut got, &mut sg, &mut zg) };
                        assert_eq!((got, sg, zg), (want, sw, zw), "{name} len {len} q {qmax}");
                    }
                }
            }
        }
    }
}
