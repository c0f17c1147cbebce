//! The integer GEMM against exact integer sums, across tiles, widths and outputs.

use super::*;

const WIDTHS: [CodeWidth; 3] = [CodeWidth::U7, CodeWidth::U8, CodeWidth::Wide];

fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 1013) as f32 / 506.0 - 1.0) * 0.5)
        .collect()
}

fn weights(n: usize, k: usize) -> Vec<i8> {
    (0..n * k)
        .map(|i| ((i * 37 % 255) as i32 - 127) as i8)
        .collect()
}

fn code(a: &QuantRows, i: usize) -> i64 {
    a.codes.levels(a.kp)[i] as i64
}

#[test]
fn sums_are_the_exact_integer_products_for_any_shape() {
    for width in WIDTHS {
        for (rows, n, k) in [(1, 1, 1), (5, 17, 7), (13, 33, 64), (7, 16, 130)] {
            let x = values(rows * k, rows + n);
            let wq = weights(n, k);
            let a = quantize_rows(&x, rows, k, None, width);
            let w = PackedI8::pack(&wq, n, k);
            let (ws, b) = (vec![1f32; n], vec![0f32; n]);
            let out = gemm(&a, &w, &ws, &b, None);
            for r in 0..rows {
                for o in 0..n {
                    let exact: i64 = (0..k)
                        .map(|i| (code(&a, r * a.kp + i) - a.zero[r] as i64) * wq[o * k + i] as i64)
                        .sum();
                    let want = exact as f32 * a.scale[r];
                    let got = out[r * n + o];
                    assert!(
                        (got - want).abs() <= want.abs() * 1e-6 + 1e-6,
                        "{width:?} [{rows},{n},{k}] ({r},{o}): {got} vs {want}"
                    );
                }
            }
        }
    }
}

#[test]
fn bf16_outputs_are_the_f32_outputs_rounded_to_nearest_even_on_every_path() {
    // 64 and 130 columns: whole fused blocks of 4 panels, and a panel left over.
    for width in WIDTHS {
        for (rows, n, k) in [(5, 17, 7), (13, 64, 64), (30, 130, 96)] {
            let a = quantize_rows(&values(rows * k, n), rows, k, None, width);
            let w = PackedI8::pack(&weights(n, k), n, k);
            let ws: Vec<f32> = values(n, 3).iter().map(|v| 0.01 + v.abs()).collect();
            let b = values(n, 4);
            let want: Vec<u16> = (gemm(&a, &w, &ws, &b, None).iter())
                .map(|v| half::bf16::from_f32(*v).to_bits())
                .collect();
            let bits = |v: Vec<half::bf16>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(gemm_bf16(&a, &w, &ws, &b)), want, "{width:?} {n}");
            let plain = gemm_to(&a, &w, (&ws, &b, None), false, |p: *mut half::bf16| {
                Dst::Bf16(OutPtr(p as *mut u16))
            });
            assert_eq!(bits(plain), want, "{width:?} {n}, plain");
        }
    }
}

#[test]
fn wide_codes_bring_the_product_within_a_fine_step_of_f32() {
    let (rows, n, k) = (4, 24, 96);
    let x = values(rows * k, 11);
    let wq = weights(n, k);
    let w = PackedI8::pack(&wq, n, k);
    let (ws, b) = (vec![1f32; n], vec![0f32; n]);
    let err = |width| {
        let out = gemm(&quantize_rows(&x, rows, k, None, width), &w, &ws, &b, None);
        (0..rows * n)
            .map(|i| {
                let (r, o) = (i / n, i % n);
                let f: f32 = (0..k).map(|j| x[r * k + j] * wq[o * k + j] as f32).sum();
                (out[i] - f).abs()
            })
            .fold(0f32, f32::max)
    };
    let (u7, wide) = (err(CodeWidth::U7), err(CodeWidth::Wide));
    // 4095 steps against 127: the rounding error shrinks ~32×.
    assert!(wide * 16.0 < u7, "wide {wide} vs 7-bit {u7}");
}

#[test]
fn a_row_gives_the_same_bits_alone_and_in_a_batch() {
    // 150 columns: fused 64-column blocks (on VNNI) and a partial panel.
    let (rows, n, k) = (11, 150, 96);
    let x = values(rows * k, 3);
    let w = PackedI8::pack(&weights(n, k), n, k);
    let (ws, b) = (values(n, 4), values(n, 5));
    for width in WIDTHS {
        let all = gemm(&quantize_rows(&x, rows, k, None, width), &w, &ws, &b, None);
        for r in 0..rows {
            let one = gemm(
                &quantize_rows(&x[r * k..][..k], 1, k, None, width),
                &w,
                &ws,
                &b,
                None,
            );
            assert_eq!(one, all[r * n..][..n], "{width:?}");
        }
    }
}

/// 8-bit codes are bytes on a VNNI CPU and i16 elsewhere: both must give the same bits.
#[test]
fn eight_bit_codes_give_the_same_bits_as_bytes_and_as_i16() {
    let (rows, n, k) = (9, 35, 70);
    let x = values(rows * k, 12);
    let w = PackedI8::pack(&weights(n, k), n, k);
    let (ws, b) = (values(n, 13), values(n, 14));
    let a = quantize_rows(&x, rows, k, None, CodeWidth::U8);
    let other = match &a.codes {
        Codes::Bytes(q) => Codes::Wide(q.iter().map(|v| *v as i16).collect()),
        Codes::Wide(q) => Codes::Bytes(q.iter().map(|v| *v as u8).collect()),
        Codes::Split(_) => unreachable!("8-bit codes are never split"), // ok: a test
    };
    let b8 = QuantRows {
        codes: other,
        scale: a.scale.clone(),
        zero: a.zero.clone(),
        ..a
    };
    assert_eq!(a.qmax, 255);
    assert_eq!(gemm(&a, &w, &ws, &b, None), gemm(&b8, &w, &ws, &b, None));
}

/// Wide enough for fused 64-column blocks (where VNNI has them) beside a partial
/// panel, with partial row tiles of both heights (7, 13 and 20 rows take 4-row tiles,
/// 17 rows 6-row ones), with and without an activation.
#[test]
fn fused_blocks_give_the_bits_of_the_plain_tile_and_store() {
    let (n, k) = (150, 96);
    let w = PackedI8::pack(&weights(n, k), n, k);
    let (ws, b) = (values(n, 15), values(n, 16));
    for rows in [7, 13, 17, 20] {
        let x = values(rows * k, rows);
        for (width, act) in WIDTHS
            .into_iter()
            .flat_map(|w| [(w, None), (w, Some(Gelu::Erf)), (w, Some(Gelu::Tanh))])
        {
            let a = quantize_rows(&x, rows, k, None, width);
            let simd = gemm(&a, &w, &ws, &b, act);
            assert_eq!(
                gemm_to(&a, &w, (&ws, &b, act), false, |p| Dst::F32(OutPtr(p))),
                simd,
                "{width:?} {act:?}"
            );
            assert!(simd.iter().all(|v| v.is_finite()));
        }
    }
}

#[test]
fn a_cpu_without_avx2_computes_the_same_bits() {
    let (rows, n, k) = (9, 35, 70);
    let x = values(rows * k, 6);
    let w = PackedI8::pack(&weights(n, k), n, k);
    let (ws, b) = (values(n, 7), values(n, 8));
    for width in WIDTHS {
        let a = quantize_rows(&x, rows, k, None, width);
        assert_eq!(
            gemm_to(&a, &w, (&ws, &b, None), false, |p| Dst::F32(OutPtr(p))),
            gemm(&a, &w, &ws, &b, None),
            "{width:?}"
        );
    }
}
