#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ briefly, from its seed corpus.
#
#   scripts/fuzz.sh [SECONDS]     # SECONDS per target, default 20
#
# Uses the nightly toolchain when there is one (else the default toolchain
# with RUSTC_BOOTSTRAP=1) and cargo-fuzz, which this script installs from
# crates.io when it is missing. Crashes land in
# fuzz/artifacts/<target>/ and make the script fail.
set -euo pipefail

seconds="${1:-20}"
cd "$(dirname "$0")/../fuzz"

# cargo-fuzz passes nightly-only flags (sanitizers, coverage passes). Use
# the nightly toolchain when the machine has one; otherwise let the stable
# compiler accept those flags through RUSTC_BOOTSTRAP, for fuzzing only.
# FUZZ_TOOLCHAIN=default forces the second way.
toolchain=()
if [ "${FUZZ_TOOLCHAIN:-nightly}" = nightly ] && cargo +nightly --version >/dev/null 2>&1; then
    toolchain=(+nightly)
else
    export RUSTC_BOOTSTRAP=1
    echo "fuzz: using the default toolchain with RUSTC_BOOTSTRAP=1"
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

for target in $(cargo "${toolchain[@]}" fuzz list); do
    mkdir -p "corpus/$target"
    cp -n seeds/"$target"/* "corpus/$target/" 2>/dev/null || true
    echo "fuzz: $target for ${seconds}s"
    cargo "${toolchain[@]}" fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=8192
done
