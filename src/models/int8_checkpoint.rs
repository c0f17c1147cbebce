//! The int8 checkpoint `bert4rs quantize` writes: an HF directory whose `config.json` has
//! `quantization_config.quant_method = "bert4rs_int8"` and whose `model.safetensors` holds,
//! for each of the encoder's linear layers `P`,
//! - `P.weight`: int8 `[out, in]`, symmetric per output channel (values in [-127, 127]);
//! - `P.weight_scale`: f32 `[out]`, so that `scale[o] · q[o][i]` is the (smoothed) weight;
//! - `P.input_multiplier`: f32 `[in]`, only for smoothed layers (Q/K/V, the FFN's first
//!   layer): inputs are multiplied by it before they are quantised;
//! - `P.bias` and every other tensor as in the f32 model.
//!
//! Loading it gives exactly the model `--int8` quantises on the fly (same integers, same
//! scales), without the f32 weights on disk.

use crate::config::BertConfig;
use crate::error::{Error, Result};
use crate::kernels::qgemm::CodeWidth;
use crate::kernels::Int8Weight;
use crate::nn::shape_only;
use candle_core::{DType, Device, Tensor};
use safetensors::Dtype;
use std::collections::HashMap;
use std::path::Path;

/// `quantization_config.quant_method` of our int8 directories.
pub const QUANT_METHOD: &str = "bert4rs_int8";

/// The `quantization_config` written to `config.json`.
pub fn quantization_config(width: CodeWidth) -> serde_json::Value {
    serde_json::json!({
        "quant_method": QUANT_METHOD,
        "format_version": 1,
        "weights": "int8, symmetric per output channel",
        "activations": "quantised per token at run time (asymmetric)",
        "activation_bits": width.bits(),
    })
}

/// The activation width an int8 directory's config asks for; `None` for an f32 model. An
/// error naming `config_path` for another `quant_method` or an invalid `activation_bits`.
pub fn int8_width(cfg: &BertConfig, config_path: &Path) -> Result<Option<CodeWidth>> {
    let Some(q) = cfg.extra.get("quantization_config") else {
        return Ok(None);
    };
    let method = q.get("quant_method").and_then(|m| m.as_str());
    if method != Some(QUANT_METHOD) {
        return Err(Error::config(
            config_path,
            format!(
                "quantization_config.quant_method is {}: bert4rs reads \"{QUANT_METHOD}\" \
                 (from `bert4rs quantize`) or an f32 model",
                q.get("quant_method")
                    .map_or("missing".into(), |m| m.to_string())
            ),
        ));
    }
    let bits = q.get("activation_bits").and_then(|b| b.as_u64());
    match bits.and_then(|b| CodeWidth::from_bits(u32::try_from(b).ok()?)) {
        Some(w) => Ok(Some(w)),
        None => Err(Error::config(
            config_path,
            format!(
                "quantization_config.activation_bits is {}: 7, 8 or 12",
                q.get("activation_bits")
                    .map_or("missing".into(), |b| b.to_string())
            ),
        )),
    }
}

/// The tensors of an int8 checkpoint: every float tensor as f32 (each int8 weight as a
/// shape-only f32 tensor, so the model builds as usual), and each int8 layer by name (`P` of
/// `P.weight`). Sizes and values are checked; an error names the file and tensor.
pub fn read(path: &Path) -> Result<(HashMap<String, Tensor>, HashMap<String, Int8Weight>)> {
    let bad = |msg: String| Error::checkpoint(path, msg);
    // SAFETY: as in `hub::read_tensors_as`: the map is only read while this function runs.
    let st = unsafe { candle_core::safetensors::MmapedSafetensors::new(path) }
        .map_err(|e| bad(format!("not a readable safetensors file: {e}")))?;
    let mut tensors = HashMap::new();
    let mut raw = Vec::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::I8 {
            // Floats as f32, as `hub::read_tensors` reads them; integer buffers as they are.
            let t = candle_core::safetensors::Load::load(&view, &Device::Cpu)
                .and_then(|t| match t.dtype().is_float() {
                    true => t.to_dtype(DType::F32),
                    false => Ok(t),
                })
                .map_err(|e| bad(format!("`{name}`: {e}")))?;
            tensors.insert(name, t);
            continue;
        }
        let (Some(stem), [n, k]) = (name.strip_suffix(".weight"), view.shape()) else {
            return Err(bad(format!(
                "`{name}` is int8 but not a 2-D `*.weight`: only linear weights are int8"
            )));
        };
        let q: Vec<i8> = view.data().iter().map(|b| *b as i8).collect();
        raw.push((stem.to_string(), q, (*n, *k)));
    }
    let mut int8 = HashMap::with_capacity(raw.len());
    for (stem, q, (n, k)) in raw {
        let mut vector = |suffix: &str| -> Result<Option<Vec<f32>>> {
            let key = format!("{stem}.{suffix}");
            match tensors.remove(&key) {
                Some(t) => Ok(Some(
                    t.flatten_all()?
                        .to_vec1()
                        .map_err(|e| bad(format!("`{key}`: {e}")))?,
                )),
                None => Ok(None),
            }
        };
        let scale = vector("weight_scale")?.ok_or_else(|| {
            bad(format!(
                "`{stem}.weight` is int8 but `{stem}.weight_scale` is missing"
            ))
        })?;
        let inv = vector("input_multiplier")?;
        let w = Int8Weight::from_parts(q, scale, inv)
            .map_err(|e| bad(format!("`{stem}.weight`: {e}")))?;
        if (w.rows(), w.cols()) != (n, k) {
            return Err(bad(format!(
                "`{stem}.weight` is [{n}, {k}] but has {} output scales",
                w.rows()
            )));
        }
        // The model's layers are built from this map and then handed the int8 weight: the f32
        // one is only a shape (zero-stride, no memory; `hub::write_safetensors` refuses it).
        tensors.insert(format!("{stem}.weight"), shape_only((n, k), &Device::Cpu)?);
        int8.insert(stem, w);
    }
    Ok((tensors, int8))
}

/// Writes an int8 checkpoint (atomically): `tensors` as they are, except the weight of
/// each layer in `int8` (keys relative to `prefix`, e.g. `encoder.layer.0.output.dense`
/// under `bert`), which is written as its int8 parts.
pub fn write(
    path: &Path,
    tensors: &HashMap<String, Tensor>,
    int8: &[(String, Int8Weight)],
    prefix: &str,
) -> Result<()> {
    let full = |name: &str| match prefix {
        "" => name.to_string(),
        p => format!("{p}.{name}"),
    };
    let quantized: HashMap<String, &Int8Weight> = (int8.iter())
        .map(|(n, w)| (full(&format!("{n}.weight")), w))
        .collect();
    if let Some(missing) = quantized.keys().find(|n| !tensors.contains_key(*n)) {
        return Err(Error::checkpoint(
            path,
            format!("int8 layer `{missing}` has no tensor of that name to replace"),
        ));
    }
    let mut entries: Vec<(String, Entry)> = Vec::with_capacity(tensors.len() + 2 * int8.len());
    for (name, t) in tensors {
        let Some(w) = quantized.get(name) else {
            entries.push((name.clone(), Entry::Tensor(t.contiguous()?)));
            continue;
        };
        let stem = name.trim_end_matches(".weight");
        let (q, scale, inv) = w.parts();
        let q_bytes = q.iter().map(|v| *v as u8).collect();
        entries.push((
            name.clone(),
            Entry::raw(Dtype::I8, &[w.rows(), w.cols()], q_bytes),
        ));
        let scale = Entry::raw(Dtype::F32, &[w.rows()], f32_bytes(scale));
        entries.push((format!("{stem}.weight_scale"), scale));
        if let Some(inv) = inv {
            let inv = Entry::raw(Dtype::F32, &[w.cols()], f32_bytes(inv));
            entries.push((format!("{stem}.input_multiplier"), inv));
        }
    }
    super::hub::write_file_atomic(path, |tmp| {
        safetensors::serialize_to_file(entries, None, tmp)
            .map_err(|e| Error::checkpoint(path, format!("cannot write: {e}")))
    })
}

/// A tensor to write: a model tensor as it is, or bytes of our own.
enum Entry {
    Tensor(Tensor),
    Raw {
        dtype: Dtype,
        shape: Vec<usize>,
        bytes: Vec<u8>,
    },
}

impl Entry {
    fn raw(dtype: Dtype, shape: &[usize], bytes: Vec<u8>) -> Self {
        let shape = shape.to_vec();
        Entry::Raw {
            dtype,
            shape,
            bytes,
        }
    }
}

impl safetensors::View for Entry {
    fn dtype(&self) -> Dtype {
        match self {
            Entry::Tensor(t) => safetensors::View::dtype(&t),
            Entry::Raw { dtype, .. } => *dtype,
        }
    }
    fn shape(&self) -> &[usize] {
        match self {
            Entry::Tensor(t) => t.dims(),
            Entry::Raw { shape, .. } => shape,
        }
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        match self {
            Entry::Tensor(t) => safetensors::View::data(t),
            Entry::Raw { bytes, .. } => bytes.into(),
        }
    }
    fn data_len(&self) -> usize {
        match self {
            Entry::Tensor(t) => safetensors::View::data_len(t),
            Entry::Raw { bytes, .. } => bytes.len(),
        }
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
