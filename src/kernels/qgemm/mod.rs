//! Integer GEMM for dynamically quantised inference: `y = x · Wᵀ + b` with the weight int8
//! per output channel (symmetric) and each row of `x` quantised at run time, products
//! summed exactly in i32 and scaled back to f32 once per output.
//!
//! Activations are quantised per row (per token), asymmetric over the row's range
//! [min(x, 0), max(x, 0)]: `x ≈ s·(q − z)`, in one of three widths ([`CodeWidth`]):
//! - **12-bit codes** in i16 (the default): `vpmaddwd` multiplies them by the sign-extended
//!   weights (AVX2); with VNNI (AVX-512 VNNI or AVX-VNNI) each code is split into a low and
//!   a high byte and `vpdpbusd` multiplies both by the weights as packed. `Q·127·k` must
//!   fit in i32, which holds up to k = 4128 (narrower codes beyond). Half the 7-bit path's
//!   products per instruction, but the rounding of the activations almost vanishes (a Pang
//!   & Lee classifier keeps its f32 accuracy).
//! - **7-bit codes** in bytes: AVX2's `vpmaddubsw` multiplies u8 by s8 and adds pairs into a
//!   *saturating* i16; with 8-bit activations a pair can reach 2·255·127 > 32767 (ONNX
//!   Runtime's U8S8 path accepts that risk and offers `reduce_range` to avoid it). With
//!   `q ≤ 127` a pair is at most 2·127·127 = 32258, so no sum ever saturates. The
//!   asymmetric range keeps a one-sided row (after GELU) at full resolution, which a
//!   symmetric 8-bit scale would halve.
//! - **8-bit codes**: VNNI's `vpdpbusd` (AVX-512 VNNI, or AVX-VNNI on client cores) sums
//!   four u8 × s8 products straight into i32, so 8-bit codes are exact there and as fast as
//!   7-bit ones (half the rounding); without VNNI they are stored in i16 and take the
//!   12-bit tiles (same sums, so the same bits on every CPU).
//!
//! Tiles (`tiles.rs`): AVX-512 VNNI where present, AVX-VNNI, AVX2, plain Rust, chosen at run
//! time; on AVX-512 VNNI, whole 64-column blocks run with the store fused in (`fused.rs`).
//! Because the sums are exact integers, every tile, thread split and batch composition
//! gives bit-identical outputs: a row's result never depends on the other rows, and an
//! AVX2 machine computes the same bits as a VNNI one.
//!
//! Measured and set aside: symmetric 8-bit codes (exact on AVX2 by moving the sign onto
//! the weight with `vpsignb`) made BERT-base 8 × 128 35 % slower (617 → 838 ms) for a
//! small gain (MiniLM's worst test-sentence cosine 0.9939 → 0.9941).

mod dst;
mod fused;
mod quantize;
mod row;
mod tiles;

pub use quantize::{quantize_rows, CodeWidth, QuantRows};

use super::common::OutPtr;
use super::gelu::Gelu;
use dst::Dst;
use fused::{BlockFn, BlockOut, PANELS};
use quantize::Codes;
use rayon::prelude::*;
use tiles::{Tile, MR, MR_SHORT, NR};

/// Rows per tile for a GEMM of `rows` rows. With fused blocks (`fused`: AVX-512 VNNI) the
/// height that computes fewer padding rows (4-row blocks run as fast as 6-row ones there:
/// BERT-base 1 × 32 8-bit 11.1 → 10.4 ms); otherwise the short tile only where it computes
/// fewer padding rows and the rows are few (the full AVX2 tile uses the registers better).
fn tile_rows(rows: usize, fused: bool) -> usize {
    let padded = |r: usize| rows.div_ceil(r) * r;
    if (fused || rows <= 16) && padded(MR_SHORT) < padded(MR) {
        MR_SHORT
    } else {
        MR
    }
}

/// A `[n, k]` int8 weight packed for [`gemm()`]: 16-column panels, depth in groups of 4
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

    /// The row-major `q [n, k]` that [`Self::pack`] packed.
    pub fn unpack(&self) -> Vec<i8> {
        let (n, k, kp) = (self.n, self.k, self.kp());
        let mut q = vec![0i8; n * k];
        for (o, row) in q.chunks_exact_mut(k.max(1)).enumerate() {
            let panel = &self.panels[(o / NR) * NR * kp..][..NR * kp];
            for (i, v) in row.iter_mut().enumerate() {
                *v = panel[(i / 4) * NR * 4 + (o % NR) * 4 + i % 4];
            }
        }
        q
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.panels.len() + 4 * self.colsum.len()
    }

    fn kp(&self) -> usize {
        self.k.div_ceil(4) * 4
    }
}

/// `[rows, n] = act(x · Wᵀ · diag(wscale) + bias)` from quantised rows and a packed weight
/// (the activation, if any, applied to each tile as it is stored).
pub fn gemm(
    a: &QuantRows,
    w: &PackedI8,
    wscale: &[f32],
    bias: &[f32],
    act: Option<Gelu>,
) -> Vec<f32> {
    let avx2 = crate::kernels::simd::isa() != crate::kernels::simd::Isa::Baseline;
    gemm_to(a, w, (wscale, bias, act), avx2, |p| Dst::F32(OutPtr(p)))
}

/// [`gemm`]'s outputs rounded to bf16 (to nearest even, as `half::bf16::from_f32`) as they
/// are stored: for a consumer that multiplies in bf16 anyway (the encoder's attention
/// with bf16 products), half the bytes to write and to read back.
pub fn gemm_bf16(a: &QuantRows, w: &PackedI8, wscale: &[f32], bias: &[f32]) -> Vec<half::bf16> {
    let avx2 = crate::kernels::simd::isa() != crate::kernels::simd::Isa::Baseline;
    gemm_to(a, w, (wscale, bias, None), avx2, |p: *mut half::bf16| {
        Dst::Bf16(OutPtr(p as *mut u16))
    })
}

/// What the store applies to a tile's sums: the weight's scales, the bias, the activation.
type Epilogue<'a> = (&'a [f32], &'a [f32], Option<Gelu>);

/// [`gemm_with`] into a new `Vec<T>` that `dst` addresses.
fn gemm_to<T>(
    a: &QuantRows,
    w: &PackedI8,
    epi: Epilogue,
    avx2: bool,
    dst: impl FnOnce(*mut T) -> Dst,
) -> Vec<T> {
    let len = a.rows * w.n;
    // Not zeroed first (a page-sized memset per layer showed in profiles): the tiles cover
    // every row < rows and column < n, each written exactly once.
    let mut out = Vec::<T>::with_capacity(len);
    gemm_with(a, w, epi, avx2, dst(out.as_mut_ptr()));
    // SAFETY: `gemm_with` wrote every element.
    unsafe { out.set_len(len) };
    out
}

/// [`gemm`] into `dst` (`[rows, n]`, every element written) with the AVX2 tile and store
/// (`avx2`, where present) or the plain ones.
fn gemm_with(a: &QuantRows, w: &PackedI8, epi: Epilogue, avx2: bool, dst: Dst) {
    let (rows, n) = (a.rows, w.n);
    let (wscale, bias, _) = epi;
    assert!(
        a.kp == w.kp() && wscale.len() == n && bias.len() == n,
        "qgemm::gemm shapes"
    ); // ok: Int8Weight checks shapes before calling
    let avx2 = avx2 && crate::kernels::simd::isa() != crate::kernels::simd::Isa::Baseline;
    let fused =
        avx2 && crate::kernels::simd::has_avx512_vnni() && !matches!(a.codes, Codes::Wide(_));
    let mr = tile_rows(rows, fused);
    let tiles = rows.div_ceil(mr);
    let panels = n.div_ceil(NR);
    // Tasks: a block of row tiles × a block of panels, small enough that two threads
    // share the work evenly, big enough that a panel is reused across many row tiles.
    let tile_block = 16usize.min(tiles).max(1);
    // As many as a fused block takes, so whole tasks run fused.
    let panel_block = PANELS;
    if rows == 0 || n == 0 {
        return;
    }
    let blocks = Blocks {
        mr,
        tiles,
        panels,
        tile_block,
        panel_block,
    };
    let g = Gemm {
        a,
        w,
        epi,
        dst,
        avx2,
    };
    match &a.codes {
        Codes::Bytes(q) => run_tiles(
            q,
            Tile::bytes(avx2, a.qmax),
            blocks,
            g,
            block_for(avx2, mr, false),
        ),
        Codes::Wide(q) => run_tiles(q, Tile::wide(avx2), blocks, g, None),
        Codes::Split(q) => run_tiles(q, Tile::split(avx2), blocks, g, block_for(avx2, mr, true)),
    }
}

/// How [`gemm_with`] splits the work: `tiles` row tiles of `mr` rows × `panels` weight
/// panels, in tasks of `tile_block` × `panel_block`.
#[derive(Clone, Copy)]
struct Blocks {
    mr: usize,
    tiles: usize,
    panels: usize,
    tile_block: usize,
    panel_block: usize,
}

/// What every tile of one GEMM shares: the rows, the weight, the epilogue, the output, and
/// whether the store may use AVX2.
#[derive(Clone, Copy)]
struct Gemm<'a> {
    a: &'a QuantRows,
    w: &'a PackedI8,
    epi: Epilogue<'a>,
    dst: Dst,
    avx2: bool,
}

/// The store's per-task scratch: a tile's f32 values and their activation (set up once per
/// task: zeroing them per tile cost a `memset` call each, 1–3 % of a pass).
type Scratch = [[f32; MR * NR]; 2];

/// The fused block kernel for byte codes (`split`: wide codes split into bytes) in tiles
/// of `mr` rows, where this CPU has one (AVX-512 VNNI, and `simd` asked for).
fn block_for(simd: bool, mr: usize, split: bool) -> Option<BlockFn<u8>> {
    #[cfg(target_arch = "x86_64")]
    if simd && crate::kernels::simd::has_avx512_vnni() {
        // Split codes: half a tile's rows at a time (their two sums fill the registers).
        return Some(match (split, mr) {
            (false, MR) => fused::block_vnni::<MR>,
            (false, _) => fused::block_vnni::<MR_SHORT>,
            (true, MR) => fused::block_split_vnni::<{ MR / 2 }>,
            (true, _) => fused::block_split_vnni::<{ MR_SHORT / 2 }>,
        });
    }
    let _ = (simd, mr, split);
    None
}

/// Runs every task of `b` in parallel: each tile's sums by `tile`, then the store; or,
/// given a fused `block` kernel, each row tile × [`PANELS`] whole panels in one call.
fn run_tiles<T: Sync>(codes: &[T], tile: Tile<T>, b: Blocks, g: Gemm, block: Option<BlockFn<T>>) {
    let kp = g.a.kp;
    let row = kp * tile.stride;
    let (row_blocks, col_blocks) = (
        b.tiles.div_ceil(b.tile_block),
        b.panels.div_ceil(b.panel_block),
    );
    (0..row_blocks * col_blocks)
        .into_par_iter()
        .for_each(|task| {
            let (rb, cb) = (task % row_blocks, task / row_blocks);
            let (p0, p1) = (cb * b.panel_block, ((cb + 1) * b.panel_block).min(b.panels));
            let row_tiles = rb * b.tile_block..((rb + 1) * b.tile_block).min(b.tiles);
            let tile_codes = |t: usize| &codes[t * b.mr * row..][..b.mr * row];
            if let Some(block) = block.filter(|_| p1 - p0 == PANELS && p1 * NR <= g.w.n) {
                let rows = row_tiles.start * b.mr..row_tiles.end * b.mr;
                return run_block(block, &codes[rows.start * row..rows.end * row], rows, p0, g);
            }
            // The tiles overwrite `acc`: no zeroing per tile.
            let mut acc = [[0i32; NR]; MR];
            let mut scratch: Scratch = [[0f32; MR * NR]; 2];
            for p in p0..p1 {
                let bp = &g.w.panels[p * NR * kp..][..NR * kp];
                for t in row_tiles.clone() {
                    tile.run(tile_codes(t), bp, kp, &mut acc[..b.mr]);
                    store(g, (t * b.mr, p * NR), &acc[..b.mr], &mut scratch);
                }
            }
        });
}

/// Rows `rows` (whole tiles; their codes `a`) × the [`PANELS`] whole panels from `p0`, in
/// one call of the fused `block` kernel.
fn run_block<T>(block: BlockFn<T>, a: &[T], rows: std::ops::Range<usize>, p0: usize, g: Gemm) {
    let (kp, n) = (g.a.kp, g.w.n);
    let cols = p0 * NR..(p0 + PANELS) * NR;
    let real = rows.start..rows.end.min(g.a.rows);
    let out = BlockOut {
        scale: &g.a.scale[real.clone()],
        zero: &g.a.zero[real],
        colsum: &g.w.colsum[cols.clone()],
        wscale: &g.epi.0[cols.clone()],
        bias: &g.epi.1[cols.clone()],
        act: g.epi.2,
        // SAFETY: inside `out` (rows < a.rows, columns < n); each task writes its own.
        dst: unsafe { g.dst.add(rows.start * n + cols.start) },
        ld: n,
    };
    let b = &g.w.panels[p0 * NR * kp..][..PANELS * NR * kp];
    // SAFETY: `block_for` checked the instruction set; `a` holds whole tiles (a multiple
    // of the kernel's rows), `b` the whole panels, `out` the rows that exist.
    unsafe { block(a, b, kp, &out) }
}

/// Scales one tile's exact sums back to f32 and writes the rows and columns that exist.
fn store(g: Gemm, at: (usize, usize), acc: &[[i32; NR]], scratch: &mut Scratch) {
    #[cfg(target_arch = "x86_64")]
    if g.avx2 {
        // SAFETY: the caller checked AVX2 + FMA (`avx2` is only set then).
        return unsafe { store_avx2(g, at, acc, scratch) };
    }
    store_rows(g, at, acc, scratch)
}

/// [`store_rows`] compiled for AVX2 + FMA (the 16-lane loops become vector code; no
/// contraction into FMAs, so the bits equal the plain build's).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn store_avx2(g: Gemm, at: (usize, usize), acc: &[[i32; NR]], scratch: &mut Scratch) {
    store_rows(g, at, acc, scratch)
}

#[inline(always)]
fn store_rows(g: Gemm, (r0, c0): (usize, usize), acc: &[[i32; NR]], scratch: &mut Scratch) {
    let (a, w, (wscale, bias, act)) = (g.a, g.w, g.epi);
    let n = w.n;
    let cols = NR.min(n - c0);
    let (mut cs, mut ws, mut bs) = ([0i32; NR], [0f32; NR], [0f32; NR]);
    cs[..cols].copy_from_slice(&w.colsum[c0..c0 + cols]);
    ws[..cols].copy_from_slice(&wscale[c0..c0 + cols]);
    bs[..cols].copy_from_slice(&bias[c0..c0 + cols]);
    let valid = a.rows.saturating_sub(r0).min(acc.len());
    let [y, gy] = scratch;
    for (i, row) in acc.iter().enumerate().take(valid) {
        let (s, z) = (a.scale[r0 + i], a.zero[r0 + i]);
        for j in 0..NR {
            y[i * NR + j] = (row[j] - z * cs[j]) as f32 * (s * ws[j]) + bs[j];
        }
    }
    // The whole tile at once: the activation's kernel runs 32 values per step.
    let y = match act {
        Some(act) => {
            act.slice_kernel_coarse()(&y[..valid * NR], &mut gy[..valid * NR]);
            gy
        }
        None => y,
    };
    for i in 0..valid {
        let row = &y[i * NR..][..NR];
        // SAFETY: each task writes only its own tiles' outputs, inside `out`.
        unsafe {
            let o = g.dst.add((r0 + i) * n + c0);
            match cols {
                // A whole panel: a fixed-size copy, inlined (a `memmove` call per row
                // showed as 2.5 % of a MiniLM pass).
                NR => o.write(row),
                _ => o.write(&row[..cols]),
            }
        }
    }
}

#[cfg(test)]
mod tests;
