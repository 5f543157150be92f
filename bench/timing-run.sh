#!/usr/bin/env bash
# Run the release binary over the hard samples and measure timestamps (bench/timing.py).
#   bench/timing-run.sh [loss5.pcap]      (TIMING_OPTS=--no-repair: without repair)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${CARGO_TARGET_DIR:-target}/release/rtmpsniff
O=$(mktemp -d /tmp/rtmpsniff-timing.XXXXXX)
$B read -q ${TIMING_OPTS:-} -o "$O/mid" samples/netns-midstream/capture.pcap
python3 bench/timing.py "$O/mid" samples/netns-midstream/truth mid
$B read -q ${TIMING_OPTS:-} -o "$O/loss" samples/netns-loss/capture.pcap
python3 bench/timing.py "$O/loss" samples/netns-loss/truth loss
if [ -n "${1:-}" ]; then
    $B read -q ${TIMING_OPTS:-} -o "$O/loss5" "$1"
    python3 bench/timing.py "$O/loss5" samples/netns-loss/truth loss5
fi
rm -rf "$O"
