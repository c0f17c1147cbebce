//! Beam search, step for step as HF's `_beam_search` (transformers 4.57): per prompt, the top
//! `2·num_beams` continuations of all beams by accumulated log-probability; those ending in
//! end-of-text (or reaching the length limit) among the first `num_beams` become finished
//! hypotheses scored `sum_logprobs / generated_len^length_penalty`; the best `num_beams`
//! unfinished ones run on. Scores are f32 with HF's `-1e9` masking so ties resolve alike.

use super::{left_pad, processors, Decoder, EarlyStopping, Generated, GenerationConfig, Session};
use crate::error::Result;

const NEG: f32 = -1.0e9;

/// A candidate or finished sequence: generated tokens (prompt excluded) and its score.
#[derive(Clone, Debug)]
struct Hyp {
    tokens: Vec<u32>,
    score: f32,
    finished: bool,
}

/// The search state of one prompt.
struct Search {
    running: Vec<Hyp>,
    finished: Vec<Hyp>,
    improvable: bool,
}

pub(super) fn beam_search<M: Decoder>(
    model: &M,
    prompts: &[Vec<u32>],
    cfg: &GenerationConfig,
) -> Result<Vec<Generated>> {
    let nb = cfg.num_beams;
    let keep = 2 * nb;
    let rows: Vec<Vec<u32>> = prompts
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.clone(), nb))
        .collect();
    let (ids, mask) = left_pad(&rows, cfg.pad());
    let mut session = Session::new(model, rows.len(), cfg.use_cache)?;
    let mut logits = session.feed(&ids, &mask)?;
    let empty = |score: f32| Hyp {
        tokens: Vec::new(),
        score,
        finished: false,
    };
    let mut searches: Vec<Search> = prompts
        .iter()
        .map(|_| Search {
            // Only the first beam is live at the start, so the beams do not all pick the same tokens.
            running: (0..nb)
                .map(|j| empty(if j == 0 { 0.0 } else { NEG }))
                .collect(),
            finished: (0..nb).map(|_| empty(NEG)).collect(),
            improvable: true,
        })
        .collect();
    let max_new = cfg.max_new_tokens;
    for step in 0..max_new {
        let generated = step + 1;
        let at_limit = generated >= max_new;
        let mut order = Vec::with_capacity(rows.len());
        let mut all_hit = true;
        for (b, search) in searches.iter_mut().enumerate() {
            let mut cands: Vec<(f32, (usize, u32))> = Vec::with_capacity(nb * logits[0].len());
            for j in 0..nb {
                let row = b * nb + j;
                let mut lp = processors::log_softmax(&logits[row]);
                let mut seq = prompts[b].clone();
                seq.extend_from_slice(&search.running[j].tokens);
                cfg.process(&seq, &mut lp);
                let base = search.running[j].score;
                cands.extend(
                    lp.iter()
                        .enumerate()
                        .map(|(v, &s)| (s + base, (j, v as u32))),
                );
            }
            let top = top_by_score(cands, keep);
            let hits: Vec<bool> = top
                .iter()
                .map(|&(_, (_, t))| at_limit || cfg.eos_token_id == Some(t))
                .collect();
            all_hit &= hits.iter().all(|h| *h);
            let extend = |&(_, (j, t)): &(f32, (usize, u32)), s2: f32| {
                let mut tokens = search.running[j].tokens.clone();
                tokens.push(t);
                (
                    Hyp {
                        tokens,
                        score: s2,
                        finished: false,
                    },
                    j,
                )
            };
            // e. the best `num_beams` continuations that did not stop run on.
            let running: Vec<(f32, usize)> = top
                .iter()
                .zip(&hits)
                .enumerate()
                .map(|(i, (c, &h))| (c.0 + if h { NEG } else { 0.0 }, i))
                .collect();
            let next: Vec<(Hyp, usize)> = top_by_score(running, nb)
                .into_iter()
                .map(|(s, i)| extend(&top[i], s))
                .collect();
            // f. finished candidates among the first `num_beams` enter the finished set.
            let penalty = (generated as f64).powf(cfg.length_penalty as f64) as f32;
            let full = search.finished.iter().all(|h| h.finished)
                && cfg.early_stopping == EarlyStopping::Finished;
            let mut merged: Vec<Hyp> = search.finished.clone();
            for (i, (c, &h)) in top.iter().zip(&hits).enumerate() {
                let just_finished = h && i < nb;
                let mut s = c.0 / penalty;
                if full {
                    s += NEG;
                }
                if !search.improvable {
                    s += NEG;
                }
                if !just_finished {
                    s += NEG;
                }
                let (mut hyp, _) = extend(c, s);
                hyp.finished = just_finished;
                merged.push(hyp);
            }
            let scored: Vec<(f32, usize)> = merged
                .iter()
                .enumerate()
                .map(|(i, h)| (h.score, i))
                .collect();
            search.finished = top_by_score(scored, nb)
                .into_iter()
                .map(|(_, i)| merged[i].clone())
                .collect();
            order.extend(next.iter().map(|(_, j)| b * nb + j));
            search.running = next.into_iter().map(|(h, _)| h).collect();
            // g. can a running beam still beat the worst finished one?
            let best_len = if cfg.early_stopping == EarlyStopping::Never && cfg.length_penalty > 0.0
            {
                max_new
            } else {
                generated
            };
            let best_possible =
                search.running[0].score / (best_len as f64).powf(cfg.length_penalty as f64) as f32;
            let worst = search
                .finished
                .iter()
                .map(|h| h.score)
                .fold(f32::INFINITY, f32::min);
            let beatable = search
                .finished
                .iter()
                .any(|h| best_possible > if h.finished { worst } else { NEG });
            search.improvable &= beatable;
        }
        let improvable = searches.iter().any(|s| s.improvable);
        let all_finished = searches
            .iter()
            .all(|s| s.finished.iter().all(|h| h.finished));
        let open = !(all_finished && cfg.early_stopping == EarlyStopping::Finished);
        if !(improvable && open && !all_hit) {
            break;
        }
        session.reorder(&order)?;
        let step_ids: Vec<Vec<u32>> = searches
            .iter()
            .flat_map(|s| {
                s.running
                    .iter()
                    .map(|h| h.tokens[h.tokens.len() - 1..].to_vec())
            })
            .collect();
        logits = session.feed(&step_ids, &vec![vec![1.0]; rows.len()])?;
    }
    Ok(searches
        .into_iter()
        .zip(prompts)
        .flat_map(|(s, p)| {
            s.finished
                .into_iter()
                .take(cfg.num_return_sequences)
                .map(move |h| {
                    let mut ids = p.clone();
                    ids.extend_from_slice(&h.tokens);
                    Generated {
                        ids,
                        prompt_len: p.len(),
                        score: Some(h.score),
                    }
                })
        })
        .collect())
}

/// The `k` best `(score, payload...)` entries, best first; among equal scores the earlier
/// entry first (as `torch.topk` returns them on CPU in practice).
fn top_by_score<T: Copy>(items: Vec<(f32, T)>, k: usize) -> Vec<(f32, T)> {
    let k = k.min(items.len());
    if k == 0 {
        return Vec::new();
    }
    let mut idx: Vec<usize> = (0..items.len()).collect();
    let cmp = |a: &usize, b: &usize| items[*b].0.total_cmp(&items[*a].0).then(a.cmp(b));
    if k < idx.len() {
        idx.select_nth_unstable_by(k - 1, cmp);
        idx.truncate(k);
    }
    idx.sort_by(cmp);
    idx.iter().map(|&i| items[i]).collect()
}
