//! `bert4rs.Generator`: text generation with a GPT-2 directory.

use crate::{existing_dir, py_err};
use bert4rs::generate::{self, GenerationConfig, TextGenerator};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};

/// Text generation with a GPT-2 directory.
#[pyclass(module = "bert4rs")]
pub(crate) struct Generator {
    inner: TextGenerator,
}

#[pymethods]
impl Generator {
    /// `int8=True` decodes on int8 weights (as `bert4rs generate --int8`).
    #[new]
    #[pyo3(signature = (path, tokenizer=None, int8=false))]
    fn new(py: Python<'_>, path: &str, tokenizer: Option<&str>, int8: bool) -> PyResult<Self> {
        let dir = existing_dir(path)?;
        let tok = tokenizer.map(existing_dir).transpose()?;
        let inner = py
            .detach(|| -> bert4rs::Result<TextGenerator> {
                let mut g = TextGenerator::from_dir(&dir, tok.as_deref())?;
                if int8 {
                    g.quantize_int8()?;
                }
                Ok(g)
            })
            .map_err(py_err)?;
        Ok(Generator { inner })
    }

    /// The generated text(s) for `prompt` (prompt included, as HF's pipeline returns it
    /// with `return_full_text=True`); `num_return_sequences > 1` gives a list.
    #[pyo3(signature = (prompt, max_new_tokens=20, num_beams=1, do_sample=false,
                        temperature=1.0, top_k=50, top_p=1.0, repetition_penalty=1.0,
                        no_repeat_ngram_size=0, num_return_sequences=1, seed=0,
                        eos_token_id=None))]
    #[allow(clippy::too_many_arguments)]
    fn generate<'py>(
        &self,
        py: Python<'py>,
        prompt: &str,
        max_new_tokens: usize,
        num_beams: usize,
        do_sample: bool,
        temperature: f32,
        top_k: usize,
        top_p: f32,
        repetition_penalty: f32,
        no_repeat_ngram_size: usize,
        num_return_sequences: usize,
        seed: u64,
        eos_token_id: Option<u32>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let cfg = GenerationConfig {
            max_new_tokens,
            num_beams,
            do_sample,
            temperature,
            top_k,
            top_p,
            repetition_penalty,
            no_repeat_ngram_size,
            num_return_sequences,
            seed,
            eos_token_id: self.inner.eos(eos_token_id),
            ..Default::default()
        };
        let g = &self.inner;
        let texts = py
            .detach(|| -> bert4rs::Result<Vec<String>> {
                cfg.validate()?;
                let ids = g.encode_prompt(prompt)?;
                let out = generate::generate(g.model(), &[ids], &cfg, &mut |_| {})?;
                out.iter()
                    .map(|o| Ok(g.decode(&o.ids)?.unwrap_or_default()))
                    .collect()
            })
            .map_err(py_err)?;
        Ok(match texts.len() {
            1 => PyString::new(py, &texts[0]).into_any(),
            _ => PyList::new(py, texts)?.into_any(),
        })
    }
}
