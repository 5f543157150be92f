#!/usr/bin/env python3
"""A small RTMPT (RTMP tunnelled over HTTP) gateway for the rtmpsniff test lab.

    python3 tests/lab/rtmpt_gateway.py [--listen 127.0.0.1:8080] [--rtmp 127.0.0.1:1935]
                                       [--close-each] [--chunked] [--log FILE]

Standard library only. Each RTMPT session gets its own TCP connection to the RTMP server
(nginx-rtmp in the lab); the gateway moves bytes, it never looks inside them.

  POST /fcs/ident2        404, empty body (what Flash Media Server answers when it is not
                          behind an edge; clients go on to /open/1)
  POST /open/1            200, body: the session id and "\\n" (no polling-interval byte:
                          ffmpeg trims trailing white space, librtmp drops the last byte)
  POST /send/ID/SEQ       the body goes to the RTMP socket; answer: one polling-interval
                          byte, then the RTMP server's bytes waiting for this session
  POST /idle/ID/SEQ       the same without writing anything (clients send a 1-byte body)
  POST /close/ID/SEQ      closes the RTMP socket; answer: the interval byte
  anything else           404

Responses are HTTP/1.1 with Content-Type application/x-fcs and keep-alive, unless
--close-each (every response says "Connection: close" and the TCP connection ends after
it, so a client has to open a new one per request) or --chunked (bodies sent with
Transfer-Encoding: chunked; librtmp cannot read that, ffmpeg can).

Requests are handled in SEQ order per session: a request whose SEQ is ahead of the next
expected one waits (up to 2 s) for the missing ones, as pipelining clients on several
connections can deliver them out of order.
"""

import argparse
import random
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONTENT_TYPE = "application/x-fcs"
MAX_RESPONSE = 256 * 1024  # server bytes returned in one response at most
IDLE_WAIT = 0.05  # an idle poll with nothing pending waits this long for server bytes
SEND_WAIT = 0.01  # a send waits this long for the server's answer


class Session:
    def __init__(self, sid, rtmp_addr):
        self.sid = sid
        self.sock = socket.create_connection(rtmp_addr)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.cond = threading.Condition()
        self.pending = bytearray()
        self.closed = False  # the RTMP server closed its side
        self.next_seq = None  # first SEQ seen sets it
        self.interval = 1
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            with self.cond:
                if not data:
                    self.closed = True
                    self.cond.notify_all()
                    return
                self.pending += data
                self.cond.notify_all()

    def wait_turn(self, seq):
        """Wait until the requests before `seq` were handled (bounded)."""
        deadline = time.monotonic() + 2.0
        with self.cond:
            if self.next_seq is None:
                self.next_seq = seq
            while seq > self.next_seq and time.monotonic() < deadline:
                self.cond.wait(0.05)

    def done_turn(self, seq):
        with self.cond:
            if self.next_seq is None or seq >= self.next_seq:
                self.next_seq = seq + 1
            self.cond.notify_all()

    def take(self, wait):
        """Server bytes pending, after waiting up to `wait` s for some."""
        deadline = time.monotonic() + wait
        with self.cond:
            while not self.pending and not self.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            out = bytes(self.pending[:MAX_RESPONSE])
            del self.pending[: len(out)]
            # Like FMS: poll again at once while data flows, back off while idle.
            self.interval = 1 if out else min(self.interval + 1, 0x21)
            return self.interval, out

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class Gateway(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, rtmp_addr, close_each, chunked, log):
        super().__init__(addr, Handler)
        self.rtmp_addr = rtmp_addr
        self.close_each = close_each
        self.chunked = chunked
        self.logf = log
        self.sessions = {}
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "rtmpt-lab-gateway/1"
    sys_version = ""

    def log_message(self, fmt, *args):
        if self.server.logf:
            self.server.logf.write("%.3f %s:%d %s\n" % (time.time(), *self.client_address, fmt % args))
            self.server.logf.flush()

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _reply(self, code, body=b""):
        self.send_response(code)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Cache-Control", "no-cache")
        if self.server.chunked and code == 200:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(body)))
        if self.server.close_each:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Connection", "Keep-Alive")
        self.end_headers()
        if self.server.chunked and code == 200:
            # two chunks when there is something to split, to exercise the parser
            parts = [body[:1], body[1:]] if len(body) > 1 else [body]
            for p in parts:
                if p:
                    self.wfile.write(b"%x\r\n" % len(p) + p + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(body)

    def do_GET(self):
        self._reply(404)

    def do_POST(self):
        body = self._body()
        parts = self.path.strip("/").split("/")
        srv = self.server
        if self.path == "/fcs/ident2":
            return self._reply(404)
        if parts[:2] == ["open", "1"]:
            sid = "%010d" % random.SystemRandom().randrange(10**10)
            try:
                sess = Session(sid, srv.rtmp_addr)
            except OSError:
                return self._reply(503)
            with srv.lock:
                srv.sessions[sid] = sess
            self.log_message("open session %s", sid)
            return self._reply(200, sid.encode() + b"\n")
        if len(parts) != 3 or parts[0] not in ("send", "idle", "close") or not parts[2].isdigit():
            return self._reply(404)
        cmd, sid, seq = parts[0], parts[1], int(parts[2])
        with srv.lock:
            sess = srv.sessions.get(sid)
        if sess is None:
            return self._reply(404)
        sess.wait_turn(seq)
        try:
            if cmd == "close":
                with srv.lock:
                    srv.sessions.pop(sid, None)
                sess.close()
                return self._reply(200, b"\x00")
            if cmd == "send" and body:
                try:
                    sess.sock.sendall(body)
                except OSError:
                    pass
            interval, data = sess.take(SEND_WAIT if cmd == "send" else IDLE_WAIT)
            return self._reply(200, bytes([interval]) + data)
        finally:
            sess.done_turn(seq)


def hostport(s):
    h, _, p = s.rpartition(":")
    return h, int(p)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:8080", type=hostport)
    ap.add_argument("--rtmp", default="127.0.0.1:1935", type=hostport)
    ap.add_argument("--close-each", action="store_true")
    ap.add_argument("--chunked", action="store_true")
    ap.add_argument("--log")
    a = ap.parse_args()
    log = open(a.log, "a") if a.log else None
    gw = Gateway(a.listen, a.rtmp, a.close_each, a.chunked, log)
    print("rtmpt gateway listening on %s:%d -> rtmp %s:%d" % (*a.listen, *a.rtmp), flush=True)
    try:
        gw.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
