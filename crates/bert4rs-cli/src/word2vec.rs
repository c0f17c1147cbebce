//! `bert4rs word2vec train|similar|analogy`: word vectors from a word-segmented corpus, and
//! queries on saved vectors (the word2vec text or binary format).

use bert4rs::error::{Error, Result};
use bert4rs::word2vec::{self, Corpus, Word2VecConfig, WordVectors};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Train vectors on a corpus (one sentence per line, words separated by whitespace).
    Train(TrainArgs),
    /// The words nearest to a word by cosine.
    Similar(SimilarArgs),
    /// `a` is to `b` as `c` is to …, or the accuracy on a question file.
    Analogy(AnalogyArgs),
}

#[derive(clap::Args, Debug)]
struct TrainArgs {
    /// Corpus file (`bert4rs prepare zh-words` writes People's Daily this way).
    #[arg(long)]
    input: PathBuf,
    /// Output vectors: `.bin` for the binary word2vec format, else text.
    #[arg(long)]
    output: PathBuf,
    /// Skip-gram (default: CBOW).
    #[arg(long)]
    sg: bool,
    /// Hierarchical softmax (with or without negative sampling).
    #[arg(long)]
    hs: bool,
    /// Negative samples per prediction (0: none, needs --hs).
    #[arg(long, default_value_t = 5)]
    negative: usize,
    /// Vector size.
    #[arg(long, default_value_t = 100)]
    vector_size: usize,
    /// Context window (each position draws 1 ..= this).
    #[arg(long, default_value_t = 5)]
    window: usize,
    /// Words seen fewer times are dropped.
    #[arg(long, default_value_t = 5)]
    min_count: u64,
    /// Subsampling threshold of frequent words (0: off).
    #[arg(long, default_value_t = 1e-3)]
    sample: f64,
    /// Starting learning rate (falls linearly to --min-alpha).
    #[arg(long, default_value_t = 0.025)]
    alpha: f32,
    /// Final learning rate.
    #[arg(long, default_value_t = 0.0001)]
    min_alpha: f32,
    /// Passes over the corpus.
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// Training threads (they update shared vectors without locks, as the original).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Seed of the initial vectors and the draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(clap::Args, Debug)]
struct SimilarArgs {
    /// Vectors written by `word2vec train` (or any word2vec-format file).
    #[arg(long)]
    vectors: PathBuf,
    /// The query word.
    #[arg(long)]
    word: String,
    /// How many neighbours.
    #[arg(long, default_value_t = 10)]
    top_k: usize,
}

#[derive(clap::Args, Debug)]
struct AnalogyArgs {
    /// Vectors written by `word2vec train` (or any word2vec-format file).
    #[arg(long)]
    vectors: PathBuf,
    /// `a b c`: answers a : b :: c : ?
    #[arg(long, num_args = 3, value_names = ["A", "B", "C"], conflicts_with = "questions", required_unless_present = "questions")]
    words: Vec<String>,
    /// A question file (`: section` lines, then `a b c d` lines): prints the accuracy.
    #[arg(long)]
    questions: Option<PathBuf>,
    /// How many answers (with --words).
    #[arg(long, default_value_t = 5)]
    top_k: usize,
}

pub fn run(a: Args) -> Result<()> {
    let json = |v: serde_json::Value| {
        serde_json::to_string_pretty(&v).map_err(|e| Error::Invalid(e.to_string()))
    };
    match a.command {
        Command::Train(t) => {
            let cfg = Word2VecConfig {
                vector_size: t.vector_size,
                window: t.window,
                min_count: t.min_count,
                sample: t.sample,
                sg: t.sg,
                hs: t.hs,
                negative: t.negative,
                alpha: t.alpha,
                min_alpha: t.min_alpha,
                epochs: t.epochs,
                workers: t.workers,
                seed: t.seed,
            };
            cfg.validate()?;
            let corpus = Corpus::read(&t.input, t.min_count)?;
            let (vectors, stats) = word2vec::train(&corpus, &cfg)?;
            vectors.save(&t.output)?;
            println!("{}", json(serde_json::json!(stats))?);
        }
        Command::Similar(s) => {
            let v = WordVectors::load(&s.vectors)?;
            println!(
                "{}",
                json(serde_json::json!(v.most_similar(&s.word, s.top_k)?))?
            );
        }
        Command::Analogy(q) => {
            let v = WordVectors::load(&q.vectors)?;
            let out = match (&q.questions, q.words.as_slice()) {
                (Some(path), _) => serde_json::json!(v.evaluate_analogies(path)?),
                (None, [a, b, c]) => serde_json::json!(v.analogy(a, b, c, q.top_k)?),
                _ => {
                    return Err(Error::Invalid(
                        "give --words A B C or --questions FILE".into(),
                    ))
                }
            };
            println!("{}", json(out)?);
        }
    }
    Ok(())
}
