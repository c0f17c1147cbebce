//! Reading and writing HF model directories: `model.safetensors` or `pytorch_model.bin`,
//! tensor names as HF writes them.

use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Weight files we look for, in order of preference.
pub const WEIGHT_FILES: [&str; 2] = ["model.safetensors", "pytorch_model.bin"];

/// The weight file of a model directory, or an error saying which names were tried.
pub fn find_weights(dir: &Path) -> Result<PathBuf> {
    for name in WEIGHT_FILES {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::checkpoint(
        dir,
        format!(
            "no weights file: expected {} in this directory",
            WEIGHT_FILES.join(" or ")
        ),
    ))
}

/// How a load keeps the encoder's matrices (the 2-D weights of `embeddings.*`,
/// `encoder.layer.*` and `pooler.*`, under any family prefix); everything else is f32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WeightStorage {
    /// f32, as trained.
    #[default]
    F32,
    /// bf16 (rounded to nearest even): half the memory; the layers widen each value to f32
    /// exactly as they read it, so all arithmetic stays f32. Inference only.
    Bf16,
}

/// Whether `name` is one of the encoder's matrices [`WeightStorage::Bf16`] applies to.
fn encoder_matrix(name: &str, dims: &[usize]) -> bool {
    dims.len() == 2
        && ["embeddings.", "encoder.layer.", "pooler."]
            .iter()
            .any(|part| name.starts_with(part) || name.contains(&format!(".{part}")))
}

/// Reads every tensor of a weight file, renames old `gamma`/`beta` LayerNorm keys to
/// `weight`/`bias` (as HF's loader does) and converts f16/bf16/f64 to f32.
pub fn read_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    read_tensors_as(path, WeightStorage::F32)
}

/// [`read_tensors`], keeping the encoder's matrices as `storage` says. A safetensors file
/// is memory-mapped and read one tensor at a time, so a bf16 load never holds the f32
/// matrices (nor a copy of the whole file) in memory.
pub fn read_tensors_as(path: &Path, storage: WeightStorage) -> Result<HashMap<String, Tensor>> {
    let corrupt = |e: candle_core::Error| {
        Error::checkpoint(
            path,
            format!("not a readable safetensors file (truncated or corrupt?): {e}"),
        )
    };
    let raw: Vec<(String, Tensor)> = if path.extension().is_some_and(|e| e == "safetensors") {
        // SAFETY: the map is read while this function runs; like every safetensors reader
        // (HF's included) it assumes nobody truncates the file meanwhile.
        let st =
            unsafe { candle_core::safetensors::MmapedSafetensors::new(path) }.map_err(corrupt)?;
        let mut raw = Vec::new();
        for (name, view) in st.tensors() {
            if view.dtype() == safetensors::Dtype::I8 {
                return Err(Error::checkpoint(
                    path,
                    format!(
                        "`{name}` is int8: this is a `bert4rs quantize` directory, which runs \
                         inference only; use the f32 model it was made from"
                    ),
                ));
            }
            let t = match storage {
                WeightStorage::Bf16 if encoder_matrix(&name, view.shape()) => {
                    bf16_from_view(&view).map_err(corrupt)?
                }
                _ => candle_core::safetensors::Load::load(&view, &Device::Cpu).map_err(corrupt)?,
            };
            raw.push((name, t));
        }
        raw
    } else {
        candle_core::pickle::read_all(path).map_err(|e| {
            Error::checkpoint(
                path,
                format!("not a readable PyTorch checkpoint (truncated or corrupt?): {e}"),
            )
        })?
    };
    let mut out = HashMap::with_capacity(raw.len());
    for (name, t) in raw {
        let want = match storage {
            WeightStorage::Bf16 if encoder_matrix(&name, t.dims()) => DType::BF16,
            _ => DType::F32,
        };
        let t = match t.dtype() {
            d if d.is_float() && d != want => t.to_dtype(want)?,
            _ => t,
        };
        out.insert(rename_legacy(&name), t);
    }
    Ok(out)
}

/// A bf16 tensor straight from a float tensor's bytes in the file (no f32 copy).
fn bf16_from_view(view: &safetensors::tensor::TensorView<'_>) -> candle_core::Result<Tensor> {
    use half::{bf16, f16};
    use safetensors::Dtype;
    let data = view.data();
    let le2 = |c: &[u8]| u16::from_le_bytes([c[0], c[1]]);
    let values: Vec<bf16> = match view.dtype() {
        Dtype::F32 => (data.chunks_exact(4))
            .map(|c| bf16::from_f32(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|c| bf16::from_bits(le2(c)))
            .collect(),
        Dtype::F16 => (data.chunks_exact(2))
            .map(|c| bf16::from_f32(f16::from_bits(le2(c)).to_f32()))
            .collect(),
        // Other dtypes load as they are (then converted like any other tensor).
        _ => return candle_core::safetensors::Load::load(view, &Device::Cpu),
    };
    Tensor::from_vec(values, view.shape(), &Device::Cpu)
}

/// `x.LayerNorm.gamma` → `x.LayerNorm.weight`, `beta` → `bias` (TF-era checkpoints).
fn rename_legacy(name: &str) -> String {
    if let Some(stem) = name.strip_suffix(".gamma") {
        format!("{stem}.weight")
    } else if let Some(stem) = name.strip_suffix(".beta") {
        format!("{stem}.bias")
    } else {
        name.to_string()
    }
}

/// Writes tensors to a safetensors file atomically (temp file in the same directory, then
/// rename), so an interrupted save never leaves a half-written checkpoint.
pub fn write_safetensors(tensors: &[(String, Tensor)], path: &Path) -> Result<()> {
    if let Some((name, _)) = tensors.iter().find(|(_, t)| crate::nn::is_shape_only(t)) {
        // The f32 weight of an int8 layer loaded from a `bert4rs quantize` directory: its
        // values are not there to save.
        return Err(Error::checkpoint(
            path,
            format!(
                "`{name}` belongs to an int8 layer and has no f32 values to save; save the f32 \
                 model it was made from"
            ),
        ));
    }
    let map: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), t.contiguous()?)))
        .collect::<Result<_>>()?;
    write_file_atomic(path, |tmp| {
        candle_core::safetensors::save(&map, tmp)
            .map_err(|e| Error::checkpoint(path, format!("cannot write: {e}")))
    })
}

/// Writes a weight file atomically: `write` fills a temp file in `path`'s directory, which
/// then replaces `path`.
pub fn write_file_atomic(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = crate::util::temp_file_in(dir)?;
    write(tmp.path())?;
    // The save replaces our temp file with a private (0600) one; weights are ordinary
    // output files, readable as every other file of the directory.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io(path, e))?;
    }
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Writes an HF model directory: `config.json` (pretty JSON) and `model.safetensors`, each
/// atomically. Every model's `save_pretrained` goes through here.
pub fn save_pretrained(dir: &Path, config_json: &str, tensors: &[(String, Tensor)]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    crate::util::write_atomic(&dir.join("config.json"), config_json.as_bytes())?;
    write_safetensors(tensors, &dir.join("model.safetensors"))
}

/// Overwrites each `(name, var)` with the tensor `key_of(name)` of `dir`'s weight file (a
/// directory a `save_pretrained` wrote): resume, and reloading the best model. A missing
/// tensor or a shape mismatch names the file and the key.
pub fn load_into(
    dir: &Path,
    vars: &[(String, candle_core::Var)],
    key_of: impl Fn(&str) -> String,
) -> Result<()> {
    let file = find_weights(dir)?;
    let saved = read_tensors(&file)?;
    for (name, var) in vars {
        let key = key_of(name);
        let t = saved
            .get(&key)
            .ok_or_else(|| Error::checkpoint(&file, format!("missing tensor `{key}`")))?;
        if t.dims() != var.dims() {
            return Err(Error::checkpoint(
                &file,
                format!(
                    "`{key}` has shape {:?}, the model needs {:?}",
                    t.dims(),
                    var.dims()
                ),
            ));
        }
        var.set(t)
            .map_err(|e| Error::checkpoint(&file, format!("`{key}`: {e}")))?;
    }
    Ok(())
}

/// True when `a` and `b` name the same existing directory.
pub fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// An error when `out` is the model directory `src` itself, or an existing file (commands
/// that write a new model directory check this before any long work).
pub fn check_output(src: &Path, out: &Path) -> Result<()> {
    if same_dir(src, out) {
        return Err(Error::Invalid(format!(
            "--output {} is the model directory itself; write the new model elsewhere",
            out.display()
        )));
    }
    if out.exists() && !out.is_dir() {
        return Err(Error::Invalid(format!(
            "--output {} is a file; this command writes a model directory there: \
             name a directory",
            out.display()
        )));
    }
    Ok(())
}

/// Copies the tokenizer and any other file of `src` (not the weights or config) into `out`,
/// and sentence-transformers' module folders (`1_Pooling/`, `2_Normalize/`); with
/// `max_len`, `model_max_length` in `tokenizer_config.json` is raised to it so HF does not
/// truncate below a model's new limit.
pub fn copy_side_files(src: &Path, out: &Path, max_len: Option<usize>) -> Result<()> {
    let entries = std::fs::read_dir(src).map_err(|e| Error::io(src, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(src, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if entry.path().is_dir() && is_module_dir(&name) {
            copy_files(&entry.path(), &out.join(name.as_ref()))?;
            continue;
        }
        let skip = name == "config.json" || WEIGHT_FILES.contains(&name.as_ref());
        if skip || !entry.path().is_file() {
            continue;
        }
        let bytes = std::fs::read(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
        let bytes = match max_len {
            Some(max_len) if name == "tokenizer_config.json" => {
                raise_model_max_length(&bytes, max_len).unwrap_or(bytes)
            }
            _ => bytes,
        };
        crate::util::write_atomic(&out.join(name.as_ref()), &bytes)?;
    }
    Ok(())
}

/// `1_Pooling`, `2_Normalize`: a sentence-transformers module folder (a number, `_`, a name).
fn is_module_dir(name: &str) -> bool {
    name.split_once('_').is_some_and(|(n, rest)| {
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty()
    })
}

/// Copies the files (not subfolders) of `src` into `out`, each atomically.
fn copy_files(src: &Path, out: &Path) -> Result<()> {
    for entry in std::fs::read_dir(src).map_err(|e| Error::io(src, e))? {
        let path = entry.map_err(|e| Error::io(src, e))?.path();
        if let (true, Some(name)) = (path.is_file(), path.file_name()) {
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            crate::util::write_atomic(&out.join(name), &bytes)?;
        }
    }
    Ok(())
}

fn raise_model_max_length(bytes: &[u8], max_len: usize) -> Option<Vec<u8>> {
    let mut v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let old = v.get("model_max_length")?.as_u64()?;
    if (old as usize) < max_len {
        v["model_max_length"] = max_len.into();
    }
    serde_json::to_vec_pretty(&v).ok()
}
