//! Knowledge distillation for sequence classification: a smaller student made from chosen
//! layers of an encoder ([`student_init`], as DistilBERT initialises from every other
//! layer), trained on a fine-tuned teacher's soft labels as well as the gold ones
//! ([`Teacher`]).

use super::sequence::{predict_logits, windowed};
use crate::data::dataset::Example;
use crate::data::labelled::{Dataset, Problem};
use crate::error::{Error, Result};
use crate::models::hub;
use crate::nn::losses::distill_kl;
use crate::tasks::classify::SequenceClassifier;
use crate::tokenize::Tokenizer;
use candle_core::{Device, Tensor};
use std::path::{Path, PathBuf};

/// Writes into `out` a copy of the model directory `base` that keeps only the encoder
/// layers `layers` (renumbered in the given order) and says so in `config.json`; every other
/// weight and the tokenizer files are kept. Returns `out`. Rewritten on every call (the same
/// bytes), so a resumed run finds the same student.
pub fn student_init(base: &Path, layers: &[usize], out: &Path) -> Result<PathBuf> {
    let cfg_path = base.join("config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
    let mut cfg: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::config(&cfg_path, e.to_string()))?;
    let n = cfg["num_hidden_layers"].as_u64().unwrap_or(0) as usize;
    if let Some(bad) = layers.iter().find(|&&l| l >= n) {
        return Err(Error::Invalid(format!(
            "task.student_layers: layer {bad} of a {n}-layer model ({}); layers count from 0",
            base.display()
        )));
    }
    let weights = hub::find_weights(base)?;
    let mut kept = Vec::new();
    for (name, t) in hub::read_tensors(&weights)? {
        match renumber(&name, layers) {
            Some(new) => kept.push((new, t)),
            None => continue,
        }
    }
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    cfg["num_hidden_layers"] = layers.len().into();
    if let Some(pruned) = cfg.get("pruned_heads").cloned() {
        // A pruned teacher: each kept layer keeps its own pruned heads, under its new number.
        let renumbered: serde_json::Map<String, serde_json::Value> = layers
            .iter()
            .enumerate()
            .filter_map(|(new, old)| Some((new.to_string(), pruned.get(old.to_string())?.clone())))
            .collect();
        cfg["pruned_heads"] = renumbered.into();
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    for entry in std::fs::read_dir(base).map_err(|e| Error::io(base, e))? {
        let path = entry.map_err(|e| Error::io(base, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let skip = name == "config.json" || hub::WEIGHT_FILES.contains(&name);
        if path.is_file() && !skip {
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            crate::util::write_atomic(&out.join(name), &bytes)?;
        }
    }
    hub::save_pretrained(out, &cfg.to_string(), &kept)?;
    Ok(out.to_path_buf())
}

/// `…encoder.layer.{i}.…` → `…encoder.layer.{j}.…` where `layers[j] == i`; `None` for a
/// layer not kept; other names unchanged.
fn renumber(name: &str, layers: &[usize]) -> Option<String> {
    const KEY: &str = "encoder.layer.";
    let Some(at) = name.find(KEY) else {
        return Some(name.to_string());
    };
    let rest = &name[at + KEY.len()..];
    let (num, tail) = rest.split_once('.').unwrap_or((rest, ""));
    let Ok(i) = num.parse::<usize>() else {
        return Some(name.to_string());
    };
    let j = layers.iter().position(|&l| l == i)?;
    Some(format!("{}{KEY}{j}.{tail}", &name[..at]))
}

/// `task.distill_from` resolved (`asset:` names too) and checked to hold a model, before
/// any data is read.
pub fn teacher_dir(given: &str) -> Result<PathBuf> {
    let dir = crate::assets::resolve_dir(given)?;
    if !dir.join("config.json").is_file() {
        return Err(Error::config(
            &dir,
            "task.distill_from: no config.json here; give a fine-tuned classifier directory \
             (e.g. runs/NAME/best)",
        ));
    }
    Ok(dir)
}

/// A fine-tuned teacher's logits on the training set (computed once, in eval mode) and
/// the mixing of its soft labels into the student's loss.
pub struct Teacher {
    dir: PathBuf,
    logits: Vec<Vec<f32>>,
    temperature: f64,
    alpha: f64,
}

impl Teacher {
    /// Runs the classifier in `dir` over the training examples. Its labels must be the
    /// student's, in the same order, and the problem single-label.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dir: &Path,
        (source, examples): (&Path, Vec<Example>),
        (labels, problem): (&[String], Problem),
        max_length: usize,
        batch_size: usize,
        (temperature, alpha): (f64, f64),
        device: &Device,
    ) -> Result<Self> {
        if problem != Problem::SingleLabel {
            return Err(Error::Invalid(format!(
                "task.distill_from: distillation needs single-label classification (this run \
                 is {})",
                problem.hf_name()
            )));
        }
        let model = SequenceClassifier::from_dir(dir, device, false, None)?;
        if model.spec().labels != labels {
            return Err(Error::config(
                dir,
                format!(
                    "task.distill_from: the teacher's labels {:?} differ from the run's {labels:?}",
                    model.spec().labels
                ),
            ));
        }
        let tok = Tokenizer::from_dir(dir)?;
        let ds = Dataset::new(source, examples, &tok, (labels, problem), max_length)?;
        let ds = windowed(ds, &model, &tok)?;
        let logits = predict_logits(&model, &ds, batch_size, tok.pad_id(), device)?;
        Ok(Teacher {
            dir: dir.to_path_buf(),
            logits,
            temperature,
            alpha,
        })
    }

    /// The teacher's logits of training examples `idx`, `[idx.len(), labels]`.
    pub fn rows(&self, idx: &[usize], device: &Device) -> Result<Tensor> {
        let width = self.logits.first().map_or(0, Vec::len);
        let flat: Vec<f32> = idx
            .iter()
            .flat_map(|&i| self.logits[i].iter().copied())
            .collect();
        Ok(Tensor::from_vec(flat, (idx.len(), width), device)?)
    }

    /// `(1 − α)·hard + α·T²·KL(teacher_T ‖ student_T)`.
    pub fn loss(&self, hard: &Tensor, student: &Tensor, teacher: &Tensor) -> Result<Tensor> {
        let soft = distill_kl(student, teacher, self.temperature)?;
        Ok(((hard * (1.0 - self.alpha))? + (soft * self.alpha)?)?)
    }

    /// One line for the run's summary.
    pub fn describe(&self) -> String {
        format!(
            "distilled from {} (T = {}, α = {})",
            self.dir.display(),
            self.temperature,
            self.alpha
        )
    }
}

#[cfg(test)]
mod tests {
    use super::renumber;

    #[test]
    fn kept_layers_are_renumbered_in_order_and_others_dropped() {
        let l = [1, 3, 5];
        let r = |n: &str| renumber(n, &l);
        assert_eq!(
            r("bert.encoder.layer.3.output.dense.weight").as_deref(),
            Some("bert.encoder.layer.1.output.dense.weight")
        );
        assert_eq!(
            r("encoder.layer.5.attention.self.query.bias").as_deref(),
            Some("encoder.layer.2.attention.self.query.bias")
        );
        assert_eq!(r("encoder.layer.2.output.dense.weight"), None);
        assert_eq!(
            r("embeddings.word_embeddings.weight").as_deref(),
            Some("embeddings.word_embeddings.weight")
        );
        // layer 13 must not match layer 1's prefix
        assert_eq!(r("encoder.layer.13.output.dense.weight"), None);
    }
}
