#!/usr/bin/env bash
# Scaling of a replay over 1, 2 and 3 processes (timely's own multi-process engine, every process
# on this machine, one worker each), side by side in one run, with one process of 2 and 3 workers
# beside them.
#
#   bash scripts/bench_cluster.sh [TRADES] [SYMBOLS] [SINK]
#
# TRADES (default 1,000,000) generated trades of SYMBOLS (default 100) symbols are replayed unpaced
# into SINK: `jsonl` (each process its own file; the default) or `postgres` (a fresh database per
# layout on $CRYPTOFLOW_BENCH_POSTGRES, default postgres://postgres@127.0.0.1:5432/postgres, as the
# server to create it on). Each layout runs REPEAT (default 3) times; the median wall time is
# reported, with the records written (which must be the same for every layout) and the CPU time of
# our processes. Prints one SCALE line per layout.
#
# Needs the release build: `cargo build --release` (or CRYPTOFLOW_BIN).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
trades="${1:-1000000}"
symbols="${2:-100}"
sink="${3:-jsonl}"
repeat="${REPEAT:-3}"
bin="${CRYPTOFLOW_BIN:-$root/target/release/cryptoflow}"
server="${CRYPTOFLOW_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}"
[ -x "$bin" ] || { echo "no $bin: cargo build --release first" >&2; exit 2; }
case "$sink" in jsonl | postgres) ;; *) echo "SINK is jsonl or postgres" >&2; exit 2 ;; esac

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
input="$work/trades.jsonl"
"$bin" generate --trades "$trades" --symbols "$symbols" --step-ms 1 --out "$input" 2>/dev/null

# A fresh, migrated database; prints its URL.
fresh_db() {
    local name="cf_scale_$1"
    psql "$server" -qX -c "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name" >/dev/null 2>&1
    local url="${server%/*}/$name"
    "$bin" migrate --postgres "$url" >/dev/null 2>&1
    echo "$url"
}

# run_layout PROCESSES WORKERS: one run; prints "wall_s records cpu_s".
run_layout() {
    local n="$1" w="$2" hosts="" i
    for i in $(seq 0 $((n - 1))); do hosts+="127.0.0.1:$((24600 + i)),"; done
    hosts="${hosts%,}"
    local url=""
    [ "$sink" = postgres ] && url="$(fresh_db "${n}_$w")"
    local start end pids=()
    start=$(date +%s.%N)
    for i in $(seq 0 $((n - 1))); do
        local out=(--jsonl "$work/out-$i.jsonl")
        [ "$sink" = postgres ] && out=(--postgres "$url")
        /usr/bin/time -f "%U %S" -o "$work/time-$i" \
            "$bin" replay "$input" --quiet "${out[@]}" --processes "$n" --process "$i" \
            --hosts "$hosts" --workers "$w" >"$work/log-$i" 2>&1 &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || { echo "process $i of $n failed:" >&2; tail -5 "$work/log-$i" >&2; exit 1; }
    done
    end=$(date +%s.%N)
    local records=0 cpu=0 r
    for i in $(seq 0 $((n - 1))); do
        r=$(sed -n "s/.*sinks: $sink=\([0-9]*\) records.*/\1/p" "$work/log-$i" | tail -1)
        records=$((records + ${r:-0}))
        cpu=$(awk -v c="$cpu" '{print c + $1 + $2}' "$work/time-$i")
    done
    [ "$sink" = postgres ] && psql "$server" -qX -c "DROP DATABASE IF EXISTS cf_scale_${n}_$w" >/dev/null 2>&1
    echo "$(echo "$end - $start" | bc) $records $cpu"
}

base=""
for layout in "1 1" "2 1" "3 1" "1 2" "1 3"; do
    set -- $layout
    walls=() records="" cpus=()
    for _ in $(seq "$repeat"); do
        read -r wall rec cpu < <(run_layout "$1" "$2")
        walls+=("$wall") cpus+=("$cpu")
        [ -z "$records" ] && records="$rec"
        [ "$rec" = "$records" ] || { echo "records differ between runs: $rec vs $records" >&2; exit 1; }
    done
    med=$(printf '%s\n' "${walls[@]}" | sort -g | sed -n "$(((repeat + 1) / 2))p")
    cpu=$(printf '%s\n' "${cpus[@]}" | sort -g | sed -n "$(((repeat + 1) / 2))p")
    [ -z "$base" ] && base="$med"
    printf 'SCALE processes=%s workers=%s sink=%s trades=%s records=%s wall_s=%s trades_per_s=%.0f vs_1x1=%.2f cpu_s=%s load=%s\n' \
        "$1" "$2" "$sink" "$trades" "$records" "$med" "$(echo "$trades / $med" | bc -l)" \
        "$(echo "$base / $med" | bc -l)" "$cpu" "$(cut -d' ' -f1 /proc/loadavg)"
done
