//! Fully connected layer with HF's `weight [out, in]` / `bias [out]` layout.

use super::dropout::Dropout;
use super::params::{Init, Params};
use crate::error::{Error, Result};
use crate::kernels::qgemm::CodeWidth;
use crate::kernels::{self, Bf16Panels, Epilogue, Gelu, GreedyScreen, Int8Weight};
use candle_core::{DType, Tensor, D};
use std::sync::Arc;

/// `y = x · Wᵀ + b`, applied to the last dimension of any-rank input.
#[derive(Clone, Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
    /// The weight prepared once for inference GEMMs ([`kernels::prepare_frozen_weight`]:
    /// `weightᵀ [in, out]` for the `gemm` crate, 16-column panels for the packed kernel), so no
    /// call re-packs a transposed view (2× faster at batch 1 × 32 on BERT-base). Not kept for
    /// trainable weights, which change each step.
    weight_t: Option<Tensor>,
    /// The int8 copy inference runs on after [`Self::quantize_int8`] (it replaces
    /// `weight_t`).
    int8: Option<Arc<Int8Weight>>,
    /// For a frozen bf16 `weight` (a `--dtype bf16` load): the GEMM's bf16 panels (in place
    /// of `weight_t`).
    bf16: Option<Arc<Bf16Panels>>,
}

impl Linear {
    /// Loads `weight` (and `bias`) that must exist in the checkpoint.
    pub fn load(p: &Params, in_dim: usize, out_dim: usize) -> Result<Self> {
        let weight = p.get((out_dim, in_dim), "weight")?;
        let bias = Some(p.get(out_dim, "bias")?);
        Ok(Self::new(weight, bias))
    }

    /// Loads from the checkpoint when present, else initialises as HF does
    /// (normal(0, std) weights, zero bias).
    pub fn load_or_init(p: &Params, in_dim: usize, out_dim: usize, std: f64) -> Result<Self> {
        let weight = p.get_or_init((out_dim, in_dim), "weight", Init::Normal(std))?;
        let bias = Some(p.get_or_init(out_dim, "bias", Init::Zeros)?);
        Ok(Self::new(weight, bias))
    }

    /// Builds from explicit tensors. A frozen CPU bf16 `weight` is kept as bf16 and
    /// multiplied in f32 ([`Bf16Panels`]).
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        let frozen = !weight.is_variable();
        let is_bf16 = frozen && weight.dtype() == DType::BF16 && weight.device().is_cpu();
        let weight = match is_bf16 {
            true => weight.contiguous().unwrap_or(weight),
            false => weight,
        };
        let bf16 = is_bf16
            .then(|| {
                let (n, k) = weight.dims2().ok()?;
                kernels::with_bf16_bits(&weight, |bits| Ok(Bf16Panels::new(bits, n, k))).ok()
            })
            .flatten()
            .map(Arc::new);
        let weight_t = if frozen && bf16.is_none() && !is_shape_only(&weight) {
            kernels::prepare_frozen_weight(&weight, None).ok()
        } else {
            None
        };
        Linear {
            weight,
            bias,
            weight_t,
            int8: None,
            bf16,
        }
    }

    /// Builds from a weight stored `[in, out]` (GPT-2's `Conv1D`): inference keeps that
    /// tensor as the pre-transposed copy instead of making a second one.
    pub fn from_transposed(weight_t: Tensor, bias: Option<Tensor>) -> Result<Self> {
        if weight_t.is_variable() {
            // Trainable: the gradient must reach the `[in, out]` variable itself.
            return Ok(Linear {
                weight: weight_t.t()?,
                bias,
                weight_t: None,
                int8: None,
                bf16: None,
            });
        }
        let weight = weight_t.t()?.contiguous()?;
        let prepared = kernels::prepare_frozen_weight(&weight, Some(&weight_t))?;
        Ok(Linear {
            weight,
            bias,
            weight_t: Some(prepared),
            int8: None,
            bf16: None,
        })
    }

    /// Switches inference to int8 weights ([`Int8Weight`]: per-output-channel symmetric,
    /// f32 activations), dropping the f32 GEMM copy. Only for frozen CPU f32 weights: a
    /// trainable layer is an error naming it.
    pub fn quantize_int8(&mut self, name: &str) -> Result<()> {
        self.quantize_with(name, Int8Weight::quantize)
    }

    /// Replaces the f32 GEMM copy with `quantize(weight, out, in)` after [`Self::check_int8`].
    fn quantize_with(
        &mut self,
        name: &str,
        quantize: impl FnOnce(&[f32], usize, usize) -> Int8Weight,
    ) -> Result<()> {
        self.check_int8(name)?;
        if self.int8.is_some() {
            return Err(Error::Invalid(format!("{name}: the layer is int8 already")));
        }
        let w = &self.weight;
        let (n, k) = w.dims2()?;
        let q = kernels::with_f32(&w.contiguous()?, |wv| Ok(quantize(wv, n, k)))?;
        self.install_int8(q)
    }

    /// Runs inference on `q` from now on. The layer keeps only the f32 weight's shape (a
    /// zero-stride tensor, no memory): int8 layers are inference-only and never read it, so
    /// a weight nobody else holds (a fused Q/K/V, a saved int8 checkpoint's) is freed.
    fn install_int8(&mut self, q: Int8Weight) -> Result<()> {
        self.weight = shape_only(self.weight.dims2()?, self.weight.device())?;
        self.int8 = Some(Arc::new(q));
        self.weight_t = None;
        Ok(())
    }

    /// Switches inference to dynamically quantised int8: the weight as in
    /// [`Self::quantize_int8`], and each row of the input quantised at run time to codes of
    /// `width` with its own scale, summed exactly in integers ([`kernels::qgemm`]); a row's
    /// output does not depend on the other rows. `act_scale`: the typical magnitude of
    /// each input channel, to smooth outlier channels into the weight
    /// ([`Int8Weight::quantize_smoothed`]).
    pub fn quantize_int8_dynamic(
        &mut self,
        name: &str,
        act_scale: Option<&[f32]>,
        width: CodeWidth,
    ) -> Result<()> {
        if let Some(q) = &mut self.int8 {
            // Already int8 (a saved int8 checkpoint, or a second call): same weights, only
            // the activations' width changes.
            Arc::make_mut(q).set_code_width(width);
            return Ok(());
        }
        let k = self.weight.dim(1)?;
        if let Some(a) = act_scale.filter(|a| a.len() != k) {
            return Err(Error::Invalid(format!(
                "{name}: {} activation scales for {k} inputs",
                a.len()
            )));
        }
        self.quantize_with(name, |w, n, k| {
            match act_scale {
                Some(a) => Int8Weight::quantize_smoothed(w, n, k, a),
                None => Int8Weight::quantize(w, n, k),
            }
            .with_dynamic_activations(width)
        })
    }

    /// Runs inference on `q`, int8 values saved earlier ([`Int8Weight::from_parts`]), in
    /// place of the f32 GEMM copy; `q` must have this layer's shape (an error naming `name`).
    pub fn set_int8(&mut self, name: &str, q: Int8Weight) -> Result<()> {
        self.check_int8(name)?;
        let (n, k) = self.weight.dims2()?;
        if (q.rows(), q.cols()) != (n, k) {
            return Err(Error::Invalid(format!(
                "{name}: int8 weight [{}, {}] for a [{n}, {k}] layer",
                q.rows(),
                q.cols()
            )));
        }
        self.install_int8(q)
    }

    /// True for a frozen bf16 weight (multiplied in f32 by [`Bf16Panels`]).
    pub fn is_bf16(&self) -> bool {
        self.bf16.is_some()
    }

    /// Whether [`Self::quantize_int8`] can run: an error naming `name` if not.
    pub fn check_int8(&self, name: &str) -> Result<()> {
        let w = &self.weight;
        if w.track_op() || !w.device().is_cpu() || w.dtype() != DType::F32 {
            return Err(Error::Invalid(format!(
                "{name}: int8 needs a frozen CPU f32 weight (load the model for inference)"
            )));
        }
        Ok(())
    }

    /// The int8 weight, once [`Self::quantize_int8`] ran.
    pub fn int8(&self) -> Option<&Int8Weight> {
        self.int8.as_deref()
    }

    /// The `[out, in]` weight; `None` for an int8 layer, which keeps only [`Self::int8`].
    pub fn weight(&self) -> Option<&Tensor> {
        self.int8.is_none().then_some(&self.weight)
    }

    /// The `[out]` bias.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// `dropout(self.forward(x))`; for trainable weights in training, one fused graph node
    /// (the same mask as [`Dropout::forward`] would draw, without a mask tensor or a
    /// multiply node).
    pub fn forward_dropout(&self, x: &Tensor, dropout: &Dropout, train: bool) -> Result<Tensor> {
        let Some(mask) = dropout.mask(train) else {
            return self.forward(x);
        };
        let epilogue = Epilogue {
            act: None,
            dropout: Some(mask),
        };
        match self.forward_train(x, epilogue)? {
            Some(y) => Ok(y),
            None => mask.apply_tensor(&self.forward(x)?),
        }
    }

    /// `act(self.forward(x))`; for trainable weights, one fused graph node (no separate
    /// activation node).
    pub fn forward_gelu(&self, x: &Tensor, act: Gelu) -> Result<Tensor> {
        let epilogue = Epilogue {
            act: Some(act),
            dropout: None,
        };
        match self.forward_train(x, epilogue)? {
            Some(y) => Ok(y),
            None => self.forward_frozen(x, Some(act)),
        }
    }

    /// The bf16 screen for [`Self::argmax_screened`]; `None` where it does not apply: a
    /// trainable weight (it changes, and its forward pass is another kernel), no bias (the
    /// forward pass is then candle's matmul), not CPU f32, no AVX2.
    pub fn greedy_screen(&self) -> Result<Option<GreedyScreen>> {
        let w = &self.weight;
        if self.weight_t.is_none()
            || self.bias.is_none()
            || !w.device().is_cpu()
            || w.dtype() != DType::F32
        {
            return Ok(None);
        }
        let (n, k) = w.dims2()?;
        Ok(kernels::with_f32(w, |wv| Ok(GreedyScreen::new(wv, n, k)))?)
    }

    /// For each row of `x [rows, in]`, the index of its largest output: exactly the first
    /// maximum of that row of [`Self::forward`], computed mostly from `screen`'s bf16 copy
    /// of this layer's weight (half the memory traffic; see [`GreedyScreen`]). `None` where
    /// the screen cannot vouch for the answer: compute the outputs then.
    pub fn argmax_screened(&self, x: &Tensor, screen: &GreedyScreen) -> Result<Option<Vec<usize>>> {
        let Some(b) = self.bias.as_ref().filter(|_| self.int8.is_none()) else {
            return Ok(None);
        };
        if !x.device().is_cpu() || x.dtype() != DType::F32 || x.rank() != 2 {
            return Ok(None);
        }
        let rows = x.dim(0)?;
        let x = x.contiguous()?;
        let pick = kernels::with_f32(&self.weight, |w| {
            kernels::with_f32(b, |b| {
                kernels::with_f32(&x, |xv| Ok(screen.argmax(w, b, xv, rows)))
            })
        })?;
        Ok(pick)
    }

    /// The fused trainable path (any-rank input, no reshape nodes); `None` when it does not
    /// apply (frozen weight, no bias, other device or dtype).
    fn forward_train(&self, x: &Tensor, epilogue: Epilogue) -> Result<Option<Tensor>> {
        match (&self.weight_t, &self.bias) {
            (None, Some(b)) if self.weight.is_variable() => {
                Ok(kernels::linear_train(x, &self.weight, b, epilogue)?)
            }
            _ => Ok(None),
        }
    }

    /// Applies the layer to the last dimension of `x`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let Some(y) = self.forward_train(x, Epilogue::default())? {
            return Ok(y);
        }
        self.forward_frozen(x, None)
    }

    /// `x2 [rows, in]` through the f32 weight, and whether `act` was applied (fused into the
    /// kernel's output where no gradient flows back through it).
    fn forward_f32(&self, x2: &Tensor, act: Option<Gelu>) -> Result<(Tensor, bool)> {
        if let Some(p) = self.bf16.as_ref().filter(|_| !x2.track_op()) {
            return Ok((self.forward_bf16(p, x2, act)?, act.is_some()));
        }
        let fuse = act.filter(|_| !x2.track_op());
        let fused = match (&self.weight_t, &self.bias) {
            (Some(wt), Some(b)) => kernels::linear_frozen(x2, (&self.weight, wt), b, fuse)?,
            _ => None,
        };
        Ok(match fused {
            Some(y) => (y, fuse.is_some()),
            None => {
                // (A bf16 weight under a tracked input: widened, so the gradient reaches x.)
                let y = x2.matmul(&self.weight.to_dtype(x2.dtype())?.t()?)?;
                let y = match &self.bias {
                    Some(b) => y.broadcast_add(b)?,
                    None => y,
                };
                (y, false)
            }
        })
    }

    /// The bias, or `n` zeros for a layer without one (the bf16 and int8 kernels take one).
    fn bias_or_zeros(&self, n: usize, device: &candle_core::Device) -> Result<Tensor> {
        match &self.bias {
            Some(b) => Ok(b.clone()),
            None => Ok(Tensor::zeros(n, DType::F32, device)?),
        }
    }

    /// `act(x2 [rows, in] · wᵀ + b)` through the bf16 weight and its panels (inference).
    fn forward_bf16(&self, p: &Bf16Panels, x2: &Tensor, act: Option<Gelu>) -> Result<Tensor> {
        let rows = x2.dim(0)?;
        if x2.dim(1)? != p.cols() {
            return Err(Error::Invalid(format!(
                "bf16 linear: input of {} features for a [{}, {}] weight",
                x2.dim(1)?,
                p.rows(),
                p.cols()
            )));
        }
        let b = &self.bias_or_zeros(p.rows(), x2.device())?;
        let x2 = x2.to_dtype(DType::F32)?.contiguous()?;
        let y = kernels::with_bf16_bits(&self.weight, |w| {
            kernels::with_f32(&x2, |xv| {
                kernels::with_f32(b, |bv| p.linear(w, (xv, rows), bv, act))
            })
        })?;
        Ok(Tensor::from_vec(y, (rows, p.rows()), x2.device())?)
    }

    /// [`Self::forward`] rounded to bf16, for a consumer that multiplies in bf16 anyway:
    /// `Some` for a dynamically quantised int8 layer, whose GEMM rounds each output as it
    /// stores it (half the bytes to write and read back); `None` for any other layer.
    pub fn forward_bf16_output(&self, x: &Tensor) -> Result<Option<Tensor>> {
        let Some(q) = self.int8.as_deref().filter(|q| q.is_dynamic()) else {
            return Ok(None);
        };
        let (rows, x2) = as_rows(x)?;
        self.check_int8_input(q, &x2)?;
        let x2 = x2.to_dtype(DType::F32)?.contiguous()?;
        let b = &self.bias_or_zeros(q.rows(), x2.device())?;
        let y = kernels::with_f32(&x2, |xv| {
            kernels::with_f32(b, |bv| Ok(q.linear_bf16(xv, rows, bv)))
        })?;
        let Some(y) = y else { return Ok(None) };
        Ok(Some(
            Tensor::from_vec(y, (rows, q.rows()), x2.device())?.reshape(self.out_dims(x)?)?,
        ))
    }

    /// `x`'s dims with the last one replaced by this layer's output width.
    fn out_dims(&self, x: &Tensor) -> Result<Vec<usize>> {
        let mut dims = x.dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = self.weight.dim(0)?;
        }
        Ok(dims)
    }

    /// Refuses a gradient-tracking input or one of the wrong width for the int8 weight `q`.
    fn check_int8_input(&self, q: &Int8Weight, x2: &Tensor) -> Result<()> {
        if x2.track_op() {
            return Err(Error::Invalid(
                "an int8 layer is for inference only: no gradient flows through it".into(),
            ));
        }
        if x2.dim(1)? != q.cols() {
            return Err(Error::Invalid(format!(
                "int8 linear: input of {} features for a [{}, {}] weight",
                x2.dim(1)?,
                q.rows(),
                q.cols()
            )));
        }
        Ok(())
    }

    /// `act(x2 [rows, in] · wᵀ + b)` through the int8 weight (inference only: no gradient
    /// flows through).
    fn forward_int8(
        &self,
        q: &Int8Weight,
        x2: &Tensor,
        rows: usize,
        act: Option<Gelu>,
    ) -> Result<Tensor> {
        self.check_int8_input(q, x2)?;
        let n = q.rows();
        let b = &self.bias_or_zeros(n, x2.device())?;
        let x2 = x2.to_dtype(DType::F32)?.contiguous()?;
        let y = kernels::with_f32(&x2, |xv| {
            kernels::with_f32(b, |bv| Ok(q.linear(xv, rows, bv, act)))
        })?;
        Ok(Tensor::from_vec(y, (rows, n), x2.device())?)
    }

    /// The frozen-weight (or bias-less) path, then `act`: inside the fused kernel's output
    /// buffer when it runs and no gradient is wanted, else as its own op.
    fn forward_frozen(&self, x: &Tensor, act: Option<Gelu>) -> Result<Tensor> {
        let (rows, x2) = as_rows(x)?;
        let (y, act_done) = match &self.int8 {
            Some(q) => (self.forward_int8(q, &x2, rows, act)?, true),
            None => self.forward_f32(&x2, act)?,
        };
        let y = match act {
            Some(act) if !act_done => act.apply(&y)?,
            _ => y,
        };
        Ok(y.reshape(self.out_dims(x)?)?)
    }
}

/// `x` as a `[rows, in]` matrix and its row count: one 2-D GEMM over all rows instead of a
/// batched one with a broadcast weight.
fn as_rows(x: &Tensor) -> Result<(usize, Tensor)> {
    let in_dim = x.dim(D::Minus1)?;
    let rows = x.elem_count() / in_dim.max(1);
    Ok((rows, x.reshape((rows, in_dim))?))
}

/// A frozen f32 weight of shape `(n, k)` without values: a zero-stride view of one zero.
/// What an int8 layer keeps of its f32 weight, and what an int8 checkpoint's layers are
/// built from before their int8 weights arrive (so nothing f32-sized is allocated).
pub fn shape_only((n, k): (usize, usize), device: &candle_core::Device) -> Result<Tensor> {
    Ok(Tensor::zeros((), DType::F32, device)?.broadcast_as((n, k))?)
}

/// Whether `t` is a [`shape_only`] tensor (a zero stride along a dimension longer than 1):
/// it has no values to multiply by or to save.
pub fn is_shape_only(t: &Tensor) -> bool {
    (t.stride().iter().zip(t.dims())).any(|(s, d)| *s == 0 && *d > 1)
}

/// `ws` stacked by rows (Q, K and V into one layer); shape-only when they all are.
pub fn cat_rows(ws: &[Tensor]) -> Result<Tensor> {
    match ws.first() {
        Some(first) if ws.iter().all(is_shape_only) => {
            let rows = ws
                .iter()
                .map(|w| w.dim(0))
                .sum::<candle_core::Result<usize>>()?;
            shape_only((rows, first.dim(1)?), first.device())
        }
        _ => Ok(Tensor::cat(ws, 0)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn an_int8_layer_keeps_only_the_shape_of_its_f32_weight_and_answers_the_same() {
        let dev = Device::Cpu;
        let w = Tensor::rand(-0.5f32, 0.5, (24, 40), &dev).unwrap();
        let b = Tensor::rand(-0.1f32, 0.1, 24, &dev).unwrap();
        let x = Tensor::rand(-1f32, 1., (3, 5, 40), &dev).unwrap();
        let mut l = Linear::new(w, Some(b));
        let f32_out = l.forward(&x).unwrap();
        l.quantize_int8_dynamic("l", None, CodeWidth::Wide).unwrap();
        assert!(l.weight().is_none() && is_shape_only(&l.weight));
        assert_eq!(l.weight.dims(), &[24, 40]);
        let q_out = l.forward(&x).unwrap();
        assert_eq!(q_out.dims(), &[3, 5, 24]);
        let diff = (q_out - &f32_out)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 0.05);
        // A second call only changes the activations' width; weight-only int8 is refused.
        l.quantize_int8_dynamic("l", None, CodeWidth::U7).unwrap();
        assert_eq!(l.int8().unwrap().code_width(), Some(CodeWidth::U7));
        let err = l.quantize_int8("l").unwrap_err().to_string();
        assert!(err.contains("int8 already"), "{err}");
    }
}
