#!/usr/bin/env bash
# s3wal against SlateDB (bench/peers, a separate cargo workspace that CI never
# builds): starts an S3-compatible server on a free port on 127.0.0.1 with a
# state directory of this run's own, creates a bucket, runs the peer bench in
# release and stops the server however this script exits. Arguments go to the
# bench, e.g.
#   scripts/bench-peers.sh --seconds 3 --rounds 2 --producers 1,16,64,256
#
# S3WAL_PEERS_SERVER picks the server:
#   moto    (default) moto 5.2.5, the server the issue's targets are set on,
#           started by scripts/moto.sh (host lookup cached: about 5 ms of
#           Python per small PUT, which bounds every system; with
#           S3WAL_MOTO_STOCK=1 moto as shipped, about 7.7 ms).
#   s3s-fs  s3s-fs 0.14.1, a Rust server on disk (its create-if-absent is not
#           atomic, which a single writer never races): a 4 KiB PUT takes
#           about 1.2 ms and requests run in parallel, so what is left is
#           each system's own batching.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

SERVER="${S3WAL_PEERS_SERVER:-moto}"
BUCKET=peersbucket
STATE="$(mktemp -d "${TMPDIR:-/tmp}/s3wal-peers-$SERVER.XXXXXX")"

case "$SERVER" in
    moto)
        export S3WAL_MOTO_STATE="$STATE"
        stop_server() { "$ROOT/scripts/moto.sh" stop || true; rm -rf "$STATE"; }
        trap stop_server EXIT
        scripts/moto.sh start >/dev/null
        # shellcheck source=/dev/null
        source "$STATE/env"
        # moto does not check signatures: an unsigned PUT creates the bucket.
        python3 - "$S3WAL_S3_ENDPOINT/$BUCKET" <<'PY'
import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="PUT"), timeout=10).read()
PY
        ;;
    s3s-fs)
        export S3WAL_S3S_STATE="$STATE"
        stop_server() { "$ROOT/scripts/s3s-fs.sh" stop || true; rm -rf "$STATE"; }
        trap stop_server EXIT
        scripts/s3s-fs.sh start
        # shellcheck source=/dev/null
        source "$STATE/env"
        export S3WAL_S3_ENDPOINT="$S3WAL_S3S_ENDPOINT"
        # The key scripts/s3s-fs.sh starts the server with; a bucket is a
        # directory of its data directory.
        export AWS_ACCESS_KEY_ID=s3wal-right AWS_SECRET_ACCESS_KEY=s3wal-right-secret
        export AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
        mkdir -p "$STATE/data/$BUCKET"
        ;;
    *)
        echo "bench-peers.sh: S3WAL_PEERS_SERVER must be moto or s3s-fs, not '$SERVER'" >&2
        exit 2
        ;;
esac

cd "$ROOT/bench/peers"
cargo run --release --locked -- --bucket "$BUCKET" --endpoint "$S3WAL_S3_ENDPOINT" "$@"
