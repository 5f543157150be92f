#!/usr/bin/env bash
# A hostile flow beside a real publisher, captured live: one ffmpeg publishing a 20 s H.264
# + AAC test signal in real time to nginx-rtmp on loopback while a capture of hostile bytes
# (lock-on bait, see tests/it/lockon.rs; one connection to port 1935) is replayed onto `lo`
# at RATE Mbit/s. For each binary given, prints rtmpsniff's CPU seconds, the kernel's drops,
# and how many of the real stream's audio/video tags came out equal to nginx's recording.
#
#   bench/hostile-live.sh [-m MBIT] [-k KIND] [BINARY...]     (default target/release/rtmpsniff)
#
# Needs root, nginx + libnginx-mod-rtmp, ffmpeg, tcpreplay, python3. Uses 127.0.0.1 only.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MBIT=8
KIND=wait
while getopts "m:k:" o; do
    case $o in m) MBIT=$OPTARG ;; k) KIND=$OPTARG ;; *) sed -n 2,10p "$0"; exit 2 ;; esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || set -- "$ROOT/target/release/rtmpsniff"
PORT=19450
T="$(mktemp -d /tmp/rtmpsniff-hostile-live.XXXXXX)"
PIDS=()
cleanup() {
    set +e
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    sleep 0.5
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
HOSTILE="${DATA_DIR:-/tmp/rtmpsniff-hostile}/live-$KIND.pcap"
if [ ! -s "$HOSTILE" ]; then
    mkdir -p "$(dirname "$HOSTILE")"
    (cd "$ROOT" && RTMPSNIFF_CAPTURE="$HOSTILE" RTMPSNIFF_KIND=$KIND RTMPSNIFF_BYTES=24000000 \
        RTMPSNIFF_AFTER_HANDSHAKE=1 cargo test -q --release --test it hostile_lockon_capture \
        -- --ignored >/dev/null)
fi
mkdir -p "$T/logs" "$T/rec"
cat >"$T/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
master_process off;
user root root;
pid $T/nginx.pid;
error_log $T/logs/error.log;
events { worker_connections 64; }
rtmp { server { listen 127.0.0.1:$PORT; application live { live on; record all; record_path $T/rec; record_unique off; } } }
CONF
nginx -p "$T" -e "$T/logs/error.log" -c "$T/nginx.conf" & PIDS+=($!)
for _ in $(seq 50); do ss -Hltn | grep -q "127.0.0.1:$PORT " && break; sleep 0.1; done
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
tags() {
    python3 - "$1" <<'PY'
import sys, hashlib
b = open(sys.argv[1], 'rb').read()
p = 9 + 4
out = []
while p + 11 <= len(b):
    t, n = b[p], int.from_bytes(b[p+1:p+4], 'big')
    if p + 11 + n > len(b): break
    if t in (8, 9): out.append(hashlib.sha1(b[p+11:p+11+n]).hexdigest())
    p += 11 + n + 4
print("\n".join(out))
PY
}
printf '%-40s %8s %10s %16s\n' binary "cpu s" "kern drops" "real tags equal"
for bin in "$@"; do
    R="$T/run"; rm -rf "$R" "$T/rec"/*; mkdir -p "$R"
    "$bin" live -i lo --port 1935 --port "$PORT" -o "$R/out" >"$R/live.out" 2>"$R/live.err" & RS=$!
    PIDS+=($RS)
    for _ in $(seq 100); do grep -q "listening on" "$R/live.err" && break; sleep 0.1; done
    c0=$(cpu_ticks "$RS")
    tcpreplay -q -i lo --mbps="$MBIT" "$HOSTILE" >/dev/null 2>&1 & TR=$!
    PIDS+=($TR)
    ffmpeg -nostdin -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=640x360:rate=25 \
        -f lavfi -i sine=frequency=440:sample_rate=44100 -t 20 -c:v libx264 -preset veryfast \
        -g 50 -c:a aac -f flv "rtmp://127.0.0.1:$PORT/live/real" || true
    wait "$TR" || true
    sleep 1
    c1=$(cpu_ticks "$RS")
    kill -INT "$RS" 2>/dev/null || true; wait "$RS" || true
    drops=$(python3 -c "import json;k=json.load(open('$R/out/report.json'))['inputs'][0].get('kernel') or {};print(k.get('dropped','?'))")
    got=$(ls "$R/out"/*real*publish*.flv 2>/dev/null | head -1)
    want=$(tags "$T/rec/real.flv" | sort)
    equal=0
    [ -n "$got" ] && equal=$(comm -12 <(echo "$want") <(tags "$got" | sort) | wc -l)
    printf '%-40s %8.2f %10s %9s/%-6s\n' "$bin" "$(echo "($c1 - $c0) / 100" | bc -l)" "$drops" \
        "$equal" "$(echo "$want" | wc -l)"
done
