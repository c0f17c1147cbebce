//! GEMM throughput at BERT shapes: bert4rs's packed kernel (`kernels::gemm`, B packed
//! once as a frozen weight is, and packed per call) against the `gemm` crate, same threads.
//!   cargo run --release --example bench_gemm [-- --threads 2 --rounds 15 --shapes 32x768x3072,30x768x3072]
//! (`--shapes`: m×k×n list replacing the BERT shapes, e.g. to see edge-tile costs.)
//! The model-level benchmarks (`bench/run.sh`, `bench/train.sh`) put it beside PyTorch.

use bert4rs::kernels::gemm::{self as sgemm, Strided};
#[path = "common/args.rs"]
mod args;
use args::{arg, parse_shapes};
use std::time::Instant;

/// Seconds of one run of `f` after one warm-up run.
fn time(mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = arg(&args, "--threads", 2);
    let rounds: usize = arg(&args, "--rounds", 15);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap();
    println!(
        "packed kernel in use by the model code: {} (tile: {:?})",
        sgemm::enabled(),
        sgemm::Tile::best()
    );
    let peak = bert4rs::kernels::simd::fma_peak_gflops(threads);
    println!("f32 FMA peak: {peak:.0} GFLOP/s on {threads} threads");
    println!(
        "{:>16} {:>12} {:>12} {:>12} {:>10}",
        "m×k×n", "ours packed", "ours+pack", "gemm crate", "crate/ours"
    );
    let shapes = match args.iter().position(|a| a == "--shapes") {
        Some(i) => parse_shapes(args.get(i + 1).map_or("", String::as_str)),
        None => vec![
            (1024, 768, 3072),
            (1024, 3072, 768),
            (1024, 768, 2304),
            (1024, 768, 768),
            (2048, 384, 1536),
            (32, 768, 3072),
            (32, 768, 768),
        ],
    };
    for (m, k, n) in shapes {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 97) as f32 / 97.0 - 0.5).collect();
        let w: Vec<f32> = (0..n * k).map(|i| (i % 89) as f32 / 89.0 - 0.5).collect();
        let mut c = vec![0f32; m * n];
        let flops = 2.0 * (m * n * k) as f64 / 1e9;
        let xs = Strided {
            ptr: a.as_ptr(),
            rs: k,
            cs: 1,
        };
        let wt = Strided {
            ptr: w.as_ptr(),
            rs: 1,
            cs: k,
        };
        let packed = sgemm::pack_weight_t(&w, n, k);
        let par = if threads > 1 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        // Paired rounds (ours, ours + packing, crate back to back), medians of each and of
        // the per-round ratio: this shared machine's speed drifts by ±20 % between seconds.
        let (mut t_ours, mut t_pack, mut t_crate, mut ratio) = (vec![], vec![], vec![], vec![]);
        for _ in 0..rounds {
            let o = time(|| unsafe {
                sgemm::gemm_packed(
                    (m, n, k),
                    xs,
                    &packed,
                    c.as_mut_ptr(),
                    n,
                    1.0,
                    (false, None),
                    threads,
                )
            });
            let p = time(|| unsafe {
                sgemm::gemm(
                    (m, n, k),
                    xs,
                    wt,
                    c.as_mut_ptr(),
                    n,
                    1.0,
                    (false, None),
                    threads,
                )
            });
            let g = time(|| unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    1,
                    k as isize,
                    w.as_ptr(),
                    k as isize,
                    1,
                    0.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    par,
                )
            });
            t_ours.push(o);
            t_pack.push(p);
            t_crate.push(g);
            ratio.push(g / o);
        }
        println!(
            "{:>16} {:>9.1} GF {:>9.1} GF {:>9.1} GF {:>9.2}x",
            format!("{m}×{k}×{n}"),
            flops / median(&mut t_ours),
            flops / median(&mut t_pack),
            flops / median(&mut t_crate),
            median(&mut ratio)
        );
    }
}
