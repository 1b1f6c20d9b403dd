#!/usr/bin/env bash
# Peak RSS and CPU of each deployed role on a fixed workload, the figures behind the requests and
# limits in k8s/ (release build; `/usr/bin/time -v`).
#
#   eval "$(bash scripts/services.sh)"; bash scripts/measure_resources.sh [TRADES]
#
# Workloads, in one run: `migrate` of a fresh database; `replay` of TRADES (default 300,000)
# generated trades of 6 symbols into PostgreSQL and Kafka unpaced, then 30,000 of them paced at
# 1,000 trades/s; `serve` over that database answering 4,000 API requests 16 at once; `execute`
# (paper) reading the replay's topics from their beginning on the wall and the event clock until
# idle. Prints one RESOURCES line per role: peak RSS (MB), CPU seconds, wall seconds and the CPU
# share of one core over the run. Uses fresh topics and databases of its own (dropped after).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
trades="${1:-300000}"
bin="${CRYPTOFLOW_BIN:-$root/target/release/cryptoflow}"
server="${CRYPTOFLOW_TEST_POSTGRES_URL:?eval \"\$(bash scripts/services.sh)\" first}"
brokers="${CRYPTOFLOW_TEST_KAFKA_BROKERS:?eval \"\$(bash scripts/services.sh)\" first}"
[ -x "$bin" ] || { echo "no $bin: cargo build --release first" >&2; exit 2; }

work="$(mktemp -d)"
tag="res$$"
dbs=("cf_${tag}" "cf_${tag}_paced" "cf_${tag}_wall" "cf_${tag}_event")
cleanup() {
    for d in "${dbs[@]}"; do psql "$server" -qX -c "DROP DATABASE IF EXISTS $d" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT
for d in "${dbs[@]}"; do psql "$server" -qX -c "DROP DATABASE IF EXISTS $d" -c "CREATE DATABASE $d" >/dev/null 2>&1; done
url() { echo "${server%/*}/$1"; }

# Fresh topics for this run.
topics=()
for k in trades prices alerts events features sentiment signals; do
    topics+=("CRYPTOFLOW__SINKS__KAFKA__TOPICS__${k^^}=crypto-$k-$tag")
done

# measure ROLE CMD…: runs CMD under /usr/bin/time -v and prints its RESOURCES line.
measure() {
    local role="$1"
    shift
    local start end
    start=$(date +%s.%N)
    env "${topics[@]}" /usr/bin/time -v -o "$work/$role.time" "$@" >"$work/$role.log" 2>&1 || {
        echo "$role failed:" >&2
        tail -20 "$work/$role.log" >&2
        exit 1
    }
    end=$(date +%s.%N)
    local rss cpu wall
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/$role.time")
    cpu=$(awk -F': ' '/User time|System time/ {s += $2} END {print s}' "$work/$role.time")
    wall=$(echo "$end - $start" | bc)
    printf 'RESOURCES role=%s peak_rss_mb=%.0f cpu_s=%.2f wall_s=%.1f cores=%.2f load=%s\n' \
        "$role" "$(echo "$rss / 1024" | bc -l)" "$cpu" "$wall" "$(echo "$cpu / $wall" | bc -l)" \
        "$(cut -d' ' -f1 /proc/loadavg)"
}

"$bin" generate --trades "$trades" --symbols 6 --step-ms 5 --out "$work/trades.jsonl" 2>/dev/null
head -n 30000 "$work/trades.jsonl" >"$work/paced.jsonl"

measure migrate "$bin" migrate --postgres "$(url "cf_$tag")"
measure replay "$bin" replay "$work/trades.jsonl" --quiet --postgres "$(url "cf_$tag")" --kafka-sink "$brokers"
"$bin" migrate --postgres "$(url "cf_${tag}_paced")" >/dev/null 2>&1
measure replay-paced-1000 env "CRYPTOFLOW__SINKS__KAFKA__TOPICS__TRADES=crypto-trades-paced-$tag" \
    "$bin" replay "$work/paced.jsonl" --quiet --rate 1000 --postgres "$(url "cf_${tag}_paced")" \
    --kafka-sink "$brokers"

# serve over the replay's database, 4,000 requests 16 at once.
port=$((20000 + $$ % 20000))
# No rate limit: every request is answered, not refused.
env "${topics[@]}" CRYPTOFLOW__SERVE__RATE_LIMIT_PER_S=0 /usr/bin/time -v -o "$work/serve.time" \
    "$bin" serve --postgres "$(url "cf_$tag")" --kafka "$brokers" --listen "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    sleep 0.1
done
start=$(date +%s.%N)
symbols=$(head -n 6 "$work/trades.jsonl" | sed -n 's/.*"s":"\([A-Z0-9]*\)".*/\1/p' | sort -u)
paths=()
for s in $symbols; do
    paths+=("/api/v1/prices/current/$s" "/api/v1/candles/$s?interval=1m&limit=100"
            "/api/v1/technical/$s")
done
for i in $(seq 0 3999); do echo "http://127.0.0.1:$port${paths[$((i % ${#paths[@]}))]}"; done |
    xargs -P 16 -I{} curl -s -o /dev/null -w '%{http_code}\n' {} >"$work/codes" || true
end=$(date +%s.%N)
ok=$(grep -c '^200$' "$work/codes" || true)
# Any other answer is shown, by status, with a path that got it.
sort "$work/codes" | uniq -c | grep -v ' 200$' >&2 || true
serve_tree=$(pgrep -P "$serve_pid" || echo "$serve_pid")
kill -TERM "$serve_tree" 2>/dev/null || true
wait "$serve_pid" || true
rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/serve.time")
cpu=$(awk -F': ' '/User time|System time/ {s += $2} END {print s}' "$work/serve.time")
printf 'RESOURCES role=serve peak_rss_mb=%.0f cpu_s=%.2f requests=4000 ok=%s requests_wall_s=%.1f load=%s\n' \
    "$(echo "$rss / 1024" | bc -l)" "$cpu" "$ok" "$(echo "$end - $start" | bc)" "$(cut -d' ' -f1 /proc/loadavg)"

for clock in wall event; do
    measure "execute-$clock" "$bin" execute --kafka "$brokers" --postgres "$(url "cf_${tag}_$clock")" \
        --group "res-$tag-$clock" --from-beginning --exit-when-idle 5 --control off --clock "$clock"
done
