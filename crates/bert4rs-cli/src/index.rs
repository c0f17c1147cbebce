//! `bert4rs index build|search`: two-tower retrieval. The corpus tower runs once at build
//! time (vectors on disk, memory-mapped at search); a search embeds only the queries and
//! scans the index exactly (cosine top-k).

use super::embed::encoder;
use super::TokenizeOpts;
use bert4rs::data::input::read_examples;
use bert4rs::error::{Error, Result};
use bert4rs::index::{BuildSpec, IndexMeta, IndexWriter, VectorIndex, FORMAT};
use bert4rs::tokenize::TextInput;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Embed a corpus (one text per line, .jsonl, .csv/.tsv) into an index directory.
    Build(BuildArgs),
    /// The corpus rows most similar to each query (exact cosine top-k).
    Search(SearchArgs),
}

#[derive(clap::Args, Debug)]
struct BuildArgs {
    /// HF model directory of the corpus tower (a sentence-transformers layout sets pooling).
    #[arg(long, value_parser = super::model_dir)]
    model: PathBuf,
    /// The corpus: the inputs `embed` reads.
    #[arg(long)]
    input: PathBuf,
    /// The index directory to write (must not hold an index yet).
    #[arg(long)]
    output: PathBuf,
    /// Pooling, as `embed --pooling` (default: the model's config, else mean).
    #[arg(long)]
    pooling: Option<String>,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32, value_parser = super::at_least_one())]
    batch_size: usize,
    /// Texts per durable chunk: a stopped build resumes after its last complete chunk.
    #[arg(long, default_value_t = 4096, value_parser = super::at_least_one())]
    chunk_size: usize,
    /// Run the encoder on dynamically quantised int8 (weights per output channel, each
    /// token's activations at run time): about 1.3-1.6x faster on AVX2, embeddings within
    /// cosine 0.999 of f32 (0.99 with --int8-activations 7).
    #[arg(long)]
    int8: bool,
    #[command(flatten)]
    int8_activations: super::Int8Activations,
    #[command(flatten)]
    opts: TokenizeOpts,
}

#[derive(clap::Args, Debug)]
struct SearchArgs {
    /// The index directory (`index build --output`).
    #[arg(long)]
    index: PathBuf,
    /// A query text (repeat for several).
    #[arg(long)]
    query: Vec<String>,
    /// A file of queries (the inputs `embed` reads), after any --query.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Hits per query.
    #[arg(long, default_value_t = 10, value_parser = super::at_least_one())]
    top_k: usize,
    /// The query tower (default: the model the index was built with).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Queries per forward pass.
    #[arg(long, default_value_t = 32, value_parser = super::at_least_one())]
    batch_size: usize,
    /// Run the encoder on dynamically quantised int8 (weights per output channel, each
    /// token's activations at run time): about 1.3-1.6x faster on AVX2, embeddings within
    /// cosine 0.999 of f32 (0.99 with --int8-activations 7).
    #[arg(long)]
    int8: bool,
    #[command(flatten)]
    int8_activations: super::Int8Activations,
    /// Write the JSON lines here (atomically) instead of stdout.
    #[arg(long)]
    output: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<()> {
    match a.command {
        Command::Build(b) => build(b),
        Command::Search(s) => search(s),
    }
}

fn input_json(t: &TextInput) -> Value {
    match &t.text_pair {
        Some(p) => json!({"text": t.text, "text_pair": p}),
        None => json!({"text": t.text}),
    }
}

fn absolute(p: &Path) -> Result<String> {
    let abs = std::fs::canonicalize(p).map_err(|e| Error::io(p, e))?;
    Ok(abs.display().to_string())
}

fn build(a: BuildArgs) -> Result<()> {
    let enc = encoder(
        &a.model,
        a.pooling.as_deref(),
        true,
        a.batch_size,
        &a.opts,
        (
            a.int8_activations.with(a.int8),
            bert4rs::models::hub::WeightStorage::F32,
        ),
    )?;
    let inputs = read_examples(&a.input)?;
    if inputs.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: no texts to index",
            a.input.display()
        )));
    }
    // The dimension comes from the model as it pools (concatenating poolings widen it).
    let dim = enc.embed_inputs(&inputs[..1], |_| {})?[0].len();
    let source_bytes = std::fs::metadata(&a.input)
        .map_err(|e| Error::io(&a.input, e))?
        .len();
    let spec = BuildSpec {
        meta: IndexMeta {
            format: FORMAT.into(),
            dim,
            count: inputs.len(),
            model: absolute(&a.model)?,
            pooling: enc.pooling().to_string(),
            max_length: enc.max_length,
            source: absolute(&a.input)?,
        },
        source_bytes,
    };
    let mut writer = IndexWriter::create_or_resume(&a.output, spec)?;
    let start = writer.done();
    if start > 0 {
        log::info!(
            "{}: resuming after {start} of {} rows",
            a.output.display(),
            inputs.len()
        );
    }
    let bar = super::progress_bar(inputs.len() - start, 256);
    for chunk in inputs[start..].chunks(a.chunk_size) {
        let vecs = enc.embed_inputs(chunk, |n| bar.inc(n as u64))?;
        let texts: Vec<Value> = chunk.iter().map(input_json).collect();
        writer.append(&vecs, &texts)?;
    }
    bar.finish_and_clear();
    let meta = writer.finish()?;
    eprintln!(
        "{}: {} vectors of dim {} ({} pooling)",
        a.output.display(),
        meta.count,
        meta.dim,
        meta.pooling
    );
    Ok(())
}

fn search(a: SearchArgs) -> Result<()> {
    let index = VectorIndex::open(&a.index)?;
    let mut queries: Vec<TextInput> = a
        .query
        .iter()
        .map(|q| TextInput::single(q.clone()))
        .collect();
    if let Some(path) = &a.input {
        queries.extend(read_examples(path)?);
    }
    if queries.is_empty() {
        return Err(Error::Invalid(
            "index search: give --query TEXT or --input FILE".into(),
        ));
    }
    let model = a
        .model
        .clone()
        .unwrap_or_else(|| PathBuf::from(&index.meta.model));
    let opts = TokenizeOpts {
        max_length: index.meta.max_length,
        truncation: None,
        nfkc: false,
    };
    let enc = encoder(
        &model,
        Some(&index.meta.pooling),
        true,
        a.batch_size,
        &opts,
        (
            a.int8_activations.with(a.int8),
            bert4rs::models::hub::WeightStorage::F32,
        ),
    )?;
    let vecs = enc.embed_inputs(&queries, |_| {})?;
    let mut out = Vec::new();
    for (q, v) in queries.iter().zip(&vecs) {
        let hits = index
            .search(v, a.top_k)?
            .into_iter()
            .map(|h| {
                let mut row = json!({"index": h.index, "score": h.score});
                if let (Value::Object(r), Value::Object(i)) = (&mut row, index.input(h.index)?) {
                    r.extend(i);
                }
                Ok(row)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut line = input_json(q);
        line["hits"] = Value::Array(hits);
        writeln!(out, "{line}").map_err(|e| Error::Invalid(e.to_string()))?;
    }
    match &a.output {
        Some(path) => bert4rs::util::write_atomic(path, &out),
        None => std::io::stdout()
            .write_all(&out)
            .map_err(|e| Error::Invalid(format!("stdout: {e}"))),
    }
}
