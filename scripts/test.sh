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

step "cargo test (workspace): unit, property, integration, simulator scenarios and planted bugs"
cargo test --workspace --locked

step "simulator: a 500-seed sweep with every fault class, crashes and zombies (release)"
cargo run -p s3wal-sim --release --locked -- sweep --seeds 0..500 --jobs 2

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

# --- Signatures: wrong credentials against s3s-fs --------------------------
# moto does not check request signatures; s3s-fs 0.14.1 does (installed with
# cargo install on first use; its create-if-absent is not atomic, so only
# this test uses it).
step "wrong credentials against s3s-fs (tests/signatures.rs)"
S3WAL_S3S_STATE="$(mktemp -d "${TMPDIR:-/tmp}/s3wal-s3s.XXXXXX")"
export S3WAL_S3S_STATE
stop_servers() {
    stop_moto
    scripts/s3s-fs.sh stop || true
    rm -rf "$S3WAL_S3S_STATE"
}
trap stop_servers EXIT
scripts/s3s-fs.sh start
# shellcheck source=/dev/null
source "$S3WAL_S3S_STATE/env"
cargo test -p s3wal --test signatures --locked -- --ignored

# --- The real driver under madsim --------------------------------------------
# (Block owned by the madsim level: sim/src/sim_store.rs, driver_world.rs,
# driver_checker.rs, sim/tests/madsim_driver.rs.)
# RUSTFLAGS="--cfg madsim" swaps tokio's time, spawn and macros for madsim's
# deterministic ones; it gets a target dir of its own so the normal build
# cache stays warm. Never --workspace here: only the simulator's tests run
# under madsim. On two cores (measured): a cold build about a minute, the
# rest about another (the sweep runs ~5 seeds/s). A failing seed prints its
# trace and how to replay it: `just madsim-seed N`.
madsim() { RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/madsim "$@"; }

step "madsim: the library and the simulator build under --cfg madsim"
madsim cargo build -p s3wal --no-default-features --locked
madsim cargo test -p s3wal-sim --no-run --locked

step "madsim: sweep of 200 seeds (real driver; crashes, zombies, takeovers, faults)"
MADSIM_TEST_SEED=0 MADSIM_TEST_NUM=200 MADSIM_TEST_JOBS=2 \
    madsim cargo test -p s3wal-sim --test madsim_driver --locked driver_sweep

step "madsim: determinism (MADSIM_TEST_CHECK_DETERMINISM runs a seed twice)"
for seed in 1 2 3; do
    MADSIM_TEST_SEED=$seed MADSIM_TEST_CHECK_DETERMINISM=1 \
        madsim cargo test -p s3wal-sim --test madsim_driver --locked driver_sweep
done

step "madsim: planted driver bugs caught, the store's semantics, regressions"
madsim cargo test -p s3wal-sim --test madsim_driver --locked -- --skip driver_sweep
