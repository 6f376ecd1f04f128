#!/usr/bin/env bash
# A longer kill -9 campaign than CI's: KILLS (default 2000) SIGKILLs of a writer on one
# repository, then every acknowledged write is checked and the repository synced to a peer.
# Usage: scripts/kill9.sh [KILLS] ; replay a campaign with KILL9_SEED=<seed printed>.
set -euo pipefail
cd "$(dirname "$0")/.."
KILL9_ROUNDS="${1:-2000}" cargo test --release -p threads-driver-tokio --test kill9 -- --nocapture
