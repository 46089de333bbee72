#!/usr/bin/env bash
# Peak memory of `s3wal load` under sustained overload, against its byte budget.
#
#   scripts/rss.sh            build (release) and measure the default budgets
#
# For each byte budget, `s3wal load --open-loop` appends commits (4 KiB by
# default) from 4 producers that never wait for durability, on a
# local-directory store that fsyncs every object: the producers outrun the
# store, so the writer holds a full budget of commits for the whole run. Peak RSS comes from
# `/usr/bin/time -v` (the kernel's high-water mark); the claim checked is
# peak RSS <= budget + 64 MiB (the budget's commits plus a fixed overhead).
# Small commits test the writer's bookkeeping per waiting commit, which the
# budget counts as a fixed 64 bytes (S3WAL_RSS_COMMIT_BYTES=1 or 100).
#
# Settings (environment):
#   S3WAL_RSS_BUDGETS_MIB  budgets to measure, MiB (default "32 256")
#   S3WAL_RSS_SECONDS      seconds each run appends for (default 10)
#   S3WAL_RSS_COMMIT_BYTES bytes per commit (default 4096)
#   S3WAL_BIN              the s3wal binary (default: cargo build --release)
#
# Prints one line per budget; exits 1 if a budget's claim does not hold.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUDGETS="${S3WAL_RSS_BUDGETS_MIB:-32 256}"
SECONDS_PER_RUN="${S3WAL_RSS_SECONDS:-10}"
COMMIT_BYTES="${S3WAL_RSS_COMMIT_BYTES:-4096}"
OVERHEAD_MIB=64

say() { printf 'rss.sh: %s\n' "$*" >&2; }

binary() {
    if [[ -n "${S3WAL_BIN:-}" ]]; then
        echo "$S3WAL_BIN"
        return
    fi
    say "building s3wal (release)"
    (cd "$ROOT" && cargo build --release --quiet --bin s3wal) >&2
    echo "${CARGO_TARGET_DIR:-$ROOT/target}/release/s3wal"
}

# measure BIN BUDGET_MIB: prints "peak_kib commits_line puts_line".
measure() {
    local bin="$1" budget_mib="$2" work
    work="$(mktemp -d "${TMPDIR:-/tmp}/s3wal-rss.XXXXXX")"
    # The run is bounded by --seconds; --commits is only a backstop.
    /usr/bin/time -v "$bin" load --dir "$work/log" --open-loop --seconds "$SECONDS_PER_RUN" \
        --commits 100000000 --commit-size "$COMMIT_BYTES" --producers 4 --byte-budget $((budget_mib << 20)) \
        >"$work/out" 2>"$work/err" || {
        cat "$work/err" >&2
        rm -rf "$work"
        return 1
    }
    local peak_kib throughput puts
    peak_kib="$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/err")"
    throughput="$(grep -m1 'commits in' "$work/out" || true)"
    puts="$(grep -m1 'batches in' "$work/out" | cut -d';' -f1 || true)"
    rm -rf "$work"
    printf '%s\t%s\t%s\n' "$peak_kib" "$throughput" "$puts"
}

main() {
    local bin failed=0
    bin="$(binary)"
    say "commits of $COMMIT_BYTES bytes"
    printf '%-10s %12s %14s %8s   %s\n' "budget" "peak RSS" "budget+${OVERHEAD_MIB}MiB" "claim" "load"
    for budget in $BUDGETS; do
        local line peak_kib throughput puts peak_mib limit verdict
        line="$(measure "$bin" "$budget")"
        IFS=$'\t' read -r peak_kib throughput puts <<<"$line"
        peak_mib=$((peak_kib / 1024))
        limit=$((budget + OVERHEAD_MIB))
        verdict="met"
        if ((peak_mib > limit)); then
            verdict="MISSED"
            failed=1
        fi
        printf '%-10s %8s MiB %10s MiB %8s   %s; %s\n' "${budget} MiB" "$peak_mib" "$limit" "$verdict" \
            "$throughput" "$puts"
    done
    return "$failed"
}

main "$@"
