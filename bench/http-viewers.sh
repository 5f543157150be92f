#!/usr/bin/env bash
# Kernel drops of `rtmpsniff live --http` with no viewer, with ten viewers reading the
# streams' HTTP-FLV, and with ten viewers that read nothing, side by side in one run: N
# ffmpeg publishers push a 720p FLV to nginx-rtmp on loopback at R times real time, the same
# load in every case. Prints per case and round: the load, the kernel's drops, rtmpsniff's
# own (its queue), what the viewers took, viewers dropped for falling behind, the most bytes
# queued for viewers at once, and rtmpsniff's peak RSS. Run as root from the repository:
#
#   bench/http-viewers.sh [-r ROUNDS] [-n PUBLISHERS] [-x RATE] [-s SOURCE_SECS]
#
#   -r  rounds per case (default 3)   -n  publishers (default 4)
#   -x  ffmpeg -readrate (default 4)  -s  seconds of the source FLV (default 20)
#   RTMPSNIFF=path/to/binary (default target/release/rtmpsniff)
#
# Needs nginx + libnginx-mod-rtmp, ffmpeg, curl, python3, ss. Uses 127.0.0.1 only. A viewer
# that reads nothing is a socket that sends its request and never reads; the kernel send
# buffer rtmpsniff sets (64 KiB) fills, its queue (http_viewer_bytes, 8 MiB) fills, and it is
# dropped.
set -euo pipefail
ROUNDS=3
PUBS=4
RATE=4
SECS=20
while getopts "r:n:x:s:" o; do
    case $o in
        r) ROUNDS=$OPTARG ;; n) PUBS=$OPTARG ;; x) RATE=$OPTARG ;; s) SECS=$OPTARG ;;
        *) sed -n 2,15p "$0"; exit 2 ;;
    esac
done
PORT=19410
HTTP=19411
BIN=${RTMPSNIFF:-target/release/rtmpsniff}
T="$(mktemp -d /tmp/rtmpsniff-viewers.XXXXXX)"
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
for p in $PORT $HTTP; do
    ss -Hltn | grep -q ":$p " && { echo "port $p is in use" >&2; exit 1; }
done

SRC=/tmp/rtmpsniff-viewers-720p-$SECS.flv
if [ ! -s "$SRC" ]; then
    ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=1280x720:rate=30 \
        -f lavfi -i sine=frequency=440:sample_rate=44100 -t "$SECS" \
        -c:v libx264 -preset veryfast -b:v 6M -g 30 -c:a aac -b:a 128k -f flv "$SRC.tmp"
    mv "$SRC.tmp" "$SRC"
fi
size=$(stat -c %s "$SRC")

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

# Ten viewers, spread over the live streams: curl reading into /dev/null, or sockets that
# never read.
cat >"$T/viewers.py" <<'PY'
import json, socket, subprocess, sys, time, urllib.request
http, mode, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
want = int(sys.argv[4])
ids = []
deadline = time.time() + 30
while time.time() < deadline and len(ids) < want:
    try:
        st = json.load(urllib.request.urlopen(f"http://{http}/report.json", timeout=2))
        ids = [s["id"] for s in st["streams"] if not s["ended"] and s["video_codec"]]
    except Exception:
        pass
    time.sleep(0.02)
procs, socks = [], []
for i in range(count if ids else 0):
    path = f"/streams/{ids[i % len(ids)]}.flv"
    if mode == "read":
        procs.append(subprocess.Popen(["curl", "-s", "-o", "/dev/null", f"http://{http}{path}"]))
    else:
        c = socket.create_connection(tuple(http.rsplit(":", 1)))
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        socks.append(c)
print(len(procs) + len(socks), flush=True)
sys.stdin.read()  # held until the publishers are done
PY

hwm() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

echo "rtmpsniff: $BIN ($("$BIN" --version 2>/dev/null || echo ?)); $PUBS publishers of a" \
     "$((size / 1000000)) MB 720p H.264 FLV at -readrate $RATE"
printf '%-12s %-5s %8s %8s %10s %8s %9s %12s %9s\n' case round Mbit/s kernel "(queue)" viewers dropped "queued peak" "RSS MiB"
for c in none read stall; do
    for r in $(seq "$ROUNDS"); do
        R="$T/r"; rm -rf "$R"; mkdir -p "$R"
        "$BIN" live -i lo --port "$PORT" -o "$R/out" --http "127.0.0.1:$HTTP" \
            >"$R/live.out" 2>"$R/live.err" & RS=$!
        PIDS+=($RS)
        for _ in $(seq 100); do grep -q "listening on" "$R/live.err" && break; sleep 0.1; done
        mkfifo "$R/hold"
        VW=
        if [ "$c" != none ]; then
            python3 "$T/viewers.py" "127.0.0.1:$HTTP" "$c" 10 "$PUBS" <"$R/hold" >"$R/viewers.out" & VW=$!
            PIDS+=($VW)
            exec 9>"$R/hold"
        fi
        start=$(date +%s.%N)
        P=()
        for i in $(seq "$PUBS"); do
            ffmpeg -nostdin -hide_banner -loglevel error -readrate "$RATE" -i "$SRC" \
                -c copy -f flv "rtmp://127.0.0.1:$PORT/live/v$i" & P+=($!)
        done
        for p in "${P[@]}"; do wait "$p" || true; done
        secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
        state=$(curl -s "http://127.0.0.1:$HTTP/report.json" || echo '{}')
        peak=$(hwm "$RS")
        if [ -n "$VW" ]; then exec 9>&-; wait "$VW" || true; fi
        kill -INT "$RS"; wait "$RS" || true
        kern=$(sed -n 's/^kernel: .* \([0-9]*\) dropped by kernel.*/\1/p' "$R/live.out")
        own=$(sed -n 's/^rtmpsniff: \([0-9]*\) packets dropped by rtmpsniff.*/\1/p' "$R/live.out")
        viewers=$(cat "$R/viewers.out" 2>/dev/null || echo 0)
        read -r dropped queued < <(python3 -c 'import json,sys
h = json.loads(sys.argv[1]).get("http", {})
print(h.get("viewers_dropped", "?"), h.get("retained_peak_bytes", "?"))' "$state")
        mbit=$(awk -v b="$((size * PUBS))" -v s="$secs" 'BEGIN { printf "%d", b * 8 / s / 1e6 }')
        printf '%-12s %-5s %8s %8s %10s %8s %9s %12s %9s\n' "$c" "$r" "$mbit" "${kern:-?}" \
            "(${own:-0})" "$viewers" "$dropped" "$queued" "$((peak / 1024))"
        PIDS=("${PIDS[0]}")
    done
done
