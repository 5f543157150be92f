#!/usr/bin/env bash
# Does buffered_bytes_total bound the process's real memory? Peak RSS of `rtmpsniff read` on
# two captures made to hold as much as they can, at several limits, next to the limit.
#
#   bench/memory-limit.sh [BINARY]          (default target/release/rtmpsniff)
#
# The captures are written once into DATA_DIR (default /tmp/rtmpsniff-memory) by ignored
# tests in tests/it/limits.rs: `partial.pcap`, 64 connections each holding 15 MiB of a 16 MiB
# message (1.1 GB); `holes.pcap`, 400 connections each sending 8,000 one-byte segments with a
# hole before each, never acknowledged (227 MB), the costliest bytes to keep.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN=$(realpath "${1:-$ROOT/target/release/rtmpsniff}")
DATA="${DATA_DIR:-/tmp/rtmpsniff-memory}"
mkdir -p "$DATA"
cd "$ROOT"
for c in partial holes; do
    if [ ! -s "$DATA/$c.pcap" ]; then
        test="${c%s}"
        case $c in
            partial) test=partial_messages_capture ;;
            holes) test=hole_segments_capture ;;
        esac
        RTMPSNIFF_CAPTURE="$DATA/$c.pcap" cargo test -q --release --test it "$test" -- --ignored >/dev/null
    fi
done
printf '%-10s %10s %12s %8s %8s\n' capture limit "peak RSS" ratio "wall s"
for c in partial holes; do
    for l in 64 256 1024; do
        out="$(mktemp -d)"
        /usr/bin/time -f '%M %e' -o "$out/time" "$BIN" read -q "$DATA/$c.pcap" -o "$out/o" \
            --limit "buffered_bytes_total=${l}M" 2>/dev/null || true
        read -r kb secs < <(tail -n 1 "$out/time")
        awk -v c="$c" -v l="$l" -v kb="$kb" -v s="$secs" \
            'BEGIN { printf "%-10s %7d MiB %8.1f MiB %7.2fx %8.2f\n", c, l, kb/1024, kb/1024/l, s }'
        rm -rf "$out"
    done
done
