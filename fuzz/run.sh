#!/usr/bin/env bash
# Run every fuzz target (or those named) under libFuzzer for SECONDS each, one after another.
# The stable toolchain runs cargo-fuzz with RUSTC_BOOTSTRAP=1 (it passes -Z flags to rustc).
# New inputs go to a scratch corpus (WORK, default /tmp/rtmpsniff-fuzz); the committed corpus
# in fuzz/corpus/ is read, and `cargo fuzz cmin` merges back what is worth keeping.
#   fuzz/run.sh 600                    # ten minutes each
#   fuzz/run.sh 30 chunks amf0         # a smoke run of two targets
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(RUSTC_BOOTSTRAP=1 cargo fuzz list)
fi
work=${WORK:-/tmp/rtmpsniff-fuzz}
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
    mkdir -p "$work/$t" artifacts/"$t"
    echo "== $t: $secs s"
    # -rss_limit_mb and -malloc_limit_mb make runaway memory a finding; -timeout a hang.
    cargo fuzz run "$t" "$work/$t" "corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
        -max_len=65536 -print_final_stats=1 2>&1 | tail -n 25
done
