#!/usr/bin/env bash
# Coverage-guided fuzzing of the decoders of outside bytes (libFuzzer through libfuzzer-sys).
#
#   bash tests/fuzz/run.sh build                 # build every target with coverage instrumentation
#   bash tests/fuzz/run.sh smoke [SECONDS]       # each target: its seeds and regressions, then
#                                                # SECONDS (default 3) of fuzzing (CI)
#   bash tests/fuzz/run.sh campaign TARGET [RUNS] [SECONDS]
#                                                # RUNS executions (default 10,000,000) or SECONDS
#                                                # (default 3600), whichever comes first
#   bash tests/fuzz/run.sh list
#
# Stable Rust is enough: the instrumentation is LLVM's SanitizerCoverage through stable codegen
# flags (`-C passes=sancov-module` and its `-C llvm-args`), which is what cargo-fuzz passes too;
# only its sanitizers need a nightly compiler. A panic, an abort, a hang (`-timeout`), more than
# `-rss_limit_mb`, or an allocation above the targets' own bound (src/lib.rs) is a crash: libFuzzer
# writes the input to `artifacts/TARGET/` and exits non-zero.
#
# The corpus grows in `corpus/TARGET/` (not kept in git); `seeds/TARGET/` are the starting inputs,
# from the real payload shapes, and `regressions/TARGET/` every input that once crashed (each is
# also a test in the crate of its decoder).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

TARGETS=(binance_frame binance_rest csv_line replay_file kafka_message rss reddit fred coingecko
         myinvestor config_file api_request telegram_updates text_order)
triple="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/target}"
bin_dir="$CARGO_TARGET_DIR/$triple/release"

build() {
    # --target keeps build scripts and proc macros uninstrumented.
    RUSTFLAGS="--cfg fuzzing -C passes=sancov-module \
        -C llvm-args=-sanitizer-coverage-level=4 \
        -C llvm-args=-sanitizer-coverage-inline-8bit-counters \
        -C llvm-args=-sanitizer-coverage-pc-table \
        -C llvm-args=-sanitizer-coverage-trace-compares" \
        cargo build --release --locked --target "$triple" --bins
}

# The options of every run: a hang is 10 s, the process at most 2 GiB.
opts() {
    local t="$1"
    local o=(-timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1
             "-artifact_prefix=$here/artifacts/$t/")
    [ -f "$here/dict/$t.dict" ] && o+=("-dict=$here/dict/$t.dict")
    printf '%s\n' "${o[@]}"
}

dirs() {
    local t="$1"
    mkdir -p "corpus/$t" "artifacts/$t"
    local d=("corpus/$t")
    [ -d "seeds/$t" ] && d+=("seeds/$t")
    [ -d "regressions/$t" ] && d+=("regressions/$t")
    printf '%s\n' "${d[@]}"
}

case "${1:-}" in
    build) build ;;
    list) printf '%s\n' "${TARGETS[@]}" ;;
    smoke)
        secs="${2:-3}"
        build
        for t in "${TARGETS[@]}"; do
            mapfile -t o < <(opts "$t")
            mapfile -t d < <(dirs "$t")
            echo "fuzz: $t (${secs}s)" >&2
            "$bin_dir/$t" "${o[@]}" -max_total_time="$secs" "${d[@]}" 2>"artifacts/$t.log" || {
                tail -n 40 "artifacts/$t.log" >&2
                echo "fuzz: $t FAILED (input in tests/fuzz/artifacts/$t/)" >&2
                exit 1
            }
            grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "artifacts/$t.log" |
                tr '\n' ' ' >&2
            echo >&2
        done
        ;;
    campaign)
        t="${2:?target}"
        runs="${3:-10000000}"
        secs="${4:-3600}"
        mapfile -t o < <(opts "$t")
        mapfile -t d < <(dirs "$t")
        exec "$bin_dir/$t" "${o[@]}" -runs="$runs" -max_total_time="$secs" "${d[@]}"
        ;;
    *)
        sed -n '2,20p' "$0" >&2
        exit 2
        ;;
esac
