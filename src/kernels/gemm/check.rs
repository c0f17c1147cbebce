//! The tile self-check: every tile this CPU has against the scalar tile, bit for bit.

use super::*;

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
                                PackedB::F32(&packed),
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
