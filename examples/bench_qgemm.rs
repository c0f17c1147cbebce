//! Integer GEMM throughput at BERT shapes (`kernels::qgemm`: per-row activation codes ×
//! packed int8 weights, exact i32 sums), against the machine's measured int8 multiply-add
//! peak, for each activation width; quantising the rows is timed apart from the GEMM.
//!   cargo run --release --example bench_qgemm [-- --threads 2 --rounds 15 --shapes 1024x768x3072 --gelu]
//! (`--gelu`: with the exact GELU in the epilogue, as BERT's FFN runs it.)
//! The model-level comparison with ONNX Runtime is `bench/int8.sh`.

use bert4rs::kernels::qgemm::{gemm, quantize_rows, PackedI8};
use bert4rs::kernels::{CodeWidth, Gelu};
#[path = "common/args.rs"]
mod args;
use args::{arg, parse_shapes};
use std::time::Instant;

// The allocator of the `bert4rs` binary: with glibc's malloc each output (up to 12 MB) is
// a fresh mapping whose page faults would be timed as GEMM time.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The fastest of `rounds` runs of `f`, in seconds, after one warm-up run.
fn best(rounds: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = arg(&args, "--threads", 2);
    let rounds: usize = arg(&args, "--rounds", 15);
    let act = args.iter().any(|a| a == "--gelu").then_some(Gelu::Erf);
    bert4rs::util::init_process();
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap();
    let Some(peak) = bert4rs::kernels::simd::int8_peak_gops(threads) else {
        eprintln!("bench_qgemm: this CPU has no AVX2");
        std::process::exit(2)
    };
    println!("int8 multiply-add peak: {peak:.0} GOP/s on {threads} threads");
    println!(
        "{:>16} {:>5} {:>10} {:>10} {:>8} {:>12}",
        "m×k×n", "bits", "gemm ms", "GOP/s", "% peak", "quantise ms"
    );
    let shapes = match args.iter().position(|a| a == "--shapes") {
        Some(i) => parse_shapes(args.get(i + 1).map_or("", String::as_str)),
        None => vec![
            (1024, 768, 3072),
            (1024, 3072, 768),
            (1024, 768, 2304),
            (1024, 768, 768),
            (2048, 384, 1536),
            (2048, 1536, 384),
            (32, 768, 3072),
        ],
    };
    for (m, k, n) in shapes {
        let x: Vec<f32> = (0..m * k).map(|i| (i % 97) as f32 / 97.0 - 0.5).collect();
        let q: Vec<i8> = (0..n * k).map(|i| (i % 251) as i8).collect();
        let w = PackedI8::pack(&q, n, k);
        let (scale, bias) = (vec![0.01f32; n], vec![0f32; n]);
        for width in [CodeWidth::U8, CodeWidth::Wide] {
            let a = quantize_rows(&x, m, k, None, width);
            let t_q = best(rounds, || {
                std::hint::black_box(quantize_rows(&x, m, k, None, width));
            });
            let t = best(rounds, || {
                std::hint::black_box(gemm(&a, &w, &scale, &bias, act));
            });
            let gops = 2.0 * (m * n * k) as f64 / t / 1e9;
            println!(
                "{:>16} {:>5} {:>10.3} {:>10.0} {:>7.1}% {:>12.3}",
                format!("{m}x{k}x{n}"),
                width.bits(),
                t * 1e3,
                gops,
                gops / peak * 100.0,
                t_q * 1e3
            );
        }
    }
}
