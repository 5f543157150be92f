#!/usr/bin/env bash
# Make the RTMPS (RTMP inside TLS) real-peer samples (run as root).
#
#   sudo samples/make-rtmps-samples.sh
#
# nginx-rtmp listens on 127.0.0.1:1935 (record all: the publish truth); nginx's stream module
# terminates TLS on 127.0.0.1:443 and 127.0.0.1:8443 and proxies to it, with a self-signed
# certificate made here, and ssl_protocols / ssl_ciphers / Ciphersuites forcing each case.
# ffmpeg (GnuTLS, honours SSLKEYLOGFILE) publishes to rtmps://localhost:443/live/NAME and a
# second ffmpeg plays it from rtmps://localhost:8443/live/NAME, each with its own key log.
# tcpdump captures only the TLS ports on lo (the clear 1935 leg is not in the captures).
#
# Needs: nginx + libnginx-mod-rtmp + libnginx-mod-stream, ffmpeg/ffprobe (GnuTLS), openssl,
# tcpdump, tshark, editcap (wireshark-common), jq, ss.
# Everything runs inside a network namespace made here (its own lo, so nothing on the host's
# 127.0.0.1 ports is touched or in the way); only 127.0.0.1 of that namespace is used
# ("localhost" must resolve to it: it is the SNI the clients send).
set -euo pipefail

NS=rs-tls-lab
if [ -z "${RTMPS_LAB_IN_NS:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "must run as root" >&2; exit 1; }
    ip netns list | grep -qw "$NS" && { echo "netns $NS exists (another run?)" >&2; exit 1; }
    ip netns add "$NS"
    trap 'ip netns pids "$NS" 2>/dev/null | xargs -r kill -KILL 2>/dev/null; ip netns del "$NS"' EXIT
    ip netns exec "$NS" ip link set lo up
    rc=0
    ip netns exec "$NS" env RTMPS_LAB_IN_NS=1 bash "${BASH_SOURCE[0]}" "$@" || rc=$?
    exit $rc
fi

SAMPLES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PIDS=()            # every background process we start

log() { printf '[make-rtmps-samples] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
for t in nginx ffmpeg ffprobe openssl tcpdump tshark editcap jq ss getent; do
    command -v "$t" >/dev/null || die "missing tool: $t"
done
getent hosts localhost | grep -q '^127\.0\.0\.1 ' || die "localhost does not resolve to 127.0.0.1"

find_module() { # name
    local f
    for f in /usr/lib/nginx/modules/$1 /usr/share/nginx/modules/$1; do
        [ -f "$f" ] && { echo "$f"; return; }
    done
    find /usr/lib/nginx /usr/share/nginx -name "$1" 2>/dev/null | head -1
}
RTMP_SO="$(find_module ngx_rtmp_module.so)"
STREAM_SO="$(find_module ngx_stream_module.so)"
[ -n "$RTMP_SO" ] || die "ngx_rtmp_module.so not found (apt-get install libnginx-mod-rtmp)"
[ -n "$STREAM_SO" ] || die "ngx_stream_module.so not found (apt-get install libnginx-mod-stream)"

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
    if [ -n "${KEEP_TMP:-}" ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    exit $rc
}
TMP="$(mktemp -d /tmp/rtmpsniff-rtmps.XXXXXX)"   # made once the checks passed
chmod 755 "$TMP"
trap cleanup EXIT
trap 'exit 130' INT TERM

bg() { "$@" & PIDS+=($!); }   # start a tracked background process; pid in $!

wait_for_text() { # file pattern timeout_s
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    die "timeout waiting for '$2' in $1: $(cat "$1" 2>/dev/null)"
}

wait_listen() { # addr:port
    local i
    for ((i = 0; i < 100; i++)); do
        ss -Hltn | grep -q " $1 " && return 0
        sleep 0.1
    done
    die "nothing listening on $1"
}

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

for p in 1935 443 8443; do
    ss -Hltn | grep -q ":$p " && die "port $p already in use on this host"
done

# ---------------------------------------------------------------------------
log "self-signed certificate (CN rtmpsniff.test, SAN localhost)"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=rtmpsniff.test" \
    -addext "subjectAltName=DNS:localhost" \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null

SRC=$TMP/src
STAGE=$TMP/out
mkdir -p "$SRC" "$STAGE"
FF=(ffmpeg -nostdin -hide_banner -loglevel error -y)
log "encoding source media"
# H.264 baseline 320x240@25, keyint 25, low bitrate + AAC-LC mono 44.1 kHz, 2.5 s
"${FF[@]}" -f lavfi -i "testsrc=size=320x240:rate=25" \
    -f lavfi -i "sine=frequency=440:sample_rate=44100" -t 2.5 \
    -c:v libx264 -profile:v baseline -preset veryfast -pix_fmt yuv420p \
    -g 25 -keyint_min 25 -sc_threshold 0 -b:v 100k -maxrate 100k -bufsize 200k \
    -c:a aac -b:a 32k -ac 1 -ar 44100 -f flv "$SRC/h264-aac.flv"

count_packets() {
    local v a
    v=$(ffprobe -v error -select_streams v -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$1" | head -1)
    a=$(ffprobe -v error -select_streams a -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$1" | head -1)
    echo "${v:-0} ${a:-0}"
}

# nginx.conf: rtmp on 1935 recording everything; TLS on 443 and 8443 proxied to it.
write_nginx_conf() { # dir protocols ciphers12 ciphersuites13_443 ciphersuites13_8443 ciphers12_8443
    local d=$1
    mkdir -p "$d/rec" "$d/logs"
    cat >"$d/nginx.conf" <<EOF
load_module $RTMP_SO;
load_module $STREAM_SO;
daemon off;
master_process on;
worker_processes 1;
user root root;
pid $d/nginx.pid;
error_log $d/logs/error.log info;
events { worker_connections 128; }
rtmp {
  access_log $d/logs/rtmp-access.log;
  server {
    listen 127.0.0.1:1935;
    chunk_size 4096;
    application live {
      live on;
      play_restart on;
      record all;
      record_path $d/rec;
      record_unique off;
    }
  }
}
stream {
  ssl_certificate $TMP/cert.pem;
  ssl_certificate_key $TMP/key.pem;
  ssl_protocols $2;
  ssl_prefer_server_ciphers on;
  server {
    listen 127.0.0.1:443 ssl;
    ssl_ciphers $3;
    ssl_conf_command Ciphersuites $4;
    proxy_pass 127.0.0.1:1935;
  }
  server {
    listen 127.0.0.1:8443 ssl;
    ssl_ciphers $6;
    ssl_conf_command Ciphersuites $5;
    proxy_pass 127.0.0.1:1935;
  }
}
EOF
}

# tshark's view of the TLS connections, the "second opinion" (tshark 4.0 has no decode-as from
# TLS to RTMP on other ports than 1935, so "-Y rtmpt" shows nothing here; "follow,tls" shows the
# decrypted bytes instead). One JSON object per connection.
tshark_tls_view() { # capture [keylog]
    local cap=$1 kl=() st sport dport sni ver sv suite follow node0 cdata sdata c s first pub play
    [ -n "${2:-}" ] && kl=(-o "tls.keylog_file:$2")
    while IFS=';' read -r st sport dport sni; do
        [ -n "$st" ] || continue
        IFS=';' read -r ver sv suite < <(tshark -r "$cap" -Y "tcp.stream == $st && tls.handshake.type == 2" \
            -T fields -E 'separator=;' -e tls.handshake.version -e tls.handshake.extensions.supported_version \
            -e tls.handshake.ciphersuite 2>/dev/null | head -1)
        # (http off: its heuristic takes RTMP on port 443 for HTTP and breaks the reassembly)
        follow=$(tshark -r "$cap" "${kl[@]}" --disable-protocol http --disable-protocol http2 \
            -q -z "follow,tls,raw,$st" 2>/dev/null || true)
        # "Node 0" is the side whose decrypted bytes come first (not indented); find the client's
        node0=$(sed -n 's/^Node 0: .*:\([0-9]*\)$/\1/p' <<<"$follow")
        follow=$(grep -v '^=\|^Follow\|^Filter\|^Node\|^$' <<<"$follow" || true)
        if [ "$node0" = "$sport" ]; then
            cdata=$(grep -v $'^\t' <<<"$follow" | tr -d '\n' || true)
            sdata=$(grep $'^\t' <<<"$follow" | tr -d '\n\t' || true)
        else
            cdata=$(grep $'^\t' <<<"$follow" | tr -d '\n\t' || true)
            sdata=$(grep -v $'^\t' <<<"$follow" | tr -d '\n' || true)
        fi
        c=${#cdata}; s=${#sdata}
        first=${cdata:0:2}
        pub=false; play=false
        grep -q 7075626c697368 <<<"$cdata" && pub=true   # "publish"
        grep -q 0004706c6179 <<<"$cdata" && play=true    # AMF0 string "play"
        jq -n --argjson st "$st" --argjson cp "$sport" --argjson sp "$dport" --arg sni "$sni" \
            --arg v "$ver" --arg sv "$sv" --arg su "$suite" --argjson c $((c / 2)) --argjson s $((s / 2)) \
            --arg first "$first" --argjson pub "$pub" --argjson play "$play" \
            '{tcp_stream: $st, client_port: $cp, server_port: $sp, sni: $sni,
              server_hello_version: $v, supported_version: $sv, cipher_suite: $su,
              decrypted_bytes: {client_to_server: $c, server_to_client: $s},
              first_decrypted_byte: $first, publish_seen: $pub, play_seen: $play}'
    done < <(tshark -r "$cap" -Y 'tls.handshake.type == 1' -T fields -E 'separator=;' -e tcp.stream -e tcp.srcport \
        -e tcp.dstport -e tls.handshake.extensions_server_name 2>/dev/null)
}

# one case: publish NAME to :443, play it from :8443; capture both
run_case() { # dir name protocols ciphers12_443 cs13_443 cs13_8443 ciphers12_8443 description
    local out=$STAGE/$1 name=$2 d=$TMP/nginx-$1
    mkdir -p "$out/truth"
    write_nginx_conf "$d" "$3" "$4" "$5" "$6" "$7"
    nginx -t -q -p "$d" -e "$d/logs/error.log" -c "$d/nginx.conf"
    bg nginx -p "$d" -e "$d/logs/error.log" -c "$d/nginx.conf"
    local ngx=$!
    wait_listen 127.0.0.1:1935
    wait_listen 127.0.0.1:443
    wait_listen 127.0.0.1:8443

    bg tcpdump -Z root -i lo -s 0 -U -n -w "$TMP/$1.pcap" 'tcp port 443 or tcp port 8443' \
        2>"$TMP/$1.tcpdump.log"
    local cap=$!
    wait_for_text "$TMP/$1.tcpdump.log" "listening on" 10

    log "$1: player connects to :8443, then the publisher to :443"
    SSLKEYLOGFILE=$TMP/$1.player.keys bg "${FF[@]}" -rw_timeout 15000000 \
        -i "rtmps://localhost:8443/live/$name" -map 0 -c copy -f flv "$out/truth/play-ffmpeg-$name.flv"
    local player=$!
    sleep 1
    SSLKEYLOGFILE=$TMP/$1.publisher.keys "${FF[@]}" -re -i "$SRC/h264-aac.flv" \
        -map 0 -c copy -f flv "rtmps://localhost:443/live/$name"
    wait_or_int "$player" 15 player
    sleep 1
    kill -INT "$cap"; wait "$cap" 2>/dev/null || true
    kill -QUIT "$ngx" 2>/dev/null || true
    wait_or_int "$ngx" 10 nginx

    cp "$d/rec/$name.flv" "$out/truth/publish-$name.flv"
    cp "$TMP/$1.pcap" "$out/capture.pcap"
    cat "$TMP/$1.publisher.keys" "$TMP/$1.player.keys" >"$out/keylog.txt"

    local view
    view=$(tshark_tls_view "$out/capture.pcap" "$out/keylog.txt" | jq -s -c .)
    jq -e 'length == 2 and all(.[]; .first_decrypted_byte == "03") and any(.[]; .publish_seen)
           and any(.[]; .play_seen)' <<<"$view" >/dev/null ||
        die "$1: tshark does not decrypt both connections to RTMP: $view"
    log "$1: tshark: $view"
    manifest "$out" "$8" "capture.pcap" "keylog.txt" "$name" "$view"
}

manifest() { # out description capture keylog name tshark_view
    local out=$1 name=$5 pv pa yv ya
    read -r pv pa < <(count_packets "$out/truth/publish-$name.flv")
    read -r yv ya < <(count_packets "$out/truth/play-ffmpeg-$name.flv")
    jq -n --arg d "$2" --arg cap "$3" --arg kl "$4" --arg name "$name" --argjson conns "$6" \
        --argjson pv "$pv" --argjson pa "$pa" --argjson yv "$yv" --argjson ya "$ya" \
        '{description: $d, encryption: "tls", capture: $cap, keylog: $kl, link: "lo (DLT_EN10MB)",
          server: "127.0.0.1:443 (publish), 127.0.0.1:8443 (play); TLS proxied to nginx-rtmp 127.0.0.1:1935",
          server_chunk_size: 4096,
          tshark: $conns,
          streams: [
            {name: $name, app: "live", direction: "publish", client_tool: "ffmpeg",
             truth: ("truth/publish-" + $name + ".flv"), server_port: 443,
             video_codec: "h264", audio_codec: "aac", truth_packets: {video: $pv, audio: $pa}},
            {name: $name, app: "live", direction: "play", client_tool: "ffmpeg",
             truth: ("truth/play-ffmpeg-" + $name + ".flv"), server_port: 8443,
             video_codec: "h264", audio_codec: "aac", truth_packets: {video: $yv, audio: $ya}}]}' \
        >"$out/manifest.json"
}

NOCS=TLS_AES_128_GCM_SHA256   # Ciphersuites value for the TLS 1.2-only cases (unused there)

run_case rtmps-tls12-gcm gcm TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256 "$NOCS" "$NOCS" \
    ECDHE-RSA-AES256-GCM-SHA384 \
    "TLS 1.2 only: publish over ECDHE-RSA-AES128-GCM-SHA256 (:443), play over ECDHE-RSA-AES256-GCM-SHA384 (:8443)"
run_case rtmps-tls12-chacha chacha TLSv1.2 ECDHE-RSA-CHACHA20-POLY1305 "$NOCS" "$NOCS" \
    ECDHE-RSA-CHACHA20-POLY1305 \
    "TLS 1.2 only: publish and play over ECDHE-RSA-CHACHA20-POLY1305"
run_case rtmps-tls13 tls13 TLSv1.3 DEFAULT TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 DEFAULT \
    "TLS 1.3: publish over TLS_AES_128_GCM_SHA256 (:443), play over TLS_AES_256_GCM_SHA384 (:8443)"
run_case rtmps-tls13-chacha chacha13 TLSv1.3 DEFAULT TLS_CHACHA20_POLY1305_SHA256 \
    TLS_CHACHA20_POLY1305_SHA256 DEFAULT \
    "TLS 1.3: publish and play over TLS_CHACHA20_POLY1305_SHA256"

# pcapng with the key log inside (Decryption Secrets Block), from the TLS 1.3 case
log "rtmps-tls13-dsb: editcap --inject-secrets"
D=$STAGE/rtmps-tls13-dsb
mkdir -p "$D"
editcap -F pcapng --inject-secrets "tls,$STAGE/rtmps-tls13/keylog.txt" \
    "$STAGE/rtmps-tls13/capture.pcap" "$D/capture.pcapng"
cp -r "$STAGE/rtmps-tls13/truth" "$D/"
view=$(tshark_tls_view "$D/capture.pcapng" | jq -s -c .)
jq -e 'length == 2 and all(.[]; .first_decrypted_byte == "03")' <<<"$view" >/dev/null ||
    die "rtmps-tls13-dsb: tshark does not decrypt with the injected secrets: $view"
jq --argjson v "$view" '.description = "the rtmps-tls13 capture as pcapng with its key log injected as a Decryption Secrets Block (editcap --inject-secrets); no keylog.txt"
    | .capture = "capture.pcapng" | del(.keylog) | .tshark = $v' \
    "$STAGE/rtmps-tls13/manifest.json" >"$D/manifest.json"

# the TLS 1.2 GCM capture with the player's keys left out of the key log
log "rtmps-tls12-missing-key: player's key log line removed"
D=$STAGE/rtmps-tls12-missing-key
mkdir -p "$D"
cp "$STAGE/rtmps-tls12-gcm/capture.pcap" "$D/"
cp -r "$STAGE/rtmps-tls12-gcm/truth" "$D/"
cp "$TMP/rtmps-tls12-gcm.publisher.keys" "$D/keylog.txt"
view=$(tshark_tls_view "$D/capture.pcap" "$D/keylog.txt" | jq -s -c .)
jq --argjson v "$view" '.description = "the rtmps-tls12-gcm capture with only the publisher'"'"'s key log: the player'"'"'s connection (:8443) has no keys and must stay encrypted"
    | .tshark = $v | .streams[1].keys_missing = true' \
    "$STAGE/rtmps-tls12-gcm/manifest.json" >"$D/manifest.json"

for c in rtmps-tls12-gcm rtmps-tls12-chacha rtmps-tls13 rtmps-tls13-chacha rtmps-tls13-dsb rtmps-tls12-missing-key; do
    rm -rf "${SAMPLES:?}/$c"
    mv "$STAGE/$c" "$SAMPLES/$c"
    log "$c: $(du -sh "$SAMPLES/$c" | cut -f1)"
done
log "done"
