"""Reads the text fixtures the reference scripts score: one text per line, or `label<TAB>text`
lines in a .tsv file (the text is the last field; `#` lines without a tab are comments).
A text's `\\n` (backslash-n) is kept as written; callers turn it into a newline."""


def texts(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            text = line.rstrip("\n")
            if not text or (text.startswith("#") and "\t" not in text):
                continue
            if path.endswith(".tsv"):
                text = text.split("\t")[-1]
            yield text
