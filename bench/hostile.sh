#!/usr/bin/env bash
# How fast is the search for chunk headers on bytes made to defeat it? MB/s (input bytes per
# second of user CPU) and peak RSS of `rtmpsniff read` on captures of hostile bytes, with
# every direction searching to the end (`--limit lockon_bytes=1G`) and with the default
# give-up, side by side for each binary given (e.g. an older build first).
#
#   bench/hostile.sh [BINARY...]            (default target/release/rtmpsniff)
#
# The captures (64 MB of hostile bytes each, one connection) are written once into DATA_DIR
# (default /tmp/rtmpsniff-hostile) by the ignored test `hostile_lockon_capture` in
# tests/it/lockon.rs, whose comment says what each kind of bytes does: `c4`, `wait`, `headers`,
# `messages`; `-mid` joined mid-stream (no handshake), `-hs` after a real handshake and publish.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${DATA_DIR:-/tmp/rtmpsniff-hostile}"
BYTES="${BYTES:-64000000}"
mkdir -p "$DATA"
cd "$ROOT"
[ $# -gt 0 ] || set -- "$ROOT/target/release/rtmpsniff"
for kind in c4 wait headers messages; do
    for a in 0 1; do
        f="$DATA/$kind-$([ $a = 1 ] && echo hs || echo mid).pcap"
        [ -s "$f" ] || RTMPSNIFF_CAPTURE="$f" RTMPSNIFF_KIND=$kind RTMPSNIFF_BYTES=$BYTES \
            RTMPSNIFF_AFTER_HANDSHAKE=$a cargo test -q --release --test it hostile_lockon_capture \
            -- --ignored >/dev/null
    done
done
printf '%-14s %-10s %-26s %10s %10s\n' capture limit binary "MB/s (CPU)" "peak RSS"
for f in "$DATA"/*.pcap; do
    for limit in 1G default; do
        for bin in "$@"; do
            out="$(mktemp -d)"
            args=(read -q "$f" -o "$out/o")
            [ $limit = default ] || args+=(--limit "lockon_bytes=$limit")
            rc=0
            /usr/bin/time -f '%M %U' -o "$out/time" "$bin" "${args[@]}" 2>/dev/null || rc=$?
            read -r kb user < <(tail -n 1 "$out/time")
            if [ $rc -ge 2 ]; then
                # (an older build without the limit refuses it)
                printf '%-14s %-10s %-26s %10s\n' "$(basename "$f" .pcap)" $limit "$bin" "n/a"
                rm -rf "$out"
                continue
            fi
            awk -v c="$(basename "$f" .pcap)" -v l="$limit" -v b="$(basename "$(dirname "$(dirname "$bin")")")/$(basename "$bin")" \
                -v kb="$kb" -v u="$user" -v n="$BYTES" \
                'BEGIN { printf "%-14s %-10s %-26s %10.0f %7.1f MiB\n", c, l, b, n/1e6/(u>0?u:0.01), kb/1024 }'
            rm -rf "$out"
        done
    done
done
