//! Packing of the GEMM operands into the panels the register tiles read, and the
//! per-thread scratch buffers they are packed into.

use super::{Strided, MR, NR};
use rayon::prelude::*;
use std::cell::Cell;
use std::thread::LocalKey;

/// Length of `B [k, n]` packed: `ceil(n / 16)` panels of `k × 16` values.
pub fn packed_len(k: usize, n: usize) -> usize {
    n.div_ceil(NR) * k * NR
}

/// Packs `B [k, n]` into 16-column panels (`[panel][k][16]`, zero-padded on the right).
///
/// # Safety
/// `b` must cover `k × n` elements with its strides.
pub unsafe fn pack_b(k: usize, n: usize, b: Strided, threads: usize) -> Vec<f32> {
    let mut out = vec![0f32; packed_len(k, n)];
    pack_b_into(k, n, b, threads, &mut out);
    out
}

/// [`pack_b`] into `out` (`packed_len(k, n)` values, every one written).
pub(super) unsafe fn pack_b_into(k: usize, n: usize, b: Strided, threads: usize, out: &mut [f32]) {
    if k == 0 || n == 0 {
        return;
    }
    let job = |(j, panel): (usize, &mut [f32])| pack_b_panel(b, k, n, j, panel);
    if threads > 1 && k * n > 64 * 1024 {
        out.par_chunks_mut(k * NR).enumerate().for_each(job);
    } else {
        out.chunks_mut(k * NR).enumerate().for_each(job);
    }
}

thread_local! {
    /// Per-thread packing buffers for B and for A, reused across GEMM calls.
    pub(super) static SCRATCH_B: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    pub(super) static SCRATCH_A: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    /// bf16 B panels widened to f32 for the tiles (one depth block of a tile's panels).
    pub(super) static SCRATCH_W: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` on a scratch slice of `len` values (contents unspecified) that this thread keeps
/// between calls: no allocation, zero-fill or fresh-page faults per GEMM (a packed B is up
/// to 12 MB in a BERT backward pass). A nested call on the same thread gets its own buffer.
pub(super) fn with_scratch<R>(
    slot: &'static LocalKey<Cell<Vec<f32>>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    let mut buf = slot.with(Cell::take);
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    let out = f(&mut buf[..len]);
    slot.with(|cell| {
        let nested = cell.take();
        cell.set(if nested.len() > buf.len() {
            nested
        } else {
            buf
        });
    });
    out
}

/// Packs a row-major weight `w [n, k]` as `B = wᵀ [k, n]` (a linear layer's `x · wᵀ`).
pub fn pack_weight_t(w: &[f32], n: usize, k: usize) -> Vec<f32> {
    assert_eq!(w.len(), n * k, "pack_weight_t: weight length");
    let b = Strided {
        ptr: w.as_ptr(),
        rs: 1,
        cs: k,
    };
    // SAFETY: wᵀ(kk, j) = w[j·k + kk] stays inside `w`.
    unsafe { pack_b(k, n, b, rayon::current_num_threads()) }
}

/// [`pack_weight_t`] rounded to bf16 (nearest, ties to even) and kept as bits: the panels
/// [`crate::kernels::Bf16Panels`] holds, half the memory of f32 ones.
pub fn pack_weight_t_bf16(w: &[f32], n: usize, k: usize) -> Vec<u16> {
    (pack_weight_t(w, n, k).iter())
        .map(|&v| half::bf16::from_f32(v).to_bits())
        .collect()
}

/// `dst[i] = src[i]` read as bf16 bits: the bits become the upper half of an f32 (exact).
pub(crate) fn widen_bf16(src: &[u16], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::simd::isa() != crate::kernels::simd::Isa::Baseline {
        // SAFETY: AVX2 was detected at run time.
        unsafe { widen_bf16_avx2(src, dst) };
        return;
    }
    widen_bf16_plain(src, dst);
}

#[inline(always)]
fn widen_bf16_plain(src: &[u16], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f32::from_bits(u32::from(s) << 16);
    }
}

/// The same loop compiled for AVX2 (the build's baseline is SSE2): 8 values per
/// zero-extend + shift.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn widen_bf16_avx2(src: &[u16], dst: &mut [f32]) {
    widen_bf16_plain(src, dst);
}

pub(super) unsafe fn pack_b_panel(b: Strided, k: usize, n: usize, j: usize, dst: &mut [f32]) {
    let j0 = j * NR;
    let cols = NR.min(n - j0);
    if cols < NR {
        // Zero padding right of the matrix (buffers may be reused, not fresh).
        for row in dst.chunks_exact_mut(NR) {
            row[cols..].fill(0.0);
        }
    }
    if b.cs == 1 && cols == NR {
        // A fixed-size copy compiles to two vector moves; a variable-length one was a
        // `memmove` call per 64 bytes (2.6 % of a training step in a profile).
        for (kk, row) in dst.chunks_exact_mut(NR).enumerate() {
            let src = &*(b.ptr.add(kk * b.rs + j0) as *const [f32; NR]);
            row.copy_from_slice(src);
        }
    } else if b.cs == 1 {
        for (kk, row) in dst.chunks_exact_mut(NR).enumerate() {
            let src = std::slice::from_raw_parts(b.ptr.add(kk * b.rs + j0), cols);
            row[..cols].copy_from_slice(src);
        }
    } else {
        // Depths already packed by register transposes (none off AVX2).
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if b.rs == 1
            && cols == NR
            && crate::kernels::simd::isa() != crate::kernels::simd::Isa::Baseline
        {
            // Columns of B are contiguous rows (a transposed operand: a weight `w [n, k]`,
            // or the keys in `q·kᵀ`): 8 × 8 register transposes.
            done = transpose_panel_avx2(b.ptr.add(j0 * b.cs), b.cs, k, dst);
        }
        for c in 0..cols {
            let src = b.ptr.add((j0 + c) * b.cs);
            for kk in done..k {
                *dst.get_unchecked_mut(kk * NR + c) = *src.add(kk * b.rs);
            }
        }
    }
}

/// `dst[kk][c] = src[c·cs + kk]` for the 16 columns `c` and depths `kk` below `k` rounded
/// down to 8, by 8 × 8 in-register transposes; returns that depth (the caller does the rest).
/// Element by element this packing was a tenth of MiniLM's attention time (perf).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn transpose_panel_avx2(
    src: *const f32,
    cs: usize,
    k: usize,
    dst: &mut [f32],
) -> usize {
    use std::arch::x86_64::*;
    let depth = k / 8 * 8;
    debug_assert!(dst.len() >= k * NR);
    for kk in (0..depth).step_by(8) {
        for half in 0..2 {
            let row = |c: usize| _mm256_loadu_ps(src.add((half * 8 + c) * cs + kk));
            let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
            let (r4, r5, r6, r7) = (row(4), row(5), row(6), row(7));
            // Interleave pairs, then quads, then swap 128-bit halves.
            let (t0, t1) = (_mm256_unpacklo_ps(r0, r1), _mm256_unpackhi_ps(r0, r1));
            let (t2, t3) = (_mm256_unpacklo_ps(r2, r3), _mm256_unpackhi_ps(r2, r3));
            let (t4, t5) = (_mm256_unpacklo_ps(r4, r5), _mm256_unpackhi_ps(r4, r5));
            let (t6, t7) = (_mm256_unpacklo_ps(r6, r7), _mm256_unpackhi_ps(r6, r7));
            let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            let out = [
                _mm256_permute2f128_ps::<0x20>(u0, u4),
                _mm256_permute2f128_ps::<0x20>(u1, u5),
                _mm256_permute2f128_ps::<0x20>(u2, u6),
                _mm256_permute2f128_ps::<0x20>(u3, u7),
                _mm256_permute2f128_ps::<0x31>(u0, u4),
                _mm256_permute2f128_ps::<0x31>(u1, u5),
                _mm256_permute2f128_ps::<0x31>(u2, u6),
                _mm256_permute2f128_ps::<0x31>(u3, u7),
            ];
            for (i, v) in out.into_iter().enumerate() {
                _mm256_storeu_ps(dst.as_mut_ptr().add((kk + i) * NR + half * 8), v);
            }
        }
    }
    depth
}

/// Packs rows `i0 .. i0 + mc` × columns `p0 .. p0 + kc` of A into 6-row panels
/// (`[panel][kc][6]`, zero rows below the end).
pub(super) unsafe fn pack_a(
    a: Strided,
    i0: usize,
    mc: usize,
    p0: usize,
    kc: usize,
    dst: &mut [f32],
) {
    for (ip, panel) in dst[..mc.div_ceil(MR) * kc * MR]
        .chunks_exact_mut(kc * MR)
        .enumerate()
    {
        let r0 = i0 + ip * MR;
        let rows = MR.min(mc - ip * MR);
        if a.rs == 1 && rows == MR {
            for (kk, out) in panel.chunks_exact_mut(MR).enumerate() {
                let src = std::slice::from_raw_parts(a.ptr.add((p0 + kk) * a.cs + r0), MR);
                out.copy_from_slice(src);
            }
            continue;
        }
        for r in 0..MR {
            if r < rows {
                let src = a.ptr.add((r0 + r) * a.rs + p0 * a.cs);
                for kk in 0..kc {
                    *panel.get_unchecked_mut(kk * MR + r) = *src.add(kk * a.cs);
                }
            } else {
                for kk in 0..kc {
                    *panel.get_unchecked_mut(kk * MR + r) = 0.0;
                }
            }
        }
    }
}
