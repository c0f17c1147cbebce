//! bert4rs half of the token-layer benchmark (bench/token.sh runs it beside PyTorch and
//! pytorch-crf): a BiLSTM and a BiGRU forward + backward over `[batch, seq, hidden]`, and a CRF's
//! negative log-likelihood + backward and its Viterbi decode over `[batch, seq, tags]`.
//! `cargo run --release --example bench_token -- --batch 32 --seq 128 --hidden 256 --tags 9 --threads 2`
//! prints one JSON line of median milliseconds.

use bert4rs::nn::{Crf, Params, Reduction, Rnn, RnnConfig, RnnMode};
use candle_core::{Device, Tensor, Var};
use std::time::Instant;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(f: &mut dyn FnMut() -> bert4rs::Result<()>, iters: usize) -> bert4rs::Result<f64> {
    f()?; // warm-up
    let mut ms: Vec<f64> = (0..iters)
        .map(|_| {
            let t = Instant::now();
            f().map(|_| t.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<bert4rs::Result<_>>()?;
    ms.sort_by(f64::total_cmp);
    Ok(ms[ms.len() / 2])
}

fn main() -> bert4rs::Result<()> {
    bert4rs::util::init_process();
    let (b, t, h, k) = (
        arg("--batch", 32),
        arg("--seq", 128),
        arg("--hidden", 256),
        arg("--tags", 9),
    );
    let iters = arg("--iters", 5);
    bert4rs::util::init_threads(arg("--threads", 2));
    let dev = Device::Cpu;
    let p = Params::fresh(&dev, true);
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, t, h), &dev)?)?;
    let mask = Tensor::ones((b, t), candle_core::DType::F32, &dev)?;
    let rnn_ms = |mode: RnnMode, name: &str| -> bert4rs::Result<f64> {
        let cfg = RnnConfig {
            mode,
            input_size: h,
            hidden_size: h,
            num_layers: 1,
            bidirectional: true,
            dropout: 0.0,
        };
        let rnn = Rnn::load(&p.pp(name), &cfg)?;
        median(
            &mut || {
                let out = rnn.forward(x.as_tensor(), &mask, true)?;
                out.output.sum_all()?.backward()?;
                Ok(())
            },
            iters,
        )
    };
    let lstm_ms = rnn_ms(RnnMode::Lstm, "lstm")?;
    let gru_ms = rnn_ms(RnnMode::Gru, "gru")?;
    let crf = Crf::load(&p.pp("crf"), k)?;
    let e = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, t, k), &dev)?)?;
    let tags: Vec<Vec<i64>> = (0..b)
        .map(|i| (0..t).map(|j| ((i * 7 + j * 3) % k) as i64).collect())
        .collect();
    let nll_ms = median(
        &mut || {
            let nll = crf
                .log_likelihood(e.as_tensor(), &tags, &mask, Reduction::Mean)?
                .neg()?;
            nll.backward()?;
            Ok(())
        },
        iters,
    )?;
    let viterbi_ms = median(
        &mut || {
            crf.decode(e.as_tensor(), &mask)?;
            Ok(())
        },
        iters,
    )?;
    println!(
        "{}",
        serde_json::json!({"impl": "bert4rs", "lstm_fwd_bwd_ms": lstm_ms, "gru_fwd_bwd_ms": gru_ms, "crf_nll_bwd_ms": nll_ms, "crf_viterbi_ms": viterbi_ms})
    );
    Ok(())
}
