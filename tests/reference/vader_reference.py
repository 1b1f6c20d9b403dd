"""Golden VADER scores from Python vaderSentiment 3.3.2 (run with Python >= 3.12: 3.12 changed
float sum(), and a few near-zero texts flip).

    PY=$(bash scripts/reference-venv.sh)
    $PY tests/reference/vader_reference.py tests/fixtures/sentiment/texts.txt > tests/fixtures/sentiment/vader_golden.tsv

Input: one text per line (\\n inside a text written as the two characters backslash-n).
Output: text, neg, neu, pos, compound, tab-separated, as the package prints them.
"""
import sys

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

assert sys.version_info >= (3, 12), "use Python >= 3.12"


def main(path):
    sia = SentimentIntensityAnalyzer()
    with open(path, encoding="utf-8") as f:
        for line in f:
            text = line.rstrip("\n")
            if not text:
                continue
            s = sia.polarity_scores(text.replace("\\n", "\n"))
            print(f"{text}\t{s['neg']}\t{s['neu']}\t{s['pos']}\t{s['compound']}")


if __name__ == "__main__":
    main(sys.argv[1])
