//! Named parameters: how layers get their weights (from a checkpoint or a fresh init) and
//! how a model lists them again for training and saving.
//!
//! Names are exactly the HF state-dict keys, so loading needs no conversion table and a
//! saved model loads in `transformers`.

use crate::error::{Error, Result};
use candle_core::{DType, Device, Shape, Tensor, Var};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// How a missing parameter gets its first value.
#[derive(Debug, Clone, Copy)]
pub enum Init {
    /// Normal(0, std), as HF `_init_weights` does for linear and embedding weights.
    Normal(f64),
    /// All zeros (biases).
    Zeros,
    /// All ones (LayerNorm weights).
    Ones,
    /// A constant.
    Const(f64),
    /// Uniform(-a, a), as `torch.nn.LSTM` / `GRU` / `CRF` initialise their weights.
    Uniform(f64),
}

struct Store {
    /// Tensors read from the checkpoint, by full HF name.
    source: HashMap<String, Tensor>,
    /// Where `source` came from, for error messages.
    source_path: PathBuf,
    /// Checkpoint keys some layer asked for.
    used: HashSet<String>,
    /// Every parameter created, by full name, in creation order of names.
    created: BTreeMap<String, Tensor>,
    /// The trainable handles, when training.
    vars: BTreeMap<String, Var>,
    trainable: bool,
    /// A new model: [`Params::get`] initialises what the (empty) checkpoint lacks as HF's
    /// `_init_weights` does, with this standard deviation (`initializer_range`).
    init_missing: Option<f64>,
    device: Device,
}

/// A handle that hands out parameters under a name prefix (`vb.pp("encoder")`).
#[derive(Clone)]
pub struct Params {
    store: Arc<Mutex<Store>>,
    prefix: String,
}

impl Params {
    /// Parameters backed by checkpoint tensors read from `path`.
    pub fn from_tensors(
        tensors: HashMap<String, Tensor>,
        path: &Path,
        device: &Device,
        trainable: bool,
    ) -> Self {
        let store = Store {
            source: tensors,
            source_path: path.to_path_buf(),
            used: HashSet::new(),
            created: BTreeMap::new(),
            vars: BTreeMap::new(),
            trainable,
            init_missing: None,
            device: device.clone(),
        };
        Params {
            store: Arc::new(Mutex::new(store)),
            prefix: String::new(),
        }
    }

    /// Parameters that all start from their init (a new model or a new head).
    pub fn fresh(device: &Device, trainable: bool) -> Self {
        Self::from_tensors(HashMap::new(), Path::new("<new>"), device, trainable)
    }

    /// Parameters of a new HF model: every tensor a layer asks for is initialised as
    /// `PreTrainedModel._init_weights` does for BERT — weights and embeddings normal(0,
    /// `init_std`), biases 0, LayerNorm weights 1 — seeded per name (`rng::seed_init`).
    pub fn new_model(device: &Device, trainable: bool, init_std: f64) -> Self {
        let p = Self::fresh(device, trainable);
        p.lock().init_missing = Some(init_std);
        p
    }

    /// From now on, [`Params::get`] initialises a tensor the checkpoint lacks as
    /// [`Params::new_model`] does instead of failing (a warm start adding new blocks).
    pub fn init_missing(self, init_std: f64) -> Self {
        self.lock().init_missing = Some(init_std);
        self
    }

    /// The same store, one name level deeper.
    pub fn pp(&self, name: &str) -> Params {
        let prefix = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        };
        Params {
            store: self.store.clone(),
            prefix,
        }
    }

    /// Full name of `name` under this prefix.
    pub fn full_name(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        // A poisoned lock only means another thread panicked mid-load; the map is still usable.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True when the checkpoint holds `name` under this prefix.
    pub fn contains(&self, name: &str) -> bool {
        self.lock().source.contains_key(&self.full_name(name))
    }

    /// A parameter that must be in the checkpoint with exactly this shape.
    pub fn get(&self, shape: impl Into<Shape>, name: &str) -> Result<Tensor> {
        let shape = shape.into();
        let full = self.full_name(name);
        let mut s = self.lock();
        let t = match (s.source.get(&full), s.init_missing) {
            (Some(t), _) => t.clone(),
            (None, Some(std)) => {
                let init = if full.ends_with("LayerNorm.weight") {
                    Init::Ones
                } else if full.ends_with("bias") {
                    Init::Zeros
                } else {
                    Init::Normal(std)
                };
                let t = init_tensor(&shape, init, &s.device, &full)?;
                return register(&mut s, full, t);
            }
            (None, None) => {
                return Err(Error::checkpoint(
                    &s.source_path,
                    format!("missing tensor `{full}` (expected shape {shape:?})"),
                ))
            }
        };
        if t.shape() != &shape {
            return Err(Error::checkpoint(
                &s.source_path,
                format!(
                    "tensor `{full}` has shape {:?}, the config needs {shape:?}",
                    t.dims()
                ),
            ));
        }
        s.used.insert(full.clone());
        register(&mut s, full, t)
    }

    /// A parameter from the checkpoint when present, else freshly initialised.
    pub fn get_or_init(&self, shape: impl Into<Shape>, name: &str, init: Init) -> Result<Tensor> {
        let shape = shape.into();
        if self.contains(name) {
            return self.get(shape, name);
        }
        let full = self.full_name(name);
        let mut s = self.lock();
        let t = init_tensor(&shape, init, &s.device, &full)?;
        register(&mut s, full, t)
    }

    /// A tensor that is saved with the model but never trained (a sinusoidal position table):
    /// the checkpoint's value when present (shape checked), else `compute()`.
    pub fn fixed(
        &self,
        shape: impl Into<Shape>,
        name: &str,
        compute: impl FnOnce() -> Result<Tensor>,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let full = self.full_name(name);
        let source = self.lock().source.get(&full).cloned();
        let t = match source {
            Some(t) if t.shape() != &shape => {
                return Err(Error::checkpoint(
                    self.source_path(),
                    format!(
                        "tensor `{full}` has shape {:?}, the config needs {shape:?}",
                        t.dims()
                    ),
                ))
            }
            Some(t) => t,
            None => compute()?,
        };
        let mut s = self.lock();
        s.used.insert(full.clone());
        let t = t.to_device(&s.device)?;
        s.vars.remove(&full);
        s.created.insert(full, t.clone());
        Ok(t)
    }

    /// Forgets the checkpoint tensor `name` under this prefix (it is not reported as unused
    /// and a later `get_or_init` initialises afresh). Returns its shape, if it was there.
    pub fn discard(&self, name: &str) -> Option<Vec<usize>> {
        let full = self.full_name(name);
        let mut s = self.lock();
        let t = s.source.remove(&full)?;
        s.used.insert(full);
        Some(t.dims().to_vec())
    }

    /// Shape of the checkpoint tensor `name` under this prefix, if present.
    pub fn source_shape(&self, name: &str) -> Option<Vec<usize>> {
        self.lock()
            .source
            .get(&self.full_name(name))
            .map(|t| t.dims().to_vec())
    }

    /// Registers a tensor computed by the caller (e.g. a resized embedding table) under its
    /// full name, replacing any earlier value.
    pub fn replace(&self, full: &str, t: Tensor) -> Result<Tensor> {
        let full = full.to_string();
        let mut s = self.lock();
        s.created.remove(&full);
        s.vars.remove(&full);
        register(&mut s, full, t)
    }

    /// Forgets the parameter `full` (a layer the model no longer uses): it is neither
    /// trained nor saved.
    pub fn remove(&self, full: &str) {
        let mut s = self.lock();
        s.created.remove(full);
        s.vars.remove(full);
    }

    /// Keeps only the shape of the frozen parameter `full` ([`crate::nn::shape_only`]): for
    /// a weight now held as int8, so the f32 values are freed. Saving the parameter is then
    /// refused (`hub::write_safetensors`). Trainable parameters are left as they are.
    pub fn drop_values(&self, full: &str) -> Result<()> {
        let mut s = self.lock();
        if s.vars.contains_key(full) {
            return Ok(());
        }
        let dev = s.device.clone();
        let store = &mut *s;
        for t in [store.source.get_mut(full), store.created.get_mut(full)]
            .into_iter()
            .flatten()
        {
            *t = crate::nn::shape_only(t.dims2()?, &dev)?;
        }
        Ok(())
    }

    /// Checkpoint keys no layer asked for (head weights of another task, buffers ...).
    pub fn unused_keys(&self) -> Vec<String> {
        let s = self.lock();
        let mut v: Vec<String> = s
            .source
            .keys()
            .filter(|k| !s.used.contains(*k))
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// Every parameter, by full name, with its current value.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let s = self.lock();
        s.created
            .iter()
            .map(|(k, t)| match s.vars.get(k) {
                Some(v) => (k.clone(), v.as_tensor().clone()),
                None => (k.clone(), t.clone()),
            })
            .collect()
    }

    /// The trainable handles (empty unless built with `trainable = true`).
    pub fn vars(&self) -> Vec<(String, Var)> {
        let s = self.lock();
        s.vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The device every parameter lives on.
    pub fn device(&self) -> Device {
        self.lock().device.clone()
    }

    /// The checkpoint path (or `<new>`), for messages.
    pub fn source_path(&self) -> PathBuf {
        self.lock().source_path.clone()
    }
}

fn register(s: &mut Store, full: String, t: Tensor) -> Result<Tensor> {
    let t = t.to_device(&s.device)?;
    if s.trainable && t.dtype().is_float() {
        let v = Var::from_tensor(&t)?;
        let out = v.as_tensor().clone();
        s.vars.insert(full.clone(), v);
        s.created.insert(full, out.clone());
        Ok(out)
    } else {
        s.created.insert(full, t.clone());
        Ok(t)
    }
}

fn init_tensor(shape: &Shape, init: Init, device: &Device, name: &str) -> Result<Tensor> {
    // Seeded per parameter name (see `rng::seed_init`), so a run's new layer is
    // reproducible; candle's own `randn` cannot be seeded on the CPU.
    let mut rng = crate::rng::Rng::new(crate::rng::init_seed() ^ crate::rng::hash_str(name));
    let mut draw = |f: &mut dyn FnMut(&mut crate::rng::Rng) -> f64| -> Result<Tensor> {
        let v: Vec<f32> = (0..shape.elem_count())
            .map(|_| f(&mut rng) as f32)
            .collect();
        Ok(Tensor::from_vec(v, shape, device)?)
    };
    Ok(match init {
        Init::Normal(std) => draw(&mut |r| r.normal() * std)?,
        Init::Uniform(a) => draw(&mut |r| (r.uniform() * 2.0 - 1.0) * a)?,
        Init::Zeros => Tensor::zeros(shape, DType::F32, device)?,
        Init::Ones => Tensor::ones(shape, DType::F32, device)?,
        Init::Const(c) => (Tensor::ones(shape, DType::F32, device)? * c)?,
    })
}
