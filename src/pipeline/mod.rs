//! The pipeline from captured frames to stream events: decode, connection table, TCP
//! reassembly, RTMP. No I/O here: frames and their timestamps come in, events go out.

use std::net::SocketAddr;

use bytes::Bytes;
use serde::Serialize;

use crate::capture::Frame;
use crate::config::{Config, LimitHits, Limits};
use crate::decode::{self, Segment};
use crate::flow::{self, ConnId, ConnKey, Dir, Held, StreamEvent, Streams, Table};
use crate::rtmp::{self, Role, TagKind};
use crate::transport::rtmpt::TunnelEvent;
use crate::transport::tls::{KeyLog, KeysFrom};
use crate::transport::{Context, Transport, Up};

mod facts;
mod tunnels;

use facts::Origin;
pub use facts::{ConnectionFacts, MAX_TUNNEL_CONNECTIONS, TunnelConn, TunnelFacts};
use tunnels::{Carrier, Tunnels};

/// What the pipeline hands to the sinks.
#[derive(Clone, Debug)]
pub enum Output {
    StreamStarted {
        conn: ConnId,
        client: SocketAddr,
        server: SocketAddr,
        app: Option<Vec<u8>>,
        stream: u32,
        msid: u32,
        role: Role,
        name: Option<Vec<u8>>,
        /// The connection was joined mid-stream: video waits for a keyframe.
        mid_stream: bool,
    },
    Tag {
        conn: ConnId,
        stream: u32,
        kind: TagKind,
        timestamp: u32,
        body: Bytes,
        frame: u64,
        /// See [`crate::rtmp::Event::Tag`].
        gaps: u32,
    },
    StreamEnded {
        conn: ConnId,
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
    /// Segments dropped for a wrong TCP checksum (where checksums are checkable).
    pub bad_checksums: u64,
    pub connections: u64,
    pub connections_evicted: u64,
    /// Connections closed for carrying nothing for [`Config::idle_timeout`] of packet time.
    pub connections_expired: u64,
    /// Limits reached over the whole input, summed over connections.
    pub limit_hits: LimitHits,
}

impl Stats {
    /// Another pipeline's counters added (the workers of one live capture make one report).
    pub fn add(&mut self, o: &Stats) {
        self.frames += o.frames;
        self.bytes += o.bytes;
        self.truncated_frames += o.truncated_frames;
        self.tcp_segments += o.tcp_segments;
        self.not_tcp += o.not_tcp;
        self.malformed += o.malformed;
        self.fragments += o.fragments;
        self.bad_checksums += o.bad_checksums;
        self.connections += o.connections;
        self.connections_evicted += o.connections_evicted;
        self.connections_expired += o.connections_expired;
        self.limit_hits.add(&o.limit_hits);
    }
}

/// What the layers above TCP keep for one connection: how RTMP is carried, and the RTMP read
/// from it (unused when the connection is part of an RTMPT session, whose RTMP is read in
/// [`tunnels`]).
struct Upper {
    transport: Transport,
    rtmp: rtmp::Connection,
    /// The start of the connection was not captured (data came before any SYN).
    mid_stream: bool,
}

/// Where what the transport hands up goes: RTMP bytes into the connection's own RTMP, tunnel
/// events kept for the pipeline to join.
struct UpSink<'a> {
    events: &'a mut Vec<rtmp::Event>,
    tunnel: &'a mut Vec<TunnelEvent>,
    keys: &'a KeyLog,
    tls_backlog: usize,
}

impl<'a> UpSink<'a> {
    /// What the transport needs (the keys are borrowed for as long as the sink's, not from it).
    fn cx(keys: &'a KeyLog, tls_backlog: usize, mid_stream: bool) -> Context<'a> {
        Context {
            keys,
            tls_backlog,
            mid_stream,
            inside_tls: false,
        }
    }
}

impl Upper {
    fn new(limits: &Limits) -> Self {
        Upper {
            transport: Transport::default(),
            rtmp: rtmp::Connection::new(limits.clone()),
            mid_stream: false,
        }
    }

    /// One event of TCP direction `dir`, through the transport into RTMP.
    fn stream_event(&mut self, dir: Dir, ev: StreamEvent<'_>, frame: u64, to: &mut UpSink<'_>) {
        let Upper {
            transport,
            rtmp,
            mid_stream,
        } = self;
        let cx = UpSink::cx(to.keys, to.tls_backlog, *mid_stream);
        transport.stream_event(dir, ev, frame, cx, &mut |up| match up {
            Up::Rtmp(d, ev, frame) => rtmp.stream_event(d, ev, frame, to.events),
            Up::Tunnel(te) => to.tunnel.push(te),
        });
    }

    /// The connection ended: what the transport still holds goes up, then RTMP finishes.
    fn close(&mut self, frame: u64, to: &mut UpSink<'_>) {
        let Upper {
            transport,
            rtmp,
            mid_stream,
        } = self;
        let cx = UpSink::cx(to.keys, to.tls_backlog, *mid_stream);
        transport.finish(frame, cx, &mut |up| match up {
            Up::Rtmp(d, ev, frame) => rtmp.stream_event(d, ev, frame, to.events),
            Up::Tunnel(te) => to.tunnel.push(te),
        });
        rtmp.close(frame, to.events);
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
    /// RTMPT sessions, each carried by one or more of the table's connections.
    tunnels: Tunnels,
    events: Vec<rtmp::Event>,
    /// Tunnel events of the segment being handled, for [`Tunnels`].
    tunnel_events: Vec<TunnelEvent>,
    /// TLS keys: the key logs given and those the inputs carry.
    keys: KeyLog,
    out: Vec<Output>,
    /// Counters of the frames (the table keeps those of connections).
    frames: Stats,
}

impl Pipeline {
    pub fn new(config: Config) -> Self {
        Pipeline {
            table: Table::new(config.limits.clone(), config.idle_timeout),
            tunnels: Tunnels::new(&config.limits),
            config,
            events: Vec::new(),
            tunnel_events: Vec::new(),
            // Text added by `extend_keys` comes from key log files.
            keys: KeyLog::new(KeysFrom::KeyLogFile),
            out: Vec::new(),
            frames: Stats::default(),
        }
    }

    /// Keys for TLS connections (RTMPS): a key log, as `--tls-keylog` names one or a capture
    /// carries one. Connections that held records waiting for their keys decrypt them now.
    pub fn add_keys(&mut self, log: &KeyLog) {
        self.keys.merge(log);
        self.keys_added();
    }

    /// More bytes of a key log file that grows while the capture runs (an encoder appends a
    /// line per new connection); a line cut short waits for the rest.
    pub fn extend_keys(&mut self, text: &[u8]) {
        let before = self.keys.len();
        self.keys.extend_from(text);
        if self.keys.len() != before {
            self.keys_added();
        }
    }

    fn keys_added(&mut self) {
        let Pipeline {
            table,
            events,
            tunnel_events,
            keys,
            out,
            ..
        } = self;
        let mut carried = Vec::new();
        for c in table.conns_mut() {
            let frame = c.last_frame;
            if let Some(s) = c.streams.as_mut() {
                let Upper {
                    transport, rtmp, ..
                } = &mut s.upper;
                let cx = UpSink::cx(keys, 0, false);
                transport.keys_added(frame, cx, &mut |up| match up {
                    Up::Rtmp(d, ev, frame) => rtmp.stream_event(d, ev, frame, events),
                    Up::Tunnel(te) => tunnel_events.push(te),
                });
            }
            facts::forward(&Origin::of(c), events, out);
            if !tunnel_events.is_empty() {
                carried.push((
                    Carrier::of(c, c.last_seen, frame),
                    std::mem::take(tunnel_events),
                ));
            }
        }
        // RTMPT over TLS: what the keys opened joins its sessions.
        for (from, made) in carried {
            self.tunnel_events = made;
            self.join_tunnels(from);
        }
    }

    /// Number connections `first`, `first + step`, ...: one of `step` pipelines sharing a
    /// run (a live capture's workers), whose connections then have numbers of their own.
    pub fn number_from(&mut self, first: u64, step: u64) {
        self.table.number_from(first, step);
    }

    /// Connection numbers given so far (from 0, one at a time unless
    /// [`number_from`](Self::number_from) said otherwise).
    pub fn ids_given(&self) -> u64 {
        self.table.ids_given()
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

    /// Connections known not to carry readable RTMP (not RTMP, RTMPE, a failed handshake, a
    /// direction that searched for chunk headers in vain and gave up), for a live capture's
    /// queue, which drops their frames first when it fills: a hostile flow is shed before a
    /// real stream loses a packet.
    pub fn dead_connections(&mut self) -> Vec<ConnKey> {
        self.table
            .conns_mut()
            .filter(|c| {
                c.streams.as_ref().is_some_and(|s| {
                    (s.upper.rtmp.is_dead() || !s.upper.rtmp.gave_up.is_empty())
                        && !s.upper.transport.is_http()
                })
            })
            .map(|c| ConnKey::new(c.client, c.server))
            .collect()
    }

    /// Whether no output waits to be taken.
    #[inline]
    pub fn is_idle(&self) -> bool {
        self.out.is_empty()
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
        // Computed once (every payload byte goes through it): the table judges by it.
        let ck = seg.checksum();
        if let Some(c) = self.table.restarted(key, seg, ck) {
            self.close(c);
        }
        if self.table.is_full_for(key) {
            if roles(&self.config, seg).is_none() || self.table.corrupted_new(seg, ck) {
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
            tunnel_events,
            keys,
            out,
            ..
        } = self;
        let Some(a) = table.admit(key, seg, ck, || roles(config, seg), ts, frame) else {
            return;
        };
        let (c, dir) = (&mut *a.conn, a.dir);
        c.ensure_streams(seg, dir, &config.limits, || Upper::new(&config.limits));
        if let Some(s) = c.streams.as_mut() {
            let mut to = UpSink {
                events,
                tunnel: tunnel_events,
                keys,
                tls_backlog: config.tls_backlog,
            };
            feed(s, seg, dir, ts, frame, &mut to);
        }
        facts::forward(&Origin::of(c), events, out);
        let carrier = Carrier::of(c, ts, frame);
        let over = a.touched(seg);
        self.join_tunnels(carrier);
        for c in self.table.after_touch(key, over) {
            self.close(c);
        }
    }

    /// The tunnel events a connection just made, into their RTMPT sessions.
    fn join_tunnels(&mut self, from: Carrier) {
        if self.tunnel_events.is_empty() {
            return;
        }
        let Pipeline {
            table,
            tunnels,
            tunnel_events,
            out,
            ..
        } = self;
        for te in tunnel_events.drain(..) {
            tunnels.event(from, te, &mut || table.new_id(), out);
        }
    }

    /// Flush and close one connection the table let go of.
    fn close(&mut self, mut c: Box<Conn>) {
        let frame = c.last_frame;
        if let Some(s) = c.streams.as_mut() {
            let Streams { reasm, upper } = &mut **s;
            let mut to = UpSink {
                events: &mut self.events,
                tunnel: &mut self.tunnel_events,
                keys: &self.keys,
                tls_backlog: self.config.tls_backlog,
            };
            for dir in [Dir::ClientToServer, Dir::ServerToClient] {
                reasm[dir.index()]
                    .flush(frame, &mut |ev| upper.stream_event(dir, ev, frame, &mut to));
            }
            upper.close(frame, &mut to);
        }
        facts::forward(&Origin::of(&c), &mut self.events, &mut self.out);
        self.join_tunnels(Carrier::of(&c, c.last_seen, frame));
        let mut f = facts::facts(&c);
        f.list_gave_up = !self.config.any_port;
        self.ended(f);
    }

    /// A connection's (or RTMPT session's) facts, handed up.
    fn ended(&mut self, f: ConnectionFacts) {
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
    /// [`CLOSE_BATCH`](flow::table::CLOSE_BATCH) of them and says whether any remain. Taking
    /// the outputs between calls keeps what is held to a batch's reports (a hundred thousand
    /// connections open at the end of a capture held all their reports at once). Once every
    /// TCP connection is closed, the RTMPT sessions they carried end too.
    pub fn finish_some(&mut self) -> bool {
        let (closed, more) = self.table.finish_some();
        for c in closed {
            self.close(c);
        }
        if !more {
            // Every TCP connection has handed on what it held: the sessions they carried end.
            let mut out = Vec::new();
            self.tunnels.finish(self.frames.frames, &mut out);
            for o in out {
                match o {
                    Output::ConnectionEnded(f) => self.ended(*f),
                    o => self.out.push(o),
                }
            }
        }
        more
    }
}

/// What a frame is to a live capture's queue before the pipeline has it: the connection it
/// belongs to (either direction gives the same key), or `None` when it is no TCP segment the
/// pipeline would read; and whether the pipeline would follow it at all (its ports).
pub fn flow_of(config: &Config, linktype: i32, data: &[u8]) -> Option<(ConnKey, bool)> {
    let seg = decode::decode(linktype, data).ok()?;
    let followed = config.any_port
        || config.ports.contains(&seg.src.port())
        || config.ports.contains(&seg.dst.port());
    Some((ConnKey::new(seg.src, seg.dst), followed))
}

/// A segment's bytes into its direction's reassembler, and its acknowledgement into the
/// other's; what they hand on goes up through the transport into RTMP.
fn feed(
    s: &mut Streams<Upper>,
    seg: &Segment<'_>,
    dir: Dir,
    ts: f64,
    frame: u64,
    to: &mut UpSink<'_>,
) {
    let Streams { reasm, upper } = s;
    let plain = matches!(upper.transport, Transport::Plain);
    upper.rtmp.set_time(ts, plain);
    if !seg.flags.syn && !seg.payload.is_empty() && !reasm[dir.index()].started() {
        // Data before any SYN of this direction: the capture began after its start.
        upper.mid_stream = true;
        upper.rtmp.start_unknown(dir);
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
        upper.stream_event(dir, ev, frame, to)
    });
    if plain && let Some(offset) = mine.stream_offset(seg.seq) {
        // After it went through: bytes it delivered at once were timed by `set_time`.
        upper.rtmp.arrived(dir, offset, payload.len(), ts);
    }
    if seg.flags.ack {
        theirs.peer_ack(seg.ack, frame, &mut |ev| {
            upper.stream_event(dir.other(), ev, frame, to)
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
