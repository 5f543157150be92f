//! One TCP connection's HTTP/1.0 and 1.1 messages: requests client to server, responses
//! server to client, matched in order.
//!
//! Here the connection: its two directions, gaps, losses and the pairing of requests with
//! responses; in `head` the heads read (and looked for after a loss); in `body` the bodies.

use std::collections::VecDeque;

use super::{
    LossReason, LostBody, MAX_SESSION_ID, RequestKind, RequestPart, ResponsePart, Target,
    TunnelEvent,
};
use crate::flow::{Dir, StreamEvent};
use body::{Body, Chunk};

mod body;
mod head;

/// Bounds on what one [`HttpConnection`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Bytes of one message head (request or status line and headers). A longer head is
    /// skipped as [`LossReason::HeadTooLong`].
    pub max_head: usize,
    /// Bytes kept of one body; the rest is reported lost (`LostBody`, exact).
    pub max_body: usize,
    /// Requests waiting for their response; beyond it the oldest is given up.
    pub max_pending: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_head: 16 << 10,
            max_body: 4 << 20,
            max_pending: 256,
        }
    }
}

/// A gap between messages at least this long is taken to have swallowed a message (the
/// shortest RTMPT request or response is longer).
const MIN_MESSAGE: u64 = 16;

/// A request read (or lost), waiting for its response.
#[derive(Debug)]
struct Pending {
    /// `None` for a request lost to a gap (a placeholder that keeps the order).
    target: Option<Target>,
    frame: u64,
}

#[derive(Debug)]
enum State {
    /// Between messages or inside a head (in `Half::head`).
    Head,
    Body(Body),
    /// Skipping the rest of a body whose start was lost (length known).
    Skip(u64),
    /// Looking for the next request or status line.
    Resync,
}

/// A message whose head was read.
#[derive(Debug)]
struct Msg {
    target: Option<Target>,
    status: u16,
    fcs: bool,
    body: Vec<u8>,
    /// Bytes not kept for the body limit.
    dropped: u64,
    first_frame: u64,
    request_frame: Option<u64>,
}

#[derive(Debug)]
struct Half {
    dir: Dir,
    /// Next stream offset expected; `None` before the first event.
    next: Option<u64>,
    state: State,
    head: Vec<u8>,
    head_frame: u64,
    msg: Option<Msg>,
    /// Resync: bytes matched of the start pattern, bytes skipped and where the skipping
    /// began.
    matched: usize,
    skipped: u64,
    skip_offset: u64,
}

impl Half {
    fn new(dir: Dir) -> Self {
        Half {
            dir,
            next: None,
            state: State::Head,
            head: Vec::new(),
            head_frame: 0,
            msg: None,
            matched: 0,
            skipped: 0,
            skip_offset: 0,
        }
    }

    fn pattern(&self) -> &'static [u8] {
        match self.dir {
            Dir::ClientToServer => b"POST /",
            Dir::ServerToClient => b"HTTP/1.",
        }
    }

    fn held(&self) -> usize {
        let chunk = match &self.state {
            State::Body(Body::Chunked(Chunk::Size(v) | Chunk::Trailer(v))) => v.len(),
            _ => 0,
        };
        let msg = self.msg.as_ref().map_or(0, |m| {
            m.body.len()
                + m.target
                    .as_ref()
                    .map_or(0, |t| t.session.as_ref().map_or(0, Vec::len))
        });
        self.head.len() + chunk + msg
    }
}

/// HTTP/1.x on one TCP connection, fed with the reassembler's events of both directions.
///
/// Bounded: a head up to [`HttpLimits::max_head`] bytes per direction, a body up to
/// [`HttpLimits::max_body`], [`HttpLimits::max_pending`] requests awaiting responses, and a
/// chunk line up to 1 KiB. Never panics, whatever the bytes.
#[derive(Debug)]
pub struct HttpConnection {
    limits: HttpLimits,
    halves: [Half; 2],
    pending: VecDeque<Pending>,
    /// Requests given up because `max_pending` were waiting.
    pub pending_dropped: u64,
}

impl HttpConnection {
    pub fn new(limits: HttpLimits) -> Self {
        HttpConnection {
            limits,
            halves: [
                Half::new(Dir::ClientToServer),
                Half::new(Dir::ServerToClient),
            ],
            pending: VecDeque::new(),
            pending_dropped: 0,
        }
    }

    /// Every byte held: partial heads, bodies, chunk lines, requests awaiting a response.
    pub fn buffered_bytes(&self) -> usize {
        self.halves.iter().map(Half::held).sum::<usize>()
            + self
                .pending
                .iter()
                .map(|p| {
                    p.target
                        .as_ref()
                        .and_then(|t| t.session.as_ref())
                        .map_or(0, Vec::len)
                })
                .sum::<usize>()
    }

    /// Requests waiting for their response.
    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }

    /// One event of the reassembler for direction `dir` (client to server: requests).
    pub fn stream_event(
        &mut self,
        dir: Dir,
        ev: StreamEvent<'_>,
        frame: u64,
        out: &mut Vec<TunnelEvent>,
    ) {
        let i = dir.index();
        match ev {
            StreamEvent::Data { offset, bytes } => {
                let next = *self.halves[i].next.get_or_insert(offset);
                let end = offset.saturating_add(bytes.len() as u64);
                if offset > next {
                    self.gap(i, next, offset - next, frame, out);
                } else if end <= next {
                    return;
                }
                let skip = (self.halves[i].next.unwrap_or(offset) - offset) as usize;
                let data = bytes.get(skip..).unwrap_or_default();
                self.halves[i].next = Some(end);
                self.data(i, data, frame, out);
            }
            StreamEvent::Gap { offset, len } => {
                let next = *self.halves[i].next.get_or_insert(offset);
                let end = offset.saturating_add(len);
                if end <= next {
                    return;
                }
                let start = offset.max(next);
                self.halves[i].next = Some(end);
                self.gap(i, start, end - start, frame, out);
            }
        }
    }

    /// The connection ended: a body delimited by the close is complete; anything else in
    /// progress was cut.
    pub fn finish(&mut self, frame: u64, out: &mut Vec<TunnelEvent>) {
        for i in 0..2 {
            let state = std::mem::replace(&mut self.halves[i].state, State::Head);
            match state {
                State::Body(Body::UntilClose) => self.emit(i, None, frame, out),
                State::Body(b) => {
                    let lost = match b {
                        Body::Length(n) => LostBody {
                            at_least: n,
                            exact: true,
                        },
                        _ => LostBody {
                            at_least: 0,
                            exact: false,
                        },
                    };
                    let off = self.halves[i].next.unwrap_or(0);
                    self.loss(i, LossReason::Truncated, off, 0, frame, true, out);
                    self.emit(i, Some(lost), frame, out);
                }
                State::Resync => self.end_resync(i, frame, out),
                State::Skip(_) => {}
                State::Head => {
                    let h = &mut self.halves[i];
                    if !h.head.is_empty() {
                        let len = h.head.len() as u64;
                        let off = h.next.unwrap_or(0).saturating_sub(len);
                        h.head.clear();
                        self.loss(i, LossReason::Truncated, off, len, frame, false, out);
                    }
                }
            }
        }
        self.pending.clear();
    }

    #[allow(clippy::too_many_arguments)]
    fn loss(
        &mut self,
        i: usize,
        reason: LossReason,
        offset: u64,
        len: u64,
        frame: u64,
        touched: bool,
        out: &mut Vec<TunnelEvent>,
    ) {
        out.push(TunnelEvent::Loss(super::Loss {
            dir: self.halves[i].dir,
            reason,
            offset,
            len,
            frame,
            message_touched: touched,
        }));
    }

    fn gap(&mut self, i: usize, offset: u64, len: u64, frame: u64, out: &mut Vec<TunnelEvent>) {
        if matches!(self.halves[i].state, State::Resync) {
            self.end_resync(i, frame, out);
        }
        let state = std::mem::replace(&mut self.halves[i].state, State::Resync);
        let mut touched = false;
        match state {
            State::Body(Body::Length(rem)) => {
                touched = true;
                self.emit(
                    i,
                    Some(LostBody {
                        at_least: rem,
                        exact: true,
                    }),
                    frame,
                    out,
                );
                // The length says where the next message begins.
                self.halves[i].state = if len < rem {
                    State::Skip(rem - len)
                } else {
                    State::Head
                };
                if len > rem {
                    // More than the rest of this body was lost: a whole message may be too.
                    self.halves[i].state = State::Resync;
                    self.message_lost(i, frame, out);
                }
            }
            State::Body(_) => {
                touched = true;
                self.emit(
                    i,
                    Some(LostBody {
                        at_least: len,
                        exact: false,
                    }),
                    frame,
                    out,
                );
            }
            State::Skip(rem) => {
                self.halves[i].state = if len < rem {
                    State::Skip(rem - len)
                } else {
                    State::Resync
                };
                if len > rem {
                    self.message_lost(i, frame, out);
                }
            }
            State::Head => {
                let partial = !self.halves[i].head.is_empty();
                self.halves[i].head.clear();
                if partial || len >= MIN_MESSAGE {
                    touched = partial;
                    self.message_lost(i, frame, out);
                }
            }
            State::Resync => {
                if len >= MIN_MESSAGE {
                    self.message_lost(i, frame, out);
                }
            }
        }
        if matches!(self.halves[i].state, State::Resync) {
            self.start_resync(i, offset.saturating_add(len));
        }
        self.loss(i, LossReason::Gap, offset, len, frame, touched, out);
    }

    /// A message of direction `i` is taken to have vanished whole: keep the pairing of
    /// requests and responses. A response to a send, idle or close lost so is handed on, with
    /// nothing of its body, so that the SEQ it answered is known lost at once (and not waited
    /// for while the client's stream goes on).
    fn message_lost(&mut self, i: usize, frame: u64, out: &mut Vec<TunnelEvent>) {
        if i == 0 {
            self.push_pending(None, frame);
            return;
        }
        let Some(p) = self.pending.pop_front() else {
            return;
        };
        if let Some(t) = p.target.filter(|t| {
            t.seq.is_some()
                && matches!(
                    t.kind,
                    RequestKind::Send | RequestKind::Idle | RequestKind::Close
                )
        }) {
            out.push(TunnelEvent::Response(ResponsePart {
                target: Some(t),
                status: 0,
                interval: None,
                body: Vec::new(),
                lost: Some(LostBody {
                    at_least: 0,
                    exact: false,
                }),
                request_frame: Some(p.frame),
                first_frame: frame,
                last_frame: frame,
            }));
        }
    }

    fn push_pending(&mut self, target: Option<Target>, frame: u64) {
        if self.pending.len() >= self.limits.max_pending.max(1) {
            self.pending.pop_front();
            self.pending_dropped += 1;
        }
        self.pending.push_back(Pending { target, frame });
    }

    fn data(&mut self, i: usize, mut data: &[u8], frame: u64, out: &mut Vec<TunnelEvent>) {
        while !data.is_empty() {
            let h = &mut self.halves[i];
            match &mut h.state {
                State::Head => data = self.head_bytes(i, data, frame, out),
                State::Skip(rem) => {
                    let n = (*rem).min(data.len() as u64);
                    *rem -= n;
                    data = &data[n as usize..];
                    if *rem == 0 {
                        h.state = State::Head;
                    }
                }
                State::Resync => data = self.resync_bytes(i, data, frame, out),
                State::Body(_) => {
                    let n = self.body(i, data, frame, out);
                    data = &data[n..];
                }
            }
        }
    }

    fn start_resync(&mut self, i: usize, offset: u64) {
        let h = &mut self.halves[i];
        h.state = State::Resync;
        h.matched = 0;
        h.skip_offset = offset;
    }

    /// Reports the bytes skipped while resynchronising, if any.
    fn end_resync(&mut self, i: usize, frame: u64, out: &mut Vec<TunnelEvent>) {
        let h = &mut self.halves[i];
        let skipped = std::mem::take(&mut h.skipped);
        if skipped > 0 {
            let off = h.skip_offset;
            self.loss(i, LossReason::Malformed, off, skipped, frame, false, out);
        }
    }

    /// Hands on the message in progress of direction `i`.
    fn emit(&mut self, i: usize, lost: Option<LostBody>, frame: u64, out: &mut Vec<TunnelEvent>) {
        let Some(msg) = self.halves[i].msg.take() else {
            return;
        };
        let lost = match (lost, msg.dropped) {
            (l, 0) => l,
            (None, d) => Some(LostBody {
                at_least: d,
                exact: true,
            }),
            (Some(l), d) => Some(LostBody {
                at_least: l.at_least.saturating_add(d),
                exact: l.exact,
            }),
        };
        if i == 0 {
            out.push(TunnelEvent::Request(RequestPart {
                target: msg.target.unwrap_or(Target {
                    kind: RequestKind::Other,
                    session: None,
                    seq: None,
                }),
                body: msg.body,
                fcs_content_type: msg.fcs,
                lost,
                first_frame: msg.first_frame,
                last_frame: frame,
            }));
            return;
        }
        let mut body = msg.body;
        let mut target = msg.target;
        let mut lost = lost;
        let mut interval = None;
        let kind = target.as_ref().map(|t| t.kind);
        let tunnelled = matches!(
            kind,
            Some(RequestKind::Send | RequestKind::Idle | RequestKind::Close)
        );
        if msg.status == 200 && tunnelled {
            if body.is_empty() {
                // The interval byte itself is among the lost bytes.
                if let Some(l) = lost.as_mut()
                    && l.exact
                {
                    l.at_least = l.at_least.saturating_sub(1);
                }
            } else {
                interval = Some(body[0]);
                body.drain(..1);
            }
        }
        if msg.status == 200
            && kind == Some(RequestKind::Open)
            && lost.is_none()
            && let Some(t) = target.as_mut()
        {
            let id = body.trim_ascii();
            if !id.is_empty()
                && id.len() <= MAX_SESSION_ID
                && id.iter().all(|b| b.is_ascii_graphic())
            {
                t.session = Some(id.to_vec());
            }
        }
        out.push(TunnelEvent::Response(ResponsePart {
            target,
            status: msg.status,
            interval,
            body,
            lost,
            request_frame: msg.request_frame,
            first_frame: msg.first_frame,
            last_frame: frame,
        }));
    }
}
