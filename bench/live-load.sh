#!/usr/bin/env bash
# Drops of `rtmpsniff live` next to tcpdump's, both capturing the same load at the same time
# with the same kernel buffer: N ffmpeg publishers pushing a 720p FLV to nginx-rtmp on
# loopback as fast as TCP allows (no -re), at several loads, several rounds each. Prints a
# line per round (drops of each, rtmpsniff's own drops by its queue, the rate, rtmpsniff's
# CPU per Gbit) and the totals per load. Run as root from the repository:
#
#   bench/live-load.sh [-r ROUNDS] [-l "1 2 4 6"] [-s SOURCE_SECS] [-B MIB] [-w WORKERS] [-k]
#
#   -r  rounds per load (default 5)        -l  publisher counts (default "1 2 4 6")
#   -s  seconds of the source FLV (20)     -B  kernel buffer of both, MiB (32; with -w N,
#   -w  rtmpsniff live --workers N (1)         rtmpsniff -B MIB/N each, the same in all)
#   -k  keep the folder of the last round
#   RTMPSNIFF=path/to/binary (default target/release/rtmpsniff)
#
# Needs nginx + libnginx-mod-rtmp, ffmpeg, tcpdump, ss. Uses 127.0.0.1 only. CPU is the
# process's user+system time (from /proc, sampled when the publishers are done, before the
# stop) over the bytes rtmpsniff captured (report.json inputs[0].bytes).
set -euo pipefail
ROUNDS=5
LOADS="1 2 4 6"
SECS=20
MIB=32
WORKERS=1
KEEP=
while getopts "r:l:s:B:w:k" o; do
    case $o in
        r) ROUNDS=$OPTARG ;; l) LOADS=$OPTARG ;; s) SECS=$OPTARG ;; B) MIB=$OPTARG ;;
        w) WORKERS=$OPTARG ;; k) KEEP=1 ;; *) sed -n 2,16p "$0"; exit 2 ;;
    esac
done
PORT=19400
BIN=${RTMPSNIFF:-target/release/rtmpsniff}
T="$(mktemp -d /tmp/rtmpsniff-load.XXXXXX)"
PIDS=()
cleanup() {
    set +e
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    sleep 0.5
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    [ -n "$KEEP" ] && echo "kept $T" >&2 || rm -rf "$T"
}
trap cleanup EXIT
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
ss -Hltn | grep -q ":$PORT " && { echo "port $PORT is in use" >&2; exit 1; }

SRC=/tmp/rtmpsniff-load-720p-$SECS.flv
if [ ! -s "$SRC" ]; then
    ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=1280x720:rate=30 \
        -f lavfi -i sine=frequency=440:sample_rate=44100 -t "$SECS" \
        -c:v flv1 -q:v 2 -g 30 -c:a libmp3lame -b:a 128k -f flv "$SRC.tmp"
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

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

echo "rtmpsniff: $BIN ($("$BIN" --version 2>/dev/null || echo ?)), --workers $WORKERS; -B $MIB MiB in all for each;" \
     "source $((size / 1000000)) MB 720p FLV"
printf '%-5s %-5s %8s %10s %11s %9s %9s\n' pubs round Mbit/s tcpdump rtmpsniff "(queue)" "cpu s/Gbit"
for n in $LOADS; do
    td_total=0 rs_total=0 own_total=0 td_rounds=0 rs_rounds=0
    for r in $(seq "$ROUNDS"); do
        R="$T/r"; rm -rf "$R"; mkdir -p "$R"
        tcpdump -i lo -n -B $((MIB * 1024)) -w "$R/tcpdump.pcap" "tcp port $PORT" 2>"$R/tcpdump.err" & TD=$!
        PIDS+=($TD)
        wargs=(-B "$MIB")
        [ "$WORKERS" != 1 ] && wargs=(--workers "$WORKERS" -B $(( (MIB + WORKERS - 1) / WORKERS )))
        "$BIN" live -i lo --port "$PORT" "${wargs[@]}" -o "$R/out" >"$R/live.out" 2>"$R/live.err" & RS=$!
        PIDS+=($RS)
        for _ in $(seq 100); do
            grep -q "listening on" "$R/tcpdump.err" && grep -q "listening on" "$R/live.err" && break
            sleep 0.1
        done
        c0=$(cpu_ticks "$RS")
        start=$(date +%s.%N)
        PUBS=()
        for i in $(seq "$n"); do
            # (not -stream_loop: ffmpeg cannot seek back in this FLV, EPERM)
            ffmpeg -nostdin -hide_banner -loglevel error -i "$SRC" \
                -c copy -f flv "rtmp://127.0.0.1:$PORT/live/load$i" & PUBS+=($!)
        done
        for p in "${PUBS[@]}"; do wait "$p" || true; done
        secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
        sleep 1
        c1=$(cpu_ticks "$RS")
        kill -INT "$TD" "$RS"
        wait "$TD" || true
        wait "$RS" || true
        td=$(sed -n 's/^\([0-9]*\) packets\? dropped by kernel.*/\1/p' "$R/tcpdump.err")
        rs=$(sed -n 's/^kernel: .* \([0-9]*\) dropped by kernel.*/\1/p' "$R/live.out")
        own=$(sed -n 's/^rtmpsniff: \([0-9]*\) packets dropped by rtmpsniff.*/\1/p' "$R/live.out")
        bytes=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["inputs"][0]["bytes"])' \
            "$R/out/report.json" 2>/dev/null || echo 0)
        tick=$(getconf CLK_TCK)
        cpu=$(awk -v a="$c0" -v b="$c1" -v t="$tick" -v by="$bytes" \
            'BEGIN { g = by * 8 / 1e9; if (g > 0) printf "%.2f", (b - a) / t / g; else print "-" }')
        mbit=$(awk -v b="$((size * n))" -v s="$secs" 'BEGIN { printf "%d", b * 8 / s / 1e6 }')
        printf '%-5s %-5s %8s %10s %11s %9s %9s\n' "$n" "$r" "$mbit" "${td:-?}" "${rs:-?}" "(${own:--})" "$cpu"
        td_total=$((td_total + ${td:-0})); rs_total=$((rs_total + ${rs:-0})); own_total=$((own_total + ${own:-0}))
        [ "${td:-0}" -gt 0 ] && td_rounds=$((td_rounds + 1))
        [ $(( ${rs:-0} + ${own:-0} )) -gt 0 ] && rs_rounds=$((rs_rounds + 1))
        PIDS=("${PIDS[0]}")
    done
    printf '%-5s %-5s %8s %10s %11s %9s   rounds with drops: tcpdump %d/%d, rtmpsniff %d/%d\n' \
        "$n" all "" "$td_total" "$rs_total" "($own_total)" "$td_rounds" "$ROUNDS" "$rs_rounds" "$ROUNDS"
done
