//! Prompt-based classification (PET, Schick & Schütze 2021): a text goes into a template
//! with one `[MASK]` (`"{text} It was [MASK]."`), the masked-LM head scores the vocabulary
//! at the mask, and a verbalizer maps each label to one token (`1 → great`, `-1 →
//! terrible`): the label logits are the MLM logits of those tokens. Zero-shot this is the
//! pre-trained MLM as it is; few-shot training fine-tunes the whole MLM with cross-entropy
//! over the label logits (PET's loss without its auxiliary MLM term).

use super::masked_lm::MaskedLm;
use crate::data::batch::{pad_batch, to_encoder_input};
use crate::error::{Error, Result};
use crate::tokenize::{Encoding, Tokenizer};
use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The placeholder of the text in a template.
pub const TEXT_SLOT: &str = "{text}";

/// A template and verbalizer (`[task.prompt]`; saved as `bert4rs_prompt` in `config.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromptSpec {
    /// The pattern: `{text}` where the text goes, exactly one mask token (`[MASK]`).
    pub template: String,
    /// Label → the word that stands for it (one token of the vocabulary).
    pub verbalizer: BTreeMap<String, String>,
    /// P-tuning: this many new tokens `[P0]`, `[P1]`, ... whose embeddings are learned; the
    /// template places them (each at least once).
    pub learned_tokens: usize,
}

impl Default for PromptSpec {
    fn default() -> Self {
        PromptSpec {
            template: "{text} It was [MASK].".into(),
            verbalizer: BTreeMap::new(),
            learned_tokens: 0,
        }
    }
}

/// A masked LM read through a template and a verbalizer.
pub struct PromptClassifier {
    mlm: MaskedLm,
    tokenizer: Tokenizer,
    spec: PromptSpec,
    labels: Vec<String>,
    label_ids: Vec<u32>,
    /// `[CLS] prefix` and `suffix [SEP]`: what surrounds every text.
    prefix: Vec<u32>,
    suffix: Vec<u32>,
    mask_id: u32,
    max_length: usize,
    device: Device,
}

impl PromptClassifier {
    /// Loads the masked LM of `dir` (a missing `cls.predictions` head is an error: random
    /// words answer nothing). The spec is `spec`, else the one `dir` was trained with.
    pub fn from_dir(
        dir: &Path,
        spec: Option<PromptSpec>,
        trainable: bool,
        max_length: usize,
    ) -> Result<Self> {
        let spec = match spec {
            Some(s) => s,
            None => saved_spec(dir)?,
        };
        let device = Device::Cpu;
        check_has_head(dir)?;
        let mut mlm = MaskedLm::from_dir(dir, &device, trainable)?;
        let mut tokenizer = Tokenizer::from_dir(dir)?;
        if spec.learned_tokens > 0 {
            add_prompt_tokens(&mut mlm, &mut tokenizer, &spec, dir)?;
        }
        let mask_id = tokenizer.token_to_id("[MASK]").ok_or_else(|| {
            Error::config(
                dir,
                "the tokenizer has no [MASK] token: prompts need a masked LM's",
            )
        })?;
        let (prefix, suffix) = template_parts(&spec.template, &tokenizer, mask_id)?;
        let (labels, label_ids) = verbalizer_ids(&spec, &tokenizer)?;
        let (cls, sep) = tokenizer.single_text_specials()?;
        let (prefix, suffix) = ([cls, prefix].concat(), [suffix, sep].concat());
        let overhead = prefix.len() + suffix.len();
        if max_length <= overhead {
            return Err(Error::Invalid(format!(
                "max_length {max_length} leaves no room for text: the template takes {overhead} tokens"
            )));
        }
        Ok(PromptClassifier {
            mlm,
            tokenizer,
            spec,
            labels,
            label_ids,
            prefix,
            suffix,
            mask_id,
            max_length,
            device,
        })
    }

    /// The labels, in the order of the logits' columns (the verbalizer's, sorted).
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The masked LM.
    pub fn mlm(&self) -> &MaskedLm {
        &self.mlm
    }

    /// The trainable parameters with their HF names.
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.mlm.vars()
    }

    /// `[CLS] prefix text suffix [SEP]`, the text's tokens cut (at the end) so the whole
    /// fits `max_length`, as PET truncates the text and never the pattern.
    pub fn encode(&self, text: &str) -> Result<Encoding> {
        let budget = self.max_length - self.prefix.len() - self.suffix.len();
        let mut body = self.tokenizer.encode_plain(text)?;
        body.truncate(budget);
        let ids: Vec<u32> = [&self.prefix[..], &body, &self.suffix].concat();
        let n = ids.len();
        let mut special = vec![0u32; n];
        special[0] = 1;
        special[n - 1] = 1;
        Ok(Encoding {
            input_ids: ids,
            token_type_ids: vec![0; n],
            attention_mask: vec![1; n],
            special_tokens_mask: special,
            offsets: vec![(0, 0); n],
        })
    }

    /// Label logits `[rows, labels]` of unpadded encodings from [`Self::encode`]: the MLM's
    /// vocabulary logits at each row's mask, at the verbalizer's tokens. Dropout when `train`.
    pub fn label_logits(&self, encs: &[Encoding], train: bool) -> Result<Tensor> {
        let padded = pad_batch(encs, self.tokenizer.pad_id());
        let seq = padded.first().map_or(0, |e| e.input_ids.len());
        let mut rows = Vec::with_capacity(encs.len());
        for (b, e) in encs.iter().enumerate() {
            let t = e.input_ids.iter().position(|&id| id == self.mask_id);
            let t = t.ok_or_else(|| Error::Invalid("an encoding without its [MASK]".into()))?;
            rows.push((b * seq + t) as u32);
        }
        let input = to_encoder_input(&padded, &self.device)?;
        let rows = Tensor::new(rows, &self.device)?;
        let vocab = self.mlm.forward_at(&input, &rows, train)?;
        let ids = Tensor::new(self.label_ids.as_slice(), &self.device)?;
        Ok(vocab.index_select(&ids, 1)?)
    }

    /// Writes the masked LM (HF `BertForMaskedLM`), its tokenizer, and the template and
    /// verbalizer as `bert4rs_prompt` in `config.json`.
    pub fn save_pretrained(&self, dir: &Path) -> Result<()> {
        self.mlm.save_pretrained(dir)?;
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let mut cfg: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::config(&path, format!("not valid JSON: {e}")))?;
        let spec = serde_json::to_value(&self.spec).map_err(|e| Error::Invalid(e.to_string()))?;
        cfg["bert4rs_prompt"] = spec;
        let text = serde_json::to_string_pretty(&cfg).map_err(|e| Error::Invalid(e.to_string()))?;
        crate::util::write_atomic(&path, text.as_bytes())?;
        self.tokenizer.save(dir)
    }
}

/// The name of learned prompt token `i`.
pub fn prompt_token(i: usize) -> String {
    format!("[P{i}]")
}

/// Adds `[P0]`, `[P1]`, ... to the tokenizer as special tokens right after the model's
/// vocabulary, and their learned rows to the embeddings.
fn add_prompt_tokens(
    mlm: &mut MaskedLm,
    tok: &mut Tokenizer,
    spec: &PromptSpec,
    dir: &Path,
) -> Result<()> {
    let names: Vec<String> = (0..spec.learned_tokens).map(prompt_token).collect();
    for name in &names {
        if !spec.template.contains(name.as_str()) {
            return Err(Error::Invalid(format!(
                "task.prompt.learned_tokens = {}: the template {:?} never uses {name}",
                spec.learned_tokens, spec.template
            )));
        }
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    tok.add_special_tokens(&refs)?;
    let vocab = mlm.encoder().config().vocab_size;
    for (i, name) in names.iter().enumerate() {
        if tok.token_to_id(name) != Some((vocab + i) as u32) {
            return Err(Error::config(
                dir,
                format!(
                    "{name} must get id {} (right after the model's {vocab} rows), the tokenizer                      gave {:?}: tokenizer and model vocabularies differ",
                    vocab + i,
                    tok.token_to_id(name)
                ),
            ));
        }
    }
    mlm.add_prompt_rows(spec.learned_tokens)
}

/// The spec a prompt model was saved with.
pub fn saved_spec(dir: &Path) -> Result<PromptSpec> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let cfg: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::config(&path, format!("not valid JSON: {e}")))?;
    let spec = cfg.get("bert4rs_prompt").ok_or_else(|| {
        Error::config(
            &path,
            "no `bert4rs_prompt`: give a template and a verbalizer (a masked LM alone is zero-shot)",
        )
    })?;
    serde_json::from_value(spec.clone())
        .map_err(|e| Error::config(&path, format!("bert4rs_prompt: {e}")))
}

/// A prompt needs the MLM head's weights: without them the head would be random.
fn check_has_head(dir: &Path) -> Result<()> {
    let weights = crate::models::hub::find_weights(dir)?;
    let tensors = crate::models::hub::read_tensors(&weights)?;
    if tensors.keys().any(|k| k.contains("cls.predictions.")) {
        return Ok(());
    }
    Err(Error::checkpoint(
        &weights,
        "no masked-LM head (`cls.predictions.*`): prompts read a BertForMaskedLM; train one \
         with task.kind = \"mlm\" (see configs/minilm-mlm.toml)",
    ))
}

/// The template's tokens before and after `{text}`; exactly one `{text}` and one mask.
fn template_parts(template: &str, tok: &Tokenizer, mask_id: u32) -> Result<(Vec<u32>, Vec<u32>)> {
    let bad = |msg: &str| Error::Invalid(format!("task.prompt.template {template:?}: {msg}"));
    let mut parts = template.split(TEXT_SLOT);
    let (Some(before), Some(after), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("needs exactly one {text}"));
    };
    let (prefix, suffix) = (tok.encode_plain(before)?, tok.encode_plain(after)?);
    let masks = prefix
        .iter()
        .chain(&suffix)
        .filter(|&&id| id == mask_id)
        .count();
    if masks != 1 {
        return Err(bad(&format!("needs exactly one [MASK], found {masks}")));
    }
    Ok((prefix, suffix))
}

/// Each label's token id; a word that is not one token is an error naming it.
fn verbalizer_ids(spec: &PromptSpec, tok: &Tokenizer) -> Result<(Vec<String>, Vec<u32>)> {
    if spec.verbalizer.len() < 2 {
        return Err(Error::Invalid(
            "task.prompt.verbalizer needs at least 2 labels, e.g. {\"1\" = \"great\", \"-1\" = \"terrible\"}"
                .into(),
        ));
    }
    let mut ids = Vec::new();
    for (label, word) in &spec.verbalizer {
        let t = tok.encode_plain(word)?;
        if t.len() != 1 {
            return Err(Error::Invalid(format!(
                "task.prompt.verbalizer: `{word}` (label {label}) is {} tokens; choose a word \
                 that is one token of the vocabulary",
                t.len()
            )));
        }
        if ids.contains(&t[0]) {
            return Err(Error::Invalid(format!(
                "task.prompt.verbalizer: `{word}` stands for two labels"
            )));
        }
        ids.push(t[0]);
    }
    Ok((spec.verbalizer.keys().cloned().collect(), ids))
}
