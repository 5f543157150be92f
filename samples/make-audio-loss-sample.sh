#!/usr/bin/env bash
# Make samples/netns-audio-loss (run as root): audio-only streams, each held twice in the
# capture (a publish and its play through nginx), with frames missing.
#
#   sudo samples/make-audio-loss-sample.sh
#
# nginx-rtmp (chunk_size 4096, record all) in namespace rs-asrv, clients in rs-acli over a
# veth pair (MTU 1500, offloads off). An ffmpeg player waits for each stream from 1 s before
# ffmpeg publishes `aac` (AAC-LC stereo 44.1 kHz, 96 kbit/s) and `mp3` (MP3 mono 44.1 kHz,
# 64 kbit/s), 10 s each of pink noise over a tone (every frame its own body), with -re.
# tcpdump captures the whole session on the server's veth; then 3% of its frames after the
# first 60 (handshakes, commands, sequence headers) are deleted with editcap (fixed seed).
# Truth: nginx's recordings (truth/publish-NAME.flv) and the players' (truth/play-NAME.flv).
# Needs: nginx + libnginx-mod-rtmp, ffmpeg, tcpdump, editcap, iproute2, python3.
set -euo pipefail

SAMPLES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="$SAMPLES/netns-audio-loss"
TMP="$(mktemp -d /tmp/rtmpsniff-audio.XXXXXX)"
chmod 755 "$TMP"
NS_SRV=rs-asrv NS_CLI=rs-acli VETH_SRV=rs-aveth-s VETH_CLI=rs-aveth-c
SRV_IP=10.203.0.1 CLI_IP=10.203.0.2
PIDS=()
log() { printf '[make-audio-loss-sample] %s\n' "$*" >&2; }
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
noise="anoisesrc=color=pink:amplitude=0.2:seed=1935:sample_rate=44100"
"${FF[@]}" -f lavfi -i "$noise" -f lavfi -i "sine=frequency=440:sample_rate=44100" -t 10 \
    -filter_complex amix=inputs=2 -c:a aac -b:a 96k -ac 2 -ar 44100 -f flv "$TMP/aac.flv"
"${FF[@]}" -f lavfi -i "$noise" -f lavfi -i "sine=frequency=880:sample_rate=44100" -t 10 \
    -filter_complex amix=inputs=2 -c:a libmp3lame -b:a 64k -ac 1 -ar 44100 -f flv "$TMP/mp3.flv"

ip netns add "$NS_SRV"; ip netns add "$NS_CLI"
ip link add "$VETH_SRV" type veth peer name "$VETH_CLI"
ip link set "$VETH_SRV" netns "$NS_SRV"; ip link set "$VETH_CLI" netns "$NS_CLI"
ip -n "$NS_SRV" addr add "$SRV_IP/24" dev "$VETH_SRV"; ip -n "$NS_CLI" addr add "$CLI_IP/24" dev "$VETH_CLI"
for x in "$NS_SRV:$VETH_SRV" "$NS_CLI:$VETH_CLI"; do
    ip -n "${x%%:*}" link set lo up; ip -n "${x%%:*}" link set "${x#*:}" mtu 1500 up
    command -v ethtool >/dev/null && ip netns exec "${x%%:*}" ethtool -K "${x#*:}" tso off gso off gro off tx off rx off >/dev/null 2>&1 || true
done

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
bg ip netns exec "$NS_SRV" nginx -p "$d" -e "$d/logs/error.log" -c "$d/nginx.conf"
nginx=$!
sleep 0.5
bg ip netns exec "$NS_SRV" tcpdump -Z root -i "$VETH_SRV" -s 0 -U -n -w "$TMP/cap.pcap" 'tcp port 1935' 2>"$TMP/td.log"
cap=$!
wait_for_text "$TMP/td.log" "listening on" 10
rm -rf "$OUT"
mkdir -p "$OUT/truth"
url=rtmp://$SRV_IP:1935/live
players=() publishers=()
for s in aac mp3; do
    bg ip netns exec "$NS_CLI" "${FF[@]}" -i "$url/$s" -map 0 -c copy -f flv "$OUT/truth/play-$s.flv"
    players+=($!)
done
sleep 1
for s in aac mp3; do
    bg ip netns exec "$NS_CLI" "${FF[@]}" -re -i "$TMP/$s.flv" -map 0 -c copy -f flv "$url/$s"
    publishers+=($!)
done
for p in "${publishers[@]}" "${players[@]}"; do wait "$p" || true; done
sleep 1; kill -INT "$cap"; wait "$cap" || true
kill -QUIT "$nginx"; wait "$nginx" || true
for s in aac mp3; do cp "$d/rec/$s.flv" "$OUT/truth/publish-$s.flv"; done
for f in "$OUT"/truth/*.flv; do
    [ -z "$(ffmpeg -nostdin -v error -i "$f" -f null - 2>&1)" ] || die "truth $f does not decode cleanly"
done

n=$(tcpdump -r "$TMP/cap.pcap" -n 2>/dev/null | wc -l)
drop=$(python3 -c "import random; r=random.Random(1936); n=$n; print(' '.join(str(x) for x in sorted(r.sample(range(61, n+1), n*3//100))))")
editcap "$TMP/cap.pcap" "$OUT/capture.pcap" $drop
echo "$drop" | tr ' ' '\n' >"$OUT/dropped-frames.txt"
log "kept $((n - $(echo $drop | wc -w))) of $n frames"
log "done"
