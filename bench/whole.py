#!/usr/bin/env python3
"""Messages captured whole, and how many of them an rtmpsniff run wrote.

    bench/whole.py CAPTURE.pcap TRUTH_DIR OUT_DIR [label]

TRUTH_DIR and OUT_DIR as for bench/timing.py. Each TCP direction of the capture is laid out
by sequence number from the segments present (first copy of each byte kept), with a mask of
the bytes captured. Each truth audio/video message is looked for in the direction that holds
most of the stream: its body's first chunk (up to the chunk size), then each further chunk
one byte (a type-3 basic header) after the one before, or within 64 KB after it (chunks of
other chunk streams between). A message is whole when each of its chunks and the byte before
each was captured (a message whose first chunk lost bytes is not found: it is not whole).
Video before the first keyframe the run wrote is counted apart: it cannot be decoded, and
the tool leaves it out on purpose. Prints per stream: truth
messages, whole in the capture, whole ones the run wrote (by body), and the whole ones it
dropped; then per stream the messages whole in some copy of it (the streams with the same
video codec, or without video the same name: in samples/netns-loss and netns-audio-loss, a
publish and its play), which repair could bring back, and how many it wrote.
"""
import collections
import json
import os
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import timing  # noqa: E402

CHUNK = 4096


def directions(path):
    """{(src, sport, dst, dport): (bytes, mask)} from a capture (pcapng through editcap)."""
    d = open(path, "rb").read()
    if d[:4] == b"\x0a\x0d\x0d\x0a":
        with tempfile.NamedTemporaryFile(suffix=".pcap") as f:
            subprocess.run(["editcap", "-F", "pcap", path, f.name], check=True)
            d = open(f.name, "rb").read()
    magic = struct.unpack("<I", d[:4])[0]
    end = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    link = struct.unpack(end + "I", d[20:24])[0]
    pos = 24
    segs = collections.defaultdict(list)
    while pos + 16 <= len(d):
        _, _, incl, _ = struct.unpack(end + "IIII", d[pos : pos + 16])
        pkt = d[pos + 16 : pos + 16 + incl]
        pos += 16 + incl
        off = 14 if link == 1 else (16 if link == 113 else 0)
        if link == 1 and pkt[12:14] == b"\x81\x00":
            off = 18
        ip = pkt[off:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        ihl = (ip[0] & 15) * 4
        tot = struct.unpack(">H", ip[2:4])[0]
        tcp = ip[ihl:tot]
        if len(tcp) < 20:
            continue
        sp, dp, seq = struct.unpack(">HHI", tcp[:8])
        flags = tcp[13]
        doff = (tcp[12] >> 4) * 4
        payload = tcp[doff:]
        key = (ip[12:16], sp, ip[16:20], dp)
        segs[key].append((seq, flags & 2 != 0, payload))
    out = {}
    for key, ss in segs.items():
        syn = [s for s, f, _ in ss if f]
        base = (syn[0] + 1) if syn else min(s for s, _, p in ss if p)
        items = [((s - base) & 0xFFFFFFFF, p) for s, f, p in ss if p]
        items = [(o, p) for o, p in items if o < 1 << 30]
        if not items:
            continue
        size = max(o + len(p) for o, p in items)
        buf, mask = bytearray(size), bytearray(size)
        for o, p in items:
            for i in range(len(p)):
                if not mask[o + i]:
                    buf[o + i] = p[i]
                    mask[o + i] = 1
        out[key] = (bytes(buf), bytes(mask))
    return out


def find_whole(buf, mask, body, start):
    """(position after the message, whole?) of `body` from `start` on, or None if absent."""
    first = body[:CHUNK]
    at = buf.find(first, start)
    if at < 0:
        return None
    end = at + len(first)
    ok = at >= 1 and all(mask[at - 1 : end])
    rest = body[CHUNK:]
    while rest:
        piece = rest[:CHUNK]
        nxt = end + 1
        if buf[nxt : nxt + len(piece)] != piece:
            # Chunks of other chunk streams came between (a server interleaves them).
            nxt = buf.find(piece, end, end + (1 << 16))
            if nxt < 0:
                return end, False
        ok = ok and all(mask[nxt - 1 : nxt + len(piece)])
        end = nxt + len(piece)
        rest = rest[CHUNK:]
    return end, ok


def addr(text):
    """(4-byte IPv4, port) of "a.b.c.d:port"."""
    host, port = text.rsplit(":", 1)
    return bytes(int(x) for x in host.split(".")), int(port)


def main():
    cap, truth_dir, out = sys.argv[1], sys.argv[2], sys.argv[3]
    label = sys.argv[4] if len(sys.argv) > 4 else os.path.basename(out.rstrip("/"))
    dirs = directions(cap)
    rep = json.load(open(os.path.join(out, "report.json")))
    rows = []
    # (key, truth, written, whole here) of each stream.
    streams = []
    for c in rep["connections"]:
        for s in c["streams"]:
            if not s.get("file"):
                continue
            path, key = timing.truth_of(truth_dir, s)
            truth = timing.tags(path)
            got = set((t, b) for t, _, b in timing.tags(os.path.join(out, s["file"])))
            # The stream's direction: a publish's media go from client to server.
            src, dst = c["client"], c["server"]
            if s["direction"] == "play":
                src, dst = dst, src
            key4 = (*addr(src), *addr(dst))
            if key4 not in dirs:
                print(f"{label} {key}: no such TCP direction in the capture")
                continue
            buf, mask = dirs[key4]
            # Video before the first keyframe written cannot be decoded: the tool leaves it
            # out on purpose (the report's dropped_before_keyframe), so it is counted apart.
            # (An AVC/HEVC sequence header, packet type 0, is no keyframe.)
            key_at = next(
                (
                    i
                    for i, (t, _, b) in enumerate(truth)
                    if t == 9 and b[:1] and b[0] >> 4 == 1 and b[1:2] != b"\x00" and (t, b) in got
                ),
                len(truth),
            )
            whole, kept, pos, undecodable = 0, 0, 0, 0
            mine = set()
            streams.append((key, truth, got, mine))
            for i, (t, ts, b) in enumerate(truth):
                r = find_whole(buf, mask, b, max(0, pos - (1 << 16)))
                if r is None:
                    continue
                pos = max(pos, r[0])
                if r[1]:
                    if t == 9 and i < key_at and (t, b) not in got:
                        undecodable += 1
                        continue
                    whole += 1
                    mine.add((t, b))
                    kept += (t, b) in got
                    if os.environ.get("DETAIL") and os.environ["DETAIL"] in " ".join(key):
                        if (t, b) not in got:
                            print(f"  dropped: type {t} ts {ts} len {len(b)} ends at {r[0]}")
            rows.append(
                f"{label:10} {key[0]:7} {key[1]:4}  truth {len(truth):4}  whole {whole:4}"
                f"  written {kept:4}  dropped {whole - kept:3}"
                f" ({100.0 * (whole - kept) / max(whole, 1):.1f}%)"
                + (f"  (and {undecodable} video before the first keyframe)" if undecodable else "")
            )
    print("\n".join(sorted(rows)))
    # Copies of one stream (the same video codec, or name): a message of this stream's truth
    # whole in any of them could come back.
    rows = []
    for key, truth, got, _ in streams:
        mine = set((t, b) for t, _, b in truth)
        anywhere = set().union(*(m for k, _, _, m in streams if k[1] == key[1])) & mine
        back = sum(1 for x in anywhere if x in got)
        rows.append(
            f"{label:10} {key[0]:7} {key[1]:4}  whole in some copy {len(anywhere):4}"
            f"  written {back:4}  recall of those {back / max(len(anywhere), 1):.3f}"
        )
    print("\n".join(sorted(rows)))


if __name__ == "__main__":
    main()
