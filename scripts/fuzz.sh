#!/usr/bin/env bash
# Fuzzes the live API from its own OpenAPI document with schemathesis: a real `berth serve`
# with real Docker, authenticated, bounded in examples and time. Fails on any 5xx (but the
# documented 503s scripts/schemathesis.toml lists), any response
# that breaks its documented schema, or a request that hangs past the timeout.
#
#   scripts/fuzz.sh                        # short run (what CI does)
#   FUZZ_EXAMPLES=200 FUZZ_MAX_TIME=3600 scripts/fuzz.sh   # long run
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

EXAMPLES="${FUZZ_EXAMPLES:-15}"
MAX_TIME="${FUZZ_MAX_TIME:-600}"
BIN="${CARGO_TARGET_DIR:-target}/debug/berth"
SCHEMATHESIS_VERSION=4.32.5

if ! command -v st >/dev/null || ! st --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    python3 -m pip install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
[ -x "$BIN" ] || cargo build --bin berth

work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
# KV's Redis service gets a name of this run's own (`/api/kv/enable` may be fuzzed too), so
# runs sharing a Docker engine never meet on one container.
# A fuzzed image swap to an image that never becomes ready (a Redis image on a MongoDB service)
# holds the service for the readiness timeout twice (the try and the rollback). Operations
# queued behind it answer 202 at the sync bound, but a link (not an operation: Temps answers it
# 201) waits in the queue; the default 120 s twice would keep it past schemathesis' 180 s
# request timeout, so this bounded run uses a short readiness timeout.
printf 'readiness_timeout_secs = 30\n' >"$work/config.toml"
BERTH_DATA_DIR="$work/data" BERTH_KV_SERVICE_NAME="kv-fuzz-$port" \
    "$BIN" serve --config "$work/config.toml" --listen "127.0.0.1:$port" >"$work/berth.log" 2>&1 &
pid=$!

cleanup() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if [ -f "$work/data/instance-id" ]; then
        label="label=berth.instance=$(cat "$work/data/instance-id")"
        docker ps -aq --filter "$label" | xargs -r docker rm -f >/dev/null
        docker volume ls -q --filter "$label" | xargs -r docker volume rm -f >/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.1
done
token="$(cat "$work/data/admin-token")"
curl -fs -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/openapi.json" >"$work/openapi.json"

set +e
# From the scratch directory: schemathesis keeps a cache in its working directory.
cd "$work"
st --config-file "$repo/scripts/schemathesis.toml" run "$work/openapi.json" \
    --url "http://127.0.0.1:$port" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,negative_data_rejection,ignored_auth \
    --max-examples "$EXAMPLES" \
    --max-time "$MAX_TIME" \
    --request-timeout 180 \
    --workers 1 \
    --generation-database none \
    --seed 1 \
    --no-color
status=$?
set -e
cd - >/dev/null
rss_kb="$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)"
echo "berth serve RSS after the fuzz run: $((rss_kb / 1024)) MB"
if [ "$status" -ne 0 ]; then
    # A 500 names only a correlation id; its cause is in the server log, which goes with the
    # scratch directory: keep the errors where CI's output shows them.
    echo "berth serve's errors and warnings during the fuzz run (last 60):" >&2
    grep -E "ERROR|WARN" "$work/berth.log" | tail -60 >&2 || true
fi
if grep -q "panicked" "$work/berth.log"; then
    echo "berth serve panicked during the fuzz run:" >&2
    grep -A5 panicked "$work/berth.log" >&2
    status=1
fi
exit "$status"
