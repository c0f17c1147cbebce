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
//! (see [`ONE_BLOCK_AVX512`]), so there results can differ from an AVX2 machine's in the
//! last bits.

use super::attention::OutPtr;
use rayon::prelude::*;
use std::cell::Cell;
use std::sync::OnceLock;
use std::thread::LocalKey;

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
        match super::simd::isa() {
            super::simd::Isa::Avx512 => Tile::Avx512,
            super::simd::Isa::Avx2 => Tile::Avx2,
            super::simd::Isa::Baseline => Tile::Scalar,
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
unsafe fn pack_b_into(k: usize, n: usize, b: Strided, threads: usize, out: &mut [f32]) {
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
    static SCRATCH_B: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    static SCRATCH_A: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` on a scratch slice of `len` values (contents unspecified) that this thread keeps
/// between calls: no allocation, zero-fill or fresh-page faults per GEMM (a packed B is up
/// to 12 MB in a BERT backward pass). A nested call on the same thread gets its own buffer.
fn with_scratch<R>(
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

unsafe fn pack_b_panel(b: Strided, k: usize, n: usize, j: usize, dst: &mut [f32]) {
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
        if b.rs == 1 && cols == NR && super::simd::isa() != super::simd::Isa::Baseline {
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
unsafe fn transpose_panel_avx2(src: *const f32, cs: usize, k: usize, dst: &mut [f32]) -> usize {
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
unsafe fn pack_a(a: Strided, i0: usize, mc: usize, p0: usize, kc: usize, dst: &mut [f32]) {
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
        packed_b,
        (c, c_rs),
        scale,
        onto,
        threads,
    );
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
    packed_b: &[f32],
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
    let task = |apack: &mut [f32], t: usize| {
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
                // The next B panel at this depth, a slice per row tile.
                let next = j + span_j;
                let next_b = packed_b.as_ptr().wrapping_add((next * k + p0) * NR);
                // (`kc` lines: one 16-float line per depth, in each of the tile's B panels.)
                let next_lines = if next < j1 && tiles.len() <= PREFETCH_MAX_TILES {
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
                        b: packed_b.as_ptr().add((j * k + p0) * NR),
                        b_next: if cols > NR { k * NR } else { 0 },
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
    if threads > 1 && tasks > 1 {
        (0..tasks)
            .into_par_iter()
            .for_each(|t| with_scratch(&SCRATCH_A, apack_len, |ap| task(ap, t)));
    } else {
        with_scratch(&SCRATCH_A, apack_len, |ap| {
            for t in 0..tasks {
                task(ap, t);
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

/// What a tile's product (times `scale`) is stored onto.
#[derive(Clone, Copy)]
enum Onto {
    /// Nothing: C is overwritten.
    Zero,
    /// The existing C (accumulation, or a later depth block).
    C,
    /// A bias row: `NR` values for the tile's columns (fewer read for an edge tile).
    Bias(*const f32),
}

/// One tile's job: `C = (onto) + scale · Σ_k a[k] ⊗ b[k]` over `mr × nr` outputs (at most
/// the kernel's tile).
struct TileArgs {
    /// Depth.
    kc: usize,
    /// A packed 6-row panel (`[k][6]`), or with `DIRECT` the tile's first row of a row-major A.
    a: *const f32,
    /// Row stride of a row-major A.
    a_rs: usize,
    /// Offset from `a` to rows 6–11 (the next panel or the seventh row); 0 when absent.
    a_next: usize,
    /// The first 16-column B panel at this depth block.
    b: *const f32,
    /// Offset from `b` to the next B panel (columns 16–31); 0 when absent.
    b_next: usize,
    c: *mut f32,
    c_rs: usize,
    mr: usize,
    nr: usize,
    scale: f32,
    onto: Onto,
    /// Cache lines to fetch into L2 during the k loop (a slice of the next B panel, so a
    /// weight streamed from memory arrives before its tiles need it), and how many.
    prefetch: (*const f32, usize),
}

type Kernel = unsafe fn(&TileArgs);

/// Where row `r` of a 6-row A block starts and how far one step of k moves:
/// packed panels interleave the six rows, row-major A keeps each row contiguous.
#[inline(always)]
fn a_layout<const DIRECT: bool>(a: *const f32, rs: usize, mr: usize) -> ([*const f32; MR], usize) {
    let mut rows = [a; MR];
    for (r, p) in rows.iter_mut().enumerate() {
        // Rows past the matrix's end re-read its last row (their results are not stored).
        let r = if DIRECT { r.min(mr - 1) } else { r };
        *p = a.wrapping_add(if DIRECT { r * rs } else { r });
    }
    (rows, if DIRECT { 1 } else { MR })
}

unsafe fn kernel_scalar<const DIRECT: bool>(t: &TileArgs) {
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

unsafe fn store_tile(
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
unsafe fn kernel_avx2<const DIRECT: bool, const ROWS: usize>(t: &TileArgs) {
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
unsafe fn kernel_avx512<const DIRECT: bool, const ROWS: usize>(t: &TileArgs) {
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

/// Checks `tile` against the scalar tile on edge shapes (partial tiles in both directions,
/// one value past a depth block, odd panel counts, row-major and packed A, zero / bias /
/// accumulate stores, one and two threads): the results must be bit-identical (see the module
/// doc). Returns the mismatches found, one line each. Used by the tests and by
/// `examples/check_tiles.rs`, which runs it under an emulated AVX-512 CPU.
#[doc(hidden)]
pub fn tile_mismatches(tile: Tile) -> Vec<String> {
    let mut bad = Vec::new();
    let values = |len: usize, seed: u32| -> Vec<f32> {
        (0..len)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 2003)
            .map(|v| v as f32 / 1001.0 - 1.0)
            .collect()
    };
    for &(m, n, k) in &[
        (1, 1, 1),
        (5, 17, 3),
        (6, 16, 7),
        (7, 31, 2),
        (12, 32, 5),
        (13, 33, 385),
        (14, 34, 769),
        (11, 48, 9),
        (25, 50, 40),
        (20, 200, 30),
        (200, 70, 20),
        (9, 40, 11),
        (14, 20, 6),
        (27, 35, 13),
        (32, 40, 50),
        (38, 17, 4),
    ] {
        let (a, b) = (values(m * k, 1), values(k * n, 2));
        let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.25 - 1.0).collect();
        // Row-major A (read in place) and column-major A (packed).
        let at: Vec<f32> = (0..m * k).map(|i| a[(i % m) * k + i / m]).collect();
        let b_op = Strided {
            ptr: b.as_ptr(),
            rs: n,
            cs: 1,
        };
        // SAFETY: b covers k × n values with these strides.
        let packed = unsafe { pack_b(k, n, b_op, 1) };
        for (a_op, layout) in [
            ((a.as_ptr(), k, 1), "row-major"),
            ((at.as_ptr(), 1, m), "packed"),
        ] {
            let a_op = Strided {
                ptr: a_op.0,
                rs: a_op.1,
                cs: a_op.2,
            };
            for (onto, name) in [
                ((false, None), "zero"),
                ((false, Some(&bias[..])), "bias"),
                ((true, None), "accumulate"),
            ] {
                for threads in [1, 2] {
                    // C starts as ones with a gap column after each row that must stay 1.
                    let run = |t: Tile| {
                        let mut c = vec![1f32; m * (n + 1)];
                        // SAFETY: operands cover their shapes; c covers m rows of stride n + 1.
                        unsafe {
                            gemm_packed_on(
                                t,
                                (m, n, k),
                                a_op,
                                &packed,
                                (c.as_mut_ptr(), n + 1),
                                0.5,
                                onto,
                                threads,
                            )
                        };
                        c
                    };
                    let (want, got) = (run(Tile::Scalar), run(tile));
                    let diff = want
                        .iter()
                        .zip(&got)
                        .position(|(w, g)| w.to_bits() != g.to_bits());
                    let gap = (0..m).any(|i| got[i * (n + 1) + n] != 1.0);
                    if let Some(i) = diff {
                        bad.push(format!(
                            "{tile:?} {m}x{n}x{k} {layout} A, {name}, {threads} threads: C[{}][{}] = {} (scalar tile {})",
                            i / (n + 1), i % (n + 1), got[i], want[i]
                        ));
                    } else if gap {
                        bad.push(format!(
                            "{tile:?} {m}x{n}x{k} {layout} A, {name}: wrote past column {n}"
                        ));
                    }
                }
            }
        }
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, n: usize, k: usize, a: &[f32], b: &[f32]) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000)
            .map(|v| v as f32 / 500.0 - 1.0)
            .collect()
    }

    fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
        let mut t = vec![0f32; x.len()];
        for r in 0..rows {
            for c in 0..cols {
                t[c * rows + r] = x[r * cols + c];
            }
        }
        t
    }

    #[test]
    fn matches_naive_product_on_edge_shapes_strides_and_threads() {
        for &(m, n, k) in &[
            (1, 1, 1),
            (5, 17, 3),
            (6, 16, 256),
            (7, 33, 257),
            (9, 20, 385),  // one value past an AVX2 depth block
            (13, 33, 769), // one past the deepest single AVX-512 block
            (13, 40, 600),
            (150, 70, 300),
            (20, 200, 300), // one row block: split into column ranges across threads
            (300, 129, 64),
        ] {
            let (a, b) = (values(m * k, 1), values(k * n, 2));
            let want = naive(m, n, k, &a, &b);
            let (at, bt) = (transpose(&a, m, k), transpose(&b, k, n));
            for threads in [1, 2] {
                for (a_op, b_op) in [
                    ((a.as_ptr(), k, 1), (b.as_ptr(), n, 1)),
                    ((at.as_ptr(), 1, m), (bt.as_ptr(), 1, k)),
                ] {
                    let a_op = Strided {
                        ptr: a_op.0,
                        rs: a_op.1,
                        cs: a_op.2,
                    };
                    let b_op = Strided {
                        ptr: b_op.0,
                        rs: b_op.1,
                        cs: b_op.2,
                    };
                    // C starts as ones: accumulate keeps them, overwrite does not; the row
                    // stride leaves a gap column that must stay untouched.
                    let mut c = vec![1f32; m * (n + 1)];
                    unsafe {
                        gemm(
                            (m, n, k),
                            a_op,
                            b_op,
                            c.as_mut_ptr(),
                            n + 1,
                            0.5,
                            (true, None),
                            threads,
                        )
                    };
                    let mut d = vec![1f32; m * (n + 1)];
                    unsafe {
                        gemm(
                            (m, n, k),
                            a_op,
                            b_op,
                            d.as_mut_ptr(),
                            n + 1,
                            1.0,
                            (false, None),
                            threads,
                        )
                    };
                    // With a bias row: written by the first depth block's tile stores.
                    let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.25 - 1.0).collect();
                    let mut e = vec![1f32; m * (n + 1)];
                    unsafe {
                        gemm(
                            (m, n, k),
                            a_op,
                            b_op,
                            e.as_mut_ptr(),
                            n + 1,
                            1.0,
                            (false, Some(&bias)),
                            threads,
                        )
                    };
                    for i in 0..m {
                        for j in 0..n {
                            let w = want[i * n + j];
                            let tol = 1e-5 * (1.0 + w.abs()) * (k as f32).sqrt();
                            assert!(
                                (c[i * (n + 1) + j] - (1.0 + 0.5 * w)).abs() < tol,
                                "{m}x{n}x{k}"
                            );
                            assert!((d[i * (n + 1) + j] - w).abs() < tol, "{m}x{n}x{k}");
                            let e_ij = e[i * (n + 1) + j];
                            assert!((e_ij - (w + bias[j])).abs() < tol, "bias {m}x{n}x{k}");
                        }
                        assert_eq!(c[i * (n + 1) + n], 1.0);
                        assert_eq!(d[i * (n + 1) + n], 1.0);
                        assert_eq!(e[i * (n + 1) + n], 1.0);
                    }
                }
            }
        }
    }

    #[test]
    fn avx512_runs_depths_up_to_768_as_one_block_and_others_keep_384() {
        let one_block = Tile::best() == Tile::Avx512;
        for k in [1, 383, 384, 385, 700, 768] {
            assert_eq!(depth_block(k), if one_block { k } else { KC }, "k = {k}");
        }
        for k in [769, 1536, 3072] {
            assert_eq!(depth_block(k), KC, "k = {k}");
        }
    }

    #[test]
    fn row_blocks_cover_each_row_once_in_balanced_whole_tiles() {
        for &(m, height, threads) in &[
            (1024, 12, 2),
            (1024, 6, 2),
            (2048, 12, 2),
            (193, 12, 4),
            (5000, 6, 3),
            (7, 12, 2),
            (192, 6, 2),
        ] {
            let blocks = row_blocks(m, height, threads);
            assert_eq!(blocks[0].0, 0, "{m} rows");
            assert_eq!(blocks.last().unwrap().1, m, "{m} rows");
            assert!(
                blocks.windows(2).all(|w| w[0].1 == w[1].0),
                "{m} rows: {blocks:?}"
            );
            if m > MC {
                assert_eq!(blocks.len() % threads, 0, "{m} rows: {blocks:?}");
            }
            let tiles: Vec<usize> = blocks
                .iter()
                .map(|&(a, b)| (b - a).div_ceil(height))
                .collect();
            let (lo, hi) = (tiles.iter().min().unwrap(), tiles.iter().max().unwrap());
            assert!(
                hi - lo <= 1 && *lo > 0,
                "{m} rows: tiles per block {tiles:?}"
            );
            assert!(
                blocks.iter().all(|&(a, _)| a % height == 0),
                "{m} rows: {blocks:?}"
            );
        }
    }

    #[test]
    fn row_tiles_cover_each_row_once_and_share_short_remainders() {
        for height in [MR, 2 * MR] {
            for direct in [true, false] {
                for rows in 1..=60 {
                    let tiles = row_tiles(rows, height, direct);
                    let mut next = 0;
                    for &(r0, mr) in &tiles {
                        assert_eq!(r0, next, "{rows} rows, height {height}: {tiles:?}");
                        assert!((1..=height).contains(&mr), "{rows} rows: {tiles:?}");
                        assert!(direct || r0 % MR == 0, "packed tile off a panel: {tiles:?}");
                        next += mr;
                    }
                    assert_eq!(next, rows, "{rows} rows, height {height}: {tiles:?}");
                }
            }
        }
        let heights = |t: Vec<(usize, usize)>| t.into_iter().map(|(_, r)| r).collect::<Vec<_>>();
        assert_eq!(heights(row_tiles(32, 6, true)), [6, 6, 6, 6, 4, 4]);
        assert_eq!(heights(row_tiles(32, 6, false)), [6, 6, 6, 6, 6, 2]);
        assert_eq!(heights(row_tiles(26, 12, false)), [12, 6, 8]);
        assert_eq!(heights(row_tiles(35, 12, true)), [12, 12, 11]);
    }

    #[test]
    fn every_tile_on_this_cpu_equals_the_scalar_tile_bit_for_bit() {
        let tiles = Tile::available();
        assert!(tiles.contains(&Tile::best()));
        for tile in tiles {
            let bad = tile_mismatches(tile);
            assert!(bad.is_empty(), "{}", bad.join("\n"));
        }
    }

    #[test]
    fn packed_weight_equals_x_times_w_transposed() {
        let (rows, n, k) = (37, 50, 70);
        let x = values(rows * k, 3);
        let w = values(n * k, 4);
        let packed = pack_weight_t(&w, n, k);
        let mut c = vec![0f32; rows * n];
        let xs = Strided {
            ptr: x.as_ptr(),
            rs: k,
            cs: 1,
        };
        unsafe {
            gemm_packed(
                (rows, n, k),
                xs,
                &packed,
                c.as_mut_ptr(),
                n,
                1.0,
                (false, None),
                2,
            )
        };
        let want = naive(rows, n, k, &x, &transpose(&w, n, k));
        for (g, w) in c.iter().zip(&want) {
            assert!((g - w).abs() < 1e-4, "{g} vs {w}");
        }
    }

    #[test]
    fn zero_depth_clears_keeps_or_biases_the_output() {
        let mut c = vec![3f32; 6];
        let op = Strided {
            ptr: [].as_ptr(),
            rs: 0,
            cs: 1,
        };
        unsafe { gemm((2, 3, 0), op, op, c.as_mut_ptr(), 3, 1.0, (true, None), 1) };
        assert_eq!(c, vec![3.0; 6]);
        unsafe { gemm((2, 3, 0), op, op, c.as_mut_ptr(), 3, 1.0, (false, None), 1) };
        assert_eq!(c, vec![0.0; 6]);
        let bias = [1.0, 2.0, 3.0];
        unsafe {
            gemm(
                (2, 3, 0),
                op,
                op,
                c.as_mut_ptr(),
                3,
                1.0,
                (false, Some(&bias)),
                1,
            )
        };
        assert_eq!(c, vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
    }
}
