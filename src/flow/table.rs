//! The connection table: which TCP connections are tracked, for how long, and at what cost.
//!
//! It owns admission (a flow is tracked only if its ports or its SYN say it may be RTMP),
//! restart detection (a new SYN on a finished 4-tuple), the least-recently-active order in
//! three tiers, eviction at the connection limit, idle expiry in packet time, and the budget
//! of bytes buffered across all connections. It never closes a connection itself: every
//! method that decides one must go returns it, removed from the table, for the caller to
//! flush (its reassemblers still hold bytes) and report, in the order decided.
//!
//! The state of the layers above TCP is a type parameter: the table knows only how many bytes
//! it holds ([`Held`]).

// Connections leave the table as the boxes they live in (a `Conn` is large; moving the box
// copies a pointer), so lists of them are lists of boxes.
#![allow(clippy::vec_box)]

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use super::key::{ConnId, ConnKey, Dir};
use super::reassembly::Reassembler;
use crate::config::{LimitHits, Limits};
use crate::decode::{Checksum, Segment};

/// Connections closed at a time at the end of the input or for idleness.
pub const CLOSE_BATCH: usize = 256;

/// What the layers above TCP keep for a connection: the table counts its bytes against the
/// global budget.
pub trait Held {
    /// Bytes held (buffers, partial messages), as the memory limits count them.
    fn held_bytes(&self) -> usize;
}

/// The byte streams of a connection and what the layers above made of them.
#[derive(Debug)]
pub struct Streams<T> {
    /// Client to server, then server to client ([`Dir::index`]).
    pub reasm: [Reassembler; 2],
    pub upper: T,
}

impl<T: Held> Streams<T> {
    /// Bytes held: reassembly buffers and whatever the upper layers hold.
    fn memory(&self) -> usize {
        self.reasm[0].memory() + self.reasm[1].memory() + self.upper.held_bytes()
    }
}

/// Why a connection was closed before its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eviction {
    /// The connection limit: the least recently active was closed for a new one.
    Connections,
    /// The bytes buffered across all connections reached their limit.
    BufferedTotal,
    /// Nothing for the idle timeout of packet time.
    Idle,
}

impl Eviction {
    /// The limit it counts as reaching.
    pub fn hits(self) -> LimitHits {
        let mut h = LimitHits::default();
        match self {
            Eviction::Connections => h.connections = 1,
            Eviction::BufferedTotal => h.buffered_bytes_total = 1,
            Eviction::Idle => {}
        }
        h
    }
}

/// One TCP connection. A connection that is nothing but a client's SYN (a SYN flood, a port
/// scan) costs this record only, a few hundred bytes; its byte streams are set up by the first
/// segment that is not a bare SYN ([`Conn::ensure_streams`]).
#[derive(Debug)]
pub struct Conn<T> {
    pub id: ConnId,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub streams: Option<Box<Streams<T>>>,
    pub first_seen: f64,
    pub last_seen: f64,
    pub first_frame: u64,
    pub last_frame: u64,
    /// FIN seen per direction; RST seen.
    pub fin: [bool; 2],
    pub rst: bool,
    /// ISN of the client's SYN, to tell a retransmitted SYN from a new connection.
    client_isn: Option<u32>,
    /// TCP checksums seen per direction ([`Checksums`]): where they are checkable, a wrong
    /// one means corruption on the wire.
    checksums: [Checksums; 2],
    /// Segments dropped for a wrong checksum.
    pub bad_checksums: u64,
    /// When it was last active (the table's own clock, one tick per segment).
    tick: u64,
    /// Its key in `Table::lru[tier]`: the tick when it was put there. Moved only when its
    /// tier changes or when eviction or expiry come across it, not for every packet.
    lru_at: u64,
    /// How much it looks like a real connection, for eviction: 0 nothing but a SYN, 1 the
    /// server's SYN-ACK or data one way, 2 data both ways. Lower tiers are evicted first.
    tier: u8,
    synack: bool,
    /// Bytes it holds, as last accounted in the table's total.
    memory: usize,
    /// Why it was closed before its end, if it was.
    pub evicted: Option<Eviction>,
}

/// TCP checksums seen: `good` ones (right, or left to offloading: [`Checksum::Offloaded`])
/// and `wrong` ones. Where good ones are the majority, checksums are checkable and a wrong
/// one is corruption on the wire; where wrong ones are, the sender puts something else in
/// the field (offloading of another kind, a tool that writes none) and they mean nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checksums {
    pub good: u64,
    pub wrong: u64,
}

/// Checksums needed before a tally is believed alone (else it is taken together with the
/// sender's, then the run's).
const CHECKSUM_EVIDENCE: u64 = 8;
/// Senders whose checksums are tallied, by a hash of their address (a fixed table: a bucket
/// two senders share only mixes their evidence).
const SENDER_BUCKETS: usize = 4096;

impl Checksums {
    fn count(&mut self, ck: Checksum) {
        match ck {
            Checksum::Right | Checksum::Offloaded => self.good += 1,
            Checksum::Wrong => self.wrong += 1,
            Checksum::Unknown => {}
        }
    }

    fn total(&self) -> u64 {
        self.good + self.wrong
    }

    fn plus(self, o: Checksums) -> Checksums {
        Checksums {
            good: self.good + o.good,
            wrong: self.wrong + o.wrong,
        }
    }
}

/// Whether a segment whose checksum is `ck` was corrupted on the wire, from what is known of
/// checksums: its direction's (`dir`, none for a new connection), its sender's and the
/// run's, the most specific that has [`CHECKSUM_EVIDENCE`] (else all of them together). A
/// wrong checksum is corruption where good ones are the majority; with no evidence at all
/// nothing is dropped (a capture whose every checksum is wrong keeps working).
pub fn corrupted(ck: Checksum, dir: Checksums, sender: Checksums, run: Checksums) -> bool {
    if ck != Checksum::Wrong {
        return false;
    }
    let levels = [dir, dir.plus(sender), dir.plus(sender).plus(run)];
    let t = levels
        .iter()
        .find(|t| t.total() >= CHECKSUM_EVIDENCE)
        .unwrap_or(&levels[2]);
    t.good > t.wrong
}

impl<T> Conn<T> {
    /// Which way `seg` travels.
    fn dir_of(&self, seg: &Segment<'_>) -> Dir {
        if seg.src == self.client {
            Dir::ClientToServer
        } else {
            Dir::ServerToClient
        }
    }

    /// Checksums seen in direction `dir`.
    pub fn checksums(&self, dir: Dir) -> Checksums {
        self.checksums[dir.index()]
    }

    /// Set up the byte streams (with `upper` for the layers above) unless `seg` is a client's
    /// bare SYN, which needs nothing but its sequence number, kept already (a bare SYN from
    /// the server, a simultaneous open, sets up the streams like any other segment).
    pub fn ensure_streams(
        &mut self,
        seg: &Segment<'_>,
        dir: Dir,
        limits: &Limits,
        upper: impl FnOnce() -> T,
    ) {
        let bare_syn = dir == Dir::ClientToServer
            && seg.flags.syn
            && !seg.flags.ack
            && !seg.flags.fin
            && !seg.flags.rst
            && seg.payload.is_empty();
        if self.streams.is_some() || bare_syn {
            return;
        }
        let reasm = || Reassembler::new(limits.reassembly_bytes, limits.reassembly_segments);
        let mut s = Box::new(Streams {
            reasm: [reasm(), reasm()],
            upper: upper(),
        });
        if let Some(isn) = self.client_isn {
            s.reasm[0].syn(isn);
        }
        self.streams = Some(s);
    }

    /// Both directions ended (FIN reached in each), or the connection was reset.
    fn is_over(&self) -> bool {
        self.rst
            || self
                .streams
                .as_ref()
                .is_some_and(|s| s.reasm[0].finished() && s.reasm[1].finished())
    }
}

/// The table's own counters, for the run's statistics.
#[derive(Clone, Debug, Default)]
pub struct TableStats {
    /// Connections tracked, over the whole input.
    pub connections: u64,
    pub connections_evicted: u64,
    /// Connections closed for carrying nothing for the idle timeout of packet time.
    pub connections_expired: u64,
    /// Segments dropped for a wrong TCP checksum (where checksums are checkable).
    pub bad_checksums: u64,
}

/// The checksums tallied beyond one connection: per sender (hashed into a fixed table) and
/// over the run. A connection's first segments are judged by them.
struct ChecksumEvidence {
    senders: Box<[Checksums; SENDER_BUCKETS]>,
    hasher: foldhash::fast::RandomState,
    run: Checksums,
}

impl ChecksumEvidence {
    fn bucket(&self, src: SocketAddr) -> usize {
        use std::hash::BuildHasher;
        self.hasher.hash_one(src.ip()) as usize % SENDER_BUCKETS
    }

    /// Whether `seg` (checksum `ck`), in a direction whose tally is `dir`, was corrupted on
    /// the wire; then `seg` is counted (`count`: judged only, for a look ahead).
    fn judge(&mut self, seg: &Segment<'_>, ck: Checksum, dir: Checksums, count: bool) -> bool {
        let b = self.bucket(seg.src);
        let bad = corrupted(ck, dir, self.senders[b], self.run);
        if count {
            self.senders[b].count(ck);
            self.run.count(ck);
        }
        bad
    }
}

/// What one segment found in the table: its connection and direction, and (for
/// [`touched`](Admitted::touched), so that a segment costs one look-up) the table's order.
pub struct Admitted<'a, T> {
    pub conn: &'a mut Conn<T>,
    pub dir: Dir,
    key: ConnKey,
    lru: &'a mut [BTreeMap<u64, ConnKey>; 3],
    tick: &'a mut u64,
    by_memory: &'a mut BTreeSet<(usize, ConnKey)>,
    memory: &'a mut usize,
}

pub struct Table<T> {
    limits: Limits,
    idle_timeout: f64,
    /// Looked up several times per packet: foldhash (seeded per map, so hostile 4-tuples cannot
    /// aim at collisions) instead of SipHash, which was a tenth of the run.
    ///
    /// Boxed: a `Conn` is 1.7 KB, and a hash table keeps up to twice as many slots as entries,
    /// which made a SYN flood at the connection limit take 310 MB instead of 150.
    conns: foldhash::HashMap<ConnKey, Box<Conn<T>>>,
    next_id: u64,
    /// What each new connection adds to `next_id` (1; more when several tables share one
    /// run's numbers, see [`Table::number_from`]).
    id_step: u64,
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
    checksums: ChecksumEvidence,
    pub stats: TableStats,
}

impl<T: Held> Table<T> {
    pub fn new(limits: Limits, idle_timeout: f64) -> Self {
        Table {
            limits,
            idle_timeout,
            conns: Default::default(),
            next_id: 0,
            id_step: 1,
            lru: [BTreeMap::new(), BTreeMap::new(), BTreeMap::new()],
            tick: 0,
            by_memory: BTreeSet::new(),
            memory: 0,
            expiry_checked: f64::NEG_INFINITY,
            closing: None,
            checksums: ChecksumEvidence {
                senders: Box::new([Checksums::default(); SENDER_BUCKETS]),
                hasher: Default::default(),
                run: Checksums::default(),
            },
            stats: TableStats::default(),
        }
    }

    /// A new connection number, for a connection the layers above make of several of the
    /// table's (an RTMPT session): numbered with them, in the order they began.
    pub fn new_id(&mut self) -> ConnId {
        let id = ConnId(self.next_id);
        self.next_id += self.id_step;
        id
    }

    /// Numbers given so far (with a step of 1: the next connection's).
    pub fn ids_given(&self) -> u64 {
        self.next_id
    }

    /// Number connections `first`, `first + step`, `first + 2 step`, ...: several tables
    /// of one run (a live capture's workers) then never give two connections one number.
    pub fn number_from(&mut self, first: u64, step: u64) {
        self.next_id = first;
        self.id_step = step.max(1);
    }

    /// Every connection tracked, in no particular order.
    pub fn conns_mut(&mut self) -> impl Iterator<Item = &mut Conn<T>> {
        self.conns.values_mut().map(|c| &mut **c)
    }

    /// Connections tracked now.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Before a segment at packet time `now`: the connections that carried nothing for the
    /// idle timeout, looked for once per second of packet time.
    #[inline]
    pub fn expire_due(&mut self, now: f64) -> Vec<Box<Conn<T>>> {
        if (now - self.expiry_checked).abs() >= 1.0 {
            self.expire_idle(now)
        } else {
            Vec::new()
        }
    }

    /// A client's SYN (without ACK) on a 4-tuple that is finished, or that had a SYN with
    /// another ISN, starts a new connection: the old one is returned to be closed. A SYN
    /// corrupted on the wire (its checksum `ck`) starts nothing.
    #[inline]
    pub fn restarted(
        &mut self,
        key: ConnKey,
        seg: &Segment<'_>,
        ck: Checksum,
    ) -> Option<Box<Conn<T>>> {
        if !seg.flags.syn || seg.flags.ack {
            return None;
        }
        let c = self.conns.get(&key)?;
        if self
            .checksums
            .judge(seg, ck, c.checksums[c.dir_of(seg).index()], false)
        {
            return None;
        }
        let restart = seg.src == c.client
            && (c.rst
                || c.fin.iter().all(|&f| f)
                || c.client_isn.is_some_and(|isn| isn != seg.seq));
        if restart { self.remove(key) } else { None }
    }

    /// Room for `key` at the connection limit: when the table is full and `key` is new, the
    /// least recently active connection is returned to be closed (only call it for a flow
    /// that is to be tracked).
    pub fn make_room(&mut self, key: ConnKey) -> Option<Box<Conn<T>>> {
        if self.is_full_for(key) {
            self.evict_oldest()
        } else {
            None
        }
    }

    /// Whether `key` is new and the table is at its connection limit.
    #[inline]
    pub fn is_full_for(&self, key: ConnKey) -> bool {
        self.conns.len() >= self.limits.connections && !self.conns.contains_key(&key)
    }

    /// Whether `seg` (checksum `ck`), of a flow not in the table, was corrupted on the wire
    /// (so it must not make room for itself). Only judged: [`admit`](Self::admit) counts it.
    pub fn corrupted_new(&mut self, seg: &Segment<'_>, ck: Checksum) -> bool {
        self.checksums.judge(seg, ck, Checksums::default(), false)
    }

    /// The connection `seg` belongs to, created with `roles()` (client, server) when it is
    /// new (`None`: not a flow to track; asked only for a new flow). Counts its packet time
    /// and its checksum `ck`: a segment corrupted on the wire ([`corrupted`]) gives `None`,
    /// so that it neither opens, ends nor moves a connection.
    #[inline]
    pub fn admit(
        &mut self,
        key: ConnKey,
        seg: &Segment<'_>,
        ck: Checksum,
        roles: impl FnOnce() -> Option<(SocketAddr, SocketAddr)>,
        ts: f64,
        frame: u64,
    ) -> Option<Admitted<'_, T>> {
        let Table {
            conns,
            next_id,
            id_step,
            lru,
            tick,
            by_memory,
            memory,
            stats,
            checksums,
            ..
        } = self;
        let (c, judged) = match conns.entry(key) {
            Entry::Occupied(o) => (o.into_mut(), false),
            Entry::Vacant(v) => {
                if checksums.judge(seg, ck, Checksums::default(), true) {
                    // Not even a connection: a corrupted port or flag would make one.
                    stats.bad_checksums += 1;
                    return None;
                }
                let (client, server) = roles()?;
                let id = ConnId(*next_id);
                *next_id += *id_step;
                stats.connections += 1;
                *tick += 1;
                lru[0].insert(*tick, key);
                let c = v.insert(Box::new(Conn {
                    id,
                    client,
                    server,
                    streams: None,
                    first_seen: ts,
                    last_seen: ts,
                    first_frame: frame,
                    last_frame: frame,
                    fin: [false; 2],
                    rst: false,
                    client_isn: None,
                    checksums: [Checksums::default(); 2],
                    bad_checksums: 0,
                    tick: *tick,
                    lru_at: *tick,
                    tier: 0,
                    synack: false,
                    memory: 0,
                    evicted: None,
                }));
                (c, true)
            }
        };
        let dir = c.dir_of(seg);
        if !judged {
            let bad = checksums.judge(seg, ck, c.checksums[dir.index()], true);
            c.checksums[dir.index()].count(ck);
            if bad {
                c.bad_checksums += 1;
                stats.bad_checksums += 1;
                return None;
            }
        } else {
            c.checksums[dir.index()].count(ck);
        }
        c.last_seen = ts;
        c.last_frame = frame;
        if seg.flags.syn {
            c.synack |= seg.flags.ack && dir == Dir::ServerToClient;
            if dir == Dir::ClientToServer && c.client_isn.is_none() {
                c.client_isn = Some(seg.seq);
            }
        }
        Some(Admitted {
            conn: c,
            dir,
            key,
            lru,
            tick,
            by_memory,
            memory,
        })
    }

    /// After [`Admitted::touched`]: the connections to close, `key` itself when it is over,
    /// or those the memory budget closes.
    #[inline]
    pub fn after_touch(&mut self, key: ConnKey, over: bool) -> Vec<Box<Conn<T>>> {
        if over {
            self.remove(key).into_iter().collect()
        } else if self.memory > self.limits.buffered_bytes_total {
            self.enforce_memory_budget()
        } else {
            Vec::new()
        }
    }
}

impl<T: Held> Admitted<'_, T> {
    /// The segment was handled: its FIN and RST, then (unless that ended the connection, which
    /// it says) its activity, tier and the bytes it holds. [`Table::after_touch`] closes what
    /// must close.
    #[inline]
    pub fn touched(self, seg: &Segment<'_>) -> bool {
        let Admitted {
            conn: c,
            dir,
            key,
            lru,
            tick,
            by_memory,
            memory,
        } = self;
        if seg.flags.fin {
            c.fin[dir.index()] = true;
        }
        if seg.flags.rst {
            c.rst = true;
        }
        if c.is_over() {
            return true;
        }
        *tick += 1;
        c.tick = *tick;
        let data = c.streams.as_ref().map_or(0, |s| {
            s.reasm
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
        let held = c.streams.as_ref().map_or(0, |s| s.memory());
        if held != c.memory {
            by_memory.remove(&(c.memory, key));
            *memory = *memory - c.memory + held;
            c.memory = held;
            if held > 0 {
                by_memory.insert((held, key));
            }
        }
        false
    }
}

impl<T: Held> Table<T> {
    /// Over the global budget, the connection holding the most bytes is closed.
    fn enforce_memory_budget(&mut self) -> Vec<Box<Conn<T>>> {
        let mut closed = Vec::new();
        while self.memory > self.limits.buffered_bytes_total {
            let Some(&(_, key)) = self.by_memory.last() else {
                break;
            };
            if let Some(c) = self.conns.get_mut(&key) {
                c.evicted = Some(Eviction::BufferedTotal);
            }
            closed.extend(self.remove(key));
        }
        closed
    }

    /// Close the least recently active connection of the lowest tier (a SYN flood pushes out
    /// only its own SYNs, not the sessions that got answers or carried data).
    fn evict_oldest(&mut self) -> Option<Box<Conn<T>>> {
        let k = (0..self.lru.len()).find_map(|t| self.least_recent(t))?;
        self.stats.connections_evicted += 1;
        if let Some(c) = self.conns.get_mut(&k) {
            c.evicted = Some(Eviction::Connections);
        }
        self.remove(k)
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

    /// The connections that carried nothing for the idle timeout before packet time `now`.
    /// Each tier's LRU map is in order of activity, so only the expired entries, the entries
    /// of connections active since they were placed (which are moved), and one more per tier
    /// are looked at.
    ///
    /// At most [`CLOSE_BATCH`] are closed at a time (their outputs are taken before the next
    /// ones are made); when there were more, the next packet looks again.
    fn expire_idle(&mut self, now: f64) -> Vec<Box<Conn<T>>> {
        let limit = now - self.idle_timeout;
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
        let mut closed = Vec::with_capacity(idle.len());
        for key in idle {
            self.stats.connections_expired += 1;
            if let Some(c) = self.conns.get_mut(&key) {
                c.evicted = Some(Eviction::Idle);
            }
            closed.extend(self.remove(key));
        }
        closed
    }

    /// Take a connection out of the table, to be closed.
    pub fn remove(&mut self, key: ConnKey) -> Option<Box<Conn<T>>> {
        let c = self.conns.remove(&key)?;
        self.lru[c.tier as usize].remove(&c.lru_at);
        self.by_memory.remove(&(c.memory, key));
        self.memory -= c.memory;
        Some(c)
    }

    /// End of input, a few connections at a time in the order they began: up to
    /// [`CLOSE_BATCH`] of them, to be closed, and whether any remain.
    pub fn finish_some(&mut self) -> (Vec<Box<Conn<T>>>, bool) {
        let mut keys = self.closing.take().unwrap_or_else(|| {
            let mut keys: Vec<(ConnId, ConnKey)> =
                self.conns.iter().map(|(k, c)| (c.id, *k)).collect();
            // Latest first: they are taken from the end.
            keys.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
            keys.into_iter().map(|(_, k)| k).collect()
        });
        let mut closed = Vec::new();
        for _ in 0..CLOSE_BATCH {
            match keys.pop() {
                Some(k) => closed.extend(self.remove(k)),
                None => break,
            }
        }
        let more = !keys.is_empty();
        self.closing = more.then_some(keys);
        (closed, more)
    }
}

#[cfg(test)]
mod tests;
