#!/usr/bin/env bash
# Fuzzing: every cargo-fuzz target in fuzz/ for a bounded time, starting from the committed corpus
# (fuzz/corpus/TARGET). Runs on the stable toolchain the machine comes with: RUSTC_BOOTSTRAP=1 lets
# cargo-fuzz pass its -Z flags, and --sanitizer none needs no nightly-only sanitizer runtime.
#
#   .ci/fuzz.sh                  # each target for KEYGATE_FUZZ_SECONDS (default 60) seconds
#   KEYGATE_FUZZ_SECONDS=3600 .ci/fuzz.sh filter   # one target, longer
#
# New inputs go to a scratch directory, so a run never changes the checkout; to keep what a long
# run found, `cargo fuzz cmin` it into fuzz/corpus/TARGET and commit. A crash fails the run and
# leaves its input in fuzz/artifacts/TARGET/; turn it into a regression test before fixing it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"

seconds=${KEYGATE_FUZZ_SECONDS:-60}
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
# --dev: debug assertions and overflow checks on, and a build several minutes shorter.
flags=(--sanitizer none --dev)

targets=("$@")
if ((${#targets[@]} == 0)); then
    mapfile -t targets < <(cargo fuzz list)
fi
cargo fuzz build "${flags[@]}"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=()
for target in "${targets[@]}"; do
    echo "===== fuzz $target (${seconds}s)"
    mkdir -p "$scratch/$target" "corpus/$target"
    if ! cargo fuzz run "${flags[@]}" "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1; then
        failed+=("$target")
    fi
done
if ((${#failed[@]})); then
    echo "fuzzing found crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzzing: ${#targets[@]} targets, ${seconds}s each, no crash"
