#!/usr/bin/env bash
# s3wal against SlateDB (bench/peers, a separate cargo workspace that CI never
# builds): starts moto on a free port on 127.0.0.1 with a state directory of
# this run's own, creates a bucket, runs the peer bench in release and stops
# the server however this script exits. Arguments go to the bench, e.g.
#   scripts/bench-peers.sh --seconds 3 --rounds 2 --producers 1,16,64,256
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

S3WAL_MOTO_STATE="$(mktemp -d "${TMPDIR:-/tmp}/s3wal-peers-moto.XXXXXX")"
export S3WAL_MOTO_STATE
stop_moto() {
    "$ROOT/scripts/moto.sh" stop || true
    rm -rf "$S3WAL_MOTO_STATE"
}
trap stop_moto EXIT
scripts/moto.sh start >/dev/null
# shellcheck source=/dev/null
source "$S3WAL_MOTO_STATE/env"
# moto does not check signatures: an unsigned PUT creates the bucket.
python3 - "$S3WAL_S3_ENDPOINT/peersbucket" <<'PY'
import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="PUT"), timeout=10).read()
PY
cd "$ROOT/bench/peers"
cargo run --release --locked -- --bucket peersbucket --endpoint "$S3WAL_S3_ENDPOINT" "$@"
