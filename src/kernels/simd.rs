//! Run-time instruction-set dispatch for the row kernels.
//!
//! The kernels are written once as plain loops over fixed-width lane arrays (which LLVM turns
//! into vector code) and compiled three times: baseline x86-64, AVX2+FMA and AVX-512. The
//! widest one the CPU supports is chosen once, at first use, so one binary runs everywhere
//! and `target-cpu=native` is never needed.

use std::sync::OnceLock;

/// Instruction-set levels the kernels are compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Whatever the build target guarantees (SSE2 on x86-64, NEON on aarch64).
    Baseline,
    /// AVX2 + FMA (Haswell and later, Zen).
    Avx2,
    /// AVX-512F (Skylake-SP and later, Zen 4).
    Avx512,
}

/// The widest instruction set this CPU supports.
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Isa {
    // The AVX-512 copies enable F, BW, DQ and VL (plus AVX2/FMA): require all of them
    // (Knights Landing has F without BW/VL).
    let avx512 = is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512dq")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma");
    if std::env::var_os("BERT4RS_NO_AVX512").is_none() && avx512 {
        Isa::Avx512
    } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        Isa::Avx2
    } else {
        Isa::Baseline
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Isa {
    Isa::Baseline
}

/// Whether this CPU multiplies bf16 pairs into f32 sums (`vdpbf16ps`, AVX-512 BF16) and
/// AVX-512 is not switched off (`BERT4RS_NO_AVX512`).
pub fn has_bf16_dot() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static BF16: OnceLock<bool> = OnceLock::new();
        *BF16.get_or_init(|| isa() == Isa::Avx512 && is_x86_feature_detected!("avx512bf16"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether this CPU has AVX-512 VNNI (`vpdpbusd` on zmm) and AVX-512 is not switched off
/// (`BERT4RS_NO_AVX512`).
pub fn has_avx512_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static VNNI: OnceLock<bool> = OnceLock::new();
        *VNNI.get_or_init(|| isa() == Isa::Avx512 && is_x86_feature_detected!("avx512vnni"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether this CPU has AVX-VNNI (`vpdpbusd` on ymm, VEX-encoded: Alder Lake and later
/// client cores, which lack AVX-512) with AVX2 on, unless `BERT4RS_NO_AVX_VNNI` is set (to
/// measure or test the plain AVX2 paths on such a CPU). Kernels ask it only where
/// [`has_avx512_vnni`] is false: the zmm forms are twice as wide.
pub fn has_avx_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVX_VNNI: OnceLock<bool> = OnceLock::new();
        *AVX_VNNI.get_or_init(|| {
            isa() != Isa::Baseline
                && is_x86_feature_detected!("avxvnni")
                && std::env::var_os("BERT4RS_NO_AVX_VNNI").is_none()
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Defines `$name(args)` that runs `$body` compiled for the best ISA available.
/// The body must be an `#[inline(always)]` function so each copy is specialised.
macro_rules! dispatch {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? => $body:path) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
                unsafe fn v4($($arg: $ty),*) $(-> $ret)? { $body($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v3($($arg: $ty),*) $(-> $ret)? { $body($($arg),*) }
                match $crate::kernels::simd::isa() {
                    // SAFETY: the CPU was checked for these features at run time.
                    $crate::kernels::simd::Isa::Avx512 => return unsafe { v4($($arg),*) },
                    $crate::kernels::simd::Isa::Avx2 => return unsafe { v3($($arg),*) },
                    $crate::kernels::simd::Isa::Baseline => {}
                }
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use dispatch;

/// Lanes per accumulator array: 16 f32 fills one AVX-512 register, two AVX2 ones.
pub const LANES: usize = 16;

/// Dot product with lane-parallel accumulators (vectorisable; products and sums rounded
/// separately, no fused multiply-add). Inline it into a `dispatch!`ed kernel.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot_widened(a, b, |y| y)
}

/// [`dot`] with fused multiply-adds: fewer roundings and instructions, but not the bits of
/// [`dot`] (for memory-bound scans whose callers compare with a tolerance).
#[inline(always)]
pub fn dot_fused(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] = x[l].mul_add(y[l], acc[l]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// [`dot`] of `a` with `b` widened to f32 element by element (bf16 bits, say): the same
/// products and summation order as [`dot`] on the widened values.
#[inline(always)]
pub fn dot_widened<T: Copy>(a: &[f32], b: &[T], widen: impl Fn(T) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let rest: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, &y)| x * widen(y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * widen(y[l]);
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// Sum of a slice with lane-parallel accumulators (vectorisable, unlike a plain fold).
#[inline(always)]
pub fn sum(xs: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

/// Largest element (−∞ for an empty slice; NaNs are skipped), with lane-parallel maxima so
/// it vectorises.
#[inline(always)]
pub fn max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] = acc[i].max(c[i]);
        }
    }
    acc.iter()
        .chain(rest)
        .fold(f32::NEG_INFINITY, |a, &b| a.max(b))
}

/// `exp(x)` to about 1 ulp on the range that softmax uses, written so it vectorises
/// (std's `exp` is a libm call per element). Range reduction `x = k·ln2 + r`, then a
/// degree-6 polynomial for `e^r` on `|r| ≤ ln2/2`, scaled by `2^k` via the exponent bits.
/// `k` is rounded with the 1.5·2²³ "magic number" add, so no float→int conversion (which
/// Rust saturates, and LLVM then scalarises) is needed. The polynomial runs as fused
/// multiply-adds: half the latency of separate multiplies and adds (exact GELU, which is
/// latency-bound, 14 % faster) and no less accurate (checked below: ≤ 2 ulp).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    let x = x.clamp(-87.3, 88.0);
    let kf = x.mul_add(std::f32::consts::LOG2_E, MAGIC);
    let k = kf - MAGIC;
    let r = k.mul_add(-0.693_145_75, x);
    let r = k.mul_add(-1.428_606_8e-6, r);
    let p: f32 = 1.0 / 720.0;
    let p = p.mul_add(r, 1.0 / 120.0);
    let p = p.mul_add(r, 1.0 / 24.0);
    let p = p.mul_add(r, 1.0 / 6.0);
    let p = p.mul_add(r, 0.5);
    let p = p.mul_add(r, 1.0);
    let p = p.mul_add(r, 1.0);
    // The low mantissa bits of `kf` hold k (two's complement); shift k + 127 into the exponent.
    let scale = f32::from_bits(kf.to_bits().wrapping_add(127u32.wrapping_sub(0x4B40_0000)) << 23);
    scale * p
}

/// The machine's best-case f32 FLOP/s on `threads` rayon threads (for benchmarks' "% of
/// peak"): 12 independent FMA chains per thread (enough to hide FMA latency) in the widest
/// vectors this CPU has (AVX-512: 16 lanes, AVX2: 8, else scalar).
pub fn fma_peak_gflops(threads: usize) -> f64 {
    const ITERS: usize = 1 << 24;
    let lanes = match isa() {
        Isa::Avx512 => 16,
        Isa::Avx2 => 8,
        Isa::Baseline => 1,
    };
    let secs = best_secs(threads, |k| fma_chains(ITERS, k as f32) as f64);
    (threads * ITERS) as f64 * lanes as f64 * 12.0 * 2.0 / secs / 1e9
}

/// The machine's best-case rate of int8 multiply-adds (u8 × s8 summed into i32, as the
/// integer GEMM's byte tiles do), in GOP/s (2 ops per multiply-add), on `threads` threads:
/// 12 independent `vpdpbusd` chains on AVX-512 VNNI (64 per instruction) or AVX-VNNI (32),
/// else AVX2's `vpmaddubsw` + `vpmaddwd` + `vpaddd` (32 per three instructions); `None`
/// without AVX2.
pub fn int8_peak_gops(threads: usize) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        const ITERS: usize = 1 << 23;
        let (vnni, avx_vnni) = (has_avx512_vnni(), has_avx_vnni());
        let per_iter = match (vnni, isa()) {
            (true, _) => 12 * 64,
            (false, Isa::Baseline) => return None,
            (false, _) => 12 * 32,
        };
        // SAFETY: each kernel runs only where its features were detected.
        let secs = best_secs(threads, |k| unsafe {
            match (vnni, avx_vnni) {
                (true, _) => int8_chains_vnni(ITERS, k as i32),
                (false, true) => int8_chains_avx_vnni(ITERS, k as i32),
                (false, false) => int8_chains_avx2(ITERS, k as i32),
            }
        });
        Some((threads * ITERS * per_iter) as f64 * 2.0 / secs / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = threads;
        None
    }
}

/// The fastest of 7 runs of `work` on each of `threads` threads, in seconds: on a shared
/// host one run can land on a busy moment (a single run once read 100 GFLOP/s where the
/// best is ~150–200).
fn best_secs(threads: usize, work: impl Fn(usize) -> f64 + Sync) -> f64 {
    use rayon::prelude::*;
    (0..7)
        .map(|_| {
            let t0 = std::time::Instant::now();
            let total: f64 = (0..threads).into_par_iter().map(&work).sum();
            std::hint::black_box(total);
            t0.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn int8_chains_vnni(iters: usize, seed: i32) -> f64 {
    use std::arch::x86_64::*;
    let (a, b) = (_mm512_set1_epi32(0x0102_0304), _mm512_set1_epi32(seed | 1));
    let mut acc = [_mm512_set1_epi32(seed); 12];
    for _ in 0..iters {
        for c in acc.iter_mut() {
            *c = _mm512_dpbusd_epi32(*c, a, b);
        }
    }
    acc.iter().map(|&c| _mm512_reduce_add_epi32(c) as f64).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avxvnni")]
unsafe fn int8_chains_avx_vnni(iters: usize, seed: i32) -> f64 {
    use std::arch::x86_64::*;
    let (a, b) = (_mm256_set1_epi32(0x0102_0304), _mm256_set1_epi32(seed | 1));
    let mut acc = [_mm256_set1_epi32(seed); 12];
    for _ in 0..iters {
        for c in acc.iter_mut() {
            *c = _mm256_dpbusd_avx_epi32(*c, a, b);
        }
    }
    ymm_sum(&acc)
}

/// The sum of every i32 lane of `acc`, as f64 (keeps the chains live).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn ymm_sum(acc: &[std::arch::x86_64::__m256i]) -> f64 {
    let mut lanes = [0i32; 8];
    let mut s = 0.0;
    for &c in acc {
        std::arch::x86_64::_mm256_storeu_si256(lanes.as_mut_ptr().cast(), c);
        s += lanes.iter().map(|&v| v as f64).sum::<f64>();
    }
    s
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn int8_chains_avx2(iters: usize, seed: i32) -> f64 {
    use std::arch::x86_64::*;
    let b = _mm256_set1_epi32(seed | 1);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_set1_epi32(seed); 12];
    for _ in 0..iters {
        for c in acc.iter_mut() {
            // The accumulator is the u8 operand: a chain the compiler cannot hoist.
            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(*c, b), ones);
            *c = _mm256_add_epi32(*c, p);
        }
    }
    ymm_sum(&acc)
}

fn fma_chains(iters: usize, seed: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: each branch runs only where `isa` detected its features.
        match isa() {
            Isa::Avx512 => return unsafe { fma_chains_avx512(iters, seed) },
            Isa::Avx2 => return unsafe { fma_chains_avx2(iters, seed) },
            Isa::Baseline => {}
        }
    }
    let mut acc = [seed; 12];
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = *a * 0.999_999 + 1e-7;
        }
    }
    acc.iter().sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_chains_avx512(iters: usize, seed: f32) -> f32 {
    use std::arch::x86_64::*;
    let (m, c) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    let mut acc = [_mm512_set1_ps(seed); 12];
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm512_fmadd_ps(*a, m, c);
        }
    }
    acc.iter().map(|&a| _mm512_reduce_add_ps(a)).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_chains_avx2(iters: usize, seed: f32) -> f32 {
    use std::arch::x86_64::*;
    let (m, c) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    let mut acc = [_mm256_set1_ps(seed); 12];
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, m, c);
        }
    }
    let mut lanes = [0f32; 8];
    let mut s = 0.0;
    for a in acc {
        _mm256_storeu_ps(lanes.as_mut_ptr(), a);
        s += lanes.iter().sum::<f32>();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_f64_exp_over_the_normal_range() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -87.0 + 175.0 * i as f32 / 200_000.0;
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            let ulp = (want as f32).abs() as f64 * f32::EPSILON as f64;
            worst = worst.max((got - want).abs() / ulp);
        }
        assert!(worst <= 2.0, "worst error {worst:.2} ulp");
    }

    #[test]
    fn max_skips_nans_and_is_minus_infinity_when_empty() {
        assert_eq!(max(&[]), f32::NEG_INFINITY);
        let mut v: Vec<f32> = (0..37).map(|i| ((i * 7) % 37) as f32 - 20.0).collect();
        v[5] = f32::NAN;
        assert_eq!(max(&v), 16.0);
        assert_eq!(
            max(&v[..3]),
            v[..3].iter().cloned().fold(f32::NEG_INFINITY, f32::max)
        );
    }
}
