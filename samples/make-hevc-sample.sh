#!/usr/bin/env bash
# lo-enhanced-hevc-midstream/: a recent ffmpeg (imageio-ffmpeg's, `pip install
# imageio-ffmpeg`) publishes 8 s of HEVC (libx265 with repeat-headers=1: VPS, SPS and PPS in
# band in every keyframe, keyint 25) + AAC-LC stereo 48 kHz as Enhanced RTMP (`hvc1`) to
# another of itself listening (`-listen 1`; nginx-rtmp 1.2 does not relay HEVC) on
# 127.0.0.1, and tcpdump on lo starts 3 s into the publish: the capture holds neither the
# handshake nor the sequence headers, so the hvcC must come from the keyframes and the
# AudioSpecificConfig from the frames. The truth is the publisher's own FLV through ffmpeg's
# tee muxer. Port 19355.
# Needs: root (tcpdump), python3 with imageio-ffmpeg (its ffmpeg has libx265).
set -euo pipefail
SAMPLES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
F=$(python3 -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')
TMP="$(mktemp -d /tmp/rtmpsniff-hevc.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
PORT=19355
out="$SAMPLES/lo-enhanced-hevc-midstream"
rm -rf "$out"; mkdir -p "$out/truth"
"$F" -nostdin -hide_banner -loglevel error -y -listen 1 -i "rtmp://127.0.0.1:$PORT/live/hevc" \
    -c copy -f flv "$TMP/server.flv" & sv=$!
sleep 1
"$F" -nostdin -hide_banner -loglevel error -re -f lavfi -i "testsrc2=size=320x240:rate=25" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 8 \
    -c:v libx265 -preset ultrafast -x265-params "repeat-headers=1:keyint=25:min-keyint=25:log-level=error" \
    -b:v 300k -c:a aac -b:a 96k -ac 2 -ar 48000 -map 0:v -map 1:a \
    -f tee "[f=flv]rtmp://127.0.0.1:$PORT/live/hevc|[f=flv]$out/truth/publish-hevc.flv" & pub=$!
sleep 3
tcpdump -i lo -s 0 -U -n -w "$TMP/cap.pcap" "tcp port $PORT" 2>"$TMP/td.log" & td=$!
wait "$pub"
wait "$sv"
sleep 0.5; kill -INT "$td"; wait "$td" || true
cp "$TMP/cap.pcap" "$out/capture.pcap"
[ -z "$("$F" -nostdin -v error -i "$out/truth/publish-hevc.flv" -f null - 2>&1)" ] \
    || { echo "the truth does not decode cleanly" >&2; exit 1; }
"$F" -version | head -1 >"$out/ffmpeg-version.txt"
echo "[make-hevc-sample] done" >&2
