//! Packed single-precision GEMM, BLIS-style: A read in place (row-major) or packed per call
//! in 6-row panels sized for L2, B packed in 16-column panels that a frozen weight gets once,
//! at load. Register tiles: 6 × 16 (two ymm per row) on AVX2 + FMA, 12 × 32 (two 6-row A
//! panels × two B panels, two zmm per row) on AVX-512, a scalar tile elsewhere.
//!
//! Why our own: on a 2-core AVX2 machine (AMD EPYC, Zen 3) the `gemm` crate's AVX2 kernels ran
//! BERT-base's GEMMs at about 124 GFLOP/s where OpenBLAS's Haswell kernels reach 145–160 and
//! MKL 110–135 on the same cores (bench: `cargo run --release --example bench_gemm`), and it
//! re-packs a weight on every call. `BERT4RS_GEMM_CRATE=1` uses the crate instead (for
//! comparisons).
//!
//! Every tile sums each output's products in the same order (k ascending within a depth
//! block, fused multiply-adds, blocks added onto C in order), so the three tiles give
//! bit-identical results on one machine. AVX-512 CPUs run depths up to 768 as one block
//! (see `ONE_BLOCK_AVX512`), so there results can differ from an AVX2 machine's in the
//! last bits.

use super::common::OutPtr;
use pack::{pack_a, pack_b_into, with_scratch, SCRATCH_A, SCRATCH_B, SCRATCH_W};
use tiles::kernel_scalar;
#[cfg(target_arch = "x86_64")]
use tiles::{kernel_avx2, kernel_avx512};
use tiles::{Kernel, Onto, TileArgs};

mod check;
mod pack;
pub mod skinny;
mod tiles;

pub use check::tile_mismatches;
pub(crate) use pack::widen_bf16;
pub use pack::{pack_b, pack_weight_t, pack_weight_t_bf16, packed_len};
use rayon::prelude::*;
use std::sync::OnceLock;

/// Rows of the register tile (one panel of packed A).
pub const MR: usize = 6;
/// Columns of the register tile (one panel of packed B): two 8-lane AVX2 vectors.
pub const NR: usize = 16;
/// Depth of one packed block on AVX2 and scalar CPUs: a 16-column B panel of this depth is
/// 24 KiB (of Zen 3's 32 KiB L1). 384 rather than 256: BERT's k = 768 then takes two passes
/// over C instead of three (`bench_gemm`, paired against the `gemm` crate: 1.02–1.17× →
/// 1.19–1.29× at BERT shapes, 32-row shapes 3–6 % slower; paired model runs faster at
/// BERT-base 8 × 128 and 1 × 32).
const KC: usize = 384;
/// Deepest GEMM that AVX-512 CPUs run as one depth block. With k = 768 in one block C is
/// written once instead of read back for a second block: at 3072 outputs a row block's C
/// (180 × 3072, 2.2 MB) does not stay in a 1 MB L2, and that read-back cost 10 % at
/// 1024 × 768 × 3072 (AMD Zen 5, `bench_gemm` paired rounds: 415–435 → 455–475 GFLOP/s,
/// 6 of 6). Deeper GEMMs keep [`KC`]: 768-deep blocks everywhere made MiniLM 32 × 64 3 %
/// slower (6 of 6 pairs; its 1536-deep FFN output then no longer fits A, B and C in L2).
/// Measured on AVX-512 only, so AVX2 CPUs keep [`KC`] throughout.
const ONE_BLOCK_AVX512: usize = 768;

/// The depth block for a GEMM of depth `k`. Every tile in this process uses the same rule,
/// so they stay bit-identical to each other; an AVX-512 and an AVX2 machine may differ in
/// the last bits where 384 < k ≤ 768.
fn depth_block(k: usize) -> usize {
    if k <= ONE_BLOCK_AVX512 && Tile::best() == Tile::Avx512 {
        k.max(1)
    } else {
        KC
    }
}

/// Most rows of A per block: 192 × 384 × 4 B = 288 KiB (L2; 144 and 192 measured alike;
/// 576 KiB with a 768-deep AVX-512 block, in AVX-512 CPUs' 1–2 MB L2).
const MC: usize = 192;

/// Whether these kernels are used on this CPU (AVX2 + FMA or AVX-512, unless
/// `BERT4RS_GEMM_CRATE` is set).
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        Tile::best() != Tile::Scalar && std::env::var_os("BERT4RS_GEMM_CRATE").is_none()
    })
}

/// The register-tile kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tile {
    /// 6 × 16, plain Rust (any CPU).
    Scalar,
    /// 6 × 16 on AVX2 + FMA.
    Avx2,
    /// 12 × 32 on AVX-512F.
    Avx512,
}

impl Tile {
    /// The widest tile this CPU runs (`BERT4RS_NO_AVX512=1` caps it at AVX2).
    pub fn best() -> Tile {
        match crate::kernels::simd::isa() {
            crate::kernels::simd::Isa::Avx512 => Tile::Avx512,
            crate::kernels::simd::Isa::Avx2 => Tile::Avx2,
            crate::kernels::simd::Isa::Baseline => Tile::Scalar,
        }
    }

    /// Every tile this CPU runs, narrowest first.
    pub fn available() -> Vec<Tile> {
        [Tile::Scalar, Tile::Avx2, Tile::Avx512]
            .into_iter()
            .filter(|&t| t as u8 <= Tile::best() as u8)
            .collect()
    }

    /// A panels (6 rows each) and B panels (16 columns each) one kernel call covers.
    fn span(self) -> (usize, usize) {
        match self {
            Tile::Avx512 => (2, 2),
            _ => (1, 1),
        }
    }

    /// The kernel for a tile of `rows` rows (1 ..= the tile's height): the SIMD tiles have
    /// a copy per row count that computes only those rows, so a short edge tile costs less
    /// than a full one.
    fn kernel(self, direct: bool, rows: usize) -> Kernel {
        /// `$f::<direct, rows>` for each listed row count.
        macro_rules! by_rows {
            ($f:ident, $($r:literal)*) => {
                match (direct, rows) {
                    $((true, $r) => $f::<true, $r> as Kernel, (false, $r) => $f::<false, $r>,)*
                    _ => unreachable!("a {self:?} tile has no {rows}-row kernel"), // ok: `row_tiles` yields 1 ..= height rows (its test checks every count)
                }
            };
        }
        #[cfg(target_arch = "x86_64")]
        match self {
            Tile::Avx512 => return by_rows!(kernel_avx512, 1 2 3 4 5 6 7 8 9 10 11 12),
            Tile::Avx2 => return by_rows!(kernel_avx2, 1 2 3 4 5 6),
            Tile::Scalar => {}
        }
        if direct {
            kernel_scalar::<true>
        } else {
            kernel_scalar::<false>
        }
    }

    /// Rows one kernel call covers.
    fn height(self) -> usize {
        MR * self.span().0
    }
}

/// Row tiles per block up to which each tile prefetches a slice of the next B panel. With
/// few rows (batch-1 inference: 32 rows, 6 tiles) a weight panel is used briefly, so it
/// streams from memory while the FMAs wait: prefetching it during the previous panel's
/// tiles made BERT-base 1 × 32 16 % faster (paired, 14 of 14 pairs). With many tiles the
/// hardware prefetcher keeps up and MiniLM 32 × 64 measured 4 % slower with it, so not there.
/// (AVX2 on Zen 3. The AVX-512 tile prefetches both of its panels the same way: on Zen 5,
/// BERT-base 1 × 32 median 1.045× faster over 16 pairs, 10 faster — weak evidence, kept
/// for the same reason as on AVX2.)
const PREFETCH_MAX_TILES: usize = 8;

/// Fewest rows at which a SIMD tile keeps both FMA units busy: two accumulators per row and
/// a 4-cycle FMA latency need 8 independent chains. A shorter tile costs as much as this.
const FULL_RATE_ROWS: usize = 4;

/// The tiles (first row, rows) covering `rows` rows of one block: full tiles of
/// `height`, and a short remainder (under [`FULL_RATE_ROWS`]) shared with the last full
/// tile, so 32 rows run as 6·4 + 4 + 4 rather than 6·5 + 2 (measured: 32 rows cost as much
/// as 36 before). Packed A splits only at its 6-row panel boundaries.
fn row_tiles(rows: usize, height: usize, direct: bool) -> Vec<(usize, usize)> {
    let full = rows / height;
    let rem = rows % height;
    let mut tiles: Vec<(usize, usize)> = (0..full).map(|t| (t * height, height)).collect();
    if rem == 0 {
        return tiles;
    }
    if full > 0 && rem < FULL_RATE_ROWS {
        let start = (full - 1) * height;
        let merged = height + rem;
        let grain = if direct { 1 } else { MR };
        let first = (merged / 2 / grain * grain).max(grain);
        if first < merged && merged - first <= height {
            tiles.pop();
            tiles.push((start, first));
            tiles.push((start + first, merged - first));
            return tiles;
        }
    }
    tiles.push((full * height, rem));
    tiles
}

/// The row blocks `[i0, i1)` of an `m`-row GEMM: one block up to [`MC`] rows, else a
/// multiple of `threads` blocks of about `MC` rows. Blocks hold whole tiles of `height` rows
/// and as many tiles as each other (±1): blocks of a fixed row count left a short last
/// block, so one thread did more of the work (1024 rows on 2 threads: 3 · 180 rows on one,
/// 2 · 180 + 124 on the other; balanced, BERT-base 8 × 128 ran 5 % faster on AVX-512).
fn row_blocks(m: usize, height: usize, threads: usize) -> Vec<(usize, usize)> {
    let tiles = m.div_ceil(height);
    let blocks = if m > MC {
        m.div_ceil(MC).next_multiple_of(threads.max(1)).min(tiles)
    } else {
        1
    };
    (0..blocks)
        .map(|b| {
            let (t0, t1) = (tiles * b / blocks, tiles * (b + 1) / blocks);
            (t0 * height, (t1 * height).min(m))
        })
        .collect()
}

/// A strided matrix operand: element `(i, j)` is at `ptr + i·rs + j·cs`.
#[derive(Clone, Copy, Debug)]
pub struct Strided {
    pub ptr: *const f32,
    pub rs: usize,
    pub cs: usize,
}

// SAFETY: read-only views shared by the GEMM's tasks.
unsafe impl Send for Strided {}
unsafe impl Sync for Strided {}

/// `C [m, n] = (accumulate ? C : bias ?? 0) + scale · A [m, k] · B [k, n]` (`bias`: one row
/// of `n` values added to every row, written by the first depth block's tile stores instead
/// of a separate pass), with `B` packed by
/// [`pack_b`] / [`pack_weight_t`] and `C` row-major with row stride `c_rs`. Splits the work
/// over `threads` rayon tasks (1: runs on the calling thread).
///
/// # Safety
/// `a` must cover `m × k` elements with its strides, `packed_b` must hold
/// `packed_len(k, n)` values, and `c` must cover `m` rows of stride `c_rs` with `n` columns
/// that nothing else reads or writes meanwhile.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_packed(
    dims: (usize, usize, usize),
    a: Strided,
    packed_b: &[f32],
    c: *mut f32,
    c_rs: usize,
    scale: f32,
    onto: (bool, Option<&[f32]>),
    threads: usize,
) {
    gemm_packed_on(
        Tile::best(),
        dims,
        a,
        PackedB::F32(packed_b),
        (c, c_rs),
        scale,
        onto,
        threads,
    );
}

/// A packed B operand for [`gemm_packed_on`]: f32 panels, or the bits of bf16 panels
/// ([`pack_weight_t_bf16`]: half the memory), each widened to f32 in L1 before the tiles
/// read it, so the products and sums are those of the f32 panels of the bf16-rounded
/// weight, bit for bit.
#[derive(Clone, Copy, Debug)]
pub enum PackedB<'a> {
    F32(&'a [f32]),
    Bf16(&'a [u16]),
}

impl PackedB<'_> {
    fn len(self) -> usize {
        match self {
            PackedB::F32(b) => b.len(),
            PackedB::Bf16(b) => b.len(),
        }
    }
}

/// [`gemm_packed`] on a given register tile (tests compare the tiles).
///
/// # Safety
/// As [`gemm_packed`], and `tile` must be one of [`Tile::available`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_packed_on(
    tile: Tile,
    (m, n, k): (usize, usize, usize),
    a: Strided,
    packed_b: PackedB,
    (c, c_rs): (*mut f32, usize),
    scale: f32,
    (accumulate, bias): (bool, Option<&[f32]>),
    threads: usize,
) {
    assert!(
        packed_b.len() >= packed_len(k, n),
        "gemm_packed: packed B too short"
    );
    assert!(
        bias.is_none_or(|b| b.len() >= n && !accumulate),
        "gemm_packed: a bias needs n values and no accumulation"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                match bias {
                    Some(b) => std::ptr::copy_nonoverlapping(b.as_ptr(), c.add(i * c_rs), n),
                    None => std::ptr::write_bytes(c.add(i * c_rs), 0, n),
                }
            }
        }
        return;
    }
    let span_j = tile.span().1;
    // Tasks: a multiple of `threads` row blocks when there are enough rows (each task then
    // streams B once), else column ranges of B over one row block.
    let height = tile.height();
    let blocks = row_blocks(m, height, threads);
    let blocks_i = blocks.len();
    let mc = blocks.iter().map(|&(i0, i1)| i1 - i0).max().unwrap_or(0);
    let panels = n.div_ceil(NR);
    let blocks_j = if threads > 1 && blocks_i == 1 {
        (4 * threads).min((panels / 4).max(1))
    } else {
        1
    };
    let chunk_j = panels.div_ceil(blocks_j).next_multiple_of(span_j);
    let blocks_j = panels.div_ceil(chunk_j);
    // Row-major A is read in place (one stream per tile row); other layouts are packed first.
    let direct = a.cs == 1;
    let out = OutPtr(c);
    let block = depth_block(k);
    let task = |apack: &mut [f32], wide: &mut [f32], t: usize| {
        let (bi, bj) = (t / blocks_j, t % blocks_j);
        let (i0, i1) = blocks[bi];
        let rows = i1 - i0;
        let (j0, j1) = (bj * chunk_j, ((bj + 1) * chunk_j).min(panels));
        let tiles = row_tiles(rows, height, direct);
        for p0 in (0..k).step_by(block) {
            let kc = block.min(k - p0);
            if !direct {
                pack_a(a, i0, rows, p0, kc, apack);
            }
            for j in (j0..j1).step_by(span_j) {
                // The first depth block writes C (with the bias); later ones add onto it.
                let onto = match bias {
                    _ if accumulate || p0 > 0 => Onto::C,
                    Some(b) => Onto::Bias(b.as_ptr().add(j * NR)),
                    None => Onto::Zero,
                };
                let cols = (NR * span_j).min(n - j * NR);
                // The tile's B panels at this depth, and the offset from the first to the
                // second: in place for f32, widened into `wide` (L1) for bf16.
                let (b, b_next) = match packed_b {
                    PackedB::F32(pb) => (pb.as_ptr().add((j * k + p0) * NR), k * NR),
                    PackedB::Bf16(pb) => {
                        for (s, dst) in wide
                            .chunks_exact_mut(kc * NR)
                            .take(cols.div_ceil(NR))
                            .enumerate()
                        {
                            widen_bf16(&pb[((j + s) * k + p0) * NR..][..kc * NR], dst);
                        }
                        (wide.as_ptr(), kc * NR)
                    }
                };
                // The next B panel at this depth, a slice per row tile (f32 panels only: a
                // bf16 panel is read once, in order, by the widening loop).
                let next = j + span_j;
                let next_b = match packed_b {
                    PackedB::F32(pb) => pb.as_ptr().wrapping_add((next * k + p0) * NR),
                    PackedB::Bf16(_) => std::ptr::null(),
                };
                let prefetching = matches!(packed_b, PackedB::F32(_));
                // (`kc` lines: one 16-float line per depth, in each of the tile's B panels.)
                let next_lines = if prefetching && next < j1 && tiles.len() <= PREFETCH_MAX_TILES {
                    kc
                } else {
                    0
                };
                for (ti, &(r0, mr)) in tiles.iter().enumerate() {
                    let l0 = next_lines * ti / tiles.len();
                    let l1 = next_lines * (ti + 1) / tiles.len();
                    let (a_ptr, a_next) = if direct {
                        (a.ptr.add((i0 + r0) * a.rs + p0), MR * a.rs)
                    } else {
                        // Packed tiles start on a panel boundary (`row_tiles`).
                        (apack.as_ptr().add(r0 / MR * kc * MR), kc * MR)
                    };
                    tile.kernel(direct, mr)(&TileArgs {
                        kc,
                        a: a_ptr,
                        a_rs: a.rs,
                        // The second A / B panel, where the tile has one.
                        a_next: if mr > MR { a_next } else { 0 },
                        b,
                        b_next: if cols > NR { b_next } else { 0 },
                        c: out.get().add((i0 + r0) * c_rs + j * NR),
                        c_rs,
                        mr,
                        nr: cols,
                        scale,
                        onto,
                        prefetch: (next_b.wrapping_add(l0 * 16), l1 - l0),
                    });
                }
            }
        }
    };
    let tasks = blocks_i * blocks_j;
    let apack_len = if direct {
        0
    } else {
        mc.div_ceil(MR) * MR * block.min(k)
    };
    let wide_len = match packed_b {
        PackedB::F32(_) => 0,
        PackedB::Bf16(_) => block.min(k) * NR * span_j,
    };
    let scratch = |f: &mut dyn FnMut(&mut [f32], &mut [f32])| {
        with_scratch(&SCRATCH_A, apack_len, |ap| {
            with_scratch(&SCRATCH_W, wide_len, |wide| f(ap, wide))
        })
    };
    if threads > 1 && tasks > 1 {
        (0..tasks)
            .into_par_iter()
            .for_each(|t| scratch(&mut |ap, wide| task(ap, wide, t)));
    } else {
        scratch(&mut |ap, wide| {
            for t in 0..tasks {
                task(ap, wide, t);
            }
        });
    }
}

/// [`gemm_packed`] with `B` given as a strided operand (packed here).
///
/// # Safety
/// As [`gemm_packed`], and `b` must cover `k × n` elements with its strides.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm(
    (m, n, k): (usize, usize, usize),
    a: Strided,
    b: Strided,
    c: *mut f32,
    c_rs: usize,
    scale: f32,
    (accumulate, bias): (bool, Option<&[f32]>),
    threads: usize,
) {
    with_scratch(&SCRATCH_B, packed_len(k, n), |packed| {
        pack_b_into(k, n, b, threads, packed);
        gemm_packed(
            (m, n, k),
            a,
            packed,
            c,
            c_rs,
            scale,
            (accumulate, bias),
            threads,
        );
    });
}

#[cfg(test)]
mod tests;
