//! The pipeline from captured frames to stream events: decode, connection table, TCP
//! reassembly, RTMP. No I/O here: frames and their timestamps come in, events go out.

use std::net::SocketAddr;

use bytes::Bytes;
use serde::Serialize;

use crate::capture::Frame;
use crate::config::{Config, LimitHits, Limits};
use crate::decode::{self, Segment};
use crate::flow::reassembly::ReassemblyStats;
use crate::flow::table::Admitted;
use crate::flow::{self, ConnId, ConnKey, Dir, Eviction, Held, StreamEvent, Streams, Table};
use crate::rtmp::{self, ConnectInfo, Direction, Handshake, HandshakeOutcome, LockRecord, TagKind};
use crate::transport::Transport;

/// What the pipeline hands to the sinks.
#[derive(Clone, Debug)]
pub enum Output {
    StreamStarted {
        conn: u64,
        client: SocketAddr,
        server: SocketAddr,
        app: Option<Vec<u8>>,
        stream: u32,
        msid: u32,
        direction: Direction,
        name: Option<Vec<u8>>,
        /// The connection was joined mid-stream: video waits for a keyframe.
        mid_stream: bool,
    },
    Tag {
        conn: u64,
        stream: u32,
        kind: TagKind,
        timestamp: u32,
        body: Bytes,
        frame: u64,
    },
    StreamEnded {
        conn: u64,
        stream: u32,
    },
    ConnectionEnded(Box<ConnectionFacts>),
}

/// Anything that takes the pipeline's outputs, in the order they are made: FLV files and a
/// report ([`crate::sink::FlvSink`]), or a list in a test. [`crate::run::Driver`] feeds it.
pub trait OutputSink {
    type Error;
    fn output(&mut self, o: Output) -> Result<(), Self::Error>;
}

/// What the layers learnt about one connection, handed up when it ends. Typed facts only:
/// the report (in sink) says in words what they mean.
#[derive(Clone, Debug)]
pub struct ConnectionFacts {
    pub id: ConnId,
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// Packet times (seconds since the epoch) and frame numbers of its first and last segment.
    pub first_seen: f64,
    pub last_seen: f64,
    pub first_frame: u64,
    pub last_frame: u64,
    /// Segments dropped for a wrong TCP checksum.
    pub bad_checksums: u64,
    /// Why it was closed before its end, if it was.
    pub evicted: Option<Eviction>,
    /// Per TCP direction ([`Dir::index`]): what reassembly handed on, saw twice, and lost.
    pub reassembly: [ReassemblyStats; 2],
    pub handshake: Handshake,
    pub connect: ConnectInfo,
    /// Per direction: the chunk sizes in force, in order, and the messages read.
    pub chunk_sizes: [Vec<u32>; 2],
    pub messages: [u64; 2],
    pub locks: Vec<LockRecord>,
    /// onStatus codes the server sent, in order.
    pub status_codes: Vec<String>,
    /// Problems of the chunk layer, then of the session, in order.
    pub warnings: Vec<String>,
    /// Per direction: bytes that could not be read (encrypted, not RTMP, passed over).
    pub skipped_bytes: [u64; 2],
    /// Every limit the connection reached, at every layer.
    pub hits: LimitHits,
}

impl ConnectionFacts {
    /// Whether it carried RTMP (or RTMPS) as far as could be told.
    pub fn is_rtmp(&self) -> bool {
        let hs = &self.handshake;
        (hs.version.is_some() && !matches!(hs.outcome, Some(HandshakeOutcome::NotRtmp)))
            || matches!(hs.outcome, Some(HandshakeOutcome::Tls))
            || !self.locks.is_empty()
    }
}

/// Counters over the whole input.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub frames: u64,
    pub bytes: u64,
    pub truncated_frames: u64,
    pub tcp_segments: u64,
    pub not_tcp: u64,
    pub malformed: u64,
    pub fragments: u64,
    /// Segments dropped for a wrong TCP checksum (in directions whose checksums are real).
    pub bad_checksums: u64,
    pub connections: u64,
    pub connections_evicted: u64,
    /// Connections closed for carrying nothing for [`Config::idle_timeout`] of packet time.
    pub connections_expired: u64,
    /// Limits reached over the whole input, summed over connections.
    pub limit_hits: LimitHits,
}

/// What the layers above TCP keep for one connection: how RTMP is carried, and the RTMP read
/// from it.
struct Upper {
    transport: Transport,
    rtmp: rtmp::Connection,
}

impl Upper {
    fn new(limits: &Limits) -> Self {
        Upper {
            transport: Transport::default(),
            rtmp: rtmp::Connection::new(limits.clone()),
        }
    }

    /// One event of TCP direction `dir`, through the transport into RTMP.
    fn stream_event(
        &mut self,
        dir: Dir,
        ev: StreamEvent<'_>,
        frame: u64,
        out: &mut Vec<rtmp::Event>,
    ) {
        let Upper { transport, rtmp } = self;
        transport.stream_event(dir, ev, &mut |d, ev| rtmp.stream_event(d, ev, frame, out));
    }
}

impl Held for Upper {
    fn held_bytes(&self) -> usize {
        self.transport.held_bytes() + self.rtmp.buffered_bytes()
    }
}

type Conn = flow::Conn<Upper>;

/// Frames in, [`Output`]s out: decode, the connection table and reassembly, transport, RTMP.
pub struct Pipeline {
    config: Config,
    table: Table<Upper>,
    events: Vec<rtmp::Event>,
    out: Vec<Output>,
    /// Counters of the frames (the table keeps those of connections).
    frames: Stats,
}

impl Pipeline {
    pub fn new(config: Config) -> Self {
        Pipeline {
            table: Table::new(config.limits.clone(), config.idle_timeout),
            config,
            events: Vec::new(),
            out: Vec::new(),
            frames: Stats::default(),
        }
    }

    /// Counters over the input so far.
    pub fn stats(&self) -> Stats {
        let t = &self.table.stats;
        Stats {
            bad_checksums: t.bad_checksums,
            connections: t.connections,
            connections_evicted: t.connections_evicted,
            connections_expired: t.connections_expired,
            ..self.frames.clone()
        }
    }

    /// Events produced so far; the caller takes them after each frame.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Output> {
        self.out.drain(..)
    }

    pub fn frame(&mut self, f: &Frame<'_>) {
        let stats = &mut self.frames;
        stats.frames += 1;
        stats.bytes += f.data.len() as u64;
        if (f.data.len() as u64) < f.orig_len as u64 {
            stats.truncated_frames += 1;
        }
        let seg = match decode::decode(f.linktype, f.data) {
            Ok(s) => s,
            Err(decode::Skip::NotIp | decode::Skip::NotTcp) => {
                stats.not_tcp += 1;
                return;
            }
            Err(decode::Skip::Fragment) => {
                stats.fragments += 1;
                return;
            }
            Err(decode::Skip::Malformed) => {
                stats.malformed += 1;
                return;
            }
        };
        stats.tcp_segments += 1;
        self.segment(&seg, f.ts, f.number);
    }

    fn segment(&mut self, seg: &Segment<'_>, ts: f64, frame: u64) {
        for c in self.table.expire_due(ts) {
            self.close(c);
        }
        let key = ConnKey::new(seg.src, seg.dst);
        if let Some(c) = self.table.restarted(key, seg) {
            self.close(c);
        }
        if self.table.is_full_for(key) {
            if roles(&self.config, seg).is_none() {
                return;
            }
            if let Some(c) = self.table.make_room(key) {
                self.close(c);
            }
        }
        let Pipeline {
            config,
            table,
            events,
            out,
            ..
        } = self;
        let roles = roles(config, seg);
        let Some(Admitted { conn: c, dir }) = table.admit(key, seg, roles, ts, frame) else {
            return;
        };
        c.ensure_streams(seg, dir, &config.limits, || Upper::new(&config.limits));
        if let Some(s) = c.streams.as_mut() {
            feed(s, seg, dir, frame, events);
        }
        forward(c, events, out);
        for c in self.table.touched(key, seg, dir) {
            self.close(c);
        }
    }

    /// Flush and close one connection the table let go of.
    fn close(&mut self, mut c: Box<Conn>) {
        let frame = c.last_frame;
        if let Some(s) = c.streams.as_mut() {
            let Streams { reasm, upper } = &mut **s;
            let events = &mut self.events;
            for dir in [Dir::ClientToServer, Dir::ServerToClient] {
                reasm[dir.index()]
                    .flush(frame, &mut |ev| upper.stream_event(dir, ev, frame, events));
            }
            upper.rtmp.close(frame, events);
        }
        forward(&c, &mut self.events, &mut self.out);
        let f = facts(&c);
        self.frames.limit_hits.add(&f.hits);
        self.out.push(Output::ConnectionEnded(Box::new(f)));
    }

    /// End of input: every connection is flushed and closed, in the order they began.
    ///
    /// Every connection's outputs wait in [`drain`](Self::drain) until the end: a caller with
    /// many connections open should use [`finish_some`](Self::finish_some) instead.
    pub fn finish(&mut self) {
        while self.finish_some() {}
    }

    /// End of input, a few connections at a time (in the order they began): closes up to
    /// [`CLOSE_BATCH`](flow::table::CLOSE_BATCH) of them and says whether any remain. Taking the outputs between calls
    /// keeps what is held to a batch's reports (a hundred thousand connections open at the
    /// end of a capture held all their reports at once).
    pub fn finish_some(&mut self) -> bool {
        let (closed, more) = self.table.finish_some();
        for c in closed {
            self.close(c);
        }
        more
    }
}

/// A segment's bytes into its direction's reassembler, and its acknowledgement into the
/// other's; what they hand on goes up through the transport into RTMP.
fn feed(
    s: &mut Streams<Upper>,
    seg: &Segment<'_>,
    dir: Dir,
    frame: u64,
    events: &mut Vec<rtmp::Event>,
) {
    let Streams { reasm, upper } = s;
    if !seg.flags.syn && !seg.payload.is_empty() && !reasm[dir.index()].started() {
        // Data before any SYN of this direction: the capture began after its start.
        if let Some(d) = upper.transport.start_unknown(dir) {
            upper.rtmp.start_unknown(d);
        }
    }
    if seg.flags.syn {
        reasm[dir.index()].syn(seg.seq);
    }
    let dead = upper.rtmp.is_dead();
    let (a, b) = reasm.split_at_mut(1);
    let (mine, theirs) = if dir == Dir::ClientToServer {
        (&mut a[0], &mut b[0])
    } else {
        (&mut b[0], &mut a[0])
    };
    let payload = if dead { &[][..] } else { seg.payload };
    mine.segment(seg.seq, payload, seg.flags.fin, frame, &mut |ev| {
        upper.stream_event(dir, ev, frame, events)
    });
    if seg.flags.ack {
        theirs.peer_ack(seg.ack, frame, &mut |ev| {
            upper.stream_event(dir.other(), ev, frame, events)
        });
    }
}

/// Client and server of a new flow, or `None` when the flow is not for us.
fn roles(config: &Config, seg: &Segment<'_>) -> Option<(SocketAddr, SocketAddr)> {
    let (sp, dp) = (seg.src.port(), seg.dst.port());
    let src_rtmp = config.ports.contains(&sp);
    let dst_rtmp = config.ports.contains(&dp);
    if seg.flags.syn && !seg.flags.ack && (dst_rtmp || config.any_port) {
        return Some((seg.src, seg.dst));
    }
    if seg.flags.syn && seg.flags.ack && (src_rtmp || config.any_port) {
        return Some((seg.dst, seg.src));
    }
    if seg.flags.rst || (seg.payload.is_empty() && !seg.flags.syn) {
        // Nothing to learn from a bare ACK or RST of a flow we have not seen start.
        return None;
    }
    match (src_rtmp, dst_rtmp) {
        (false, true) => Some((seg.src, seg.dst)),
        (true, false) => Some((seg.dst, seg.src)),
        (true, true) => Some(if sp >= dp {
            (seg.src, seg.dst)
        } else {
            (seg.dst, seg.src)
        }),
        (false, false) if config.any_port => {
            // Without a SYN, guess that the lower port is the server's.
            Some(if sp >= dp {
                (seg.src, seg.dst)
            } else {
                (seg.dst, seg.src)
            })
        }
        _ => None,
    }
}

/// Turn the RTMP events of a connection into outputs.
fn forward(c: &Conn, events: &mut Vec<rtmp::Event>, out: &mut Vec<Output>) {
    for ev in events.drain(..) {
        out.push(match ev {
            rtmp::Event::StreamStarted {
                stream,
                msid,
                direction,
                name,
                mid_stream,
            } => Output::StreamStarted {
                conn: c.id.0,
                client: c.client,
                server: c.server,
                app: c
                    .streams
                    .as_ref()
                    .and_then(|s| s.upper.rtmp.session.connect.app.clone()),
                stream,
                msid,
                direction,
                name,
                mid_stream,
            },
            rtmp::Event::Tag {
                stream,
                kind,
                timestamp,
                body,
                frame,
            } => Output::Tag {
                conn: c.id.0,
                stream,
                kind,
                timestamp,
                body,
                frame,
            },
            rtmp::Event::StreamEnded { stream } => Output::StreamEnded {
                conn: c.id.0,
                stream,
            },
        });
    }
}

/// The facts of a connection the table let go of (a connection that was nothing but a SYN
/// reads as one whose streams carried nothing).
fn facts(c: &Conn) -> ConnectionFacts {
    let mut hits = c.evicted.map(Eviction::hits).unwrap_or_default();
    let mut f = ConnectionFacts {
        id: c.id,
        client: c.client,
        server: c.server,
        first_seen: c.first_seen,
        last_seen: c.last_seen,
        first_frame: c.first_frame,
        last_frame: c.last_frame,
        bad_checksums: c.bad_checksums,
        evicted: c.evicted,
        reassembly: Default::default(),
        handshake: Handshake::default(),
        connect: ConnectInfo::default(),
        chunk_sizes: Default::default(),
        messages: [0, 0],
        locks: Vec::new(),
        status_codes: Vec::new(),
        warnings: Vec::new(),
        skipped_bytes: [0, 0],
        hits: LimitHits::default(),
    };
    if let Some(s) = &c.streams {
        let r = &s.upper.rtmp;
        for d in [Dir::ClientToServer, Dir::ServerToClient] {
            let i = d.index();
            let st = &s.reasm[i].stats;
            hits.reassembly_bytes += st.byte_limit_hits;
            hits.reassembly_segments += st.segment_limit_hits;
            f.reassembly[i] = st.clone();
            if let Some(reader) = r.chunk_reader(d) {
                f.chunk_sizes[i] = reader.stats.chunk_sizes.clone();
                f.messages[i] = reader.stats.messages;
            }
        }
        hits.add(&r.limit_hits);
        hits.add(&r.session.limit_hits);
        f.handshake = r.handshake.clone();
        f.connect = r.session.connect.clone();
        f.locks = r.locks.clone();
        f.status_codes = r.session.status_codes.clone();
        f.warnings = r.errors.clone();
        f.warnings.extend(r.session.warnings.iter().cloned());
        f.skipped_bytes = r.skipped_bytes;
    }
    f.hits = hits;
    f
}
