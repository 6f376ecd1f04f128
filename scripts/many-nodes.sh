#!/usr/bin/env bash
# Many participants on this machine: N in-process nodes on 127.0.0.1 share one document
# database, each writes W documents, and the run prints one JSON line with the seconds to
# convergence and the sync bytes sent per node (mean and max).
#
#   scripts/many-nodes.sh           # 50 nodes, 10 writes each
#   scripts/many-nodes.sh 100 20    # 100 nodes, 20 writes each
#
# Extra arguments after the two counts go to the binary (e.g. --timeout 900).
set -euo pipefail

nodes="${1:-${NODES:-50}}"
writes="${2:-${WRITES:-10}}"
for v in "$nodes" "$writes"; do
    if ! [[ "$v" =~ ^[0-9]+$ ]]; then
        echo "usage: $0 [nodes] [writes per node] [extra args]   (got '$v')" >&2
        exit 2
    fi
done
shift $(( $# > 2 ? 2 : $# ))

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# Every node holds a few sockets and an LMDB environment: raise the soft descriptor limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# Build output goes to stderr; stdout carries only the JSON line.
exec cargo run --release -p threads-benches --bin many_nodes -- --nodes "$nodes" --writes "$writes" "$@"
