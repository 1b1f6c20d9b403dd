"""Golden VADER scores from Python vaderSentiment 3.3.2 (run with Python >= 3.12: 3.12 changed
float sum(), and a few near-zero texts flip).

    PY=$(bash scripts/reference-venv.sh)
    $PY tests/reference/vader_reference.py tests/fixtures/sentiment/texts.txt > tests/fixtures/sentiment/vader_golden.tsv
    $PY tests/reference/vader_reference.py --overlay operators/data/crypto_lexicon.tsv \
        tests/fixtures/sentiment/texts.txt tests/fixtures/sentiment/crypto_labelled.tsv \
        tests/fixtures/sentiment/feed_dev.tsv > tests/fixtures/sentiment/vader_crypto_golden.tsv

Input: one text per line (\\n inside a text written as the two characters backslash-n); in a
labelled file (`label<TAB>text`) the text is the last field; `#` lines are skipped there.
--overlay FILE: `word<TAB>valence` lines (`#` comments) written into the package's lexicon
dictionary before scoring, which is how the package itself is extended.
Output: text, neg, neu, pos, compound, tab-separated, as the package prints them.
"""
import argparse
import sys
from pathlib import Path

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

sys.path.insert(0, str(Path(__file__).parent))
from textfiles import texts  # noqa: E402

assert sys.version_info >= (3, 12), "use Python >= 3.12"


def read_overlay(path):
    words = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                word, value = line.split()
                words[word.lower()] = float(value)
    return words


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--overlay")
    ap.add_argument("paths", nargs="+")
    args = ap.parse_args()
    sia = SentimentIntensityAnalyzer()
    if args.overlay:
        sia.lexicon.update(read_overlay(args.overlay))
    for path in args.paths:
        for text in texts(path):
            s = sia.polarity_scores(text.replace("\\n", "\n"))
            print(f"{text}\t{s['neg']}\t{s['neu']}\t{s['pos']}\t{s['compound']}")


if __name__ == "__main__":
    main()
