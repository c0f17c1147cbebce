//! The `bert4rs` command line: one file per subcommand, each a thin layer over the `bert4rs`
//! library.
//! Errors go to stderr as one line and the exit code is non-zero; outputs are written
//! atomically so a failed run leaves no partial file.

mod embed;
mod encode;
mod eval;
mod eval_embeddings;
mod extend_positions;
mod fetch;
mod fill_mask;
mod generate;
mod index;
mod inspect;
mod predict;
mod prepare;
mod prompt;
mod prune_heads;
mod quantize;
mod relation;
mod segment;
mod serve;
mod token;
mod tokenize;
mod train;
mod train_tokenizer;
mod word2vec;

use clap::{Parser, Subcommand};

/// BERT-family and GPT-2 models in Rust: tokenize, embed, fine-tune, generate, fetch assets.
#[derive(Parser, Debug)]
#[command(name = "bert4rs", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Tokenize texts into JSON lines of ids, masks and character offsets.
    Tokenize(tokenize::Args),
    /// Run the encoder and save its hidden states to a safetensors file.
    Encode(encode::Args),
    /// Write one sentence embedding per input line as JSON lines.
    Embed(embed::Args),
    /// Print the architecture and parameter counts of a model directory.
    Inspect(inspect::Args),
    /// Download the pinned registry assets (models, vocabularies, data sets).
    Fetch(fetch::Args),
    /// Train from a TOML run config: a classifier / regressor, tagger, relation model,
    /// sentence encoder (SimCSE), prompt (PET) model, or a GPT-2 language model.
    Train(train::Args),
    /// Metrics of a fine-tuned model on a labelled file.
    Eval(eval::Args),
    /// Alignment, uniformity and STS Spearman of a model's sentence embeddings on text pairs.
    EvalEmbeddings(eval_embeddings::Args),
    /// Labels and probabilities for every input line.
    Predict(predict::Args),
    /// Write a fetched corpus as training files (spam-assassin, zh-lm, sts-b, ...).
    Prepare(prepare::Args),
    /// Generate text with a GPT-2 model: greedy, beam search or sampling.
    Generate(generate::Args),
    /// Log-probability of continuations after a prompt (GPT-2).
    Score(generate::ScoreArgs),
    /// Pre-train a BERT by masked-LM on plain text (`train` with task.kind = "mlm").
    Pretrain(train::Args),
    /// Top-k tokens and probabilities for every [MASK] of each input line.
    FillMask(fill_mask::Args),
    /// Prompt-based classification (PET) metrics of a masked LM: zero-shot or trained.
    Prompt(prompt::Args),
    /// Train a WordPiece / BPE / unigram vocabulary (BERT's Chinese-aware pipeline).
    TrainTokenizer(train_tokenizer::Args),
    /// Lengthen a model's position table (copy or hierarchical decomposition).
    ExtendPositions(extend_positions::Args),
    /// Remove the least important attention heads (or the ones named) into a new directory.
    PruneHeads(prune_heads::Args),
    /// Write an int8 copy of a model directory that every command loads (`--int8` saved).
    Quantize(quantize::Args),
    /// Chinese word segmentation with a character-tagging model (`prepare zh-seg`).
    Segment(segment::Args),
    /// Serve models over HTTP: text-embeddings-inference's routes with dynamic batching.
    Serve(serve::Args),
    /// Word vectors: train word2vec (skip-gram / CBOW), nearest words, analogies.
    Word2vec(word2vec::Args),
    /// Two-tower retrieval: embed a corpus into an index once, then search it by query.
    Index(index::Args),
}

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    bert4rs::util::init_process();
    std::process::exit(run());
}

/// Parses the arguments, runs the subcommand and returns the process exit code.
fn run() -> i32 {
    let cli = Cli::parse();
    StderrLog::install();
    let result = match cli.command {
        Command::Tokenize(a) => tokenize::run(a),
        Command::Encode(a) => encode::run(a),
        Command::Embed(a) => embed::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Fetch(a) => fetch::run(a),
        Command::Train(a) => train::run(a),
        Command::Eval(a) => eval::run(a),
        Command::EvalEmbeddings(a) => eval_embeddings::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Prepare(a) => prepare::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Score(a) => generate::run_score(a),
        Command::TrainTokenizer(a) => train_tokenizer::run(a),
        Command::Pretrain(a) => train::run_pretrain(a),
        Command::FillMask(a) => fill_mask::run(a),
        Command::Prompt(a) => prompt::run(a),
        Command::ExtendPositions(a) => extend_positions::run(a),
        Command::PruneHeads(a) => prune_heads::run(a),
        Command::Quantize(a) => quantize::run(a),
        Command::Segment(a) => segment::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Index(a) => index::run(a),
        Command::Word2vec(a) => word2vec::run(a),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

/// Prints the library's log records on stderr: warnings as `warning: …`, information as
/// plain lines (`BERT4RS_LOG=warn` keeps only warnings).
struct StderrLog(log::LevelFilter);

impl StderrLog {
    fn install() {
        let level = match std::env::var("BERT4RS_LOG").as_deref() {
            Ok("warn") => log::LevelFilter::Warn,
            Ok("debug") => log::LevelFilter::Debug,
            _ => log::LevelFilter::Info,
        };
        if log::set_boxed_logger(Box::new(StderrLog(level))).is_ok() {
            log::set_max_level(level);
        }
    }
}

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= self.0 && m.target().starts_with("bert4rs")
    }

    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            match r.level() {
                log::Level::Error => eprintln!("error: {}", r.args()),
                log::Level::Warn => eprintln!("warning: {}", r.args()),
                _ => eprintln!("{}", r.args()),
            }
        }
    }

    fn flush(&self) {}
}

/// How `--dtype` stores an encoder's weights for inference.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum WeightDtype {
    /// f32, as trained.
    F32,
    /// bf16 matrices (linear layers and embedding tables): half the weight memory,
    /// arithmetic still f32; embeddings within cosine 0.999 of f32.
    Bf16,
}

impl WeightDtype {
    fn storage(self) -> bert4rs::models::hub::WeightStorage {
        match self {
            WeightDtype::F32 => bert4rs::models::hub::WeightStorage::F32,
            WeightDtype::Bf16 => bert4rs::models::hub::WeightStorage::Bf16,
        }
    }
}

/// `--int8-activations`, beside each encoder command's `--int8`.
#[derive(clap::Args, Clone, Copy, Debug)]
struct Int8Activations {
    /// With --int8: bits per activation code, 12, 8 or 7. 12 (the default) kept the f32
    /// models' accuracy in our tests; 8 is 1.5–2× faster on CPUs with VNNI (AVX-512
    /// VNNI or AVX-VNNI; the same speed as 12 elsewhere); 7 makes the integer GEMM about
    /// 20 % faster on plain AVX2 for a little accuracy (Pang & Lee: 0.75 points).
    #[arg(long = "int8-activations", default_value = "12", requires = "int8", value_parser = int8_bits)]
    bits: bert4rs::kernels::CodeWidth,
}

impl Int8Activations {
    /// The encoder's int8 setting: `None` without `--int8`.
    fn with(self, int8: bool) -> Option<bert4rs::kernels::CodeWidth> {
        int8.then_some(self.bits)
    }
}

fn int8_bits(s: &str) -> Result<bert4rs::kernels::CodeWidth, String> {
    s.parse::<u32>()
        .ok()
        .and_then(bert4rs::kernels::CodeWidth::from_bits)
        .ok_or_else(|| format!("{s:?}: the activation codes are 7, 8 or 12 bits"))
}

/// Refuses `--dtype bf16` for a model kind that does not take it (before any loading).
fn check_dtype(dtype: WeightDtype, model: &std::path::Path) -> bert4rs::error::Result<()> {
    let other = bert4rs::tasks::relation::is_relation_model(model)
        || bert4rs::tasks::token_classify::is_token_model(model);
    if dtype == WeightDtype::Bf16 && other {
        return Err(bert4rs::Error::Invalid(format!(
            "--dtype bf16: supported for sequence classifiers and sentence encoders; {} is a \
             token or relation model (use f32 or --int8)",
            model.display()
        )));
    }
    Ok(())
}

/// Padding choices on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum PaddingArg {
    /// Pad to the longest text of the batch (HF: `longest`, `True`).
    #[value(alias = "true", alias = "True")]
    Longest,
    /// Pad to --max-length (HF: `max_length`).
    #[value(alias = "max_length")]
    MaxLength,
}

/// Truncation choices on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum TruncationArg {
    /// Remove tokens from the longer text first (HF: `longest_first`, `True`).
    #[value(alias = "longest_first", alias = "true", alias = "True")]
    LongestFirst,
    /// Remove tokens from the second text only (HF: `only_second`).
    #[value(alias = "only_second")]
    OnlySecond,
}

/// Options shared by every subcommand that tokenizes.
#[derive(clap::Args, Debug, Clone)]
struct TokenizeOpts {
    /// Maximum tokens per example (with special tokens).
    #[arg(long)]
    max_length: Option<usize>,
    /// Truncate examples longer than --max-length (default strategy: longest-first).
    #[arg(long, num_args = 0..=1, default_missing_value = "longest-first")]
    truncation: Option<TruncationArg>,
    /// Apply NFKC normalisation before the tokenizer's own normaliser.
    #[arg(long)]
    nfkc: bool,
}

impl TokenizeOpts {
    fn truncation(&self) -> Option<bert4rs::Truncation> {
        self.truncation.map(|t| match t {
            TruncationArg::LongestFirst => bert4rs::Truncation::LongestFirst,
            TruncationArg::OnlySecond => bert4rs::Truncation::OnlySecond,
        })
    }

    fn load_tokenizer(&self, dir: &std::path::Path) -> bert4rs::Result<bert4rs::Tokenizer> {
        let mut tok = bert4rs::Tokenizer::from_dir(dir)?;
        if self.nfkc {
            tok.enable_nfkc()?;
        }
        Ok(tok)
    }
}

/// A progress bar on stderr for inputs of at least `min` items (hidden otherwise).
fn progress_bar(len: usize, min: usize) -> indicatif::ProgressBar {
    if len < min {
        return indicatif::ProgressBar::hidden();
    }
    bert4rs::util::progress_bar(len as u64, "texts", "{per_sec}")
        .indicatif()
        .clone()
}

/// `--early-exit-entropy` (eval / predict) only for sequence classifiers: an error naming
/// the model when it is a token or relation model.
fn check_early_exit(model: &std::path::Path, entropy: Option<f32>) -> bert4rs::error::Result<()> {
    let token_or_relation = bert4rs::tasks::relation::is_relation_model(model)
        || bert4rs::tasks::token_classify::is_token_model(model);
    if entropy.is_some() && token_or_relation {
        return Err(bert4rs::Error::Invalid(format!(
            "--early-exit-entropy: {} is a token or relation model; early exit is for \
             sequence classifiers trained with task.early_exit",
            model.display()
        )));
    }
    Ok(())
}

/// Which fields of a data file hold what (eval / predict).
#[derive(clap::Args, Debug, Clone)]
struct DataArgs {
    /// Field (column) of the text.
    #[arg(long, default_value = "text")]
    text_field: String,
    /// Field of the second text of a pair.
    #[arg(long)]
    text_pair_field: Option<String>,
    /// Field of the label.
    #[arg(long, default_value = "label")]
    label_field: String,
    /// csv, tsv or jsonl (default: from the extension).
    #[arg(long)]
    format: Option<String>,
    /// CSV/TSV without a header row (fields are then column numbers).
    #[arg(long)]
    no_header: bool,
    /// Tokens per example after truncation.
    #[arg(long, default_value_t = 128)]
    max_length: usize,
    /// Examples per forward pass.
    #[arg(long, default_value_t = 64, value_parser = at_least_one())]
    batch_size: usize,
}

/// `--model`: a directory, or `asset:<name>` for a fetched asset (fetched on first use), as
/// in the training config's `model`.
fn model_dir(s: &str) -> std::result::Result<std::path::PathBuf, String> {
    let dir = bert4rs::assets::resolve_dir(s).map_err(|e| e.to_string())?;
    if dir.is_dir() {
        return Ok(dir);
    }
    let what = match dir.exists() {
        true => "a file, not a directory",
        false => "no such directory",
    };
    Err(format!(
        "{what}: a model directory holds config.json, the weights and the tokenizer \
         (`asset:NAME` for a fetched one, `bert4rs fetch --list`)"
    ))
}

/// A count option that must be at least 1 (`--batch-size 0` is a usage error, exit 2).
/// A count that must be at least 1 (clap's ranged parser would print the range up to
/// `u64::MAX` in its error).
fn at_least_one() -> fn(&str) -> std::result::Result<usize, String> {
    |s| match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        Ok(_) => Err("must be at least 1".into()),
        Err(e) => Err(format!("not a whole number ({e})")),
    }
}

impl DataArgs {
    fn config(&self) -> bert4rs::data::dataset::DataConfig {
        bert4rs::data::dataset::DataConfig {
            text_field: self.text_field.clone(),
            text_pair_field: self.text_pair_field.clone(),
            label_field: self.label_field.clone(),
            format: self
                .format
                .as_deref()
                .and_then(|f| serde_json::from_value(serde_json::json!(f)).ok()),
            header: !self.no_header,
            max_length: self.max_length,
            ..Default::default()
        }
    }
}
