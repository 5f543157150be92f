//! RTMPT: RTMP tunnelled over HTTP, as a pure transport (bytes and events in, RTMP byte
//! streams out; no I/O, no clock).
//!
//! The protocol, as ffmpeg (`libavformat/rtmphttp.c`) and librtmp (`rtmp.c`) speak it and
//! as the captures in `samples/rtmpt-*` show:
//!
//! - `POST /open/1` (a 1-byte body, 0x00) answers with the session id followed by `\n`, and
//!   **no** polling-interval byte (ffmpeg trims trailing white space; librtmp drops the last
//!   byte). No RTMP bytes travel in it.
//! - `POST /send/ID/SEQ` carries client-to-server RTMP bytes as its body; `POST /idle/ID/SEQ`
//!   polls (its 1-byte body 0x00 is padding, not RTMP); `POST /close/ID/SEQ` ends the
//!   session. SEQ counts from 0 after `/open`, one per request, across send, idle and close.
//! - Every response to send, idle and close starts with one byte, the polling interval,
//!   followed by server-to-client RTMP bytes.
//! - `POST /fcs/ident2` is sent first by Flash Player (not by ffmpeg or librtmp); servers
//!   typically answer 404.
//! - Content-Type `application/x-fcs`. One session can use several TCP connections
//!   (keep-alive, pipelining as librtmp does, or a new connection per request).
//!
//! [`HttpConnection`] parses one TCP connection's two directions into [`TunnelEvent`]s;
//! [`TunnelSessions`] joins the events of all connections by session id and SEQ into the two
//! RTMP byte streams of each session, as [`StreamEvent`](crate::flow::StreamEvent)s for the
//! RTMP layer.

mod http;
mod session;
#[cfg(test)]
mod tests;

pub use http::{HttpConnection, HttpLimits};
pub use session::{ConnUse, KindCounts, SessionGap, SessionInfo, SessionLimits, TunnelSessions};

use crate::flow::Dir;

/// What a request asks for, from its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// `/open/1`: a new session; the response body is the session id.
    Open,
    /// `/send/ID/SEQ`: the body is client RTMP bytes.
    Send,
    /// `/idle/ID/SEQ`: a poll.
    Idle,
    /// `/close/ID/SEQ`.
    Close,
    /// `/fcs/ident2`.
    Ident,
    /// Anything else (another path, another method).
    Other,
}

/// Session ids longer than this are not believed (real ones are about 10 bytes).
pub const MAX_SESSION_ID: usize = 128;

/// What a request's target says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub kind: RequestKind,
    /// The session id, for send/idle/close (for an open, set on its response from the body).
    pub session: Option<Vec<u8>>,
    /// The SEQ, for send/idle/close.
    pub seq: Option<u64>,
}

impl Target {
    /// Reads a request target (`/send/ID/SEQ`, or an absolute `http://host/send/ID/SEQ`).
    pub fn parse(method: &[u8], path: &[u8]) -> Target {
        let other = Target {
            kind: RequestKind::Other,
            session: None,
            seq: None,
        };
        let mut p = path;
        for scheme in [&b"http://"[..], b"https://"] {
            if p.len() >= scheme.len() && p[..scheme.len()].eq_ignore_ascii_case(scheme) {
                let rest = &p[scheme.len()..];
                p = match rest.iter().position(|&b| b == b'/') {
                    Some(i) => &rest[i..],
                    None => b"/",
                };
            }
        }
        if let Some(q) = p.iter().position(|&b| b == b'?') {
            p = &p[..q];
        }
        if method != b"POST" {
            return other;
        }
        if p == b"/fcs/ident2" || p == b"/fcs/ident" {
            return Target {
                kind: RequestKind::Ident,
                ..other
            };
        }
        let mut parts = p.split(|&b| b == b'/');
        if parts.next() != Some(b"") {
            return other;
        }
        let cmd = parts.next().unwrap_or_default();
        let rest: Vec<&[u8]> = parts.collect();
        let kind = match cmd {
            b"open" => RequestKind::Open,
            b"send" => RequestKind::Send,
            b"idle" => RequestKind::Idle,
            b"close" => RequestKind::Close,
            _ => return other,
        };
        if kind == RequestKind::Open {
            return Target { kind, ..other };
        }
        let (id, seq) = match rest.as_slice() {
            [id, seq] => (*id, parse_u64(seq)),
            [id] => (*id, None),
            _ => return other,
        };
        if id.is_empty() || id.len() > MAX_SESSION_ID {
            return other;
        }
        Target {
            kind,
            session: Some(id.to_vec()),
            seq,
        }
    }
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Bytes of a message's body known to be lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LostBody {
    /// At least this many bytes of RTMP payload were lost (for a response, not counting the
    /// interval byte).
    pub at_least: u64,
    /// `at_least` is the exact count (a Content-Length was read).
    pub exact: bool,
}

/// A request read from the client-to-server direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestPart {
    pub target: Target,
    /// The body as received (for a send: client RTMP bytes); when `lost` is set, the bytes
    /// that came before the loss (at most [`HttpLimits::max_body`]).
    pub body: Vec<u8>,
    /// The request says `Content-Type: application/x-fcs`.
    pub fcs_content_type: bool,
    /// The body (or its end) was lost to a gap or cut by the body limit.
    pub lost: Option<LostBody>,
    /// Frames of the first byte of the head and of the last byte of the request.
    pub first_frame: u64,
    pub last_frame: u64,
}

/// A response read from the server-to-client direction, with the request it answers
/// (matched in order on its connection).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponsePart {
    /// The answered request's target; for an open answered with 200, `session` is the id
    /// read from the body. `None` when no request was waiting for it.
    pub target: Option<Target>,
    /// The status code; 0 for a response lost whole (no head read: `lost` is set, `body`
    /// empty).
    pub status: u16,
    /// The polling-interval byte (a 200 answer to send, idle or close with a body).
    pub interval: Option<u8>,
    /// The body without the interval byte when there is one (server RTMP bytes for send and
    /// idle), else the whole body; when `lost` is set, the bytes before the loss.
    pub body: Vec<u8>,
    pub lost: Option<LostBody>,
    /// The last frame of the request answered, if any.
    pub request_frame: Option<u64>,
    pub first_frame: u64,
    pub last_frame: u64,
}

/// Why bytes of a direction were not read as HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossReason {
    /// The reassembler reported bytes never captured.
    Gap,
    /// Bytes that were not HTTP where a message was expected (skipped until a request or
    /// status line).
    Malformed,
    /// A head longer than [`HttpLimits::max_head`].
    HeadTooLong,
    /// The connection ended inside a message.
    Truncated,
}

/// Bytes of one direction of a connection that were skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loss {
    pub dir: Dir,
    pub reason: LossReason,
    /// Stream offset (of the direction) where the skipped bytes begin.
    pub offset: u64,
    /// Bytes skipped: for a gap the gap's length plus what was discarded around it until the
    /// next message start; so far as known when the connection ended.
    pub len: u64,
    pub frame: u64,
    /// The skipped region touched a message whose head had been read (its part is reported
    /// with `lost` set).
    pub message_touched: bool,
}

/// What [`HttpConnection`] yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TunnelEvent {
    Request(RequestPart),
    Response(ResponsePart),
    Loss(Loss),
}

/// Whether the first bytes a client sent on a TCP connection look like RTMPT: a request
/// line `POST /open/1`, `POST /send/`, `POST /idle/`, `POST /close/` or `POST /fcs/ident2`,
/// or any request whose head (as far as given) has `Content-Type: application/x-fcs`.
pub fn looks_like_rtmpt(client_first_bytes: &[u8]) -> bool {
    let b = client_first_bytes;
    const LINES: [&[u8]; 5] = [
        b"POST /open/1",
        b"POST /send/",
        b"POST /idle/",
        b"POST /close/",
        b"POST /fcs/ident2",
    ];
    if LINES.iter().any(|l| b.starts_with(l)) {
        return true;
    }
    // A request line first: a token, a space, something, then " HTTP/1."
    let line_end = b.iter().position(|&c| c == b'\n').unwrap_or(b.len());
    let line = &b[..line_end];
    let is_request = line
        .iter()
        .position(|&c| c == b' ')
        .is_some_and(|sp| sp > 0 && line[..sp].iter().all(|c| c.is_ascii_uppercase()))
        && memchr::memmem::find(line, b" HTTP/1.").is_some();
    if !is_request {
        return false;
    }
    let head_end = memchr::memmem::find(b, b"\r\n\r\n")
        .or_else(|| memchr::memmem::find(b, b"\n\n"))
        .unwrap_or(b.len());
    b[..head_end].split(|&c| c == b'\n').skip(1).any(|h| {
        let Some(colon) = h.iter().position(|&c| c == b':') else {
            return false;
        };
        let (name, value) = (&h[..colon], &h[colon + 1..]);
        let value = value.trim_ascii();
        name.trim_ascii().eq_ignore_ascii_case(b"content-type")
            && value.len() >= 17
            && value[..17].eq_ignore_ascii_case(b"application/x-fcs")
    })
}
