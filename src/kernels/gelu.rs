//! Exact (erf) GELU, `0.5·x·(1 + erf(x/√2))`, in one vectorised pass. candle's version calls
//! libm's scalar `erff` per element: 20 % of MiniLM's forward time in a profile.

use super::common::contiguous_f32;
use super::simd::{self, dispatch};
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

struct GeluOp;

/// Exact GELU, differentiable; fused on CPU f32, candle's `gelu_erf` elsewhere.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        x.contiguous()?.apply_op1(GeluOp)
    } else {
        x.gelu_erf()
    }
}

/// `erf(x)` with absolute error below 2e-7 (Abramowitz & Stegun 7.1.26 refined form:
/// `1 − t·P(t)·e^{−x²}`, `t = 1/(1 + p|x|)`), branch-free so it vectorises.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / 0.327_591_1f32.mul_add(a, 1.0);
    let p = 1.061_405_4f32.mul_add(t, -1.453_152_1);
    let p = p.mul_add(t, 1.421_413_8);
    let p = p.mul_add(t, -0.284_496_74);
    let p = p.mul_add(t, 0.254_829_6);
    let r = 1.0 - p * t * simd::exp(-a * a);
    r.copysign(x)
}

#[inline(always)]
fn gelu(v: f32) -> f32 {
    0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2))
}

/// Exact GELU to within 1e-6 absolute, in half [`gelu`]'s operations (no `exp`): Abramowitz
/// & Stegun 7.1.28, `erf(u) = 1 − (1 + a₁u + … + a₆u⁶)^−16` (|ε| ≤ 3e-7), so
/// `Φ(−|v|) = ½·(1 − erf(|v|/√2))` is six FMAs, a division and four squarings, with `1/√2`
/// and `½ = (2^(1/16))^(−16)` folded into the coefficients. For the int8 GEMM's epilogue,
/// whose outputs are quantised next to codes whose steps are ~1e-2: there this GELU cost
/// 2.4 % of a BERT-base pass. Largest error 8.2e-7 (near |v| = 4) over a dense grid of
/// [−12, 12] (`coarse_gelu_stays_within_1e_6_of_the_exact_one`).
#[inline(always)]
fn gelu_coarse(v: f32) -> f32 {
    const P: [f32; 7] = [
        1.044_273_7,
        5.207_516_3e-2,
        2.207_7e-2,
        3.422_739_2e-3,
        3.968_613_6e-5,
        5.105_521e-5,
        5.621_3e-6,
    ];
    let a = v.abs();
    let mut p = P[6];
    for c in P[..6].iter().rev() {
        p = p.mul_add(a, *c);
    }
    let r = 1.0 / p;
    let r = r * r;
    let r = r * r;
    let r = r * r;
    let tail = r * r;
    v * if v >= 0.0 { 1.0 - tail } else { tail }
}

#[inline(always)]
fn gelu_coarse_slice(x: &[f32], out: &mut [f32]) {
    map_wide(x, out, gelu_coarse);
}

dispatch!(fn gelu_coarse_slice_best(x: &[f32], out: &mut [f32]) => gelu_coarse_slice);

/// `out = f(x)` elementwise, 32 values at a time: an activation is a long chain of dependent
/// operations (divisions, polynomials, `exp`), and a fixed 32-wide block gives the CPU four
/// independent AVX2 chains (two on AVX-512) to overlap. The exact GELU ran 10 % faster
/// this way than as a plain loop (one 8-wide chain), single-threaded on Zen 3.
#[inline(always)]
fn map_wide(x: &[f32], out: &mut [f32], f: impl Fn(f32) -> f32) {
    const W: usize = 32;
    let mut xs = x.chunks_exact(W);
    let mut os = out.chunks_exact_mut(W);
    for (xc, oc) in (&mut xs).zip(&mut os) {
        for (o, &v) in oc.iter_mut().zip(xc) {
            *o = f(v);
        }
    }
    for (o, &v) in os.into_remainder().iter_mut().zip(xs.remainder()) {
        *o = f(v);
    }
}

#[inline(always)]
fn gelu_slice(x: &[f32], out: &mut [f32]) {
    map_wide(x, out, gelu);
}

dispatch!(fn gelu_slice_best(x: &[f32], out: &mut [f32]) => gelu_slice);

impl CustomOp1 for GeluOp {
    fn name(&self) -> &'static str {
        "bert4rs-gelu-erf"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, "input")?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(16384)
            .zip(x.par_chunks(16384))
            .for_each(|(o, xi)| gelu_slice_best(xi, o));
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        fused_bwd(x, grad, gelu_erf_bwd_best).map(Some)
    }
}

/// `dx = dy · (Φ(x) + x·φ(x))` in one pass (as candle ops it was seven element-wise passes
/// with libm's scalar `erff`/`expf`: 7 % of a MiniLM training step in a profile).
#[inline(always)]
fn gelu_erf_bwd_slice(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    const PDF_SCALE: f32 = 0.398_942_3; // 1/√(2π)
    for ((d, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
        let cdf = 0.5 * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2));
        let pdf = PDF_SCALE * simd::exp(-0.5 * v * v);
        *d = g * (cdf + v * pdf);
    }
}

dispatch!(fn gelu_erf_bwd_best(x: &[f32], dy: &[f32], dx: &mut [f32]) => gelu_erf_bwd_slice);

/// Runs a fused element-wise backward `kernel(x, dy, dx)` over rayon chunks.
fn fused_bwd(x: &Tensor, grad: &Tensor, kernel: fn(&[f32], &[f32], &mut [f32])) -> Result<Tensor> {
    let grad = grad.contiguous()?;
    let dx = super::common::with_f32(x, |xv| {
        super::common::with_f32(&grad, |gv| {
            let mut dx = vec![0f32; xv.len()];
            dx.par_chunks_mut(16384)
                .zip(xv.par_chunks(16384).zip(gv.par_chunks(16384)))
                .for_each(|(d, (xi, gi))| kernel(xi, gi, d));
            Ok(dx)
        })
    })?;
    Tensor::from_vec(dx, x.shape(), x.device())
}

/// A GELU variant as an epilogue of a fused kernel (the trainable linear layer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gelu {
    /// Exact, `0.5·x·(1 + erf(x/√2))` (HF `gelu`).
    Erf,
    /// The tanh approximation (HF `gelu_new`).
    Tanh,
}

impl Gelu {
    /// The slice kernel `out = gelu(x)` for this variant.
    pub(super) fn slice_kernel(self) -> fn(&[f32], &mut [f32]) {
        match self {
            Gelu::Erf => gelu_slice_best,
            Gelu::Tanh => gelu_tanh_slice_best,
        }
    }

    /// [`Self::slice_kernel`] for outputs that are quantised next (the int8 GEMM's):
    /// the erf GELU to 1e-6 ([`gelu_coarse`]).
    pub(super) fn slice_kernel_coarse(self) -> fn(&[f32], &mut [f32]) {
        match self {
            Gelu::Erf => gelu_coarse_slice_best,
            Gelu::Tanh => gelu_tanh_slice_best,
        }
    }

    /// [`Self::slice_kernel_coarse`] on 16 values, for a kernel's epilogue to apply to a
    /// vector register where it stands (inlined, so it vectorises in the caller's
    /// instruction set): the same operations, so the same bits.
    #[inline(always)]
    pub(super) fn lanes_coarse(self, mut x: [f32; 16]) -> [f32; 16] {
        // Plain loops: `[T; N]::map` or a function pointer stayed out-of-line scalar calls.
        match self {
            Gelu::Erf => x.iter_mut().for_each(|v| *v = gelu_coarse(*v)),
            Gelu::Tanh => x.iter_mut().for_each(|v| *v = gelu_tanh_of(*v)),
        }
        x
    }

    /// `out = gelu(x)`, in parallel chunks.
    pub(super) fn forward(self, x: &[f32], out: &mut [f32]) {
        let kernel = self.slice_kernel();
        out.par_chunks_mut(16384)
            .zip(x.par_chunks(16384))
            .for_each(|(o, xi)| kernel(xi, o));
    }

    /// `v ← gelu(v)` in place, in parallel chunks (each staged through a small stack copy:
    /// the slice kernels read and write separate slices).
    pub(super) fn forward_in_place(self, v: &mut [f32]) {
        let kernel = self.slice_kernel();
        v.par_chunks_mut(16384).for_each(|chunk| {
            let mut buf = [0f32; 512];
            for c in chunk.chunks_mut(512) {
                let x = &mut buf[..c.len()];
                x.copy_from_slice(c);
                kernel(x, c);
            }
        });
    }

    /// `dy ← dy · gelu'(x)` in place, in parallel chunks.
    pub(super) fn backward_in_place(self, x: &[f32], dy: &mut [f32]) {
        let kernel = match self {
            Gelu::Erf => gelu_erf_bwd_in_place_best,
            Gelu::Tanh => gelu_tanh_bwd_in_place_best,
        };
        dy.par_chunks_mut(16384)
            .zip(x.par_chunks(16384))
            .for_each(|(d, xi)| kernel(xi, d));
    }

    /// The same function as a differentiable tensor op.
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Gelu::Erf => gelu_erf(x),
            Gelu::Tanh => gelu_tanh(x),
        }
    }
}

/// A backward `kernel(x, dy, dx)` with the gradient updated in place (a chunk at a time, so
/// the copy of `dy` stays in L1).
#[inline(always)]
fn bwd_in_place(x: &[f32], dy: &mut [f32], kernel: impl Fn(&[f32], &[f32], &mut [f32])) {
    let mut tmp = [0f32; 256];
    for (xc, dc) in x.chunks(256).zip(dy.chunks_mut(256)) {
        let t = &mut tmp[..xc.len()];
        t.copy_from_slice(dc);
        kernel(xc, t, dc);
    }
}

#[inline(always)]
fn gelu_erf_bwd_in_place(x: &[f32], dy: &mut [f32]) {
    bwd_in_place(x, dy, gelu_erf_bwd_slice);
}

dispatch!(fn gelu_erf_bwd_in_place_best(x: &[f32], dy: &mut [f32]) => gelu_erf_bwd_in_place);

#[inline(always)]
fn gelu_tanh_bwd_in_place(x: &[f32], dy: &mut [f32]) {
    bwd_in_place(x, dy, gelu_tanh_bwd_slice);
}

dispatch!(fn gelu_tanh_bwd_in_place_best(x: &[f32], dy: &mut [f32]) => gelu_tanh_bwd_in_place);

struct GeluTanhOp;

/// Tanh-approximated GELU (HF `gelu_new`, GPT-2's activation), differentiable; fused on CPU
/// f32 (candle's calls libm `tanhf` per element: 7 % of GPT-2 decoding in a profile).
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        x.contiguous()?.apply_op1(GeluTanhOp)
    } else {
        x.gelu()
    }
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// `0.5·x·(1 + tanh(u))` with `1 + tanh(u) = 2 − 2/(e^{2u} + 1)`, vectorisable.
#[inline(always)]
fn gelu_tanh_of(v: f32) -> f32 {
    let u = SQRT_2_OVER_PI * (v + 0.044_715 * v * v * v);
    let e = simd::exp(2.0 * u);
    v * (1.0 - 1.0 / (e + 1.0))
}

#[inline(always)]
fn gelu_tanh_slice(x: &[f32], out: &mut [f32]) {
    map_wide(x, out, gelu_tanh_of);
}

dispatch!(fn gelu_tanh_slice_best(x: &[f32], out: &mut [f32]) => gelu_tanh_slice);

impl CustomOp1 for GeluTanhOp {
    fn name(&self) -> &'static str {
        "bert4rs-gelu-tanh"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, "input")?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(16384)
            .zip(x.par_chunks(16384))
            .for_each(|(o, xi)| gelu_tanh_slice_best(xi, o));
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        fused_bwd(x, grad, gelu_tanh_bwd_best).map(Some)
    }
}

/// `d/dx = 0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²)`, `t = tanh(u)`, in one pass.
#[inline(always)]
fn gelu_tanh_bwd_slice(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    for ((d, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
        let u = SQRT_2_OVER_PI * (v + 0.044_715 * v * v * v);
        let t = 1.0 - 2.0 / (simd::exp(2.0 * u) + 1.0);
        let du = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044_715 * v * v);
        *d = g * (0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * du);
    }
}

dispatch!(fn gelu_tanh_bwd_best(x: &[f32], dy: &[f32], dx: &mut [f32]) => gelu_tanh_bwd_slice);

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(v: f64) -> f64 {
        0.5 * v * (1.0 + libm::erf(v / std::f64::consts::SQRT_2))
    }

    #[test]
    fn coarse_gelu_stays_within_1e_6_of_the_exact_one() {
        let xs: Vec<f32> = (0..=480_000).map(|i| i as f32 / 20_000.0 - 12.0).collect();
        let mut out = vec![0f32; xs.len()];
        gelu_coarse_slice_best(&xs, &mut out);
        let worst = (xs.iter().zip(&out))
            .map(|(&x, &y)| (y as f64 - exact(x as f64)).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-6, "largest error {worst:e}");
        // Far out it is the identity or zero, and it passes NaN through.
        for (x, want) in [(1e4f32, 1e4f32), (-1e4, 0.0), (0.0, 0.0)] {
            assert_eq!(gelu_coarse(x), want, "{x}");
        }
        assert!(gelu_coarse(f32::NAN).is_nan());
    }

    #[test]
    fn coarse_gelu_lanes_equal_its_slice_kernel() {
        let x: [f32; 16] = std::array::from_fn(|i| i as f32 * 0.61 - 4.7);
        let mut slice = [0f32; 16];
        Gelu::Erf.slice_kernel_coarse()(&x, &mut slice);
        assert_eq!(Gelu::Erf.lanes_coarse(x), slice);
    }
}
