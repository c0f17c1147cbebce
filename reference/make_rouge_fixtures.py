"""Golden ROUGE-L scores (tests/generation_metrics.rs) from Google's `rouge-score` package,
`RougeScorer(["rougeL"])` without stemming (HF `evaluate`'s default).

    python reference/make_rouge_fixtures.py > tests/fixtures/seq2seq/rouge.json
"""

import json

from rouge_score import rouge_scorer

PAIRS = [
    ("the cat sat on the mat", "The cat, on a mat!"),
    ("Re: [ILUG] Sun Solaris..", "sun solaris question"),
    ("Héllo Wörld 2002", "hello world 2002"),
    ("", "anything at all"),
    ("a b c d e f", "f e d c b a"),
    ("new release of spamassassin 2.40", "SpamAssassin 2.40 released"),
    ("same same same", "same"),
    ("中文 text 混合 mixed", "mixed text"),
    ("!!! ???", "..."),
]


def main():
    s = rouge_scorer.RougeScorer(["rougeL"])
    out = []
    for pred, ref in PAIRS:
        sc = s.score(ref, pred)["rougeL"]
        out.append({"prediction": pred, "reference": ref, "precision": sc.precision,
                    "recall": sc.recall, "fmeasure": sc.fmeasure})
    print(json.dumps(out, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
