#!/usr/bin/env bash
# Make the "hard" real-peer samples (run as root): captures that began mid-stream and a
# capture with frames missing, each with the peers' own recordings as truth.
#
#   sudo samples/make-hard-samples.sh
#   sudo DEST=/tmp/lab1 samples/make-hard-samples.sh   (a fresh pair of captures elsewhere,
#       the whole capture kept beside the 1% one as capture-full.pcap: bench/fresh-lab.sh)
#
# netns-midstream/: nginx-rtmp (chunk_size 4096) in namespace rs-hsrv, clients in rs-hcli
#   over a veth pair (MTU 1500, offloads off). ffmpeg publishes `mid` (H.264+AAC) and `leg`
#   (Sorenson H.263+MP3) for 10 s; an ffmpeg player records each from the start. tcpdump
#   starts 4 s after the publishers: no handshake, no connect, no sequence headers.
# netns-loss/: the same set-up captured whole, then 1% of its frames (fixed seed) deleted
#   with editcap: capture loss the peers never saw.
# Needs: nginx + libnginx-mod-rtmp, ffmpeg, tcpdump, editcap (wireshark-common), iproute2,
# python3; ethtool optional. Only addresses inside the namespaces made here are used.
set -euo pipefail

SAMPLES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEST=${DEST:-$SAMPLES}
TMP="$(mktemp -d /tmp/rtmpsniff-hard.XXXXXX)"
chmod 755 "$TMP"
NS_SRV=rs-hsrv NS_CLI=rs-hcli VETH_SRV=rs-hveth-s VETH_CLI=rs-hveth-c
SRV_IP=10.202.0.1 CLI_IP=10.202.0.2
PIDS=()
log() { printf '[make-hard-samples] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
RTMP_SO=$(find /usr/lib/nginx /usr/share/nginx -name ngx_rtmp_module.so 2>/dev/null | head -1)
[ -n "$RTMP_SO" ] || die "ngx_rtmp_module.so not found (apt-get install libnginx-mod-rtmp)"

cleanup() {
    local rc=$?
    set +e
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    sleep 0.3
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    for ns in "$NS_SRV" "$NS_CLI"; do
        if ip netns list | grep -qw "$ns"; then
            for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
            ip netns del "$ns"
        fi
    done
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
bg() { "$@" & PIDS+=($!); }
wait_for_text() { local i; for ((i = 0; i < $3 * 10; i++)); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; die "timeout waiting for '$2' in $1"; }
FF=(ffmpeg -nostdin -hide_banner -loglevel error -y)

log "encoding 10 s sources"
"${FF[@]}" -f lavfi -i "testsrc2=size=320x240:rate=25" -f lavfi -i "sine=frequency=440:sample_rate=44100" -t 10 \
    -c:v libx264 -profile:v main -preset veryfast -pix_fmt yuv420p -g 50 -keyint_min 50 -sc_threshold 0 \
    -b:v 300k -maxrate 300k -bufsize 600k -c:a aac -b:a 64k -ac 2 -ar 44100 -f flv "$TMP/h264.flv"
"${FF[@]}" -f lavfi -i "testsrc2=size=320x240:rate=25" -f lavfi -i "sine=frequency=880:sample_rate=44100" -t 10 \
    -c:v flv1 -g 50 -b:v 300k -c:a libmp3lame -b:a 64k -ac 1 -ar 44100 -f flv "$TMP/flv1.flv"

setup_net() {
    ip netns add "$NS_SRV"; ip netns add "$NS_CLI"
    ip link add "$VETH_SRV" type veth peer name "$VETH_CLI"
    ip link set "$VETH_SRV" netns "$NS_SRV"; ip link set "$VETH_CLI" netns "$NS_CLI"
    ip -n "$NS_SRV" addr add "$SRV_IP/24" dev "$VETH_SRV"; ip -n "$NS_CLI" addr add "$CLI_IP/24" dev "$VETH_CLI"
    for x in "$NS_SRV:$VETH_SRV" "$NS_CLI:$VETH_CLI"; do
        ip -n "${x%%:*}" link set lo up; ip -n "${x%%:*}" link set "${x#*:}" mtu 1500 up
        command -v ethtool >/dev/null && ip netns exec "${x%%:*}" ethtool -K "${x#*:}" tso off gso off gro off tx off rx off >/dev/null 2>&1 || true
    done
}
teardown_net() { for p in $(ip netns pids "$NS_SRV") $(ip netns pids "$NS_CLI"); do kill -KILL "$p" 2>/dev/null || true; done; ip netns del "$NS_CLI"; ip netns del "$NS_SRV"; }

# run one session: $1 = out dir, $2 = seconds to wait before starting the capture
session() {
    local out=$1 delay=$2 d=$TMP/nginx-$RANDOM
    mkdir -p "$d/rec" "$d/logs" "$out/truth"
    cat >"$d/nginx.conf" <<CONF
load_module $RTMP_SO;
daemon off; master_process on; worker_processes 1; user root root;
pid $d/nginx.pid; error_log $d/logs/error.log info;
events { worker_connections 128; }
rtmp { server { listen $SRV_IP:1935; chunk_size 4096;
  application live { live on; play_restart on; record all; record_path $d/rec; record_unique off; } } }
CONF
    setup_net
    bg ip netns exec "$NS_SRV" nginx -p "$d" -e "$d/logs/error.log" -c "$d/nginx.conf"
    local nginx=$!
    sleep 0.5
    local cap=""
    if [ "$delay" = 0 ]; then
        bg ip netns exec "$NS_SRV" tcpdump -Z root -i "$VETH_SRV" -s 0 -U -n -w "$TMP/cap.pcap" 'tcp port 1935' 2>"$TMP/td.log"
        cap=$!; wait_for_text "$TMP/td.log" "listening on" 10
    fi
    local url=rtmp://$SRV_IP:1935/live
    bg ip netns exec "$NS_CLI" "${FF[@]}" -i "$url/mid" -map 0 -c copy -f flv "$out/truth/play-ffmpeg-mid.flv"; local p1=$!
    bg ip netns exec "$NS_CLI" "${FF[@]}" -i "$url/leg" -map 0 -c copy -f flv "$out/truth/play-ffmpeg-leg.flv"; local p2=$!
    sleep 1
    bg ip netns exec "$NS_CLI" "${FF[@]}" -re -i "$TMP/h264.flv" -map 0 -c copy -f flv "$url/mid"; local q1=$!
    bg ip netns exec "$NS_CLI" "${FF[@]}" -re -i "$TMP/flv1.flv" -map 0 -c copy -f flv "$url/leg"; local q2=$!
    if [ "$delay" != 0 ]; then
        sleep "$delay"
        bg ip netns exec "$NS_SRV" tcpdump -Z root -i "$VETH_SRV" -s 0 -U -n -w "$TMP/cap.pcap" 'tcp port 1935' 2>"$TMP/td.log"
        cap=$!; wait_for_text "$TMP/td.log" "listening on" 10
    fi
    for p in $q1 $q2 $p1 $p2; do wait "$p" || true; done
    sleep 1; kill -INT "$cap"; wait "$cap" || true
    kill -QUIT "$nginx"; wait "$nginx" || true
    cp "$d/rec/mid.flv" "$out/truth/publish-mid.flv"; cp "$d/rec/leg.flv" "$out/truth/publish-leg.flv"
    teardown_net
    for f in "$out"/truth/*.flv; do
        [ -z "$(ffmpeg -nostdin -v error -i "$f" -f null - 2>&1)" ] || die "truth $f does not decode cleanly"
    done
}

log "netns-midstream: capture starts 4 s into the publish"
mkdir -p "$DEST"
rm -rf "$DEST/netns-midstream" "$DEST/netns-loss"
session "$DEST/netns-midstream" 4
mv "$TMP/cap.pcap" "$DEST/netns-midstream/capture.pcap"

log "netns-loss: whole capture, then 1% of frames deleted"
session "$DEST/netns-loss" 0
[ "$DEST" = "$SAMPLES" ] || cp "$TMP/cap.pcap" "$DEST/netns-loss/capture-full.pcap"
n=$(tcpdump -r "$TMP/cap.pcap" -n 2>/dev/null | wc -l)
# Frames 1..60 (handshakes, commands, sequence headers) are kept so the loss hits media.
drop=$(python3 -c "import random; r=random.Random(1935); n=$n; print(' '.join(str(x) for x in sorted(r.sample(range(61, n+1), max(1, n//100)))))")
editcap "$TMP/cap.pcap" "$DEST/netns-loss/capture.pcap" $drop
echo "$drop" | tr ' ' '\n' >"$DEST/netns-loss/dropped-frames.txt"
log "kept $((n - $(echo $drop | wc -w))) of $n frames"
log "done"
