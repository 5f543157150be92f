#!/usr/bin/env python3
"""Synthetic pcap captures with many TCP connections, to measure how rtmpsniff's memory
(and time, and report size) grows with the number of connections.

    bench/many-conns.py --shape synflood --count N [-o OUT.pcap] [options]
    bench/many-conns.py --shape sessions --count N [-o OUT.pcap] [options]

Python 3.11, standard library only. Writes a classic pcap (microsecond timestamps,
link type 1 = Ethernet) to OUT (default: standard output, or use `-o -`). The output is
produced as a stream in timestamp order: memory use stays small and flat whatever N is.

Shapes
------
synflood
    N TCP SYN packets (Ethernet / IPv4 / TCP with MSS, NOP, window scale, SACK-permitted
    options; 66 bytes on the wire, 82 with the pcap record header) from N distinct client
    address/port pairs to SERVER (default 192.0.2.1:1935), never answered, GAP ms apart
    (default 1 ms) in packet time. Client k (k = 0..N-1) is 10.(j>>16&255).(j>>8&255).(j&255)
    with j = k+1, from port 1024 + (k * 40503) % 64512 (ports spread over 1024-65535);
    the address alone already makes every pair distinct for N < 2**24. IPv4 header and TCP
    checksums (with the pseudo-header) are correct.

sessions
    N complete, real RTMP publish sessions, copied from a real capture (default
    samples/lo-h264-aac/capture.pcap: ffmpeg publishing H.264+AAC stream `cam1` to
    nginx-rtmp app `live` over loopback, one connection 127.0.0.1:48040 -> :1935 with TCP
    and RTMP handshakes, connect, releaseStream/FCPublish/createStream, publish, about 3 s of
    media, FCUnpublish/deleteStream and a client RST). For copy k the client becomes
    10.(j>>16&255).(j>>8&255).(j&255) (j = k+1) port 40000 + k % 20000, the server becomes
    SERVER (default 192.0.2.1:1935, the same for every copy), so every copy is a distinct
    4-tuple; the IPv4 header checksum and the TCP checksum (pseudo-header included) are
    recomputed for every packet. (The template's own checksums are NOT valid -- loopback
    captures carry partial, offloaded checksums -- so the copies are in that respect more
    correct than the original.) Nothing else is changed: Ethernet header (all-zero
    loopback MACs), IP IDs, TCP sequence numbers, TCP options, payload bytes.
    Copy k is shifted so it starts k * GAP ms (default 50 ms) after copy 0, and the copies
    are merged in timestamp order with a heap that only ever holds the copies that are open
    at that moment (plus the next one to start).

    By default each session is cut short to keep files manageable: everything up to the
    client's `publish` command, then MEDIA_SECONDS (default 0.1 s) of packet time after it,
    rounded up to the end of the burst of packets in flight then (so the cut falls between
    two writes of the publisher, on an RTMP message boundary, after the server's ACK). With
    the default the kept media is the first burst: @setDataFrame/onMetaData, the AVC and AAC
    sequence headers, the first key frame and a few audio frames (rtmpsniff: 2 video and 3
    audio tags per stream). The session then ends as chosen by --end: `fin` (default) adds
    a proper close -- client FIN, server FIN, client ACK, with sequence/ack numbers that
    follow on from the kept data, 0.1 ms apart; `rst` adds a client RST as the original
    does; `none` just stops (the connection is then left open and only rtmpsniff's idle
    timeout or end of input ends it). --full keeps the whole session (about 3.2 s,
    352 packets, 117 kB of frames) except its final RST, then ends it as --end says
    (`--full --end rst` reproduces the original exactly, apart from addresses, checksums
    and timestamps).

    At the default 50 ms spacing a default (cut) session lasts 0.23 s, so about 5 copies
    are open at once; a --full session lasts 3.2 s, so at most about 65 are.

Sizes (measured with the default template and options)
------------------------------------------------------
    shape                       per connection        N=1,000   N=10,000   N=100,000
    synflood                    82 B (1 packet)       82 kB     820 kB     8.2 MB
    sessions (cut, default)     17,486 B (46 packets) 17.5 MB   175 MB     1.75 GB
    sessions --full (--end fin) 123,702 B (354 pkts)  124 MB    1.24 GB    12.4 GB
(plus the 24-byte pcap file header). The generator's memory stays at about 24 MB whatever
N; it writes about 300,000 packets a second (N=100,000 default sessions, 4.6 M packets:
15 s; synflood N=200,000: under 1 s).

rtmpsniff tracks at most 65,536 connections at once (Limits::connections): a synflood
with more SYNs than that makes it evict the oldest bare SYNs, so its memory should stop
growing there (use e.g. N = 1,000 / 10,000 / 70,000 / 200,000 to see both sides).
Sessions are closed by their FIN exchange, so only the handful open at once is tracked.

Checking the output
-------------------
    tshark -r OUT -q -z conv,tcp | tail                    # N conversations, distinct
    tshark -o tcp.check_checksum:TRUE -o ip.check_checksum:TRUE -r OUT \\
           -Y 'tcp.checksum.status==Bad || ip.checksum.status==Bad' | wc -l   # 0
    target/release/rtmpsniff list OUT                      # N connections, each cam1

Measuring
---------
    bench/many-conns.py --shape sessions --count 10000 -o /tmp/s10k.pcap
    /usr/bin/time -f '%e s %M KiB' target/release/rtmpsniff read /tmp/s10k.pcap -o /tmp/out -q
"""

import argparse
import heapq
import ipaddress
import os
import struct
import sys

LINKTYPE_ETHERNET = 1
PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, LINKTYPE_ETHERNET)
DEFAULT_TEMPLATE = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "samples", "lo-h264-aac", "capture.pcap"
)
BURST_GAP_US = 5000  # a pause this long between two packets ends a burst of writes
MAX_COUNT = (1 << 24) - 2  # client addresses 10.0.0.1 .. 10.255.255.255

TH_FIN, TH_SYN, TH_RST, TH_PSH, TH_ACK = 0x01, 0x02, 0x04, 0x08, 0x10


# --------------------------------------------------------------------------- checksums


def words(b: bytes) -> int:
    """Sum of the big-endian 16-bit words of b (zero-padded to even length), unfolded."""
    if len(b) & 1:
        b += b"\0"
    return sum(struct.unpack("!%dH" % (len(b) // 2), b))


def fold(s: int) -> int:
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def csum(s: int) -> int:
    """Internet checksum from an unfolded sum of words."""
    return ~fold(s) & 0xFFFF


# --------------------------------------------------------------------------- pcap reading


def read_pcap(path):
    """Yield (ts_us, frame bytes) from a classic pcap with Ethernet link type."""
    try:
        f = open(path, "rb")
    except OSError as e:
        sys.exit(f"{path}: {e.strerror}")
    with f:
        hdr = f.read(24)
        if len(hdr) < 24:
            sys.exit(f"{path}: too short for a pcap file")
        magic = struct.unpack("<I", hdr[:4])[0]
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            e = "<"
        elif magic in (0xD4C3B2A1, 0x4D3CB2A1):
            e = ">"
        else:
            sys.exit(f"{path}: not a classic pcap file (pcapng is not supported)")
        nano = struct.unpack(e + "I", hdr[:4])[0] == 0xA1B23C4D
        linktype = struct.unpack(e + "I", hdr[20:24])[0] & 0x0FFFFFFF
        if linktype != LINKTYPE_ETHERNET:
            sys.exit(f"{path}: link type {linktype}, only Ethernet (1) is supported")
        while True:
            rh = f.read(16)
            if len(rh) < 16:
                return
            sec, frac, caplen, wirelen = struct.unpack(e + "IIII", rh)
            data = f.read(caplen)
            if len(data) < caplen:
                return
            if caplen != wirelen:
                sys.exit(f"{path}: a packet was cut by the snap length; checksums need it whole")
            yield sec * 1_000_000 + (frac // 1000 if nano else frac), data


class TPacket:
    """One packet of the template connection, split around the fields a copy rewrites."""

    __slots__ = ("t", "from_client", "pre", "ipopts", "tcp_mid", "rest", "ip_sum", "tcp_sum",
                 "caplen", "seq", "ack", "flags", "win", "plen")

    def __init__(self, t, from_client, eth, ip, tcp, payload):
        self.t = t
        self.from_client = from_client
        self.caplen = len(eth) + len(ip) + len(tcp) + len(payload)
        # IPv4 header: bytes 0..9 kept, 10..11 checksum, 12..19 addresses, 20.. options.
        self.pre = eth + ip[:10]
        self.ipopts = ip[20:]
        self.ip_sum = words(ip[:10] + ip[20:])  # constant part of the IP header checksum
        # TCP: 0..3 ports, 4..15 kept, 16..17 checksum, 18.. urgent pointer, options, data.
        self.tcp_mid = tcp[4:16]
        self.rest = tcp[18:] + payload
        seglen = len(tcp) + len(payload)
        # Constant part of the TCP checksum: the pseudo-header's protocol and length, and
        # the segment without its ports and checksum. Addresses and ports are added per copy.
        self.tcp_sum = 6 + seglen + words(tcp[4:16] + tcp[18:] + payload)
        self.seq, self.ack = struct.unpack("!II", tcp[4:12])
        self.flags = tcp[13]
        self.win = struct.unpack("!H", tcp[14:16])[0]
        self.plen = len(payload)


def parse_frame(data):
    """Split an Ethernet/IPv4/TCP frame into (eth, ip header, tcp header, payload) or None."""
    if len(data) < 14:
        return None
    eth_len = 14
    etype = struct.unpack("!H", data[12:14])[0]
    if etype == 0x8100:  # one VLAN tag
        eth_len = 18
        etype = struct.unpack("!H", data[16:18])[0]
    if etype != 0x0800:
        return None
    ip_start = eth_len
    ihl = (data[ip_start] & 0x0F) * 4
    total = struct.unpack("!H", data[ip_start + 2:ip_start + 4])[0]
    if data[ip_start + 9] != 6:
        return None
    ip = data[ip_start:ip_start + ihl]
    tcp_start = ip_start + ihl
    thl = (data[tcp_start + 12] >> 4) * 4
    tcp = data[tcp_start:tcp_start + thl]
    payload = data[tcp_start + thl:ip_start + total]
    return data[:eth_len], ip, tcp, payload


def load_template(path):
    """The template's first connection (the one whose SYN comes first), as TPackets with
    times relative to its first packet."""
    pkts = []
    conn = None  # (client ip, client port, server ip, server port)
    t0 = None
    for ts, data in read_pcap(path):
        parts = parse_frame(data)
        if parts is None:
            continue
        eth, ip, tcp, payload = parts
        src, dst = ip[12:16], ip[16:20]
        sport, dport = struct.unpack("!HH", tcp[:4])
        flags = tcp[13]
        if conn is None:
            if flags & TH_SYN and not flags & TH_ACK:
                conn = (src, sport, dst, dport)
                t0 = ts
            else:
                continue
        if (src, sport, dst, dport) == conn:
            from_client = True
        elif (dst, dport, src, sport) == conn:
            from_client = False
        else:
            continue
        pkts.append(TPacket(ts - t0, from_client, eth, ip, tcp, payload))
    if not pkts:
        sys.exit(f"{path}: no TCP connection starting with a SYN found")
    return pkts, t0


def synth(template_pkt, from_client, t, seq, ack, flags, win):
    """A bare TCP segment (no options, no data) of the template connection, with the
    Ethernet header of template_pkt (swapped when the direction differs)."""
    eth = template_pkt.pre[: len(template_pkt.pre) - 10]
    if template_pkt.from_client != from_client:
        eth = eth[6:12] + eth[0:6] + eth[12:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0x4000, 64, 6, 0, b"\0" * 4, b"\0" * 4)
    tcp = struct.pack("!HHIIBBHHH", 0, 0, seq, ack, 5 << 4, flags, win, 0, 0)
    return TPacket(t, from_client, eth, ip, tcp, b"")


def cut_template(pkts, media_us, end):
    """Keep the session up to `publish` + media_us (rounded up to the end of a burst), drop
    a final RST, and append the chosen ending."""
    pub = next((i for i, p in enumerate(pkts)
                if p.from_client and b"\x02\x00\x07publish" in p.rest), None)
    keep = len(pkts)
    if media_us is not None:
        if pub is None:
            sys.exit("template: no client `publish` command found; use --full")
        cutoff = pkts[pub].t + media_us
        keep = pub + 1
        while keep < len(pkts) and pkts[keep].t <= cutoff:
            keep += 1
        while keep < len(pkts) and pkts[keep].t - pkts[keep - 1].t < BURST_GAP_US:
            keep += 1
    if media_us is None and end == "rst" and pkts[-1].flags & TH_RST:
        return pkts  # the whole session with its own RST, as captured
    kept = pkts[:keep]
    while kept and kept[-1].flags & (TH_RST | TH_FIN):
        kept.pop()
    # Next sequence number each way, and the last packet each way (for windows, MACs).
    nxt = {True: None, False: None}
    last = {True: None, False: None}
    for p in kept:
        n = (p.seq + p.plen + (1 if p.flags & TH_SYN else 0)) & 0xFFFFFFFF
        if nxt[p.from_client] is None or ((n - nxt[p.from_client]) & 0xFFFFFFFF) < 1 << 31:
            nxt[p.from_client] = n
        last[p.from_client] = p
    if None in nxt.values():
        sys.exit("template: need packets both ways")
    t = kept[-1].t
    c, s = nxt[True], nxt[False]
    lc, ls = last[True], last[False]
    if end == "fin":
        kept.append(synth(lc, True, t + 100, c, s, TH_FIN | TH_ACK, lc.win))
        kept.append(synth(lc, False, t + 200, s, (c + 1) & 0xFFFFFFFF, TH_FIN | TH_ACK, ls.win))
        kept.append(synth(lc, True, t + 300, (c + 1) & 0xFFFFFFFF, (s + 1) & 0xFFFFFFFF,
                          TH_ACK, lc.win))
    elif end == "rst":
        kept.append(synth(lc, True, t + 100, c, 0, TH_RST, 0))
    return kept


# --------------------------------------------------------------------------- output


class Writer:
    def __init__(self, path):
        if path == "-":
            self.f = sys.stdout.buffer
            self.close_f = False
        else:
            self.f = open(path, "wb")
            self.close_f = True
        self.buf = [PCAP_HEADER]
        self.n = 0
        self.bytes = len(PCAP_HEADER)

    def flush(self):
        data = b"".join(self.buf)
        self.f.write(data)
        self.buf = []

    def close(self):
        self.flush()
        self.f.flush()
        if self.close_f:
            self.f.close()


def client_addr(k):
    j = k + 1
    return bytes((10, (j >> 16) & 255, (j >> 8) & 255, j & 255))


def parse_server(s):
    host, _, port = s.rpartition(":")
    try:
        return ipaddress.IPv4Address(host).packed, int(port)
    except ValueError:
        sys.exit(f"--server {s!r}: want IPv4:PORT")


def gen_synflood(w, n, start_us, gap_us, server):
    sip, sport = server
    eth = bytes.fromhex("020000000001" "020000000002" "0800")
    # MSS 1460, NOP, window scale 7, NOP, NOP, SACK permitted: 12 bytes of options.
    opts = bytes.fromhex("020405b4" "01030307" "01010402")
    tcp_len = 20 + len(opts)
    ip_len = 20 + tcp_len
    caplen = 14 + ip_len
    rechdr = struct.Struct("<IIII")
    ip_s = struct.Struct("!BBHHHBBH4s4s")
    tcp_s = struct.Struct("!HHIIBBHHH")
    sip_sum = words(sip)
    opts_sum = words(opts)
    buf = w.buf
    for k in range(n):
        t = start_us + k * gap_us
        cip = client_addr(k)
        cport = 1024 + (k * 40503) % 64512
        ipid = k & 0xFFFF
        seq = (k * 2654435761 + 12345) & 0xFFFFFFFF
        ip_c = csum(0x4500 + ip_len + ipid + 0x4000 + 0x4006 + words(cip) + sip_sum)
        ip = ip_s.pack(0x45, 0, ip_len, ipid, 0x4000, 64, 6, ip_c, cip, sip)
        hdr = tcp_s.pack(cport, sport, seq, 0, (tcp_len // 4) << 4, TH_SYN, 64240, 0, 0)
        tc = csum(words(cip) + sip_sum + 6 + tcp_len + words(hdr) + opts_sum)
        tcp = hdr[:16] + struct.pack("!H", tc) + hdr[18:] + opts
        buf.append(rechdr.pack(t // 1_000_000, t % 1_000_000, caplen, caplen))
        buf.append(eth)
        buf.append(ip)
        buf.append(tcp)
        if len(buf) > 40000:
            w.flush()
            buf = w.buf
        w.n += 1
        w.bytes += 16 + caplen


def gen_sessions(w, n, start_us, gap_us, server, tpl):
    sip, sport = server
    sip_w = words(sip)
    rechdr = struct.Struct("<IIII")
    h = struct.Struct("!H")
    hh = struct.Struct("!HH")
    ipaddrs = struct.Struct("!H4s4s")
    npk = len(tpl)
    # Per copy: (client address, client port, sum of address+port words).
    heap = [(start_us + tpl[0].t, 0, 0)]
    started = 0
    copies = {}

    def start(k):
        cip = client_addr(k)
        cport = 40000 + k % 20000
        aw = words(cip) + sip_w
        copies[k] = (cip, cport, aw, aw + cport + sport)

    start(0)
    buf = w.buf
    total = 0
    while heap:
        t, k, i = heapq.heappop(heap)
        if i == 0 and k + 1 < n:
            start(k + 1)
            heapq.heappush(heap, (start_us + (k + 1) * gap_us + tpl[0].t, k + 1, 0))
        p = tpl[i]
        cip, cport, aw, tw = copies[k]
        ip_c = csum(p.ip_sum + aw)
        tcp_c = csum(p.tcp_sum + tw)
        if p.from_client:
            addrs = ipaddrs.pack(ip_c, cip, sip)
            ports = hh.pack(cport, sport)
        else:
            addrs = ipaddrs.pack(ip_c, sip, cip)
            ports = hh.pack(sport, cport)
        buf.append(rechdr.pack(t // 1_000_000, t % 1_000_000, p.caplen, p.caplen))
        buf.append(p.pre)
        buf.append(addrs)
        if p.ipopts:
            buf.append(p.ipopts)
        buf.append(ports)
        buf.append(p.tcp_mid)
        buf.append(h.pack(tcp_c))
        buf.append(p.rest)
        total += 16 + p.caplen
        if len(buf) > 50000:
            w.flush()
            buf = w.buf
        i += 1
        if i < npk:
            heapq.heappush(heap, (t - tpl[i - 1].t + tpl[i].t, k, i))
        else:
            del copies[k]
        w.n += 1
    w.bytes += total


def main():
    ap = argparse.ArgumentParser(
        description="Write a synthetic pcap with many TCP connections (see the module "
                    "docstring: sed -n '2,/^\"\"\"/p' bench/many-conns.py).",
    )
    ap.add_argument("--shape", choices=("synflood", "sessions"), required=True,
                    help="unanswered SYNs, or copies of a real RTMP publish session")
    ap.add_argument("--count", "-n", type=int, required=True, help="number of connections")
    ap.add_argument("-o", "--output", default="-", help="output pcap; '-' (the default) is standard output")
    ap.add_argument("--server", default="192.0.2.1:1935",
                    help="server address:port every connection goes to (default 192.0.2.1:1935)")
    ap.add_argument("--gap-ms", type=float, default=None,
                    help="packet time between two connections' starts "
                         "(default: 1 for synflood, 50 for sessions)")
    ap.add_argument("--start", type=float, default=None,
                    help="time of the first packet, Unix seconds (default: the template's; "
                         "1700000000 for synflood)")
    g = ap.add_argument_group("sessions")
    g.add_argument("--template", default=DEFAULT_TEMPLATE,
                   help="classic pcap (Ethernet) whose first connection is copied "
                        "(default: samples/lo-h264-aac/capture.pcap)")
    g.add_argument("--media-seconds", "--max-seconds-per-session", type=float, default=0.1,
                   dest="media_seconds",
                   help="packet time kept after the client's publish command (rounded up "
                        "to the end of a burst; default 0.1)")
    g.add_argument("--full", action="store_true",
                   help="keep whole sessions (ignores --media-seconds)")
    g.add_argument("--end", choices=("fin", "rst", "none"), default="fin",
                   help="how each copy ends: FIN both ways + ACK (default), a client RST, "
                        "or nothing")
    a = ap.parse_args()

    if not 1 <= a.count <= MAX_COUNT:
        sys.exit(f"--count must be 1..{MAX_COUNT}")
    server = parse_server(a.server)
    if a.output == "-" and sys.stdout.isatty():
        sys.exit("not writing a pcap to a terminal: use -o FILE or a pipe")
    w = Writer(a.output)
    try:
        if a.shape == "synflood":
            gap_us = round(1000 * (1.0 if a.gap_ms is None else a.gap_ms))
            start = round(1e6 * (1_700_000_000 if a.start is None else a.start))
            gen_synflood(w, a.count, start, gap_us, server)
        else:
            gap_us = round(1000 * (50.0 if a.gap_ms is None else a.gap_ms))
            pkts, t0 = load_template(a.template)
            tpl = cut_template(pkts, None if a.full else round(a.media_seconds * 1e6), a.end)
            start = t0 if a.start is None else round(a.start * 1e6)
            gen_sessions(w, a.count, start, gap_us, server, tpl)
        w.close()
    except BrokenPipeError:
        os._exit(1)
    per = (w.bytes - len(PCAP_HEADER)) / a.count
    print(f"{a.output}: {w.n} packets, {w.bytes} bytes ({a.count} connections, "
          f"{per:.0f} bytes each)", file=sys.stderr)


if __name__ == "__main__":
    main()
