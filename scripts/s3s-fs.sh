#!/usr/bin/env bash
# A second S3-compatible server for the tests that need one that checks
# request signatures: s3s-fs (on disk; its create-if-absent is NOT atomic,
# so race tests stay on moto).
#
#   scripts/s3s-fs.sh start   install s3s-fs 0.14.1 if missing (cargo install),
#                             start it on 127.0.0.1 with a fixed access key,
#                             write $S3WAL_S3S_STATE/env
#   scripts/s3s-fs.sh stop    stop it
set -euo pipefail

VERSION="0.14.1"
STATE="${S3WAL_S3S_STATE:?set S3WAL_S3S_STATE to a directory of this run}"
say() { printf 's3s-fs.sh: %s\n' "$*" >&2; }

install() {
    if command -v s3s-fs >/dev/null && s3s-fs --version 2>/dev/null | grep -q "$VERSION"; then
        return 0
    fi
    say "installing s3s-fs $VERSION with cargo (one time, a few minutes)"
    cargo install "s3s-fs@$VERSION" --features binary --locked --quiet
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    install
    mkdir -p "$STATE/data"
    local port
    port="$(free_port)"
    s3s-fs --host 127.0.0.1 --port "$port" --access-key s3wal-right --secret-key s3wal-right-secret \
        "$STATE/data" >"$STATE/server.log" 2>&1 &
    echo $! >"$STATE/server.pid"
    for _ in $(seq 1 100); do
        if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
            echo "export S3WAL_S3S_ENDPOINT=http://127.0.0.1:$port" >"$STATE/env"
            say "s3s-fs is up on 127.0.0.1:$port"
            return 0
        fi
        sleep 0.1
    done
    say "s3s-fs did not start; log:"
    cat "$STATE/server.log" >&2
    exit 1
}

stop() {
    if [[ -f "$STATE/server.pid" ]]; then
        kill "$(cat "$STATE/server.pid")" 2>/dev/null || true
        rm -f "$STATE/server.pid"
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) say "usage: $0 start|stop"; exit 2 ;;
esac
