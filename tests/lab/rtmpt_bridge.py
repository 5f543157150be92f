#!/usr/bin/env python3
"""Client-side RTMPT bridge for the rtmpsniff lab: one new TCP connection per HTTP request.

    python3 tests/lab/rtmpt_bridge.py [--listen 127.0.0.1:1936] [--gateway 127.0.0.1:8080]

Neither ffmpeg nor librtmp can make a request-per-connection RTMPT session (both keep one
keep-alive connection; ffmpeg stops with "End of file" when the server says
"Connection: close"). This bridge makes one: a real RTMP client (ffmpeg, rtmpdump) connects
to it with plain rtmp://, and it carries that client's bytes to the RTMPT gateway as
/open/1, /send/ID/SEQ, /idle/ID/SEQ and /close/ID/SEQ, each POST on a TCP connection of its
own with "Connection: close" (SEQ counts from 0 after /open, as ffmpeg and librtmp do).
Standard library only.
"""

import argparse
import http.client
import select
import socket
import sys
import threading

HEADERS = {
    "Content-Type": "application/x-fcs",
    "User-Agent": "Shockwave Flash",
    "Cache-Control": "no-cache",
    "Connection": "close",
}


def post(gw, path, body):
    c = http.client.HTTPConnection(*gw, timeout=10)
    try:
        c.request("POST", path, body=body, headers=HEADERS)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def tunnel(client, gw):
    try:
        status, body = post(gw, "/open/1", b"\x00")
        if status != 200:
            return
        sid = body.decode("ascii", "replace").strip()
        seq = 0
        eof = False
        while not eof:
            r, _, _ = select.select([client], [], [], 0.05)
            data = b""
            if r:
                data = client.recv(65536)
                if not data:
                    eof = True
                    break
            if data:
                status, body = post(gw, "/send/%s/%d" % (sid, seq), data)
            else:
                status, body = post(gw, "/idle/%s/%d" % (sid, seq), b"\x00")
            seq += 1
            if status != 200:
                break
            if len(body) > 1:
                client.sendall(body[1:])
        post(gw, "/close/%s/%d" % (sid, seq), b"\x00")
    except OSError:
        pass
    finally:
        client.close()


def hostport(s):
    h, _, p = s.rpartition(":")
    return h, int(p)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:1936", type=hostport)
    ap.add_argument("--gateway", default="127.0.0.1:8080", type=hostport)
    a = ap.parse_args()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(a.listen)
    ls.listen(16)
    print("rtmpt bridge listening on %s:%d -> gateway %s:%d" % (*a.listen, *a.gateway), flush=True)
    try:
        while True:
            c, _ = ls.accept()
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=tunnel, args=(c, a.gateway), daemon=True).start()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
