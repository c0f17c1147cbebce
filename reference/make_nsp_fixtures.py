"""Golden data for masked-LM pre-training with a sentence-pair objective (NSP / SOP;
tests/mlm_pairs.rs), from transformers' BertForPreTraining on the committed random checkpoint
tests/fixtures/models/bert-b (which has the pooler and cls.seq_relationship.*).

Writes tests/fixtures/mlm/nsp.safetensors + nsp.json:
    eval: a padded batch of sentence pairs (token_type_ids 0 for [CLS] A [SEP], 1 for B [SEP])
          → prediction_logits [B, T, V] and seq_relationship_logits [B, 2]
    step: one training step, dropout 0: masked pair inputs, labels (-100 where not scored),
          next_sentence_label, the loss (masked-LM cross-entropy + next-sentence
          cross-entropy, as BertForPreTraining sums them), the gradient norm, and every
          parameter after one AdamW step
"""

import json
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file
from transformers import BertForPreTraining, BertTokenizerFast

# The same masking and well-conditioned AdamW step as the masked-LM fixture (reasons there).
from make_mlm_fixtures import OPTIMIZER_META, adamw_step, mask_inputs, t

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL = REPO_ROOT / "tests/fixtures/models/bert-b"
OUT = REPO_ROOT / "tests/fixtures/mlm"
PAIRS = [("the quick brown fox", "jumps over the lazy dog"),
         ("hello world", "我爱北京天安门"),
         ("today is a good day", "hello")]
NEXT = [0, 1, 0]
# (row, position, replacement) as in make_mlm_fixtures.py.
STEP_MASKS = [(0, 2, "[MASK]"), (0, 6, "dog"), (0, 8, None), (1, 1, "[MASK]"),
              (1, 5, "[MASK]"), (2, 3, "[MASK]")]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    tok = BertTokenizerFast.from_pretrained(str(MODEL))
    a, b = [p[0] for p in PAIRS], [p[1] for p in PAIRS]
    enc = tok(a, b, padding="longest", return_tensors="pt")
    model = BertForPreTraining.from_pretrained(str(MODEL), attn_implementation="eager").eval()
    with torch.no_grad():
        out = model(**enc)
    tensors = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
               "token_type_ids": enc["token_type_ids"],
               "prediction_logits": t(out.prediction_logits),
               "seq_relationship_logits": t(out.seq_relationship_logits)}

    step = BertForPreTraining.from_pretrained(
        str(MODEL), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        attn_implementation="eager")
    step.train()
    ids, labels = mask_inputs(tok, enc["input_ids"], STEP_MASKS)
    next_label = torch.tensor(NEXT)
    res = step(input_ids=ids, attention_mask=enc["attention_mask"],
               token_type_ids=enc["token_type_ids"], labels=labels,
               next_sentence_label=next_label)
    total_norm, updated, names = adamw_step(step, res.loss)
    tensors.update({"step.input_ids": ids, "step.labels": labels,
                    "step.next_sentence_label": next_label})
    tensors.update(updated)
    save_file(tensors, str(OUT / "nsp.safetensors"))
    meta = {
        "model_dir": "tests/fixtures/models/bert-b", "pairs": PAIRS,
        "step": {"masks": STEP_MASKS, "next_sentence_label": NEXT, "loss": res.loss.item(),
                 "total_norm": total_norm.item(), "parameters": names,
                 "optimizer": OPTIMIZER_META,
                 "dropout": "0 (hidden and attention), model.train()",
                 "loss_rule": "BertForPreTraining: masked-LM CE (ignore -100, mean over scored) "
                              "+ next-sentence CE (mean over rows)"},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }
    with open(OUT / "nsp.json", "w") as f:
        json.dump(meta, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {OUT}; step loss {res.loss.item():.6f}, parameters {len(names)}")


if __name__ == "__main__":
    main()
