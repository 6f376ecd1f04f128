#!/usr/bin/env bash
# Acceptance test of the official JS client (@textile/threads-client 2.3.4, pinned by
# tests/js-client/package-lock.json) against two threadsd daemons the test starts itself on
# free loopback ports; the `threads` CLI is checked against the same daemon. Needs node >= 18 and
# npm; installs the packages with `npm ci`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "js-client: node and npm are required (node 20 recommended)" >&2
  exit 1
fi
# Built with the test suite's feature set (`cargo test --workspace` unifies dev-dependency
# features): after the test suite nothing is compiled again, where `-p ... --bin ...` alone
# would rebuild the libp2p and gRPC stacks with other features.
cargo build --workspace --bins --tests
target="${CARGO_TARGET_DIR:-target}"
(cd tests/js-client && npm ci --no-audit --no-fund --loglevel=error)
node tests/js-client/acceptance.js "$target/debug/threadsd" "$target/debug/threads"
