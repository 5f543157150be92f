//! What the messages of one connection mean: who connected to which app, which message streams
//! carry which published or played stream, and the media and metadata of each.

use bytes::Bytes;

use super::amf0::{self, Value};
use super::message::{Message, TimeBase, types};
use super::timing::{StreamClock, TimingReport};
use super::warning::Warning;
use super::{Event, Role, TagKind};
use crate::config::{LimitHits, Limits};
use crate::flow::Dir;

/// What the client said in `connect`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConnectInfo {
    pub app: Option<Vec<u8>>,
    pub tc_url: Option<Vec<u8>>,
    pub flash_ver: Option<Vec<u8>>,
    pub swf_url: Option<Vec<u8>>,
    pub page_url: Option<Vec<u8>>,
    pub object_encoding: Option<f64>,
}

#[derive(Debug)]
struct ActiveStream {
    id: u32,
    msid: u32,
    role: Role,
    /// Started by a publish or play command (not by media seen on its message stream).
    commanded: bool,
    /// Media of message stream 0 were attached to it (said once).
    zero_attached: bool,
    /// Audio and video put on one clock (see [`super::timing`]).
    clock: StreamClock,
    /// Gaps in its media's direction when it began, and how many came since (at least 1
    /// once a message was read after one).
    gaps_at_start: u32,
    gaps: u32,
    /// Its end was commanded while its media's direction still held bytes back: it ends
    /// when that direction has delivered them (see [`Session::holding`]).
    closing: bool,
}

/// Warnings, status codes, pending and created stream ids kept per session.
const MAX_SESSION_RECORDS: usize = 64;

#[derive(Debug)]
pub struct Session {
    pub connect: ConnectInfo,
    /// onStatus codes the server sent, in order, as sent (cut to the text limit; bounded).
    pub status_codes: Vec<Vec<u8>>,
    /// Problems worth telling the analyst about (bounded).
    pub warnings: Vec<Warning>,
    streams: Vec<ActiveStream>,
    /// Transaction ids of createStream calls not yet answered.
    pending_create: Vec<f64>,
    /// Message stream ids the server handed out.
    pub created: Vec<u32>,
    /// A name from releaseStream/FCPublish, for a publish whose command was not seen.
    announced: Option<Vec<u8>>,
    next_id: u32,
    /// The start of the connection was not captured.
    pub mid_stream: bool,
    /// Gaps in the capture so far, per direction ([`Dir::index`]).
    pub gaps: [u32; 2],
    /// Capture time (ms) of the message being read (of its first bytes, where the connection
    /// knows it), when the caller gives capture times: a live sender's frames reach the wire
    /// at their media times, so it tells the timing stage how much time a gap took.
    pub now_ms: Option<f64>,
    /// Directions holding bytes back (locking on, or behind a hole), set by the connection.
    /// Messages they hold may have been sent before what the other direction delivers now:
    /// a stream whose end is commanded meanwhile stays open for them.
    pub holding: [bool; 2],
    /// Offset of the last message handed on, per direction: a cut message began after it
    /// or its chunks were interleaved with a later one's.
    last_offset: [Option<u64>; 2],
    limits: Limits,
    /// Limits reached on this connection's messages.
    pub limit_hits: LimitHits,
}

impl Session {
    pub fn new(limits: Limits) -> Self {
        Session {
            connect: ConnectInfo::default(),
            status_codes: Vec::new(),
            warnings: Vec::new(),
            streams: Vec::new(),
            pending_create: Vec::new(),
            created: Vec::new(),
            announced: None,
            next_id: 0,
            mid_stream: false,
            gaps: [0; 2],
            now_ms: None,
            holding: [false; 2],
            last_offset: [None; 2],
            limits,
            limit_hits: LimitHits::default(),
        }
    }

    fn warn(&mut self, w: Warning) {
        if self.warnings.len() < MAX_SESSION_RECORDS {
            self.warnings.push(w);
        }
    }

    /// Count an AMF0 decoding error that is a limit being reached.
    fn amf_error(&mut self, e: amf0::Error, msg: &Message) {
        let hit = match e {
            amf0::Error::TooDeep(_) => &mut self.limit_hits.amf_depth,
            amf0::Error::TooManyValues(_) => &mut self.limit_hits.amf_elements,
            _ => return,
        };
        *hit += 1;
        self.warn(Warning::PartlyDecoded {
            error: e,
            offset: msg.offset,
            frame: msg.frame,
        });
    }

    /// A name or text from the wire, cut to the text limit (with a warning giving its length).
    fn text(&mut self, what: &'static str, b: &[u8]) -> Vec<u8> {
        let max = self.limits.text_bytes;
        if b.len() <= max {
            return b.to_vec();
        }
        self.limit_hits.text_bytes += 1;
        self.warn(Warning::TextCut {
            what,
            len: b.len(),
            kept: max,
        });
        b[..max].to_vec()
    }

    /// Interpret one message that travelled in role `dir`.
    pub fn on_message(&mut self, dir: Dir, msg: Message, out: &mut Vec<Event>) {
        self.last_offset[dir.index()] = Some(msg.offset);
        match msg.type_id {
            types::COMMAND_AMF0 => self.command(dir, &msg, &msg.body, out),
            types::COMMAND_AMF3 => {
                // A format byte (0), then AMF0.
                let body = msg.body.slice(msg.body.len().min(1)..);
                self.command(dir, &msg, &body, out)
            }
            types::DATA_AMF0 => self.data(dir, &msg, msg.body.clone(), out),
            types::DATA_AMF3 => {
                let body = msg.body.slice(msg.body.len().min(1)..);
                self.data(dir, &msg, body, out)
            }
            types::AUDIO | types::VIDEO => {
                let kind = if msg.type_id == types::AUDIO {
                    TagKind::Audio
                } else {
                    TagKind::Video
                };
                if msg.body.is_empty() {
                    return; // an empty media message carries nothing a file could hold
                }
                if let Some(id) = self.stream_for(dir, msg.msid, out) {
                    let ev = Event::Tag {
                        stream: id,
                        kind,
                        timestamp: msg.timestamp,
                        body: msg.body,
                        frame: msg.frame,
                        gaps: 0,
                    };
                    self.emit(id, (msg.base, msg.resumed, msg.stale_delta), ev, out);
                }
            }
            types::AGGREGATE => self.aggregate(dir, &msg, out),
            _ => {}
        }
    }

    /// A media message in `dir` was cut by a gap (its header read; `msg` holds its first
    /// bytes): counted in its stream's timing report. (A stream not started is not started
    /// for it.)
    /// Its time is taken in wire order (see [`StreamClock::cut_frame`]) unless a message
    /// that began after its header was already handed on (chunks of two messages
    /// interleaved): then it is only counted.
    pub fn cut(&mut self, dir: Dir, msg: Message, out: &mut Vec<Event>) {
        let role = media_role(dir);
        let in_order = self.last_offset[dir.index()].is_none_or(|o| o < msg.offset);
        let Some(s) = self
            .streams
            .iter_mut()
            .find(|s| s.msid == msg.msid && s.role == role)
        else {
            return;
        };
        let kind = if msg.type_id == types::VIDEO {
            TagKind::Video
        } else {
            TagKind::Audio
        };
        if !in_order {
            s.clock.cut(usize::from(kind == TagKind::Video));
            return;
        }
        let ev = Event::Tag {
            stream: s.id,
            kind,
            timestamp: msg.timestamp,
            body: msg.body,
            frame: msg.frame,
            gaps: 0,
        };
        s.clock
            .cut_frame(msg.base, msg.resumed, msg.stale_delta, ev, out);
        self.last_offset[dir.index()] = Some(msg.offset);
    }

    /// The open stream whose media travels in `dir` on `msid`, started on first sight when the
    /// command that named it was not seen.
    fn stream_for(&mut self, dir: Dir, msid: u32, out: &mut Vec<Event>) -> Option<u32> {
        let role = media_role(dir);
        if let Some(s) = self
            .streams
            .iter()
            .find(|s| s.msid == msid && s.role == role)
        {
            return Some(s.id);
        }
        // ffmpeg's -listen server sends a play's media (and @setDataFrame) on message stream
        // 0 while its Play.Start is on the stream the client created: media on stream 0 go to
        // the connection's only commanded stream of that direction, said once.
        if msid == 0 {
            let mut of_role = self.streams.iter_mut().filter(|s| s.role == role);
            if let (Some(s), None) = (of_role.next(), of_role.next())
                && s.commanded
                && s.msid != 0
            {
                let (id, to) = (s.id, s.msid);
                if !s.zero_attached {
                    s.zero_attached = true;
                    self.warn(Warning::MediaOnStreamZero { msid: to });
                }
                return Some(id);
            }
        }
        let name = match role {
            Role::Publish => self.announced.clone(),
            Role::Play => None,
        };
        self.start(msid, role, name, out)
    }

    fn start(
        &mut self,
        msid: u32,
        role: Role,
        name: Option<Vec<u8>>,
        out: &mut Vec<Event>,
    ) -> Option<u32> {
        self.end_where(|s| s.msid == msid && s.role == role, out);
        if self.next_id as usize >= self.limits.streams_per_connection {
            self.limit_hits.streams_per_connection += 1;
            if self.next_id as usize == self.limits.streams_per_connection {
                self.warn(Warning::TooManyStreams {
                    limit: self.limits.streams_per_connection,
                });
                self.next_id += 1;
            }
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.streams.push(ActiveStream {
            id,
            msid,
            role,
            commanded: false,
            zero_attached: false,
            clock: StreamClock::default(),
            gaps_at_start: self.gaps[media_dir(role).index()],
            gaps: 0,
            closing: false,
        });
        out.push(Event::StreamStarted {
            stream: id,
            msid,
            role,
            name,
            mid_stream: self.mid_stream,
        });
        Some(id)
    }

    fn end_where(&mut self, pred: impl Fn(&ActiveStream) -> bool, out: &mut Vec<Event>) {
        let warnings = &mut self.warnings;
        self.streams.retain_mut(|s| {
            if pred(s) {
                // Tags held for timing go out before the end.
                s.clock.finish(out);
                let report = std::mem::take(&mut s.clock.report);
                if report != TimingReport::default() && warnings.len() < MAX_SESSION_RECORDS {
                    warnings.push(Warning::Timing {
                        stream: s.id,
                        report,
                    });
                }
                out.push(Event::StreamEnded { stream: s.id });
                false
            } else {
                true
            }
        });
    }

    /// A tag of stream `id`, through its clock. It says how many gaps came in its media's
    /// direction since the stream began (at least 1 once its chunk stream was read after
    /// one: `resumed`).
    fn emit(&mut self, id: u32, time: (TimeBase, u32, bool), mut ev: Event, out: &mut Vec<Event>) {
        let (base, resumed, stale) = time;
        let (gaps, now) = (self.gaps, self.now_ms);
        match self.streams.iter_mut().find(|s| s.id == id) {
            Some(s) => {
                s.gaps = s
                    .gaps
                    .max(gaps[media_dir(s.role).index()].wrapping_sub(s.gaps_at_start))
                    .max((resumed != 0) as u32);
                if let Event::Tag { gaps, .. } = &mut ev {
                    *gaps = s.gaps;
                }
                s.clock.tag_with(base, resumed, stale, now, ev, out)
            }
            None => out.push(ev),
        }
    }

    /// A command ends the streams `pred` picks. One whose media come the other way, where
    /// that direction still holds bytes back, is kept open for the media it will deliver.
    fn end_commanded(&mut self, pred: impl Fn(&ActiveStream) -> bool, out: &mut Vec<Event>) {
        let holding = self.holding;
        let held = |s: &ActiveStream| holding[media_dir(s.role).index()];
        for s in self.streams.iter_mut().filter(|s| pred(s) && held(s)) {
            s.closing = true;
        }
        self.end_where(|s| pred(s) && !held(s), out);
    }

    /// Direction `dir` holds nothing back now: streams kept open for its media end.
    pub fn end_held(&mut self, dir: Dir, out: &mut Vec<Event>) {
        if self.streams.iter().any(|s| s.closing) {
            self.end_where(|s| s.closing && media_dir(s.role) == dir, out);
        }
    }

    /// The connection is over: every open stream ends.
    pub fn close(&mut self, out: &mut Vec<Event>) {
        self.end_where(|_| true, out);
    }

    fn command(&mut self, dir: Dir, msg: &Message, body: &[u8], out: &mut Vec<Event>) {
        let (vals, err) = amf0::decode_all(body, self.limits.amf_depth, self.limits.amf_elements);
        if let Some(e) = err {
            self.amf_error(e, msg);
        }
        let Some(name) = vals.first().and_then(|v| v.as_bytes()) else {
            return;
        };
        let tx = vals.get(1).and_then(Value::as_number);
        let arg = |i: usize| vals.get(3 + i);
        match (dir, name) {
            (Dir::ClientToServer, b"connect") => {
                if let Some(obj) = vals.get(2) {
                    self.connect = self.connect_info(obj);
                }
            }
            (Dir::ClientToServer, b"createStream") => {
                if let Some(tx) = tx {
                    if self.pending_create.len() >= MAX_SESSION_RECORDS {
                        self.pending_create.remove(0);
                    }
                    self.pending_create.push(tx);
                }
            }
            (Dir::ServerToClient, b"_result") => {
                if let (Some(tx), Some(id)) = (tx, arg(0).and_then(Value::as_number)) {
                    self.stream_created(tx, id);
                }
            }
            (Dir::ClientToServer, b"releaseStream" | b"FCPublish") => {
                if let Some(n) = arg(0).and_then(|v| v.as_bytes()) {
                    self.announced = Some(self.text("stream name", n));
                }
            }
            (Dir::ClientToServer, b"publish") => {
                let n = arg(0)
                    .and_then(|v| v.as_bytes())
                    .map(|n| self.text("stream name", n));
                if self.start(msg.msid, Role::Publish, n, out).is_some()
                    && let Some(s) = self.streams.last_mut()
                {
                    s.commanded = true;
                }
            }
            (Dir::ClientToServer, b"play") => {
                let n = arg(0)
                    .and_then(|v| v.as_bytes())
                    .map(|n| self.text("stream name", n));
                if self.start(msg.msid, Role::Play, n, out).is_some()
                    && let Some(s) = self.streams.last_mut()
                {
                    s.commanded = true;
                }
            }
            (Dir::ClientToServer, b"deleteStream") => {
                if let Some(id) = arg(0).and_then(Value::as_number) {
                    self.end_commanded(|s| s.msid as f64 == id, out);
                }
            }
            (Dir::ClientToServer, b"closeStream") => {
                let msid = msg.msid;
                self.end_commanded(|s| s.msid == msid, out);
            }
            (Dir::ServerToClient, b"onStatus") => {
                if let Some(code) = arg(0).and_then(|o| o.get("code")).and_then(Value::as_bytes)
                    && self.status_codes.len() < MAX_SESSION_RECORDS
                {
                    let code = self.text("status code", code);
                    self.status_codes.push(code);
                }
            }
            _ => {}
        }
    }

    /// What the command object of a `connect` says of the connection.
    fn connect_info(&mut self, obj: &Value) -> ConnectInfo {
        let mut s = |k: &'static str| {
            let v = obj.get(k).and_then(|v| v.as_bytes())?;
            Some(self.text(k, v))
        };
        ConnectInfo {
            app: s("app"),
            tc_url: s("tcUrl"),
            flash_ver: s("flashVer"),
            swf_url: s("swfUrl"),
            page_url: s("pageUrl"),
            object_encoding: obj.get("objectEncoding").and_then(Value::as_number),
        }
    }

    /// A `_result` for transaction `tx` with a number: if it answers a `createStream`, the
    /// message stream id it made.
    fn stream_created(&mut self, tx: f64, id: f64) {
        if let Some(i) = self.pending_create.iter().position(|&t| t == tx) {
            self.pending_create.remove(i);
            if self.created.len() < MAX_SESSION_RECORDS && id >= 0.0 && id <= u32::MAX as f64 {
                self.created.push(id as u32);
            }
        }
    }

    fn data(&mut self, dir: Dir, msg: &Message, body: Bytes, out: &mut Vec<Event>) {
        let (depth, elements) = (self.limits.amf_depth, self.limits.amf_elements);
        let mut r = amf0::Reader::new(&body, depth, elements);
        let first = match r.value() {
            Ok(v) => v,
            Err(e) => {
                self.amf_error(e, msg);
                return;
            }
        };
        let after_first = r.position();
        let tag_body = match first.as_bytes() {
            Some(b"@setDataFrame") => {
                let mut r2 = amf0::Reader::new(&body[after_first..], depth, elements);
                match r2.value() {
                    Ok(v) if v.as_bytes().is_some() => body.slice(after_first..),
                    // Some encoders omit the handler name: supply it.
                    _ => {
                        let mut b = Vec::with_capacity(body.len() + 13);
                        amf0::encode(&Value::String(b"onMetaData".to_vec()), &mut b);
                        b.extend_from_slice(&body[after_first..]);
                        Bytes::from(b)
                    }
                }
            }
            Some(b"onMetaData" | b"onTextData" | b"onCuePoint" | b"onFI" | b"onCaption") => body,
            _ => return,
        };
        if let Some(id) = self.stream_for(dir, msg.msid, out) {
            let ev = Event::Tag {
                stream: id,
                kind: TagKind::Script,
                timestamp: msg.timestamp,
                body: tag_body,
                frame: msg.frame,
                gaps: 0,
            };
            self.emit(id, (msg.base, msg.resumed, msg.stale_delta), ev, out);
        }
    }

    /// Split an aggregate message into its sub-messages (FLV-style tags).
    fn aggregate(&mut self, dir: Dir, msg: &Message, out: &mut Vec<Event>) {
        let b = &msg.body;
        let mut pos = 0usize;
        let mut first_ts: Option<u32> = None;
        while pos + 11 <= b.len() {
            let t = b[pos];
            let size = u32::from_be_bytes([0, b[pos + 1], b[pos + 2], b[pos + 3]]) as usize;
            let ts = u32::from_be_bytes([b[pos + 7], b[pos + 4], b[pos + 5], b[pos + 6]]);
            let start = pos + 11;
            let Some(end) = start.checked_add(size).filter(|&e| e <= b.len()) else {
                self.warn(Warning::AggregateCut { offset: msg.offset });
                return;
            };
            let base = *first_ts.get_or_insert(ts);
            let sub = Message {
                base: msg.base,
                resumed: msg.resumed,
                stale_delta: msg.stale_delta,
                csid: msg.csid,
                msid: msg.msid,
                type_id: t,
                timestamp: msg.timestamp.wrapping_add(ts.wrapping_sub(base)),
                body: b.slice(start..end),
                offset: msg.offset,
                frame: msg.frame,
            };
            match t {
                types::AUDIO | types::VIDEO | types::DATA_AMF0 => self.on_message(dir, sub, out),
                _ => {}
            }
            // The back-pointer (previous tag size) follows the data.
            pos = end + 4;
        }
    }
}

fn media_dir(role: Role) -> Dir {
    match role {
        Role::Publish => Dir::ClientToServer,
        Role::Play => Dir::ServerToClient,
    }
}

fn media_role(dir: Dir) -> Role {
    match dir {
        Dir::ClientToServer => Role::Publish,
        Dir::ServerToClient => Role::Play,
    }
}
