#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, property and integration
# tests, and the simulator's checks. Installs whatever it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (workspace)"
cargo test --workspace --locked

# --- S3 store against a real S3-compatible server ---------------------------
# (Block owned by the S3 store: src/store/s3.rs, tests/s3.rs, scripts/moto.sh.)
# scripts/moto.sh installs moto into .tools/moto on first use (python3 and
# PyPI are all it needs) and starts it on a free port on 127.0.0.1; the
# tests that need it are #[ignore]d in a plain `cargo test`, so they run here
# with --ignored. The server is stopped when this script exits, however it
# exits; its state lives in a directory of this run's own.
step "S3 store against moto (tests/s3.rs)"
S3WAL_MOTO_STATE="$(mktemp -d "${TMPDIR:-/tmp}/s3wal-moto.XXXXXX")"
export S3WAL_MOTO_STATE
stop_moto() {
    scripts/moto.sh stop || true
    rm -rf "$S3WAL_MOTO_STATE"
}
trap stop_moto EXIT
scripts/moto.sh start >/dev/null
# shellcheck source=/dev/null
source "$S3WAL_MOTO_STATE/env"
cargo test -p s3wal --test s3 --test kill9 --locked -- --ignored
