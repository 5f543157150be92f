//! Transport: from a TCP connection's two byte streams to the two byte streams RTMP reads.
//!
//! Between flow (reassembly) and rtmp. Bytes and gaps come in per TCP direction, in stream
//! order, as [`StreamEvent`]s; what goes up is, per RTMP direction, bytes in order with
//! offsets counted in that RTMP byte stream, and gaps where bytes of it were lost. A transport
//! never hands up bytes it could not vouch for: a gap goes up as a gap.
//!
//! Kinds, decided by a connection's first bytes: [`Transport::Plain`], RTMP straight over
//! TCP (the TCP byte streams are the RTMP byte streams); [`Transport::Http`], RTMPT, whose
//! HTTP messages go up as tunnel events for the pipeline to join with the other TCP
//! connections of their session ([`rtmpt`]); [`Transport::Tls`], RTMPS, decrypted with the
//! key log ([`tls`]), whose plaintext is read as a connection of its own would be (plain RTMP,
//! or RTMPT over TLS).

pub mod rtmpt;
pub mod tls;

use crate::flow::{Dir, StreamEvent};
use tls::{KeyLog, TlsConnection, TlsLimits};

/// What a transport hands up: bytes or a gap of one RTMP direction (plain), with the capture
/// frame they came with, or a piece of an HTTP tunnel, which the pipeline joins with the
/// other TCP connections of its session.
#[derive(Debug)]
pub enum Up<'a> {
    Rtmp(Dir, StreamEvent<'a>, u64),
    Tunnel(rtmpt::TunnelEvent),
}

/// Bytes held, over both directions, while the kind of a connection is not known; past it
/// the connection is plain RTMP.
pub const SNIFF_BYTES: usize = 64 << 10;
/// Events held while the kind is not known (each new one looks at all the bytes held: this
/// bounds that work however small the segments); past it the connection is plain RTMP.
pub const SNIFF_EVENTS: usize = 64;
/// What a client's bytes must begin with to be an HTTP request RTMPT uses.
const POST: &[u8] = b"POST ";
/// Bytes that tell a TLS ClientHello ([`tls::looks_like_tls`]).
const CLIENT_HELLO: usize = 6;

/// How RTMP is carried on one TCP connection: decided by the first bytes seen.
#[derive(Debug, Default)]
pub enum Transport {
    /// Nothing seen yet, or bytes that do not tell yet (held, see [`Sniff`]).
    #[default]
    Undecided,
    Sniffing(Box<Sniff>),
    /// RTMP directly over TCP: every event goes up as it is.
    Plain,
    /// RTMPT: HTTP requests and responses whose bodies carry RTMP.
    Http(Box<HttpTunnel>),
    /// RTMPS: TLS records, decrypted with the key log when it has this connection's keys;
    /// the plaintext is read as a connection of its own would be (plain RTMP, or RTMPT over
    /// TLS).
    Tls(Box<TlsTunnel>),
}

/// A TLS connection and what its plaintext carries.
#[derive(Debug)]
pub struct TlsTunnel {
    tls: TlsConnection,
    inner: Transport,
}

/// What the first bytes of a connection say it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Plain,
    Http,
    Tls,
}

/// What a transport needs besides the bytes: the TLS keys known so far, and how much
/// ciphertext a TLS connection may hold while its keys are missing (0 when every key is known
/// before the first packet, as when reading a file).
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    pub keys: &'a KeyLog,
    pub tls_backlog: usize,
    /// The start of the connection was not captured.
    pub mid_stream: bool,
    /// The bytes are a TLS connection's plaintext (TLS is not looked for again in them).
    pub inside_tls: bool,
}

impl Context<'_> {
    /// The context of a TLS connection's plaintext: its start is the handshake's end.
    fn plaintext(self) -> Self {
        Context {
            mid_stream: false,
            inside_tls: true,
            ..self
        }
    }
}

/// Events of a connection whose kind is not known yet, in order, with their frames: client
/// bytes that could still begin `POST `, or (for a connection whose start was not captured)
/// a server's bytes before the client's. At most [`SNIFF_BYTES`].
#[derive(Debug, Default)]
pub struct Sniff {
    held: Vec<HeldEvent>,
    bytes: usize,
}

/// A [`StreamEvent`] kept while sniffing, with its direction and frame.
#[derive(Debug)]
struct HeldEvent {
    dir: Dir,
    offset: u64,
    /// The bytes, or for a gap its length.
    what: Result<Vec<u8>, u64>,
    frame: u64,
}

/// One TCP connection of an RTMPT session: its HTTP parser and what it made, handed up.
#[derive(Debug)]
pub struct HttpTunnel {
    http: rtmpt::HttpConnection,
    made: Vec<rtmpt::TunnelEvent>,
}

impl Sniff {
    /// The bytes held of direction `dir`, joined, then `more`.
    fn joined(&self, dir: Dir, more: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for h in &self.held {
            if let (true, Ok(b)) = (h.dir == dir, &h.what) {
                v.extend_from_slice(b);
            }
        }
        v.extend_from_slice(more);
        v
    }

    /// The kind `bytes` (all of `dir` so far) show, `None` while they do not tell. RTMPT
    /// is a client whose first bytes are an RTMPT request; where the start of the connection
    /// was not captured, also bytes that hold an RTMPT request or an `application/x-fcs`
    /// head, in either direction (a server's bytes that do not are held until the client's
    /// tell).
    fn decide(dir: Dir, bytes: &[u8], cx: Context<'_>) -> Option<Kind> {
        let find = |needle: &[u8]| memchr::memmem::find(bytes, needle).is_some();
        let markers = || find(b"POST /send/") || find(b"POST /idle/") || find(b"application/x-fcs");
        let client = dir == Dir::ClientToServer;
        match dir {
            _ if client && rtmpt::looks_like_rtmpt(bytes) => Some(Kind::Http),
            _ if client && !cx.mid_stream && !cx.inside_tls && tls::looks_like_tls(bytes) => {
                Some(Kind::Tls)
            }
            // The start of a request, or of a ClientHello, not whole yet.
            _ if client && bytes.len() < POST.len() && POST.starts_with(bytes) => None,
            _ if client && !cx.mid_stream && bytes.len() < CLIENT_HELLO && bytes[0] == 0x16 => None,
            _ if cx.mid_stream && markers() => Some(Kind::Http),
            Dir::ServerToClient if cx.mid_stream => None,
            _ => Some(Kind::Plain),
        }
    }
}

impl Transport {
    /// One event of TCP direction `dir` (bytes in order, or a gap); what it carries goes to
    /// `up`.
    #[inline]
    pub fn stream_event<F>(
        &mut self,
        dir: Dir,
        ev: StreamEvent<'_>,
        frame: u64,
        cx: Context<'_>,
        up: &mut F,
    ) where
        F: FnMut(Up<'_>),
    {
        match self {
            Transport::Plain => up(Up::Rtmp(dir, ev, frame)),
            Transport::Http(t) => {
                t.http.stream_event(dir, ev, frame, &mut t.made);
                for te in t.made.drain(..) {
                    up(Up::Tunnel(te));
                }
            }
            Transport::Tls(t) => {
                let TlsTunnel { tls, inner } = &mut **t;
                let plain = cx.plaintext();
                tls.stream_event(dir, ev, frame, cx.keys, &mut |d, ev| {
                    inner.stream_event(d, ev, frame, plain, up)
                })
            }
            Transport::Undecided | Transport::Sniffing(_) => self.sniff(dir, ev, frame, cx, up),
        }
    }

    /// An event of a connection whose kind is not known yet: held, or it decides the kind
    /// and everything held goes up first, with its own frames. A gap with nothing held makes
    /// the connection plain RTMP.
    #[cold]
    fn sniff<F>(&mut self, dir: Dir, ev: StreamEvent<'_>, frame: u64, cx: Context<'_>, up: &mut F)
    where
        F: FnMut(Up<'_>),
    {
        let mut sniff = match std::mem::take(self) {
            Transport::Sniffing(s) => s,
            _ => Box::default(),
        };
        let decided = match ev {
            _ if sniff.held.len() >= SNIFF_EVENTS => Some(Kind::Plain),
            StreamEvent::Data { bytes, .. } if sniff.bytes + bytes.len() <= SNIFF_BYTES => {
                Sniff::decide(dir, &sniff.joined(dir, bytes), cx)
            }
            StreamEvent::Gap { .. } if !sniff.held.is_empty() => None,
            _ => Some(Kind::Plain),
        };
        let Some(kind) = decided else {
            let (offset, what) = match ev {
                StreamEvent::Data { offset, bytes } => (offset, Ok(bytes.to_vec())),
                StreamEvent::Gap { offset, len } => (offset, Err(len)),
            };
            sniff.bytes += what.as_ref().map_or(0, Vec::len);
            sniff.held.push(HeldEvent {
                dir,
                offset,
                what,
                frame,
            });
            *self = Transport::Sniffing(sniff);
            return;
        };
        *self = match kind {
            Kind::Plain => Transport::Plain,
            Kind::Http => Transport::Http(Box::new(HttpTunnel {
                http: rtmpt::HttpConnection::new(rtmpt::HttpLimits::default()),
                made: Vec::new(),
            })),
            Kind::Tls => Transport::Tls(Box::new(TlsTunnel {
                tls: TlsConnection::with_limits(TlsLimits {
                    backlog_bytes: cx.tls_backlog,
                    ..TlsLimits::default()
                }),
                inner: Transport::Undecided,
            })),
        };
        self.replay(*sniff, cx, up);
        self.stream_event(dir, ev, frame, cx, up);
    }

    /// What was held while sniffing, up through the kind now decided.
    fn replay<F>(&mut self, sniff: Sniff, cx: Context<'_>, up: &mut F)
    where
        F: FnMut(Up<'_>),
    {
        for h in sniff.held {
            let ev = match &h.what {
                Ok(bytes) => StreamEvent::Data {
                    offset: h.offset,
                    bytes,
                },
                Err(len) => StreamEvent::Gap {
                    offset: h.offset,
                    len: *len,
                },
            };
            self.stream_event(h.dir, ev, h.frame, cx, up);
        }
    }

    /// The end of the connection: what is held goes up (as plain RTMP), and a tunnel's or a
    /// TLS connection's last message.
    pub fn finish<F>(&mut self, frame: u64, cx: Context<'_>, up: &mut F)
    where
        F: FnMut(Up<'_>),
    {
        match self {
            Transport::Sniffing(_) => {
                let Transport::Sniffing(sniff) = std::mem::replace(self, Transport::Plain) else {
                    return;
                };
                self.replay(*sniff, cx, up);
            }
            Transport::Http(t) => {
                t.http.finish(frame, &mut t.made);
                for te in t.made.drain(..) {
                    up(Up::Tunnel(te));
                }
            }
            Transport::Tls(t) => {
                let TlsTunnel { tls, inner } = &mut **t;
                let plain = cx.plaintext();
                tls.finish(cx.keys, &mut |d, ev| {
                    inner.stream_event(d, ev, frame, plain, up)
                });
                inner.finish(frame, plain, up);
            }
            Transport::Undecided | Transport::Plain => {}
        }
    }

    /// Keys were added to the key log: a TLS connection that waited for its keys decrypts
    /// what it held.
    pub fn keys_added<F>(&mut self, frame: u64, cx: Context<'_>, up: &mut F)
    where
        F: FnMut(Up<'_>),
    {
        if let Transport::Tls(t) = self
            && !t.tls.info().decrypted
        {
            let TlsTunnel { tls, inner } = &mut **t;
            let plain = cx.plaintext();
            tls.retry_with(cx.keys, &mut |d, ev| {
                inner.stream_event(d, ev, frame, plain, up)
            });
        }
    }

    /// Whether the connection's (plaintext) bytes go up as tunnel events, not as RTMP.
    pub fn is_http(&self) -> bool {
        match self {
            Transport::Http(_) => true,
            Transport::Tls(t) => t.inner.is_http(),
            _ => false,
        }
    }

    /// What TLS showed of the connection, when it is TLS.
    pub fn tls(&self) -> Option<&tls::TlsInfo> {
        match self {
            Transport::Tls(t) => Some(t.tls.info()),
            _ => None,
        }
    }

    /// Bytes held (records or bodies waiting to be whole), for the memory limits.
    pub fn held_bytes(&self) -> usize {
        match self {
            Transport::Undecided | Transport::Plain => 0,
            Transport::Sniffing(s) => s.bytes,
            Transport::Http(t) => t.http.buffered_bytes(),
            Transport::Tls(t) => t.tls.buffered_bytes() + t.inner.held_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One RTMP event that went up: direction, offset, bytes or gap length, frame.
    type Went = (Dir, u64, Result<Vec<u8>, u64>, u64);

    /// What went up, in order, and the tunnel events counted.
    #[derive(Default)]
    struct Seen {
        rtmp: Vec<Went>,
        tunnel: usize,
    }

    fn cx(keys: &KeyLog, mid_stream: bool) -> Context<'_> {
        Context {
            keys,
            tls_backlog: 0,
            mid_stream,
            inside_tls: false,
        }
    }

    fn push(
        t: &mut Transport,
        seen: &mut Seen,
        dir: Dir,
        ev: StreamEvent<'_>,
        frame: u64,
        mid: bool,
    ) {
        let keys = KeyLog::default();
        t.stream_event(dir, ev, frame, cx(&keys, mid), &mut |up| match up {
            Up::Rtmp(d, StreamEvent::Data { offset, bytes }, f) => {
                seen.rtmp.push((d, offset, Ok(bytes.to_vec()), f))
            }
            Up::Rtmp(d, StreamEvent::Gap { offset, len }, f) => {
                seen.rtmp.push((d, offset, Err(len), f))
            }
            Up::Tunnel(_) => seen.tunnel += 1,
        });
    }

    fn data(offset: u64, bytes: &[u8]) -> StreamEvent<'_> {
        StreamEvent::Data { offset, bytes }
    }

    #[test]
    fn an_rtmp_handshake_is_plain_at_once_and_passes_up_unchanged() {
        let mut t = Transport::default();
        let mut seen = Seen::default();
        push(
            &mut t,
            &mut seen,
            Dir::ClientToServer,
            data(0, &[3, 0, 0, 0]),
            1,
            false,
        );
        push(
            &mut t,
            &mut seen,
            Dir::ServerToClient,
            StreamEvent::Gap { offset: 0, len: 9 },
            2,
            false,
        );
        assert!(matches!(t, Transport::Plain));
        assert_eq!(
            seen.rtmp,
            vec![
                (Dir::ClientToServer, 0, Ok(vec![3, 0, 0, 0]), 1),
                (Dir::ServerToClient, 0, Err(9), 2)
            ]
        );
        assert_eq!(t.held_bytes(), 0);
    }

    #[test]
    fn a_post_split_across_segments_is_held_then_read_as_rtmpt() {
        let req = b"POST /open/1 HTTP/1.1\r\nContent-Type: application/x-fcs\r\nContent-Length: 1\r\n\r\n\x00";
        let mut t = Transport::default();
        let mut seen = Seen::default();
        push(
            &mut t,
            &mut seen,
            Dir::ClientToServer,
            data(0, &req[..2]),
            1,
            false,
        );
        assert!(matches!(t, Transport::Sniffing(_)));
        assert_eq!(t.held_bytes(), 2);
        push(
            &mut t,
            &mut seen,
            Dir::ClientToServer,
            data(2, &req[2..]),
            2,
            false,
        );
        assert!(matches!(t, Transport::Http(_)));
        assert!(seen.rtmp.is_empty());
        assert_eq!(seen.tunnel, 1, "the whole request, held part included");
    }

    #[test]
    fn mid_stream_server_bytes_wait_for_the_client_and_keep_their_frames() {
        // A response body caught in its middle, then the client's next poll.
        let mut t = Transport::default();
        let mut seen = Seen::default();
        push(
            &mut t,
            &mut seen,
            Dir::ServerToClient,
            data(0, b"\x14\x00rtmp bytes"),
            5,
            true,
        );
        assert!(matches!(t, Transport::Sniffing(_)));
        let poll = b"POST /idle/42/7 HTTP/1.1\r\nContent-Length: 1\r\n\r\n\x00";
        push(
            &mut t,
            &mut seen,
            Dir::ClientToServer,
            data(0, poll),
            6,
            true,
        );
        assert!(matches!(t, Transport::Http(_)));
        assert!(seen.rtmp.is_empty());
        // The same for plain RTMP joined mid-stream: the server's bytes go up first, with
        // the frame they came in.
        let mut t = Transport::default();
        let mut seen = Seen::default();
        push(
            &mut t,
            &mut seen,
            Dir::ServerToClient,
            data(100, b"abc"),
            5,
            true,
        );
        push(
            &mut t,
            &mut seen,
            Dir::ClientToServer,
            data(200, &[0x43, 1, 2]),
            6,
            true,
        );
        assert!(matches!(t, Transport::Plain));
        assert_eq!(
            seen.rtmp,
            vec![
                (Dir::ServerToClient, 100, Ok(b"abc".to_vec()), 5),
                (Dir::ClientToServer, 200, Ok(vec![0x43, 1, 2]), 6)
            ]
        );
    }

    #[test]
    fn a_client_hello_is_tls_even_split_and_without_keys_nothing_goes_up() {
        // A ClientHello record header and the start of its handshake message, in two pieces.
        let hello = [
            0x16, 0x03, 0x01, 0x00, 0x40, 0x01, 0x00, 0x00, 0x3c, 0x03, 0x03,
        ];
        let mut t = Transport::default();
        let mut seen = Seen::default();
        push(
            &mut t,
            &mut seen,
            Dir::ClientToServer,
            data(0, &hello[..3]),
            1,
            false,
        );
        assert!(matches!(t, Transport::Sniffing(_)));
        push(
            &mut t,
            &mut seen,
            Dir::ClientToServer,
            data(3, &hello[3..]),
            2,
            false,
        );
        assert!(matches!(t, Transport::Tls(_)));
        assert!(t.tls().is_some());
        assert!(seen.rtmp.is_empty() && seen.tunnel == 0);
        // Joined mid-stream, a TLS record is not taken for a ClientHello: plain, as before.
        let mut t = Transport::default();
        push(
            &mut t,
            &mut seen,
            Dir::ClientToServer,
            data(9, &hello),
            1,
            true,
        );
        assert!(matches!(t, Transport::Plain));
    }

    #[test]
    fn sniffing_holds_at_most_its_bound_then_reads_plain_rtmp() {
        let mut t = Transport::default();
        let mut seen = Seen::default();
        let block = vec![7u8; 4096];
        let mut offset = 0;
        for f in 0..(SNIFF_BYTES / block.len() + 1) as u64 {
            push(
                &mut t,
                &mut seen,
                Dir::ServerToClient,
                data(offset, &block),
                f,
                true,
            );
            offset += block.len() as u64;
            assert!(t.held_bytes() <= SNIFF_BYTES);
        }
        assert!(matches!(t, Transport::Plain));
        assert_eq!(seen.rtmp.len(), SNIFF_BYTES / block.len() + 1);
        // However small the segments, at most SNIFF_EVENTS are held.
        let mut t = Transport::default();
        let mut seen = Seen::default();
        for i in 0..(SNIFF_EVENTS as u64 + 1) {
            push(
                &mut t,
                &mut seen,
                Dir::ServerToClient,
                data(i, b"x"),
                i,
                true,
            );
        }
        assert!(matches!(t, Transport::Plain));
        assert_eq!(seen.rtmp.len(), SNIFF_EVENTS + 1);
        // What is held when the connection ends goes up too.
        let mut t = Transport::default();
        let mut seen = Seen::default();
        push(
            &mut t,
            &mut seen,
            Dir::ClientToServer,
            data(0, b"P"),
            1,
            false,
        );
        let keys = KeyLog::default();
        t.finish(2, cx(&keys, false), &mut |up| {
            if let Up::Rtmp(d, StreamEvent::Data { offset, bytes }, f) = up {
                seen.rtmp.push((d, offset, Ok(bytes.to_vec()), f))
            }
        });
        assert_eq!(
            seen.rtmp,
            vec![(Dir::ClientToServer, 0, Ok(b"P".to_vec()), 1)]
        );
    }
}
