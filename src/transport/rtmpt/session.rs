//! Joining the [`TunnelEvent`]s of every TCP connection into each session's two RTMP byte
//! streams, by session id and SEQ.

use std::collections::{BTreeMap, HashMap};

use super::{LostBody, RequestKind, TunnelEvent};
use crate::flow::{Dir, StreamEvent};

/// Bounds on what [`TunnelSessions`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    /// Sessions followed at once; a new one beyond it ends the least recently active.
    pub max_sessions: usize,
    /// Parts (one per request, per direction) held while waiting for a missing SEQ; one more
    /// and the missing SEQs are declared a gap.
    pub window_requests: usize,
    /// Bytes held per direction while waiting for a missing SEQ; more and the missing SEQs
    /// are declared a gap.
    pub window_bytes: usize,
    /// TCP connections listed per session (the rest are counted).
    pub max_connections_per_session: usize,
    /// Gaps listed per session (the rest are counted).
    pub max_gaps_per_session: usize,
    /// Ended sessions kept until [`TunnelSessions::take_finished`] (older ones are counted).
    pub max_finished: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_sessions: 1024,
            window_requests: 64,
            window_bytes: 4 << 20,
            max_connections_per_session: 4096,
            max_gaps_per_session: 1000,
            max_finished: 4096,
        }
    }
}

/// One TCP connection a session used (ids are the caller's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnUse {
    pub conn: u64,
    pub first_frame: u64,
    pub last_frame: u64,
}

/// Requests counted by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindCounts {
    pub open: u64,
    pub send: u64,
    pub idle: u64,
    pub close: u64,
    pub ident: u64,
    pub other: u64,
}

impl KindCounts {
    fn add(&mut self, k: RequestKind) {
        let c = match k {
            RequestKind::Open => &mut self.open,
            RequestKind::Send => &mut self.send,
            RequestKind::Idle => &mut self.idle,
            RequestKind::Close => &mut self.close,
            RequestKind::Ident => &mut self.ident,
            RequestKind::Other => &mut self.other,
        };
        *c += 1;
    }
}

/// A gap in one of a session's output streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionGap {
    pub dir: Dir,
    /// Offset in the output stream, and the `len` handed on: a lower bound on the bytes lost
    /// (0 when nothing of the missing requests was seen: a missing SEQ may have been an idle
    /// poll that carried nothing, or a send of any size).
    pub offset: u64,
    pub len: u64,
    /// `len` is exact (the Content-Length of a body cut by a loss was read).
    pub exact: bool,
    /// The SEQs the gap stands for: `first..end`. For a session seen from its middle the
    /// first gap is `(s, s)` at offset 0: the bytes before SEQ `s` were not seen.
    pub seqs: (u64, u64),
}

/// What is known of one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: Vec<u8>,
    /// The `/open/1` answered with this id was captured: both streams start at their first
    /// byte. Otherwise the session was first seen in its middle and each stream's first
    /// event is a zero-length gap at offset 0.
    pub start_seen: bool,
    /// A `/close` was seen.
    pub closed: bool,
    pub connections: Vec<ConnUse>,
    pub connections_dropped: u64,
    pub requests: KindCounts,
    /// Bytes handed on per direction (`Dir::index`).
    pub bytes: [u64; 2],
    pub gaps: Vec<SessionGap>,
    pub gap_count: u64,
    /// Parts for a SEQ already handed on or declared lost (too late), or seen twice.
    pub late_parts: u64,
    pub duplicate_parts: u64,
    pub first_frame: u64,
    pub last_frame: u64,
}

#[derive(Debug)]
struct Part {
    bytes: Vec<u8>,
    lost: Option<LostBody>,
}

#[derive(Debug, Default)]
struct Flow {
    next: Option<u64>,
    held: BTreeMap<u64, Part>,
    held_bytes: usize,
    offset: u64,
}

#[derive(Debug)]
struct Session {
    info: SessionInfo,
    flows: [Flow; 2],
    close_seq: Option<u64>,
    last_active: u64,
    max_conns: usize,
}

/// Joins the events of all TCP connections by session id; hands on each session's client
/// stream (`/send` bodies in SEQ order) and server stream (the bodies, less the interval
/// byte, of the responses to `/send` and `/idle` in SEQ order; `/open`'s answer holds only
/// the id) as `(session id, Dir, StreamEvent)`, offsets from 0 per direction.
///
/// A SEQ missing in a direction is waited for while at most
/// [`SessionLimits::window_requests`] later parts or [`SessionLimits::window_bytes`] bytes
/// are held, then handed on as a [`StreamEvent::Gap`] (see [`SessionGap`] for its length).
#[derive(Debug)]
pub struct TunnelSessions {
    limits: SessionLimits,
    sessions: HashMap<Vec<u8>, Session>,
    finished: Vec<SessionInfo>,
    /// Ended sessions dropped because `max_finished` were waiting to be taken.
    pub finished_dropped: u64,
    /// Requests with no session (open without a readable answer, ident, other paths).
    pub unplaced_requests: KindCounts,
    /// Responses that answered no known request (pairing lost to a gap).
    pub unmatched_responses: u64,
    /// Loss events seen, and the bytes they skipped.
    pub losses: u64,
    pub loss_bytes: u64,
    tick: u64,
}

impl TunnelSessions {
    pub fn new(limits: SessionLimits) -> Self {
        TunnelSessions {
            limits,
            sessions: HashMap::new(),
            finished: Vec::new(),
            finished_dropped: 0,
            unplaced_requests: KindCounts::default(),
            unmatched_responses: 0,
            losses: 0,
            loss_bytes: 0,
            tick: 0,
        }
    }

    /// Every byte held: parts waiting for a missing SEQ, session ids, connection lists.
    pub fn buffered_bytes(&self) -> usize {
        let info = |i: &SessionInfo| {
            i.id.len()
                + i.connections.len() * std::mem::size_of::<ConnUse>()
                + i.gaps.len() * std::mem::size_of::<SessionGap>()
        };
        self.sessions
            .values()
            .map(|s| info(&s.info) + s.flows.iter().map(|f| f.held_bytes).sum::<usize>())
            .sum::<usize>()
            + self.finished.iter().map(info).sum::<usize>()
    }

    /// Sessions still followed.
    pub fn sessions(&self) -> impl Iterator<Item = &SessionInfo> {
        self.sessions.values().map(|s| &s.info)
    }

    /// Sessions that ended (closed, pushed out by `max_sessions`, or at `finish`).
    pub fn take_finished(&mut self) -> Vec<SessionInfo> {
        std::mem::take(&mut self.finished)
    }

    /// One event of TCP connection `conn` (an id of the caller's choosing).
    pub fn event<F>(&mut self, conn: u64, ev: TunnelEvent, out: &mut F)
    where
        F: FnMut(&[u8], Dir, StreamEvent<'_>),
    {
        self.tick += 1;
        let limits = self.limits;
        match ev {
            TunnelEvent::Loss(l) => {
                self.losses += 1;
                self.loss_bytes = self.loss_bytes.saturating_add(l.len);
            }
            TunnelEvent::Request(r) => {
                let t = r.target;
                let (Some(id), true) = (
                    t.session,
                    matches!(
                        t.kind,
                        RequestKind::Send | RequestKind::Idle | RequestKind::Close
                    ),
                ) else {
                    self.unplaced_requests.add(t.kind);
                    return;
                };
                let s = self.session(&id, false, out);
                s.info.requests.add(t.kind);
                s.touch(conn, r.first_frame, r.last_frame);
                if t.kind == RequestKind::Close {
                    s.info.closed = true;
                    s.close_seq = t.seq.or(s.close_seq);
                }
                if let Some(seq) = t.seq {
                    // idle and close bodies are padding, not RTMP bytes
                    let (bytes, lost) = if t.kind == RequestKind::Send {
                        (r.body, r.lost)
                    } else {
                        (Vec::new(), None)
                    };
                    s.insert(Dir::ClientToServer, seq, Part { bytes, lost }, &limits, out);
                }
                self.maybe_done(&id, out);
            }
            TunnelEvent::Response(p) => {
                let Some(t) = p.target else {
                    self.unmatched_responses += 1;
                    return;
                };
                let Some(id) = t.session else {
                    if t.kind == RequestKind::Open {
                        self.unplaced_requests.add(RequestKind::Open);
                    }
                    return;
                };
                match t.kind {
                    RequestKind::Open => {
                        let s = self.session(&id, true, out);
                        s.info.requests.add(RequestKind::Open);
                        s.touch(conn, p.first_frame, p.last_frame);
                    }
                    RequestKind::Send | RequestKind::Idle | RequestKind::Close => {
                        let s = self.session(&id, false, out);
                        s.touch(conn, p.first_frame, p.last_frame);
                        if let Some(seq) = t.seq {
                            let bytes = if p.status == 200 { p.body } else { Vec::new() };
                            let part = Part {
                                bytes,
                                lost: p.lost,
                            };
                            s.insert(Dir::ServerToClient, seq, part, &limits, out);
                        }
                        self.maybe_done(&id, out);
                    }
                    _ => {}
                }
            }
        }
    }

    /// The input ended: every session hands on what it holds (missing SEQs become gaps) and
    /// ends.
    pub fn finish<F>(&mut self, out: &mut F)
    where
        F: FnMut(&[u8], Dir, StreamEvent<'_>),
    {
        let mut ids: Vec<Vec<u8>> = self.sessions.keys().cloned().collect();
        ids.sort_by_key(|id| self.sessions.get(id).map_or(0, |s| s.info.first_frame));
        for id in ids {
            self.end(&id, out);
        }
    }

    fn end<F>(&mut self, id: &[u8], out: &mut F)
    where
        F: FnMut(&[u8], Dir, StreamEvent<'_>),
    {
        let Some(mut s) = self.sessions.remove(id) else {
            return;
        };
        let limits = self.limits;
        for d in [Dir::ClientToServer, Dir::ServerToClient] {
            s.drain(d, true, &limits, out);
        }
        if self.finished.len() >= self.limits.max_finished.max(1) {
            self.finished.remove(0);
            self.finished_dropped += 1;
        }
        self.finished.push(s.info);
    }

    /// Ends session `id` if its close has been handed on in both directions.
    fn maybe_done<F>(&mut self, id: &[u8], out: &mut F)
    where
        F: FnMut(&[u8], Dir, StreamEvent<'_>),
    {
        let done = self.sessions.get(id).is_some_and(|s| {
            s.close_seq.is_some_and(|c| {
                s.flows
                    .iter()
                    .all(|f| f.next.is_some_and(|n| n > c) && f.held.is_empty())
            })
        });
        if done {
            self.end(id, out);
        }
    }

    fn session<F>(&mut self, id: &[u8], opened: bool, out: &mut F) -> &mut Session
    where
        F: FnMut(&[u8], Dir, StreamEvent<'_>),
    {
        if !self.sessions.contains_key(id) && self.sessions.len() >= self.limits.max_sessions.max(1)
        {
            let oldest = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.last_active)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.end(&k, out);
            }
        }
        let (tick, max_conns) = (self.tick, self.limits.max_connections_per_session);
        let s = self.sessions.entry(id.to_vec()).or_insert_with(|| Session {
            info: SessionInfo {
                id: id.to_vec(),
                start_seen: false,
                closed: false,
                connections: Vec::new(),
                connections_dropped: 0,
                requests: KindCounts::default(),
                bytes: [0, 0],
                gaps: Vec::new(),
                gap_count: 0,
                late_parts: 0,
                duplicate_parts: 0,
                first_frame: 0,
                last_frame: 0,
            },
            flows: [Flow::default(), Flow::default()],
            close_seq: None,
            last_active: tick,
            max_conns,
        });
        s.last_active = tick;
        if opened
            && s.flows
                .iter()
                .all(|f| f.next.is_none() && f.held.is_empty())
        {
            // SEQ counts from 0 after the open (ffmpeg, librtmp).
            s.info.start_seen = true;
            for f in &mut s.flows {
                f.next = Some(0);
            }
        }
        s
    }
}

impl Session {
    fn touch(&mut self, conn: u64, first: u64, last: u64) {
        let max = self.max_conns;
        let i = &mut self.info;
        if i.first_frame == 0 || first < i.first_frame {
            i.first_frame = first;
        }
        i.last_frame = i.last_frame.max(last);
        if let Some(c) = i.connections.iter_mut().rev().find(|c| c.conn == conn) {
            c.first_frame = c.first_frame.min(first);
            c.last_frame = c.last_frame.max(last);
        } else if i.connections.len() < max {
            i.connections.push(ConnUse {
                conn,
                first_frame: first,
                last_frame: last,
            });
        } else {
            i.connections_dropped += 1;
        }
    }

    fn insert<F>(&mut self, d: Dir, seq: u64, part: Part, limits: &SessionLimits, out: &mut F)
    where
        F: FnMut(&[u8], Dir, StreamEvent<'_>),
    {
        let f = &mut self.flows[d.index()];
        if f.next.is_some_and(|n| seq < n) {
            self.info.late_parts += 1;
            return;
        }
        if f.held.contains_key(&seq) {
            self.info.duplicate_parts += 1;
            return;
        }
        f.held_bytes += part.bytes.len();
        f.held.insert(seq, part);
        self.drain(d, false, limits, out);
    }

    /// Hands on what can be: parts in SEQ order; past a missing SEQ once the window is full
    /// (or `force`).
    fn drain<F>(&mut self, d: Dir, force: bool, limits: &SessionLimits, out: &mut F)
    where
        F: FnMut(&[u8], Dir, StreamEvent<'_>),
    {
        let Session { info, flows, .. } = self;
        let f = &mut flows[d.index()];
        loop {
            let full = f.held.len() > limits.window_requests || f.held_bytes > limits.window_bytes;
            let Some((&lowest, _)) = f.held.first_key_value() else {
                return;
            };
            match f.next {
                None => {
                    if !(force || full) {
                        return;
                    }
                    // First seen in its middle: say so with an empty gap at offset 0.
                    f.next = Some(lowest);
                    out(&info.id, d, StreamEvent::Gap { offset: 0, len: 0 });
                    record_gap(info, limits, d, 0, 0, false, (lowest, lowest));
                }
                Some(n) if lowest == n => {
                    let Some(part) = f.held.remove(&n) else {
                        return;
                    };
                    f.held_bytes -= part.bytes.len();
                    f.next = Some(n.saturating_add(1));
                    if !part.bytes.is_empty() {
                        out(
                            &info.id,
                            d,
                            StreamEvent::Data {
                                offset: f.offset,
                                bytes: &part.bytes,
                            },
                        );
                        f.offset = f.offset.saturating_add(part.bytes.len() as u64);
                        info.bytes[d.index()] += part.bytes.len() as u64;
                    }
                    // An exact count of 0: only the interval byte was missing.
                    if let Some(l) = part.lost.filter(|l| !(l.exact && l.at_least == 0)) {
                        out(
                            &info.id,
                            d,
                            StreamEvent::Gap {
                                offset: f.offset,
                                len: l.at_least,
                            },
                        );
                        let seqs = (n, n.saturating_add(1));
                        record_gap(info, limits, d, f.offset, l.at_least, l.exact, seqs);
                        f.offset = f.offset.saturating_add(l.at_least);
                    }
                }
                Some(n) => {
                    if !(force || full) {
                        return;
                    }
                    out(
                        &info.id,
                        d,
                        StreamEvent::Gap {
                            offset: f.offset,
                            len: 0,
                        },
                    );
                    record_gap(info, limits, d, f.offset, 0, false, (n, lowest));
                    f.next = Some(lowest);
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn record_gap(
    info: &mut SessionInfo,
    limits: &SessionLimits,
    dir: Dir,
    offset: u64,
    len: u64,
    exact: bool,
    seqs: (u64, u64),
) {
    info.gap_count += 1;
    if info.gaps.len() < limits.max_gaps_per_session {
        info.gaps.push(SessionGap {
            dir,
            offset,
            len,
            exact,
            seqs,
        });
    }
}
