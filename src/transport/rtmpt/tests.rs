use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::flow::{Dir, StreamEvent};

const C2S: Dir = Dir::ClientToServer;
const S2C: Dir = Dir::ServerToClient;

fn req(path: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/x-fcs\r\n\
         User-Agent: Shockwave Flash\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

fn resp(body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-fcs\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

fn resp_chunked(parts: &[&[u8]]) -> Vec<u8> {
    let mut v =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-fcs\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for p in parts {
        v.extend_from_slice(format!("{:x};ext=1\r\n", p.len()).as_bytes());
        v.extend_from_slice(p);
        v.extend_from_slice(b"\r\n");
    }
    v.extend_from_slice(b"0\r\nX-Trailer: y\r\n\r\n");
    v
}

/// Server bytes with the interval byte in front.
fn iv(b: &[u8]) -> Vec<u8> {
    let mut v = vec![1u8];
    v.extend_from_slice(b);
    v
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Feeds directions of one connection: offsets tracked per direction.
struct Conn {
    http: HttpConnection,
    off: [u64; 2],
    events: Vec<TunnelEvent>,
}

impl Conn {
    fn new() -> Self {
        Conn {
            http: HttpConnection::new(HttpLimits::default()),
            off: [0, 0],
            events: Vec::new(),
        }
    }
    fn send(&mut self, dir: Dir, bytes: &[u8], frame: u64) {
        let offset = self.off[dir.index()];
        self.off[dir.index()] += bytes.len() as u64;
        self.http.stream_event(
            dir,
            StreamEvent::Data { offset, bytes },
            frame,
            &mut self.events,
        );
    }
    fn gap(&mut self, dir: Dir, len: u64, frame: u64) {
        let offset = self.off[dir.index()];
        self.off[dir.index()] += len;
        self.http.stream_event(
            dir,
            StreamEvent::Gap { offset, len },
            frame,
            &mut self.events,
        );
    }
    fn take(&mut self) -> Vec<TunnelEvent> {
        std::mem::take(&mut self.events)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Data(u64, Vec<u8>),
    Gap(u64, u64),
}

#[derive(Default)]
struct Sink {
    streams: HashMap<(Vec<u8>, usize), Vec<Out>>,
    /// Every event in the order handed on, for replaying both directions together.
    order: Vec<(Vec<u8>, Dir, Out)>,
}

impl Sink {
    fn push(&mut self, id: &[u8], d: Dir, ev: StreamEvent<'_>) {
        let v = self.streams.entry((id.to_vec(), d.index())).or_default();
        let o = match ev {
            StreamEvent::Data { offset, bytes } => Out::Data(offset, bytes.to_vec()),
            StreamEvent::Gap { offset, len } => Out::Gap(offset, len),
        };
        v.push(o.clone());
        self.order.push((id.to_vec(), d, o));
    }
    fn events(&self, id: &[u8], d: Dir) -> Vec<Out> {
        self.streams
            .get(&(id.to_vec(), d.index()))
            .cloned()
            .unwrap_or_default()
    }
    /// The bytes of a stream, checking offsets are contiguous.
    fn bytes(&self, id: &[u8], d: Dir) -> Vec<u8> {
        let mut v = Vec::new();
        let mut at = 0;
        for e in self.events(id, d) {
            match e {
                Out::Data(o, b) => {
                    assert_eq!(o, at, "offsets contiguous");
                    at += b.len() as u64;
                    v.extend_from_slice(&b);
                }
                Out::Gap(o, l) => {
                    assert_eq!(o, at);
                    at += l;
                }
            }
        }
        v
    }
}

fn join(sessions: &mut TunnelSessions, sink: &mut Sink, conn: u64, evs: Vec<TunnelEvent>) {
    for e in evs {
        sessions.event(conn, e, &mut |id, d, ev| sink.push(id, d, ev));
    }
}

const SID: &[u8] = b"1234567890";

#[test]
fn a_session_across_two_connections() {
    let c0c1 = {
        let mut v = vec![3u8];
        v.extend(pattern(1536, 1));
        v
    };
    let s0s1s2 = {
        let mut v = vec![3u8];
        v.extend(pattern(3072, 2));
        v
    };
    let c2 = pattern(1536, 3);
    let connect = pattern(300, 4);
    let mut a = Conn::new();
    a.send(C2S, &req("/open/1", &[0]), 1);
    a.send(S2C, &resp(b"1234567890\n"), 2);
    a.send(C2S, &req("/send/1234567890/0", &c0c1), 3);
    a.send(S2C, &resp(&iv(&s0s1s2)), 4);
    let mut b = Conn::new();
    b.send(C2S, &req("/send/1234567890/1", &c2), 5);
    b.send(S2C, &resp(&iv(&[])), 6);
    b.send(C2S, &req("/idle/1234567890/2", &[0]), 7);
    b.send(S2C, &resp(&iv(&connect)), 8);
    b.send(C2S, &req("/close/1234567890/3", &[0]), 9);
    b.send(S2C, &resp(&iv(&[])), 10);
    let mut s = TunnelSessions::new(SessionLimits::default());
    let mut sink = Sink::default();
    join(&mut s, &mut sink, 7, a.take());
    join(&mut s, &mut sink, 8, b.take());
    let mut expect_c = c0c1.clone();
    expect_c.extend(&c2);
    assert_eq!(sink.bytes(SID, C2S), expect_c);
    let mut expect_s = s0s1s2.clone();
    expect_s.extend(&connect);
    assert_eq!(sink.bytes(SID, S2C), expect_s);
    // Closed in both directions: the session ended by itself.
    assert_eq!(s.sessions().count(), 0);
    let done = s.take_finished();
    assert_eq!(done.len(), 1);
    let info = &done[0];
    assert!(info.start_seen && info.closed);
    assert_eq!(info.id, SID);
    assert_eq!(
        info.connections.iter().map(|c| c.conn).collect::<Vec<_>>(),
        vec![7, 8]
    );
    assert_eq!(info.connections[0].first_frame, 2);
    assert_eq!(info.connections[1].last_frame, 10);
    assert_eq!(
        info.requests,
        KindCounts {
            open: 1,
            send: 2,
            idle: 1,
            close: 1,
            ..Default::default()
        }
    );
    assert_eq!(info.gap_count, 0);
    assert_eq!(info.bytes, [3073, 3373]);
    assert_eq!(s.buffered_bytes(), 0);
}

#[test]
fn pipelined_requests_pair_with_responses_in_order() {
    let mut c = Conn::new();
    let mut reqs = Vec::new();
    for seq in 0..3u8 {
        reqs.extend(req(&format!("/send/abc/{seq}"), &[b'a' + seq; 5]));
    }
    c.send(C2S, &reqs, 1);
    let mut resps = Vec::new();
    for seq in 0..3u8 {
        resps.extend(resp(&iv(&[b'x' + seq; 7])));
    }
    c.send(S2C, &resps, 2);
    let evs = c.take();
    let mut got = Vec::new();
    for e in &evs {
        if let TunnelEvent::Response(r) = e {
            let t = r.target.as_ref().unwrap();
            assert_eq!(t.session.as_deref(), Some(&b"abc"[..]));
            got.push((t.seq.unwrap(), r.body.clone(), r.interval, r.request_frame));
        }
    }
    assert_eq!(
        got,
        (0..3u8)
            .map(|s| (s as u64, vec![b'x' + s; 7], Some(1), Some(1)))
            .collect::<Vec<_>>()
    );
    let reqs: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            TunnelEvent::Request(r) => Some((r.target.seq, r.body.clone(), r.fcs_content_type)),
            _ => None,
        })
        .collect();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[2], (Some(2), vec![b'c'; 5], true));
    assert_eq!(c.http.pending_requests(), 0);
    assert_eq!(c.http.buffered_bytes(), 0);
}

#[test]
fn chunked_response_body() {
    let mut c = Conn::new();
    c.send(C2S, &req("/idle/abc/4", &[0]), 1);
    let body = iv(&pattern(100, 9));
    c.send(
        S2C,
        &resp_chunked(&[&body[..1], &body[1..60], &body[60..]]),
        2,
    );
    let evs = c.take();
    let r = evs
        .iter()
        .find_map(|e| match e {
            TunnelEvent::Response(r) => Some(r.clone()),
            _ => None,
        })
        .expect("a response");
    assert_eq!(r.body, pattern(100, 9));
    assert_eq!(r.interval, Some(1));
    assert_eq!(r.lost, None);
    assert_eq!(r.target.unwrap().seq, Some(4));
    assert_eq!(c.http.buffered_bytes(), 0);
}

#[test]
fn body_delimited_by_close() {
    let mut c = Conn::new();
    c.send(C2S, &req("/open/1", &[0]), 1);
    c.send(
        S2C,
        b"HTTP/1.0 200 OK\r\nContent-Type: application/x-fcs\r\nConnection: close\r\n\r\nabc\n",
        2,
    );
    assert!(
        c.take()
            .iter()
            .all(|e| !matches!(e, TunnelEvent::Response(_)))
    );
    c.http.finish(3, &mut c.events);
    let evs = c.take();
    let TunnelEvent::Response(r) = &evs[0] else {
        panic!("{evs:?}")
    };
    assert_eq!(
        r.target.as_ref().unwrap().session.as_deref(),
        Some(&b"abc"[..])
    );
    assert_eq!(r.interval, None);
    assert_eq!(r.last_frame, 3);
}

/// A conversation exercising every body kind, for the feeding-style tests.
fn conversation() -> (Vec<u8>, Vec<u8>) {
    let mut c = Vec::new();
    let mut s = Vec::new();
    c.extend(req("/fcs/ident2", &[0]));
    s.extend(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    c.extend(req("/open/1", &[0]));
    s.extend(resp(b"77\n"));
    c.extend(b"\r\n"); // a stray blank line between requests
    c.extend(req("/send/77/0", &pattern(1537, 5)));
    s.extend(b"HTTP/1.1 100 Continue\r\n\r\n");
    s.extend(resp_chunked(&[&iv(&pattern(2000, 6)), &pattern(1073, 7)]));
    c.extend(req("/idle/77/1", &[0]));
    s.extend(b"HTTP/1.1 200 OK\nContent-Length: 4\n\n\x05abc"); // bare LF
    c.extend(
        b"POST /send/77/2 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n",
    );
    s.extend(resp(&iv(b"")));
    (c, s)
}

fn run_split(c: &[u8], s: &[u8], step: usize) -> Vec<TunnelEvent> {
    let mut conn = Conn::new();
    // Interleave so that each response follows its request's bytes.
    let (mut i, mut j) = (0, 0);
    while i < c.len() || j < s.len() {
        if i < c.len() {
            let n = step.min(c.len() - i);
            conn.send(C2S, &c[i..i + n], 1);
            i += n;
        }
        if i >= c.len() && j < s.len() {
            let n = step.min(s.len() - j);
            conn.send(S2C, &s[j..j + n], 1);
            j += n;
        }
    }
    conn.http.finish(1, &mut conn.events);
    assert_eq!(conn.http.buffered_bytes(), 0);
    conn.take()
}

#[test]
fn byte_at_a_time_equals_whole() {
    let (c, s) = conversation();
    let whole = run_split(&c, &s, usize::MAX);
    let kinds: Vec<_> = whole
        .iter()
        .map(|e| match e {
            TunnelEvent::Request(r) => format!("req {:?} {:?}", r.target.kind, r.target.seq),
            TunnelEvent::Response(r) => format!("resp {} {:?}", r.status, r.body.len()),
            TunnelEvent::Loss(l) => format!("loss {l:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "req Ident None",
            "req Open None",
            "req Send Some(0)",
            "req Idle Some(1)",
            "req Send Some(2)",
            "resp 404 0",
            "resp 200 3",
            "resp 200 3073",
            "resp 200 3",
            "resp 200 0",
        ]
    );
    for step in [1, 2, 3, 7, 100] {
        assert_eq!(run_split(&c, &s, step), whole, "step {step}");
    }
    // And through the joiner: the client stream is the two sends.
    let mut sessions = TunnelSessions::new(SessionLimits::default());
    let mut sink = Sink::default();
    join(&mut sessions, &mut sink, 1, whole);
    sessions.finish(&mut |id, d, ev| sink.push(id, d, ev));
    let mut cs = pattern(1537, 5);
    cs.extend(b"xyz");
    assert_eq!(sink.bytes(b"77", C2S), cs);
    let mut ss = pattern(2000, 6);
    ss.extend(pattern(1073, 7));
    ss.extend(b"abc");
    assert_eq!(sink.bytes(b"77", S2C), ss);
    assert_eq!(sessions.unplaced_requests.ident, 1);
}

#[test]
fn missing_seq_becomes_a_gap_and_the_rest_continues() {
    let limits = SessionLimits {
        window_requests: 2,
        ..Default::default()
    };
    let mut s = TunnelSessions::new(limits);
    let mut sink = Sink::default();
    let mut c = Conn::new();
    c.send(C2S, &req("/open/1", &[0]), 1);
    c.send(S2C, &resp(b"abc\n"), 1);
    for seq in [0u64, 1, 3, 4, 5] {
        c.send(C2S, &req(&format!("/send/abc/{seq}"), &[seq as u8; 3]), 2);
        c.send(S2C, &resp(&iv(&[seq as u8 + 100; 2])), 2);
    }
    join(&mut s, &mut sink, 1, c.take());
    // seq 2 was waited for until three later parts were held, then declared lost.
    assert_eq!(
        sink.events(b"abc", C2S),
        vec![
            Out::Data(0, vec![0; 3]),
            Out::Data(3, vec![1; 3]),
            Out::Gap(6, 0),
            Out::Data(6, vec![3; 3]),
            Out::Data(9, vec![4; 3]),
            Out::Data(12, vec![5; 3]),
        ]
    );
    assert_eq!(
        sink.bytes(b"abc", S2C),
        [100, 100, 101, 101, 103, 103, 104, 104, 105, 105]
    );
    let info = s.sessions().next().unwrap().clone();
    assert_eq!(info.gap_count, 2);
    assert_eq!(info.gaps[0].seqs, (2, 3));
    assert!(!info.gaps[0].exact);
    // A part for seq 2 coming now is too late.
    let mut d = Conn::new();
    d.send(C2S, &req("/send/abc/2", b"late"), 3);
    join(&mut s, &mut sink, 2, d.take());
    assert_eq!(s.sessions().next().unwrap().late_parts, 1);
}

#[test]
fn a_response_lost_whole_is_a_gap_at_its_seq_at_once() {
    // rtmpt-loss: the head of the answer to /idle/abc/1 is lost; its body is skipped in the
    // resync. The SEQ is known lost then: the server stream goes on at once (before the
    // session ends), so its bytes keep their place before the client's later requests.
    let mut s = TunnelSessions::new(SessionLimits::default());
    let mut sink = Sink::default();
    let mut c = Conn::new();
    c.send(C2S, &req("/open/1", &[0]), 1);
    c.send(S2C, &resp(b"abc\n"), 1);
    c.send(C2S, &req("/idle/abc/0", &[0]), 2);
    c.send(S2C, &resp(&iv(b"r0")), 2);
    c.send(C2S, &req("/idle/abc/1", &[0]), 3);
    let r1 = resp(&iv(b"lost-with-its-head"));
    c.gap(S2C, 40, 4);
    c.send(S2C, &r1[40..], 5);
    c.send(C2S, &req("/idle/abc/2", &[0]), 6);
    c.send(S2C, &resp(&iv(b"r2")), 6);
    let evs = c.take();
    let lost: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            TunnelEvent::Response(r) if r.status == 0 => {
                Some((r.target.as_ref().and_then(|t| t.seq), r.lost, r.body.len()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        lost,
        [(
            Some(1),
            Some(LostBody {
                at_least: 0,
                exact: false
            }),
            0
        )]
    );
    join(&mut s, &mut sink, 1, evs);
    assert_eq!(
        sink.events(b"abc", S2C),
        vec![
            Out::Data(0, b"r0".to_vec()),
            Out::Gap(2, 0),
            Out::Data(2, b"r2".to_vec())
        ]
    );
    let info = s.sessions().next().unwrap().clone();
    assert_eq!(info.gaps[0].seqs, (1, 2));
}

#[test]
fn missing_seq_at_the_end_is_declared_at_finish() {
    let mut s = TunnelSessions::new(SessionLimits::default());
    let mut sink = Sink::default();
    let mut c = Conn::new();
    c.send(C2S, &req("/open/1", &[0]), 1);
    c.send(S2C, &resp(b"abc\n"), 1);
    c.send(C2S, &req("/send/abc/1", b"one"), 2);
    join(&mut s, &mut sink, 1, c.take());
    assert!(sink.events(b"abc", C2S).is_empty(), "waits for seq 0");
    assert_eq!(s.buffered_bytes(), 3 + 3 + std::mem::size_of::<ConnUse>());
    s.finish(&mut |id, d, ev| sink.push(id, d, ev));
    assert_eq!(
        sink.events(b"abc", C2S),
        vec![Out::Gap(0, 0), Out::Data(0, b"one".to_vec())]
    );
    assert_eq!(s.take_finished().len(), 1);
}

#[test]
fn session_seen_from_its_middle_starts_with_an_empty_gap() {
    let mut s = TunnelSessions::new(SessionLimits::default());
    let mut sink = Sink::default();
    let mut c = Conn::new();
    for seq in 40..43u64 {
        c.send(C2S, &req(&format!("/send/mid/{seq}"), &[seq as u8]), 1);
        c.send(S2C, &resp(&iv(&[seq as u8])), 1);
    }
    join(&mut s, &mut sink, 1, c.take());
    s.finish(&mut |id, d, ev| sink.push(id, d, ev));
    for d in [C2S, S2C] {
        assert_eq!(
            sink.events(b"mid", d),
            vec![
                Out::Gap(0, 0),
                Out::Data(0, vec![40]),
                Out::Data(1, vec![41]),
                Out::Data(2, vec![42])
            ]
        );
    }
    let info = &s.take_finished()[0];
    assert!(!info.start_seen);
    assert_eq!(info.gaps[0].seqs, (40, 40));
}

#[test]
fn gap_inside_a_direction_resyncs_at_the_next_request() {
    let mut c = Conn::new();
    let r0 = req("/send/abc/0", b"zero");
    let r1 = req("/send/abc/1", b"one");
    let r2 = req("/send/abc/2", b"two");
    c.send(C2S, &r0, 1);
    // r1's head is partly lost: 10 bytes arrive, then a gap, then its tail and r2.
    c.send(C2S, &r1[..10], 2);
    c.gap(C2S, 20, 3);
    c.send(C2S, &r1[30..], 4);
    c.send(C2S, &r2, 5);
    for b in [&b"r0"[..], b"r1", b"r2"] {
        c.send(S2C, &resp(&iv(b)), 6);
    }
    let evs = c.take();
    let loss: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            TunnelEvent::Loss(l) => Some((l.reason, l.message_touched)),
            _ => None,
        })
        .collect();
    assert_eq!(
        loss,
        [(LossReason::Gap, true), (LossReason::Malformed, false)]
    );
    let reqs: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            TunnelEvent::Request(r) => Some((r.target.seq, r.body.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        reqs,
        [(Some(0), b"zero".to_vec()), (Some(2), b"two".to_vec())]
    );
    // The lost request kept its place: r1's answer pairs with nothing, r2's with seq 2.
    let resps: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            TunnelEvent::Response(r) => {
                Some((r.target.as_ref().and_then(|t| t.seq), r.body.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        resps,
        [
            (Some(0), b"r0".to_vec()),
            (None, b"\x01r1".to_vec()),
            (Some(2), b"r2".to_vec())
        ]
    );
    let mut s = TunnelSessions::new(SessionLimits::default());
    let mut sink = Sink::default();
    join(&mut s, &mut sink, 1, evs);
    s.finish(&mut |id, d, ev| sink.push(id, d, ev));
    assert_eq!(
        sink.events(b"abc", C2S),
        vec![
            Out::Gap(0, 0),
            Out::Data(0, b"zero".to_vec()),
            Out::Gap(4, 0),
            Out::Data(4, b"two".to_vec())
        ]
    );
    assert_eq!(s.unmatched_responses, 1);
}

#[test]
fn gap_inside_a_body_of_known_length_keeps_the_framing() {
    let mut c = Conn::new();
    c.send(C2S, &req("/send/abc/0", b"x"), 1);
    c.send(C2S, &req("/idle/abc/1", &[0]), 1);
    let body = iv(&pattern(50, 1));
    let r = resp(&body);
    let head = r.len() - body.len();
    c.send(S2C, &r[..head + 11], 2);
    c.gap(S2C, 20, 3);
    c.send(S2C, &r[head + 31..], 4);
    c.send(S2C, &resp(&iv(b"next")), 5);
    let evs = c.take();
    let resps: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            TunnelEvent::Response(r) => {
                Some((r.target.as_ref().unwrap().seq, r.body.clone(), r.lost))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        resps,
        [
            (
                Some(0),
                pattern(10, 1),
                Some(LostBody {
                    at_least: 40,
                    exact: true
                })
            ),
            (Some(1), b"next".to_vec(), None)
        ]
    );
    let mut s = TunnelSessions::new(SessionLimits::default());
    let mut sink = Sink::default();
    join(&mut s, &mut sink, 1, evs);
    s.finish(&mut |id, d, ev| sink.push(id, d, ev));
    assert_eq!(
        sink.events(b"abc", S2C),
        vec![
            Out::Gap(0, 0),
            Out::Data(0, pattern(10, 1)),
            Out::Gap(10, 40),
            Out::Data(50, b"next".to_vec())
        ]
    );
}

#[test]
fn every_truncated_prefix_is_safe() {
    let (c, s) = conversation();
    for n in 0..=c.len() {
        let mut conn = Conn::new();
        conn.send(C2S, &c[..n], 1);
        conn.send(S2C, &s[..n.min(s.len())], 1);
        conn.http.finish(2, &mut conn.events);
        assert_eq!(conn.http.buffered_bytes(), 0);
        let mut sessions = TunnelSessions::new(SessionLimits::default());
        let mut sink = Sink::default();
        join(&mut sessions, &mut sink, 1, conn.take());
        sessions.finish(&mut |id, d, ev| sink.push(id, d, ev));
        sessions.take_finished();
        assert_eq!(sessions.buffered_bytes(), 0);
    }
}

#[test]
fn limits_bound_what_is_held() {
    let limits = HttpLimits {
        max_head: 256,
        max_body: 10,
        max_pending: 2,
    };
    let mut h = HttpConnection::new(limits);
    let mut out = Vec::new();
    let long = vec![b'a'; 1000];
    h.stream_event(
        C2S,
        StreamEvent::Data {
            offset: 0,
            bytes: &long,
        },
        1,
        &mut out,
    );
    assert!(h.buffered_bytes() <= 256);
    let r = req("/send/abc/0", &pattern(100, 0));
    h.stream_event(
        C2S,
        StreamEvent::Data {
            offset: 1000,
            bytes: b"\n",
        },
        2,
        &mut out,
    );
    h.stream_event(
        C2S,
        StreamEvent::Data {
            offset: 1001,
            bytes: &r,
        },
        2,
        &mut out,
    );
    let got = out.iter().find_map(|e| match e {
        TunnelEvent::Request(r) => Some(r.clone()),
        _ => None,
    });
    let got = got.unwrap_or_else(|| panic!("request after the long line: {out:?}"));
    assert_eq!(got.body, pattern(10, 0));
    assert_eq!(
        got.lost,
        Some(LostBody {
            at_least: 90,
            exact: true
        })
    );
    assert!(out.iter().any(|e| matches!(
        e,
        TunnelEvent::Loss(Loss {
            reason: LossReason::HeadTooLong,
            ..
        })
    )));
    for k in 0..5 {
        let r = req(&format!("/idle/abc/{k}"), &[0]);
        let off = 1001 + r.len() as u64 * (k + 1);
        h.stream_event(
            C2S,
            StreamEvent::Data {
                offset: off,
                bytes: &r,
            },
            3,
            &mut out,
        );
    }
    assert!(h.pending_requests() <= 2);
}

#[test]
fn the_least_recently_active_session_ends_at_the_session_limit() {
    let limits = SessionLimits {
        max_sessions: 2,
        ..Default::default()
    };
    let mut s = TunnelSessions::new(limits);
    let mut sink = Sink::default();
    let mut c = Conn::new();
    for id in ["a", "b", "a", "c"] {
        // seq 1 only: held, waiting for seq 0
        c.send(C2S, &req(&format!("/send/{id}/1"), id.as_bytes()), 1);
    }
    join(&mut s, &mut sink, 1, c.take());
    let done = s.take_finished();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].id, b"b");
    // What it held was handed on when it ended.
    assert_eq!(sink.bytes(b"b", C2S), b"b");
    let mut live: Vec<_> = s.sessions().map(|i| i.id.clone()).collect();
    live.sort();
    assert_eq!(live, [b"a".to_vec(), b"c".to_vec()]);
    assert_eq!(
        s.sessions().find(|i| i.id == b"a").unwrap().duplicate_parts,
        1
    );
}

#[test]
fn target_parsing() {
    let t = Target::parse(b"POST", b"/send/0871404251/17");
    assert_eq!(t.kind, RequestKind::Send);
    assert_eq!(t.session.as_deref(), Some(&b"0871404251"[..]));
    assert_eq!(t.seq, Some(17));
    let t = Target::parse(b"POST", b"http://host:80/idle/x/3?y=1");
    assert_eq!((t.kind, t.seq), (RequestKind::Idle, Some(3)));
    assert_eq!(Target::parse(b"POST", b"/open/1").kind, RequestKind::Open);
    assert_eq!(
        Target::parse(b"POST", b"/fcs/ident2").kind,
        RequestKind::Ident
    );
    let t = Target::parse(b"POST", b"/close/x");
    assert_eq!((t.kind, t.seq), (RequestKind::Close, None));
    for (m, p) in [
        (&b"GET"[..], &b"/send/x/1"[..]),
        (b"POST", b"/send//1"),
        (b"POST", b"/send/x/1/2"),
        (b"POST", b"/index.html"),
        (b"POST", b""),
    ] {
        assert_eq!(Target::parse(m, p).kind, RequestKind::Other, "{p:?}");
    }
    let t = Target::parse(b"POST", b"/send/x/99999999999999999999999");
    assert_eq!((t.kind, t.seq), (RequestKind::Send, None));
}

#[test]
fn recognising_rtmpt() {
    for yes in [
        &b"POST /open/1 HTTP/1.1\r\n"[..],
        b"POST /send/123/4 HTTP/1.1\r\n",
        b"POST /idle/",
        b"POST /fcs/ident2 HTTP/1.1\r\n",
        b"POST /x HTTP/1.1\r\nHost: a\r\ncontent-type:  Application/X-FCS\r\n\r\n",
    ] {
        assert!(looks_like_rtmpt(yes), "{yes:?}");
    }
    for no in [
        &b""[..],
        b"POST /",
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST /x HTTP/1.1\r\nContent-Type: text/plain\r\n\r\nContent-Type: application/x-fcs",
        b"\x03\x00\x00\x00\x00",
        b"Content-Type: application/x-fcs",
    ] {
        assert!(!looks_like_rtmpt(no), "{no:?}");
    }
}

fn arb_events() -> impl Strategy<Value = Vec<(bool, bool, Vec<u8>)>> {
    // (server side?, gap?, bytes): bytes drawn from HTTP-ish pieces and noise.
    let piece = prop_oneof![
        Just(b"POST /send/a/1 HTTP/1.1\r\n".to_vec()),
        Just(b"POST /open/1 HTTP/1.1\r\n".to_vec()),
        Just(b"HTTP/1.1 200 OK\r\n".to_vec()),
        Just(b"Content-Length: 3\r\n".to_vec()),
        Just(b"Content-Length: 99999999999999999999\r\n".to_vec()),
        Just(b"Content-Length: 18446744073709551615\r\n".to_vec()),
        Just(b"POST /send/a/9999999999999999999 HTTP/1.1\r\n".to_vec()),
        Just(
            b"POST /open/1 HTTP/1.1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\na\n"
                .to_vec()
        ),
        Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"5\r\nabcde\r\n0\r\n\r\n".to_vec()),
        Just(b"ffffffffffffffffff\r\n".to_vec()),
        prop::collection::vec(any::<u8>(), 0..40),
    ];
    prop::collection::vec((any::<bool>(), prop::bool::weighted(0.1), piece), 0..40)
}

proptest! {
    #[test]
    fn garbage_never_panics_and_stays_bounded(evs in arb_events()) {
        let limits = HttpLimits { max_head: 256, max_body: 64, max_pending: 4 };
        let mut h = HttpConnection::new(limits);
        let mut out = Vec::new();
        let mut off = [0u64; 2];
        for (server, gap, bytes) in &evs {
            let d = if *server { S2C } else { C2S };
            let i = d.index();
            if *gap {
                h.stream_event(d, StreamEvent::Gap { offset: off[i], len: bytes.len() as u64 + 1 }, 1, &mut out);
                off[i] += bytes.len() as u64 + 1;
            } else {
                h.stream_event(d, StreamEvent::Data { offset: off[i], bytes }, 1, &mut out);
                off[i] += bytes.len() as u64;
            }
            prop_assert!(h.buffered_bytes() <= 2 * (256 + 64 + 1024) + 4 * MAX_SESSION_ID);
        }
        h.finish(2, &mut out);
        prop_assert_eq!(h.buffered_bytes(), 0);
        let mut s = TunnelSessions::new(SessionLimits { window_requests: 3, max_sessions: 2, ..Default::default() });
        for e in out {
            s.event(1, e, &mut |_, _, _| {});
        }
        s.finish(&mut |_, _, _| {});
        prop_assert_eq!(s.sessions().count(), 0);
    }

    #[test]
    fn any_split_of_the_conversation_gives_the_same_events(cuts in prop::collection::vec(1usize..300, 1..20)) {
        let (c, s) = conversation();
        let whole = run_split(&c, &s, usize::MAX);
        let mut conn = Conn::new();
        let mut i = 0;
        for &n in cuts.iter().cycle() {
            if i >= c.len() { break; }
            let n = n.min(c.len() - i);
            conn.send(C2S, &c[i..i + n], 1);
            i += n;
        }
        let mut j = 0;
        for &n in cuts.iter().cycle() {
            if j >= s.len() { break; }
            let n = n.min(s.len() - j);
            conn.send(S2C, &s[j..j + n], 1);
            j += n;
        }
        conn.http.finish(1, &mut conn.events);
        prop_assert_eq!(conn.take(), whole);
    }
}

/// The real captures of samples/rtmpt-*: TCP reassembly, then HTTP, then the joiner.
mod captures {
    use super::*;
    use crate::capture::FileSet;
    use crate::decode::decode;
    use crate::flow::{ConnKey, Reassembler};

    struct Tcp {
        id: u64,
        reasm: [Reassembler; 2],
        http: HttpConnection,
    }

    pub(super) struct Joined {
        pub sink: Sink,
        pub infos: Vec<SessionInfo>,
        pub sessions: TunnelSessions,
    }

    pub(super) fn join_capture(path: &str) -> Joined {
        let root = env!("CARGO_MANIFEST_DIR");
        let path = format!("{root}/{path}");
        let mut files = FileSet::open(&[path]).expect("capture opens");
        let mut conns: HashMap<ConnKey, Tcp> = HashMap::new();
        let mut sessions = TunnelSessions::new(SessionLimits::default());
        let mut sink = Sink::default();
        let mut evs = Vec::new();
        let mut last = 0;
        while let Some(f) = files.next_frame() {
            let frame = f.number;
            last = frame;
            let Ok(seg) = decode(f.linktype, f.data) else {
                continue;
            };
            let dir = if seg.dst.port() == 8080 { C2S } else { S2C };
            let key = ConnKey::new(seg.src, seg.dst);
            let n = conns.len() as u64;
            let t = conns.entry(key).or_insert_with(|| Tcp {
                id: n,
                reasm: [
                    Reassembler::new(8 << 20, 8192),
                    Reassembler::new(8 << 20, 8192),
                ],
                http: HttpConnection::new(HttpLimits::default()),
            });
            let Tcp { reasm, http, id } = t;
            if seg.flags.syn {
                reasm[dir.index()].syn(seg.seq);
            }
            let (a, b) = reasm.split_at_mut(1);
            let (mine, theirs) = if dir == C2S {
                (&mut a[0], &mut b[0])
            } else {
                (&mut b[0], &mut a[0])
            };
            mine.segment(seg.seq, seg.payload, seg.flags.fin, frame, &mut |ev| {
                http.stream_event(dir, ev, frame, &mut evs)
            });
            if seg.flags.ack {
                theirs.peer_ack(seg.ack, frame, &mut |ev| {
                    http.stream_event(dir.other(), ev, frame, &mut evs)
                });
            }
            join(&mut sessions, &mut sink, *id, std::mem::take(&mut evs));
        }
        let mut all: Vec<_> = conns.into_values().collect();
        all.sort_by_key(|t| t.id);
        for t in &mut all {
            let Tcp { reasm, http, id } = t;
            for d in [C2S, S2C] {
                reasm[d.index()].flush(last, &mut |ev| http.stream_event(d, ev, last, &mut evs));
            }
            http.finish(last, &mut evs);
            join(&mut sessions, &mut sink, *id, std::mem::take(&mut evs));
        }
        sessions.finish(&mut |id, d, ev| sink.push(id, d, ev));
        let mut infos = sessions.take_finished();
        infos.sort_by_key(|i| i.first_frame);
        Joined {
            sink,
            infos,
            sessions,
        }
    }

    fn manifest_sessions(sample: &str) -> Vec<String> {
        let root = env!("CARGO_MANIFEST_DIR");
        let m: serde_json::Value = serde_json::from_slice(
            &std::fs::read(format!("{root}/samples/{sample}/manifest.json")).unwrap(),
        )
        .unwrap();
        m["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["rtmpt_session"].as_str().unwrap().to_string())
            .collect()
    }

    /// Each session's client stream begins with C0+C1 (0x03 + 1536 bytes) in one send, and
    /// its server stream with S0+S1+S2 (0x03 + 3072 bytes).
    fn check_handshakes(j: &Joined, sample: &str) {
        let mut want = manifest_sessions(sample);
        want.sort();
        let mut got: Vec<String> = j
            .infos
            .iter()
            .map(|i| String::from_utf8(i.id.clone()).unwrap())
            .collect();
        got.sort();
        assert_eq!(got, want, "{sample}: sessions");
        for info in &j.infos {
            assert!(info.start_seen, "{sample}");
            assert_eq!(info.gap_count, 0, "{sample}: {:?}", info.gaps);
            let c = j.sink.events(&info.id, C2S);
            let Out::Data(0, first) = &c[0] else {
                panic!("{sample}: {c:?}")
            };
            assert_eq!(first.len(), 1537, "{sample}: C0+C1 in the first send");
            assert_eq!(first[0], 3);
            let s = j.sink.bytes(&info.id, S2C);
            assert!(s.len() > 3073, "{sample}");
            assert_eq!(s[0], 3);
            let cb = j.sink.bytes(&info.id, C2S);
            assert!(cb.len() > 3073 + 100, "{sample}: C2 and commands follow");
            assert!(
                info.requests.open == 1 && info.requests.send > 2,
                "{sample}"
            );
        }
    }

    #[test]
    fn publish_and_two_players() {
        let j = join_capture("samples/rtmpt-publish-play/capture.pcap");
        check_handshakes(&j, "rtmpt-publish-play");
        assert!(j.infos.iter().all(|i| i.connections.len() == 1 && i.closed));
        // rtmpdump closes its connection while the answer to its last pipelined poll is on
        // the way: that response is cut after its head (only its interval byte missing, so
        // no gap in the stream).
        assert!(j.sessions.losses <= 1, "{}", j.sessions.losses);
    }

    #[test]
    fn a_connection_per_request() {
        let j = join_capture("samples/rtmpt-per-request/capture.pcap");
        check_handshakes(&j, "rtmpt-per-request");
        for i in &j.infos {
            let r = &i.requests;
            // every request of the session on a connection of its own
            assert_eq!(
                i.connections.len() as u64,
                r.open + r.send + r.idle + r.close,
                "{i:?}"
            );
        }
    }

    #[test]
    fn chunked_responses() {
        let j = join_capture("samples/rtmpt-chunked/capture.pcap");
        check_handshakes(&j, "rtmpt-chunked");
    }

    #[test]
    fn midstream_and_loss_are_joined_with_their_gaps() {
        let j = join_capture("samples/rtmpt-midstream/capture.pcap");
        assert!(!j.infos.is_empty());
        for i in &j.infos {
            assert!(!i.start_seen);
            assert_eq!(j.sink.events(&i.id, C2S).first(), Some(&Out::Gap(0, 0)));
        }
        let j = join_capture("samples/rtmpt-loss/capture.pcap");
        assert_eq!(j.infos.len(), 3);
        assert!(j.sessions.losses > 0);
        assert!(j.infos.iter().any(|i| i.gap_count > 0));
        // What the joined streams make through RTMP, against the truth: tests/it/hard.rs.
    }
}
