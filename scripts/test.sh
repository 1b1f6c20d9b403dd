#!/usr/bin/env bash
# The full test command: sets up the services the tests need, then runs every test.
#
#   bash scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(bash scripts/services.sh)"
echo "test.sh: PostgreSQL at ${CRYPTOFLOW_TEST_POSTGRES_URL}, MySQL at ${CRYPTOFLOW_TEST_MYSQL_URL}" >&2

cargo test --workspace --all-targets --locked "$@"
# Doc tests are not part of --all-targets.
cargo test --workspace --doc --locked "$@"
