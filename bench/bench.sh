#!/usr/bin/env bash
# rtmpsniff's throughput benchmark, next to copying the capture, tcpflow and tshark.
#
#   sudo bench/bench.sh [-n PUBLISHERS] [-s SOURCE_SECS] [-r RUNS] [-d DATA_DIR]
#                       [--make-only] [--remake] [--no-peers]
#
# 1. Makes the capture (once; kept in DATA_DIR, default /tmp/rtmpsniff-bench): N ffmpeg
#    publishers each push the same 720p Sorenson H.263 + MP3 FLV (no -re: as fast as TCP
#    allows) to nginx-rtmp (chunk_size 4096, `record all`) over a veth pair between two network
#    namespaces (MTU 1500, offloads off); tcpdump captures on the server's end. nginx's
#    recordings are the truth. A capture in which tcpdump dropped packets is made again.
#    The defaults (4 publishers x 53 s, about 91 MB each) give a capture of about 395 MB and
#    310k packets.
# 2. Runs each tool RUNS times (page cache warm, one after the other, the median is shown):
#    `cp` of the capture, `rtmpsniff read`, `tcpflow -r` and
#    `tshark -r ... -z io,phs` (full dissection, RTMP included) when installed, under
#    /usr/bin/time -v for the peak resident memory.
# 3. Checks that every stream nginx recorded came back from rtmpsniff bit-exact (every
#    audio/video tag: kind, timestamp, bytes), then prints the table: wall time, MB/s,
#    packets/s, peak RSS, and each tool's time as a multiple of rtmpsniff's.
#
# --make-only stops after step 1 (the tests use it for a small capture); --remake makes the
# capture again; --no-peers skips tcpflow and tshark. Needs root, nginx + libnginx-mod-rtmp,
# ffmpeg, tcpdump, iproute2, python3, GNU time; ethtool, tcpflow and tshark are optional.
# Only addresses inside the two namespaces made here are used; both are removed at the end.
set -euo pipefail

N=4
SECS=53
RUNS=3
DATA=/tmp/rtmpsniff-bench
MAKE_ONLY=0
REMAKE=0
PEERS=1
while [ $# -gt 0 ]; do
    case "$1" in
        -n) N=$2; shift 2 ;;
        -s) SECS=$2; shift 2 ;;
        -r) RUNS=$2; shift 2 ;;
        -d) DATA=$2; shift 2 ;;
        --make-only) MAKE_ONLY=1; shift ;;
        --remake) REMAKE=1; shift ;;
        --no-peers) PEERS=0; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN=${RTMPSNIFF:-${CARGO_TARGET_DIR:-$ROOT/target}/release/rtmpsniff}
TAG=$$
NS_SRV=rsb-s$TAG NS_CLI=rsb-c$TAG VETH_SRV=rsb-vs$TAG VETH_CLI=rsb-vc$TAG
SRV_IP=10.203.0.1 CLI_IP=10.203.0.2
PIDS=()
WORK=""

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

cleanup() {
    local rc=$?
    set +e
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    for ns in "$NS_SRV" "$NS_CLI"; do
        if ip netns list 2>/dev/null | grep -qw "$ns"; then
            for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
            ip netns del "$ns"
        fi
    done
    [ -n "$WORK" ] && rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for() { # what timeout_s command...
    local what=$1 t=$2 i
    shift 2
    for ((i = 0; i < t * 10; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "timed out waiting for $what"
}

# --------------------------------------------------------------------------------------------
# 1. The capture
make_capture() {
    [ "$(id -u)" = 0 ] || die "making the capture needs root (network namespaces)"
    for t in nginx ffmpeg tcpdump ip ss; do command -v "$t" >/dev/null || die "missing tool: $t"; done
    local so
    so=$(find /usr/lib/nginx /usr/share/nginx -name ngx_rtmp_module.so 2>/dev/null | head -1)
    [ -n "$so" ] || die "ngx_rtmp_module.so not found (apt-get install libnginx-mod-rtmp)"
    mkdir -p "$DATA"
    local src=$DATA/source-${SECS}s.flv
    if [ ! -s "$src" ]; then
        log "encoding a ${SECS} s 720p Sorenson H.263 + MP3 source"
        ffmpeg -nostdin -hide_banner -loglevel error -y \
            -f lavfi -i testsrc2=size=1280x720:rate=30 \
            -f lavfi -i sine=frequency=440:sample_rate=44100 -t "$SECS" \
            -c:v flv1 -q:v 2 -g 30 -c:a libmp3lame -b:a 128k -f flv "$src.tmp"
        mv "$src.tmp" "$src"
    fi
    local attempt
    for attempt in 1 2 3; do
        rm -rf "$DATA/capture.pcap" "$DATA/truth" "$DATA/nginx"
        if session "$so" "$src"; then
            return 0
        fi
        log "tcpdump dropped packets (attempt $attempt); making the capture again"
    done
    die "tcpdump kept dropping packets; a capture with loss cannot be checked bit-exact"
}

session() { # rtmp_module source -> 0 when the capture is complete
    local so=$1 src=$2 d=$DATA/nginx
    mkdir -p "$d/rec" "$d/logs" "$DATA/truth"
    cat >"$d/nginx.conf" <<CONF
load_module $so;
daemon off; master_process off; user root root;
pid $d/nginx.pid; error_log $d/logs/error.log;
events { worker_connections 256; }
rtmp { server { listen $SRV_IP:1935; chunk_size 4096;
  application live { live on; record all; record_path $d/rec; record_unique off; } } }
CONF
    ip netns add "$NS_SRV"
    ip netns add "$NS_CLI"
    ip link add "$VETH_SRV" type veth peer name "$VETH_CLI"
    ip link set "$VETH_SRV" netns "$NS_SRV"
    ip link set "$VETH_CLI" netns "$NS_CLI"
    ip -n "$NS_SRV" addr add "$SRV_IP/24" dev "$VETH_SRV"
    ip -n "$NS_CLI" addr add "$CLI_IP/24" dev "$VETH_CLI"
    local x
    for x in "$NS_SRV:$VETH_SRV" "$NS_CLI:$VETH_CLI"; do
        ip -n "${x%%:*}" link set lo up
        ip -n "${x%%:*}" link set "${x#*:}" mtu 1500 up
        if command -v ethtool >/dev/null; then
            ip netns exec "${x%%:*}" ethtool -K "${x#*:}" tso off gso off gro off tx off rx off \
                >/dev/null 2>&1 || true
        fi
    done
    ip netns exec "$NS_SRV" nginx -p "$d" -e "$d/logs/error.log" -c "$d/nginx.conf" &
    local nginx=$!
    PIDS+=("$nginx")
    wait_for "nginx" 10 sh -c "ip netns exec $NS_SRV ss -Hltn | grep -q '$SRV_IP:1935 '"
    ip netns exec "$NS_SRV" tcpdump -i "$VETH_SRV" -B 262144 -s 0 -n -w "$DATA/capture.pcap" \
        'tcp port 1935' 2>"$DATA/tcpdump.log" &
    local cap=$!
    PIDS+=("$cap")
    wait_for "tcpdump" 10 grep -q "listening on" "$DATA/tcpdump.log"
    log "$N publishers pushing $(( $(stat -c %s "$src") / 1000000 )) MB each as fast as they can"
    local pubs=() i
    for i in $(seq "$N"); do
        ip netns exec "$NS_CLI" ffmpeg -nostdin -hide_banner -loglevel error -i "$src" \
            -map 0 -c copy -f flv "rtmp://$SRV_IP:1935/live/load$i" &
        pubs+=($!)
    done
    for p in "${pubs[@]}"; do wait "$p" || die "a publisher failed"; done
    sleep 1
    kill -INT "$cap"
    wait "$cap" || true
    kill -QUIT "$nginx"
    wait "$nginx" || true
    PIDS=()
    for ns in "$NS_CLI" "$NS_SRV"; do ip netns del "$ns"; done
    cp "$d"/rec/load*.flv "$DATA/truth/"
    cat "$DATA/tcpdump.log" >&2
    grep -q "^0 packets dropped by kernel" "$DATA/tcpdump.log"
}

if [ "$REMAKE" = 1 ] || [ ! -s "$DATA/capture.pcap" ] || [ ! -d "$DATA/truth" ]; then
    make_capture
fi
CAPTURE=$DATA/capture.pcap
[ "$MAKE_ONLY" = 1 ] && { log "capture: $CAPTURE, truth: $DATA/truth"; exit 0; }

# --------------------------------------------------------------------------------------------
# 2. The runs
[ -x "$BIN" ] || die "no rtmpsniff at $BIN (cargo build --release, or set RTMPSNIFF)"
command -v /usr/bin/time >/dev/null || die "GNU time is needed (apt-get install time)"
WORK=$(mktemp -d "$DATA/run.XXXXXX")
BYTES=$(stat -c %s "$CAPTURE")
PACKETS=$(python3 - "$CAPTURE" <<'PY'
import struct, sys
with open(sys.argv[1], 'rb') as f:
    magic = f.read(24)[:4]
    e = '<' if magic in (b'\xd4\xc3\xb2\xa1', b'\x4d\x3c\xb2\xa1') else '>'
    n = 0
    while True:
        h = f.read(16)
        if len(h) < 16:
            break
        f.seek(struct.unpack(e + 'IIII', h)[2], 1)
        n += 1
print(n)
PY
)
cat "$CAPTURE" >/dev/null # into the page cache

RESULTS=$WORK/results
: >"$RESULTS"
measure() { # name command... ; appends "name wall_s user_s sys_s rss_kib" per run
    local name=$1 r
    shift
    for ((r = 1; r <= RUNS; r++)); do
        rm -rf "$WORK/out"
        mkdir -p "$WORK/out"
        # No writeback or discard of the previous run's output during this one.
        sync -f "$WORK" 2>/dev/null || sync
        /usr/bin/time -f '%e %U %S %M' -o "$WORK/time" "$@" >"$WORK/stdout" 2>"$WORK/stderr" ||
            { cat "$WORK/stderr" >&2; die "$name failed"; }
        echo "$name $(cat "$WORK/time")" >>"$RESULTS"
    done
}

log "capture: $CAPTURE ($BYTES bytes, $PACKETS packets); $RUNS run(s) each"
measure copy cp "$CAPTURE" "$WORK/out/copy.pcap"
measure rtmpsniff "$BIN" read "$CAPTURE" -o "$WORK/out" -q
# Keep one rtmpsniff output for the check.
rm -rf "$WORK/rtmpsniff-out"
"$BIN" read "$CAPTURE" -o "$WORK/rtmpsniff-out" -q
if [ "$PEERS" = 1 ] && command -v tcpflow >/dev/null; then
    measure tcpflow tcpflow -r "$CAPTURE" -o "$WORK/out"
fi
if [ "$PEERS" = 1 ] && command -v tshark >/dev/null; then
    measure tshark tshark -n -r "$CAPTURE" -q -z io,phs
fi

# --------------------------------------------------------------------------------------------
# 3. Bit-exact check and the table
python3 - "$DATA/truth" "$WORK/rtmpsniff-out" "$RESULTS" "$BYTES" "$PACKETS" <<'PY'
import hashlib, json, os, statistics, sys

truth_dir, out_dir, results, nbytes, npackets = sys.argv[1:6]
nbytes, npackets = int(nbytes), int(npackets)

def media(path):
    d = open(path, 'rb').read()
    assert d[:3] == b'FLV', path
    pos = int.from_bytes(d[5:9], 'big') + 4
    tags = []
    while pos + 11 <= len(d):
        kind = d[pos]
        size = int.from_bytes(d[pos + 1:pos + 4], 'big')
        ts = int.from_bytes(d[pos + 4:pos + 7], 'big') | d[pos + 7] << 24
        body = d[pos + 11:pos + 11 + size]
        if kind in (8, 9):
            tags.append((kind, ts, hashlib.sha1(body).digest()))
        pos += 15 + size
    return tags

report = json.load(open(os.path.join(out_dir, 'report.json')))
files = {}
for c in report['connections']:
    for s in c['streams']:
        if s['direction'] == 'publish':
            files[s['name']] = os.path.join(out_dir, s['file'])
ok = 0
truths = sorted(os.listdir(truth_dir))
for t in truths:
    name = t[:-4]
    want = media(os.path.join(truth_dir, t))
    got = media(files[name]) if name in files else []
    same = want == got
    ok += same
    print(f'{name}: {len(want)} truth tags, {len(got)} recovered, '
          + ('bit-exact' if same else 'DIFFERENT'))
print(f'bit-exact streams: {ok}/{len(truths)}')

runs = {}
order = []
for line in open(results):
    name, wall, user, sys_, rss = line.split()
    if name not in runs:
        order.append(name)
    runs.setdefault(name, []).append((float(wall), float(user), float(sys_), int(rss)))
med = lambda name, i: statistics.median(r[i] for r in runs[name])
ref = med('rtmpsniff', 0)
print()
print(f'capture: {nbytes / 1e6:.0f} MB, {npackets} packets; median of {len(runs["rtmpsniff"])} run(s)')
print(f'{"tool":<14}{"wall s":>7}{"user s":>7}{"sys s":>7}{"MB/s":>7}{"packets/s":>11}'
      f'{"peak RSS":>12}{"wall/rtmpsniff":>16}')
for name in order:
    wall = med(name, 0)
    rss = max(r[3] for r in runs[name])
    speed = lambda n: n / wall if wall > 0 else float('inf')
    print(f'{name:<14}{wall:>7.2f}{med(name, 1):>7.2f}{med(name, 2):>7.2f}'
          f'{speed(nbytes) / 1e6:>7.0f}{speed(npackets):>11.0f}'
          f'{rss / 1024:>8.1f} MiB{wall / ref:>15.2f}x')
sys.exit(0 if ok == len(truths) else 1)
PY
