#!/usr/bin/env bash
# Enhanced RTMP audio samples: a recent ffmpeg (imageio-ffmpeg's, `pip install
# imageio-ffmpeg`) publishes 3 s of H.264 + Opus (libopus) or FLAC, stereo 48 kHz, with
# Enhanced RTMP's FourCC audio, to another of itself listening (`-listen 1`: nginx-rtmp 1.2
# does not relay these) on 127.0.0.1, captured by tcpdump on lo. The truth is the
# publisher's own FLV through ffmpeg's tee muxer (what it sent, packet for packet).
# lo-enhanced-opus/ and lo-enhanced-flac/ (both on port 19354): capture.pcap, truth/.
# Needs: root (tcpdump), python3 with imageio-ffmpeg.
set -euo pipefail
SAMPLES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
F=$(python3 -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')
TMP="$(mktemp -d /tmp/rtmpsniff-enhanced.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
PORT=19354
for c in opus flac; do
    out="$SAMPLES/lo-enhanced-$c"
    rm -rf "$out"; mkdir -p "$out/truth"
    enc=$c; [ "$c" = opus ] && enc=libopus
    tcpdump -i lo -s 0 -U -n -w "$TMP/cap.pcap" "tcp port $PORT" 2>"$TMP/td.log" & td=$!
    for _ in $(seq 50); do grep -q "listening on" "$TMP/td.log" && break; sleep 0.1; done
    "$F" -nostdin -hide_banner -loglevel error -y -listen 1 -i "rtmp://127.0.0.1:$PORT/live/$c" \
        -c copy -f flv "$TMP/server.flv" & sv=$!
    sleep 1
    "$F" -nostdin -hide_banner -loglevel error -re -f lavfi -i "testsrc2=size=320x240:rate=25" \
        -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 3 -c:v libx264 -g 25 \
        -c:a "$enc" -ac 2 -ar 48000 -map 0:v -map 1:a \
        -f tee "[f=flv]rtmp://127.0.0.1:$PORT/live/$c|[f=flv]$out/truth/publish-$c.flv"
    wait "$sv"
    sleep 0.5; kill -INT "$td"; wait "$td" || true
    cp "$TMP/cap.pcap" "$out/capture.pcap"
    [ -z "$("$F" -nostdin -v error -i "$out/truth/publish-$c.flv" -f null - 2>&1)" ] \
        || { echo "truth of $c does not decode cleanly" >&2; exit 1; }
done
"$F" -version | head -1 >"$SAMPLES/lo-enhanced-opus/ffmpeg-version.txt"
cp "$SAMPLES/lo-enhanced-opus/ffmpeg-version.txt" "$SAMPLES/lo-enhanced-flac/"
echo "[make-enhanced-samples] done" >&2

# lo-enhanced-multitrack/: the same publisher with two video tracks (320x240 and a 160x120
# copy, both H.264) and two audio tracks (AAC and Opus, stereo 48 kHz): ffmpeg 9 sends track
# 0 as legacy FLV and track 1 as Enhanced RTMP Multitrack (OneTrack) messages.
out="$SAMPLES/lo-enhanced-multitrack"
rm -rf "$out"; mkdir -p "$out/truth"
tcpdump -i lo -s 0 -U -n -w "$TMP/cap.pcap" "tcp port $PORT" 2>"$TMP/td.log" & td=$!
for _ in $(seq 50); do grep -q "listening on" "$TMP/td.log" && break; sleep 0.1; done
"$F" -nostdin -hide_banner -loglevel error -y -listen 1 -i "rtmp://127.0.0.1:$PORT/live/mt" \
    -map 0 -c copy -f flv "$TMP/server.flv" & sv=$!
sleep 1
"$F" -nostdin -hide_banner -loglevel error -re -f lavfi -i "testsrc2=size=320x240:rate=25" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 3 \
    -filter_complex "[0:v]split[a][b];[b]scale=160:120[c]" -map "[a]" -map "[c]" -map 1:a -map 1:a \
    -c:v libx264 -g 25 -c:a:0 aac -c:a:1 libopus -ac 2 -ar 48000 \
    -f tee "[f=flv]rtmp://127.0.0.1:$PORT/live/mt|[f=flv]$out/truth/publish-mt.flv"
wait "$sv" || true
sleep 0.5; kill -INT "$td"; wait "$td" || true
cp "$TMP/cap.pcap" "$out/capture.pcap"
"$F" -version | head -1 >"$out/ffmpeg-version.txt"
echo "[make-enhanced-samples] multitrack done" >&2
