//! Writing parameter buffers in place.
//!
//! candle's in-place op API keeps every clone of a parameter tensor (the model's layers
//! hold them) pointing at the updated values, with no copy and no new allocation: optimiser
//! steps, EMA swaps and adversarial perturbations all go through here.

use crate::error::{Error, Result};
use candle_core::{CpuStorage, InplaceOp1, InplaceOp2, Layout, Tensor};
use std::cell::RefCell;

/// Calls `f(dst, src)` on the f32 buffers of `dst` (written in place) and `src`.
pub fn in_place<F>(dst: &Tensor, src: &Tensor, f: F) -> Result<()>
where
    F: FnMut(&mut [f32], &[f32]) -> Result<()>,
{
    if !dst.device().is_cpu() {
        // Other devices: a round trip through the host (correct, not fast).
        let s = src.flatten_all()?.to_vec1::<f32>()?;
        let mut f = f;
        return overwrite(dst, |p| f(p, &s));
    }
    let op = WithSource {
        f: RefCell::new(f),
        err: RefCell::new(None),
    };
    dst.inplace_op2(src, &op)?;
    op.err.into_inner().map_or(Ok(()), Err)
}

/// Calls `f(dst)` on the f32 buffer of `dst`, written in place.
pub fn overwrite<F>(dst: &Tensor, f: F) -> Result<()>
where
    F: FnMut(&mut [f32]) -> Result<()>,
{
    if !dst.device().is_cpu() {
        let mut p = dst.flatten_all()?.to_vec1::<f32>()?;
        let mut f = f;
        f(&mut p)?;
        let t = Tensor::from_vec(p, dst.shape(), dst.device())?;
        return Ok(dst.slice_set(&t, 0, 0)?);
    }
    let op = Alone {
        f: RefCell::new(f),
        err: RefCell::new(None),
    };
    dst.inplace_op1(&op)?;
    op.err.into_inner().map_or(Ok(()), Err)
}

/// Copies `dst`'s values into a host vector.
pub fn to_host(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

fn f32_slice_mut<'a>(s: &'a mut CpuStorage, l: &Layout) -> candle_core::Result<&'a mut [f32]> {
    let CpuStorage::F32(d) = s else {
        candle_core::bail!("in-place update needs an f32 tensor");
    };
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("in-place update needs a contiguous tensor");
    };
    Ok(&mut d[a..b])
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(d) = s else {
        candle_core::bail!("in-place update needs an f32 source");
    };
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("in-place update needs a contiguous source");
    };
    Ok(&d[a..b])
}

struct WithSource<F> {
    f: RefCell<F>,
    err: RefCell<Option<Error>>,
}

impl<F: FnMut(&mut [f32], &[f32]) -> Result<()>> InplaceOp2 for WithSource<F> {
    fn name(&self) -> &'static str {
        "bert4rs-in-place"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let d = f32_slice_mut(s1, l1)?;
        let s = f32_slice(s2, l2)?;
        if let Err(e) = (self.f.borrow_mut())(d, s) {
            *self.err.borrow_mut() = Some(e);
        }
        Ok(())
    }
}

struct Alone<F> {
    f: RefCell<F>,
    err: RefCell<Option<Error>>,
}

impl<F: FnMut(&mut [f32]) -> Result<()>> InplaceOp1 for Alone<F> {
    fn name(&self) -> &'static str {
        "bert4rs-overwrite"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> candle_core::Result<()> {
        let d = f32_slice_mut(s, l)?;
        if let Err(e) = (self.f.borrow_mut())(d) {
            *self.err.borrow_mut() = Some(e);
        }
        Ok(())
    }
}
