"""Unlabelled English text for masked-LM training: the sentences of the 1,500 Pang & Lee
full movie reviews (`polarity-en/reviews.csv`, IMDb reviews; the polarity *sentence* set
that prompts are evaluated on is a different source, Rotten Tomatoes snippets), one per line,
labels dropped.

    python3 bench/polarity_reviews_text.py REVIEWS.csv OUT.txt
"""

import csv
import sys

src, out = sys.argv[1], sys.argv[2]
n = 0
with open(src, encoding="utf-8-sig", newline="") as f, open(out, "w", encoding="utf-8") as w:
    for row in csv.reader(f):
        for line in row[1].splitlines():
            line = line.strip()
            if len(line.split()) >= 4:
                w.write(line + "\n")
                n += 1
print(f"{n} sentences -> {out}", file=sys.stderr)
