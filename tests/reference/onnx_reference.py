"""Reference scores of an ONNX sentiment model directory (see operators/src/sentiment/onnx.rs)
computed with Python onnxruntime and the Hugging Face `tokenizers` package — the values the
Rust scorer must reproduce to 1e-6.

    python tests/reference/onnx_reference.py MODEL_DIR FILE...

FILE: one text per line, or `label<TAB>text` lines (.tsv, `#` lines skipped).
Output: text, neg, neu, pos, compound (repr precision), tab-separated.
"""
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

sys.path.insert(0, str(Path(__file__).parent))
from textfiles import texts  # noqa: E402

CLASSES = {"negative": 0, "bearish": 0, "neg": 0, "neutral": 1, "neu": 1,
           "positive": 2, "bullish": 2, "pos": 2}


class Model:
    def __init__(self, directory):
        d = Path(directory)
        self.cfg = json.loads((d / "cryptoflow-sentiment.json").read_text())
        self.tok = Tokenizer.from_file(str(d / "tokenizer.json"))
        self.tok.no_padding()
        self.tok.enable_truncation(self.cfg.get("max_length", 128))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(str(d / "model.onnx"), opts,
                                         providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.sess.get_inputs()]
        self.output = self.cfg.get("output") or self.sess.get_outputs()[0].name
        self.classes = [CLASSES[label.lower()] for label in self.cfg["labels"]]

    def embedding(self, text):
        """(mean-pooled, optionally normalized embedding, raw output) of one text."""
        enc = self.tok.encode(text)
        ids = np.array([enc.ids], dtype=np.int64)
        mask = np.array([enc.attention_mask], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feeds["token_type_ids"] = np.array([enc.type_ids], dtype=np.int64)
        out = self.sess.run([self.output], feeds)[0]
        if self.cfg["kind"] == "classifier":
            return None, out.reshape(-1).astype(np.float64)
        h = out[0].astype(np.float64)
        m = mask[0].astype(np.float64)
        e = (h * m[:, None]).sum(axis=0) / max(m.sum(), 1e-9)
        if self.cfg.get("normalize"):
            e = e / max(np.sqrt((e * e).sum()), 1e-12)
        return e, None

    def probabilities(self, text):
        e, logits = self.embedding(text)
        if logits is None:
            w = np.array(self.cfg["weights"], dtype=np.float64)
            b = np.array(self.cfg["bias"], dtype=np.float64)
            logits = w @ e + b
        z = np.exp(logits - logits.max())
        return z / z.sum()

    def scores(self, text):
        s = [0.0, 0.0, 0.0]
        for c, p in zip(self.classes, self.probabilities(text)):
            s[c] += float(p)
        return s[0], s[1], s[2], s[2] - s[0]


def main():
    model = Model(sys.argv[1])
    for path in sys.argv[2:]:
        for shown in texts(path):
            neg, neu, pos, compound = model.scores(shown.replace("\\n", "\n"))
            print(f"{shown}\t{neg!r}\t{neu!r}\t{pos!r}\t{compound!r}")


if __name__ == "__main__":
    main()
