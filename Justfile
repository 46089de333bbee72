# Recipes a developer types. Each one is a thin wrapper: CI does not need just.

# The main job: the demo on a local-directory store.
demo:
    cargo run --release -- demo

# The whole test suite (what CI runs).
test:
    ./scripts/test.sh

# Benchmarks of the state machine and the object format.
bench:
    cargo bench --bench machine

# Lints only.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
