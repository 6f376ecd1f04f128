#!/usr/bin/env bash
# Builds every cargo-fuzz target in fuzz/ and runs each one for a while.
#
#   scripts/fuzz.sh           # each target for $FUZZ_SECONDS seconds (default 10)
#   scripts/fuzz.sh 3600      # each target for an hour
#
# The toolchain is stable; cargo-fuzz passes nightly-only rustc flags (-Z sanitizer=address, ...),
# which RUSTC_BOOTSTRAP=1 allows. Crashes are kept in fuzz/artifacts/<target>/, the growing corpus
# in fuzz/corpus/<target>/ (seeded with valid encodings on every run).
set -euo pipefail

seconds="${1:-${FUZZ_SECONDS:-10}}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: $0 [seconds per target]   (got '$seconds')" >&2
    exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing; installing it"
    cargo install cargo-fuzz --locked
fi

cargo fuzz build
cargo run --quiet --example seed_corpus corpus

mapfile -t targets < <(cargo fuzz list)
failed=()
for target in "${targets[@]}"; do
    echo "=== $target: ${seconds}s"
    if ! cargo fuzz run "$target" -- -max_total_time="$seconds" -print_final_stats=1; then
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "FAILED targets: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "all ${#targets[@]} fuzz targets ran ${seconds}s each without a failure"
