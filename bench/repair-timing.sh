#!/usr/bin/env bash
# Timestamps and recall on the real captures with loss, with repair and without (nr), for
# bench/results/repair-timing.txt: the mid-stream and 1% samples, the 5% captures
# bench/make-loss5.sh makes from the 1% one (seeds 5, 7, 11, 13, 17, 23), and the audio-only
# sample (samples/netns-audio-loss). Per stream: bench/timing.py's row, and without repair
# bench/whole.py's (messages captured whole, and those written); with repair, whole.py's
# messages whole in some copy and how many were written.
#   bench/repair-timing.sh [BINARY]          (default target/release/rtmpsniff)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-${CARGO_TARGET_DIR:-target}/release/rtmpsniff}
O=$(mktemp -d /tmp/rtmpsniff-repair-timing.XXXXXX)
trap 'rm -rf "$O"' EXIT
run() { # label capture truth
    local label=$1 cap=$2 truth=$3
    "$B" read -q -o "$O/$label" "$cap"
    "$B" read -q --no-repair -o "$O/$label-nr" "$cap"
    python3 bench/timing.py "$O/$label" "$truth" "$label"
    python3 bench/whole.py "$cap" "$truth" "$O/$label" "$label" | grep "some copy"
    python3 bench/timing.py "$O/$label-nr" "$truth" "$label nr"
    python3 bench/whole.py "$cap" "$truth" "$O/$label-nr" "$label nr" | grep -v "some copy"
}
echo "# bench/repair-timing.sh $(git rev-parse --short HEAD 2>/dev/null || true)"
run mid samples/netns-midstream/capture.pcap samples/netns-midstream/truth
run 1% samples/netns-loss/capture.pcap samples/netns-loss/truth
for seed in 5 7 11 13 17 23; do
    bench/make-loss5.sh "$O/s$seed.pcap" "$seed" >/dev/null 2>&1
    run "s$seed" "$O/s$seed.pcap" samples/netns-loss/truth
done
run audio samples/netns-audio-loss/capture.pcap samples/netns-audio-loss/truth
