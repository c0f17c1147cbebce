//! Int8 linear layers. Weights are quantised symmetrically per output channel
//! (`w ≈ scale[o] · q[o][i]`, `q` in [-127, 127]). Two ways to run them:
//! - weight-only (W8A32): activations stay f32 and every product is an f32 FMA of the
//!   converted weight, so the only error is the weights' rounding and results equal an f32
//!   layer with the dequantised weights up to summation order;
//! - dynamic ([`Int8Weight::with_dynamic_activations`]): each input row is quantised
//!   at run time and the products are exact integers ([`qgemm`]) — what the encoders and
//!   GPT-2 decoding use.

use super::gelu::Gelu;
use super::gemm::skinny::{self, MAX_ROWS, TASK_OUTPUTS};
use super::qgemm::{self, CodeWidth, PackedI8};
use rayon::prelude::*;
use std::borrow::Cow;

/// A `[n, k]` weight as int8 with one f32 scale per output row.
#[derive(Clone, Debug)]
pub struct Int8Weight {
    /// The values, row-major; emptied once packed for the integer GEMM (the panels hold
    /// the same values: [`Self::values`]).
    q: Vec<i8>,
    scale: Vec<f32>,
    k: usize,
    /// Set by [`Self::with_dynamic_activations`]: the weight packed for the integer GEMM and
    /// the width of the activations' codes.
    dynamic: Option<(PackedI8, CodeWidth)>,
    /// Per input channel, `1 / s_j` that inputs are multiplied by before they are quantised
    /// (the weight's column `j` was multiplied by `s_j`: [`Self::quantize_smoothed`]).
    inv_smooth: Option<Vec<f32>>,
}

impl Int8Weight {
    /// Quantises `w [n, k]` (row-major) per output row: `scale = max|w_row| / 127`,
    /// `q = round(w / scale)`. A row of zeros gets scale 1 and zeros.
    pub fn quantize(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(
            w.len(),
            n * k,
            "Int8Weight::quantize: {} values for [{n}, {k}]",
            w.len()
        ); // ok: callers pass a checked [n, k] tensor
        let mut q = vec![0i8; n * k];
        let mut scale = vec![1f32; n];
        q.par_chunks_mut(k.max(1))
            .zip(scale.par_iter_mut())
            .zip(w.par_chunks(k.max(1)))
            .for_each(|((qr, s), wr)| {
                let max = wr.iter().fold(0f32, |m, v| m.max(v.abs()));
                if max > 0.0 && max.is_finite() {
                    *s = max / 127.0;
                    for (qv, v) in qr.iter_mut().zip(wr) {
                        *qv = (v / *s).round().clamp(-127.0, 127.0) as i8;
                    }
                }
            });
        Int8Weight {
            q,
            scale,
            k,
            dynamic: None,
            inv_smooth: None,
        }
    }

    /// SmoothQuant's migration of activation outliers into the weight (Xiao et al., 2023):
    /// `x·Wᵀ = (x / s)·(W·diag(s))ᵀ` with `s_j = sqrt(a_j / max_o |W[o][j]|)`, where `a_j` is
    /// the typical magnitude of input channel `j` (`act_scale`). A few input channels of a
    /// BERT layer (LayerNorm outputs with large γ) dominate each token's range; dividing them
    /// down before the per-token grid keeps the other channels' resolution. Exact in real
    /// arithmetic; only the rounding moves.
    pub fn quantize_smoothed(w: &[f32], n: usize, k: usize, act_scale: &[f32]) -> Self {
        let mut wmax = vec![0f32; k];
        for row in w.chunks_exact(k.max(1)) {
            for (m, v) in wmax.iter_mut().zip(row) {
                *m = m.max(v.abs());
            }
        }
        let s: Vec<f32> = act_scale
            .iter()
            .zip(&wmax)
            .map(|(a, m)| {
                let s = (a / m).sqrt();
                if s.is_finite() && s > 0.0 {
                    s
                } else {
                    1.0
                }
            })
            .collect();
        let scaled: Vec<f32> = w
            .chunks_exact(k.max(1))
            .flat_map(|row| row.iter().zip(&s).map(|(v, s)| v * s))
            .collect();
        let mut q = Self::quantize(&scaled, n, k);
        q.inv_smooth = Some(s.iter().map(|s| 1.0 / s).collect());
        q
    }

    /// Makes [`Self::linear`] quantise its input rows too ([`qgemm`]): every product is
    /// then an exact integer one, at the cost of rounding each activation to its row's grid
    /// of `width` codes.
    pub fn with_dynamic_activations(mut self, width: CodeWidth) -> Self {
        self.set_code_width(width);
        self
    }

    /// A weight saved by a `bert4rs quantize` directory: `q [n, k]` row-major (values in
    /// [-127, 127]), `scale [n]`, and `inv_smooth [k]` (what inputs are multiplied by
    /// before they are quantised) for a smoothed weight; the inverse of [`Self::parts`].
    /// An error saying what does not fit.
    pub fn from_parts(
        q: Vec<i8>,
        scale: Vec<f32>,
        inv_smooth: Option<Vec<f32>>,
    ) -> Result<Self, String> {
        let n = scale.len();
        if n == 0 || !q.len().is_multiple_of(n) {
            return Err(format!("{} int8 values for {n} output scales", q.len()));
        }
        let k = q.len() / n;
        if q.contains(&i8::MIN) {
            return Err("an int8 value is -128; the range is [-127, 127]".into());
        }
        if let Some(s) = scale.iter().find(|s| !s.is_finite() || **s <= 0.0) {
            return Err(format!(
                "an output scale is {s}; scales are finite and positive"
            ));
        }
        match &inv_smooth {
            Some(m) if m.len() != k => {
                return Err(format!("{} input multipliers for {k} inputs", m.len()))
            }
            Some(m) if m.iter().any(|v| !v.is_finite() || *v <= 0.0) => {
                return Err("an input multiplier is not finite and positive".into())
            }
            _ => {}
        }
        Ok(Int8Weight {
            q,
            scale,
            k,
            dynamic: None,
            inv_smooth,
        })
    }

    /// The int8 values `[n, k]`, the output scales `[n]` and any input multipliers `[k]`.
    pub fn parts(&self) -> (Cow<'_, [i8]>, &[f32], Option<&[f32]>) {
        (self.values(), &self.scale, self.inv_smooth.as_deref())
    }

    /// The weights of `parts` stacked by output rows (Q, K and V into one layer), or
    /// `None` when their input sizes or input multipliers differ.
    pub fn stack(parts: &[&Int8Weight]) -> Option<Self> {
        let first = parts.first()?;
        let same = |p: &&Int8Weight| p.k == first.k && p.inv_smooth == first.inv_smooth;
        if !parts.iter().all(same) {
            return None;
        }
        Some(Int8Weight {
            q: parts.iter().flat_map(|p| p.values().into_owned()).collect(),
            scale: parts.iter().flat_map(|p| p.scale.iter().copied()).collect(),
            k: first.k,
            dynamic: None,
            inv_smooth: first.inv_smooth.clone(),
        })
    }

    /// Output rows `[first, first + n)` as a weight of their own (not packed), the inverse of
    /// [`Self::stack`].
    pub fn rows_range(&self, first: usize, n: usize) -> Self {
        Int8Weight {
            q: self.values()[first * self.k..(first + n) * self.k].to_vec(),
            scale: self.scale[first..first + n].to_vec(),
            k: self.k,
            dynamic: None,
            inv_smooth: self.inv_smooth.clone(),
        }
    }

    /// The width of the activations' codes, for a dynamic weight.
    pub fn code_width(&self) -> Option<CodeWidth> {
        self.dynamic.as_ref().map(|(_, w)| *w)
    }

    /// Quantises inputs to codes of `width` from now on (packing the weight if it was not
    /// dynamic yet).
    pub fn set_code_width(&mut self, width: CodeWidth) {
        match &mut self.dynamic {
            Some((_, w)) => *w = width,
            None => {
                let packed = PackedI8::pack(&self.q, self.rows(), self.k);
                self.dynamic = Some((packed, width));
                self.q = Vec::new();
            }
        }
    }

    /// The int8 values `[n, k]`, row-major (unpacked from the GEMM's panels once packed).
    pub fn values(&self) -> Cow<'_, [i8]> {
        match &self.dynamic {
            Some((packed, _)) => Cow::Owned(packed.unpack()),
            None => Cow::Borrowed(&self.q),
        }
    }

    /// Whether inputs are quantised too ([`Self::with_dynamic_activations`]).
    pub fn is_dynamic(&self) -> bool {
        self.dynamic.is_some()
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        self.scale.len()
    }

    /// Input features.
    pub fn cols(&self) -> usize {
        self.k
    }

    /// The f32 weight these int8 values stand for, `[n, k]` (smoothing undone).
    pub fn dequantized(&self) -> Vec<f32> {
        let ones = vec![1f32; self.k];
        let inv = self.inv_smooth.as_deref().unwrap_or(&ones);
        self.values()
            .chunks_exact(self.k.max(1))
            .zip(&self.scale)
            .flat_map(|(qr, s)| qr.iter().zip(inv).map(move |(&v, m)| v as f32 * s * m))
            .collect()
    }

    /// Bytes held (the int8 values, the scales and any packed copy).
    pub fn bytes(&self) -> usize {
        self.q.len() + 4 * self.scale.len() + self.dynamic.as_ref().map_or(0, |(p, _)| p.bytes())
    }

    /// [`Self::linear`] (no activation) with the outputs rounded to bf16 as they are stored
    /// ([`qgemm::gemm_bf16`]); `None` for weight-only int8, which computes in f32.
    pub fn linear_bf16(&self, x: &[f32], rows: usize, b: &[f32]) -> Option<Vec<half::bf16>> {
        let (packed, width) = self.dynamic.as_ref()?;
        assert!(
            x.len() == rows * self.k && b.len() == self.rows(),
            "Int8Weight::linear_bf16 shapes"
        ); // ok: the layer checks shapes before calling
        let a = qgemm::quantize_rows(x, rows, self.k, self.inv_smooth.as_deref(), *width);
        Some(qgemm::gemm_bf16(&a, packed, &self.scale, b))
    }

    /// `act(x [rows, k] · Wᵀ + b)` → `[rows, n]`, any number of rows (taken [`MAX_ROWS`] at
    /// a time: each group streams the weights once).
    pub fn linear(&self, x: &[f32], rows: usize, b: &[f32], act: Option<Gelu>) -> Vec<f32> {
        let (n, k) = (self.rows(), self.k);
        assert!(
            x.len() == rows * k && b.len() == n,
            "Int8Weight::linear shapes"
        ); // ok: the layer checks shapes before calling
        if let Some((packed, width)) = &self.dynamic {
            let a = qgemm::quantize_rows(x, rows, k, self.inv_smooth.as_deref(), *width);
            return qgemm::gemm(&a, packed, &self.scale, b, act);
        }
        let mut out = vec![0f32; rows * n];
        for r0 in (0..rows).step_by(MAX_ROWS) {
            let take = (rows - r0).min(MAX_ROWS);
            let xs = &x[r0 * k..(r0 + take) * k];
            // outᵀ [n, take]: each task owns a block of outputs.
            let mut out_t = vec![0f32; n * take];
            out_t
                .par_chunks_mut(TASK_OUTPUTS * take)
                .enumerate()
                .for_each(|(task, block)| {
                    let first = task * TASK_OUTPUTS;
                    let q = &self.q[first * k..(first + block.len() / take) * k];
                    dots(q, xs, take, k, block);
                });
            for (o, col) in out_t.chunks_exact(take).enumerate() {
                for (r, v) in col.iter().enumerate() {
                    out[(r0 + r) * n + o] = v * self.scale[o] + b[o];
                }
            }
        }
        if let Some(act) = act {
            act.forward_in_place(&mut out);
        }
        out
    }
}

/// `out[o·rows + r] = q[o] · x[r]` (unscaled).
fn dots(q: &[i8], x: &[f32], rows: usize, k: usize, out: &mut [f32]) {
    if skinny::block_dots_narrow(q, x, rows, k, out).is_some() {
        return;
    }
    for (o, dst) in out.chunks_exact_mut(rows).enumerate() {
        for (r, d) in dst.iter_mut().enumerate() {
            *d = q[o * k..][..k]
                .iter()
                .zip(&x[r * k..][..k])
                .map(|(a, b)| *a as f32 * b)
                .sum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 1013) as f32 / 506.0 - 1.0) * 0.3)
            .collect()
    }

    #[test]
    fn quantized_weights_are_within_half_a_step_of_the_originals() {
        let (n, k) = (37, 53);
        let mut w = values(n * k, 1);
        w[5 * k..6 * k].fill(0.0); // a zero row
        let q = Int8Weight::quantize(&w, n, k);
        let d = q.dequantized();
        for o in 0..n {
            let step = q.scale[o];
            let max = w[o * k..(o + 1) * k]
                .iter()
                .fold(0f32, |m, v| m.max(v.abs()));
            assert!(max == 0.0 || (step - max / 127.0).abs() <= 1e-9);
            for i in 0..k {
                assert!((w[o * k + i] - d[o * k + i]).abs() <= step / 2.0 + 1e-7);
            }
        }
        assert!(d[5 * k..6 * k].iter().all(|v| *v == 0.0));
    }

    #[test]
    fn int8_linear_equals_f32_arithmetic_on_the_dequantized_weights() {
        // k: a vector tail; n: not a multiple of the task block; rows across 16-row groups.
        let (n, k) = (101, 203);
        let q = Int8Weight::quantize(&values(n * k, 2), n, k);
        let w = q.dequantized();
        let b = values(n, 3);
        for rows in [1, 2, 5, 16, 17, 40] {
            let x = values(rows * k, 4 + rows);
            let y = q.linear(&x, rows, &b, None);
            for r in 0..rows {
                for o in 0..n {
                    let want: f64 = b[o] as f64
                        + (0..k)
                            .map(|i| x[r * k + i] as f64 * w[o * k + i] as f64)
                            .sum::<f64>();
                    let got = y[r * n + o] as f64;
                    assert!(
                        (got - want).abs() < 1e-5,
                        "rows {rows} [{r},{o}]: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn saved_parts_rebuild_the_same_weight_and_stacking_undoes_a_row_split() {
        let (n, k) = (19, 41);
        let w = values(n * k, 5);
        let act: Vec<f32> = (0..k).map(|j| 0.5 + j as f32 / 10.0).collect();
        let full = Int8Weight::quantize_smoothed(&w, n, k, &act);
        let (q, scale, inv) = full.parts();
        let back = Int8Weight::from_parts(q.to_vec(), scale.to_vec(), inv.map(<[f32]>::to_vec));
        let back = back.unwrap();
        assert_eq!(back.parts(), full.parts());
        // Packed for the integer GEMM, the row-major copy is dropped; the panels give it back.
        let packed = full.clone().with_dynamic_activations(CodeWidth::Wide);
        assert!(packed.q.is_empty());
        assert_eq!(packed.parts(), full.parts());
        let splits = [(0, 7), (7, 7), (14, 5)];
        let thirds: Vec<_> = splits.iter().map(|&(f, n)| full.rows_range(f, n)).collect();
        let stacked = Int8Weight::stack(&[&thirds[0], &thirds[1], &thirds[2]]).unwrap();
        assert_eq!(stacked.parts(), full.parts());
        // The dequantised weight undoes the smoothing: within a step of the original.
        for (o, (d, v)) in full.dequantized().iter().zip(&w).enumerate() {
            let step = scale[o / k] * inv.unwrap()[o % k];
            assert!((d - v).abs() <= step / 2.0 + 1e-6, "{o}: {d} vs {v}");
        }
        let other = Int8Weight::quantize(&w[..4 * k], 4, k);
        assert!(
            Int8Weight::stack(&[&thirds[0], &other]).is_none(),
            "multipliers differ"
        );
    }

    #[test]
    fn saved_parts_that_do_not_fit_are_refused_saying_why() {
        let cases = [
            (vec![1i8; 10], vec![0.1f32; 3], None, "10 int8 values for 3"),
            (
                vec![1; 6],
                vec![0.1; 3],
                Some(vec![1.0; 3]),
                "3 input multipliers for 2",
            ),
            (vec![-128, 1], vec![0.1], None, "-128"),
            (vec![1, 1], vec![f32::NAN], None, "finite and positive"),
            (vec![1, 1], vec![0.1], Some(vec![1.0, 0.0]), "multiplier"),
        ];
        for (q, scale, inv, says) in cases {
            let err = Int8Weight::from_parts(q, scale, inv).unwrap_err();
            assert!(err.contains(says), "{err}");
        }
    }
}
