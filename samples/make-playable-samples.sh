#!/usr/bin/env bash
# Real captures for issue 14 ("every recovered file plays"), with the peers' own recordings
# as truth:
# netns-inband-midstream/: nginx-rtmp (chunk_size 4096) in namespace rs-psrv, clients in
#   rs-pcli over a veth pair (MTU 1500, offloads off). ffmpeg publishes `inb` for 10 s:
#   H.264 (x264 with repeat-headers=1: SPS and PPS in band in every keyframe, keyint 50)
#   + AAC-LC mono 48 kHz; an ffmpeg player records it from the start. tcpdump on the server
#   side starts 4 s into the publish, after the sequence headers, so the decoder
#   configurations are not in the capture: the avcC must come from the keyframes, the
#   AudioSpecificConfig from the frames.
# Needs: nginx + libnginx-mod-rtmp, ffmpeg (libx264), tcpdump, iproute2; ethtool optional.
set -euo pipefail

SAMPLES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TMP="$(mktemp -d /tmp/rtmpsniff-playable.XXXXXX)"
chmod 755 "$TMP"
NS_SRV=rs-psrv NS_CLI=rs-pcli VETH_SRV=rs-pveth-s VETH_CLI=rs-pveth-c
SRV_IP=10.203.0.1 CLI_IP=10.203.0.2
PIDS=()
log() { printf '[make-playable-samples] %s\n' "$*" >&2; }
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

log "encoding a 10 s source, SPS/PPS repeated in every keyframe"
"${FF[@]}" -f lavfi -i "testsrc2=size=320x240:rate=25" -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 10 \
    -c:v libx264 -profile:v main -preset veryfast -pix_fmt yuv420p -g 50 -keyint_min 50 -sc_threshold 0 \
    -x264-params repeat-headers=1 -b:v 300k -maxrate 300k -bufsize 600k \
    -c:a aac -b:a 64k -ac 1 -ar 48000 -f flv "$TMP/inb.flv"

out="$SAMPLES/netns-inband-midstream"
rm -rf "$out"
mkdir -p "$out/truth"
d=$TMP/nginx
mkdir -p "$d/rec" "$d/logs"
cat >"$d/nginx.conf" <<CONF
load_module $RTMP_SO;
daemon off; master_process on; worker_processes 1; user root root;
pid $d/nginx.pid; error_log $d/logs/error.log info;
events { worker_connections 128; }
rtmp { server { listen $SRV_IP:1935; chunk_size 4096;
  application live { live on; play_restart on; record all; record_path $d/rec; record_unique off; } } }
CONF
ip netns add "$NS_SRV"; ip netns add "$NS_CLI"
ip link add "$VETH_SRV" type veth peer name "$VETH_CLI"
ip link set "$VETH_SRV" netns "$NS_SRV"; ip link set "$VETH_CLI" netns "$NS_CLI"
ip -n "$NS_SRV" addr add "$SRV_IP/24" dev "$VETH_SRV"; ip -n "$NS_CLI" addr add "$CLI_IP/24" dev "$VETH_CLI"
for x in "$NS_SRV:$VETH_SRV" "$NS_CLI:$VETH_CLI"; do
    ip -n "${x%%:*}" link set lo up; ip -n "${x%%:*}" link set "${x#*:}" mtu 1500 up
    command -v ethtool >/dev/null && ip netns exec "${x%%:*}" ethtool -K "${x#*:}" tso off gso off gro off tx off rx off >/dev/null 2>&1 || true
done
bg ip netns exec "$NS_SRV" nginx -p "$d" -e "$d/logs/error.log" -c "$d/nginx.conf"
nginx=$!
sleep 0.5
url=rtmp://$SRV_IP:1935/live
bg ip netns exec "$NS_CLI" "${FF[@]}" -i "$url/inb" -map 0 -c copy -f flv "$out/truth/play-ffmpeg-inb.flv"; p1=$!
sleep 1
bg ip netns exec "$NS_CLI" "${FF[@]}" -re -i "$TMP/inb.flv" -map 0 -c copy -f flv "$url/inb"; q1=$!
log "capture starts 4 s into the publish"
sleep 4
bg ip netns exec "$NS_SRV" tcpdump -Z root -i "$VETH_SRV" -s 0 -U -n -w "$TMP/cap.pcap" 'tcp port 1935' 2>"$TMP/td.log"
cap=$!; wait_for_text "$TMP/td.log" "listening on" 10
for p in $q1 $p1; do wait "$p" || true; done
sleep 1; kill -INT "$cap"; wait "$cap" || true
kill -QUIT "$nginx"; wait "$nginx" || true
cp "$d/rec/inb.flv" "$out/truth/publish-inb.flv"
mv "$TMP/cap.pcap" "$out/capture.pcap"
for f in "$out"/truth/*.flv; do
    [ -z "$(ffmpeg -nostdin -v error -i "$f" -f null - 2>&1)" ] || die "truth $f does not decode cleanly"
done
log "done"
