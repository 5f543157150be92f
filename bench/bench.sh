#!/usr/bin/env bash
# rtmpsniff's benchmarks: throughput next to copying the capture, tcpflow and tshark; and
# memory against the number of connections.
#
#   sudo bench/bench.sh [-n PUBLISHERS] [-s SOURCE_SECS] [-r RUNS] [-d DATA_DIR]
#                       [--make-only] [--remake] [--no-peers] [--compare OLD_BINARY] [--rtmps]
#   bench/bench.sh --memory [-d DATA_DIR] [--compare OLD_BINARY]
#
# 1. Makes the capture (once; kept in DATA_DIR, default /tmp/rtmpsniff-bench): N ffmpeg
#    publishers each push the same 720p Sorenson H.263 + MP3 FLV (no -re: as fast as TCP
#    allows) to nginx-rtmp (chunk_size 4096, `record all`) over a veth pair between two network
#    namespaces (MTU 1500, offloads off); tcpdump captures on the server's end. nginx's
#    recordings are the truth. A capture in which tcpdump dropped packets is made again.
#    The defaults (4 publishers x 53 s, about 91 MB each) give a capture of about 395 MB and
#    310k packets.
# 2. Runs each tool RUNS times (default 5; in rounds, each tool once a round, so that drift of
#    the machine's speed weighs on all alike; the median is shown), in this order: `cp` of the capture, `rtmpsniff read -q`, `rtmpsniff read -q --sha256` (each
#    file's SHA-256 in the report, which means reading every file back), `tcpflow -r` and
#    `tshark -r ... -z io,phs` (full dissection, RTMP included) when installed, under
#    /usr/bin/time for the peak resident memory. Before every run: `sync` (no writeback of
#    the previous run's output during this one) and `cat` of the capture, so that it is in the
#    page cache (a VM's memory reclaim, e.g. DAMON, silently evicts page-cache pages).
# 3. Checks that every stream nginx recorded came back from rtmpsniff bit-exact (every
#    audio/video tag: kind, timestamp, bytes) and that the report's sha256 of each is the
#    file's, then prints the table: wall time, MB/s, packets/s, peak RSS, and each tool's time
#    as a multiple of rtmpsniff's. Then the targets, from the medians, each `met` or `NOT met`:
#    rtmpsniff's wall time at most 1.5 x cp's and at most 1/3 of tcpflow's (when it ran), its
#    peak RSS (the largest of all runs) at most 32 MiB, every stream bit-exact; rtmpsniff's
#    CPU time (user+sys) per packet and per byte; and the machine (CPUs, CPU model, kernel,
#    memory, file system of DATA_DIR). The exit status is 1 only when a stream is not
#    bit-exact: a target not met is reported, not failed.
#
# --memory: instead of the above (no root, no peers, no capture made, -n/-s/-r unused):
#    bench/many-conns.py writes into DATA_DIR a SYN flood of 200,000 unanswered SYNs (16 MB),
#    then 1,000, 10,000 and 100,000 short RTMP publish sessions (its default `sessions` shape:
#    17.5 MB, 175 MB, 1.75 GB); `rtmpsniff read FILE -o DIR -q` runs once on each (after `sync`
#    and `cat`, as above) under /usr/bin/time; the table gives shape, N, capture MB, wall s,
#    peak RSS MiB, report.json MB and the FLV files written. Each capture and output folder is
#    deleted after its run. A capture for which DATA_DIR's file system lacks twice the space
#    it and its output need (df, before each) is skipped, and the table says so. Exit status 1
#    when rtmpsniff fails (status other than 0, or 1 = no RTMP found, as for the SYN flood).
#
# --compare OLD_BINARY: also runs another build of rtmpsniff (say, one from before a refactor),
#    side by side with this one, so that both are measured under the same conditions. In the
#    benchmark: two more rows, `rtmpsniff@old` and `rtmpsniff@old --sha256`, run in the same
#    rounds (each tool once a round); the order of the tools is then rotated from round to
#    round (round r starts at the r-th tool of the list, wrapping) and in every other round
#    each old row runs just before its new counterpart instead of just after. The old
#    binary's output goes through the same bit-exact and sha256 check (a stream it does not
#    recover bit-exact also makes the exit status 1). After the table, one line per figure:
#    new vs old wall time (median) and peak RSS (largest of all runs), for `read -q` and
#    `read -q --sha256`, as a ratio new/old, each `within 5%: met` when new <= 1.05 x old,
#    else `NOT met`. With --memory: the old binary runs (after the new one, after `sync` and
#    `cat` again) on each of the same captures, and the table gets its wall s and peak RSS
#    beside the new one's, and the ratio of the peak RSS new/old. Without --compare, the
#    output is as without this option.
#
# --rtmps: also the same media through TLS (RTMPS), and what decrypting costs. Step 1 also
#    makes (once; kept in DATA_DIR/rtmps/) a second capture like the first, but each ffmpeg
#    (GnuTLS) publishes to rtmps://SERVER:443/live/loadN, all with one SSLKEYLOGFILE
#    (DATA_DIR/rtmps/keylog.txt); nginx's stream module (libnginx-mod-stream) terminates TLS on
#    port 443 of the server's namespace with a self-signed certificate made there (openssl;
#    ssl_protocols TLSv1.2 TLSv1.3, the default of nginx 1.23.4 on, so TLS 1.3 with the
#    cipher suite nginx and ffmpeg agree on by default; no SNI, as the URL names an address) and passes the clear bytes to nginx-rtmp on 127.0.0.1:1935 inside that
#    namespace, whose `record all` recordings are the truth (DATA_DIR/rtmps/truth/); tcpdump
#    captures port 443 on the server's veth end (DATA_DIR/rtmps/capture.pcap). The plain
#    capture is made too when it is missing. In step 2, one more row in the same rounds:
#    `rtmpsniff rtmps`, that is `rtmpsniff read -q --port 443 --tls-keylog keylog.txt` on the
#    RTMPS capture (warmed into the page cache in its place), its MB/s and packets/s from that
#    capture. In step 3, its streams go through the same bit-exact check against its own truth
#    (a stream not bit-exact makes the exit status 1), the TLS connections as its report.json
#    gives them (version, cipher suite, records decrypted and failed) are listed, and whether
#    both truths hold the same media (audio/video tags); then the targets get `rtmps wall <=
#    1.5 x plain` (the medians of `rtmpsniff rtmps` and `rtmpsniff`), `met` or `NOT met`, the
#    RTMPS bit-exact line and the RTMPS CPU time per packet and per byte of its capture (and
#    as a multiple of the plain run's). --remake makes both captures again. The old binary of
#    --compare is not run on the RTMPS capture. Not with --memory. Without --rtmps, the
#    output is as without this option.
#
# --make-only stops after step 1 (the tests use it for a small capture); --remake makes the
# capture again; --no-peers skips tcpflow and tshark. Making the capture needs root, nginx +
# libnginx-mod-rtmp, ffmpeg, tcpdump, iproute2 (--rtmps: also libnginx-mod-stream and
# openssl); the runs need python3 and GNU time; ethtool, tcpflow and tshark are optional.
# Only addresses inside the two namespaces made here are used; both are removed at the end.
set -euo pipefail

N=4
SECS=53
RUNS=5
DATA=/tmp/rtmpsniff-bench
MAKE_ONLY=0
REMAKE=0
PEERS=1
MEMORY=0
OLD=""
RTMPS=0
while [ $# -gt 0 ]; do
    case "$1" in
        -n) N=$2; shift 2 ;;
        -s) SECS=$2; shift 2 ;;
        -r) RUNS=$2; shift 2 ;;
        -d) DATA=$2; shift 2 ;;
        --make-only) MAKE_ONLY=1; shift ;;
        --remake) REMAKE=1; shift ;;
        --no-peers) PEERS=0; shift ;;
        --memory) MEMORY=1; shift ;;
        --compare) OLD=$2; shift 2 ;;
        --rtmps) RTMPS=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

if [ "$RTMPS" = 1 ] && [ "$MEMORY" = 1 ]; then
    echo "--rtmps does not go with --memory (see --help)" >&2
    exit 2
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN=${RTMPSNIFF:-${CARGO_TARGET_DIR:-$ROOT/target}/release/rtmpsniff}
if [ -n "$OLD" ]; then
    [ -x "$OLD" ] || { echo "--compare: $OLD is not an executable" >&2; exit 2; }
    OLD=$(realpath "$OLD")
fi
TAG=$$
NS_SRV=rsb-s$TAG NS_CLI=rsb-c$TAG VETH_SRV=rsb-vs$TAG VETH_CLI=rsb-vc$TAG
SRV_IP=10.203.0.1 CLI_IP=10.203.0.2
PIDS=()
WORK=""

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# shellcheck disable=SC2317 # run by the EXIT trap, which shellcheck does not follow
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
    exit "$rc"
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
make_capture() { # [rtmps] -> the capture and truth in $DATA (rtmps: in $DATA/rtmps)
    local tls=${1:-} dir=$DATA
    if [ -n "$tls" ]; then dir=$DATA/rtmps; fi
    [ "$(id -u)" = 0 ] || die "making the capture needs root (network namespaces)"
    for t in nginx ffmpeg tcpdump ip ss; do command -v "$t" >/dev/null || die "missing tool: $t"; done
    local so stream_so=""
    so=$(find /usr/lib/nginx /usr/share/nginx -name ngx_rtmp_module.so 2>/dev/null | head -1)
    [ -n "$so" ] || die "ngx_rtmp_module.so not found (apt-get install libnginx-mod-rtmp)"
    if [ -n "$tls" ]; then
        command -v openssl >/dev/null || die "missing tool: openssl"
        stream_so=$(find /usr/lib/nginx /usr/share/nginx -name ngx_stream_module.so 2>/dev/null |
            head -1)
        [ -n "$stream_so" ] ||
            die "ngx_stream_module.so not found (apt-get install libnginx-mod-stream)"
    fi
    mkdir -p "$dir"
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
        rm -rf "$dir/capture.pcap" "$dir/truth" "$dir/nginx"
        rm -f "$dir/keylog.txt" # GnuTLS appends
        if session "$so" "$src" "$dir" "$stream_so"; then
            return 0
        fi
        log "tcpdump dropped packets (attempt $attempt); making the capture again"
    done
    die "tcpdump kept dropping packets; a capture with loss cannot be checked bit-exact"
}

session() { # rtmp_module source dir [stream_module: RTMPS] -> 0 when the capture is complete
    local so=$1 src=$2 dir=$3 stream_so=${4:-} d=$3/nginx
    mkdir -p "$d/rec" "$d/logs" "$dir/truth"
    # RTMPS: nginx-rtmp on the namespace's own 127.0.0.1 behind the TLS of the stream module.
    local rtmp_at=$SRV_IP:1935 port=1935 url=rtmp://$SRV_IP:1935 keylog=()
    if [ -n "$stream_so" ]; then
        rtmp_at=127.0.0.1:1935 port=443 url=rtmps://$SRV_IP:443
        keylog=(env "SSLKEYLOGFILE=$dir/keylog.txt")
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=rtmpsniff.test" \
            -keyout "$d/key.pem" -out "$d/cert.pem" 2>/dev/null
    fi
    {
        if [ -n "$stream_so" ]; then echo "load_module $stream_so;"; fi
        cat <<CONF
load_module $so;
daemon off; master_process off; user root root;
pid $d/nginx.pid; error_log $d/logs/error.log;
events { worker_connections 256; }
rtmp { server { listen $rtmp_at; chunk_size 4096;
  application live { live on; record all; record_path $d/rec; record_unique off; } } }
CONF
        if [ -n "$stream_so" ]; then
            cat <<CONF
stream { server { listen $SRV_IP:443 ssl; ssl_protocols TLSv1.2 TLSv1.3;
  ssl_certificate $d/cert.pem; ssl_certificate_key $d/key.pem; proxy_pass $rtmp_at; } }
CONF
        fi
    } >"$d/nginx.conf"
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
    wait_for "nginx" 10 sh -c "ip netns exec $NS_SRV ss -Hltn | grep -q '$rtmp_at '"
    if [ -n "$stream_so" ]; then
        wait_for "nginx (TLS)" 10 sh -c "ip netns exec $NS_SRV ss -Hltn | grep -q '$SRV_IP:443 '"
    fi
    ip netns exec "$NS_SRV" tcpdump -i "$VETH_SRV" -B 262144 -s 0 -n -w "$dir/capture.pcap" \
        "tcp port $port" 2>"$dir/tcpdump.log" &
    local cap=$!
    PIDS+=("$cap")
    wait_for "tcpdump" 10 grep -q "listening on" "$dir/tcpdump.log"
    log "$N publishers pushing $(( $(stat -c %s "$src") / 1000000 )) MB each as fast as they can${stream_so:+ (RTMPS)}"
    local pubs=() i
    for i in $(seq "$N"); do
        ip netns exec "$NS_CLI" "${keylog[@]}" ffmpeg -nostdin -hide_banner -loglevel error \
            -i "$src" -map 0 -c copy -f flv "$url/live/load$i" &
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
    cp "$d"/rec/load*.flv "$dir/truth/"
    cat "$dir/tcpdump.log" >&2
    if [ -n "$stream_so" ]; then
        # Each of the N connections' secrets (TLS 1.2: one line; TLS 1.3: five).
        [ "$(grep -c '^[A-Z_0-9]* [0-9a-f]\{64\} [0-9a-f]*$' "$dir/keylog.txt")" -ge "$N" ] ||
            die "the key log $dir/keylog.txt lacks the publishers' secrets"
        log "key log: $(wc -l <"$dir/keylog.txt") lines"
    fi
    grep -q "^0 packets dropped by kernel" "$dir/tcpdump.log"
}

machine() { # the machine the numbers come from
    local model mem fs
    model=$(sed -n '/^model name/ { s/^[^:]*: *//; p; q; }' /proc/cpuinfo)
    mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    fs=$(df -T -P "$DATA" | awk 'NR == 2 { print $2 " (" $1 " on " $7 ")" }')
    echo "machine: $(nproc) CPU(s), ${model:-unknown CPU model}, kernel $(uname -r), $mem memory"
    echo "data dir: $DATA: $fs"
}

# --------------------------------------------------------------------------------------------
# --memory: many connections (no root, no peers, no capture made here)
memory_run() { # shape count capture_bytes_per_connection
    local shape=$1 n=$2 per=$3 cap out need avail
    cap=$WORK/$shape-$n.pcap
    out=$WORK/$shape-$n.out
    # Space for the capture and the output, twice over; the output's size per connection is
    # the last run's of the same shape, or (first run) as much as the capture's.
    need=$(( 2 * n * (per + ${OUT_PER[$shape]:-$per}) ))
    avail=$(df -B1 -P "$DATA" | awk 'NR == 2 { print $4 }')
    if [ "$avail" -lt "$need" ]; then
        log "skipping $shape N=$n: needs $((need / 1000000)) MB free (2x), $((avail / 1000000)) MB free"
        echo "$shape $n skipped $((need / 1000000)) $((avail / 1000000))" >>"$ROWS"
        return 0
    fi
    log "$shape N=$n: writing the capture"
    python3 "$ROOT/bench/many-conns.py" --shape "$shape" --count "$n" -o "$cap"
    sync -f "$WORK" 2>/dev/null || sync
    cat "$cap" >/dev/null # into the page cache
    log "$shape N=$n: rtmpsniff read"
    local rc=0 time_line report_b flvs used
    /usr/bin/time -f '%e %M' -o "$WORK/time" "$BIN" read "$cap" -o "$out" -q \
        >"$WORK/stdout" 2>"$WORK/stderr" || rc=$?
    time_line=$(tail -n 1 "$WORK/time")
    if [ "$rc" -gt 1 ]; then
        # 1 is "no RTMP in the input" (the SYN flood); anything else is a failure.
        tail -n 20 "$WORK/stderr" >&2
        log "rtmpsniff failed on $shape N=$n (exit status $rc)"
        echo "$shape $n failed $rc $time_line" >>"$ROWS"
        FAILED=1
    else
        report_b=$(stat -c %s "$out/report.json" 2>/dev/null || echo 0)
        flvs=$(find "$out" -name '*.flv' | wc -l)
        used=$(du -s -B1 "$out" | cut -f1)
        OUT_PER[$shape]=$(( used / n + 1 ))
        local row
        row="$shape $n $(stat -c %s "$cap") $time_line $report_b $flvs"
        if [ -n "$OLD" ]; then
            # The old binary on the same capture, under the same conditions.
            rm -rf "$out"
            sync -f "$WORK" 2>/dev/null || sync
            cat "$cap" >/dev/null
            log "$shape N=$n: rtmpsniff@old read"
            rc=0
            /usr/bin/time -f '%e %M' -o "$WORK/time" "$OLD" read "$cap" -o "$out" -q \
                >"$WORK/stdout" 2>"$WORK/stderr" || rc=$?
            if [ "$rc" -gt 1 ]; then
                tail -n 20 "$WORK/stderr" >&2
                log "rtmpsniff@old failed on $shape N=$n (exit status $rc)"
                row+=" old-failed $rc"
                FAILED=1
            else
                row+=" $(tail -n 1 "$WORK/time")"
            fi
        fi
        echo "$row" >>"$ROWS"
    fi
    rm -rf "$cap" "$out"
}

memory_bench() {
    [ -x "$BIN" ] || die "no rtmpsniff at $BIN (cargo build --release, or set RTMPSNIFF)"
    command -v /usr/bin/time >/dev/null || die "GNU time is needed (apt-get install time)"
    command -v python3 >/dev/null || die "missing tool: python3"
    mkdir -p "$DATA"
    WORK=$(mktemp -d "$DATA/memory.XXXXXX")
    ROWS=$WORK/rows
    : >"$ROWS"
    FAILED=0
    declare -gA OUT_PER=()
    # Capture bytes per connection (bench/many-conns.py's docstring): a SYN is 82 bytes with
    # its pcap record header, a default (cut) session 17,486.
    memory_run synflood 200000 82
    memory_run sessions 1000 17486
    memory_run sessions 10000 17486
    memory_run sessions 100000 17486
    python3 - "$ROWS" "${OLD:+compare}" <<'PY'
import sys

compare = sys.argv[2] == 'compare'
print(f'{"shape":<10}{"N":>9}{"capture MB":>12}{"wall s":>8}{"peak RSS MiB":>14}'
      f'{"report.json MB":>16}{"FLV files":>11}'
      + (f'{"old wall s":>12}{"old RSS MiB":>13}{"RSS new/old":>13}' if compare else ''))
for line in open(sys.argv[1]):
    f = line.split()
    shape, n = f[0], int(f[1])
    head = f'{shape:<10}{n:>9,}'
    if f[2] == 'skipped':
        print(f'{head}  skipped: needs {int(f[3]):,} MB free (2x), {int(f[4]):,} MB free')
    elif f[2] == 'failed':
        print(f'{head}  rtmpsniff FAILED (exit status {f[3]}): {" ".join(f[4:])}')
    else:
        cap, wall, rss, rep, flvs = int(f[2]), float(f[3]), int(f[4]), int(f[5]), int(f[6])
        old = ''
        if compare and f[7] == 'old-failed':
            old = f'  rtmpsniff@old FAILED (exit status {f[8]})'
        elif compare:
            owall, orss = float(f[7]), int(f[8])
            old = f'{owall:>12.2f}{orss / 1024:>13.1f}{rss / orss:>12.2f}x'
        print(f'{head}{cap / 1e6:>12.1f}{wall:>8.2f}{rss / 1024:>14.1f}{rep / 1e6:>16.1f}'
              f'{flvs:>11,}{old}')
PY
    echo
    machine
    [ -n "$OLD" ] && echo "rtmpsniff@old: $OLD ($("$OLD" --version 2>&1 || true))"
    return "$FAILED"
}

if [ "$MEMORY" = 1 ]; then
    memory_bench || exit 1
    exit 0
fi

if [ "$REMAKE" = 1 ] || [ ! -s "$DATA/capture.pcap" ] || [ ! -d "$DATA/truth" ]; then
    make_capture
fi
RT_DIR=$DATA/rtmps
if [ "$RTMPS" = 1 ] && { [ "$REMAKE" = 1 ] || [ ! -s "$RT_DIR/capture.pcap" ] ||
    [ ! -d "$RT_DIR/truth" ] || [ ! -s "$RT_DIR/keylog.txt" ]; }; then
    make_capture rtmps
fi
CAPTURE=$DATA/capture.pcap
RT_CAP=$RT_DIR/capture.pcap RT_KEYS=$RT_DIR/keylog.txt
if [ "$MAKE_ONLY" = 1 ]; then
    log "capture: $CAPTURE, truth: $DATA/truth"
    if [ "$RTMPS" = 1 ]; then
        log "rtmps capture: $RT_CAP, key log: $RT_KEYS, truth: $RT_DIR/truth"
    fi
    exit 0
fi

# --------------------------------------------------------------------------------------------
# 2. The runs
[ -x "$BIN" ] || die "no rtmpsniff at $BIN (cargo build --release, or set RTMPSNIFF)"
command -v /usr/bin/time >/dev/null || die "GNU time is needed (apt-get install time)"
WORK=$(mktemp -d "$DATA/run.XXXXXX")
count_packets() { # pcap -> its number of packets
    python3 - "$1" <<'PY'
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
}
BYTES=$(stat -c %s "$CAPTURE")
PACKETS=$(count_packets "$CAPTURE")
RT_BYTES=0 RT_PACKETS=0
if [ "$RTMPS" = 1 ]; then
    RT_BYTES=$(stat -c %s "$RT_CAP")
    RT_PACKETS=$(count_packets "$RT_CAP")
fi

RESULTS=$WORK/results
: >"$RESULTS"
measure() { # name command... ; appends "name wall_s user_s sys_s rss_kib" for one run
    local name=$1
    shift
    rm -rf "$WORK/out"
    mkdir -p "$WORK/out"
    # No writeback or discard of the previous run's output during this one.
    sync -f "$WORK" 2>/dev/null || sync
    # The capture back into the page cache: memory reclaim (DAMON on a VM) evicts it.
    cat "${WARM:-$CAPTURE}" >/dev/null # WARM: another capture (--rtmps)
    /usr/bin/time -f '%e %U %S %M' -o "$WORK/time" "$@" >"$WORK/stdout" 2>"$WORK/stderr" ||
        { cat "$WORK/stderr" >&2; die "$name failed"; }
    echo "$name $(tail -n 1 "$WORK/time")" >>"$RESULTS"
}

log "capture: $CAPTURE ($BYTES bytes, $PACKETS packets); $RUNS run(s) each"
if [ "$RTMPS" = 1 ]; then
    log "rtmps capture: $RT_CAP ($RT_BYTES bytes, $RT_PACKETS packets), key log $RT_KEYS"
fi
# Versions for the record (`tcpflow -V` exits with 1).
TOOLS=$("$BIN" --version 2>&1 || true)
HAVE_TCPFLOW=0 HAVE_TSHARK=0
if [ "$PEERS" = 1 ] && command -v tcpflow >/dev/null; then
    HAVE_TCPFLOW=1
    TOOLS+=", $(tcpflow -V 2>&1 | awk 'NR == 1 { print "tcpflow", $NF }' || true)"
fi
if [ "$PEERS" = 1 ] && command -v tshark >/dev/null; then
    HAVE_TSHARK=1
    TOOLS+=", $(tshark -v 2>/dev/null | awk 'NR == 1 { print "tshark", $3 }' || true)"
fi
[ -n "$OLD" ] && TOOLS+=", rtmpsniff@old: $OLD ($("$OLD" --version 2>&1 || true))"
run_tool() { # name
    case "$1" in
        copy) measure copy cp "$CAPTURE" "$WORK/out/copy.pcap" ;;
        rtmpsniff) measure rtmpsniff "$BIN" read "$CAPTURE" -o "$WORK/out" -q ;;
        # The name is one token in $RESULTS; the table prints "+" as " --".
        rtmpsniff+sha256) measure rtmpsniff+sha256 "$BIN" read "$CAPTURE" -o "$WORK/out" -q --sha256 ;;
        rtmpsniff@old) measure rtmpsniff@old "$OLD" read "$CAPTURE" -o "$WORK/out" -q ;;
        # --rtmps: the TLS capture of the same media, warmed in the plain one's place.
        rtmps) WARM=$RT_CAP measure rtmps "$BIN" read "$RT_CAP" --port 443 \
            --tls-keylog "$RT_KEYS" -o "$WORK/out" -q ;;
        rtmpsniff@old+sha256) measure rtmpsniff@old+sha256 "$OLD" read "$CAPTURE" -o "$WORK/out" -q --sha256 ;;
        tcpflow) measure tcpflow tcpflow -r "$CAPTURE" -o "$WORK/out" ;;
        tshark) measure tshark tshark -n -r "$CAPTURE" -q -z io,phs ;;
    esac
}
LIST=(copy rtmpsniff)
[ -n "$OLD" ] && LIST+=(rtmpsniff@old)
[ "$RTMPS" = 1 ] && LIST+=(rtmps)
LIST+=(rtmpsniff+sha256)
[ -n "$OLD" ] && LIST+=(rtmpsniff@old+sha256)
[ "$HAVE_TCPFLOW" = 1 ] && LIST+=(tcpflow)
[ "$HAVE_TSHARK" = 1 ] && LIST+=(tshark)
# Round after round, each tool once in each: a machine that speeds up or slows down during
# the benchmark (other load, memory reclaim) weighs on every tool alike. With --compare, the
# order also changes from round to round (see --compare above).
for ((r = 1; r <= RUNS; r++)); do
    log "round $r of $RUNS"
    if [ -z "$OLD" ]; then
        for t in "${LIST[@]}"; do run_tool "$t"; done
        continue
    fi
    seq_=()
    for ((i = 0; i < ${#LIST[@]}; i++)); do seq_+=("${LIST[(i + r - 1) % ${#LIST[@]}]}"); done
    if ((r % 2 == 0)); then # each old row just before its new counterpart
        for ((i = 0; i + 1 < ${#seq_[@]}; i++)); do
            if [ "${seq_[i + 1]}" = "${seq_[i]/rtmpsniff/rtmpsniff@old}" ] &&
                [ "${seq_[i]}" != "${seq_[i + 1]}" ]; then
                t=${seq_[i]}
                seq_[i]=${seq_[i + 1]}
                seq_[i + 1]=$t
                i=$((i + 1))
            fi
        done
    fi
    log "order: ${seq_[*]}"
    for t in "${seq_[@]}"; do run_tool "$t"; done
done
# Keep one rtmpsniff output (with the sha256s) for the check.
rm -rf "$WORK/rtmpsniff-out"
"$BIN" read "$CAPTURE" -o "$WORK/rtmpsniff-out" -q --sha256
if [ -n "$OLD" ]; then
    rm -rf "$WORK/old-out"
    "$OLD" read "$CAPTURE" -o "$WORK/old-out" -q --sha256
fi
if [ "$RTMPS" = 1 ]; then
    rm -rf "$WORK/rtmps-out"
    "$BIN" read "$RT_CAP" --port 443 --tls-keylog "$RT_KEYS" -o "$WORK/rtmps-out" -q --sha256
fi

# --------------------------------------------------------------------------------------------
# 3. Bit-exact check, the table and the targets
STATUS=0
RB_RTMPS=$RTMPS RB_RT_TRUTH=$RT_DIR/truth RB_RT_OUT=$WORK/rtmps-out RB_RT_BYTES=$RT_BYTES \
    RB_RT_PACKETS=$RT_PACKETS python3 - "$DATA/truth" "$WORK/rtmpsniff-out" "$RESULTS" "$BYTES" "$PACKETS" \
    ${OLD:+"$WORK/old-out"} <<'PY' || STATUS=$?
import hashlib, json, os, statistics, sys

truth_dir, out_dir, results, nbytes, npackets = sys.argv[1:6]
nbytes, npackets = int(nbytes), int(npackets)
old_dir = sys.argv[6] if len(sys.argv) > 6 else None  # --compare

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

truths = sorted(os.listdir(truth_dir))
wants = {t: media(os.path.join(truth_dir, t)) for t in truths}

def check(out_dir, prefix, truths=truths, wants=wants):  # -> (bit-exact, sha256 right, checked)
    report = json.load(open(os.path.join(out_dir, 'report.json')))
    files = {}
    for c in report['connections']:
        for s in c['streams']:
            if s['direction'] == 'publish':
                files[s['name']] = (os.path.join(out_dir, s['file']), s.get('sha256'))
    ok = 0
    sha_ok = sha_n = 0
    for t in truths:
        name = t[:-4]
        want = wants[t]
        got = media(files[name][0]) if name in files else []
        same = want == got
        ok += same
        sha = ''
        if name in files:
            path, reported = files[name]
            actual = hashlib.sha256(open(path, 'rb').read()).hexdigest()
            sha_ok += reported == actual
            sha_n += 1
            sha = ', report sha256 ' + ('right' if reported == actual else
                                         f'WRONG ({reported} for a file of {actual})')
        print(f'{prefix}{name}: {len(want)} truth tags, {len(got)} recovered, '
              + ('bit-exact' if same else 'DIFFERENT') + sha)
    return ok, sha_ok, sha_n

ok, sha_ok, sha_n = check(out_dir, '')
if old_dir:
    old_ok, old_sha_ok, old_sha_n = check(old_dir, 'rtmpsniff@old: ')
rtmps = os.environ.get('RB_RTMPS') == '1'  # --rtmps
if rtmps:
    rt_out = os.environ['RB_RT_OUT']
    rt_bytes, rt_packets = int(os.environ['RB_RT_BYTES']), int(os.environ['RB_RT_PACKETS'])
    rt_truth = os.environ['RB_RT_TRUTH']
    rt_truths = sorted(os.listdir(rt_truth))
    rt_wants = {t: media(os.path.join(rt_truth, t)) for t in rt_truths}
    rt_ok, rt_sha_ok, rt_sha_n = check(rt_out, 'rtmps: ', rt_truths, rt_wants)
    same_media = [rt_wants[t] for t in rt_truths] == [wants[t] for t in truths]
    print('rtmps: both truths the same media (audio/video tags): '
          + ('yes' if same_media else 'NO: the two captures are not of the same media'))
    tls = [c.get('tls') or {} for c in json.load(open(os.path.join(rt_out, 'report.json')))
           ['connections']]
    kinds = {}
    for t in tls:
        k = f'{t.get("version")} {t.get("cipher_suite")}' + ('' if t.get('decrypted') else
                                                              ' NOT decrypted')
        kinds[k] = kinds.get(k, 0) + 1
    print('rtmps: TLS connections: ' + ', '.join(f'{n} x {k}' for k, n in sorted(kinds.items()))
          + f'; records {sum(t.get("records_seen", 0) for t in tls)} seen, '
          f'{sum(t.get("records", 0) for t in tls)} decrypted, '
          f'{sum(t.get("failed_records", 0) for t in tls)} failed, '
          f'{sum(t.get("lost_records", 0) for t in tls)} lost')

runs = {}
order = []
for line in open(results):
    name, wall, user, sys_, rss = line.split()
    if name not in runs:
        order.append(name)
    runs.setdefault(name, []).append((float(wall), float(user), float(sys_), int(rss)))
# The table's order, whatever the order of the runs (--compare rotates it; without it, this
# is the order of the runs).
LIST = ['copy', 'rtmpsniff', 'rtmpsniff@old', 'rtmpsniff+sha256', 'rtmpsniff@old+sha256',
        'tcpflow', 'tshark']
LIST.insert(LIST.index('rtmpsniff@old') + 1, 'rtmps')  # --rtmps
order.sort(key=LIST.index)
med = lambda name, i: statistics.median(r[i] for r in runs[name])
cpu = lambda name: statistics.median(r[1] + r[2] for r in runs[name])
peak = lambda name: max(r[3] for r in runs[name]) / 1024
shown = lambda name: 'rtmpsniff rtmps' if name == 'rtmps' else name.replace('+', ' --')
# The RTMPS row's MB/s and packets/s are of its own capture.
size = lambda name: (rt_bytes, rt_packets) if name == 'rtmps' else (nbytes, npackets)
ref = med('rtmpsniff', 0)
print()
print(f'capture: {nbytes / 1e6:.0f} MB, {npackets} packets; median of {len(runs["rtmpsniff"])} run(s)')
if rtmps:
    print(f'rtmps capture: {rt_bytes / 1e6:.0f} MB, {rt_packets} packets (the `rtmpsniff rtmps` row)')
W = max([20] + [len(shown(n)) + 2 for n in order])  # 20 unless --compare's names
print(f'{"tool":<{W}}{"wall s":>7}{"user s":>7}{"sys s":>7}{"MB/s":>7}{"packets/s":>11}'
      f'{"peak RSS":>12}{"wall/rtmpsniff":>16}')
for name in order:
    wall = med(name, 0)
    speed = lambda n: n / wall if wall > 0 else float('inf')
    print(f'{shown(name):<{W}}{wall:>7.2f}{med(name, 1):>7.2f}{med(name, 2):>7.2f}'
          f'{speed(size(name)[0]) / 1e6:>7.0f}{speed(size(name)[1]):>11.0f}'
          f'{peak(name):>8.1f} MiB{wall / ref:>15.2f}x')

EPS = 1e-9  # times are in hundredths: 0.18 <= 1.5 x 0.12 must hold
if old_dir:
    # New vs old, measured side by side in the same rounds.
    print()
    print('new vs old (rtmpsniff@old), within 5% = new <= 1.05 x old:')
    for new in ('rtmpsniff', 'rtmpsniff+sha256'):
        old = new.replace('rtmpsniff', 'rtmpsniff@old')
        if new not in runs or old not in runs:
            continue
        for what, a, b, unit, fmt in (
                ('wall time (median)', med(new, 0), med(old, 0), 's', '.2f'),
                ('peak RSS (max)', peak(new), peak(old), 'MiB', '.1f')):
            r = f'{a / b:.3f}x' if b > 0 else 'inf x'
            met = 'met' if a <= 1.05 * b + EPS else 'NOT met'
            print(f'{shown(new)} {what}: new {a:{fmt}} {unit} vs old {b:{fmt}} {unit} = {r}: '
                  f'within 5%: {met}')

# The targets, from the medians (peak RSS: the largest of all runs).
verdict = lambda met: 'met' if met else 'NOT met'
ratio = lambda a, b: f'{a / b:.2f}x' if b > 0 else 'inf x'
print()
print('targets:')
if 'copy' in runs:
    cp = med('copy', 0)
    print(f'rtmpsniff wall <= 1.5 x copy: {ref:.2f} s vs 1.5 x {cp:.2f} s = {1.5 * cp:.2f} s '
          f'({ratio(ref, cp)}): {verdict(ref <= 1.5 * cp + EPS)}')
if 'tcpflow' in runs:
    tf = med('tcpflow', 0)
    print(f'rtmpsniff wall <= 1/3 tcpflow: {ref:.2f} s vs {tf:.2f} s / 3 = {tf / 3:.2f} s '
          f'({ratio(ref, tf)}): {verdict(3 * ref <= tf + EPS)}')
if rtmps:
    rt = med('rtmps', 0)
    print(f'rtmps wall <= 1.5 x plain: {rt:.2f} s vs 1.5 x {ref:.2f} s = {1.5 * ref:.2f} s '
          f'({ratio(rt, ref)}): {verdict(rt <= 1.5 * ref + EPS)}')
sniffs = [n for n in order if n.startswith('rtmpsniff')]
worst = max(peak(n) for n in sniffs if '@old' not in n)
with_sha = (f' (--sha256: {peak("rtmpsniff+sha256"):.1f} MiB)' if 'rtmpsniff+sha256' in runs
            else '')
print(f'rtmpsniff peak RSS <= 32 MiB: {peak("rtmpsniff"):.1f} MiB{with_sha}, largest of '
      f'{len(runs["rtmpsniff"])} runs: {verdict(worst <= 32)}')
print(f'bit-exact streams: {ok}/{len(truths)}: {verdict(ok == len(truths))}')
if sha_ok != sha_n:
    print(f'report sha256 WRONG for {sha_n - sha_ok}/{sha_n} recovered streams')
if old_dir:
    print(f'rtmpsniff@old bit-exact streams: {old_ok}/{len(truths)}: '
          f'{verdict(old_ok == len(truths))}')
    if old_sha_ok != old_sha_n:
        print(f'rtmpsniff@old report sha256 WRONG for {old_sha_n - old_sha_ok}/{old_sha_n} '
              'recovered streams')
    ok = min(ok, old_ok)
if rtmps:
    print(f'rtmps bit-exact streams: {rt_ok}/{len(rt_truths)}: '
          f'{verdict(rt_ok == len(rt_truths) and len(rt_truths) > 0)}')
    if rt_sha_ok != rt_sha_n:
        print(f'rtmps report sha256 WRONG for {rt_sha_n - rt_sha_ok}/{rt_sha_n} recovered streams')
    if rt_ok != len(rt_truths) or not rt_truths:
        ok = -1
for n in sniffs:
    c = cpu(n)
    print(f'{shown(n)} CPU: {c / npackets * 1e6:.2f} us/packet, {c / nbytes * 1e9:.2f} ns/byte '
          f'(user+sys {c:.2f} s)')
if rtmps:
    c, plain = cpu('rtmps'), cpu('rtmpsniff')
    print(f'rtmps CPU: {c / rt_packets * 1e6:.2f} us/packet, {c / rt_bytes * 1e9:.2f} ns/byte '
          f'(user+sys {c:.2f} s, {ratio(c, plain)} the plain run\'s)')
sys.exit(0 if ok == len(truths) else 1)
PY
echo
machine
echo "tools: $TOOLS"
exit "$STATUS"
