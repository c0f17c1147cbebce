//! Dynamic masking for masked-LM pre-training, as HF's data collators do it: each call draws
//! a fresh mask (callers seed it per batch and per pass, so every epoch sees new masks and a
//! resumed run sees the same ones). Token masking (`DataCollatorForLanguageModeling`): every
//! ordinary token is chosen with probability `mlm_probability`; whole-word masking
//! (`DataCollatorForWholeWordMask`): words are taken in a shuffled order until
//! `round(len · mlm_probability)` tokens are covered. Chosen tokens become `[MASK]` 80 % of the
//! time, a random ordinary token 10 %, and stay 10 %. Special and padding tokens are never
//! chosen, and — unlike HF, which draws random replacements from the whole vocabulary — a
//! random replacement is never a special token either.

use crate::rng::Rng;

/// The labels value of a position that is not scored (HF's `-100`).
pub const IGNORE: i64 = -100;

/// How tokens are chosen and replaced.
#[derive(Clone, Debug, PartialEq)]
pub struct MaskingConfig {
    /// Fraction of tokens to predict (BERT: 0.15).
    pub mlm_probability: f64,
    /// Of the chosen tokens: replaced by `[MASK]` (0.8).
    pub mask_replace: f64,
    /// Of the chosen tokens: replaced by a random token (0.1); the rest stay as they are.
    pub random_replace: f64,
    /// Mask whole words (all sub-tokens of a word together) instead of single tokens.
    pub whole_word: bool,
}

impl Default for MaskingConfig {
    fn default() -> Self {
        MaskingConfig {
            mlm_probability: 0.15,
            mask_replace: 0.8,
            random_replace: 0.1,
            whole_word: false,
        }
    }
}

impl MaskingConfig {
    /// Checks the fractions.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(self.mlm_probability > 0.0 && self.mlm_probability < 1.0) {
            return Err(format!(
                "mlm_probability must be in (0, 1), got {}",
                self.mlm_probability
            ));
        }
        let (m, r) = (self.mask_replace, self.random_replace);
        if m < 0.0 || r < 0.0 || m + r > 1.0 {
            return Err(format!(
                "mask_replace ({m}) and random_replace ({r}) must be ≥ 0 and sum to at most 1"
            ));
        }
        Ok(())
    }
}

/// The vocabulary facts masking needs.
#[derive(Clone, Debug)]
pub struct Vocab {
    /// Id of `[MASK]`.
    pub mask_id: u32,
    /// `special[id]`: never chosen, never a random replacement.
    pub special: Vec<bool>,
    /// The ids random replacement draws from (every non-special id).
    pub ordinary: Vec<u32>,
}

impl Vocab {
    /// `vocab_size` ids of which `specials` are special.
    pub fn new(vocab_size: usize, mask_id: u32, specials: &[u32]) -> Self {
        let mut special = vec![false; vocab_size];
        for &s in specials {
            if let Some(x) = special.get_mut(s as usize) {
                *x = true;
            }
        }
        let ordinary = (0..vocab_size as u32)
            .filter(|&i| !special[i as usize])
            .collect();
        Vocab {
            mask_id,
            special,
            ordinary,
        }
    }

    fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(true)
    }
}

/// A masked sequence: model input and labels (the original id where a token is to be
/// predicted, [`IGNORE`] elsewhere).
#[derive(Clone, Debug, PartialEq)]
pub struct Masked {
    /// Input ids after replacement.
    pub input_ids: Vec<u32>,
    /// Targets.
    pub labels: Vec<i64>,
}

/// Masks one sequence. `word_start[i]` is true where token `i` begins a word (only read
/// for whole-word masking; a continuation token joins the word before it).
pub fn mask_sequence(
    ids: &[u32],
    word_start: &[bool],
    vocab: &Vocab,
    cfg: &MaskingConfig,
    rng: &mut Rng,
) -> Masked {
    let chosen = match cfg.whole_word {
        false => ids
            .iter()
            .map(|&id| !vocab.is_special(id) && rng.uniform() < cfg.mlm_probability)
            .collect(),
        true => choose_words(ids, word_start, vocab, cfg.mlm_probability, rng),
    };
    let mut input_ids = ids.to_vec();
    let mut labels = vec![IGNORE; ids.len()];
    for (i, &c) in chosen.iter().enumerate() {
        if !c {
            continue;
        }
        labels[i] = ids[i] as i64;
        let u = rng.uniform();
        if u < cfg.mask_replace {
            input_ids[i] = vocab.mask_id;
        } else if u < cfg.mask_replace + cfg.random_replace && !vocab.ordinary.is_empty() {
            input_ids[i] = vocab.ordinary[rng.below(vocab.ordinary.len())];
        }
    }
    Masked { input_ids, labels }
}

/// Whole words in a shuffled order until `max(1, round(n · p))` tokens are covered (a word
/// that would overshoot is skipped), as HF's whole-word collator.
fn choose_words(
    ids: &[u32],
    word_start: &[bool],
    vocab: &Vocab,
    p: f64,
    rng: &mut Rng,
) -> Vec<bool> {
    let mut words: Vec<Vec<usize>> = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        if vocab.is_special(id) {
            continue;
        }
        let starts = word_start.get(i).copied().unwrap_or(true);
        match words.last_mut() {
            Some(w) if !starts && *w.last().unwrap_or(&usize::MAX) + 1 == i => w.push(i),
            _ => words.push(vec![i]),
        }
    }
    let n: usize = words.iter().map(Vec::len).sum();
    let mut chosen = vec![false; ids.len()];
    if n == 0 {
        return chosen;
    }
    let target = ((n as f64 * p).round() as usize).max(1);
    rng.shuffle(&mut words);
    let mut covered = 0;
    for w in words {
        if covered >= target {
            break;
        }
        if covered + w.len() > target {
            continue;
        }
        covered += w.len();
        for i in w {
            chosen[i] = true;
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Vocab {
        Vocab::new(1000, 4, &[0, 1, 2, 3, 4])
    }

    #[test]
    fn a_million_tokens_are_masked_in_the_documented_proportions() {
        let v = vocab();
        let cfg = MaskingConfig::default();
        let mut rng = Rng::new(7);
        let (mut total, mut chosen, mut masked, mut random, mut kept) = (0, 0, 0, 0, 0);
        let mut specials_touched = 0;
        for seq in 0..4000u32 {
            // [CLS] 250 tokens [SEP] [PAD] [PAD]
            let mut ids = vec![2u32];
            ids.extend((0..250).map(|i| 5 + (seq * 31 + i * 7) % 995));
            ids.extend([3, 0, 0]);
            let starts = vec![true; ids.len()];
            let m = mask_sequence(&ids, &starts, &v, &cfg, &mut rng);
            for (i, (&orig, (&inp, &lab))) in ids
                .iter()
                .zip(m.input_ids.iter().zip(&m.labels))
                .enumerate()
            {
                if v.is_special(orig) {
                    specials_touched += usize::from(lab != IGNORE || inp != orig);
                    continue;
                }
                total += 1;
                if lab == IGNORE {
                    assert_eq!(inp, orig, "position {i}: an unchosen token changed");
                    continue;
                }
                assert_eq!(lab, orig as i64);
                chosen += 1;
                if inp == 4 {
                    masked += 1;
                } else if inp == orig {
                    kept += 1;
                } else {
                    assert!(!v.is_special(inp), "random replacement {inp} is special");
                    random += 1;
                }
            }
        }
        assert_eq!(total, 1_000_000);
        assert_eq!(specials_touched, 0, "a special or padding token was masked");
        let rate = chosen as f64 / total as f64;
        assert!((rate - 0.15).abs() < 0.003, "chosen {rate}");
        let frac = |x: usize| x as f64 / chosen as f64;
        // A random replacement can draw the original token (1 in 995): counted as kept.
        assert!((frac(masked) - 0.8).abs() < 0.01, "[MASK] {}", frac(masked));
        assert!((frac(random) - 0.1).abs() < 0.01, "random {}", frac(random));
        assert!((frac(kept) - 0.1).abs() < 0.01, "kept {}", frac(kept));
    }

    #[test]
    fn whole_word_masking_takes_all_sub_tokens_of_a_word_or_none() {
        let v = vocab();
        let cfg = MaskingConfig {
            whole_word: true,
            ..MaskingConfig::default()
        };
        let mut rng = Rng::new(3);
        let mut chosen_total = 0;
        let mut ordinary_total = 0;
        for _ in 0..2000 {
            // [CLS] then words of 1-3 tokens, [SEP]
            let mut ids = vec![2u32];
            let mut starts = vec![true];
            let mut word_of = vec![usize::MAX];
            for w in 0..60 {
                for j in 0..(1 + w % 3) {
                    ids.push(5 + rng.below(990) as u32);
                    starts.push(j == 0);
                    word_of.push(w);
                }
            }
            ids.push(3);
            starts.push(true);
            word_of.push(usize::MAX);
            let n = ids.len() - 2;
            let m = mask_sequence(&ids, &starts, &v, &cfg, &mut rng);
            let chosen: Vec<bool> = m.labels.iter().map(|&l| l != IGNORE).collect();
            assert!(!chosen[0] && !chosen[ids.len() - 1]);
            for w in 0..60 {
                let parts: Vec<bool> = (0..ids.len())
                    .filter(|&i| word_of[i] == w)
                    .map(|i| chosen[i])
                    .collect();
                assert!(parts.iter().all(|&c| c == parts[0]), "word {w} split");
            }
            let c = chosen.iter().filter(|&&c| c).count();
            assert!(c <= ((n as f64 * 0.15).round() as usize), "overshoot: {c}");
            chosen_total += c;
            ordinary_total += n;
        }
        let rate = chosen_total as f64 / ordinary_total as f64;
        assert!((rate - 0.15).abs() < 0.01, "whole-word rate {rate}");
    }

    #[test]
    fn the_same_seed_gives_the_same_mask_and_another_seed_another() {
        let v = vocab();
        let ids: Vec<u32> = (5..205).collect();
        let starts = vec![true; ids.len()];
        let cfg = MaskingConfig::default();
        let a = mask_sequence(&ids, &starts, &v, &cfg, &mut Rng::new(1));
        let b = mask_sequence(&ids, &starts, &v, &cfg, &mut Rng::new(1));
        let c = mask_sequence(&ids, &starts, &v, &cfg, &mut Rng::new(2));
        assert_eq!(a, b);
        assert_ne!(a.labels, c.labels);
    }
}
