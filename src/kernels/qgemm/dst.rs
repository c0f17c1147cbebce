//! Where the integer GEMM's outputs go: f32, or rounded to bf16 as they are stored.

use crate::kernels::common::OutPtr;

/// Where a GEMM's outputs go, `[rows, n]` row-major: f32, or bf16 bits.
#[derive(Clone, Copy)]
pub(super) enum Dst {
    F32(OutPtr<f32>),
    Bf16(OutPtr<u16>),
}

impl Dst {
    /// The destination `offset` values further on.
    ///
    /// # Safety
    /// As `pointer::add`: the result stays inside the output.
    pub(super) unsafe fn add(self, offset: usize) -> Self {
        match self {
            Dst::F32(p) => Dst::F32(OutPtr(p.get().add(offset))),
            Dst::Bf16(p) => Dst::Bf16(OutPtr(p.get().add(offset))),
        }
    }

    /// Writes `values` here (f32, or rounded to bf16).
    ///
    /// # Safety
    /// `values.len()` outputs from here are inside the output and no one else writes them.
    #[inline(always)]
    pub(super) unsafe fn write(self, values: &[f32]) {
        match self {
            Dst::F32(p) => {
                std::slice::from_raw_parts_mut(p.get(), values.len()).copy_from_slice(values)
            }
            Dst::Bf16(p) => {
                let o = std::slice::from_raw_parts_mut(p.get(), values.len());
                for (o, v) in o.iter_mut().zip(values) {
                    *o = half::bf16::from_f32(*v).to_bits();
                }
            }
        }
    }
}

/// 16 floats rounded to bf16 bits as `half::bf16::from_f32` rounds them (to nearest even,
/// NaN kept quiet, subnormals kept): `vcvtneps2bf16` flushes subnormals and needs AVX-512
/// BF16, which not every VNNI CPU has.
///
/// # Safety
/// AVX-512F present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) unsafe fn bf16_bits(y: std::arch::x86_64::__m512) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    let b = _mm512_castps_si512(y);
    let top = _mm512_srli_epi32::<16>(b);
    let odd = _mm512_and_si512(top, _mm512_set1_epi32(1));
    let bias = _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff));
    let rounded = _mm512_srli_epi32::<16>(_mm512_add_epi32(b, bias));
    let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(y, y);
    let quiet = _mm512_or_si512(top, _mm512_set1_epi32(0x40));
    _mm512_cvtepi32_epi16(_mm512_mask_mov_epi32(rounded, nan, quiet))
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    #[test]
    fn bf16_bits_round_as_half_does_ties_nan_infinities_and_subnormals_included() {
        if !is_x86_feature_detected!("avx512f") {
            return;
        }
        let special: [u32; 16] = [
            0x3f80_8000, // a tie, even below: stays
            0x3f81_8000, // a tie, odd below: up
            0x3f80_8001,
            0x7f80_0001, // a signalling NaN: quietened, not turned into infinity
            0xffc0_1234,
            0x7f80_0000,
            0xff80_0000,
            0x7f7f_ffff, // the largest finite float: up to infinity
            0x8000_0000,
            0x0000_0001, // subnormals are rounded, not flushed
            0x0000_8000,
            0x0001_8000,
            0x807f_ffff,
            0x4049_0fdb,
            0xc2f6_e979,
            0x3380_0000,
        ];
        let mut cases: Vec<u32> = special.to_vec();
        cases.extend((0..4096u32).map(|i| i.wrapping_mul(2_654_435_761)));
        for chunk in cases.chunks_exact(16) {
            let x: [f32; 16] = std::array::from_fn(|i| f32::from_bits(chunk[i]));
            use std::arch::x86_64::{__m256i, __m512};
            use std::mem::transmute;
            // SAFETY: AVX-512F checked above.
            let got = unsafe { super::bf16_bits(transmute::<[f32; 16], __m512>(x)) };
            // SAFETY: 16 lanes of 16 bits.
            let got = unsafe { transmute::<__m256i, [u16; 16]>(got) };
            for (g, v) in got.iter().zip(x) {
                assert_eq!(
                    *g,
                    half::bf16::from_f32(v).to_bits(),
                    "{:#010x}",
                    v.to_bits()
                );
            }
        }
    }
}
