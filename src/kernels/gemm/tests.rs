//! The packed GEMM against a naive product, and the blocking helpers.

use super::pack::*;
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
        assert_eq!(blocks.last().unwrap().1, m, "{m} rows"); // ok: test code
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
        let (lo, hi) = (tiles.iter().min().unwrap(), tiles.iter().max().unwrap()); // ok: test code
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

/// bf16 panels widened in L1 give the f32 kernel's results on the rounded weight, bit for
/// bit, at shapes with partial panels, several depth blocks and both thread counts.
#[test]
fn bf16_panels_multiply_exactly_as_f32_panels_of_the_rounded_weight() {
    for (rows, n, k, threads) in [(37, 50, 70, 2), (200, 33, 800, 2), (19, 16, 5, 1)] {
        let x = values(rows * k, 5);
        let w: Vec<f32> = (values(n * k, 6).iter())
            .map(|&v| half::bf16::from_f32(v).to_f32())
            .collect();
        let bias = values(n, 7);
        let xs = Strided {
            ptr: x.as_ptr(),
            rs: k,
            cs: 1,
        };
        let (p32, p16) = (pack_weight_t(&w, n, k), pack_weight_t_bf16(&w, n, k));
        let run = |b: PackedB| {
            let mut c = vec![0f32; rows * n];
            let (dims, onto, tile) = ((rows, n, k), (false, Some(&bias[..])), Tile::best());
            unsafe { gemm_packed_on(tile, dims, xs, b, (c.as_mut_ptr(), n), 1.0, onto, threads) };
            c
        };
        assert_eq!(
            run(PackedB::Bf16(&p16)),
            run(PackedB::F32(&p32)),
            "{rows} x {n} x {k}"
        );
    }
}
