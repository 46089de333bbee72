#!/usr/bin/env bash
# Every benchmark of issue 7 except the SlateDB peer, then one summary table.
#
#   scripts/bench.sh          (what `just bench` runs)
#
# 1. the state machine alone: `cargo bench --bench machine`, quick mode;
#    the tokio driver's per-commit cost: `cargo bench --bench driver`, quick
# 2. `s3wal bench` (s3wal against the naive writer, and its PUT costs) on a
#    private moto server on 127.0.0.1 (scripts/moto.sh), stopped at the end
# 3. the simulator's latency curve: `s3wal-sim latency`
# 4. peak RSS under overload: scripts/rss.sh, 4 KiB commits at two budgets
#    and 100-byte and 1-byte commits at 32 MiB
#
# Each step's full output goes to $OUT; the summary picks the figures the
# issue's targets are about out of them.
#
# Settings (environment):
#   S3WAL_BENCH_OUT      where outputs go (default: <target>/bench-results/<UTC time>)
#   S3WAL_BENCH_SECONDS  `s3wal bench --seconds` (default 3)
#   S3WAL_BENCH_ROUNDS   `s3wal bench --rounds` (default 2)
#   CARGO_TARGET_DIR     honoured, as by cargo
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="${S3WAL_BENCH_OUT:-$TARGET/bench-results/$(date -u +%Y%m%dT%H%M%SZ)}"
BENCH_SECONDS="${S3WAL_BENCH_SECONDS:-3}"
BENCH_ROUNDS="${S3WAL_BENCH_ROUNDS:-2}"

step() { printf '\n==== %s ====\n' "$*" >&2; }

build() {
    step "building (release)"
    cargo build --release --bin s3wal -p s3wal
    cargo build --release -p s3wal-sim
}

machine() {
    step "the state machine alone (S3WAL_BENCH_QUICK=1 cargo bench --bench machine)"
    S3WAL_BENCH_QUICK=1 cargo bench --bench machine | tee "$OUT/machine.txt"
    step "the tokio driver per commit (S3WAL_BENCH_QUICK=1 cargo bench --bench driver)"
    S3WAL_BENCH_QUICK=1 cargo bench --bench driver | tee "$OUT/driver.txt"
}

store() {
    step "s3wal bench on moto"
    export S3WAL_MOTO_STATE="$OUT/moto"
    eval "$("$ROOT/scripts/moto.sh" start)"
    trap '"$ROOT/scripts/moto.sh" stop' EXIT
    curl -sf -X PUT "$S3WAL_S3_ENDPOINT/benchbucket" >/dev/null
    "$TARGET/release/s3wal" bench --s3 s3://benchbucket/b --endpoint "$S3WAL_S3_ENDPOINT" \
        --seconds "$BENCH_SECONDS" --rounds "$BENCH_ROUNDS" | tee "$OUT/store.txt"
    "$ROOT/scripts/moto.sh" stop
    trap - EXIT
}

latency() {
    step "latency under the S3 latency model (s3wal-sim latency)"
    "$TARGET/release/s3wal-sim" latency | tee "$OUT/latency.txt"
}

rss() {
    step "peak RSS under overload (scripts/rss.sh)"
    # A missed claim is a figure to report, not a reason to stop.
    S3WAL_BIN="$TARGET/release/s3wal" "$ROOT/scripts/rss.sh" | tee "$OUT/rss.txt" || true
    # Small commits: the writer's bookkeeping per commit, which the budget
    # counts as a fixed COMMIT_BOOKKEEPING_BYTES, is largest next to the
    # commits' own bytes.
    for bytes in 100 1; do
        S3WAL_BIN="$TARGET/release/s3wal" S3WAL_RSS_COMMIT_BYTES=$bytes S3WAL_RSS_BUDGETS_MIB=32 "$ROOT/scripts/rss.sh" |
            tee "$OUT/rss-${bytes}B.txt" || true
    done
}

# The figures the targets of issue 7 are about, one row each: what, measured, target.
summary() {
    step "summary (full outputs in $OUT)"
    local fmt='%-36s %-44s %s\n'
    printf "$fmt" "figure" "measured" "target"
    awk -v fmt="$fmt" '/^machine [0-9]/ {
            name = $2; sub(":", "", name); ratio = $0; sub(/.*baseline time: /, "", ratio); sub(/ x.*/, "", ratio)
            target = (name == "100B") ? ">= 20 M/s and <= 2 x Vec time" : ""
            printf fmt, "machine alone, " name " commits", $3 " M commits/s, " ratio " x Vec time", target
        }
        /-commit batch: .* A\/B = / {
            match($0, / [^ ]+-commit batch: /); what = substr($0, 1, RSTART - 1)
            size = substr($0, RSTART + 1, RLENGTH - 1); sub(/-commit batch: /, "", size)
            split(substr($0, RSTART + RLENGTH), rest, " ")
            pct = $0; sub(/.*A\/B = /, "", pct); sub(/ %.*/, "", pct)
            verdict = $0; sub(/.*target >= 50 %: /, "", verdict); sub(/\]$/, "", verdict)
            printf fmt, what ", " size " commits", rest[1] " GB/s, " pct " % of memcpy", ">= 50 %: " verdict
        }
        /-commit encode.s parts: / {
            size = $1; sub(/-commit.*/, "", size)
            push = $0; sub(/.*push only /, "", push); sub(/ %.*/, "", push)
            crc = $0; sub(/.* and checksum /, "", crc); sub(/ %.*/, "", crc)
            sum = $0; sub(/.*their times, /, "", sum); sub(/ %.*/, "", sum)
            printf fmt, "encode parts, " size " commits", "push " push " %, checksum " crc " %: both " sum " %", "(encode estimated from its parts)"
        }' "$OUT/machine.txt"
    awk -v fmt="$fmt" '/^driver \(/ { d = $5 } /^driver CPU/ { c = $5 } /^driver\/machine time/ { x = $3; sub(",", "", x) }
        END { printf fmt, "driver per commit, 100 B, MemStore", d " ns (CPU " c " ns), " x " the machine alone", "" }' "$OUT/driver.txt"
    awk -v fmt="$fmt" '$1 == "W1" && ($3 == 1 || $3 == 64) && ($4 == "s3wal" || $4 == "naive") {
            printf fmt, "W1 P=" $3 " " $4, $5 " commits/s, p50 " $6 ", p99 " $8, ""
        }
        /^ratio vs naive at 64/ { printf fmt, "W1 P=64 s3wal / naive", $NF, ">= 30x" }
        $1 == "W2" && $4 == "s3wal" && !costs { printf fmt, "W2 " $2 " (open loop)", $5 " commits/s, " $6 " MB/s", "" }
        $1 == "W2" && / share of raw: / { printf fmt, "W2 " $2 " / raw 1 MiB PUT bandwidth", $6 " %", ">= 80 %" }
        /^raw 1MiB PUT/ { ++raw; printf fmt, "raw 1 MiB PUTs x16 (" (raw == 1 ? "before W2 100B" : raw == 2 ? "between" : "after W2 4096B") ")", $7 " MB/s", "" }
        /^requests/ { costs = 1; next }
        costs && $1 ~ /^W/ { printf fmt, "PUTs, " $1 " " $2 " P=" $3, $6 " per 1k commits, " $7 " per GB", "" }
        /^\(\$\/GB/ { costs = 0 }' "$OUT/store.txt"
    awk -v fmt="$fmt" '/: peak .* commits\/s/ && !seen { seen = 1; sub(/.*: peak /, ""); printf fmt, "sim peak, default config", $1 " " $2, "" }
        /^target: / {
            ratio = $(NF-1); gsub(/[():]/, "", ratio)
            what = ($2 == "p50") ? "sim p50 at 10% of peak" : "sim p99 at 50% of peak"
            bound = ($2 == "p50") ? "RTT p50 + batch_timeout" : "2 x RTT p50"
            printf fmt, what, $(NF-6) " ms (" ratio ")", "<= " bound " = " $(NF-3) " ms: " $NF
        }
        /^hedge after 40 ms / && !per_config {
            printf fmt, "sim, hedge_after 40 ms", "p50@10% " $6 " ms, p99@50% " $13 " ms, peak " $5, "same bounds"
        }
        /^hedge adaptive, floor 1 ms / && !per_config {
            printf fmt, "sim, hedge_adaptive (floor 1 ms)", "p50@10% " $7 " ms, p99@50% " $14 " ms, peak " $6, "same bounds"
        }
        /^targets per config/ { per_config = 1; next }
        per_config && /: met .*: met/ {
            name = substr($0, 1, 40); sub(/ +$/, "", name)
            printf fmt, "sim config meeting both targets", name, "bounds from its own PUTs"
        }' "$OUT/latency.txt"
    awk -v fmt="$fmt" '$2 == "MiB" && $4 == "MiB" { printf fmt, "peak RSS, byte budget " $1 " MiB", $3 " MiB", "<= " $5 " MiB: " $7 }' \
        "$OUT/rss.txt"
    for bytes in 100 1; do
        awk -v fmt="$fmt" -v what="$bytes B commits" \
            '$2 == "MiB" && $4 == "MiB" { printf fmt, "peak RSS, budget " $1 " MiB, " what, $3 " MiB", "<= " $5 " MiB: " $7 }' \
            "$OUT/rss-${bytes}B.txt"
    done
}

main() {
    mkdir -p "$OUT"
    cd "$ROOT"
    build
    machine
    store
    latency
    rss
    summary | tee "$OUT/summary.txt"
}

main "$@"
