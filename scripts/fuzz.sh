#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ briefly, from its seed corpus.
#
#   scripts/fuzz.sh [SECONDS]     # SECONDS per target, default 20
#
# Needs the nightly toolchain (sanitizers) and cargo-fuzz, which this script
# installs from crates.io when it is missing. Crashes land in
# fuzz/artifacts/<target>/ and make the script fail.
set -euo pipefail

seconds="${1:-20}"
cd "$(dirname "$0")/../fuzz"

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

for target in $(cargo +nightly fuzz list); do
    mkdir -p "corpus/$target"
    cp -n seeds/"$target"/* "corpus/$target/" 2>/dev/null || true
    echo "fuzz: $target for ${seconds}s"
    cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=8192
done
