#!/usr/bin/env bash
# Runs every Berth test on a Debian 12 machine, installing what is missing: apt packages,
# Berth's own images (built locally, no registry needed), then formatting and lint checks,
# unit tests and the integration tests against real Docker containers.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

install_packages() {
    local missing=()
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v docker >/dev/null || missing+=(docker.io)
    command -v curl >/dev/null || missing+=(curl)
    # psql runs under `berth run` in the linking tests, like a developer's tool would.
    command -v psql >/dev/null || missing+=(postgresql-client)
    # The TypeScript SDK's tests run under Debian's node (18 on bookworm), no npm needed.
    command -v node >/dev/null || missing+=(nodejs)
    # The package test: dpkg-deb reads and unpacks the .deb, systemd-analyze verifies its unit.
    command -v dpkg-deb >/dev/null || missing+=(dpkg)
    command -v systemd-analyze >/dev/null || missing+=(systemd)
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# cargo-deb builds the Debian package (scripts/package.sh, and the package test).
install_cargo_deb() {
    command -v cargo-deb >/dev/null && return
    log "installing cargo-deb"
    cargo install cargo-deb --locked
}

ensure_docker() {
    if docker info >/dev/null 2>&1; then return; fi
    log "starting the Docker engine"
    (service docker start || systemctl start docker || (dockerd >/var/log/dockerd.log 2>&1 &)) >/dev/null 2>&1 || true
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && return; sleep 1; done
    echo "Docker engine is not reachable" >&2
    exit 1
}

install_packages
install_cargo_deb
ensure_docker

log "building"
cargo build --workspace --all-targets

log "building Berth's images (cached by input hash)"
BERTH_DATA_DIR="${BERTH_IMAGE_WORKDIR:-/var/cache/berth-images}" \
    "${CARGO_TARGET_DIR:-target}/debug/berth" images build

log "format and lint"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

log "tests"
results="$(mktemp)"
# Integration tests share one Docker engine and host ports: run them one at a time.
# (--lib --bins --tests: the crates have no doc tests, and benches are run by `cargo bench`.)
cargo test --workspace --lib --bins --tests --no-fail-fast -- --test-threads=1 2>&1 | tee "$results"

log "API fuzzing (short and bounded; FUZZ_EXAMPLES / FUZZ_MAX_TIME for a long run)"
FUZZ_EXAMPLES="${FUZZ_EXAMPLES:-10}" FUZZ_MAX_TIME="${FUZZ_MAX_TIME:-300}" scripts/fuzz.sh

passed=$(grep -Eo '[0-9]+ passed' "$results" | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$results" | awk '{s+=$1} END {print s+0}')
rm -f "$results"
echo
echo "berth: ${passed} passed, ${failed} failed"
