//! A linear-chain conditional random field with pytorch-crf's semantics and parameter names
//! (`start_transitions`, `end_transitions`, `transitions[from, to]`, batch-first inputs):
//! the log-likelihood of gold tag sequences under a mask (reductions none / sum / mean /
//! token_mean), Viterbi decoding, n-best decoding, and optional transition constraints
//! (e.g. no `O → I-PER` under BIO) that apply at decode time.

use super::{Init, Params};
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor, D};
use serde::{Deserialize, Serialize};

/// How the per-sequence log-likelihoods are combined (pytorch-crf's `reduction`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reduction {
    /// One value per sequence `[batch]`.
    None,
    /// Their sum.
    Sum,
    /// Their mean over sequences.
    Mean,
    /// Their sum divided by the number of real tokens.
    TokenMean,
}

/// Which moves decoding may make: `start[j]` (a sequence may begin with tag `j`),
/// `transitions[i][j]` (tag `j` may follow tag `i`), `end[i]` (a sequence may end with `i`).
#[derive(Clone, Debug, PartialEq)]
pub struct Constraints {
    /// Allowed first tags.
    pub start: Vec<bool>,
    /// Allowed moves `[from][to]`.
    pub transitions: Vec<Vec<bool>>,
    /// Allowed last tags.
    pub end: Vec<bool>,
}

impl Constraints {
    /// Constraints from a rule `allowed(from, to)` over tag ids, where `from = None` is the
    /// start of a sequence and `to = None` its end.
    pub fn from_rule(
        num_tags: usize,
        allowed: impl Fn(Option<usize>, Option<usize>) -> bool,
    ) -> Self {
        Constraints {
            start: (0..num_tags).map(|j| allowed(None, Some(j))).collect(),
            transitions: (0..num_tags)
                .map(|i| (0..num_tags).map(|j| allowed(Some(i), Some(j))).collect())
                .collect(),
            end: (0..num_tags).map(|i| allowed(Some(i), None)).collect(),
        }
    }
}

/// One decoded tag sequence and its score.
pub type ScoredPath = (Vec<usize>, f32);

/// A linear-chain CRF over `num_tags` tags.
pub struct Crf {
    num_tags: usize,
    start: Tensor,
    end: Tensor,
    transitions: Tensor,
    constraints: Option<Constraints>,
}

/// The scores decoding reads, on the host.
struct HostScores {
    start: Vec<f32>,
    end: Vec<f32>,
    /// `[from * k + to]`.
    trans: Vec<f32>,
}

impl Crf {
    /// Loads `start_transitions`, `end_transitions`, `transitions` under `p`, initialising
    /// missing ones as pytorch-crf does: Uniform(−0.1, 0.1).
    pub fn load(p: &Params, num_tags: usize) -> Result<Self> {
        if num_tags == 0 {
            return Err(Error::Invalid(format!(
                "{}: a CRF needs tags",
                p.full_name("")
            )));
        }
        let init = Init::Uniform(0.1);
        Ok(Crf {
            num_tags,
            start: p.get_or_init(num_tags, "start_transitions", init)?,
            end: p.get_or_init(num_tags, "end_transitions", init)?,
            transitions: p.get_or_init((num_tags, num_tags), "transitions", init)?,
            constraints: None,
        })
    }

    /// Decoding keeps to `c` from now on (training is not affected, as in the usual
    /// constrained-CRF recipes: the transitions still learn from data).
    pub fn with_constraints(mut self, c: Constraints) -> Result<Self> {
        let k = self.num_tags;
        if c.start.len() != k
            || c.end.len() != k
            || c.transitions.iter().any(|r| r.len() != k)
            || c.transitions.len() != k
        {
            return Err(Error::Invalid(format!(
                "CRF constraints must be over {k} tags"
            )));
        }
        self.constraints = Some(c);
        Ok(self)
    }

    /// Number of tags.
    pub fn num_tags(&self) -> usize {
        self.num_tags
    }

    /// Log-likelihood of `tags [batch, seq]` given `emissions [batch, seq, tags]` under
    /// `mask [batch, seq]` (1 = token; each row a non-empty prefix of ones). Tags at masked
    /// positions are ignored (any value, e.g. −100).
    pub fn log_likelihood(
        &self,
        emissions: &Tensor,
        tags: &[Vec<i64>],
        mask: &Tensor,
        reduction: Reduction,
    ) -> Result<Tensor> {
        let lengths = self.check(emissions, mask)?;
        let numerator = self.gold_score(emissions, tags, &lengths)?;
        let denominator = self.log_partition(emissions, mask)?;
        let llh = (numerator - denominator)?;
        Ok(match reduction {
            Reduction::None => llh,
            Reduction::Sum => llh.sum_all()?,
            Reduction::Mean => llh.mean_all()?,
            Reduction::TokenMean => {
                let tokens: usize = lengths.iter().sum();
                (llh.sum_all()? / tokens as f64)?
            }
        })
    }

    /// Lengths of the rows of `mask`, after checking shapes and that each row is a
    /// non-empty prefix of ones.
    fn check(&self, emissions: &Tensor, mask: &Tensor) -> Result<Vec<usize>> {
        let (b, t, k) = emissions.dims3()?;
        if k != self.num_tags || mask.dims() != [b, t] {
            return Err(Error::Invalid(format!(
                "CRF emissions {:?} with mask {:?}: expected [batch, seq, {}] and [batch, seq]",
                emissions.dims(),
                mask.dims(),
                self.num_tags
            )));
        }
        let rows = mask.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        rows.iter()
            .enumerate()
            .map(|(i, m)| {
                let len = m.iter().take_while(|&&v| v > 0.5).count();
                match len == 0 || m[len..].iter().any(|&v| v > 0.5) {
                    true => Err(Error::Invalid(format!(
                        "CRF mask row {i} must be ones then zeros, starting with a one"
                    ))),
                    false => Ok(len),
                }
            })
            .collect()
    }

    /// `start[y0] + Σ_t emissions[t, y_t] + Σ_{t≥1} transitions[y_{t−1}, y_t] + end[y_last]`
    /// per sequence `[batch]`, differentiable in the emissions and the parameters.
    fn gold_score(
        &self,
        emissions: &Tensor,
        tags: &[Vec<i64>],
        lengths: &[usize],
    ) -> Result<Tensor> {
        let (b, t, k) = emissions.dims3()?;
        if tags.len() != b || tags.iter().any(|r| r.len() < t) {
            return Err(Error::Invalid(format!("CRF tags must be [{b}, {t}]")));
        }
        let dev = emissions.device();
        let mut emit_idx = Vec::with_capacity(b * t);
        let mut trans_idx = Vec::new();
        let (mut first, mut last) = (Vec::new(), Vec::new());
        let mut w_emit = vec![0f32; b * t];
        let mut w_trans = Vec::new();
        for (row, (tg, &len)) in tags.iter().zip(lengths).enumerate() {
            let tag = |i: usize| -> Result<u32> {
                let v = tg[i];
                match (0..k as i64).contains(&v) {
                    true => Ok(v as u32),
                    false => Err(Error::Invalid(format!(
                        "CRF tag {v} at row {row}, position {i} is not in 0..{k}"
                    ))),
                }
            };
            for i in 0..t {
                emit_idx.push(if i < len { tag(i)? } else { 0 });
            }
            w_emit[row * t..row * t + len].fill(1.0);
            for i in 1..t {
                let real = i < len;
                trans_idx.push(if real {
                    tag(i - 1)? * k as u32 + tag(i)?
                } else {
                    0
                });
                w_trans.push(if real { 1f32 } else { 0.0 });
            }
            first.push(tag(0)?);
            last.push(tag(len - 1)?);
        }
        let emit_idx = Tensor::from_vec(emit_idx, (b, t, 1), dev)?;
        let w_emit = Tensor::from_vec(w_emit, (b, t), dev)?;
        let emit = (emissions.contiguous()?.gather(&emit_idx, 2)?.squeeze(2)? * w_emit)?.sum(1)?;
        let start = self.start.index_select(&Tensor::new(first, dev)?, 0)?;
        let end = self.end.index_select(&Tensor::new(last, dev)?, 0)?;
        let mut score = ((emit + start)? + end)?;
        if t > 1 {
            let flat = self.transitions.reshape(k * k)?;
            let idx = Tensor::from_vec(trans_idx, b * (t - 1), dev)?;
            let w = Tensor::from_vec(w_trans, (b, t - 1), dev)?;
            let tr = (flat.index_select(&idx, 0)?.reshape((b, t - 1))? * w)?.sum(1)?;
            score = (score + tr)?;
        }
        Ok(score)
    }

    /// `log Σ_paths exp(score(path))` per sequence `[batch]` (the forward algorithm).
    pub fn log_partition(&self, emissions: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, t, k) = emissions.dims3()?;
        let keep = mask.to_dtype(DType::U8)?;
        let mut score = emissions
            .narrow(1, 0, 1)?
            .squeeze(1)?
            .broadcast_add(&self.start)?;
        let trans = self.transitions.unsqueeze(0)?;
        for i in 1..t {
            let emit = emissions.narrow(1, i, 1)?; // [b, 1, k]: broadcast over `from`
            let next = score
                .unsqueeze(2)?
                .broadcast_add(&trans)?
                .broadcast_add(&emit)?
                .log_sum_exp(1)?;
            let on = keep.narrow(1, i, 1)?.broadcast_as((b, k))?;
            score = on.where_cond(&next, &score)?;
        }
        Ok(score.broadcast_add(&self.end)?.log_sum_exp(D::Minus1)?)
    }

    /// The best tag sequence of each row (Viterbi), as long as the row's mask.
    pub fn decode(&self, emissions: &Tensor, mask: &Tensor) -> Result<Vec<Vec<usize>>> {
        Ok(self
            .decode_nbest(emissions, mask, 1)?
            .into_iter()
            .map(|mut best| best.swap_remove(0).0)
            .collect())
    }

    /// The `n` best tag sequences of each row with their scores, best first (fewer when a
    /// row has fewer allowed paths).
    pub fn decode_nbest(
        &self,
        emissions: &Tensor,
        mask: &Tensor,
        n: usize,
    ) -> Result<Vec<Vec<ScoredPath>>> {
        let lengths = self.check(emissions, mask)?;
        let host = self.host_scores()?;
        let (_, t, k) = emissions.dims3()?;
        let e = emissions
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        Ok(lengths
            .iter()
            .enumerate()
            .map(|(row, &len)| nbest_row(&host, &e[row * t * k..(row * t + len) * k], k, n.max(1)))
            .collect())
    }

    /// The parameters on the host, with disallowed moves at −∞.
    fn host_scores(&self) -> Result<HostScores> {
        let v = |x: &Tensor| -> Result<Vec<f32>> {
            Ok(x.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?)
        };
        let mut s = HostScores {
            start: v(&self.start)?,
            end: v(&self.end)?,
            trans: v(&self.transitions)?,
        };
        if let Some(c) = &self.constraints {
            let k = self.num_tags;
            let ban = |ok: bool, x: &mut f32| {
                if !ok {
                    *x = f32::NEG_INFINITY;
                }
            };
            for j in 0..k {
                ban(c.start[j], &mut s.start[j]);
                ban(c.end[j], &mut s.end[j]);
                for i in 0..k {
                    ban(c.transitions[i][j], &mut s.trans[i * k + j]);
                }
            }
        }
        Ok(s)
    }
}

/// One candidate path ending in some tag at some step: its score and where it came from.
#[derive(Clone, Copy)]
struct Cand {
    score: f32,
    /// (previous tag, rank in that tag's list).
    back: (usize, usize),
}

/// k-best Viterbi over one sequence (`emit [len, k]`): every tag keeps its `n` best
/// partial paths per step. Ties keep the lower previous tag first, as torch's `max` does.
fn nbest_row(s: &HostScores, emit: &[f32], k: usize, n: usize) -> Vec<ScoredPath> {
    let len = emit.len() / k;
    let mut lists: Vec<Vec<Vec<Cand>>> = Vec::with_capacity(len);
    lists.push(
        (0..k)
            .map(|j| {
                vec![Cand {
                    score: s.start[j] + emit[j],
                    back: (0, 0),
                }]
            })
            .collect(),
    );
    for t in 1..len {
        let prev = &lists[t - 1];
        let step: Vec<Vec<Cand>> = (0..k)
            .map(|j| {
                let mut c: Vec<Cand> = (0..k)
                    .flat_map(|i| {
                        prev[i].iter().enumerate().map(move |(r, p)| Cand {
                            score: p.score + s.trans[i * k + j] + emit[t * k + j],
                            back: (i, r),
                        })
                    })
                    .collect();
                top(&mut c, n);
                c
            })
            .collect();
        lists.push(step);
    }
    let mut ends: Vec<Cand> = (0..k)
        .flat_map(|j| {
            lists[len - 1][j]
                .iter()
                .enumerate()
                .map(move |(r, p)| Cand {
                    score: p.score + s.end[j],
                    back: (j, r),
                })
        })
        .collect();
    top(&mut ends, n);
    ends.into_iter()
        .filter(|c| c.score > f32::NEG_INFINITY)
        .map(|c| {
            let mut path = vec![0; len];
            let (mut tag, mut rank) = c.back;
            for t in (0..len).rev() {
                path[t] = tag;
                (tag, rank) = lists[t][tag][rank].back;
            }
            (path, c.score)
        })
        .collect()
}

/// Keeps the `n` highest scores, best first; a stable sort keeps earlier candidates
/// (lower previous tags) first on ties.
fn top(c: &mut Vec<Cand>, n: usize) {
    c.sort_by(|a, b| b.score.total_cmp(&a.score));
    c.truncate(n);
}
