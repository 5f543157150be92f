//! Message bodies: delimited by a length, by chunked encoding, or by the connection's close;
//! kept up to the body limit.

use super::super::{LossReason, LostBody, TunnelEvent};
use super::{HttpConnection, Msg, State};

/// Bytes of a chunk-size line or a trailer line.
const MAX_CHUNK_LINE: usize = 1024;

#[derive(Debug)]
pub(super) enum Chunk {
    /// Reading a chunk-size line.
    Size(Vec<u8>),
    Data(u64),
    /// The CRLF after a chunk's data (`seen` bytes of it read).
    DataEnd(u8),
    /// Trailer lines after the last chunk, until an empty one.
    Trailer(Vec<u8>),
}

#[derive(Debug)]
pub(super) enum Body {
    Length(u64),
    Chunked(Chunk),
    UntilClose,
}

/// How far some body bytes took the body.
struct Step {
    /// Bytes used.
    used: usize,
    /// The body ended.
    done: bool,
    /// Not chunked encoding after all.
    bad: bool,
}

impl HttpConnection {
    /// Body bytes of the message in progress; returns how many of `data` it took.
    pub(super) fn body(
        &mut self,
        i: usize,
        data: &[u8],
        frame: u64,
        out: &mut Vec<TunnelEvent>,
    ) -> usize {
        let max_body = self.limits.max_body;
        let h = &mut self.halves[i];
        let State::Body(body) = &mut h.state else {
            return data.len();
        };
        let Some(msg) = h.msg.as_mut() else {
            h.state = State::Head;
            return 0;
        };
        let Step { used, done, bad } = match body {
            Body::Length(rem) => {
                let n = (*rem).min(data.len() as u64) as usize;
                keep(msg, &data[..n], max_body);
                *rem -= n as u64;
                Step {
                    used: n,
                    done: *rem == 0,
                    bad: false,
                }
            }
            Body::UntilClose => {
                keep(msg, data, max_body);
                Step {
                    used: data.len(),
                    done: false,
                    bad: false,
                }
            }
            Body::Chunked(c) => chunked(c, msg, max_body, data),
        };
        if bad {
            // Not chunked encoding after all: the message is cut here.
            let off = h
                .next
                .unwrap_or(0)
                .saturating_sub((data.len() - used) as u64);
            self.emit(
                i,
                Some(LostBody {
                    at_least: 0,
                    exact: false,
                }),
                frame,
                out,
            );
            self.start_resync(i, off);
            self.loss(i, LossReason::Malformed, off, 0, frame, true, out);
            return used;
        }
        if done {
            h.state = State::Head;
            self.emit(i, None, frame, out);
        }
        used
    }
}

/// Keeps body bytes `b` of `msg` up to `max_body`, counting the rest as dropped.
fn keep(msg: &mut Msg, b: &[u8], max_body: usize) {
    let room = max_body.saturating_sub(msg.body.len());
    let n = b.len().min(room);
    msg.body.extend_from_slice(&b[..n]);
    msg.dropped += (b.len() - n) as u64;
}

/// Bytes of a chunked body, in state `c`, until they are used, the body ends or the encoding
/// turns out wrong.
fn chunked(c: &mut Chunk, msg: &mut Msg, max_body: usize, data: &[u8]) -> Step {
    let mut used = 0;
    let mut done = false;
    let mut bad = false;
    while used < data.len() && !done && !bad {
        let rest = &data[used..];
        match c {
            Chunk::Size(line) => match rest.iter().position(|&b| b == b'\n') {
                Some(p) => {
                    line.extend_from_slice(&rest[..=p]);
                    used += p + 1;
                    match httparse::parse_chunk_size(line) {
                        Ok(httparse::Status::Complete((_, 0))) => {
                            *c = Chunk::Trailer(Vec::new());
                        }
                        Ok(httparse::Status::Complete((_, n))) => *c = Chunk::Data(n),
                        _ => bad = true,
                    }
                }
                None => {
                    line.extend_from_slice(rest);
                    used = data.len();
                    bad = line.len() > MAX_CHUNK_LINE;
                }
            },
            Chunk::Data(rem) => {
                let n = (*rem).min(rest.len() as u64) as usize;
                keep(msg, &rest[..n], max_body);
                *rem -= n as u64;
                used += n;
                if *rem == 0 {
                    *c = Chunk::DataEnd(0);
                }
            }
            Chunk::DataEnd(seen) => {
                let b = rest[0];
                used += 1;
                match (*seen, b) {
                    (0, b'\r') => *seen = 1,
                    (_, b'\n') => *c = Chunk::Size(Vec::new()),
                    _ => bad = true,
                }
            }
            Chunk::Trailer(line) => match rest.iter().position(|&b| b == b'\n') {
                Some(p) => {
                    line.extend_from_slice(&rest[..=p]);
                    used += p + 1;
                    if line == b"\r\n" || line == b"\n" {
                        done = true;
                    } else {
                        line.clear();
                    }
                }
                None => {
                    line.extend_from_slice(rest);
                    used = data.len();
                    bad = line.len() > MAX_CHUNK_LINE;
                }
            },
        }
    }
    Step { used, done, bad }
}
