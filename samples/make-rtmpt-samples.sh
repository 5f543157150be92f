#!/usr/bin/env bash
# Make the RTMPT (RTMP tunnelled over HTTP) real-peer samples (run as root).
#
#   sudo samples/make-rtmpt-samples.sh [SAMPLE...]
#
# With no argument every sample is made; else only those named (rtmpt-publish-play,
# rtmpt-per-request, rtmpt-chunked, rtmpts-publish-play; rtmpt-midstream and rtmpt-loss are
# cut from rtmpt-publish-play's capture and come with it).
#
# nginx-rtmp listens on 127.0.0.1:1935 and records what it gets (the truth); the lab's
# RTMPT gateway (tests/lab/rtmpt_gateway.py) listens on 127.0.0.1:8080 and opens one RTMP
# connection to nginx per RTMPT session. Only the HTTP side (tcp port 8080) is captured.
# Clients: ffmpeg and rtmpdump with rtmpt:// URLs, and for the request-per-connection case
# ffmpeg through tests/lab/rtmpt_bridge.py (plain RTMP in, one TCP connection per request
# out), since neither ffmpeg nor librtmp makes such sessions by themselves.
# RTMPT over TLS (rtmpts-publish-play): nginx's stream module terminates TLS on
# 127.0.0.1:8443 (a self-signed certificate made here) and proxies to the gateway; the
# clients use rtmpts:// URLs with SSLKEYLOGFILE set (GnuTLS writes the key logs), and only
# tcp port 8443 is captured.
#
# Needs: nginx + libnginx-mod-rtmp (+ libnginx-mod-stream and openssl for rtmpts), ffmpeg
# (libx264, GnuTLS), rtmpdump, tcpdump, tshark, editcap, python3, jq, ss. Only 127.0.0.1 is
# used.
set -euo pipefail

SAMPLES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LAB="$SAMPLES/../tests/lab"
TMP="$(mktemp -d /tmp/rtmpsniff-rtmpt.XXXXXX)"
chmod 755 "$TMP"
PIDS=()
log() { printf '[make-rtmpt-samples] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

ALL=(rtmpt-publish-play rtmpt-per-request rtmpt-chunked rtmpts-publish-play)
WANT=("$@")
[ ${#WANT[@]} -gt 0 ] || WANT=("${ALL[@]}")
for w in "${WANT[@]}"; do
    printf '%s\n' "${ALL[@]}" | grep -qx -- "$w" || die "unknown sample '$w' (one of: ${ALL[*]})"
done
want() { printf '%s\n' "${WANT[@]}" | grep -qx -- "$1"; }

[ "$(id -u)" = 0 ] || die "must run as root"
for t in nginx ffmpeg ffprobe rtmpdump tcpdump tshark editcap python3 jq ss openssl; do
    command -v "$t" >/dev/null || die "missing tool: $t"
done
RTMP_SO=$(find /usr/lib/nginx /usr/share/nginx -name ngx_rtmp_module.so 2>/dev/null | head -1)
[ -n "$RTMP_SO" ] || die "ngx_rtmp_module.so not found (apt-get install libnginx-mod-rtmp)"
STREAM_SO=
if want rtmpts-publish-play; then
    STREAM_SO=$(find /usr/lib/nginx /usr/share/nginx -name ngx_stream_module.so 2>/dev/null | head -1)
    [ -n "$STREAM_SO" ] || die "ngx_stream_module.so not found (apt-get install libnginx-mod-stream)"
fi
PORTS=(1935 8080 1936)
[ -z "$STREAM_SO" ] || PORTS+=(8443)
for p in "${PORTS[@]}"; do
    ss -Hltn | grep -q "127.0.0.1:$p \|:$p " && die "port $p already in use on this host"
done

cleanup() {
    local rc=$?
    set +e
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && kill -TERM "$p" 2>/dev/null; done
    sleep 0.3
    for p in "${PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
bg() { "$@" & PIDS+=($!); }
wait_for_text() { # file pattern timeout_s
    local i
    for ((i = 0; i < $3 * 10; i++)); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    die "timeout waiting for '$2' in $1: $(cat "$1" 2>/dev/null)"
}
wait_listen() { local i; for ((i = 0; i < 100; i++)); do ss -Hltn | grep -q " $1 " && return 0; sleep 0.1; done; die "nothing listening on $1"; }
wait_or_kill() { # pid timeout_s name
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    log "$3 still running after $2 s, sending SIGINT"
    kill -INT "$1" 2>/dev/null || true
    sleep 2
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
FF=(ffmpeg -nostdin -hide_banner -loglevel error -y)

log "encoding source media"
# H.264 baseline 320x240@25, keyint 25, 100 kbit/s + AAC-LC mono 32 kbit/s, 2.5 s
"${FF[@]}" -f lavfi -i "testsrc2=size=320x240:rate=25" -f lavfi -i "sine=frequency=440:sample_rate=44100" \
    -t 2.5 -c:v libx264 -profile:v baseline -preset veryfast -pix_fmt yuv420p -g 25 -keyint_min 25 \
    -sc_threshold 0 -b:v 100k -maxrate 100k -bufsize 200k -c:a aac -b:a 32k -ac 1 -ar 44100 \
    -f flv "$TMP/src.flv"

NG=$TMP/nginx
mkdir -p "$NG/rec" "$NG/logs"
cat >"$NG/nginx.conf" <<CONF
load_module $RTMP_SO;
daemon off; master_process on; worker_processes 1; user root root;
pid $NG/nginx.pid; error_log $NG/logs/error.log info;
events { worker_connections 128; }
rtmp { server { listen 127.0.0.1:1935; chunk_size 4096;
  application live { live on; play_restart on; record all; record_path $NG/rec; record_unique off; } } }
CONF
if [ -n "$STREAM_SO" ]; then
    # rtmpts: TLS on 8443 in front of the gateway (8080), with a self-signed certificate;
    # TLS 1.3 allowed (nginx 1.22's default ssl_protocols stop at TLSv1.2), so GnuTLS takes it
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=rtmpsniff.test" \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$NG/key.pem" -out "$NG/cert.pem" 2>/dev/null
    sed -i "1a load_module $STREAM_SO;" "$NG/nginx.conf"
    cat >>"$NG/nginx.conf" <<CONF
stream { server { listen 127.0.0.1:8443 ssl; ssl_protocols TLSv1.2 TLSv1.3;
  ssl_certificate $NG/cert.pem; ssl_certificate_key $NG/key.pem; proxy_pass 127.0.0.1:8080; } }
CONF
fi
nginx -t -q -p "$NG" -e "$NG/logs/error.log" -c "$NG/nginx.conf"
bg nginx -p "$NG" -e "$NG/logs/error.log" -c "$NG/nginx.conf"
NGINX=$!
wait_listen 127.0.0.1:1935

count_packets() { # flv -> "video audio"
    local v a
    v=$(ffprobe -v error -select_streams v -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$1" | head -1)
    a=$(ffprobe -v error -select_streams a -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$1" | head -1)
    echo "${v:-0} ${a:-0}"
}

# the n-th session id the gateway opened (1-based)
session_id() { grep -o 'open session [0-9]*' "$1" | sed -n "$2p" | awk '{print $3}'; }

stream_json() { # name direction tool truth-relative session-id out-dir
    local v a
    read -r v a < <(count_packets "$6/$4")
    jq -n --arg name "$1" --arg dir "$2" --arg tool "$3" --arg truth "$4" --arg sid "$5" \
        --argjson v "$v" --argjson a "$a" \
        '{name: $name, app: "live", direction: $dir, client_tool: $tool, truth: $truth,
          rtmpt_session: $sid, video_codec: "h264", audio_codec: "aac",
          truth_packets: {video: $v, audio: $a}}'
}

# what tshark sees in a capture, as JSON (with a key log: in the TLS connections' plaintext)
tshark_json() { # capture [keylog]
    local reqs kl=()
    [ -n "${2:-}" ] && kl=(-o "tls.keylog_file:$2")
    reqs=$(tshark -r "$1" "${kl[@]}" -Y http.request -T fields -e http.request.uri 2>/dev/null || true)
    jq -n --arg uris "$reqs" \
        --argjson frames "$(tshark -r "$1" -T fields -e frame.number 2>/dev/null | wc -l)" \
        --argjson conns "$(tshark -r "$1" -T fields -e tcp.stream 2>/dev/null | sort -u | wc -l)" \
        --argjson resp "$(tshark -r "$1" "${kl[@]}" -Y http.response -T fields -e frame.number 2>/dev/null | wc -l)" \
        '($uris | split("\n") | map(select(. != ""))) as $u
         | {frames: $frames, tcp_connections: $conns, http_requests: ($u | length),
            http_responses: $resp,
            requests_by_kind: ($u | map(if startswith("/fcs/ident2") then "ident2"
                                        else (split("/")[1]) end)
                                  | group_by(.) | map({key: .[0], value: length}) | from_entries)}'
}

start_capture() { # pcap [filter]
    bg tcpdump -Z root -i lo -s 0 -U -n -w "$1" "${2:-tcp port 8080}" 2>"$1.log"
    CAP=$!
    wait_for_text "$1.log" "listening on" 10
    sleep 0.3
}
stop_capture() { sleep 1; kill -INT "$CAP"; wait "$CAP" 2>/dev/null || true; }

start_gateway() { # log [options]
    local l=$1
    shift
    bg python3 "$LAB/rtmpt_gateway.py" --listen 127.0.0.1:8080 --rtmp 127.0.0.1:1935 --log "$l" "$@"
    GW=$!
    wait_listen 127.0.0.1:8080
}
stop_gateway() { kill -TERM "$GW" 2>/dev/null || true; wait "$GW" 2>/dev/null || true; }

check_truth() { # dir
    local f err
    for f in "$1"/truth/*.flv; do
        err=$(ffmpeg -nostdin -v error -i "$f" -map 0 -f null - 2>&1 || echo "ffmpeg failed")
        [ -z "$err" ] || die "decode errors in $f: $err"
    done
}

STAGE=$TMP/out
mkdir -p "$STAGE"

# ---------------------------------------------------------------------------
if want rtmpt-publish-play; then
    # rtmpt-publish-play: ffmpeg plays, rtmpdump plays, ffmpeg publishes; keep-alive gateway
    log "sample rtmpt-publish-play"
    OUT=$STAGE/rtmpt-publish-play
    mkdir -p "$OUT/truth"
    start_gateway "$TMP/gw1.log"
    start_capture "$TMP/c1.pcap"
    URL=rtmpt://127.0.0.1:8080/live/tun
    bg "${FF[@]}" -i "$URL" -map 0 -c copy -f flv "$OUT/truth/play-ffmpeg-tun.flv"
    P1=$!
    sleep 0.5
    bg rtmpdump -q -r "$URL" -o "$OUT/truth/play-rtmpdump-tun.flv"
    P2=$!
    sleep 1
    "${FF[@]}" -re -i "$TMP/src.flv" -map 0 -c copy -f flv "$URL"
    wait_or_kill "$P1" 15 "ffmpeg player"
    wait_or_kill "$P2" 15 "rtmpdump player"
    stop_capture
    stop_gateway
    cp "$TMP/c1.pcap" "$OUT/capture.pcap"
    cp "$NG/rec/tun.flv" "$OUT/truth/publish-tun.flv"
    check_truth "$OUT"
    S_FF=$(session_id "$TMP/gw1.log" 1)
    S_RD=$(session_id "$TMP/gw1.log" 2)
    S_PUB=$(session_id "$TMP/gw1.log" 3)
    jq -n --arg d "RTMPT over loopback: ffmpeg plays (rtmpt://), rtmpdump plays (rtmpt://), then ffmpeg publishes H.264 baseline + AAC; tests/lab/rtmpt_gateway.py (keep-alive, Content-Length bodies) in front of nginx-rtmp; only the HTTP side captured" \
        --argjson s1 "$(stream_json tun publish ffmpeg truth/publish-tun.flv "$S_PUB" "$OUT")" \
        --argjson s2 "$(stream_json tun play ffmpeg truth/play-ffmpeg-tun.flv "$S_FF" "$OUT")" \
        --argjson s3 "$(stream_json tun play rtmpdump truth/play-rtmpdump-tun.flv "$S_RD" "$OUT")" \
        --argjson ts "$(tshark_json "$OUT/capture.pcap")" \
        '{description: $d, capture: "capture.pcap", link: "lo (DLT_EN10MB)", http_server: "127.0.0.1:8080",
          rtmp_server: "127.0.0.1:1935 (not captured)", server_chunk_size: 4096, gateway: "keep-alive",
          streams: [$s1, $s2, $s3], tshark: $ts}' >"$OUT/manifest.json"

    # rtmpt-midstream: the same capture, from 2.5 s after its first packet (after the opens
    # and handshakes; the publish is under way)
    log "sample rtmpt-midstream"
    M=$STAGE/rtmpt-midstream
    mkdir -p "$M/truth"
    T0=$(tshark -r "$OUT/capture.pcap" -c 1 -T fields -e frame.time_epoch 2>/dev/null)
    CUT=$(python3 -c "print('%.6f' % ($T0 + 2.5))")
    editcap -F pcap -A "$(date -u -d "@$CUT" '+%Y-%m-%d %H:%M:%S.%N')" "$OUT/capture.pcap" "$M/capture.pcap"
    cp "$OUT"/truth/*.flv "$M/truth/"
    jq --arg d "rtmpt-publish-play's capture from 2.5 s after its first packet (editcap -A): no /open, no RTMP handshake or connect/play/publish; sessions seen in their middle" \
        --arg cut "$CUT" --argjson ts "$(tshark_json "$M/capture.pcap")" \
        '.description = $d | .cut_from_epoch = ($cut | tonumber) | .derived_from = "rtmpt-publish-play" | .tshark = $ts' \
        "$OUT/manifest.json" >"$M/manifest.json"

    # rtmpt-loss: the same capture with 1% of its frames deleted (frames 1..40 kept)
    log "sample rtmpt-loss"
    L=$STAGE/rtmpt-loss
    mkdir -p "$L/truth"
    n=$(tshark -r "$OUT/capture.pcap" -T fields -e frame.number 2>/dev/null | wc -l)
    drop=$(python3 -c "import random; r=random.Random(8080); n=$n; print(' '.join(str(x) for x in sorted(r.sample(range(41, n+1), max(1, n//100)))))")
    # shellcheck disable=SC2086
    editcap -F pcap "$OUT/capture.pcap" "$L/capture.pcap" $drop
    echo "$drop" | tr ' ' '\n' >"$L/dropped-frames.txt"
    cp "$OUT"/truth/*.flv "$L/truth/"
    jq --arg d "rtmpt-publish-play's capture with 1% of its frames deleted (editcap; list in dropped-frames.txt, frame numbers of the original)" \
        --argjson ts "$(tshark_json "$L/capture.pcap")" --argjson nd "$(echo "$drop" | wc -w)" \
        '.description = $d | .derived_from = "rtmpt-publish-play" | .dropped_frames = $nd | .tshark = $ts' \
        "$OUT/manifest.json" >"$L/manifest.json"
fi

# ---------------------------------------------------------------------------
if want rtmpt-per-request; then
    # rtmpt-per-request: every request on a TCP connection of its own (bridge + gateway
    # --close-each); ffmpeg plays and publishes through the bridge
    log "sample rtmpt-per-request"
    OUT=$STAGE/rtmpt-per-request
    mkdir -p "$OUT/truth"
    start_gateway "$TMP/gw2.log" --close-each
    bg python3 "$LAB/rtmpt_bridge.py" --listen 127.0.0.1:1936 --gateway 127.0.0.1:8080
    BR=$!
    wait_listen 127.0.0.1:1936
    start_capture "$TMP/c2.pcap"
    bg "${FF[@]}" -i rtmp://127.0.0.1:1936/live/per -map 0 -c copy -f flv "$OUT/truth/play-ffmpeg-per.flv"
    P1=$!
    sleep 1
    "${FF[@]}" -re -i "$TMP/src.flv" -map 0 -c copy -f flv rtmp://127.0.0.1:1936/live/per
    wait_or_kill "$P1" 15 "ffmpeg player"
    stop_capture
    kill -TERM "$BR"; wait "$BR" 2>/dev/null || true
    stop_gateway
    cp "$TMP/c2.pcap" "$OUT/capture.pcap"
    cp "$NG/rec/per.flv" "$OUT/truth/publish-per.flv"
    check_truth "$OUT"
    jq -n --arg d "RTMPT with a new TCP connection for every request: ffmpeg plays, then publishes, through tests/lab/rtmpt_bridge.py (plain RTMP in, each POST on its own connection, Connection: close) to the gateway (--close-each); nginx-rtmp behind; only the HTTP side captured" \
        --argjson s1 "$(stream_json per publish ffmpeg+bridge truth/publish-per.flv "$(session_id "$TMP/gw2.log" 2)" "$OUT")" \
        --argjson s2 "$(stream_json per play ffmpeg+bridge truth/play-ffmpeg-per.flv "$(session_id "$TMP/gw2.log" 1)" "$OUT")" \
        --argjson ts "$(tshark_json "$OUT/capture.pcap")" \
        '{description: $d, capture: "capture.pcap", link: "lo (DLT_EN10MB)", http_server: "127.0.0.1:8080",
          rtmp_server: "127.0.0.1:1935 (not captured)", server_chunk_size: 4096, gateway: "close-each",
          streams: [$s1, $s2], tshark: $ts}' >"$OUT/manifest.json"
fi

# ---------------------------------------------------------------------------
if want rtmpt-chunked; then
    # rtmpt-chunked: response bodies with Transfer-Encoding: chunked (ffmpeg reads them,
    # librtmp does not); ffmpeg plays and publishes
    log "sample rtmpt-chunked"
    OUT=$STAGE/rtmpt-chunked
    mkdir -p "$OUT/truth"
    start_gateway "$TMP/gw3.log" --chunked
    start_capture "$TMP/c3.pcap"
    URL=rtmpt://127.0.0.1:8080/live/chk
    bg "${FF[@]}" -i "$URL" -map 0 -c copy -f flv "$OUT/truth/play-ffmpeg-chk.flv"
    P1=$!
    sleep 1
    "${FF[@]}" -re -i "$TMP/src.flv" -map 0 -c copy -f flv "$URL"
    wait_or_kill "$P1" 15 "ffmpeg player"
    stop_capture
    stop_gateway
    cp "$TMP/c3.pcap" "$OUT/capture.pcap"
    cp "$NG/rec/chk.flv" "$OUT/truth/publish-chk.flv"
    check_truth "$OUT"
    jq -n --arg d "RTMPT with chunked response bodies (gateway --chunked, each body in two chunks): ffmpeg plays, then publishes; keep-alive" \
        --argjson s1 "$(stream_json chk publish ffmpeg truth/publish-chk.flv "$(session_id "$TMP/gw3.log" 2)" "$OUT")" \
        --argjson s2 "$(stream_json chk play ffmpeg truth/play-ffmpeg-chk.flv "$(session_id "$TMP/gw3.log" 1)" "$OUT")" \
        --argjson ts "$(tshark_json "$OUT/capture.pcap")" \
        '{description: $d, capture: "capture.pcap", link: "lo (DLT_EN10MB)", http_server: "127.0.0.1:8080",
          rtmp_server: "127.0.0.1:1935 (not captured)", server_chunk_size: 4096, gateway: "chunked",
          streams: [$s1, $s2], tshark: $ts}' >"$OUT/manifest.json"
fi

# ---------------------------------------------------------------------------
# rtmpts-publish-play: RTMPT over TLS (rtmpts://): nginx's stream module terminates TLS on
# 8443 in front of the keep-alive gateway; ffmpeg plays, rtmpdump plays, ffmpeg publishes,
# each with its own key log; only tcp port 8443 captured
if want rtmpts-publish-play; then
    log "sample rtmpts-publish-play"
    OUT=$STAGE/rtmpts-publish-play
    mkdir -p "$OUT/truth"
    start_gateway "$TMP/gw4.log"
    wait_listen 127.0.0.1:8443
    start_capture "$TMP/c4.pcap" 'tcp port 8443'
    URL=rtmpts://127.0.0.1:8443/live/tls
    SSLKEYLOGFILE=$TMP/c4.ffmpeg-player.keys bg "${FF[@]}" -i "$URL" -map 0 -c copy -f flv \
        "$OUT/truth/play-ffmpeg-tls.flv"
    P1=$!
    sleep 0.5
    # librtmp (GnuTLS) crashes on TLS 1.3 (segfault in its read); this GnuTLS system
    # priority file keeps rtmpdump at TLS 1.2, so the capture holds both versions
    printf '[overrides]\ndisabled-version = tls1.3\n' >"$TMP/gnutls-no-tls13.conf"
    SSLKEYLOGFILE=$TMP/c4.rtmpdump-player.keys GNUTLS_SYSTEM_PRIORITY_FILE=$TMP/gnutls-no-tls13.conf \
        bg rtmpdump -q -r "$URL" -o "$OUT/truth/play-rtmpdump-tls.flv"
    P2=$!
    sleep 1
    SSLKEYLOGFILE=$TMP/c4.publisher.keys "${FF[@]}" -re -i "$TMP/src.flv" -map 0 -c copy -f flv "$URL"
    wait_or_kill "$P1" 15 "ffmpeg player"
    wait_or_kill "$P2" 15 "rtmpdump player"
    stop_capture
    stop_gateway
    cp "$TMP/c4.pcap" "$OUT/capture.pcap"
    cp "$NG/rec/tls.flv" "$OUT/truth/publish-tls.flv"
    cat "$TMP"/c4.ffmpeg-player.keys "$TMP"/c4.rtmpdump-player.keys "$TMP"/c4.publisher.keys \
        >"$OUT/keylog.txt"
    check_truth "$OUT"
    TS=$(tshark_json "$OUT/capture.pcap" "$OUT/keylog.txt")
    # the TLS handshakes, as tshark reads them (one per TCP connection)
    TLS=$(tshark -r "$OUT/capture.pcap" -Y 'tls.handshake.type == 2' -T fields -E 'separator=;' \
        -e tcp.stream -e tcp.dstport -e tls.handshake.extensions.supported_version \
        -e tls.handshake.ciphersuite 2>/dev/null |
        jq -R -s -c 'split("\n") | map(select(. != "") | split(";")
            | {tcp_stream: (.[0] | tonumber), client_port: (.[1] | tonumber),
               supported_version: .[2], cipher_suite: .[3]})')
    jq -e --argjson t "$TLS" '.tcp_connections == ($t | length) and .requests_by_kind.open == 3
        and ([$t[] | select(.supported_version == "0x0304")] | length) == 2' \
        <<<"$TS" >/dev/null || die "rtmpts-publish-play: tshark does not see 3 sessions over TLS, 2 of them TLS 1.3: $TS $TLS"
    jq -n --arg d "RTMPT over TLS (rtmpts://) over loopback: ffmpeg plays, rtmpdump plays, then ffmpeg publishes H.264 baseline + AAC; nginx's stream module terminates TLS on 127.0.0.1:8443 (self-signed certificate; TLS 1.3 with the ffmpeg clients, TLS 1.2 with rtmpdump, whose librtmp crashes on 1.3) in front of tests/lab/rtmpt_gateway.py (keep-alive) and nginx-rtmp; only tcp port 8443 captured; keylog.txt is the three clients' SSLKEYLOGFILE (GnuTLS) logs" \
        --argjson s1 "$(stream_json tls publish ffmpeg truth/publish-tls.flv "$(session_id "$TMP/gw4.log" 3)" "$OUT")" \
        --argjson s2 "$(stream_json tls play ffmpeg truth/play-ffmpeg-tls.flv "$(session_id "$TMP/gw4.log" 1)" "$OUT")" \
        --argjson s3 "$(stream_json tls play rtmpdump truth/play-rtmpdump-tls.flv "$(session_id "$TMP/gw4.log" 2)" "$OUT")" \
        --argjson ts "$TS" --argjson tls "$TLS" \
        '{description: $d, encryption: "tls", capture: "capture.pcap", keylog: "keylog.txt",
          link: "lo (DLT_EN10MB)", http_server: "127.0.0.1:8443",
          tls_server: "nginx stream module on 127.0.0.1:8443, proxying to the gateway on 127.0.0.1:8080 (not captured)",
          rtmp_server: "127.0.0.1:1935 (not captured)", server_chunk_size: 4096, gateway: "keep-alive",
          streams: [$s1, $s2, $s3], tshark: ($ts + {tls: $tls})}' >"$OUT/manifest.json"
fi

kill -QUIT "$NGINX" 2>/dev/null || true
wait_or_kill "$NGINX" 10 nginx

for d in "$STAGE"/*/; do
    n=$(basename "$d")
    rm -rf "${SAMPLES:?}/$n"
    mv "$d" "$SAMPLES/$n"
    chmod -R a+rX "$SAMPLES/$n"
done
log "done"
du -ab "$SAMPLES"/rtmpt-* "$SAMPLES"/rtmpts-* 2>/dev/null | sort -k2 >&2 || true
