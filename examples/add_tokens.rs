//! Adds special tokens to a model's tokenizer, resizes its embeddings to match and saves
//! both as an HF directory:
//! `cargo run --example add_tokens -- MODEL_DIR OUT_DIR "[prompt_1]" "[prompt_2]"`.

use bert4rs::models::load_encoder;
use bert4rs::Tokenizer;
use candle_core::Device;
use std::path::PathBuf;

fn main() -> bert4rs::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: add_tokens MODEL_DIR OUT_DIR TOKEN...");
        std::process::exit(2);
    }
    let (src, out) = (PathBuf::from(&args[0]), PathBuf::from(&args[1]));
    let mut tokenizer = Tokenizer::from_dir(&src)?;
    let mut model = load_encoder(&src, &Device::Cpu, false)?;
    let tokens: Vec<&str> = args[2..].iter().map(String::as_str).collect();
    let added = tokenizer.add_special_tokens(&tokens)?;
    model.resize_token_embeddings(tokenizer.vocab_size())?;
    tokenizer.save(&out)?;
    model.save_pretrained(&out)?;
    println!(
        "added {added} tokens; vocab {} -> saved to {}",
        tokenizer.vocab_size(),
        out.display()
    );
    Ok(())
}
