//! bert4rs side of bench/generate.sh: greedy decoding of `--new` tokens from a batch of
//! `--prompt-len`-token prompts with the KV cache, end-of-text disabled; `--int8` decodes on
//! int8 weights. Prints one JSON line.

use bert4rs::generate::{generate, GenerationConfig};
use bert4rs::models::gpt2::Gpt2LMHeadModel;
use candle_core::Device;
use std::time::Instant;

// The allocator the `bert4rs` binary uses (glibc's malloc maps and unmaps the 200 KB logits
// buffer on every token: page faults were 3 % of batch-1 decoding in a profile).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

/// Same formula as bench/torch_generate_bench.py.
fn prompt_ids(batch: usize, len: usize) -> Vec<Vec<u32>> {
    (0..batch)
        .map(|r| {
            (0..len)
                .map(|i| ((1 + r * 7919 + i * 104_729) % 50_000) as u32)
                .collect()
        })
        .collect()
}

fn main() -> bert4rs::Result<()> {
    bert4rs::util::init_process();
    let dir = arg("--model-dir", "");
    let batch: usize = arg("--batch", "1").parse().unwrap();
    let prompt_len: usize = arg("--prompt-len", "32").parse().unwrap();
    let new: usize = arg("--new", "128").parse().unwrap();
    let threads: usize = arg("--threads", "2").parse().unwrap();
    let iters: usize = arg("--iters", "3").parse().unwrap();
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .unwrap();
    let int8 = std::env::args().any(|a| a == "--int8");
    let mut model = Gpt2LMHeadModel::from_dir(dir.as_ref(), &Device::Cpu, false)?;
    if int8 {
        model.quantize_int8()?;
    }
    let prompts = prompt_ids(batch, prompt_len);
    let cfg = GenerationConfig {
        max_new_tokens: new,
        eos_token_id: None,
        pad_token_id: Some(50256),
        ..Default::default()
    };
    let warm = GenerationConfig {
        max_new_tokens: 4,
        ..cfg.clone()
    };
    generate(&model, &prompts, &warm, &mut |_| {})?;
    let mut best = f64::INFINITY;
    let mut out = Vec::new();
    for _ in 0..iters {
        let t0 = Instant::now();
        out = generate(&model, &prompts, &cfg, &mut |_| {})?;
        best = best.min(t0.elapsed().as_secs_f64());
    }
    let first: Vec<u32> = out[0].ids[prompt_len..].iter().take(16).copied().collect();
    println!(
        "{}",
        serde_json::json!({"impl": if int8 { "bert4rs-int8" } else { "bert4rs" }, "batch": batch, "ms": best * 1e3,
            "tokens_per_s": (batch * new) as f64 / best, "first_row": first})
    );
    Ok(())
}
