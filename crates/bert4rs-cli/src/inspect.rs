//! `bert4rs inspect`: architecture summary and parameter counts.

use bert4rs::error::Result;
use bert4rs::models::load_encoder;
use candle_core::Device;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// HF model directory.
    #[arg(long, value_parser = super::model_dir)]
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

pub use bert4rs::util::human_count;

pub fn run(a: Args) -> Result<()> {
    if is_gpt2(&a.model) {
        return inspect_gpt2(&a.model);
    }
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
    if let Some(width) = loaded.model.int8_code_width() {
        let bits = width.bits();
        println!("precision: int8 linear layers ({bits}-bit activation codes), f32 elsewhere");
    }
    println!("parameters: total {} ({total})", human_count(total));
    println!("  embeddings {} ({emb})", human_count(emb));
    println!("  encoder    {} ({enc})", human_count(enc));
    println!("  pooler     {} ({other})", human_count(other));
    Ok(())
}

fn is_gpt2(dir: &std::path::Path) -> bool {
    std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v["model_type"] == "gpt2")
}

/// GPT-2: blocks, sizes, and parameter counts (the tied LM head counted once, as HF does).
fn inspect_gpt2(dir: &std::path::Path) -> Result<()> {
    let model = bert4rs::models::gpt2::Gpt2LMHeadModel::from_dir(dir, &Device::Cpu, false)?;
    let cfg = model.config();
    let (mut emb, mut blocks, mut other) = (0, 0, 0);
    for (name, t) in model.params().named_tensors() {
        let local = name.strip_prefix("transformer.").unwrap_or(&name);
        let n = t.elem_count();
        if local.starts_with("wte.") || local.starts_with("wpe.") {
            emb += n;
        } else if local.starts_with("h.") {
            blocks += n;
        } else {
            other += n;
        }
    }
    let total = emb + blocks + other;
    println!("model_type: gpt2");
    println!(
        "layers: {}  n_embd: {}  heads: {} (head dim {})  inner: {}  activation: {:?}",
        cfg.n_layer,
        cfg.n_embd,
        cfg.n_head,
        cfg.head_dim(),
        cfg.inner_dim(),
        cfg.activation_function
    );
    let sparse = cfg
        .sparse_attention_stride
        .map_or("dense".to_string(), |k| format!("sparse, stride {k}"));
    println!(
        "vocab: {}  n_positions: {}  attention: {sparse}  lm head: tied to wte",
        cfg.vocab_size, cfg.n_positions
    );
    println!("parameters: total {} ({total})", human_count(total));
    println!("  embeddings {} ({emb})", human_count(emb));
    println!("  blocks     {} ({blocks})", human_count(blocks));
    println!("  final norm {} ({other})", human_count(other));
    println!("  non-embedding {}", human_count(total - emb));
    Ok(())
}
