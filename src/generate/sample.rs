//! Greedy decoding and sampling (HF `_sample`): one token per row per step; a finished row
//! gets the pad token until every row is done.

use super::{left_pad, processors, Decoder, Generated, GenerationConfig, Session, StepInfo};
use crate::error::Result;
use crate::rng::Rng;

pub(super) fn greedy_or_sample<M: Decoder>(
    model: &M,
    prompts: &[Vec<u32>],
    cfg: &GenerationConfig,
    on_step: &mut (dyn FnMut(&StepInfo) + Send),
) -> Result<Vec<Generated>> {
    // Sampling several sequences per prompt = the prompt repeated (HF expands the batch).
    let copies = if cfg.do_sample {
        cfg.num_return_sequences
    } else {
        1
    };
    let rows: Vec<Vec<u32>> = prompts
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.clone(), copies))
        .collect();
    let pad = cfg.pad();
    let (ids, mask) = left_pad(&rows, pad);
    let mut session = Session::new(model, rows.len(), cfg.use_cache)?;
    let mut hidden = session.feed_hidden(&ids, &mask)?;
    let mut seqs = rows.clone();
    let mut done = vec![false; rows.len()];
    let mut rng = Rng::new(cfg.seed);
    for step in 0..cfg.max_new_tokens {
        // Plain greedy: the argmax straight from the screened LM head (same token).
        let greedy = if cfg.plain_greedy() {
            model.greedy_tokens(&hidden)?
        } else {
            None
        };
        let mut logits = match greedy {
            Some(_) => Vec::new(),
            None => session.logits(&hidden)?,
        };
        let mut next = Vec::with_capacity(rows.len());
        for r in 0..rows.len() {
            if done[r] {
                next.push(pad);
                continue;
            }
            let (token, top) = match &greedy {
                Some(tokens) => (tokens[r], Vec::new()),
                None => {
                    let row_logits = &mut logits[r];
                    cfg.process(&seqs[r], row_logits);
                    let token = if cfg.do_sample {
                        draw(&processors::softmax(row_logits), &mut rng)
                    } else {
                        processors::argmax(row_logits) as u32
                    };
                    (
                        token,
                        processors::top_candidates(row_logits, cfg.report_top),
                    )
                }
            };
            on_step(&StepInfo {
                row: r,
                step,
                token,
                top,
            });
            seqs[r].push(token);
            done[r] = cfg.eos_token_id == Some(token);
            next.push(token);
        }
        if done.iter().all(|d| *d) || step + 1 == cfg.max_new_tokens {
            break;
        }
        let step_ids: Vec<Vec<u32>> = next.into_iter().map(|t| vec![t]).collect();
        let step_mask = vec![vec![1.0]; rows.len()];
        hidden = session.feed_hidden(&step_ids, &step_mask)?;
    }
    Ok(rows
        .iter()
        .zip(seqs)
        .map(|(p, ids)| Generated {
            prompt_len: p.len(),
            ids,
            score: None,
        })
        .collect())
}

/// Draws an index from a probability vector.
fn draw(probs: &[f32], rng: &mut Rng) -> u32 {
    let u = rng.uniform();
    let mut cum = 0f64;
    let mut last = 0;
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            cum += p as f64;
            last = i;
            if u < cum {
                return i as u32;
            }
        }
    }
    last as u32
}
