//! `bert4rs train-tokenizer`: a WordPiece / BPE / unigram vocabulary trained on text files,
//! written as an HF tokenizer directory.

use bert4rs::data::input::read_examples;
use bert4rs::error::{Error, Result};
use bert4rs::tokenize::train::{train_tokenizer, TokenizerKind, TrainOptions};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Sub-word model: wordpiece (BERT; also writes vocab.txt), bpe or unigram.
    #[arg(long, default_value = "wordpiece")]
    kind: TokenizerKind,
    /// Vocabulary size, the five BERT special tokens included.
    #[arg(long, default_value_t = 30_000)]
    vocab_size: usize,
    /// Training texts (repeatable): .txt (one per line), .jsonl, .csv or .tsv with a `text`
    /// field (and `text_pair`), as every command reads them.
    #[arg(long, required = true, num_args = 1..)]
    input: Vec<PathBuf>,
    /// Output directory (tokenizer.json, tokenizer_config.json, special_tokens_map.json,
    /// vocab.txt for WordPiece).
    #[arg(long)]
    output: PathBuf,
    /// WordPiece / BPE: minimum count of a merged pair.
    #[arg(long, default_value_t = 2)]
    min_frequency: u64,
    /// WordPiece / BPE: keep only this many distinct characters (default: all).
    #[arg(long)]
    limit_alphabet: Option<usize>,
    /// Keep case (default: lower-case, as BERT's uncased and Chinese models do).
    #[arg(long)]
    cased: bool,
    /// Extra special tokens (repeatable), after [PAD] [UNK] [CLS] [SEP] [MASK].
    #[arg(long = "special-tokens", num_args = 1..)]
    special_tokens: Vec<String>,
    /// `model_max_length` recorded in tokenizer_config.json.
    #[arg(long, default_value_t = 512)]
    max_length: usize,
}

pub fn run(a: Args) -> Result<()> {
    let opts = TrainOptions {
        kind: a.kind,
        vocab_size: a.vocab_size,
        min_frequency: a.min_frequency,
        limit_alphabet: a.limit_alphabet,
        lowercase: !a.cased,
        extra_special_tokens: a.special_tokens.clone(),
        model_max_length: a.max_length,
    };
    opts.validate()?;
    let start = Instant::now();
    let mut texts = Vec::new();
    for path in &a.input {
        let path = bert4rs::assets::resolve_file(path)?;
        let before = texts.len();
        for ex in read_examples(&path)? {
            texts.push(ex.text);
            texts.extend(ex.text_pair);
        }
        if texts[before..].iter().all(|t| t.trim().is_empty()) {
            return Err(Error::Input {
                path,
                line: 1,
                msg: "no text in the file".into(),
            });
        }
    }
    let chars: usize = texts.iter().map(|t| t.chars().count()).sum();
    log::info!(
        "training a {} vocabulary of {} on {} texts ({chars} characters)",
        a.kind,
        a.vocab_size,
        texts.len()
    );
    let tok = train_tokenizer(&texts, &opts)?;
    tok.save(&a.output)?;
    let summary = serde_json::json!({
        "output": a.output,
        "kind": a.kind.to_string(),
        "vocab_size": tok.vocab_size(),
        "texts": texts.len(),
        "characters": chars,
        "seconds": start.elapsed().as_secs_f64(),
    });
    println!("{summary}");
    Ok(())
}
