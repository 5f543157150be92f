//! The pipeline from captured frames to stream events: decode, connection table, TCP
//! reassembly, RTMP. No I/O here: frames and their timestamps come in, events go out.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use bytes::Bytes;
use serde::Serialize;

use crate::config::{Config, LimitHits, LimitReport};
use crate::decode::{self, Segment};
use crate::flow::{ConnKey, Dir, Reassembler, StreamEvent};
use crate::rtmp::{self, Direction, HandshakeOutcome, TagKind};

/// A captured frame, borrowed from the capture layer.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Seconds since the epoch.
    pub ts: f64,
    /// 1-based frame number within its input file (as Wireshark numbers them).
    pub number: u64,
    pub linktype: i32,
    pub data: &'a [u8],
    /// Length on the wire (more than `data.len()` when the snap length cut it).
    pub orig_len: u32,
}

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
    ConnectionEnded(Box<ConnectionSummary>),
}

/// Where a direction was locked onto without a handshake (mid-stream start or after a gap).
#[derive(Clone, Debug, Serialize)]
pub struct LockReport {
    pub direction: &'static str,
    /// Stream offset of the first chunk header trusted.
    pub offset: u64,
    pub frame: u64,
    pub skipped_bytes: u64,
    pub chunk_size: u32,
    pub after_gap: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct GapReport {
    pub direction: &'static str,
    pub offset: u64,
    pub len: u64,
    pub frame: u64,
    pub reason: &'static str,
}

/// Everything the protocol layers learnt about one connection.
#[derive(Clone, Debug, Serialize)]
pub struct ConnectionSummary {
    pub id: u64,
    pub client: String,
    pub server: String,
    pub first_seen: f64,
    pub last_seen: f64,
    pub first_frame: u64,
    pub last_frame: u64,
    /// "seen", "missing" or "partial".
    pub handshake: &'static str,
    /// "simple" or "complex" when seen.
    pub handshake_type: Option<&'static str>,
    pub encrypted: bool,
    /// "rtmpe" (RTMP versions 6, 8, 9) or "tls"; nothing of either can be read passively.
    pub encryption: Option<&'static str>,
    pub rtmp_version: Option<u8>,
    pub app: Option<String>,
    pub tc_url: Option<String>,
    pub flash_ver: Option<String>,
    pub swf_url: Option<String>,
    pub page_url: Option<String>,
    /// Chunk sizes in force, in order, client to server and server to client.
    pub chunk_sizes_client: Vec<u32>,
    pub chunk_sizes_server: Vec<u32>,
    pub messages_client: u64,
    pub messages_server: u64,
    pub bytes_client: u64,
    pub bytes_server: u64,
    pub duplicate_bytes: u64,
    /// Retransmissions whose bytes differed from the first copy (the acknowledged one is kept).
    pub conflicting_retransmissions: u64,
    pub bad_checksums: u64,
    pub gaps: Vec<GapReport>,
    pub locks: Vec<LockReport>,
    pub status_codes: Vec<String>,
    pub warnings: Vec<String>,
    /// Limits this connection reached (only those reached are listed).
    pub limits_hit: Vec<LimitReport>,
    #[serde(skip)]
    pub is_rtmp: bool,
    #[serde(skip)]
    pub hits: LimitHits,
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

/// Connections closed at a time at the end of the input or for idleness.
pub const CLOSE_BATCH: usize = 256;

/// One TCP connection. A connection that is nothing but a client's SYN (a SYN flood, a port
/// scan) costs this record only, a few hundred bytes; its byte streams are set up by the first
/// segment that is not a bare SYN.
struct Conn {
    id: u64,
    client: SocketAddr,
    server: SocketAddr,
    flows: Option<Box<Flows>>,
    first_seen: f64,
    last_seen: f64,
    first_frame: u64,
    last_frame: u64,
    /// FIN seen per direction; RST seen.
    fin: [bool; 2],
    rst: bool,
    /// ISN of the client's SYN, to tell a retransmitted SYN from a new connection.
    client_isn: Option<u32>,
    /// Right and wrong TCP checksums seen per direction. Where right ones dominate, checksums
    /// are real (not left to offloading) and a wrong one means corruption on the wire.
    checksums: [(u64, u64); 2],
    bad_checksums: u64,
    /// When it was last active (the pipeline's own clock, one tick per segment).
    tick: u64,
    /// Its key in `Pipeline::lru[tier]`: the tick when it was put there. Moved only when its
    /// tier changes or when eviction or expiry come across it, not for every packet.
    lru_at: u64,
    /// How much it looks like a real connection, for eviction: 0 nothing but a SYN, 1 the
    /// server's SYN-ACK or data one way, 2 data both ways. Lower tiers are evicted first.
    tier: u8,
    synack: bool,
    /// Bytes it holds, as last accounted in the pipeline's total.
    memory: usize,
    /// Why it was closed before its end, if it was.
    evicted: Option<Eviction>,
}

/// The byte streams of a connection and the RTMP read from them.
struct Flows {
    reasm: [Reassembler; 2],
    rtmp: rtmp::Connection,
}

impl Flows {
    fn new(l: &crate::config::Limits) -> Box<Self> {
        Box::new(Flows {
            reasm: [
                Reassembler::new(l.reassembly_bytes, l.reassembly_segments),
                Reassembler::new(l.reassembly_bytes, l.reassembly_segments),
            ],
            rtmp: rtmp::Connection::new(l.clone()),
        })
    }

    /// Bytes held: reassembly buffers and partial messages.
    fn memory(&self) -> usize {
        self.reasm[0].memory() + self.reasm[1].memory() + self.rtmp.buffered_bytes()
    }
}

/// Why a connection was closed before its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Eviction {
    /// The connection limit: the least recently active was closed for a new one.
    Connections,
    /// The bytes buffered across all connections reached their limit.
    BufferedTotal,
    /// Nothing for the idle timeout of packet time.
    Idle,
}

impl Eviction {
    fn why(self) -> &'static str {
        match self {
            Eviction::Connections => "more connections than the connection limit were open",
            Eviction::BufferedTotal => {
                "the bytes buffered across all connections reached their limit"
            }
            Eviction::Idle => "nothing for the idle timeout of packet time",
        }
    }

    /// The pipeline-level limit it counts as reaching.
    fn hits(self) -> LimitHits {
        let mut h = LimitHits::default();
        match self {
            Eviction::Connections => h.connections = 1,
            Eviction::BufferedTotal => h.buffered_bytes_total = 1,
            Eviction::Idle => {}
        }
        h
    }
}

pub struct Pipeline {
    config: Config,
    /// Looked up several times per packet: foldhash (seeded per map, so hostile 4-tuples cannot
    /// aim at collisions) instead of SipHash, which was a tenth of the run.
    ///
    /// Boxed: a `Conn` is 1.7 KB, and a hash table keeps up to twice as many slots as entries,
    /// which made a SYN flood at the connection limit take 310 MB instead of 150.
    conns: foldhash::HashMap<ConnKey, Box<Conn>>,
    next_id: u64,
    events: Vec<rtmp::Event>,
    out: Vec<Output>,
    last_frame: u64,
    /// Least recently active first, one map per tier (see `Conn::tier`): eviction takes
    /// from the lowest tier that has any. An entry's place is the connection's activity when
    /// it was put there ([`Conn::lru_at`]); a connection active since is moved to its place
    /// when eviction or expiry come to it (so the order is kept without a map update per
    /// packet, which was a twentieth of the run).
    lru: [BTreeMap<u64, ConnKey>; 3],
    tick: u64,
    /// Connections by the bytes they hold, and the sum, for the global memory budget.
    by_memory: BTreeSet<(usize, ConnKey)>,
    memory: usize,
    /// Packet time of the last look for idle connections.
    expiry_checked: f64,
    /// At the end of the input, the connections still to close (latest first).
    closing: Option<Vec<ConnKey>>,
    pub stats: Stats,
}

impl Pipeline {
    pub fn new(config: Config) -> Self {
        Pipeline {
            config,
            conns: Default::default(),
            next_id: 0,
            events: Vec::new(),
            out: Vec::new(),
            last_frame: 0,
            lru: [BTreeMap::new(), BTreeMap::new(), BTreeMap::new()],
            tick: 0,
            by_memory: BTreeSet::new(),
            memory: 0,
            expiry_checked: f64::NEG_INFINITY,
            closing: None,
            stats: Stats::default(),
        }
    }

    /// Events produced so far; the caller takes them after each frame.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Output> {
        self.out.drain(..)
    }

    pub fn frame(&mut self, f: &Frame<'_>) {
        self.stats.frames += 1;
        self.stats.bytes += f.data.len() as u64;
        self.last_frame = f.number;
        if (f.data.len() as u64) < f.orig_len as u64 {
            self.stats.truncated_frames += 1;
        }
        let seg = match decode::decode(f.linktype, f.data) {
            Ok(s) => s,
            Err(decode::Skip::NotIp | decode::Skip::NotTcp) => {
                self.stats.not_tcp += 1;
                return;
            }
            Err(decode::Skip::Fragment) => {
                self.stats.fragments += 1;
                return;
            }
            Err(decode::Skip::Malformed) => {
                self.stats.malformed += 1;
                return;
            }
        };
        self.stats.tcp_segments += 1;
        self.segment(&seg, f.ts, f.number);
    }

    fn segment(&mut self, seg: &Segment<'_>, ts: f64, frame: u64) {
        if (ts - self.expiry_checked).abs() >= 1.0 {
            self.expire_idle(ts);
        }
        let key = ConnKey::new(seg.src, seg.dst);
        if seg.flags.syn && !seg.flags.ack {
            // A new SYN on a finished 4-tuple (or one with another ISN) starts a new connection.
            let restart = self.conns.get(&key).is_some_and(|c| {
                seg.src == c.client
                    && (c.rst
                        || c.fin.iter().all(|&f| f)
                        || c.client_isn.is_some_and(|isn| isn != seg.seq))
            });
            if restart {
                self.end(key);
            }
        }
        if self.conns.len() >= self.config.limits.connections && !self.conns.contains_key(&key) {
            if roles(&self.config, seg).is_none() {
                return;
            }
            self.evict_oldest();
        }
        // One look-up: everything below works on the connection and the pipeline's other
        // fields side by side.
        let Pipeline {
            config,
            conns,
            next_id,
            events,
            out,
            lru,
            tick,
            by_memory,
            memory,
            stats,
            ..
        } = self;
        let c = match conns.entry(key) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => {
                let Some((client, server)) = roles(config, seg) else {
                    return;
                };
                let id = *next_id;
                *next_id += 1;
                stats.connections += 1;
                *tick += 1;
                lru[0].insert(*tick, key);
                v.insert(Box::new(Conn {
                    id,
                    client,
                    server,
                    flows: None,
                    first_seen: ts,
                    last_seen: ts,
                    first_frame: frame,
                    last_frame: frame,
                    fin: [false; 2],
                    rst: false,
                    client_isn: None,
                    checksums: [(0, 0); 2],
                    bad_checksums: 0,
                    tick: *tick,
                    lru_at: *tick,
                    tier: 0,
                    synack: false,
                    memory: 0,
                    evicted: None,
                }))
            }
        };
        c.last_seen = ts;
        c.last_frame = frame;
        let dir = if seg.src == c.client {
            Dir::ClientToServer
        } else {
            Dir::ServerToClient
        };
        let ck = &mut c.checksums[dir.index()];
        match seg.checksum_ok() {
            Some(true) => ck.0 += 1,
            Some(false) if ck.0 >= 8 && ck.1 * 8 < ck.0 => {
                // Corrupted on the wire: the receiver dropped it too, and a retransmission
                // brings the right bytes.
                ck.1 += 1;
                c.bad_checksums += 1;
                stats.bad_checksums += 1;
                return;
            }
            Some(false) => ck.1 += 1,
            None => {}
        }
        if seg.flags.syn {
            c.synack |= seg.flags.ack && dir == Dir::ServerToClient;
            if dir == Dir::ClientToServer && c.client_isn.is_none() {
                c.client_isn = Some(seg.seq);
            }
        }
        // A client's bare SYN needs nothing but its sequence number, kept above (a bare SYN
        // from the server, a simultaneous open, sets up the streams like any other segment).
        let bare_syn = dir == Dir::ClientToServer
            && seg.flags.syn
            && !seg.flags.ack
            && !seg.flags.fin
            && !seg.flags.rst
            && seg.payload.is_empty();
        if c.flows.is_none() && !bare_syn {
            let mut f = Flows::new(&config.limits);
            if let Some(isn) = c.client_isn {
                f.reasm[0].syn(isn);
            }
            c.flows = Some(f);
        }
        if let Some(f) = c.flows.as_mut() {
            let Flows { reasm, rtmp } = &mut **f;
            if !seg.flags.syn && !seg.payload.is_empty() && !reasm[dir.index()].started() {
                // Data before any SYN of this direction: the capture began after its start.
                rtmp.start_unknown(dir);
            }
            if seg.flags.syn {
                reasm[dir.index()].syn(seg.seq);
            }
            let dead = rtmp.is_dead();
            let (a, b) = reasm.split_at_mut(1);
            let (mine, theirs) = if dir == Dir::ClientToServer {
                (&mut a[0], &mut b[0])
            } else {
                (&mut b[0], &mut a[0])
            };
            let payload = if dead { &[][..] } else { seg.payload };
            let mut deliver = |d: Dir, ev: StreamEvent<'_>| rtmp.stream_event(d, ev, frame, events);
            mine.segment(seg.seq, payload, seg.flags.fin, frame, &mut |ev| {
                deliver(dir, ev)
            });
            if seg.flags.ack {
                theirs.peer_ack(seg.ack, frame, &mut |ev| deliver(dir.other(), ev));
            }
        }
        if seg.flags.fin {
            c.fin[dir.index()] = true;
        }
        if seg.flags.rst {
            c.rst = true;
        }
        forward(c, events, out);
        let finished = c
            .flows
            .as_ref()
            .is_some_and(|f| f.reasm[0].finished() && f.reasm[1].finished());
        if c.rst || finished {
            self.end(key);
            return;
        }
        // Active now: its tier, and the bytes it holds.
        *tick += 1;
        c.tick = *tick;
        let data = c.flows.as_ref().map_or(0, |f| {
            f.reasm
                .iter()
                .filter(|r| r.stats.delivered_bytes > 0)
                .count()
        });
        let tier = match (data, c.synack) {
            (2, _) => 2,
            (1, _) | (_, true) => 1,
            _ => 0,
        };
        if tier != c.tier {
            lru[c.tier as usize].remove(&c.lru_at);
            c.tier = tier;
            c.lru_at = c.tick;
            lru[tier as usize].insert(c.lru_at, key);
        }
        let held = c.flows.as_ref().map_or(0, |f| f.memory());
        if held != c.memory {
            by_memory.remove(&(c.memory, key));
            *memory = *memory - c.memory + held;
            c.memory = held;
            if held > 0 {
                by_memory.insert((held, key));
            }
        }
        self.enforce_memory_budget();
    }

    /// Over the global budget, the connection holding the most bytes is closed.
    fn enforce_memory_budget(&mut self) {
        while self.memory > self.config.limits.buffered_bytes_total {
            let Some(&(_, key)) = self.by_memory.last() else {
                break;
            };
            if let Some(c) = self.conns.get_mut(&key) {
                c.evicted = Some(Eviction::BufferedTotal);
            }
            self.end(key);
        }
    }

    /// Close the least recently active connection of the lowest tier (a SYN flood pushes out
    /// only its own SYNs, not the sessions that got answers or carried data).
    fn evict_oldest(&mut self) {
        let oldest = (0..self.lru.len()).find_map(|t| self.least_recent(t));
        if let Some(k) = oldest {
            self.stats.connections_evicted += 1;
            if let Some(c) = self.conns.get_mut(&k) {
                c.evicted = Some(Eviction::Connections);
            }
            self.end(k);
        }
    }

    /// The least recently active connection of tier `t`: entries of connections active since
    /// they were placed are moved to where they belong on the way.
    fn least_recent(&mut self, t: usize) -> Option<ConnKey> {
        let lru = &mut self.lru[t];
        while let Some((&at, &key)) = lru.first_key_value() {
            match self.conns.get_mut(&key) {
                Some(c) if c.tick != at && c.lru_at == at => {
                    lru.remove(&at);
                    c.lru_at = c.tick;
                    lru.insert(c.tick, key);
                }
                Some(c) if c.lru_at == at => return Some(key),
                // Not an entry of a connection in the table (cannot happen): dropped.
                _ => {
                    lru.remove(&at);
                }
            }
        }
        None
    }

    /// Close the connections that carried nothing for the idle timeout before packet time
    /// `now`. Each tier's LRU map is in order of activity, so only the expired entries, the
    /// entries of connections active since they were placed (which are moved), and one more
    /// per tier are looked at.
    ///
    /// At most [`CLOSE_BATCH`] are closed at a time (their outputs are taken before the next
    /// ones are made); when there were more, the next packet looks again.
    fn expire_idle(&mut self, now: f64) {
        let limit = now - self.config.idle_timeout;
        let mut idle = Vec::new();
        let mut moved = Vec::new();
        for (t, lru) in self.lru.iter().enumerate() {
            for (&at, key) in lru {
                match self.conns.get(key) {
                    Some(_) if idle.len() == CLOSE_BATCH => break,
                    Some(c) if c.last_seen < limit => idle.push(*key),
                    Some(c) if c.tick != at => moved.push((t, at, *key, c.tick)),
                    _ => break,
                }
            }
        }
        if idle.len() < CLOSE_BATCH {
            self.expiry_checked = now;
        }
        for (t, at, key, tick) in moved {
            if let Some(c) = self.conns.get_mut(&key) {
                self.lru[t].remove(&at);
                c.lru_at = tick;
                self.lru[t].insert(tick, key);
            }
        }
        for key in idle {
            self.stats.connections_expired += 1;
            if let Some(c) = self.conns.get_mut(&key) {
                c.evicted = Some(Eviction::Idle);
            }
            self.end(key);
        }
    }

    /// Flush and close one connection.
    fn end(&mut self, key: ConnKey) {
        let Some(mut c) = self.conns.remove(&key) else {
            return;
        };
        self.lru[c.tier as usize].remove(&c.lru_at);
        self.by_memory.remove(&(c.memory, key));
        self.memory -= c.memory;
        let frame = c.last_frame;
        if let Some(f) = c.flows.as_mut() {
            let Flows { reasm, rtmp } = &mut **f;
            let events = &mut self.events;
            for dir in [Dir::ClientToServer, Dir::ServerToClient] {
                reasm[dir.index()]
                    .flush(frame, &mut |ev| rtmp.stream_event(dir, ev, frame, events));
            }
            rtmp.close(frame, events);
        }
        forward(&c, &mut self.events, &mut self.out);
        let s = summary(&c, &self.config.limits);
        self.stats.limit_hits.add(&s.hits);
        self.out.push(Output::ConnectionEnded(Box::new(s)));
    }

    /// End of input: every connection is flushed and closed, in the order they began.
    ///
    /// Every connection's outputs wait in [`drain`](Self::drain) until the end: a caller with
    /// many connections open should use [`finish_some`](Self::finish_some) instead.
    pub fn finish(&mut self) {
        while self.finish_some() {}
    }

    /// End of input, a few connections at a time (in the order they began): closes up to
    /// [`CLOSE_BATCH`] of them and says whether any remain. Taking the outputs between calls
    /// keeps what is held to a batch's reports (a hundred thousand connections open at the
    /// end of a capture held all their reports at once).
    pub fn finish_some(&mut self) -> bool {
        let mut keys = self.closing.take().unwrap_or_else(|| {
            let mut keys: Vec<(u64, ConnKey)> =
                self.conns.iter().map(|(k, c)| (c.id, *k)).collect();
            // Latest first: they are taken from the end.
            keys.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
            keys.into_iter().map(|(_, k)| k).collect()
        });
        for _ in 0..CLOSE_BATCH {
            match keys.pop() {
                Some(k) => self.end(k),
                None => break,
            }
        }
        let more = !keys.is_empty();
        self.closing = more.then_some(keys);
        more
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
                conn: c.id,
                client: c.client,
                server: c.server,
                app: c
                    .flows
                    .as_ref()
                    .and_then(|f| f.rtmp.session.connect.app.clone()),
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
                conn: c.id,
                stream,
                kind,
                timestamp,
                body,
                frame,
            },
            rtmp::Event::StreamEnded { stream } => Output::StreamEnded { conn: c.id, stream },
        });
    }
}

fn text(b: &Option<Vec<u8>>) -> Option<String> {
    b.as_deref().map(crate::sink::naming::escape)
}

fn dir_name(d: Dir) -> &'static str {
    match d {
        Dir::ClientToServer => "client_to_server",
        Dir::ServerToClient => "server_to_client",
    }
}

/// The limits a connection reached, at every layer.
fn limit_hits(c: &Conn, f: &Flows) -> LimitHits {
    let mut h = c.evicted.map(Eviction::hits).unwrap_or_default();
    h.add(&f.rtmp.limit_hits);
    h.add(&f.rtmp.session.limit_hits);
    for r in &f.reasm {
        h.reassembly_bytes += r.stats.byte_limit_hits;
        h.reassembly_segments += r.stats.segment_limit_hits;
    }
    h
}

fn summary(c: &Conn, limits: &crate::config::Limits) -> ConnectionSummary {
    // A connection that was nothing but a SYN reads as one whose streams carried nothing.
    let empty;
    let f = match &c.flows {
        Some(f) => f,
        None => {
            empty = Flows::new(limits);
            &empty
        }
    };
    let r = &f.rtmp;
    let hs = &r.handshake;
    let handshake = if hs.seen() {
        "seen"
    } else if hs.missing || hs.version.is_none() {
        "missing"
    } else {
        "partial"
    };
    let reader = |d: Dir| r.chunk_reader(d);
    let sizes = |d: Dir| {
        reader(d)
            .map(|x| x.stats.chunk_sizes.clone())
            .unwrap_or_default()
    };
    let msgs = |d: Dir| reader(d).map_or(0, |x| x.stats.messages);
    let mut gaps = Vec::new();
    for d in [Dir::ClientToServer, Dir::ServerToClient] {
        for g in &f.reasm[d.index()].stats.gaps {
            gaps.push(GapReport {
                direction: dir_name(d),
                offset: g.offset,
                len: g.len,
                frame: g.frame,
                reason: g.reason,
            });
        }
    }
    let mut warnings: Vec<String> = r.errors.iter().map(ToString::to_string).collect();
    warnings.extend(r.session.warnings.iter().map(ToString::to_string));
    for (d, name) in [
        (Dir::ClientToServer, "client"),
        (Dir::ServerToClient, "server"),
    ] {
        let st = &f.reasm[d.index()].stats;
        if st.byte_limit_hits > 0 {
            warnings.push(format!(
                "{name} direction: reassembly buffer limit ({} bytes) hit {} times",
                limits.reassembly_bytes, st.byte_limit_hits
            ));
        }
        if st.segment_limit_hits > 0 {
            warnings.push(format!(
                "{name} direction: out-of-order segment limit ({}) hit {} times",
                limits.reassembly_segments, st.segment_limit_hits
            ));
        }
        if r.skipped_bytes[d.index()] > 0 {
            warnings.push(format!(
                "{name} direction: {} bytes not decoded",
                r.skipped_bytes[d.index()]
            ));
        }
    }
    if let Some(e) = c.evicted {
        warnings.push(format!("closed before its end: {}", e.why()));
    }
    let hits = limit_hits(c, f);
    let s = &r.session.connect;
    ConnectionSummary {
        id: c.id,
        client: c.client.to_string(),
        server: c.server.to_string(),
        first_seen: c.first_seen,
        last_seen: c.last_seen,
        first_frame: c.first_frame,
        last_frame: c.last_frame,
        handshake,
        handshake_type: match hs.outcome {
            Some(HandshakeOutcome::Simple) => Some("simple"),
            Some(HandshakeOutcome::Complex) => Some("complex"),
            _ => None,
        },
        encrypted: matches!(
            hs.outcome,
            Some(HandshakeOutcome::Encrypted(_) | HandshakeOutcome::Tls)
        ),
        encryption: match hs.outcome {
            Some(HandshakeOutcome::Encrypted(_)) => Some("rtmpe"),
            Some(HandshakeOutcome::Tls) => Some("tls"),
            _ => None,
        },
        rtmp_version: hs.version,
        app: text(&s.app),
        tc_url: text(&s.tc_url),
        flash_ver: text(&s.flash_ver),
        swf_url: text(&s.swf_url),
        page_url: text(&s.page_url),
        chunk_sizes_client: sizes(Dir::ClientToServer),
        chunk_sizes_server: sizes(Dir::ServerToClient),
        messages_client: msgs(Dir::ClientToServer),
        messages_server: msgs(Dir::ServerToClient),
        bytes_client: f.reasm[0].stats.delivered_bytes,
        bytes_server: f.reasm[1].stats.delivered_bytes,
        duplicate_bytes: f.reasm[0].stats.duplicate_bytes + f.reasm[1].stats.duplicate_bytes,
        conflicting_retransmissions: f.reasm[0].stats.conflicts + f.reasm[1].stats.conflicts,
        bad_checksums: c.bad_checksums,
        gaps,
        locks: r
            .locks
            .iter()
            .map(|l| LockReport {
                direction: dir_name(l.dir),
                offset: l.offset,
                frame: l.frame,
                skipped_bytes: l.skipped,
                chunk_size: l.chunk_size,
                after_gap: l.after_gap,
            })
            .collect(),
        status_codes: r
            .session
            .status_codes
            .iter()
            .map(|c| crate::sink::naming::escape(c))
            .collect(),
        warnings,
        limits_hit: hits
            .report(limits)
            .into_iter()
            .filter(|l| l.hits > 0)
            .collect(),
        hits,
        is_rtmp: (hs.version.is_some() && !matches!(hs.outcome, Some(HandshakeOutcome::NotRtmp)))
            || matches!(hs.outcome, Some(HandshakeOutcome::Tls))
            || !r.locks.is_empty(),
    }
}
