#!/usr/bin/env bash
# Regenerate all rtmpsniff real-peer samples from scratch (run as root).
#
#   sudo samples/make-samples.sh
#
# Needs: nginx + libnginx-mod-rtmp, ffmpeg (libx264, libmp3lame), rtmpdump,
# tcpdump, tshark/dumpcap, iproute2, jq; ethtool optional.
# Only 127.0.0.1 and addresses inside the namespaces created here are used.
set -euo pipefail

SAMPLES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TMP="$(mktemp -d /tmp/rtmpsniff-samples.XXXXXX)"
chmod 755 "$TMP"
NS_SRV=rs-srv
NS_CLI=rs-cli
VETH_SRV=rs-veth-srv
VETH_CLI=rs-veth-cli
SRV_IP=10.201.0.1
CLI_IP=10.201.0.2
PIDS=()            # every background process we start

log() { printf '[make-samples] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
for t in nginx ffmpeg ffprobe rtmpdump tcpdump dumpcap tshark ip ss jq; do
    command -v "$t" >/dev/null || die "missing tool: $t"
done

RTMP_SO=""
for f in /usr/lib/nginx/modules/ngx_rtmp_module.so /usr/share/nginx/modules/ngx_rtmp_module.so; do
    [ -f "$f" ] && { RTMP_SO=$f; break; }
done
if [ -z "$RTMP_SO" ]; then
    RTMP_SO="$(find /usr/lib/nginx /usr/share/nginx -name 'ngx_rtmp_module.so' 2>/dev/null | head -1)"
fi
[ -n "$RTMP_SO" ] || die "ngx_rtmp_module.so not found (apt-get install libnginx-mod-rtmp)"

cleanup() {
    local rc=$?
    set +e
    for p in "${PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null && kill -TERM "$p" 2>/dev/null
    done
    sleep 0.3
    for p in "${PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    for ns in "$NS_SRV" "$NS_CLI"; do
        if ip netns list | grep -qw "$ns"; then
            for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
            ip netns del "$ns"
        fi
    done
    ip link del "$VETH_SRV" 2>/dev/null
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bg() { "$@" & PIDS+=($!); }   # start a tracked background process; pid in $!

# wait until a file contains a pattern (capture tools print when ready)
wait_for_text() { # file pattern timeout_s
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    die "timeout waiting for '$2' in $1: $(cat "$1" 2>/dev/null)"
}

wait_listen() { # ns-or-empty addr:port
    local i cmd=(ss -Hltn)
    [ -n "$1" ] && cmd=(ip netns exec "$1" ss -Hltn)
    for ((i = 0; i < 100; i++)); do
        "${cmd[@]}" | grep -q " $2 " && return 0
        sleep 0.1
    done
    die "nothing listening on $2"
}

# wait for a pid with timeout; then SIGINT, then SIGKILL.
wait_or_int() { # pid timeout_s name
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    log "$3 still running after $2 s, sending SIGINT"
    kill -INT "$1" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

stop_capture() { # pid
    sleep 1          # let the last FIN/ACKs hit the wire
    kill -INT "$1"
    wait "$1" 2>/dev/null || true
}

# ---------------------------------------------------------------------------
# nginx config
write_nginx_conf() { # dir listen1 chunk1 [listen2 chunk2]
    local d=$1
    mkdir -p "$d/rec" "$d/logs"
    {
        echo "load_module $RTMP_SO;"
        echo "daemon off;"
        echo "master_process on;"
        echo "worker_processes 1;"
        echo "user root root;"
        echo "pid $d/nginx.pid;"
        echo "error_log $d/logs/error.log info;"
        echo "events { worker_connections 128; }"
        echo "rtmp {"
        echo "  access_log $d/logs/rtmp-access.log;"
        shift
        while [ $# -ge 2 ]; do
            cat <<EOF
  server {
    listen $1;
    chunk_size $2;
    application live {
      live on;
      play_restart on;   # send NetStream.Play.Stop on unpublish so players exit
      record all;
      record_path $d/rec;
      record_unique off;
    }
  }
EOF
            shift 2
        done
        echo "}"
    } >"$d/nginx.conf"
}

start_nginx() { # dir [netns]
    local d=$1 ns=${2:-}
    local pre=()
    [ -n "$ns" ] && pre=(ip netns exec "$ns")
    "${pre[@]}" nginx -t -q -p "$d" -e "$d/logs/error.log" -c "$d/nginx.conf"
    bg "${pre[@]}" nginx -p "$d" -e "$d/logs/error.log" -c "$d/nginx.conf"
    NGINX_PID=$!
}

stop_nginx() { # pid
    kill -QUIT "$1" 2>/dev/null || true
    wait_or_int "$1" 10 nginx
}

# ---------------------------------------------------------------------------
# source media (pre-encoded so publishing is a pure -re copy)
SRC=$TMP/src
STAGE=$TMP/out      # samples are built here and moved into place only on success
mkdir -p "$STAGE"
mkdir -p "$SRC"
FF=(ffmpeg -nostdin -hide_banner -loglevel error -y)

log "encoding source media"
# H.264 baseline 320x240@25, keyint 25, + AAC-LC mono 44.1 kHz
"${FF[@]}" -f lavfi -i "testsrc2=size=320x240:rate=25" \
    -f lavfi -i "sine=frequency=440:sample_rate=44100" -t 3 \
    -c:v libx264 -profile:v baseline -preset veryfast -pix_fmt yuv420p \
    -g 25 -keyint_min 25 -sc_threshold 0 -b:v 150k -maxrate 150k -bufsize 300k \
    -c:a aac -b:a 48k -ac 1 -ar 44100 -f flv "$SRC/h264-aac.flv"
# H.264 main with B-frames (non-zero composition time) 320x180@30 + AAC stereo 48 kHz
"${FF[@]}" -f lavfi -i "testsrc2=size=320x180:rate=30" \
    -f lavfi -i "sine=frequency=660:sample_rate=48000" -t 3 \
    -c:v libx264 -profile:v main -preset veryfast -pix_fmt yuv420p -bf 2 \
    -g 30 -keyint_min 30 -sc_threshold 0 -b:v 150k -maxrate 150k -bufsize 300k \
    -c:a aac -b:a 64k -ac 2 -ar 48000 -f flv "$SRC/h264main-aac.flv"
# Sorenson H.263 320x240@25 + MP3 mono 44.1 kHz
"${FF[@]}" -f lavfi -i "testsrc2=size=320x240:rate=25" \
    -f lavfi -i "sine=frequency=880:sample_rate=44100" -t 3 \
    -c:v flv1 -g 25 -b:v 200k -c:a libmp3lame -b:a 48k -ac 1 -ar 44100 \
    -f flv "$SRC/flv1-mp3.flv"
# Sorenson H.263 176x144@15 + MP3 mono 22.05 kHz
"${FF[@]}" -f lavfi -i "testsrc2=size=176x144:rate=15" \
    -f lavfi -i "sine=frequency=330:sample_rate=22050" -t 3 \
    -c:v flv1 -g 15 -b:v 100k -c:a libmp3lame -b:a 32k -ac 1 -ar 22050 \
    -f flv "$SRC/flv1-mp3-22k.flv"

# publisher: ffmpeg -re copy of a source file (optionally prefixed, e.g. ip netns exec)
PUB_OPTS=(-map 0 -c copy -f flv)

# count packets per type in an flv (video audio)
count_packets() {
    local v a
    v=$(ffprobe -v error -select_streams v -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$1" | head -1)
    a=$(ffprobe -v error -select_streams a -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$1" | head -1)
    echo "${v:-0} ${a:-0}"
}

# client TCP port of the connection that issued <cmd> ("publish"/"play") for <stream>
client_port() { # capture cmd stream server_port
    tshark -r "$1" -Y "amf.string == \"$2\" && amf.string == \"$3\"" \
        -T fields -e tcp.srcport 2>/dev/null | grep -vx "$4" | head -1 || true
}

# port of the connection whose connect() flashVer matches a pattern
port_by_flashver() { # capture pattern server_port
    tshark -r "$1" -Y "amf.string == \"connect\" && amf.string matches \"$2\"" \
        -T fields -e tcp.srcport 2>/dev/null | grep -vx "$3" | sort -u || true
}

stream_json() { # name direction tool truth port vcodec acodec capture
    local v a
    read -r v a < <(count_packets "$OUT/$4")
    jq -n --arg name "$1" --arg dir "$2" --arg tool "$3" --arg truth "$4" \
        --arg port "$5" --arg vc "$6" --arg ac "$7" --argjson v "$v" --argjson a "$a" \
        '{name: $name, app: "live", direction: $dir, client_tool: $tool, truth: $truth}
         + (if $port == "" then {} else {client_port: ($port | tonumber)} end)
         + {video_codec: $vc, audio_codec: $ac, truth_packets: {video: $v, audio: $a}}'
}

capture_info() { # capture -> prints "frames first_is_syn fin_count"
    local n syn fin
    n=$(tshark -r "$1" -T fields -e frame.number 2>/dev/null | wc -l)
    syn=$(tshark -r "$1" -Y 'tcp.flags.syn==1 && tcp.flags.ack==0' -T fields -e frame.number 2>/dev/null | wc -l)
    fin=$(tshark -r "$1" -Y 'tcp.flags.fin==1' -T fields -e frame.number 2>/dev/null | wc -l)
    echo "frames=$n syn=$syn fin=$fin"
}

# ===========================================================================
# Loopback nginx: :1935 chunk_size 4096 (default)
ss -Hltn | grep -q ':1935 ' && die "port 1935 already in use on this host"
LO=$TMP/nginx-lo
write_nginx_conf "$LO" 127.0.0.1:1935 4096
start_nginx "$LO"
LO_NGINX=$NGINX_PID
wait_listen "" 127.0.0.1:1935

# ---------------------------------------------------------------------------
# Sample 1: lo-h264-aac
log "sample lo-h264-aac"
OUT=$STAGE/lo-h264-aac
mkdir -p "$OUT/truth"
bg tcpdump -Z root -i lo -s 0 -U -n -w "$TMP/s1.pcap" 'tcp port 1935' 2>"$TMP/s1.tcpdump.log"
CAP=$!
wait_for_text "$TMP/s1.tcpdump.log" "listening on" 10
sleep 0.5
"${FF[@]}" -re -i "$SRC/h264-aac.flv" "${PUB_OPTS[@]}" rtmp://127.0.0.1:1935/live/cam1
stop_capture "$CAP"
cp "$TMP/s1.pcap" "$OUT/capture.pcap"
cp "$LO/rec/cam1.flv" "$OUT/truth/publish-cam1.flv"
P=$(client_port "$OUT/capture.pcap" publish cam1 1935)
jq -n --arg d "ffmpeg publishes H.264 baseline + AAC to nginx-rtmp (chunk_size 4096) over loopback" \
    --argjson s1 "$(stream_json cam1 publish ffmpeg truth/publish-cam1.flv "$P" h264 aac)" \
    '{description: $d, capture: "capture.pcap", link: "lo (DLT_EN10MB)", server: "127.0.0.1:1935",
      server_chunk_size: 4096, streams: [$s1]}' >"$OUT/manifest.json"
log "  $(capture_info "$OUT/capture.pcap")"

# ---------------------------------------------------------------------------
# Sample 2: lo-legacy-play (pcapng, players waiting before the publisher)
log "sample lo-legacy-play"
OUT=$STAGE/lo-legacy-play
mkdir -p "$OUT/truth"
bg dumpcap -i lo -s 0 -n -f "tcp port 1935" -w "$TMP/s2.pcapng" 2>"$TMP/s2.dumpcap.log"
CAP=$!
wait_for_text "$TMP/s2.dumpcap.log" "Capturing on" 10
sleep 0.5
bg "${FF[@]}" -i rtmp://127.0.0.1:1935/live/legacy -map 0 -c copy -f flv "$OUT/truth/play-ffmpeg-legacy.flv"
PLAY_FF=$!
bg rtmpdump -q -v -r rtmp://127.0.0.1:1935/live/legacy -o "$OUT/truth/play-rtmpdump-legacy.flv"
PLAY_RD=$!
sleep 1.5
"${FF[@]}" -re -i "$SRC/flv1-mp3.flv" "${PUB_OPTS[@]}" rtmp://127.0.0.1:1935/live/legacy
wait_or_int "$PLAY_FF" 10 "ffmpeg player"
wait_or_int "$PLAY_RD" 10 "rtmpdump player"
stop_capture "$CAP"
cp "$TMP/s2.pcapng" "$OUT/capture.pcapng"
cp "$LO/rec/legacy.flv" "$OUT/truth/publish-legacy.flv"
C=$OUT/capture.pcapng
P_PUB=$(client_port "$C" publish legacy 1935)
P_FF=$(port_by_flashver "$C" '^LNX 9,' 1935 | head -1)
P_RD=$(port_by_flashver "$C" '^LNX 10,' 1935 | head -1)
jq -n --arg d "ffmpeg publishes Sorenson H.263 + MP3; ffmpeg and rtmpdump play it (connected before the publish); nginx chunk_size 4096; pcapng" \
    --argjson s1 "$(stream_json legacy publish ffmpeg truth/publish-legacy.flv "$P_PUB" flv1 mp3)" \
    --argjson s2 "$(stream_json legacy play ffmpeg truth/play-ffmpeg-legacy.flv "$P_FF" flv1 mp3)" \
    --argjson s3 "$(stream_json legacy play rtmpdump truth/play-rtmpdump-legacy.flv "$P_RD" flv1 mp3)" \
    '{description: $d, capture: "capture.pcapng", link: "lo (pcapng, DLT_EN10MB)", server: "127.0.0.1:1935",
      server_chunk_size: 4096, streams: [$s1, $s2, $s3]}' >"$OUT/manifest.json"
log "  $(capture_info "$C")"

stop_nginx "$LO_NGINX"

# ---------------------------------------------------------------------------
# Sample 3: netns-multi (veth, MTU 1500, offloads off, nginx chunk_size 128)
log "sample netns-multi"
OUT=$STAGE/netns-multi
mkdir -p "$OUT/truth"
for ns in "$NS_SRV" "$NS_CLI"; do
    ip netns list | grep -qw "$ns" && die "namespace $ns already exists (stale run? 'ip netns del $ns')"
done
ip netns add "$NS_SRV"
ip netns add "$NS_CLI"
ip link add "$VETH_SRV" type veth peer name "$VETH_CLI"
ip link set "$VETH_SRV" netns "$NS_SRV"
ip link set "$VETH_CLI" netns "$NS_CLI"
for pair in "$NS_SRV:$VETH_SRV:$SRV_IP" "$NS_CLI:$VETH_CLI:$CLI_IP"; do
    IFS=: read -r ns dev ip4 <<<"$pair"
    ip -n "$ns" link set lo up
    ip -n "$ns" link set "$dev" mtu 1500
    ip -n "$ns" addr add "$ip4/24" dev "$dev"
    if command -v ethtool >/dev/null; then
        ip netns exec "$ns" ethtool -K "$dev" tso off gso off gro off tx off rx off >/dev/null 2>&1 ||
            log "  ethtool -K failed on $dev"
    fi
    ip -n "$ns" link set "$dev" up
done
NS=$TMP/nginx-ns
write_nginx_conf "$NS" "$SRV_IP:1935" 128
start_nginx "$NS" "$NS_SRV"
NS_NGINX=$NGINX_PID
wait_listen "$NS_SRV" "$SRV_IP:1935"
sleep 0.5

bg ip netns exec "$NS_SRV" tcpdump -Z root -i "$VETH_SRV" -s 0 -U -n -w "$TMP/s3.pcap" 'tcp port 1935' 2>"$TMP/s3.tcpdump.log"
CAP=$!
wait_for_text "$TMP/s3.tcpdump.log" "listening on" 10
sleep 0.5
URL=rtmp://$SRV_IP:1935/live
bg ip netns exec "$NS_CLI" "${FF[@]}" -i "$URL/a" -map 0 -c copy -f flv "$OUT/truth/play-ffmpeg-a.flv"
PLAY_A=$!
sleep 1
bg ip netns exec "$NS_CLI" "${FF[@]}" -re -i "$SRC/h264main-aac.flv" "${PUB_OPTS[@]}" "$URL/a"
PUB_A=$!
bg ip netns exec "$NS_CLI" "${FF[@]}" -re -i "$SRC/flv1-mp3-22k.flv" "${PUB_OPTS[@]}" "$URL/b"
PUB_B=$!
wait_or_int "$PUB_A" 20 "publisher a"
wait_or_int "$PUB_B" 20 "publisher b"
wait_or_int "$PLAY_A" 10 "ffmpeg player a"
stop_capture "$CAP"
stop_nginx "$NS_NGINX"
cp "$TMP/s3.pcap" "$OUT/capture.pcap"
cp "$NS/rec/a.flv" "$OUT/truth/publish-a.flv"
cp "$NS/rec/b.flv" "$OUT/truth/publish-b.flv"
C=$OUT/capture.pcap
jq -n --arg d "two namespaces over a veth pair (MTU 1500, offloads off); two simultaneous ffmpeg publishers (a: H.264 main w/ B-frames + AAC, b: H.263 + MP3 22 kHz) and one ffmpeg player of a; nginx chunk_size 128; capture on the server-side veth" \
    --argjson s1 "$(stream_json a publish ffmpeg truth/publish-a.flv "$(client_port "$C" publish a 1935)" h264 aac)" \
    --argjson s2 "$(stream_json b publish ffmpeg truth/publish-b.flv "$(client_port "$C" publish b 1935)" flv1 mp3)" \
    --argjson s3 "$(stream_json a play ffmpeg truth/play-ffmpeg-a.flv "$(client_port "$C" play a 1935)" h264 aac)" \
    --arg srv "$SRV_IP:1935" --arg cli "$CLI_IP" \
    '{description: $d, capture: "capture.pcap", link: "veth (DLT_EN10MB)", server: $srv, client_ip: $cli,
      server_chunk_size: 128, streams: [$s1, $s2, $s3]}' >"$OUT/manifest.json"
log "  $(capture_info "$C")"

ip netns del "$NS_CLI"
ip netns del "$NS_SRV"

# ---------------------------------------------------------------------------
log "verifying truth files"
for f in "$STAGE"/*/truth/*.flv; do
    err=$(ffmpeg -nostdin -v error -i "$f" -map 0 -f null - 2>&1 || echo "ffmpeg failed")
    [ -z "$err" ] || die "decode errors in ${f#"$STAGE"/}: $err"
done
for d in "$STAGE"/*/; do
    n=$(basename "$d")
    rm -rf "${SAMPLES:?}/$n"
    mv "$d" "$SAMPLES/$n"
done
{
    echo "generated: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "ffmpeg:    $(ffmpeg -version | head -1)"
    echo "nginx:     $(nginx -v 2>&1) + $(dpkg-query -W -f '${Package} ${Version}' libnginx-mod-rtmp 2>/dev/null || echo rtmp module)"
    echo "rtmpdump:  $(rtmpdump -h 2>&1 | grep -m1 RTMPDump) ($(dpkg-query -W -f '${Package} ${Version}' rtmpdump 2>/dev/null))"
    echo "tcpdump:   $(tcpdump --version 2>&1 | head -1), $(tcpdump --version 2>&1 | sed -n 2p)"
    echo "tshark:    $(tshark --version 2>/dev/null | head -1)"
    echo "kernel:    $(uname -srm)"
} >"$SAMPLES/versions.txt"
log "done"
du -ab "$SAMPLES" | sort -k2 >&2
