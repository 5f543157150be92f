#!/usr/bin/env bash
# Captures the tool has not seen, made the way the samples are: a fresh session of
# samples/make-hard-samples.sh (nginx-rtmp, ffmpeg publishing H.264+AAC and Sorenson+MP3, an
# ffmpeg player for each; root needed) into DIR, its 1% capture, and 5% ones made from it by
# bench/make-loss5.sh (seeds 5 and 23). For each: bench/timing.py's tags at the truth's
# time, bench/whole.py's messages whole in some copy and written (with repair) and whole in
# their own copy and dropped (without), and whether `decodable.ok` is what ffmpeg -v error
# says of each file.
#   sudo bench/fresh-lab.sh DIR [BINARY]      (DIR is made once; run again to re-measure)
set -euo pipefail
cd "$(dirname "$0")/.."
D=$(realpath -m "${1:?directory}")
B=$(realpath "${2:-target/release/rtmpsniff}")
[ -s "$D/netns-loss/capture.pcap" ] || DEST="$D" samples/make-hard-samples.sh
for seed in 5 23; do
    [ -s "$D/loss5-s$seed.pcap" ] || bench/make-loss5.sh "$D/loss5-s$seed.pcap" "$seed" "$D/netns-loss/capture.pcap" >/dev/null
done
for c in "$D/netns-midstream/capture.pcap" "$D/netns-loss/capture.pcap" "$D/loss5-s5.pcap" "$D/loss5-s23.pcap"; do
    case $c in
    */netns-midstream/*) n=mid truth=$D/netns-midstream/truth ;;
    */netns-loss/*) n=1% truth=$D/netns-loss/truth ;;
    *) n=$(basename "$c" .pcap) truth=$D/netns-loss/truth ;;
    esac
    o=$D/out-$n
    rm -rf "$o" "$o-nr"
    "$B" read -q -o "$o" "$c"
    "$B" read -q --no-repair -o "$o-nr" "$c"
    python3 bench/timing.py "$o" "$truth" "$n"
    python3 bench/whole.py "$c" "$truth" "$o" "$n" | grep "some copy"
    python3 bench/whole.py "$c" "$truth" "$o-nr" "$n nr" | grep -v "some copy"
    python3 - "$o" "$n" <<'PY'
import json, os, subprocess, sys
out, label = sys.argv[1:]
report = json.load(open(os.path.join(out, "report.json")))
agree, total, differ = 0, 0, []
for c in report["connections"]:
    for s in c["streams"]:
        if not s.get("file"):
            continue
        p = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", os.path.join(out, s["file"]),
                            "-f", "null", "-"], capture_output=True, text=True)
        clean = p.returncode == 0 and not p.stderr.strip()
        total += 1
        if clean == s["decodable"]["ok"]:
            agree += 1
        else:
            differ.append((s["file"], s["decodable"]["ok"], p.stderr.strip()[:120]))
print(f"{label:10s} decodable is what ffmpeg says on {agree} of {total} streams", differ or "")
PY
done
