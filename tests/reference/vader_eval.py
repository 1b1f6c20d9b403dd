"""Accuracy and macro-F1 of Python vaderSentiment 3.3.2, with or without a lexicon overlay, on
labelled files (`positive|negative|neutral<TAB>text`), three classes by VADER's own convention
(compound >= 0.05 positive, <= -0.05 negative, else neutral). The same figures as
`cryptoflow sentiment-eval --labelled FILE` prints for our Rust scorer.

    PY=$(bash scripts/reference-venv.sh)
    $PY tests/reference/vader_eval.py --overlay operators/data/crypto_lexicon.tsv \
        tests/fixtures/sentiment/crypto_labelled.tsv tests/fixtures/sentiment/feed_dev.tsv

--part tune|held: score only the tuning part of a file or only its held-out slice (the data lines
numbered 5, 10, 15, ...; see feed_dev.tsv's header). --errors: list the misclassified texts.
"""
import argparse
import sys
from pathlib import Path

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

sys.path.insert(0, str(Path(__file__).parent))
from vader_reference import read_overlay  # noqa: E402

LABELS = ["negative", "neutral", "positive"]


def labelled(path, part):
    n = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            n += 1
            held = n % 5 == 0
            if (part == "tune" and held) or (part == "held" and not held):
                continue
            label, text = line.split("\t", 1)
            yield label, text


def polarity(compound):
    if compound >= 0.05:
        return "positive"
    if compound <= -0.05:
        return "negative"
    return "neutral"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--overlay")
    ap.add_argument("--part", choices=["all", "tune", "held"], default="all")
    ap.add_argument("--errors", action="store_true")
    ap.add_argument("paths", nargs="+")
    args = ap.parse_args()
    sia = SentimentIntensityAnalyzer()
    if args.overlay:
        sia.lexicon.update(read_overlay(args.overlay))
    for path in args.paths:
        confusion = {a: {b: 0 for b in LABELS} for a in LABELS}
        errors = []
        for label, text in labelled(path, args.part):
            compound = sia.polarity_scores(text.replace("\\n", "\n"))["compound"]
            predicted = polarity(compound)
            confusion[label][predicted] += 1
            if predicted != label:
                errors.append((label, predicted, compound, text))
        n = sum(sum(r.values()) for r in confusion.values())
        correct = sum(confusion[k][k] for k in LABELS)
        f1s = []
        for k in LABELS:
            tp = confusion[k][k]
            pred = sum(confusion[a][k] for a in LABELS)
            actual = sum(confusion[k].values())
            f1s.append(0.0 if tp == 0 else 2 * tp / (pred + actual))
        name = Path(path).name
        print(f"{name} part={args.part} texts={n} accuracy={correct / n:.4f} "
              f"macro_f1={sum(f1s) / 3:.4f}")
        if args.errors:
            for label, predicted, compound, text in errors:
                print(f"  {label[:3]}->{predicted[:3]} {compound:+.4f} {text}")


if __name__ == "__main__":
    main()
