#!/usr/bin/env bash
# `make dev`: run the function on 127.0.0.1 under `cargo lambda watch`.
#
# Key source, first match wins:
#   SECRET_ID set         -> reads that Secrets Manager secret (AWS credentials and region from
#                            the environment), then talks to Momento
#   MOMENTO_API_KEY set   -> talks to Momento directly (MOMENTO_ENDPOINT too for v2 keys)
#   neither               -> starts the loopback Momento stand-in and uses a local key
# Ports: DEV_PORT (default 9000) for HTTP/invoke, STANDIN_PORT (default 9090),
# CONTROL_PORT (optional: the stand-in's fault-injection port).
# Prints "READY <url>" once the server listens; Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/../.."

DEV_PORT="${DEV_PORT:-9000}"
STANDIN_PORT="${STANDIN_PORT:-9090}"
CONTROL_PORT="${CONTROL_PORT:-}"
FUNCTION=token-vending-machine
BASE="http://127.0.0.1:${DEV_PORT}/lambda-url/${FUNCTION}"
export PATH="$PWD/.venv/bin:$PATH"

command -v cargo-lambda >/dev/null || { echo "dev: cargo-lambda missing; run via 'make dev' (it installs it)" >&2; exit 2; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
require_free() {
  if port_in_use "$1"; then
    echo "dev: port $1 is already in use; pick another, e.g. make dev $2=$(( $1 + 100 ))" >&2
    exit 2
  fi
}

kill_tree() {
  local child
  for child in $(pgrep -P "$1" 2>/dev/null); do kill_tree "$child"; done
  kill "$1" 2>/dev/null || true
}
children=()
workdir=$(mktemp -d)
cleanup() {
  for pid in "${children[@]}"; do kill_tree "$pid"; done
  rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

require_free "$DEV_PORT" DEV_PORT

# An explicit MOMENTO_ENDPOINT_OVERRIDE is kept in the first two modes (a private endpoint, or a test's stand-in).
via="${MOMENTO_ENDPOINT_OVERRIDE:+ via ${MOMENTO_ENDPOINT_OVERRIDE}}"
if [ -n "${SECRET_ID:-}" ]; then
  mode="Momento${via}, with the key from Secrets Manager secret ${SECRET_ID}"
  unset MOMENTO_API_KEY
elif [ -n "${MOMENTO_API_KEY:-}" ]; then
  mode="Momento${via}, with the key in MOMENTO_API_KEY"
else
  require_free "$STANDIN_PORT" STANDIN_PORT
  [ -z "$CONTROL_PORT" ] || require_free "$CONTROL_PORT" CONTROL_PORT
  cargo build --quiet -p momento-standin --bin momento-standin
  mkfifo "$workdir/standin"
  "${CARGO_TARGET_DIR:-target}/debug/momento-standin" --port "$STANDIN_PORT" ${CONTROL_PORT:+--control-port "$CONTROL_PORT"} >"$workdir/standin" 2>&1 &
  children+=("$!")
  exec 4<"$workdir/standin"
  while IFS= read -r line <&4; do
    echo "[stand-in] $line"
    case "$line" in MOMENTO_API_KEY=*) export MOMENTO_API_KEY="${line#MOMENTO_API_KEY=}"; break ;; esac
  done
  [ -n "${MOMENTO_API_KEY:-}" ] || { echo "dev: the Momento stand-in did not start" >&2; exit 1; }
  sed -u 's/^/[stand-in] /' <&4 &
  export MOMENTO_ENDPOINT_OVERRIDE="http://127.0.0.1:${STANDIN_PORT}"
  mode="the loopback Momento stand-in at ${MOMENTO_ENDPOINT_OVERRIDE}"
fi

# Build first so the first request does not wait for a compile.
cargo build --quiet --bin "$FUNCTION"

# --disable-cors: the browser must see the function's own CORS headers, as in production.
mkfifo "$workdir/watch"
cargo lambda watch --quiet --disable-cors --invoke-address 127.0.0.1 --invoke-port "$DEV_PORT" >"$workdir/watch" 2>&1 &
children+=("$!")
exec 5<"$workdir/watch"
while IFS= read -r line <&5; do
  echo "$line"
  case "$line" in *"starting Runtime server"*) break ;; esac
done
sed -u '' <&5 &
# cargo-lambda logs that line before its listener accepts: READY only once it does
# (a test that connected on READY was refused now and then).
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/${DEV_PORT}") 2>/dev/null && break
  sleep 0.1
done

cat <<MSG

Token vending machine running locally against ${mode}.
Try:
  curl -i ${BASE}/tokens          # first call: outcome=miss; again: outcome=hit, same token
  .venv/bin/cargo-lambda lambda invoke ${FUNCTION} -A 127.0.0.1 -P ${DEV_PORT} --data-file events/rest-get-tokens-order.json
(curl sends HTTP API v2 events; REST API v1 events reach the function only through cargo lambda invoke.)
Ctrl-C stops everything.
READY ${BASE}
MSG
wait
