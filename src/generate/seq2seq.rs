//! Generation with an encoder–decoder (HF `generate` on an `EncoderDecoderModel`): the
//! encoder runs once per input; the decoder starts from `decoder_start_token_id` and decodes
//! with greedy search, sampling or beam search exactly as a causal LM does, its
//! cross-attention keys and values computed once into the cache.

use super::{generate, Decoder, Generated, GenerationConfig};
use crate::error::{Error, Result};
use crate::kernels;
use crate::models::bert::{BertDecoderCache, EncoderInput};
use crate::models::encoder_decoder::{repeat_rows, EncoderDecoderModel};
use candle_core::{DType, Tensor};

/// A bert2bert decoder bound to the encoder output of a batch of inputs.
pub struct Seq2SeqDecoding<'a> {
    model: &'a EncoderDecoderModel,
    encoded: Tensor,
    mask: Tensor,
}

impl<'a> Seq2SeqDecoding<'a> {
    /// Runs the encoder on `input` once.
    pub fn new(model: &'a EncoderDecoderModel, input: &EncoderInput) -> Result<Self> {
        let encoded = kernels::on_pool(|| model.encode(input, false))?;
        let mask = input.attention_mask.to_dtype(DType::F32)?;
        Ok(Seq2SeqDecoding {
            model,
            encoded,
            mask,
        })
    }

    /// Decoding rows per input: generation repeats each input's prompt for its beams or
    /// samples, row after row.
    fn rows_per_input(&self, rows: usize) -> Result<usize> {
        let n = self.encoded.dim(0)?;
        if n == 0 || !rows.is_multiple_of(n) {
            return Err(Error::Invalid(format!(
                "{rows} decoding rows for {n} encoded inputs"
            )));
        }
        Ok(rows / n)
    }

    fn ids_tensor(&self, ids: &[Vec<u32>], mask: &[Vec<f32>]) -> Result<Tensor> {
        if mask.iter().flatten().any(|&m| m != 1.0) {
            return Err(Error::Invalid(
                "encoder–decoder prompts must all have the same length (no padding)".into(),
            ));
        }
        let (b, t) = (ids.len(), ids.first().map_or(0, Vec::len));
        Ok(Tensor::from_vec(
            ids.concat(),
            (b, t),
            self.encoded.device(),
        )?)
    }
}

impl Decoder for Seq2SeqDecoding<'_> {
    type Cache = BertDecoderCache;

    fn vocab_size(&self) -> usize {
        self.model.config().decoder.vocab_size
    }

    fn max_positions(&self) -> usize {
        self.model.config().decoder.max_position_embeddings
    }

    fn positions_field(&self) -> &'static str {
        "decoder max_position_embeddings"
    }

    fn new_cache(&self, rows: usize) -> Result<BertDecoderCache> {
        let k = self.rows_per_input(rows)?;
        self.model.new_cache(&self.encoded, &self.mask, k)
    }

    fn reorder_cache(&self, cache: &mut BertDecoderCache, order: &[usize]) -> Result<()> {
        cache.reorder(order)
    }

    fn forward_cached(
        &self,
        ids: &[Vec<u32>],
        mask: &[Vec<f32>],
        cache: &mut BertDecoderCache,
    ) -> Result<Tensor> {
        let ids = self.ids_tensor(ids, mask)?;
        kernels::on_pool(|| self.model.decoder().forward_cached(&ids, cache))
    }

    fn last_hidden(&self, ids: &[Vec<u32>], mask: &[Vec<f32>]) -> Result<Tensor> {
        let ids = self.ids_tensor(ids, mask)?;
        let (b, t) = ids.dims2()?;
        let (enc, enc_mask) = repeat_rows(&self.encoded, &self.mask, self.rows_per_input(b)?)?;
        let h = kernels::on_pool(|| {
            self.model
                .decoder()
                .hidden_states(&ids, &enc, &enc_mask, false)
        })?;
        Ok(h.narrow(1, t - 1, 1)?.squeeze(1)?)
    }

    fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        kernels::on_pool(|| self.model.decoder().logits(hidden))
    }
}

/// Generates an output for each input of the batch, `num_return_sequences` each, in input
/// order. `eos_token_id` and `pad_token_id` default to the model config's; every sequence
/// starts with `decoder_start_token_id` (its `prompt_len` is 1, as HF's `sequences` rows).
pub fn generate_seq2seq(
    model: &EncoderDecoderModel,
    input: &EncoderInput,
    cfg: &GenerationConfig,
) -> Result<Vec<Generated>> {
    let c = model.config();
    let mut cfg = cfg.clone();
    cfg.eos_token_id = cfg.eos_token_id.or(c.eos_token_id);
    cfg.pad_token_id = cfg.pad_token_id.or(Some(c.pad_token_id));
    let n = input.input_ids.dim(0)?;
    if n == 0 {
        return Err(Error::Invalid("no inputs to generate from".into()));
    }
    let bound = Seq2SeqDecoding::new(model, input)?;
    let prompts = vec![vec![c.decoder_start_token_id]; n];
    generate(&bound, &prompts, &cfg, &mut |_| {})
}

/// Settings of `[task] kind = "seq2seq"` (section `[task.seq2seq]`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Seq2SeqSpec {
    /// Target tokens kept (the end token `[SEP]` is added after them).
    pub max_target_length: usize,
    /// Beams when generating for evaluation (1 = greedy).
    pub num_beams: usize,
    /// Ban repeating n-grams of this size in generated text (0 = off).
    pub no_repeat_ngram_size: usize,
    /// The decoder's starting checkpoint when `model` is a plain BERT (a bert2bert warm
    /// start; unset: `model` itself). Ignored when `model` is an encoder–decoder.
    pub decoder: Option<String>,
}

impl Default for Seq2SeqSpec {
    fn default() -> Self {
        Seq2SeqSpec {
            max_target_length: 32,
            num_beams: 1,
            no_repeat_ngram_size: 0,
            decoder: None,
        }
    }
}

impl Seq2SeqSpec {
    /// The generation settings of an evaluation: up to the target length plus the end token.
    pub fn generation(&self) -> GenerationConfig {
        GenerationConfig {
            max_new_tokens: self.max_target_length + 1,
            num_beams: self.num_beams,
            no_repeat_ngram_size: self.no_repeat_ngram_size,
            ..Default::default()
        }
    }
}
