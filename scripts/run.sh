#!/usr/bin/env bash
# Builds and runs Berth on a Debian 12 machine with Docker: installs debootstrap if missing,
# builds the release binary, builds Berth's own images locally (no registry needed; cached by
# input hash, so later runs skip this), then runs `berth serve` with any arguments given.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v debootstrap >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
cargo build --release --bin berth --bin berth-s3d  # berth-s3d goes into the berth/s3 image
./target/release/berth images build
exec ./target/release/berth serve "$@"
