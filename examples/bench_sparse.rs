//! Sparse (local + strided, stride k) vs dense masked attention, forward and forward+backward,
//! at growing sequence lengths: time, the memory of the attention weights, and the crossover.
//!     cargo run --release --example bench_sparse -- [--threads 2] [--stride 64]

use candle_core::{DType, Device, Tensor, Var, D};
use std::time::Instant;

fn arg(name: &str, default: &str) -> String {
    let a: Vec<String> = std::env::args().collect();
    a.iter()
        .position(|x| x == name)
        .and_then(|i| a.get(i + 1).cloned())
        .unwrap_or_else(|| default.into())
}

fn dense(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: &Tensor,
    scale: f64,
) -> candle_core::Result<Tensor> {
    let s = (q.matmul(&k.t()?)? * scale)?.broadcast_add(bias)?;
    candle_nn::ops::softmax(&s, D::Minus1)?.matmul(v)
}

fn time<F: FnMut() -> candle_core::Result<()>>(mut f: F) -> f64 {
    f().unwrap();
    let t0 = Instant::now();
    f().unwrap();
    t0.elapsed().as_secs_f64() * 1e3
}

fn main() -> candle_core::Result<()> {
    let threads: usize = arg("--threads", "2").parse().unwrap();
    let stride: usize = arg("--stride", "64").parse().unwrap();
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap();
    let (b, h, d) = (1usize, 4usize, 64usize);
    let scale = 1.0 / (d as f64).sqrt();
    println!("batch {b}, heads {h}, head_dim {d}, stride {stride}, {threads} threads, f32");
    println!(
        "{:>6} {:>11} {:>11} {:>8} {:>13} {:>13} {:>9} {:>12} {:>12}",
        "n",
        "sparse fwd",
        "dense fwd",
        "ratio",
        "sparse f+b",
        "dense f+b",
        "ratio",
        "sparse KiB",
        "dense MiB"
    );
    for n in [64usize, 128, 256, 512, 1024, 2048, 4096, 8192] {
        let dev = Device::Cpu;
        let mk =
            || Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, h, n, d), &dev).unwrap()).unwrap();
        let (q, k, v) = (mk(), mk(), mk());
        let first = vec![0usize; b];
        let sparse_f = time(|| {
            bert4rs::kernels::sparse_attention(&q, &k, &v, (stride, scale), &first, None)?.unwrap();
            Ok(())
        });
        let sparse_fb = time(|| {
            let o = bert4rs::kernels::sparse_attention(&q, &k, &v, (stride, scale), &first, None)?
                .unwrap();
            o.sum_all()?.backward()?;
            Ok(())
        });
        // Attention weights held for the backward: sparse keeps none (recomputed); per query
        // the gather buffer is k + n/k floats.
        let sparse_kib = (stride + n / stride) as f64 * 4.0 / 1024.0 * threads as f64;
        let dense_mib = (b * h * n * n * 4) as f64 / (1 << 20) as f64;
        let (dense_f, dense_fb) = if n <= 4096 {
            let mut bias = vec![0f32; n * n];
            for i in 0..n {
                for j in 0..n {
                    if !bert4rs::kernels::sparse_allowed(i, j, stride) {
                        bias[i * n + j] = -1e30;
                    }
                }
            }
            let bias = Tensor::from_vec(bias, (n, n), &dev)?.to_dtype(DType::F32)?;
            let f = time(|| dense(&q, &k, &v, &bias, scale).map(|_| ()));
            let fb = if n <= 2048 {
                time(|| {
                    dense(&q, &k, &v, &bias, scale)?.sum_all()?.backward()?;
                    Ok(())
                })
            } else {
                f64::NAN
            };
            (f, fb)
        } else {
            (f64::NAN, f64::NAN)
        };
        println!("{n:>6} {sparse_f:>9.1}ms {dense_f:>9.1}ms {:>7.2}x {sparse_fb:>11.1}ms {dense_fb:>11.1}ms {:>8.2}x {sparse_kib:>12.1} {dense_mib:>12.0}",
            dense_f / sparse_f, dense_fb / sparse_fb);
    }
    println!("(dense skipped where its n×n weights would not fit the budget: NaN)");
    Ok(())
}
