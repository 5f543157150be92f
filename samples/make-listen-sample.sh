#!/usr/bin/env bash
# lo-listen-play/: ffmpeg's own RTMP server (`-listen 1`) serving 3 s of H.264 + AAC mono
# 44.1 kHz to an ffmpeg player on 127.0.0.1:19360, captured on lo. That server sends the
# play's media and @setDataFrame on message stream 0 while NetStream.Play.Start is on stream
# 1. Truth: truth/play-ffmpeg-x.flv, what the player recorded. Needs: root (tcpdump), ffmpeg.
set -euo pipefail
SAMPLES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TMP="$(mktemp -d /tmp/rtmpsniff-listen.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
FF=(ffmpeg -nostdin -hide_banner -loglevel error -y)
PORT=19360
out="$SAMPLES/lo-listen-play"
rm -rf "$out"; mkdir -p "$out/truth"
"${FF[@]}" -f lavfi -i "testsrc2=size=320x240:rate=25" -f lavfi -i "sine=frequency=440:sample_rate=44100" \
    -t 3 -c:v libx264 -g 25 -c:a aac -ac 1 "$TMP/src.flv"
tcpdump -i lo -s 0 -B 8192 -U -n -w "$TMP/cap.pcap" "tcp port $PORT" 2>"$TMP/td.log" & td=$!
for _ in $(seq 50); do grep -q "listening on" "$TMP/td.log" && break; sleep 0.1; done
"${FF[@]}" -re -i "$TMP/src.flv" -c copy -f flv -listen 1 "rtmp://127.0.0.1:$PORT/live/x" & sv=$!
sleep 1
"${FF[@]}" -i "rtmp://127.0.0.1:$PORT/live/x" -map 0 -c copy -f flv "$out/truth/play-ffmpeg-x.flv" || true
wait "$sv" || true
sleep 2; kill -INT "$td"; wait "$td" || true
cp "$TMP/cap.pcap" "$out/capture.pcap"; cat "$TMP/td.log" >&2
ffmpeg -version | head -1 >"$out/ffmpeg-version.txt"
echo "[make-listen-sample] done" >&2
