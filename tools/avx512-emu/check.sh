#!/bin/bash
# Builds the tile check and the parity test binaries (release) and runs each on an emulated
# AVX-512 CPU (see README.md). Exit status: 0 when every one passes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
cargo build -q --release --example check_tiles
bins=$(cargo test --release --no-run --test parity_models --test gpt2_parity --test kernels \
    --test train_parity 2>&1 | sed -n 's/.*Executable.*(\(.*\))/\1/p')
status=0
run() {
    echo "== $*"
    local log rc=0
    log=$(mktemp)
    EMU_TIMEOUT="${EMU_TIMEOUT:-3600}" EMU_MEM="${EMU_MEM:-2048}" \
        EMU_FILES="$PWD/tests/fixtures:$PWD/tests/fixtures" "$here/run-avx512.sh" "$@" >"$log" 2>&1 ||
        rc=$?
    grep -E "mismatches|^  |test result|FAILED|panicked|EXIT CODE" "$log" || tail -5 "$log"
    rm -f "$log"
    [ "$rc" = 0 ] || status=1
}
[ -n "$bins" ] || { echo "check.sh: found no test binaries to run" >&2; exit 2; }
run target/release/examples/check_tiles
for b in $bins; do run "$b" --test-threads=1; done
exit $status
