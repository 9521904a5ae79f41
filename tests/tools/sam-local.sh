#!/usr/bin/env bash
# `make sam-local`: the function under SAM's own local runtime, in a container,
# with the template's configuration:
#   1. a Docker engine: the running one (DOCKER_HOST or the default socket), or
#      a private dockerd (own socket, data root, no iptables) stopped at the end;
#   2. the base image SAM runs, public.ecr.aws/lambda/provided:al2023-x86_64; when
#      absent (no registry can be reached here) a stand-in made with
#      `docker import` from host files: static busybox, the host's glibc, the CA
#      bundle, /var/task, /var/runtime, /opt. A real image, when present, is used;
#   3. the Momento and Secrets Manager stand-ins on the Docker bridge's gateway
#      address (never a public one), and a derived invoke image carrying only
#      the test environment (endpoint overrides, fake AWS credentials); the
#      template gains no test settings. SECRET_ID comes from an --env-vars file;
#   4. `sam local invoke` of every file in events/ (statuses from
#      tests/event-expectations.json; null = an invocation error), and of the
#      files tests/event-expectations-cognito.json lists with CALLER_IDENTITY=cognito, then
#      `sam local start-api` on a loopback port: GET /tokens twice (200, same
#      token) and a POST (the function's 405: the specs route every method);
#   5. `sam local invoke` of a token event against examples/pizza-app, the
#      template nested in an existing app (TokenVendingMachine/TokenVendingMachineFunction).
# Everything runs on the x86_64 test builds `make sam-build` makes in their own
# build directories (TEST_BUILD_DIR, EXAMPLE_BUILD_DIR), never .aws-sam/build.
# Everything it starts is stopped by PID and removed in a trap, even on failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
export PATH="$ROOT/.venv/bin:$PATH" SAM_CLI_TELEMETRY=0
BASE_IMAGE=public.ecr.aws/lambda/provided:al2023-x86_64
INVOKE_IMAGE=tvm-sam-local-invoke:test
PARAMS=(--parameter-overrides "Architecture=x86_64 MomentoApiKey=unused-locally")
BUILD_DIR="$ROOT/${TEST_BUILD_DIR:-.aws-sam/build-x86_64}"
EXAMPLE_DIR="$ROOT/${EXAMPLE:-examples/pizza-app}"
EXAMPLE_BUILD="${EXAMPLE_BUILD_DIR:-$ROOT/.aws-sam/build-pizza-app-x86_64}"
work=$(mktemp -d /tmp/tvm-sam-local.XXXXXX)
started=$(date +%s)
step() { echo "[sam-local +$(( $(date +%s) - started ))s] $*"; }
pids=()
own_dockerd=""

cleanup() {
  local rc=$?
  set +e
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  if docker info >/dev/null 2>&1; then
    # Containers SAM started from our image, and the images this run made.
    ids=$(docker ps -aq --filter "ancestor=$INVOKE_IMAGE" 2>/dev/null; docker ps -aq --filter "label=tvm-sam-local" 2>/dev/null)
    [ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1
    [ -n "$own_dockerd" ] || docker image rm -f "$INVOKE_IMAGE" >/dev/null 2>&1
  fi
  if [ -n "$own_dockerd" ]; then
    local dpid
    dpid=$(cat "$work/docker.pid" 2>/dev/null)
    if [ -n "$dpid" ]; then
      kill "$dpid" 2>/dev/null
      for _ in $(seq 1 100); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$dpid" 2>/dev/null
    fi
    # What dockerd leaves behind: its network namespace mount and the bridge.
    grep -o "$work/exec[^ ]*" /proc/mounts | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
    ip link del docker0 2>/dev/null
  fi
  rm -rf "$work"
  # SAM's own marker for the image it builds on ours.
  rm -f /tmp/"${INVOKE_IMAGE%%:*}"_rapid-*.building.status
  [ $rc -eq 0 ] && step "done" || step "FAILED (exit $rc)"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. a Docker engine --------------------------------------------------------
if docker info >/dev/null 2>&1; then
  step "using the running Docker engine (${DOCKER_HOST:-default socket})"
else
  if ! command -v dockerd >/dev/null; then
    step "installing Debian's docker.io"
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq docker.io >/dev/null
  fi
  # A bridge left by an earlier, killed run would clash with ours.
  if ip link show docker0 >/dev/null 2>&1 && ! pgrep -x dockerd >/dev/null; then ip link del docker0; fi
  own_dockerd=1
  export DOCKER_HOST="unix://$work/docker.sock"
  dockerd --host "$DOCKER_HOST" --data-root "$work/data" --exec-root "$work/exec" \
    --pidfile "$work/docker.pid" --iptables=false --ip6tables=false --ip-forward=false \
    >"$work/dockerd.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 300); do docker info >/dev/null 2>&1 && break; sleep 0.1; done
  docker info >/dev/null 2>&1 || { cat "$work/dockerd.log"; echo "dockerd did not start" >&2; exit 1; }
  step "started a private dockerd (pid $(cat "$work/docker.pid"), $DOCKER_HOST)"
fi
# The default bridge's gateway: this machine's address on docker0, which containers reach.
GATEWAY=$(docker network inspect bridge --format '{{range .IPAM.Config}}{{.Gateway}}{{end}}' 2>/dev/null || true)
[ -n "$GATEWAY" ] || GATEWAY=$(ip -4 -o addr show docker0 2>/dev/null | awk '{print $4}' | cut -d/ -f1)
[ -n "$GATEWAY" ] || { echo "no address for the Docker bridge (docker0)" >&2; exit 1; }

# --- 2. the base image -----------------------------------------------------------
if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  step "using $BASE_IMAGE as found"
else
  command -v busybox >/dev/null && busybox --list >/dev/null 2>&1 && file -L "$(command -v busybox)" | grep -q static || {
    step "installing Debian's busybox-static"
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq busybox-static >/dev/null
  }
  rootfs="$work/rootfs"
  mkdir -p "$rootfs"/{bin,lib64,lib/x86_64-linux-gnu,etc/ssl/certs,etc/pki/tls/certs,var/task,var/runtime,var/rapid,opt,tmp}
  cp "$(command -v busybox)" "$rootfs/bin/busybox"
  for applet in $(busybox --list); do [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"; done
  ln -s bin "$rootfs/sbin"; mkdir -p "$rootfs/usr"; ln -s ../bin "$rootfs/usr/bin"
  for lib in libc.so.6 libm.so.6 libgcc_s.so.1 libpthread.so.0 libdl.so.2 librt.so.1; do
    [ -e "/lib/x86_64-linux-gnu/$lib" ] && cp -L "/lib/x86_64-linux-gnu/$lib" "$rootfs/lib/x86_64-linux-gnu/"
  done
  cp -L /lib64/ld-linux-x86-64.so.2 "$rootfs/lib64/"
  cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
  cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/pki/tls/certs/ca-bundle.crt"
  echo "root:x:0:0:root:/root:/bin/sh" >"$rootfs/etc/passwd"
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV LAMBDA_TASK_ROOT=/var/task LAMBDA_RUNTIME_DIR=/var/runtime PATH=/usr/local/bin:/usr/bin:/bin:/opt/bin' \
    --change 'WORKDIR /var/task' - "$BASE_IMAGE" >/dev/null
  step "built a stand-in $BASE_IMAGE from host files (docker import)"
fi

# --- 3. stand-ins on the bridge, the invoke image, the env-vars file ---------------
target="${CARGO_TARGET_DIR:-target}"
[ -x "$target/debug/momento-standin" ] || cargo build -q -p momento-standin
port() { python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"; }
"$target/debug/momento-standin" --bind "$GATEWAY" --port "$(port "$GATEWAY")" \
  --api-key sam-local-momento-secret --secret tvm/sam-local >"$work/standin.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -qs '^MOMENTO_API_KEY=' "$work/standin.out" && break; sleep 0.1; done
grep -q '^MOMENTO_API_KEY=' "$work/standin.out" || { cat "$work/standin.out"; exit 1; }
val() { sed -n "s/^$1=//p" "$work/standin.out"; }
step "stand-ins on the bridge: Momento $(val MOMENTO_ENDPOINT_OVERRIDE), Secrets Manager $(val AWS_ENDPOINT_URL_SECRETS_MANAGER)"

# Only what the test needs, on top of the base image; the template is untouched.
mkdir -p "$work/image"
cat >"$work/image/Dockerfile" <<EOF
FROM $BASE_IMAGE
LABEL tvm-sam-local=1
ENV MOMENTO_ENDPOINT_OVERRIDE=$(val MOMENTO_ENDPOINT_OVERRIDE) \\
    AWS_ENDPOINT_URL_SECRETS_MANAGER=$(val AWS_ENDPOINT_URL_SECRETS_MANAGER)
EOF
DOCKER_BUILDKIT=0 docker build -q -t "$INVOKE_IMAGE" "$work/image" >/dev/null 2>"$work/image.err" || { cat "$work/image.err"; exit 1; }
# SECRET_ID is declared by the template (so --env-vars may set it): the stand-in's secret.
cat >"$work/env.json" <<EOF
{ "TokenVendingMachineFunction": { "SECRET_ID": "$(val SECRET_ID)" } }
EOF
# Fake credentials for the SDK's signer; the stand-in checks none, and nothing reaches AWS.
export AWS_ACCESS_KEY_ID=AKIDSAMLOCAL AWS_SECRET_ACCESS_KEY=sam-local-not-a-secret AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN
SAM_LOCAL=(--template "$BUILD_DIR/template.yaml" --skip-pull-image --invoke-image "$INVOKE_IMAGE" "${PARAMS[@]}")

# --- build -----------------------------------------------------------------------
# The x86_64 test builds, each in its own directory (never .aws-sam/build, where `sam deploy` reads).
if [ ! -x "$BUILD_DIR/TokenVendingMachineFunction/bootstrap" ] || [ -n "${SAM_LOCAL_REBUILD:-}" ]; then
  step "sam build (x86_64) into $BUILD_DIR"
  sam build --build-dir "$BUILD_DIR" "${PARAMS[@]}" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
fi
if [ ! -x "$EXAMPLE_BUILD/TokenVendingMachine/TokenVendingMachineFunction/bootstrap" ] || [ -n "${SAM_LOCAL_REBUILD:-}" ]; then
  step "sam build of the example (x86_64) into $EXAMPLE_BUILD"
  (cd "$EXAMPLE_DIR" && sam build --beta-features --build-dir "$EXAMPLE_BUILD" "${PARAMS[@]}") >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
fi

# --- 4a. sam local invoke of every sample event, in both identity modes ----------
# invoke_listed <expectations file> <env-vars file> <mode>: every event the file
# lists, through `sam local invoke`, its status checked (null = an invocation error).
failures=0
invoke_listed() {
  local expectations=$1 env_file=$2 mode=$3 name expected out got
  for name in $(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))))' "$expectations"); do
    expected=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$expectations" "$name")
    out=$(sam local invoke TokenVendingMachineFunction -e "events/$name" "${SAM_LOCAL[@]}" --env-vars "$env_file" 2>"$work/invoke.err" | tail -n 1) || true
    got=$(python3 -c '
import json, sys
try:
    v = json.loads(sys.argv[1])
except ValueError:
    print("unreadable"); sys.exit()
print(v["statusCode"] if isinstance(v, dict) and "statusCode" in v else ("None" if isinstance(v, dict) and "errorType" in v else "unreadable"))
' "$out")
    if [ "$got" = "$expected" ]; then
      step "sam local invoke ($mode) -e events/$name: ${got/None/invocation error}"
    else
      step "sam local invoke ($mode) -e events/$name: expected $expected, got $got: $out"; sed -n '1,40p' "$work/invoke.err"
      failures=$((failures + 1))
    fi
    [ -n "${first_output:-}" ] || first_output="$out"
  done
}
# Every file in events/ must be listed for the default mode.
python3 - tests/event-expectations.json <<'EOF' || exit 1
import json, os, sys
listed = sorted(json.load(open(sys.argv[1])))
files = sorted(f for f in os.listdir("events") if f.endswith(".json"))
assert listed == files, f"events/ and {sys.argv[1]} disagree: {set(listed) ^ set(files)}"
EOF
invoke_listed tests/event-expectations.json "$work/env.json" source-ip
# CALLER_IDENTITY is declared by the template (set from UserPoolArn), so --env-vars may set it.
cat >"$work/env-cognito.json" <<EOF
{ "TokenVendingMachineFunction": { "SECRET_ID": "$(val SECRET_ID)", "CALLER_IDENTITY": "cognito" } }
EOF
invoke_listed tests/event-expectations-cognito.json "$work/env-cognito.json" cognito
echo "one sam local invoke output: $first_output"
[ $failures -eq 0 ] || { echo "$failures event(s) got the wrong answer" >&2; exit 1; }

# --- 4b. sam local start-api + curl ------------------------------------------------
api_port=$(port 127.0.0.1)
sam local start-api --host 127.0.0.1 --port "$api_port" "${SAM_LOCAL[@]}" --env-vars "$work/env.json" >"$work/api.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 600); do curl -s -o /dev/null "http://127.0.0.1:$api_port/" && break; sleep 0.1; done
curl -s -o /dev/null "http://127.0.0.1:$api_port/" || { step "start-api did not come up in 60 s"; cat "$work/api.log"; exit 1; }
curl_json() { curl -s -w '\n%{http_code}' "$@"; }
first=$(curl_json "http://127.0.0.1:$api_port/tokens"); second=$(curl_json "http://127.0.0.1:$api_port/tokens")
post=$(curl_json -X POST "http://127.0.0.1:$api_port/tokens")
echo "curl http://127.0.0.1:$api_port/tokens → $(tail -n1 <<<"$first") $(head -n1 <<<"$first" | sed -E 's/"token":"([^"]{12})[^"]*"/"token":"\1…"/')"
echo "curl http://127.0.0.1:$api_port/tokens → $(tail -n1 <<<"$second") (again)"
echo "curl -X POST http://127.0.0.1:$api_port/tokens → $(tail -n1 <<<"$post") $(head -n1 <<<"$post")"
python3 - "$first" "$second" "$post" <<'EOF' || { cat "$work/api.log"; exit 1; }
import json, sys, time
first, second, post = ([l for l in a.split("\n")] for a in sys.argv[1:4])
assert first[-1] == "200" and second[-1] == "200", (first, second)
a, b = json.loads(first[0]), json.loads(second[0])
assert a["token"] and a["exp"] > time.time() + 60, a
assert (a["token"], a["exp"]) == (b["token"], b["exp"]), "the same caller gets the same token"
# The specs route every method of /tokens to the function: its 405, not SAM's 403.
assert post[-1] == "405", post
assert json.loads(post[0]) == {"message": "Method not allowed"}, post
EOF
step "start-api: two GETs 200 with the same token; POST the function's 405"

# --- 5. the example app: the template nested in an existing app ------------------
cat >"$work/env-example.json" <<EOF
{ "TokenVendingMachineFunction": { "SECRET_ID": "$(val SECRET_ID)" } }
EOF
out=$(sam local invoke TokenVendingMachine/TokenVendingMachineFunction -e events/rest-get-tokens-order.json \
  --template "$EXAMPLE_BUILD/template.yaml" --skip-pull-image --invoke-image "$INVOKE_IMAGE" \
  --parameter-overrides "Architecture=x86_64 MomentoApiKey=unused-locally" --env-vars "$work/env-example.json" \
  2>"$work/invoke.err" | tail -n 1) || true
python3 - "$out" <<'EOF' || { sed -n '1,60p' "$work/invoke.err"; exit 1; }
import json, sys, time
answer = json.loads(sys.argv[1])
assert answer["statusCode"] == 200, answer
body = json.loads(answer["body"])
assert body["token"] and body["exp"] > time.time() + 60, body
EOF
step "example app: sam local invoke TokenVendingMachine/TokenVendingMachineFunction -e events/rest-get-tokens-order.json: 200 with a token"
