#!/usr/bin/env python3
"""Timestamp accuracy of recovered FLV files against the peers' own recordings.

    bench/timing.py OUT_DIR TRUTH_DIR [label]

OUT_DIR holds an rtmpsniff run (report.json and its FLV files); TRUTH_DIR the truth files of
samples/make-hard-samples.sh (publish-mid.flv, play-ffmpeg-mid.flv, publish-leg.flv,
play-ffmpeg-leg.flv) or of samples/make-audio-loss-sample.sh (DIRECTION-NAME.flv). Audio and video tags are matched by body. One offset for the whole file
(of those within 2 ms of the most common truth-minus-recovered difference over bodies the
truth holds once, the one that puts most tags within 1 ms) is applied; a tag is exact when its time plus that offset is a time the truth has for its body
(within 1 ms, as the issue asks). Prints per stream: tags matched, the share exact (all, audio,
video), the largest error in ms, and recall (truth media tags found).
"""
import collections
import json
import os
import struct
import sys


def tags(path):
    d = open(path, "rb").read()
    pos = struct.unpack(">I", d[5:9])[0] + 4
    out = []
    while pos + 11 <= len(d):
        t = d[pos] & 0x1F
        size = int.from_bytes(d[pos + 1 : pos + 4], "big")
        ts = int.from_bytes(d[pos + 4 : pos + 7], "big") | d[pos + 7] << 24
        body = d[pos + 11 : pos + 11 + size]
        if len(body) < size:
            break
        if t in (8, 9):
            out.append((t, ts, body))
        pos += 11 + size + 4
    return out


TRUTH = {
    ("publish", "h264"): "publish-mid.flv",
    ("play", "h264"): "play-ffmpeg-mid.flv",
    ("publish", "flv1"): "publish-leg.flv",
    ("play", "flv1"): "play-ffmpeg-leg.flv",
}


def truth_of(truth_dir, s):
    """(truth file, key) of a report's stream: by direction and video codec (the files of
    samples/make-hard-samples.sh), else by direction and name (make-audio-loss-sample.sh)."""
    key = (s["direction"], s.get("video_codec") or "")
    if key in TRUTH:
        return os.path.join(truth_dir, TRUTH[key]), key
    return os.path.join(truth_dir, f"{s['direction']}-{s['name']}.flv"), (s["direction"], s["name"])


def score(got, truth, name=""):
    times = collections.defaultdict(list)
    for t, ts, b in truth:
        times[(t, b)].append(ts)
    diffs = collections.Counter()
    for t, ts, b in got:
        tt = times.get((t, b))
        if tt and len(tt) == 1:
            diffs[tt[0] - ts] += 1
    if not diffs:
        return None
    # The offset: of those near the most common difference, the one that puts most tags
    # within 1 ms (a file 1 ms off between audio and video is exact either way).
    mode = diffs.most_common(1)[0][0]

    def exact_with(o):
        return sum(
            1
            for t, ts, b in got
            if times.get((t, b)) and min(abs(x - (ts + o)) for x in times[(t, b)]) <= 1
        )

    off = max(range(mode - 2, mode + 3), key=lambda o: (exact_with(o), -abs(o - mode)))
    res = {8: [0, 0], 9: [0, 0]}
    maxerr = 0
    matched = 0
    for t, ts, b in got:
        tt = times.get((t, b))
        if not tt:
            continue
        matched += 1
        err = min(abs(x - (ts + off)) for x in tt)
        res[t][1] += 1
        if err <= 1:
            res[t][0] += 1
        maxerr = max(maxerr, err)
    if os.environ.get("DETAIL") and os.environ["DETAIL"] in name:
        prev = None
        for i, (t, ts, b) in enumerate(got):
            tt = times.get((t, b))
            if not tt:
                continue
            e = min((x - (ts + off) for x in tt), key=abs)
            if prev is None or abs(e - prev) > 1:
                print(f"  tag {i} type {t} ts {ts}: error {e}")
                prev = e
    found = set((t, b) for t, _, b in got)
    recall = sum(1 for t, _, b in truth if (t, b) in found)
    return off, matched, res, maxerr, recall, len(truth)


def main():
    out, truth_dir = sys.argv[1], sys.argv[2]
    label = sys.argv[3] if len(sys.argv) > 3 else os.path.basename(out.rstrip("/"))
    rep = json.load(open(os.path.join(out, "report.json")))
    rows = []
    for c in rep["connections"]:
        for s in c["streams"]:
            if not s.get("file"):
                continue
            path, key = truth_of(truth_dir, s)
            got = tags(os.path.join(out, s["file"]))
            truth = tags(path)
            r = score(got, truth, " ".join(key))
            if r is None:
                print(f"{label} {key}: nothing matched")
                continue
            off, matched, res, maxerr, recall, total = r
            ex = res[8][0] + res[9][0]
            n = res[8][1] + res[9][1]
            pct = lambda a, b: 100.0 * a / b if b else 100.0
            rows.append(
                f"{label:10} {key[0]:7} {key[1]:4}  tags {matched:4}  exact {pct(ex, n):5.1f}%"
                f"  (audio {pct(*res[8]):5.1f}%  video {pct(*res[9]):5.1f}%)"
                f"  max err {maxerr:5d} ms  recall {recall}/{total}"
            )
    print("\n".join(sorted(rows)))


if __name__ == "__main__":
    main()
