//! One RTMP connection: its two directions (handshake, chunks, or hunting for chunk headers
//! after a gap) and the session they make up.

use std::collections::VecDeque;

use bytes::BytesMut;

use super::Event;
use super::chunk::{self, ChunkReader};
use super::handshake::{Handshake, HandshakeOutcome};
use super::lockon;
use super::message::Message;
use super::session::Session;
use super::warning::Warning;
use crate::config::{LimitHits, Limits};
use crate::flow::{Dir, StreamEvent};

/// Bytes searched for a lock before the oldest are given up as unreadable.
const HUNT_WINDOW: usize = 512 << 10;
/// New bytes needed before the search runs again (it resumes where it stopped).
const HUNT_STEP: usize = 1 << 10;
/// Probe work (see [`lockon::find_within`]) a direction starts with: enough for a few
/// candidates over the first bytes.
const HUNT_BUDGET_START: u64 = 64 << 10;
/// Probe work each byte of a direction pays for, and what a direction can save up: bytes
/// that keep offering candidates that lead nowhere (hostile, or gap after gap) cost at most
/// this many times their own size, while a lock after a gap or at a mid-stream start takes a
/// few probes.
const HUNT_WORK_PER_BYTE: u64 = 32;
const HUNT_BUDGET_MAX: u64 = 16 << 20;
/// Probe work a direction whose search ran out must have saved before it searches again:
/// retrying at once would spend each new byte's share on the same candidate, from its start,
/// and never finish it.
const HUNT_BUDGET_RESUME: u64 = lockon::CANDIDATE_BUDGET + 4096;

/// Looking for chunk headers in bytes whose start is unknown.
#[derive(Debug)]
struct Hunt {
    buf: BytesMut,
    /// Stream offset of `buf[0]`.
    start: u64,
    /// Candidates before this position of `buf` were rejected.
    scanned: usize,
    /// Buffer length at the last search.
    tried_at: usize,
    /// What the chunk streams looked like before the bytes were lost.
    template: Option<Box<ChunkReader>>,
    /// Bytes given up so far in this hunt.
    skipped: u64,
    /// The gap took this many bytes and began between chunks: perhaps only a chunk header,
    /// the body after it whole (see [`lockon::recover_body`]).
    header_gap: Option<u32>,
    /// The last search ran out of probe work (see [`HUNT_BUDGET_RESUME`]).
    starved: bool,
    /// How far the search got with the candidate at `scanned`.
    progress: lockon::Progress,
}

/// How far one direction has got.
#[derive(Debug)]
enum Phase {
    /// Waiting for the first byte.
    Start,
    Handshake,
    Chunks(Box<ChunkReader>),
    Hunting(Box<Hunt>),
    /// Nothing more is read in this direction (encrypted or not RTMP).
    Stopped,
}

/// What comes after the bytes a search is run over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Until {
    /// More bytes.
    More,
    /// A gap: these bytes are all there is before it.
    Gap,
    /// The end of the direction.
    End,
}

/// Where a direction was locked onto without a handshake, for the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockRecord {
    pub dir: Dir,
    /// Stream offset of the first header trusted.
    pub offset: u64,
    /// Capture frame whose bytes completed the lock.
    pub frame: u64,
    /// Bytes passed over before it.
    pub skipped: u64,
    pub chunk_size: u32,
    /// True after a gap, false for a capture that began mid-stream.
    pub after_gap: bool,
}

/// A direction that searched [`Limits::lockon_bytes`] without finding chunk headers and
/// stopped looking, for the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GaveUp {
    pub dir: Dir,
    /// Bytes searched without a lock.
    pub bytes: u64,
    /// Stream offset where the search stopped.
    pub offset: u64,
    /// Capture frame whose bytes made it stop.
    pub frame: u64,
    /// True when the direction had been read before (the search came after a gap or
    /// unreadable bytes), false for a flow joined mid-stream that never locked.
    pub after_lock: bool,
}

/// One RTMP connection: two directions and the session they make up.
#[derive(Debug)]
pub struct Connection {
    phases: [Phase; 2],
    /// Whether the first byte of each direction is the first byte the sender sent (its SYN
    /// was seen).
    start_known: [bool; 2],
    pub handshake: Handshake,
    pub session: Session,
    /// Chunk-layer problems, for the report (bounded).
    pub errors: Vec<Warning>,
    /// Bytes that could not be read (encrypted, not RTMP, or passed over while hunting).
    pub skipped_bytes: [u64; 2],
    pub locks: Vec<LockRecord>,
    /// Directions that stopped searching (at most one record each).
    pub gave_up: Vec<GaveUp>,
    /// Bytes each direction has searched since it last read chunks (a lock, or the
    /// handshake); gaps do not reset it. Past [`Limits::lockon_bytes`] the direction gives up.
    unlocked: [u64; 2],
    /// Chunk readers of directions that have been closed or re-locked (for the statistics).
    retired: [Option<Box<ChunkReader>>; 2],
    /// Chunk-layer limits reached.
    pub limit_hits: LimitHits,
    limits: Limits,
    msgs: Vec<Message>,
    /// Probe work each direction may still spend looking for chunk headers (see
    /// [`HUNT_WORK_PER_BYTE`]).
    hunt_budget: [u64; 2],
    /// Capture times of each direction's last segments, and whether RTMP's stream offsets
    /// are TCP's (plain RTMP), so that they tell when a message's first bytes came.
    arrivals: [Arrivals; 2],
    tcp_offsets: bool,
    /// Per direction, the stream offset after the last byte captured (plain RTMP) and after
    /// the last byte or gap handed in: bytes between the two are held behind a hole.
    captured_end: [u64; 2],
    handed_end: [u64; 2],
    /// Capture time (ms) of the frame being handled.
    now_ms: Option<f64>,
}

/// When a direction's last segments were captured, by stream offset. Bytes held behind a
/// hole reach RTMP only when the hole is given up on, all at once; a live sender's frame
/// is timed by when its first bytes were captured instead.
#[derive(Debug, Default)]
struct Arrivals {
    /// (first offset, offset after the last, capture time in ms), in order of capture.
    segs: VecDeque<(u64, u64, f64)>,
}

/// Segments whose capture times are kept per direction.
const ARRIVALS_KEPT: usize = 64;

impl Arrivals {
    fn add(&mut self, offset: u64, len: usize, ms: f64) {
        if len == 0 {
            return;
        }
        if self.segs.len() == ARRIVALS_KEPT {
            self.segs.pop_front();
        }
        self.segs
            .push_back((offset, offset.saturating_add(len as u64), ms));
    }

    /// The earliest capture of the byte at `offset`, when it is among the last segments.
    fn at(&self, offset: u64) -> Option<f64> {
        self.segs
            .iter()
            .filter(|&&(a, b, _)| a <= offset && offset < b)
            .map(|s| s.2)
            .min_by(f64::total_cmp)
    }

    fn bytes(&self) -> usize {
        self.segs.capacity() * std::mem::size_of::<(u64, u64, f64)>()
    }
}

/// Chunk-layer warnings and lock-ons kept per connection, for the report.
const MAX_CONNECTION_RECORDS: usize = 256;

impl Connection {
    pub fn new(limits: Limits) -> Self {
        Connection {
            phases: [Phase::Start, Phase::Start],
            start_known: [true, true],
            handshake: Handshake::default(),
            session: Session::new(limits.clone()),
            errors: Vec::new(),
            skipped_bytes: [0, 0],
            locks: Vec::new(),
            gave_up: Vec::new(),
            unlocked: [0, 0],
            retired: [None, None],
            limit_hits: LimitHits::default(),
            limits,
            msgs: Vec::new(),
            hunt_budget: [HUNT_BUDGET_START; 2],
            arrivals: Default::default(),
            tcp_offsets: false,
            captured_end: [0; 2],
            handed_end: [0; 2],
            now_ms: None,
        }
    }

    /// The sender's first bytes of `dir` were not seen (no SYN): look for chunk headers
    /// instead of a handshake.
    pub fn start_unknown(&mut self, dir: Dir) {
        self.start_known[dir.index()] = false;
    }

    /// The capture time (seconds) of the frame whose bytes come next, for the timing stage,
    /// and whether the bytes handed in count their offsets as TCP does (plain RTMP: not
    /// the plaintext of TLS or of HTTP bodies).
    pub fn set_time(&mut self, ts: f64, tcp_offsets: bool) {
        self.now_ms = ts.is_finite().then_some(ts * 1000.0);
        self.tcp_offsets = tcp_offsets;
    }

    /// A TCP segment of `len` bytes at stream offset `offset` of `dir` was captured at `ts`
    /// (seconds).
    pub fn arrived(&mut self, dir: Dir, offset: u64, len: usize, ts: f64) {
        if ts.is_finite() {
            self.arrivals[dir.index()].add(offset, len, ts * 1000.0);
        }
        let end = &mut self.captured_end[dir.index()];
        *end = (*end).max(offset.saturating_add(len as u64));
    }

    /// Whether direction `dir` holds bytes it has not read yet: it is locking on, or bytes
    /// were captured behind a hole the reassembler still waits on.
    fn holds_back(&self, dir: Dir) -> bool {
        let i = dir.index();
        matches!(self.phases[i], Phase::Hunting(_)) || self.captured_end[i] > self.handed_end[i]
    }

    /// Chunk statistics of a direction, when it got as far as chunks.
    pub fn chunk_reader(&self, dir: Dir) -> Option<&ChunkReader> {
        match &self.phases[dir.index()] {
            Phase::Chunks(r) => Some(r),
            _ => self.retired[dir.index()].as_deref(),
        }
    }

    /// Bytes held in chunk readers (unparsed bytes and partial messages) and in the search
    /// for chunk headers.
    pub fn buffered_bytes(&self) -> usize {
        self.phases
            .iter()
            .map(|p| match p {
                Phase::Chunks(r) => r.buffered_bytes(),
                Phase::Hunting(h) => {
                    h.buf.capacity() + h.template.as_ref().map_or(0, |t| t.buffered_bytes())
                }
                _ => 0,
            })
            .sum::<usize>()
            + self.arrivals.iter().map(Arrivals::bytes).sum::<usize>()
    }

    /// Whether the connection is known not to carry readable RTMP.
    pub fn is_dead(&self) -> bool {
        matches!(
            self.handshake.outcome,
            Some(
                HandshakeOutcome::Encrypted(_) | HandshakeOutcome::Tls | HandshakeOutcome::NotRtmp
            )
        )
    }

    fn error(&mut self, e: Warning) {
        if self.errors.len() < MAX_CONNECTION_RECORDS {
            self.errors.push(e);
        }
    }

    fn hunt(start: u64, template: Option<Box<ChunkReader>>) -> Phase {
        Phase::Hunting(Box::new(Hunt {
            buf: BytesMut::new(),
            start,
            scanned: 0,
            tried_at: 0,
            template,
            skipped: 0,
            header_gap: None,
            starved: false,
            progress: lockon::Progress::default(),
        }))
    }

    /// What the reassembler of direction `dir` hands on: bytes in order, or a gap. Bytes of a
    /// connection known not to carry readable RTMP are not looked at.
    pub fn stream_event(
        &mut self,
        dir: Dir,
        ev: StreamEvent<'_>,
        frame: u64,
        out: &mut Vec<Event>,
    ) {
        let end = match ev {
            StreamEvent::Data { offset, bytes } => offset.saturating_add(bytes.len() as u64),
            StreamEvent::Gap { offset, len } => offset.saturating_add(len),
        };
        let handed = &mut self.handed_end[dir.index()];
        *handed = (*handed).max(end);
        match ev {
            StreamEvent::Data { offset, bytes } => {
                if !self.is_dead() {
                    self.push(dir, offset, bytes, frame, out)
                }
            }
            StreamEvent::Gap { offset, len } => self.gap(dir, offset, len, frame, out),
        }
        if !self.holds_back(dir) {
            self.session.end_held(dir, out);
        }
    }

    /// Bytes of direction `dir` at stream offset `offset`, in order.
    pub fn push(&mut self, dir: Dir, offset: u64, data: &[u8], frame: u64, out: &mut Vec<Event>) {
        // Each byte of the direction pays for some search, once.
        let i = dir.index();
        self.hunt_budget[i] = self.hunt_budget[i]
            .saturating_add(data.len() as u64 * HUNT_WORK_PER_BYTE)
            .min(HUNT_BUDGET_MAX);
        self.feed(dir, offset, data, frame, out);
    }

    /// [`push`](Self::push) without paying for search again (bytes pushed once more after a
    /// lock was found in them).
    fn feed(&mut self, dir: Dir, offset: u64, mut data: &[u8], frame: u64, out: &mut Vec<Event>) {
        let i = dir.index();
        loop {
            match &mut self.phases[i] {
                Phase::Start => {
                    if data.is_empty() {
                        return;
                    }
                    if offset != 0 || !self.start_known[i] {
                        // The start of this direction was not captured: lock on mid-stream.
                        self.handshake.missing = true;
                        self.session.mid_stream = true;
                        self.phases[i] = Self::hunt(offset, None);
                        continue;
                    }
                    self.phases[i] = Phase::Handshake;
                }
                Phase::Handshake => {
                    let used = self.handshake.push(dir, data);
                    data = &data[used..];
                    if self.is_dead() {
                        self.phases = [Phase::Stopped, Phase::Stopped];
                        continue;
                    }
                    if self.handshake.done(dir) {
                        let start = offset + used as u64;
                        self.phases[i] = Phase::Chunks(Box::new(ChunkReader::new(
                            start,
                            chunk::DEFAULT_CHUNK_SIZE,
                            self.limits.clone(),
                        )));
                        continue;
                    }
                    return;
                }
                Phase::Chunks(reader) => {
                    let mut msgs = std::mem::take(&mut self.msgs);
                    let res = reader.push(data, frame, &mut msgs);
                    let believable = self.deliver(dir, &mut msgs, out);
                    self.msgs = msgs;
                    if !believable {
                        self.error(Warning::Implausible { frame });
                        self.relock_after_error(dir);
                        return;
                    }
                    if let Err(e) = res {
                        e.count(&mut self.limit_hits);
                        self.error(Warning::Relocking { error: e, frame });
                        self.relock_after_error(dir);
                        // The unparsed bytes are in the hunt now.
                        data = &[];
                        continue;
                    }
                    return;
                }
                Phase::Hunting(h) => {
                    h.buf.extend_from_slice(data);
                    self.unlocked[i] += data.len() as u64;
                    self.search(dir, frame, Until::More, out);
                    return;
                }
                Phase::Stopped => {
                    self.skipped_bytes[i] += data.len() as u64;
                    return;
                }
            }
        }
    }

    /// Hand decoded messages to the session. After a lock-on some chunk-stream state was
    /// guessed, so each message must be believable (see [`lockon::believable`]); at the first
    /// one that is not, it and the rest are dropped (a wrong packet is worse than a missing
    /// one) and `false` says the lock is lost.
    fn deliver(&mut self, dir: Dir, msgs: &mut Vec<Message>, out: &mut Vec<Event>) -> bool {
        self.session.holding =
            [Dir::ClientToServer, Dir::ServerToClient].map(|d| d != dir && self.holds_back(d));
        let Phase::Chunks(reader) = &mut self.phases[dir.index()] else {
            msgs.clear();
            return true;
        };
        let resumed = reader.is_resumed();
        let mut believable = true;
        for m in msgs.drain(..) {
            if believable && resumed && !lockon::believable(reader, &m) {
                believable = false;
            }
            if !believable {
                continue;
            }
            let first_bytes = if self.tcp_offsets {
                self.arrivals[dir.index()].at(m.offset)
            } else {
                None
            };
            self.session.now_ms = first_bytes.or(self.now_ms);
            self.session.on_message(dir, m, out);
        }
        believable
    }

    /// The chunk reader met bytes it cannot read: hunt again from just after the header that
    /// failed, keeping what is known of the chunk streams.
    fn relock_after_error(&mut self, dir: Dir) {
        let i = dir.index();
        let Phase::Chunks(reader) = std::mem::replace(&mut self.phases[i], Phase::Stopped) else {
            return;
        };
        let mut reader = reader;
        reader.doubt_size();
        let (offset, mut rest) = reader.take_unparsed();
        let skip = rest.len().min(1);
        let _ = rest.split_to(skip);
        self.skipped_bytes[i] += skip as u64;
        let mut phase = Self::hunt(offset + skip as u64, Some(reader));
        if let Phase::Hunting(h) = &mut phase {
            h.buf = rest;
            h.skipped = skip as u64;
        }
        self.phases[i] = phase;
    }

    /// Run the lock-on search over the hunted bytes; on success, read chunks from there.
    fn search(&mut self, dir: Dir, frame: u64, until: Until, out: &mut Vec<Event>) {
        let at_end = until != Until::More;
        let i = dir.index();
        let Phase::Hunting(h) = &mut self.phases[i] else {
            return;
        };
        if !at_end && h.buf.len() < h.tried_at + HUNT_STEP && h.buf.len() < HUNT_WINDOW {
            return;
        }
        if !at_end && h.starved && self.hunt_budget[i] < HUNT_BUDGET_RESUME {
            // Saving up for another try; meanwhile the oldest bytes go, so that no more than
            // the window is ever held.
            if h.buf.len() > HUNT_WINDOW {
                let keep_from = h.scanned.max(h.buf.len() - HUNT_WINDOW);
                Self::pass_to(h, keep_from, &mut self.skipped_bytes[i]);
            }
            self.give_up_if_searched_too_long(dir, frame);
            return;
        }
        h.tried_at = h.buf.len();
        if let (Some(lost), Some(t)) = (h.header_gap, h.template.as_deref()) {
            match lockon::recover_body(&h.buf, t, lost, &self.limits, at_end) {
                lockon::Recovered::Body { csid, end } => {
                    self.take_recovered(dir, csid, end, frame, until == Until::End, out);
                    return;
                }
                lockon::Recovered::NeedMore if !at_end => return,
                _ => h.header_gap = None,
            }
        }
        let found = lockon::find_within(
            &h.buf,
            h.scanned,
            h.template.as_deref(),
            &self.limits,
            at_end,
            h.skipped == 0,
            &mut self.hunt_budget[i],
            &mut h.progress,
        );
        // Out of work (or nearly, with a candidate still undecided): save up before the next
        // try.
        h.starved = self.hunt_budget[i] == 0
            || (matches!(found, lockon::Search::NeedMore(_))
                && self.hunt_budget[i] < HUNT_BUDGET_RESUME / 4);
        match found {
            lockon::Search::Found(lock) => {
                let Phase::Hunting(h) = std::mem::replace(&mut self.phases[i], Phase::Stopped)
                else {
                    return;
                };
                let mut h = h;
                let at = h.start + lock.pos as u64;
                let skipped = h.skipped + lock.pos as u64;
                self.skipped_bytes[i] += lock.pos as u64;
                let after_gap = h.template.is_some();
                self.unlocked[i] = 0;
                if self.locks.len() < MAX_CONNECTION_RECORDS {
                    self.locks.push(LockRecord {
                        dir,
                        offset: at,
                        frame,
                        skipped,
                        chunk_size: lock.chunk_size,
                        after_gap,
                    });
                }
                let reader = match h.template.take() {
                    Some(t) => t.resume_at(at, lock.chunk_size),
                    None => ChunkReader::resumed(at, lock.chunk_size, self.limits.clone()),
                };
                self.phases[i] = Phase::Chunks(Box::new(reader));
                let rest = h.buf.split_off(lock.pos);
                self.feed(dir, at, &rest, frame, out);
                if until == Until::End {
                    self.finish_dir(dir, frame, out);
                }
            }
            lockon::Search::NeedMore(p) => {
                // What the search knows of a candidate is of the one it stopped at.
                h.scanned = p;
                // Still undecided with a full window: give up that candidate, and never hold
                // more than the window (the search may have run out of work for now, while
                // bytes keep coming).
                let keep_from = if h.buf.len() >= HUNT_WINDOW {
                    (p + 1).max(h.buf.len() - HUNT_WINDOW)
                } else {
                    p
                };
                Self::pass_to(h, keep_from, &mut self.skipped_bytes[i]);
            }
            lockon::Search::NotFound => {
                // Keep a tail that could hold the start of a header; no candidate is
                // pending.
                h.progress = lockon::Progress::default();
                let keep_from = h.buf.len().saturating_sub(16);
                Self::pass_to(h, keep_from, &mut self.skipped_bytes[i]);
            }
        }
        self.give_up_if_searched_too_long(dir, frame);
    }

    /// A direction that has searched [`Limits::lockon_bytes`] without a lock shows no RTMP
    /// chunk structure (hostile bytes, or with `--any-port` a flow that is not RTMP at all):
    /// it stops searching, as a protocol parser gives up after its probe limit, and says so.
    fn give_up_if_searched_too_long(&mut self, dir: Dir, frame: u64) {
        let i = dir.index();
        if self.unlocked[i] <= self.limits.lockon_bytes as u64 {
            return;
        }
        let Phase::Hunting(h) = std::mem::replace(&mut self.phases[i], Phase::Stopped) else {
            return;
        };
        self.skipped_bytes[i] += h.buf.len() as u64;
        self.limit_hits.lockon_bytes += 1;
        self.gave_up.push(GaveUp {
            dir,
            bytes: self.unlocked[i],
            offset: h.start + h.buf.len() as u64,
            frame,
            after_lock: h.template.is_some(),
        });
    }

    /// A gap took only a chunk header: the message whose body starts the hunted bytes (up
    /// to `end`) is read on chunk stream `csid`, and chunks from there.
    fn take_recovered(
        &mut self,
        dir: Dir,
        csid: u32,
        end: usize,
        frame: u64,
        at_end: bool,
        out: &mut Vec<Event>,
    ) {
        let i = dir.index();
        let Phase::Hunting(h) = std::mem::replace(&mut self.phases[i], Phase::Stopped) else {
            return;
        };
        let mut h = h;
        let Some(t) = h.template.take() else {
            return;
        };
        let at = h.start;
        let chunk_size = t.chunk_size();
        let mut reader = t.resume_at(at + end as u64, chunk_size);
        let rest = h.buf.split_off(end);
        let body = lockon::body_of(&h.buf, csid, chunk_size);
        let msg = reader.recovered(csid, body.into(), at, frame);
        if self.locks.len() < MAX_CONNECTION_RECORDS {
            self.locks.push(LockRecord {
                dir,
                offset: at,
                frame,
                skipped: h.skipped,
                chunk_size,
                after_gap: true,
            });
        }
        self.phases[i] = Phase::Chunks(Box::new(reader));
        let mut msgs: Vec<Message> = msg.into_iter().collect();
        if !self.deliver(dir, &mut msgs, out) {
            self.relock_after_error(dir);
            return;
        }
        self.feed(dir, at + end as u64, &rest, frame, out);
        if at_end {
            self.finish_dir(dir, frame, out);
        }
    }

    /// Drop hunted bytes before the first candidate still open.
    /// The search goes on from `pos` of the hunted bytes: what came before is passed over, and
    /// what the search knew of the candidate at `scanned` holds only if it stays first.
    fn pass_to(h: &mut Hunt, pos: usize, skipped: &mut u64) {
        if pos != h.scanned {
            h.progress = lockon::Progress::default();
        }
        h.scanned = pos;
        Self::trim(h, skipped);
    }

    fn trim(h: &mut Hunt, skipped: &mut u64) {
        let drop = h.scanned;
        if drop > 0 {
            let _ = h.buf.split_to(drop);
            h.start += drop as u64;
            h.skipped += drop as u64;
            *skipped += drop as u64;
            h.tried_at = h.tried_at.saturating_sub(drop);
            h.scanned = 0;
        }
    }

    /// Bytes of direction `dir` were lost: partial messages there cannot be trusted, and the
    /// next chunk header must be found again.
    pub fn gap(&mut self, dir: Dir, offset: u64, len: u64, frame: u64, out: &mut Vec<Event>) {
        let i = dir.index();
        if matches!(&self.phases[i], Phase::Hunting(h) if h.template.is_some() && !h.buf.is_empty())
        {
            // Resync at once: the bytes since the last gap are all there is before this one,
            // so a lock that reads them to their last byte, on the chunk streams known from
            // before, is taken on fewer messages (gaps a message or two apart would
            // otherwise leave every message between them unread).
            self.search(dir, frame, Until::Gap, out);
        }
        if let Phase::Chunks(reader) = &mut self.phases[i] {
            // A header waiting for the bytes after it decides on those here.
            let mut msgs = Vec::new();
            reader.before_gap(frame, &mut msgs);
            if !msgs.is_empty() {
                self.deliver(dir, &mut msgs, out);
            }
        }
        self.session.gaps[i] = self.session.gaps[i].saturating_add(1);
        let resume = offset + len;
        let phase = std::mem::replace(&mut self.phases[i], Phase::Stopped);
        self.phases[i] = match phase {
            Phase::Chunks(reader) => {
                for m in reader.cut_media(frame) {
                    self.session.cut(dir, m, out);
                }
                self.retired[i] = Some(reader.clone());
                let header_gap = (reader.at_chunk_boundary() && len <= lockon::MAX_LOST_HEADER)
                    .then_some(len as u32);
                let mut phase = Self::hunt(resume, Some(reader));
                if let Phase::Hunting(h) = &mut phase {
                    h.header_gap = header_gap;
                }
                phase
            }
            Phase::Hunting(h) => {
                self.skipped_bytes[i] += h.buf.len() as u64;
                Self::hunt(resume, h.template)
            }
            Phase::Start | Phase::Handshake
                if self.start_known[i] && resume <= Handshake::LEN && !self.handshake.done(dir) =>
            {
                // Lost inside the handshake, whose length is fixed: the chunk stream still
                // starts where it ends, and is read from its start.
                self.handshake.lost(dir, resume);
                if resume == Handshake::LEN {
                    Phase::Chunks(Box::new(ChunkReader::new(
                        resume,
                        chunk::DEFAULT_CHUNK_SIZE,
                        self.limits.clone(),
                    )))
                } else {
                    Phase::Handshake
                }
            }
            Phase::Start | Phase::Handshake => {
                if !self.handshake.done(dir) {
                    self.handshake.missing = true;
                    self.session.mid_stream = true;
                }
                Self::hunt(resume, None)
            }
            Phase::Stopped => Phase::Stopped,
        };
        let _ = frame;
    }

    /// No more bytes in `dir`: decide on what is buffered.
    fn finish_dir(&mut self, dir: Dir, frame: u64, out: &mut Vec<Event>) {
        let i = dir.index();
        match &mut self.phases[i] {
            Phase::Chunks(reader) => {
                let mut msgs = std::mem::take(&mut self.msgs);
                let res = reader.finish(frame, &mut msgs);
                self.deliver(dir, &mut msgs, out);
                self.msgs = msgs;
                if let Err(e) = res {
                    e.count(&mut self.limit_hits);
                    self.error(Warning::AtEnd { error: e, frame });
                }
            }
            Phase::Hunting(_) => self.search(dir, frame, Until::End, out),
            _ => {}
        }
    }

    /// End of the connection: what is buffered is decoded, then open streams end.
    pub fn close(&mut self, frame: u64, out: &mut Vec<Event>) {
        for dir in [Dir::ClientToServer, Dir::ServerToClient] {
            self.finish_dir(dir, frame, out);
            if let Phase::Hunting(h) = &self.phases[dir.index()] {
                self.skipped_bytes[dir.index()] += h.buf.len() as u64;
            }
        }
        self.session.close(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_lost_in_the_handshake_leave_the_chunk_stream_read_from_its_start() {
        use crate::rtmp::chunk::ChunkWriter;
        use crate::rtmp::message::types;
        let mut chunks = Vec::new();
        let mut w = ChunkWriter::new(128);
        w.set_chunk_size(4096, &mut chunks);
        let mut audio = vec![0xaf, 1];
        audio.resize(300, 7);
        w.write(4, 1, types::AUDIO, 0, &audio, &mut chunks);
        let len = Handshake::LEN;
        let mut c = Connection::new(Limits::default());
        let mut out = Vec::new();
        let dir = Dir::ClientToServer;
        // C0 and most of C1 lost; the rest of the handshake, then chunks.
        c.gap(dir, 0, 1448, 1, &mut out);
        c.push(dir, 1448, &vec![0; (len - 1448) as usize], 2, &mut out);
        c.push(dir, len, &chunks, 3, &mut out);
        let r = c.chunk_reader(dir).expect("reading chunks");
        assert_eq!(r.stats.messages, 2);
        assert_eq!(r.chunk_size(), 4096);
        assert!(c.handshake.bytes_lost() && !c.session.mid_stream);
        // Lost up to its very end: chunks from the next byte.
        let mut c = Connection::new(Limits::default());
        c.gap(dir, 0, len, 1, &mut out);
        c.push(dir, len, &chunks, 3, &mut out);
        assert_eq!(c.chunk_reader(dir).map(|r| r.stats.messages), Some(2));
    }

    #[test]
    fn a_picture_a_gap_cuts_after_its_header_is_counted_in_its_streams_timing() {
        use crate::rtmp::chunk::ChunkWriter;
        use crate::rtmp::message::types;
        let mut w = ChunkWriter::new(128);
        let mut chunks = Vec::new();
        w.set_chunk_size(4096, &mut chunks);
        let mut ends = Vec::new();
        for i in 0..6u32 {
            let mut v = vec![0x27, 1, 0, 0, 0];
            v.extend_from_slice(&(991u32).to_be_bytes());
            v.resize(1000, i as u8);
            w.write(6, 1, types::VIDEO, 40 * i, &v, &mut chunks);
            ends.push(chunks.len() as u64);
        }
        let len = Handshake::LEN;
        let mut c = Connection::new(Limits::default());
        let mut out = Vec::new();
        let dir = Dir::ClientToServer;
        c.gap(dir, 0, len, 1, &mut out);
        // The third picture's header and first bytes, then a gap to its end.
        let cut_at = ends[1] as usize + 300;
        c.push(dir, len, &chunks[..cut_at], 2, &mut out);
        c.gap(
            dir,
            len + cut_at as u64,
            ends[2] - cut_at as u64,
            3,
            &mut out,
        );
        c.push(dir, len + ends[2], &chunks[ends[2] as usize..], 4, &mut out);
        c.close(5, &mut out);
        let cut = c.session.warnings.iter().find_map(|w| match w {
            Warning::Timing { report, .. } => Some(report.cut),
            _ => None,
        });
        assert_eq!(cut, Some([0, 1]));
    }

    #[test]
    fn a_play_ended_while_its_media_wait_behind_a_hole_keeps_them() {
        use crate::rtmp::amf0::{Value, encode};
        use crate::rtmp::chunk::ChunkWriter;
        use crate::rtmp::message::types;
        let command = |vals: &[Value]| {
            let mut b = Vec::new();
            vals.iter().for_each(|v| encode(v, &mut b));
            b
        };
        let s = |t: &str| Value::String(t.as_bytes().to_vec());
        let (mut cw, mut client) = (ChunkWriter::new(128), Vec::new());
        let play = command(&[s("play"), Value::Number(4.0), Value::Null, s("cam")]);
        cw.write(8, 1, types::COMMAND_AMF0, 0, &play, &mut client);
        let play_end = client.len();
        let delete = command(&[
            s("deleteStream"),
            Value::Number(5.0),
            Value::Null,
            Value::Number(1.0),
        ]);
        cw.write(3, 0, types::COMMAND_AMF0, 0, &delete, &mut client);
        let (mut sw, mut server) = (ChunkWriter::new(128), Vec::new());
        let mut ends = Vec::new();
        for i in 0..4u32 {
            let mut v = vec![if i == 0 { 0x12 } else { 0x22 }];
            v.resize(100, i as u8);
            sw.write(6, 1, types::VIDEO, 40 * i, &v, &mut server);
            ends.push(server.len());
        }
        let len = Handshake::LEN;
        let (c2s, s2c) = (Dir::ClientToServer, Dir::ServerToClient);
        let run = |reordered: bool| {
            let mut c = Connection::new(Limits::default());
            let mut out = Vec::new();
            for d in [c2s, s2c] {
                c.stream_event(d, StreamEvent::Gap { offset: 0, len }, 1, &mut out);
            }
            let ev = |o: usize, b: &[u8]| (len + o as u64, b.to_vec());
            let (o, b) = ev(0, &client[..play_end]);
            c.stream_event(
                c2s,
                StreamEvent::Data {
                    offset: o,
                    bytes: &b,
                },
                2,
                &mut out,
            );
            let (o, b) = ev(0, &server[..ends[1]]);
            c.stream_event(
                s2c,
                StreamEvent::Data {
                    offset: o,
                    bytes: &b,
                },
                3,
                &mut out,
            );
            if reordered {
                // The last picture's segment came before the third's: held behind a hole.
                c.arrived(s2c, len + ends[2] as u64, ends[3] - ends[2], 0.0);
            }
            let (o, b) = ev(play_end, &client[play_end..]);
            c.stream_event(
                c2s,
                StreamEvent::Data {
                    offset: o,
                    bytes: &b,
                },
                4,
                &mut out,
            );
            let (o, b) = ev(ends[1], &server[ends[1]..]);
            c.stream_event(
                s2c,
                StreamEvent::Data {
                    offset: o,
                    bytes: &b,
                },
                5,
                &mut out,
            );
            c.close(6, &mut out);
            let started = out
                .iter()
                .filter(|e| matches!(e, Event::StreamStarted { .. }));
            let tags_of_first = out
                .iter()
                .take_while(|e| !matches!(e, Event::StreamEnded { .. }))
                .filter(|e| matches!(e, Event::Tag { .. }))
                .count();
            (started.count(), tags_of_first)
        };
        // Held: all four pictures are the play's.
        assert_eq!(run(true), (1, 4));
        // In order, the server's bytes after the deleteStream are another stream's, as before.
        assert_eq!(run(false), (2, 2));
    }

    #[test]
    fn a_byte_is_timed_by_its_first_capture_and_old_segments_are_let_go() {
        let mut a = Arrivals::default();
        a.add(0, 100, 5.0);
        a.add(200, 100, 7.0);
        // A retransmission of the first: the byte was first captured at 5 ms.
        a.add(0, 100, 9.0);
        assert_eq!(a.at(50), Some(5.0));
        assert_eq!(a.at(299), Some(7.0));
        assert_eq!(a.at(300), None);
        assert_eq!(a.at(150), None);
        for k in 0..ARRIVALS_KEPT as u64 {
            a.add(1000 + k * 10, 10, 20.0 + k as f64);
        }
        assert_eq!(a.segs.len(), ARRIVALS_KEPT);
        assert_eq!(a.at(50), None);
        assert_eq!(a.at(1005), Some(20.0));
        a.add(5000, 0, 1.0);
        assert_eq!(a.at(5000), None);
    }
}
