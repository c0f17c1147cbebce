//! bert4rs half of the training-step benchmark (bench/train.sh runs it beside PyTorch):
//! one optimiser step = forward (train mode, dropout on) + cross-entropy on a CLS-pooled
//! linear head + backward + AdamW over every weight.
//! `cargo run --release --example bench_train -- --model-dir DIR --batch 8 --seq 128 --threads 2`
//! prints one JSON line: median ms per step and its forward / backward / optimiser parts.

use bert4rs::rng;
use bert4rs::tasks::classify::{HeadSpec, LossConfig, Problem, SequenceClassifier, Targets};
use bert4rs::train::groups::build_groups;
use bert4rs::train::{Optimizer, OptimizerConfig};
use bert4rs::{EncoderInput, Pooling};
use candle_core::{Device, Tensor};
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// mimalloc, counting the bytes each phase allocates: a deterministic measure of the
/// memory churn (fresh gradient buffers, copies) that wall-clock times on a shared machine
/// hide in their noise.
struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to mimalloc unchanged; the counter has no effect on memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        mimalloc::MiMalloc.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        mimalloc::MiMalloc.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        mimalloc::MiMalloc.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size.saturating_sub(layout.size()), Ordering::Relaxed);
        mimalloc::MiMalloc.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Megabytes allocated since the last call.
fn allocated_mb(last: &mut usize) -> f64 {
    let now = ALLOCATED.load(Ordering::Relaxed);
    let mb = (now - *last) as f64 / (1 << 20) as f64;
    *last = now;
    mb
}

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> bert4rs::Result<()> {
    bert4rs::util::init_process();
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = arg(&args, "--threads", "2").parse().unwrap_or(2);
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global();
    let dir = std::path::PathBuf::from(arg(&args, "--model-dir", "."));
    let batch: usize = arg(&args, "--batch", "8").parse().unwrap_or(8);
    let seq: usize = arg(&args, "--seq", "128").parse().unwrap_or(128);
    let warmup: usize = arg(&args, "--warmup", "2").parse().unwrap_or(2);
    let iters: usize = arg(&args, "--iters", "5").parse().unwrap_or(5);
    rng::seed_init(0);
    let spec = HeadSpec {
        problem: Problem::SingleLabel,
        labels: vec!["a".into(), "b".into()],
        pooling: Pooling::Cls,
        rnn: None,
        windows: None,
    };
    let model = SequenceClassifier::from_dir(&dir, &Device::Cpu, true, Some(spec))?;
    let cfg = model.encoder().config().clone();
    let mut r = rng::Rng::new(1);
    let ids: Vec<u32> = (0..batch * seq)
        .map(|_| 1000 + r.below(cfg.vocab_size - 1000) as u32)
        .collect();
    let input = EncoderInput {
        input_ids: Tensor::from_vec(ids, (batch, seq), &Device::Cpu)?,
        attention_mask: Tensor::ones((batch, seq), candle_core::DType::F32, &Device::Cpu)?,
        token_type_ids: Tensor::zeros((batch, seq), candle_core::DType::U32, &Device::Cpu)?,
    };
    let targets = Targets::Classes((0..batch).map(|i| (i % 2) as u32).collect());
    let ocfg = OptimizerConfig {
        lr: 1e-5,
        ..Default::default()
    };
    let (groups, _) = build_groups(
        model.vars(),
        &ocfg,
        model.encoder_prefix(),
        cfg.num_hidden_layers,
    )?;
    let mut opt = Optimizer::new(&ocfg, groups)?;
    let (mut fwd, mut bwd, mut upd, mut total) = (vec![], vec![], vec![], vec![]);
    let (mut mark, mut fwd_mb, mut bwd_mb) = (0usize, 0.0, 0.0);
    for i in 0..warmup + iters {
        rng::seed_dropout(i as u64);
        allocated_mb(&mut mark);
        let t0 = Instant::now();
        let logits = model.forward(&input, true)?;
        let loss = model.loss(&logits, &targets, &LossConfig::default())?;
        let _ = loss.to_scalar::<f32>()?;
        let t1 = Instant::now();
        fwd_mb = allocated_mb(&mut mark);
        let grads = loss.backward()?;
        let t2 = Instant::now();
        bwd_mb = allocated_mb(&mut mark);
        opt.step(&grads, 1.0, 1.0)?;
        let t3 = Instant::now();
        if i >= warmup {
            fwd.push((t1 - t0).as_secs_f64() * 1e3);
            bwd.push((t2 - t1).as_secs_f64() * 1e3);
            upd.push((t3 - t2).as_secs_f64() * 1e3);
            total.push((t3 - t0).as_secs_f64() * 1e3);
        }
    }
    println!(
        "{{\"impl\": \"bert4rs\", \"batch\": {batch}, \"seq\": {seq}, \"threads\": {threads}, \"ms\": {:.1}, \"forward_ms\": {:.1}, \"backward_ms\": {:.1}, \"optimizer_ms\": {:.1}, \"forward_alloc_mb\": {fwd_mb:.0}, \"backward_alloc_mb\": {bwd_mb:.0}}}",
        median(total),
        median(fwd),
        median(bwd),
        median(upd)
    );
    Ok(())
}
