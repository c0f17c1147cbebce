//! `bert4rs inspect`: architecture summary and parameter counts.

use crate::error::Result;
use crate::models::load_encoder;
use candle_core::Device;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// HF model directory.
    #[arg(long)]
    model: PathBuf,
}

/// Prints a warning naming checkpoint tensors nothing used.
pub fn warn_unused(unused: &[String]) {
    if unused.is_empty() {
        return;
    }
    let shown: Vec<&str> = unused.iter().take(6).map(String::as_str).collect();
    let more = if unused.len() > 6 { ", ..." } else { "" };
    eprintln!(
        "warning: {} checkpoint tensors are not used by the encoder ({}{more}); \
         they belong to a task head",
        unused.len(),
        shown.join(", ")
    );
}

pub use crate::util::human_count;

pub fn run(a: Args) -> Result<()> {
    let loaded = load_encoder(&a.model, &Device::Cpu, false)?;
    warn_unused(&loaded.unused);
    let cfg = loaded.model.config();
    let mut emb = 0;
    let mut enc = 0;
    let mut other = 0;
    for (name, t) in loaded.params.named_tensors() {
        let n = t.elem_count();
        let local = name
            .strip_prefix(&format!("{}.", loaded.prefix))
            .unwrap_or(&name);
        if local.starts_with("embeddings.") {
            emb += n;
        } else if local.starts_with("encoder.") {
            enc += n;
        } else {
            other += n;
        }
    }
    let total = emb + enc + other;
    println!("model_type: {:?}", cfg.model_type);
    println!(
        "layers: {}  hidden: {}  heads: {} (head dim {})  intermediate: {}  activation: {:?}",
        cfg.num_hidden_layers,
        cfg.hidden_size,
        cfg.num_attention_heads,
        cfg.head_dim(),
        cfg.intermediate_size,
        cfg.hidden_act
    );
    println!(
        "vocab: {}  max positions: {}  token types: {}  pooler: {}",
        cfg.vocab_size,
        cfg.max_position_embeddings,
        cfg.type_vocab_size,
        if loaded.model.has_pooler() {
            "yes"
        } else {
            "no"
        }
    );
    println!("parameters: total {} ({total})", human_count(total));
    println!("  embeddings {} ({emb})", human_count(emb));
    println!("  encoder    {} ({enc})", human_count(enc));
    println!("  pooler     {} ({other})", human_count(other));
    Ok(())
}
