//! What the pipeline hands up about a connection: its outputs as they come, and its facts
//! when it ends.

use std::net::SocketAddr;

use super::{Conn, Output};
use crate::config::LimitHits;
use crate::flow::reassembly::ReassemblyStats;
use crate::flow::{ConnId, Dir, Eviction};
use crate::rtmp::{self, ConnectInfo, GaveUp, Handshake, HandshakeOutcome, LockRecord};
use crate::transport::rtmpt;
use crate::transport::tls::TlsInfo;

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
    /// Directions that searched for chunk headers too long and stopped.
    pub gave_up: Vec<GaveUp>,
    /// Whether a flow that never locked and gave up is listed (not with `--any-port`, where
    /// most flows searched are not RTMP at all).
    pub list_gave_up: bool,
    /// onStatus codes the server sent, in order, as sent.
    pub status_codes: Vec<Vec<u8>>,
    /// Problems of the chunk layer, then of the session, in order.
    pub warnings: Vec<rtmp::Warning>,
    /// Per direction: bytes that could not be read (encrypted, not RTMP, passed over).
    pub skipped_bytes: [u64; 2],
    /// Every limit the connection reached, at every layer.
    pub hits: LimitHits,
    /// An RTMPT session: its id and the TCP connections and requests that carried it (the
    /// addresses and times above are its first connection's).
    pub tunnel: Option<TunnelFacts>,
    /// RTMPS: what TLS showed in the clear, and what was decrypted.
    pub tls: Option<TlsInfo>,
}

/// What carried an RTMPT session.
#[derive(Clone, Debug)]
pub struct TunnelFacts {
    pub session: Vec<u8>,
    /// Its `/open` was captured (else it was first seen in its middle).
    pub start_seen: bool,
    pub closed: bool,
    /// The TCP connections it used, in the order they first carried it (at most
    /// [`MAX_TUNNEL_CONNECTIONS`]; `connections_dropped` counts the rest).
    pub connections: Vec<TunnelConn>,
    pub connections_dropped: u64,
    pub requests: rtmpt::KindCounts,
    /// Requests (SEQs) whose bytes were never captured, per RTMP direction.
    pub gaps: Vec<rtmpt::SessionGap>,
    pub gap_count: u64,
    /// Its requests came out of TLS connections (RTMPT over TLS, `rtmpts://`).
    pub over_tls: bool,
}

/// One TCP connection of an RTMPT session.
#[derive(Clone, Copy, Debug)]
pub struct TunnelConn {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub first_frame: u64,
    pub last_frame: u64,
}

/// TCP connections listed per RTMPT session in its facts.
pub const MAX_TUNNEL_CONNECTIONS: usize = 4096;

impl ConnectionFacts {
    /// A connection of which nothing is known yet but its id, addresses (client, server) and
    /// first and last packet times; its frames are set by the caller.
    pub(super) fn new(
        id: ConnId,
        (client, server): (SocketAddr, SocketAddr),
        seen: (f64, f64),
    ) -> Self {
        ConnectionFacts {
            id,
            client,
            server,
            first_seen: seen.0,
            last_seen: seen.1,
            first_frame: 0,
            last_frame: 0,
            bad_checksums: 0,
            evicted: None,
            reassembly: Default::default(),
            handshake: Handshake::default(),
            connect: ConnectInfo::default(),
            chunk_sizes: Default::default(),
            messages: [0, 0],
            locks: Vec::new(),
            gave_up: Vec::new(),
            list_gave_up: false,
            status_codes: Vec::new(),
            warnings: Vec::new(),
            skipped_bytes: [0, 0],
            hits: LimitHits::default(),
            tunnel: None,
            tls: None,
        }
    }

    /// Whether it carried RTMP (or RTMPS) as far as could be told.
    pub fn is_rtmp(&self) -> bool {
        let hs = &self.handshake;
        (hs.version.is_some() && !matches!(hs.outcome, Some(HandshakeOutcome::NotRtmp)))
            || matches!(hs.outcome, Some(HandshakeOutcome::Tls))
            || !self.locks.is_empty()
            || self.gave_up.iter().any(|g| g.after_lock || self.list_gave_up)
            // TLS that could not be read may carry RTMP; TLS that was read and is not RTMP
            // (HTTPS, say) is left out like any other TCP.
            || self.tls.as_ref().is_some_and(|t| !t.decrypted)
    }
}

/// Who a connection's outputs are from: its id, addresses and application.
pub(super) struct Origin<'a> {
    pub id: ConnId,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub app: Option<&'a Vec<u8>>,
}

impl<'a> Origin<'a> {
    pub fn of(c: &'a Conn) -> Self {
        Origin {
            id: c.id,
            client: c.client,
            server: c.server,
            app: c
                .streams
                .as_ref()
                .and_then(|s| s.upper.rtmp.session.connect.app.as_ref()),
        }
    }
}

/// Turn the RTMP events of a connection into outputs.
pub(super) fn forward(c: &Origin<'_>, events: &mut Vec<rtmp::Event>, out: &mut Vec<Output>) {
    if events.is_empty() {
        return;
    }
    for ev in events.drain(..) {
        out.push(match ev {
            rtmp::Event::StreamStarted {
                stream,
                msid,
                role,
                name,
                mid_stream,
            } => Output::StreamStarted {
                conn: c.id,
                client: c.client,
                server: c.server,
                app: c.app.cloned(),
                stream,
                msid,
                role,
                name,
                mid_stream,
            },
            rtmp::Event::Tag {
                stream,
                kind,
                timestamp,
                body,
                frame,
                gaps,
            } => Output::Tag {
                conn: c.id,
                stream,
                kind,
                timestamp,
                body,
                frame,
                gaps,
            },
            rtmp::Event::StreamEnded { stream } => Output::StreamEnded { conn: c.id, stream },
        });
    }
}

/// The facts of a connection the table let go of (a connection that was nothing but a SYN
/// reads as one whose streams carried nothing).
pub(super) fn facts(c: &Conn) -> ConnectionFacts {
    let mut hits = c.evicted.map(Eviction::hits).unwrap_or_default();
    let mut f = ConnectionFacts {
        bad_checksums: c.bad_checksums,
        evicted: c.evicted,
        ..ConnectionFacts::new(c.id, (c.client, c.server), (c.first_seen, c.last_seen))
    };
    (f.first_frame, f.last_frame) = (c.first_frame, c.last_frame);
    if let Some(s) = &c.streams {
        for d in [Dir::ClientToServer, Dir::ServerToClient] {
            let st = &s.reasm[d.index()].stats;
            hits.reassembly_bytes += st.byte_limit_hits;
            hits.reassembly_segments += st.segment_limit_hits;
            f.reassembly[d.index()] = st.clone();
        }
        rtmp_facts(&s.upper.rtmp, &mut f);
        f.tls = s.upper.transport.tls().cloned();
    }
    f.hits.add(&hits);
    f
}

/// What the RTMP read of a connection (or RTMPT session) adds to its facts.
pub(super) fn rtmp_facts(r: &rtmp::Connection, f: &mut ConnectionFacts) {
    for d in [Dir::ClientToServer, Dir::ServerToClient] {
        if let Some(reader) = r.chunk_reader(d) {
            f.chunk_sizes[d.index()] = reader.stats.chunk_sizes.clone();
            f.messages[d.index()] = reader.stats.messages;
        }
    }
    f.hits.add(&r.limit_hits);
    f.hits.add(&r.session.limit_hits);
    f.handshake = r.handshake.clone();
    f.connect = r.session.connect.clone();
    f.locks = r.locks.clone();
    f.gave_up = r.gave_up.clone();
    f.status_codes = r.session.status_codes.clone();
    f.warnings = r.errors.clone();
    f.warnings.extend(r.session.warnings.iter().cloned());
    f.skipped_bytes = r.skipped_bytes;
}
