//! `bert4rs generate` and `bert4rs score`: text generation and continuation log-probs with a
//! GPT-2 model directory (byte-level BPE, or the BERT vocabulary of the Chinese GPT-2s).

use bert4rs::error::{Error, Result};
use bert4rs::generate::{
    self, EarlyStopping, GenerationConfig, StepInfo, TextGenerator, TextStream,
};
use std::io::Write;
use std::path::PathBuf;

/// Where the prompt and tokenizer come from.
#[derive(clap::Args, Debug)]
pub struct ModelArgs {
    /// HF GPT-2 model directory.
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
        required_unless_present = "prompt_ids",
        conflicts_with = "prompt_ids"
    )]
    prompt: Vec<String>,
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
    let loaded = a.model.load()?;
    let cfg = a.config(loaded.eos(a.eos_token_id))?;
    let prompts: Vec<Vec<u32>> = match a.prompt_ids.is_empty() {
        false => a.prompt_ids.iter().map(|p| p.0.clone()).collect(),
        true => a
            .prompt
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
