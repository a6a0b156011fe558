#!/usr/bin/env bash
# Runs one fuzz target of tests/suite/fuzz.rs for a given time (issue 15).
#
#   scripts/fuzz.sh list                 the targets
#   scripts/fuzz.sh TARGET SECONDS       run fuzz::TARGET for about SECONDS seconds
#
# The targets are proptest harnesses in the integration suite. This script builds the suite once in release
# mode, then runs the target in batches, each with a fresh PROPTEST_RNG_SEED and PROPTEST_CASES cases,
# growing the batches until one takes about FUZZ_BATCH_SECONDS, until the time is up. It ends with
#
#   TARGET: <executions> executions in <s> s, <failures> failures
#
# and exits 1 if a batch failed (proptest's minimal failing input and the command that reproduces it are
# printed), 2 on a usage error. A batch still running long after it should have finished is killed and
# counted as a failure (a hang).
#
# Environment: FUZZ_SEED (first RNG seed; default: the time), FUZZ_BATCH_SECONDS (default 10),
# FUZZ_BINARY (a suite executable already built by `cargo test --release --test suite --no-run`; skips the build),
# FUZZ_MEMORY_MB (address-space limit of the test process, default 8192; 0 for none),
# FUZZ_LOG (where the failing batch's output is kept; default target/fuzz/TARGET.log).
set -euo pipefail

cd "$(dirname "$0")/.."

targets=(
    forward_decoder
    fluentd_config
    log_http_input
    mqtt_payload
    dataset_csv
    flow_toml
    experiment_json
    experiment_yaml
    mesh_yaml
    rule_files
    promql
    knowledge_graph_yaml
    webhook_json
    order_body_json
)

usage() {
    echo "usage: scripts/fuzz.sh list | scripts/fuzz.sh TARGET SECONDS" >&2
    exit 2
}

if [ "$#" -eq 1 ] && [ "$1" = list ]; then
    printf '%s\n' "${targets[@]}"
    exit 0
fi
[ "$#" -eq 2 ] || usage
target=$1
duration=$2
known=false
for t in "${targets[@]}"; do
    if [ "$t" = "$target" ]; then
        known=true
    fi
done
if [ "$known" != true ]; then
    echo "scripts/fuzz.sh: unknown target '$target' (scripts/fuzz.sh list)" >&2
    exit 2
fi
if ! [[ "$duration" =~ ^[1-9][0-9]*$ ]]; then
    echo "scripts/fuzz.sh: SECONDS must be a positive integer, not '$duration'" >&2
    exit 2
fi

batch_seconds=${FUZZ_BATCH_SECONDS:-10}
memory_mb=${FUZZ_MEMORY_MB:-8192}
seed=${FUZZ_SEED:-$(date +%s)}
log=${FUZZ_LOG:-target/fuzz/$target.log}
mkdir -p "$(dirname "$log")"

# Build once; the suite's executable runs the batches directly (no cargo in the loop).
binary=${FUZZ_BINARY:-}
if [ -z "$binary" ]; then
    echo "building the test suite (release)..." >&2
    binary=$(cargo test --release --test suite --no-run --message-format=json 2>/dev/null |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
fi
if [ -z "$binary" ] || [ ! -x "$binary" ]; then
    cargo test --release --test suite --no-run >&2 || true
    echo "scripts/fuzz.sh: could not build the test suite" >&2
    exit 1
fi

now_ms() {
    date +%s%3N
}

start=$(now_ms)
first_seed=$seed
batches=0
deadline=$((start + duration * 1000))
executions=0
accepted=0
failures=0
cases=64
output=$(mktemp)
trap 'rm -f "$output"' EXIT

while [ "$(now_ms)" -lt "$deadline" ]; do
    batch_start=$(now_ms)
    # A batch should take about batch_seconds; a hang is one that takes far longer.
    limit=$((batch_seconds * 10 + 60))
    status=0
    (
        if [ "$memory_mb" -gt 0 ]; then
            ulimit -v $((memory_mb * 1024))
        fi
        PROPTEST_CASES=$cases PROPTEST_RNG_SEED=$seed RUST_BACKTRACE=1 \
            exec timeout --kill-after=10 "$limit" "$binary" --exact "fuzz::$target" --nocapture --test-threads=1
    ) >"$output" 2>&1 || status=$?
    batch_ms=$(($(now_ms) - batch_start))
    ran=$(sed -n "s/.*fuzz-stats: $target executions=\([0-9]*\).*/\1/p" "$output" | tail -n 1)
    took=$(sed -n "s/.*fuzz-stats: $target executions=[0-9]* accepted=\([0-9]*\).*/\1/p" "$output" | tail -n 1)
    executions=$((executions + ${ran:-0}))
    accepted=$((accepted + ${took:-0}))
    if [ "$status" -ne 0 ]; then
        failures=$((failures + 1))
        cp "$output" "$log"
        if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
            echo "fuzz::$target: a batch of $cases cases did not finish within $limit s (a hang?)" >&2
        else
            echo "fuzz::$target failed (exit $status):" >&2
            # The first panic (with its place), then proptest's verdict and minimal input; shrinking
            # repeats the panic many times, the log keeps them all.
            grep -m 1 -A 1 -E 'panicked at|memory allocation' "$output" >&2 || true
            grep -A 6 -E 'Test failed|minimal failing input' "$output" | grep -v -E '^stack backtrace|^ +[0-9]+: |^ +at ' >&2 || true
        fi
        echo "reproduce: PROPTEST_CASES=$cases PROPTEST_RNG_SEED=$seed cargo test --release --test suite fuzz::$target -- --exact --nocapture" >&2
        echo "full output: $log" >&2
        break
    fi
    seed=$((seed + 1))
    batches=$((batches + 1))
    # Grow the batch towards batch_seconds, but not past the time left.
    left_ms=$((deadline - $(now_ms)))
    per_case_us=$((batch_ms * 1000 / (${ran:-0} + 1) + 1))
    next=$((cases * 2))
    by_time=$((batch_seconds * 1000000 / per_case_us))
    by_left=$((left_ms * 1000 / per_case_us))
    if [ "$next" -gt "$by_time" ]; then next=$by_time; fi
    if [ "$next" -gt "$by_left" ]; then next=$by_left; fi
    if [ "$next" -lt 16 ]; then next=16; fi
    cases=$next
done

elapsed_ms=$(($(now_ms) - start))
echo "$target: $accepted inputs accepted by the parser; $batches batches from RNG seed $first_seed" >&2
printf '%s: %d executions in %d.%03d s, %d failures\n' \
    "$target" "$executions" $((elapsed_ms / 1000)) $((elapsed_ms % 1000)) "$failures"
[ "$failures" -eq 0 ]
