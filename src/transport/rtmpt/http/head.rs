//! Message heads: gathering a head's bytes, reading a request or status line and its headers,
//! and looking for the next head after bytes that were lost or could not be read.

use super::super::{LossReason, Target, TunnelEvent};
use super::body::{Body, Chunk};
use super::{HttpConnection, Msg, State};

/// Headers read per head (httparse needs a fixed array); more is malformed.
const MAX_HEADERS: usize = 64;

/// What a head's headers say.
struct Fields {
    /// Content-Type `application/x-fcs`.
    fcs: bool,
    /// Content-Length.
    length: Option<u64>,
    /// The last Transfer-Encoding is `chunked`.
    chunked: bool,
}

/// A head read: the request's target (requests) or the status (responses), and its headers.
struct Parsed {
    target: Option<Target>,
    status: u16,
    fields: Fields,
}

impl HttpConnection {
    /// Bytes of direction `i` between messages or inside a head; returns the rest of `data`,
    /// after the head if it ended.
    pub(super) fn head_bytes<'d>(
        &mut self,
        i: usize,
        mut data: &'d [u8],
        frame: u64,
        out: &mut Vec<TunnelEvent>,
    ) -> &'d [u8] {
        let h = &mut self.halves[i];
        if h.head.is_empty() {
            // Blank lines between messages are allowed.
            let n = data
                .iter()
                .position(|&b| b != b'\r' && b != b'\n')
                .unwrap_or(data.len());
            data = &data[n..];
            if data.is_empty() {
                return data;
            }
            h.head_frame = frame;
        }
        let room = self.limits.max_head.saturating_sub(h.head.len());
        let take = data.len().min(room);
        let old = h.head.len();
        h.head.extend_from_slice(&data[..take]);
        match head_end(&h.head, old) {
            Some(end) => {
                let extra = h.head.len() - end;
                h.head.truncate(end);
                data = &data[take - extra..];
                let head = std::mem::take(&mut h.head);
                self.head(i, &head, frame, out);
            }
            None if h.head.len() >= self.limits.max_head => {
                let len = h.head.len() as u64;
                h.head.clear();
                data = &data[take..];
                let off = h.next.unwrap_or(0).saturating_sub(data.len() as u64 + len);
                self.start_resync(i, off);
                self.loss(i, LossReason::HeadTooLong, off, len, frame, false, out);
                self.message_lost(i, frame, out);
            }
            None => data = &data[take..],
        }
        data
    }

    /// Bytes of direction `i` while looking for the start of a head; returns the rest of
    /// `data` after the start found (nothing if none was).
    pub(super) fn resync_bytes<'d>(
        &mut self,
        i: usize,
        data: &'d [u8],
        frame: u64,
        out: &mut Vec<TunnelEvent>,
    ) -> &'d [u8] {
        let h = &mut self.halves[i];
        let pat = h.pattern();
        let mut found = None;
        for (k, &b) in data.iter().enumerate() {
            if b == pat[h.matched] {
                h.matched += 1;
                if h.matched == pat.len() {
                    found = Some(k + 1);
                    break;
                }
            } else {
                // The bytes matched so far were skipped too (the pattern has
                // no repeated prefix, so no match can start inside them).
                h.skipped += h.matched as u64;
                h.matched = 0;
                if b == pat[0] {
                    h.matched = 1;
                } else {
                    h.skipped += 1;
                }
            }
        }
        match found {
            Some(n) => {
                h.head.clear();
                h.head.extend_from_slice(pat);
                h.head_frame = frame;
                h.matched = 0;
                h.state = State::Head;
                self.end_resync(i, frame, out);
                &data[n..]
            }
            None => &[],
        }
    }

    /// A whole head of direction `i`.
    fn head(&mut self, i: usize, head: &[u8], frame: u64, out: &mut Vec<TunnelEvent>) {
        let first_frame = self.halves[i].head_frame;
        let Some(Parsed {
            target,
            status,
            fields,
        }) = parse(i == 0, head)
        else {
            let off = self.halves[i].next.unwrap_or(0);
            self.start_resync(i, off);
            self.loss(
                i,
                LossReason::Malformed,
                off,
                head.len() as u64,
                frame,
                false,
                out,
            );
            self.message_lost(i, frame, out);
            return;
        };
        let (target, request_frame, body) = if i == 0 {
            let body = if fields.chunked {
                Body::Chunked(Chunk::Size(Vec::new()))
            } else {
                Body::Length(fields.length.unwrap_or(0))
            };
            self.push_pending(target.clone(), frame);
            (target, None, body)
        } else {
            if (100..200).contains(&status) && status != 101 {
                return; // interim: the final response follows
            }
            let p = self.pending.pop_front();
            let body = response_body(status, &fields);
            match p {
                Some(p) => (p.target, Some(p.frame), body),
                None => (None, None, body),
            }
        };
        let h = &mut self.halves[i];
        h.msg = Some(Msg {
            target,
            status,
            fcs: fields.fcs,
            body: Vec::new(),
            dropped: 0,
            first_frame,
            request_frame,
        });
        if matches!(body, Body::Length(0)) {
            h.state = State::Head;
            self.emit(i, None, frame, out);
        } else {
            h.state = State::Body(body);
        }
    }
}

/// How the body of a final response of `status` with these headers is delimited.
fn response_body(status: u16, fields: &Fields) -> Body {
    if status == 204 || status == 304 || (100..200).contains(&status) {
        Body::Length(0)
    } else if fields.chunked {
        Body::Chunked(Chunk::Size(Vec::new()))
    } else if let Some(n) = fields.length {
        Body::Length(n)
    } else {
        Body::UntilClose
    }
}

/// Reads a whole head, a request's (`request`) or a response's; `None` if it is malformed.
fn parse(request: bool, head: &[u8]) -> Option<Parsed> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    if request {
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(head) {
            Ok(httparse::Status::Complete(_)) => {
                let fields = read_headers(req.headers)?;
                let method = req.method.unwrap_or_default().as_bytes();
                let path = req.path.unwrap_or_default().as_bytes();
                Some(Parsed {
                    target: Some(Target::parse(method, path)),
                    status: 0,
                    fields,
                })
            }
            _ => None,
        }
    } else {
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(head) {
            Ok(httparse::Status::Complete(_)) => Some(Parsed {
                target: None,
                status: resp.code.unwrap_or(0),
                fields: read_headers(resp.headers)?,
            }),
            _ => None,
        }
    }
}

/// What the headers say of the body; `None` if a Content-Length is not a number or two
/// disagree.
fn read_headers(hs: &[httparse::Header<'_>]) -> Option<Fields> {
    let mut f = Fields {
        fcs: false,
        length: None,
        chunked: false,
    };
    for h in hs {
        let v = h.value.trim_ascii();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<u64>().ok());
            match (n, f.length) {
                (None, _) => return None,
                (Some(n), Some(l)) if n != l => return None,
                (Some(n), _) => f.length = Some(n),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            f.chunked = v
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("content-type") {
            f.fcs = v.len() >= 17 && v[..17].eq_ignore_ascii_case(b"application/x-fcs");
        }
    }
    Some(f)
}

/// Where a head ends (the index after its blank line), searching from about `from`.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let crlf = memchr::memmem::find(&buf[from.saturating_sub(3)..], b"\r\n\r\n")
        .map(|p| p + from.saturating_sub(3) + 4);
    let lf = memchr::memmem::find(&buf[from.saturating_sub(1)..], b"\n\n")
        .map(|p| p + from.saturating_sub(1) + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
