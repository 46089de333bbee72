#!/usr/bin/env bash
# A local S3-compatible server for the S3 store's tests: moto in server mode.
#
#   scripts/moto.sh install   install moto into .tools/moto (a venv) if missing
#   scripts/moto.sh start     install if needed, start the server on 127.0.0.1,
#                             wait until it answers, write the env file and
#                             print its `export` lines on stdout, so
#                             `eval "$(scripts/moto.sh start)"` works
#   scripts/moto.sh env       print the `export` lines of the running server
#   scripts/moto.sh stop      stop the server started by `start`
#
# Settings (environment):
#   S3WAL_MOTO_PORT   port to listen on (default: a free port picked at start)
#   S3WAL_MOTO_STATE  directory for the pid, log and env files
#                     (default: .tools/moto-run); give each concurrent run
#                     its own so two runs never stop each other's server
#   S3WAL_MOTO_STOCK  1: run `python -m moto.server` as shipped, instead of
#                     scripts/moto_server.py (the same server with its
#                     host-to-backend lookup cached, about 2 ms less per
#                     request); for comparing benchmark figures
#
# Needs only python3 (with pip or venv) and PyPI. Progress goes to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MOTO_VERSION="5.2.5"
VENV="$ROOT/.tools/moto"
STATE="${S3WAL_MOTO_STATE:-$ROOT/.tools/moto-run}"
PIDFILE="$STATE/server.pid"
ENVFILE="$STATE/env"
LOGFILE="$STATE/server.log"

say() { printf 'moto.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# The Python that runs moto, and the PYTHONPATH it needs (set by `installed`).
PY=""
PYPATH=""

# Whether moto $MOTO_VERSION is importable from the venv or the fallback dir.
installed() {
    if [[ -x "$VENV/bin/python" ]] &&
        "$VENV/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
        PY="$VENV/bin/python"
        PYPATH=""
        return 0
    fi
    if [[ -d "$VENV/site" ]] &&
        PYTHONPATH="$VENV/site" python3 -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
        PY="$(command -v python3)"
        PYPATH="$VENV/site"
        return 0
    fi
    return 1
}

install_unlocked() {
    installed && return 0
    command -v python3 >/dev/null || die "python3 is required"
    mkdir -p "$ROOT/.tools"
    say "installing moto[server]==$MOTO_VERSION into $VENV (one time)"
    if python3 -m venv "$VENV" >&2 2>&1 && [[ -x "$VENV/bin/pip" ]]; then
        "$VENV/bin/pip" install --disable-pip-version-check --quiet "moto[server]==$MOTO_VERSION" >&2 ||
            die "pip could not install moto[server]==$MOTO_VERSION"
    else
        # Debian's python3 without python3-venv cannot make a venv with pip:
        # install into a plain directory instead.
        say "python3 -m venv is unavailable; installing with pip --target $VENV/site"
        rm -rf "$VENV/bin" "$VENV/include" "$VENV/lib" "$VENV/lib64" "$VENV/pyvenv.cfg" "$VENV/site"
        mkdir -p "$VENV/site"
        python3 -m pip install --disable-pip-version-check --quiet --target "$VENV/site" \
            "moto[server]==$MOTO_VERSION" >&2 ||
            die "neither python3 -m venv nor python3 -m pip could install moto[server]==$MOTO_VERSION"
    fi
    installed || die "moto $MOTO_VERSION is still not importable after installing it"
    say "installed moto $MOTO_VERSION"
}

install() {
    mkdir -p "$ROOT/.tools"
    if command -v flock >/dev/null; then
        # Two runs installing at once would corrupt the venv.
        (
            flock 9
            install_unlocked
        ) 9>"$ROOT/.tools/moto.lock"
        installed || die "moto is not installed"
    else
        install_unlocked
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

running() {
    [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

answers() {
    python3 - "$1" <<'EOF' 2>/dev/null
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen("http://127.0.0.1:%s/moto-api/" % sys.argv[1], timeout=2).read()
except urllib.error.HTTPError:
    pass  # any HTTP answer means the server is up
EOF
}

write_env() {
    local port="$1"
    cat >"$ENVFILE" <<EOF
export S3WAL_S3_ENDPOINT=http://127.0.0.1:$port
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
export S3WAL_MOTO_PORT=$port
EOF
}

start() {
    mkdir -p "$STATE"
    if running; then
        say "already running (pid $(cat "$PIDFILE")); env in $ENVFILE"
        cat "$ENVFILE"
        return 0
    fi
    install
    local port="${S3WAL_MOTO_PORT:-$(free_port)}"
    say "starting moto on 127.0.0.1:$port (log: $LOGFILE)"
    # One process (werkzeug, threaded, no reloader): `stop` ends it by its pid.
    local server=("$ROOT/scripts/moto_server.py")
    [[ "${S3WAL_MOTO_STOCK:-0}" == 1 ]] && server=(-m moto.server)
    say "server: ${server[*]}"
    PYTHONPATH="$PYPATH" "$PY" "${server[@]}" -H 127.0.0.1 -p "$port" >"$LOGFILE" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$PIDFILE"
    local waited=0
    until answers "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PIDFILE"
            tail -n 20 "$LOGFILE" >&2 || true
            die "moto exited before answering (port $port taken?)"
        fi
        if ((waited >= 600)); then
            stop
            die "moto did not answer on port $port within 60 s"
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    write_env "$port"
    say "moto is up (pid $pid); env in $ENVFILE"
    cat "$ENVFILE"
}

stop() {
    if [[ ! -f "$PIDFILE" ]]; then
        say "not running"
        return 0
    fi
    local pid
    pid="$(cat "$PIDFILE")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
        say "stopped moto (pid $pid)"
    fi
    rm -f "$PIDFILE" "$ENVFILE"
}

case "${1:-}" in
install) install ;;
start) start ;;
stop) stop ;;
env)
    running || die "not running: use 'scripts/moto.sh start'"
    cat "$ENVFILE"
    ;;
*)
    sed -n '2,22p' "$0" >&2
    exit 2
    ;;
esac
