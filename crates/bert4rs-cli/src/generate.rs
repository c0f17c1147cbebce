//! `bert4rs generate` and `bert4rs score`: text generation and continuation log-probs with a
//! GPT-2 model directory (byte-level BPE, or the BERT vocabulary of the Chinese GPT-2s);
//! `generate` also runs an encoder–decoder (bert2bert) on source texts.

use bert4rs::error::{Error, Result};
use bert4rs::generate::{
    self, EarlyStopping, GenerationConfig, StepInfo, TextGenerator, TextStream,
};
use std::io::Write;
use std::path::PathBuf;

/// Where the prompt and tokenizer come from.
#[derive(clap::Args, Debug)]
pub struct ModelArgs {
    /// HF GPT-2 model directory, or an encoder–decoder (bert2bert) one: its prompts are
    /// then the source texts.
    #[arg(long, value_parser = super::model_dir)]
    model: PathBuf,
    /// Tokenizer directory, when the model directory has none.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Threads for the forward passes (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Run on int8 (weights per output channel, each row's activations quantised at run
    /// time, integer sums): a quarter of the weight traffic that bounds decoding; the
    /// tokens may differ from f32's.
    #[arg(long)]
    int8: bool,
}

/// One prompt given as token ids.
#[derive(Clone, Debug)]
struct TokenIds(Vec<u32>);

/// `15496,11,616` → the ids; an empty list or a non-number is a usage error.
fn parse_ids(s: &str) -> std::result::Result<TokenIds, String> {
    let ids = s
        .split(',')
        .map(|t| {
            t.trim()
                .parse::<u32>()
                .map_err(|_| format!("`{t}` is not a token id (expected e.g. 15496,11,616)"))
        })
        .collect::<std::result::Result<Vec<u32>, String>>()?;
    match ids.is_empty() {
        true => Err("no token ids".into()),
        false => Ok(TokenIds(ids)),
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Prompt text (repeat for a batch).
    #[arg(
        long,
        required_unless_present_any = ["prompt_ids", "input"],
        conflicts_with_all = ["prompt_ids", "input"]
    )]
    prompt: Vec<String>,
    /// Prompts from a file, one per example: plain text (a line each), JSON lines or CSV/TSV
    /// with a `text` field (the inputs `predict` reads).
    #[arg(long, conflicts_with = "prompt_ids")]
    input: Option<PathBuf>,
    /// Prompt as comma-separated token ids, e.g. 15496,11,616 (repeat for a batch).
    #[arg(long, value_parser = parse_ids)]
    prompt_ids: Vec<TokenIds>,
    /// Tokens to generate at most.
    #[arg(long, default_value_t = 50)]
    max_new_tokens: usize,
    /// Beam search with this many beams (1 = greedy / sampling).
    #[arg(long, default_value_t = 1)]
    num_beams: usize,
    /// Never repeat an n-gram of this size (0 = off).
    #[arg(long, default_value_t = 0)]
    no_repeat_ngram_size: usize,
    /// Beam score = log-prob / length^L.
    #[arg(long, default_value_t = 1.0)]
    length_penalty: f32,
    /// Beam search stop rule: false (heuristic), true (num_beams finished), never.
    #[arg(long, default_value = "false")]
    early_stopping: String,
    /// Sequences to return per prompt.
    #[arg(long, default_value_t = 1)]
    num_return_sequences: usize,
    /// Sample instead of greedy decoding.
    #[arg(long)]
    do_sample: bool,
    /// Sampling temperature.
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    /// Sample from the K most likely tokens (0 = all).
    #[arg(long, default_value_t = 50)]
    top_k: usize,
    /// Sample from the smallest set of tokens with probability ≥ P.
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Penalise tokens already present (1 = off).
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// End-of-text id (default: config.json's, or [SEP] for a BERT vocabulary).
    #[arg(long)]
    eos_token_id: Option<u32>,
    /// Print the five most likely next tokens and their probabilities at every step
    /// (greedy and sampling).
    #[arg(long)]
    show_top: bool,
    /// text (streamed) or json (one {"ids", "text"} line per sequence).
    #[arg(long, default_value = "text")]
    format: String,
    /// Encoder–decoder: source tokens kept ([CLS] and [SEP] included; default the encoder's
    /// positions). Use the training run's `data.max_length`.
    #[arg(long, value_parser = super::at_least_one())]
    max_length: Option<usize>,
}

impl ModelArgs {
    fn load(&self) -> Result<TextGenerator> {
        if let Some(n) = self.threads {
            // Ignored when the global pool already exists (only the first call sets it).
            bert4rs::util::init_threads(n);
        }
        let mut generator = TextGenerator::from_dir(&self.model, self.tokenizer.as_deref())?;
        if self.int8 {
            generator.quantize_int8()?;
        }
        Ok(generator)
    }
}

impl Args {
    fn config(&self, eos: Option<u32>) -> Result<GenerationConfig> {
        let early_stopping = match self.early_stopping.as_str() {
            "false" => EarlyStopping::Heuristic,
            "true" => EarlyStopping::Finished,
            "never" => EarlyStopping::Never,
            other => {
                return Err(Error::Invalid(format!(
                    "--early-stopping must be true, false or never, got {other:?}"
                )))
            }
        };
        let cfg = GenerationConfig {
            max_new_tokens: self.max_new_tokens,
            num_beams: self.num_beams,
            no_repeat_ngram_size: self.no_repeat_ngram_size,
            length_penalty: self.length_penalty,
            early_stopping,
            num_return_sequences: self.num_return_sequences,
            do_sample: self.do_sample,
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            repetition_penalty: self.repetition_penalty,
            seed: self.seed,
            eos_token_id: eos,
            pad_token_id: None,
            use_cache: true,
            report_top: if self.show_top { 5 } else { 0 },
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

pub fn run(a: Args) -> Result<()> {
    let json = match a.format.as_str() {
        "json" => true,
        "text" => false,
        other => {
            return Err(Error::Invalid(format!(
                "--format must be text or json, got {other:?}"
            )))
        }
    };
    let texts = match &a.input {
        Some(path) => {
            let ex = bert4rs::data::input::read_examples(path)?;
            ex.into_iter().map(|e| e.text).collect()
        }
        None => a.prompt.clone(),
    };
    if is_encoder_decoder(&a.model.model)? {
        return run_seq2seq(&a, &texts, json);
    }
    if a.max_length.is_some() {
        return Err(Error::Invalid(
            "--max-length (source tokens) applies to encoder–decoder models only".into(),
        ));
    }
    let loaded = a.model.load()?;
    let cfg = a.config(loaded.eos(a.eos_token_id))?;
    let prompts: Vec<Vec<u32>> = match a.prompt_ids.is_empty() {
        false => a.prompt_ids.iter().map(|p| p.0.clone()).collect(),
        true => texts
            .iter()
            .map(|p| loaded.encode_prompt(p))
            .collect::<Result<_>>()?,
    };
    // Streaming: one prompt, one sequence, text output.
    let stream = !json && prompts.len() == 1 && cfg.num_beams == 1 && cfg.num_return_sequences == 1;
    let mut streamer = Streamer::new(&loaded, &prompts[0], stream)?;
    let mut on_step = |s: &StepInfo| streamer.step(s, a.show_top);
    let out = generate::generate(loaded.model(), &prompts, &cfg, &mut on_step)?;
    streamer.finish()?;
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    for g in &out {
        let text = loaded.decode(&g.ids)?;
        if json {
            let mut v = serde_json::json!({ "ids": g.ids, "text": text });
            if let Some(s) = g.score {
                v["score"] = serde_json::json!(s);
            }
            writeln!(w, "{v}").map_err(|e| Error::io("<stdout>", e))?;
        } else if !stream {
            let shown = match text {
                Some(t) => t,
                None => format!("{:?}", g.ids),
            };
            writeln!(w, "{shown}").map_err(|e| Error::io("<stdout>", e))?;
        }
    }
    Ok(())
}

fn is_encoder_decoder(dir: &std::path::Path) -> Result<bool> {
    let cfg = bert4rs::config::read_json(&dir.join("config.json"))?;
    Ok(cfg.get("model_type").and_then(|v| v.as_str()) == Some("encoder-decoder"))
}

/// An encoder–decoder: each text is a source (truncated to the encoder's positions), the
/// output its generated target, in batches of 16.
fn run_seq2seq(a: &Args, texts: &[String], json: bool) -> Result<()> {
    use bert4rs::models::encoder_decoder::EncoderDecoderModel;
    use bert4rs::tokenize::{EncodeOptions, Padding, TextInput, Tokenizer, Truncation};
    let m = &a.model;
    for (flag, used) in [
        ("--prompt-ids", !a.prompt_ids.is_empty()),
        ("--int8", m.int8),
        ("--show-top", a.show_top),
    ] {
        if used {
            return Err(Error::Invalid(format!(
                "{flag} is not supported with an encoder–decoder model; give source texts \
                 with --prompt or --input"
            )));
        }
    }
    if texts.is_empty() {
        return Err(Error::Invalid("no source texts to generate from".into()));
    }
    if let Some(i) = texts.iter().position(|t| t.trim().is_empty()) {
        return Err(Error::Invalid(format!(
            "source text {} is empty: an encoder–decoder needs something to read",
            i + 1
        )));
    }
    if let Some(n) = m.threads {
        bert4rs::util::init_threads(n);
    }
    let model = EncoderDecoderModel::from_dir(&m.model, &candle_core::Device::Cpu, false)?;
    let tok = Tokenizer::from_dir(m.tokenizer.as_deref().unwrap_or(&m.model))?;
    let cfg = a.config(a.eos_token_id)?;
    let positions = model.encoder().config().max_sequence_length();
    let opts = EncodeOptions {
        max_length: Some(a.max_length.unwrap_or(positions).min(positions)),
        padding: Padding::Longest,
        truncation: Some(Truncation::LongestFirst),
    };
    let mut w = std::io::stdout().lock();
    for chunk in texts.chunks(16) {
        let inputs: Vec<TextInput> = chunk
            .iter()
            .map(|t| TextInput::single(t.as_str()))
            .collect();
        let encs = tok.encode_batch(&inputs, &opts)?;
        let input = bert4rs::data::batch::to_encoder_input(&encs, &candle_core::Device::Cpu)?;
        for g in bert4rs::generate::seq2seq::generate_seq2seq(&model, &input, &cfg)? {
            let text = tok.decode_with(&g.ids[g.prompt_len..], true)?;
            let line = match json {
                true => {
                    let mut v = serde_json::json!({ "ids": g.ids, "text": text });
                    if let Some(s) = g.score {
                        v["score"] = serde_json::json!(s);
                    }
                    v.to_string()
                }
                false => text,
            };
            writeln!(w, "{line}").map_err(|e| Error::io("<stdout>", e))?;
        }
    }
    Ok(())
}

/// Prints a single generation as it happens, through the library's [`TextStream`].
struct Streamer<'a> {
    generator: &'a TextGenerator,
    stream: TextStream<'a>,
    on: bool,
}

impl<'a> Streamer<'a> {
    fn new(generator: &'a TextGenerator, prompt: &[u32], on: bool) -> Result<Self> {
        let mut s = Streamer {
            generator,
            stream: generator.stream(prompt),
            on,
        };
        if on {
            let piece = s.stream.start()?;
            print_piece(&piece);
        }
        Ok(s)
    }

    fn step(&mut self, s: &StepInfo, show_top: bool) {
        if show_top {
            let tops: Vec<String> = s
                .top
                .iter()
                .map(|(id, p)| format!("{:?}({id}) {p:.4}", self.generator.token_text(*id)))
                .collect();
            eprintln!(
                "[row {} step {}] {}",
                s.row,
                self.stream.ids().len(),
                tops.join("  ")
            );
        }
        if self.on {
            // A token that does not decode leaves the text as it was (shown at the end).
            if let Ok(piece) = self.stream.push(s.token) {
                print_piece(&piece);
            }
        }
    }

    fn finish(&mut self) -> Result<()> {
        if self.on {
            if self.generator.has_tokenizer() {
                println!();
            } else {
                println!("{:?}", self.stream.ids());
            }
        }
        Ok(())
    }
}

fn print_piece(piece: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(piece.as_bytes());
    let _ = out.flush();
}

#[derive(clap::Args, Debug)]
pub struct ScoreArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The given context.
    #[arg(long)]
    prompt: String,
    /// Text whose log-probability after the prompt is wanted (repeat to compare several).
    #[arg(long, required = true)]
    continuation: Vec<String>,
}

/// `bert4rs score`: one JSON line per continuation with its summed and per-token log-probs.
pub fn run_score(a: ScoreArgs) -> Result<()> {
    let loaded = a.model.load()?;
    let prompt = loaded.encode_prompt(&a.prompt)?;
    let tok = loaded.tokenizer()?;
    let pairs: Vec<(Vec<u32>, Vec<u32>)> = a
        .continuation
        .iter()
        .map(|c| Ok((prompt.clone(), tok.encode_plain(c)?)))
        .collect::<Result<_>>()?;
    let scores = generate::sequence_logprob(loaded.model(), &pairs)?;
    for (c, s) in a.continuation.iter().zip(scores) {
        let v = serde_json::json!({
            "continuation": c,
            "logprob": s.logprob,
            "token_logprobs": s.token_logprobs,
        });
        println!("{v}");
    }
    Ok(())
}
