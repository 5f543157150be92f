#!/usr/bin/env bash
# Kernel drop counts of `rtmpsniff live` next to tcpdump's, both capturing the same load at
# the same time: N ffmpeg publishers pushing a high-bitrate FLV to nginx-rtmp on loopback as
# fast as they can (no -re). Run as root from the repository:
#
#   samples/live-load.sh [PUBLISHERS] [SOURCE_SECS] [RTMPSNIFF_BUFFER_MIB] [TCPDUMP_BUFFER_KIB]
#
# Needs nginx + libnginx-mod-rtmp, ffmpeg, tcpdump, ss. Uses 127.0.0.1 only.
set -euo pipefail
N=${1:-4}
SECS=${2:-30}
RS_MIB=${3:-32}
TD_KIB=${4:-2048}
PORT=19400
BIN=${RTMPSNIFF:-target/release/rtmpsniff}
T="$(mktemp -d /tmp/rtmpsniff-load.XXXXXX)"
PIDS=()
cleanup() {
    set +e
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    sleep 0.5
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
ss -Hltn | grep -q ":$PORT " && { echo "port $PORT is in use" >&2; exit 1; }

ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=1280x720:rate=30 \
    -f lavfi -i sine=frequency=440:sample_rate=44100 -t "$SECS" \
    -c:v flv1 -q:v 2 -g 30 -c:a libmp3lame -b:a 128k -f flv "$T/big.flv"

mkdir -p "$T/logs"
cat >"$T/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
master_process off;
user root root;
pid $T/nginx.pid;
error_log $T/logs/error.log;
events { worker_connections 256; }
rtmp { server { listen 127.0.0.1:$PORT; application live { live on; } } }
CONF
nginx -p "$T" -e "$T/logs/error.log" -c "$T/nginx.conf" & PIDS+=($!)
for _ in $(seq 50); do ss -Hltn | grep -q "127.0.0.1:$PORT " && break; sleep 0.1; done

tcpdump -i lo -n -B "$TD_KIB" -w "$T/tcpdump.pcap" "tcp port $PORT" 2>"$T/tcpdump.err" & TD=$!
PIDS+=($TD)
"$BIN" live -i lo --port "$PORT" -B "$RS_MIB" -o "$T/out" >"$T/live.out" 2>"$T/live.err" & RS=$!
PIDS+=($RS)
for _ in $(seq 50); do
    grep -q "listening on" "$T/tcpdump.err" && grep -q "listening on" "$T/live.err" && break
    sleep 0.1
done

start=$(date +%s.%N)
PUBS=()
for i in $(seq "$N"); do
    # (not -stream_loop: ffmpeg cannot seek back in this FLV, EPERM)
    ffmpeg -nostdin -hide_banner -loglevel error -i "$T/big.flv" \
        -c copy -f flv "rtmp://127.0.0.1:$PORT/live/load$i" & PUBS+=($!)
done
for p in "${PUBS[@]}"; do wait "$p" || true; done
secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
sleep 1
kill -INT "$TD" "$RS"
wait "$TD" || true
wait "$RS" || true

bytes=$(( $(stat -c %s "$T/big.flv") * N ))
echo "load: $N publishers x $(( $(stat -c %s "$T/big.flv") / 1000000 )) MB in $secs s" \
     "(~$(awk -v b="$bytes" -v s="$secs" 'BEGIN { printf "%d", b * 8 / s / 1e6 }') Mbit/s of RTMP)"
echo "tcpdump (-B $TD_KIB KiB):"
grep -E "captured|received|dropped" "$T/tcpdump.err" | sed 's/^/  /'
echo "rtmpsniff (-B $RS_MIB MiB):"
grep -E "^kernel:|stream\(s\)" "$T/live.out" | sed 's/^/  /'
echo "  report.json: $(grep -A4 '"kernel"' "$T/out/report.json" | tr -d ' \n')"
gaps=$(grep -c '"reason"' "$T/out/report.json" || true)
echo "  gaps in report.json: $gaps"
