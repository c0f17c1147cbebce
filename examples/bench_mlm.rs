//! bert4rs half of the masked-LM step benchmark (bench/mlm.sh runs it beside PyTorch): the
//! training engine's own step — dynamic masking (token-level, 15 %, 80/10/10) of a batch of
//! packed blocks, forward (train mode, dropout on), cross-entropy at the masked positions,
//! backward, clipping, AdamW over every weight — on a new BERT from `--model-dir`
//! (config.json), with the tokenizer of `--tokenizer`, on the text of `--text`.
//! `cargo run --release --example bench_mlm -- --model-dir configs/zh-bert-small
//!  --tokenizer runs/zh-vocab --text runs/zh-mlm.txt --batch 64 --seq 128`
//! prints one JSON line: median ms per step and its masking part.

use bert4rs::train::{MlmTask, RunConfig, Task, Trainer};
use std::time::Instant;

/// The binary's allocator, so the step is timed as `bert4rs pretrain` runs it.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let threads = arg(&args, "--threads", "2");
    let batch: usize = arg(&args, "--batch", "64").parse().unwrap_or(64);
    let seq = arg(&args, "--seq", "128");
    let warmup: usize = arg(&args, "--warmup", "2").parse().unwrap_or(2);
    let iters: usize = arg(&args, "--iters", "5").parse().unwrap_or(5);
    let out = std::env::temp_dir().join(format!("bench-mlm-{}", std::process::id()));
    let q = |s: String| format!("{s:?}");
    let sets = vec![
        format!(
            "model={}",
            q(arg(&args, "--model-dir", "configs/zh-bert-small"))
        ),
        format!(
            "tokenizer={}",
            q(arg(&args, "--tokenizer", "runs/zh-vocab"))
        ),
        format!("data.train={}", q(arg(&args, "--text", "runs/zh-mlm.txt"))),
        format!("output_dir={}", q(out.display().to_string())),
        "task.kind=\"mlm\"".into(),
        format!("data.max_length={seq}"),
        format!("train.batch_size={batch}"),
        format!("train.threads={threads}"),
        "optimizer.lr=1e-4".into(),
    ];
    let cfg = RunConfig::load(None, &sets)?;
    bert4rs::train::prepare_run(&cfg, false)?;
    let task = MlmTask::new(&cfg)?;
    let mut trainer = Trainer::new(cfg, task, false)?;
    let n = trainer.task().train_len();
    let (mut mask_ms, mut total) = (vec![], vec![]);
    for i in 0..warmup + iters {
        let idx: Vec<usize> = (0..batch).map(|j| (i * batch + j) % n).collect();
        let t0 = Instant::now();
        let b = trainer.task().epoch_batch(&idx, i as u64)?;
        let t1 = Instant::now();
        trainer.step(&[b])?;
        let t2 = Instant::now();
        if i >= warmup {
            mask_ms.push((t1 - t0).as_secs_f64() * 1e3);
            total.push((t2 - t0).as_secs_f64() * 1e3);
        }
    }
    let _ = std::fs::remove_dir_all(&out);
    println!(
        "{{\"impl\": \"bert4rs\", \"batch\": {batch}, \"seq\": {seq}, \"threads\": {threads}, \"ms\": {:.1}, \"masking_ms\": {:.1}}}",
        median(total),
        median(mask_ms)
    );
    Ok(())
}
