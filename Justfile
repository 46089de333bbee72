# Recipes a developer types. Each one is a thin wrapper: CI does not need just.

# The main job: the demo on a local-directory store.
demo:
    cargo run --release -- demo

# The whole test suite (what CI runs).
test:
    ./scripts/test.sh

# Every benchmark but the SlateDB peer (machine and driver quick runs, s3wal
# bench on a private moto, the simulator's latency curve, peak RSS), then one
# summary table; outputs in target/bench-results/ (scripts/bench.sh).
bench:
    ./scripts/bench.sh

# Benchmarks of the state machine and the object format, full length.
bench-machine:
    cargo bench --bench machine

# The tokio driver's per-commit cost on the in-memory store, next to the machine alone.
bench-driver:
    cargo bench --bench driver

# Peak RSS of `s3wal load` under overload against its byte budget.
bench-rss:
    ./scripts/rss.sh

# Lints only.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# s3wal against a one-PUT-per-commit writer on a store you name:
#   just bench-store --s3 s3://bucket/prefix --endpoint URL   (or --dir PATH)
bench-store *ARGS:
    cargo run --release -- bench {{ARGS}}

# s3wal against SlateDB (bench/peers, its own workspace; see BENCHMARKS.md), on moto,
# or on s3s-fs with S3WAL_PEERS_SERVER=s3s-fs.
bench-peers *ARGS:
    ./scripts/bench-peers.sh {{ARGS}}

# The simulator: one seed, a sweep, a replay.
sim-run SEED:
    cargo run -p s3wal-sim --release -- run --seed {{SEED}} --trace

sim-sweep SEEDS="0..2000":
    cargo run -p s3wal-sim --release -- sweep --seeds {{SEEDS}}

# Commit→durable latency at 10/50/90 % of peak under the S3 latency model.
sim-latency *ARGS:
    cargo run -p s3wal-sim --release -- latency {{ARGS}}

sim-replay SEED:
    cargo run -p s3wal-sim --release -- replay --seed {{SEED}}

# The real driver under madsim (sim/tests/madsim_driver.rs): a sweep of SEEDS
# seeds from START, two at a time. Its own target dir: --cfg madsim rebuilds
# every dependency.
madsim SEEDS="200" START="0":
    RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/madsim MADSIM_TEST_SEED={{START}} MADSIM_TEST_NUM={{SEEDS}} MADSIM_TEST_JOBS=2 cargo test -p s3wal-sim --test madsim_driver driver_sweep -- --nocapture

# One seed of the madsim sweep with its trace (S3WAL_MADSIM_REQUESTS=1 adds
# every store request; MADSIM_TEST_CHECK_DETERMINISM=1 runs it twice).
madsim-seed SEED:
    RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/madsim MADSIM_TEST_SEED={{SEED}} S3WAL_MADSIM_TRACE=1 cargo test -p s3wal-sim --test madsim_driver driver_sweep -- --nocapture

# Issue 7's recovery cost curve: requests and simulated time of opening logs
# of 10 to 10^6 batches, on the real driver under madsim.
recovery-curve:
    S3WAL_RECOVERY_CURVE_MAX=1000000 RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/madsim cargo test -p s3wal-sim --test madsim_driver recovery_cost -- --nocapture
