//! bert4rs half of the forward-pass benchmark (bench/run.sh runs it beside PyTorch):
//! `cargo run --release --example bench_encoder -- --model-dir DIR --batch 8 --seq 128 --threads 2`
//! prints one JSON line like bench/torch_bench.py: median ms per batch, tokens/s, GFLOP/s.
//! `--int8` runs the dynamically quantised encoder (`--int8-activations 7` / `8` with 7- /
//! 8-bit activation codes instead of the default 12), `--bf16` the encoder with bf16 weights;
//! `rss_mb` is the process's resident memory after loading (weights, no activations yet). `--peak` instead measures the machine's f32 FMA peak and int8 multiply-add peak on
//! `--threads` threads.

use bert4rs::models::hub::WeightStorage;
use bert4rs::models::load_encoder_as;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
use bert4rs::EncoderInput;
use candle_core::{Device, Tensor};
use std::time::Instant;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn main() -> bert4rs::Result<()> {
    bert4rs::util::init_process();
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = arg(&args, "--threads", "2").parse().unwrap_or(2);
    // candle's GEMM and our kernels both run on rayon's global pool.
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global();
    if args.iter().any(|a| a == "--peak") {
        let gflops = bert4rs::kernels::simd::fma_peak_gflops(threads);
        let gemm = match bert4rs::kernels::gemm::enabled() {
            true => format!("packed {:?} tile", bert4rs::kernels::gemm::Tile::best()),
            false => "gemm crate".to_string(),
        };
        println!(
            "{{\"impl\": \"fma-peak\", \"threads\": {threads}, \"gflops\": {gflops:.1}, \"gemm\": \"{gemm}\"}}"
        );
        if let Some(gops) = bert4rs::kernels::simd::int8_peak_gops(threads) {
            println!("{{\"impl\": \"int8-peak\", \"threads\": {threads}, \"gflops\": {gops:.1}}}");
        }
        return Ok(());
    }
    let dir = std::path::PathBuf::from(arg(&args, "--model-dir", "."));
    let batch: usize = arg(&args, "--batch", "8").parse().unwrap_or(8);
    let seq: usize = arg(&args, "--seq", "128").parse().unwrap_or(128);
    let warmup: usize = arg(&args, "--warmup", "3").parse().unwrap_or(3);
    let iters: usize = arg(&args, "--iters", "10").parse().unwrap_or(10);
    let int8 = args.iter().any(|a| a == "--int8");
    let bits: u32 = arg(&args, "--int8-activations", "12").parse().unwrap_or(0);
    let Some(width) = bert4rs::kernels::CodeWidth::from_bits(bits) else {
        eprintln!("bench_encoder: --int8-activations takes 7, 8 or 12");
        std::process::exit(2)
    };
    let bf16 = args.iter().any(|a| a == "--bf16");
    let storage = match bf16 {
        true => WeightStorage::Bf16,
        false => WeightStorage::F32,
    };
    let mut model = load_encoder_as(&dir, &Device::Cpu, false, storage)?.model;
    if int8 {
        model.quantize_int8(width)?;
    }
    let rss_mb = resident_mb();
    let cfg = model.config().clone();
    let mut state = 0x2545F4914F6CDD1Du64;
    let ids: Vec<u32> = (0..batch * seq)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            1000 + (state % (cfg.vocab_size as u64 - 1000)) as u32
        })
        .collect();
    let input = EncoderInput {
        input_ids: Tensor::from_vec(ids, (batch, seq), &Device::Cpu)?,
        attention_mask: Tensor::ones((batch, seq), candle_core::DType::F32, &Device::Cpu)?,
        token_type_ids: Tensor::zeros((batch, seq), candle_core::DType::U32, &Device::Cpu)?,
    };
    for _ in 0..warmup {
        model.forward(&input, false)?;
    }
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t0 = Instant::now();
        model.forward(&input, false)?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let ms = times[times.len() / 2];
    // The fastest run too: on a shared host, the one least disturbed (for A/B runs).
    let min_ms = times[0];
    let (h, i, l, t) = (
        cfg.hidden_size as f64,
        cfg.intermediate_size as f64,
        cfg.num_hidden_layers as f64,
        seq as f64,
    );
    // Per token per layer: QKV+output projections 4H², FFN 2HI, attention scores and
    // context 2TH; ×2 flops per multiply-add.
    let flops = batch as f64 * t * l * 2.0 * (4.0 * h * h + 2.0 * h * i + 2.0 * t * h);
    println!(
        "{{\"impl\": \"{}\", \"batch\": {batch}, \"seq\": {seq}, \"threads\": {threads}, \"ms\": {ms:.3}, \"min_ms\": {min_ms:.3}, \"tokens_per_s\": {:.1}, \"gflops\": {:.1}, \"rss_mb\": {rss_mb:.0}}}",
        match (int8, bf16) {
            (true, _) if bits == 7 => "bert4rs-int8-a7",
            (true, _) if bits == 8 => "bert4rs-int8-a8",
            (true, _) => "bert4rs-int8",
            (_, true) => "bert4rs-bf16",
            _ => "bert4rs",
        },
        (batch * seq) as f64 / (ms / 1e3),
        flops / (ms / 1e3) / 1e9
    );
    Ok(())
}

/// This process's resident memory (VmRSS), MB; 0 where /proc is absent.
fn resident_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    (status.lines())
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
