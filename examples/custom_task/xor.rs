//! A task that is not built into bert4rs: a two-layer perceptron learning XOR of two noisy
//! inputs. It implements [`Task`] from outside the crate, so the engine's loop, optimisers,
//! schedules, clipping, EMA, checkpoints, exact resume, metrics log and report all apply.

use bert4rs::models::hub;
use bert4rs::rng::Rng;
use bert4rs::train::{Evaluation, Split, StepOutput, Task};
use candle_core::{DType, Device, Tensor, Var, D};
use std::path::Path;

/// Hidden units of the perceptron.
const HIDDEN: usize = 8;

/// `y = x1 XOR x2` from `x + noise`, learned by `softmax(W2 · tanh(W1 · x + b1) + b2)`.
pub struct Xor {
    params: Vec<(String, Var)>,
    train: Vec<([f32; 2], u32)>,
    dev: Vec<([f32; 2], u32)>,
}

impl Xor {
    /// `n` training and `n / 4` dev points; weights and data drawn from `seed`.
    pub fn new(n: usize, seed: u64) -> candle_core::Result<Self> {
        let mut rng = Rng::new(seed);
        let mut var = |name: &str, shape: (usize, usize)| -> candle_core::Result<(String, Var)> {
            let v: Vec<f32> = (0..shape.0 * shape.1)
                .map(|_| rng.normal() as f32 * 0.5)
                .collect();
            Ok((
                name.into(),
                Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu)?)?,
            ))
        };
        let params = vec![
            var("fc1.weight", (HIDDEN, 2))?,
            var("fc1.bias", (1, HIDDEN))?,
            var("fc2.weight", (2, HIDDEN))?,
            var("fc2.bias", (1, 2))?,
        ];
        let mut points = |n: usize| -> Vec<([f32; 2], u32)> {
            (0..n)
                .map(|_| {
                    let (a, b) = (rng.below(2), rng.below(2));
                    let noise = |r: &mut Rng| r.normal() as f32 * 0.1;
                    (
                        [a as f32 + noise(&mut rng), b as f32 + noise(&mut rng)],
                        (a ^ b) as u32,
                    )
                })
                .collect()
        };
        let (train, dev) = (points(n), points(n / 4));
        Ok(Xor { params, train, dev })
    }

    fn tensors(points: &[([f32; 2], u32)]) -> candle_core::Result<(Tensor, Tensor)> {
        let x: Vec<f32> = points.iter().flat_map(|p| p.0).collect();
        let y: Vec<u32> = points.iter().map(|p| p.1).collect();
        Ok((
            Tensor::from_vec(x, (points.len(), 2), &Device::Cpu)?,
            Tensor::from_vec(y, points.len(), &Device::Cpu)?,
        ))
    }

    fn logits(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let p = |i: usize| self.params[i].1.as_tensor();
        let h = x.matmul(&p(0).t()?)?.broadcast_add(p(1))?.tanh()?;
        h.matmul(&p(2).t()?)?.broadcast_add(p(3))
    }
}

impl Task for Xor {
    /// Inputs `[batch, 2]` and classes `[batch]`.
    type Batch = (Tensor, Tensor);

    fn describe(&self) -> String {
        format!(
            "XOR perceptron (2 → {HIDDEN} → 2)\ndata: {} train / {} dev points",
            self.train.len(),
            self.dev.len()
        )
    }

    fn params(&self) -> Vec<(String, Var)> {
        self.params.clone()
    }

    fn train_len(&self) -> usize {
        self.train.len()
    }

    fn batch(&self, idx: &[usize]) -> bert4rs::Result<Self::Batch> {
        let points: Vec<_> = idx.iter().map(|&i| self.train[i]).collect();
        Ok(Xor::tensors(&points)?)
    }

    fn forward(&self, (x, y): &Self::Batch, _train: bool) -> bert4rs::Result<StepOutput> {
        let logits = self.logits(x)?;
        let loss = candle_nn::loss::cross_entropy(&logits, y)?;
        Ok(StepOutput {
            loss,
            logits: Some(logits),
        })
    }

    fn evaluate(&self, split: Split, step: u64, _bs: usize) -> bert4rs::Result<Option<Evaluation>> {
        if split == Split::Test {
            return Ok(None);
        }
        let (x, y) = Xor::tensors(&self.dev)?;
        let logits = self.logits(&x)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?.to_scalar::<f32>()?;
        let hits = logits.argmax(D::Minus1)?.eq(&y)?.to_dtype(DType::F32)?;
        let accuracy = hits.mean_all()?.to_scalar::<f32>()?;
        let mut ev = Evaluation::new(split.name(), step, loss as f64, self.dev.len());
        ev.scores.insert("accuracy".into(), accuracy as f64);
        Ok(Some(ev))
    }

    fn save_pretrained(&self, dir: &Path) -> bert4rs::Result<()> {
        let tensors: Vec<(String, Tensor)> = self
            .params
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect();
        let config = format!("{{\"model_type\": \"xor-mlp\", \"hidden\": {HIDDEN}}}");
        hub::save_pretrained(dir, &config, &tensors)
    }

    fn load_weights(&mut self, dir: &Path) -> bert4rs::Result<()> {
        hub::load_into(dir, &self.params, |name| name.to_string())
    }
}
