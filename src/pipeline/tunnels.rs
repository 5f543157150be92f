//! RTMPT sessions: the tunnel events of every TCP connection joined by session id (the
//! transport's [`rtmpt::TunnelSessions`]), and an RTMP connection read from each session's
//! two byte streams. A session is reported as one connection, with the TCP connections and
//! requests that carried it.

use std::net::SocketAddr;

use super::facts::{
    self, ConnectionFacts, MAX_TUNNEL_CONNECTIONS, Origin, TunnelConn, TunnelFacts,
};
use super::{Conn, Output};
use crate::config::Limits;
use crate::flow::{ConnId, Dir, StreamEvent};
use crate::rtmp;
use crate::transport::rtmpt::{self, SessionInfo, TunnelEvent, TunnelSessions};

/// The TCP connection a tunnel event came from.
#[derive(Clone, Copy, Debug)]
pub(super) struct Carrier {
    pub id: ConnId,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub ts: f64,
    pub frame: u64,
    /// The requests came decrypted out of TLS (RTMPT over TLS).
    pub tls: bool,
}

impl Carrier {
    pub fn of(c: &Conn, ts: f64, frame: u64) -> Self {
        Carrier {
            id: c.id,
            client: c.client,
            server: c.server,
            ts,
            frame,
            tls: c
                .streams
                .as_ref()
                .is_some_and(|s| s.upper.transport.tls().is_some()),
        }
    }
}

/// One RTMPT session's RTMP, and what is known of who carried it.
struct Session {
    id: ConnId,
    client: SocketAddr,
    server: SocketAddr,
    first_seen: f64,
    last_seen: f64,
    first_frame: u64,
    last_frame: u64,
    rtmp: rtmp::Connection,
    /// The TCP connections that carried it, by their ids (at most
    /// [`MAX_TUNNEL_CONNECTIONS`]).
    carriers: Vec<(ConnId, TunnelConn)>,
    /// Some of them were TLS (RTMPT over TLS).
    over_tls: bool,
}

pub(super) struct Tunnels {
    joiner: TunnelSessions,
    sessions: foldhash::HashMap<Vec<u8>, Box<Session>>,
    limits: Limits,
    events: Vec<rtmp::Event>,
}

impl Tunnels {
    pub fn new(limits: &Limits) -> Self {
        Tunnels {
            joiner: TunnelSessions::new(rtmpt::SessionLimits::default()),
            sessions: Default::default(),
            limits: limits.clone(),
            events: Vec::new(),
        }
    }

    /// One tunnel event of TCP connection `from`: the RTMP bytes it completes go to their
    /// session's RTMP (a new session gets an id from `new_id`), its outputs to `out`; a
    /// session that ended is closed.
    pub fn event(
        &mut self,
        from: Carrier,
        ev: TunnelEvent,
        new_id: &mut impl FnMut() -> ConnId,
        out: &mut Vec<Output>,
    ) {
        let Tunnels {
            joiner,
            sessions,
            limits,
            events,
        } = self;
        // A session is followed from the first request or open answer that names it, as the
        // joiner follows it.
        if let Some(sid) = session_of(&ev) {
            let s = sessions.entry(sid.to_vec()).or_insert_with(|| {
                Box::new(Session {
                    id: new_id(),
                    client: from.client,
                    server: from.server,
                    first_seen: from.ts,
                    last_seen: from.ts,
                    first_frame: from.frame,
                    last_frame: from.frame,
                    rtmp: rtmp::Connection::new(limits.clone()),
                    carriers: Vec::new(),
                    over_tls: false,
                })
            });
            s.carried_by(from);
        }
        joiner.event(from.id.0, ev, &mut |sid, dir, sev| {
            if let Some(s) = sessions.get_mut(sid) {
                s.feed(dir, sev, from.frame, events, out);
            }
        });
        for info in self.joiner.take_finished() {
            self.close(info, from.frame, out);
        }
    }

    /// The end of the input: every session hands on what it holds and ends, in the order
    /// they began.
    pub fn finish(&mut self, frame: u64, out: &mut Vec<Output>) {
        let Tunnels {
            joiner,
            sessions,
            events,
            ..
        } = self;
        joiner.finish(&mut |sid, dir, sev| {
            if let Some(s) = sessions.get_mut(sid) {
                s.feed(dir, sev, frame, events, out);
            }
        });
        let mut ended = self.joiner.take_finished();
        ended.sort_by_key(|i| self.sessions.get(&i.id).map(|s| s.id));
        for info in ended {
            self.close(info, frame, out);
        }
    }

    /// A session the joiner ended: its RTMP is closed and its facts handed up.
    fn close(&mut self, info: SessionInfo, frame: u64, out: &mut Vec<Output>) {
        let Some(mut s) = self.sessions.remove(&info.id) else {
            // Nothing of it ever reached RTMP (no bytes in either direction).
            return;
        };
        s.rtmp.close(frame, &mut self.events);
        facts::forward(&s.origin(), &mut self.events, out);
        out.push(Output::ConnectionEnded(Box::new(s.facts(info))));
    }
}

/// The session a tunnel event belongs to, where the joiner follows one for it: a send, idle
/// or close request, or the answer to an open.
fn session_of(ev: &TunnelEvent) -> Option<&[u8]> {
    use rtmpt::RequestKind::{Close, Idle, Open, Send};
    let t = match ev {
        TunnelEvent::Request(r) if matches!(r.target.kind, Send | Idle | Close) => &r.target,
        TunnelEvent::Response(p) => p.target.as_ref().filter(|t| t.kind == Open)?,
        _ => return None,
    };
    t.session.as_deref()
}

impl Session {
    fn origin(&self) -> Origin<'_> {
        Origin {
            id: self.id,
            client: self.client,
            server: self.server,
            app: self.rtmp.session.connect.app.as_ref(),
        }
    }

    /// RTMP bytes (or a gap) of one direction of the session.
    fn feed(
        &mut self,
        dir: Dir,
        ev: StreamEvent<'_>,
        frame: u64,
        events: &mut Vec<rtmp::Event>,
        out: &mut Vec<Output>,
    ) {
        if let StreamEvent::Gap { offset: 0, len: 0 } = ev {
            // The joiner's mark of a session first seen in its middle.
            self.rtmp.start_unknown(dir);
        }
        self.rtmp.stream_event(dir, ev, frame, events);
        facts::forward(&self.origin(), events, out);
    }

    fn carried_by(&mut self, c: Carrier) {
        self.over_tls |= c.tls;
        self.last_seen = c.ts;
        self.last_frame = c.frame;
        if let Some((_, t)) = self.carriers.iter_mut().find(|(id, _)| *id == c.id) {
            t.last_frame = c.frame;
        } else if self.carriers.len() < MAX_TUNNEL_CONNECTIONS {
            self.carriers.push((
                c.id,
                TunnelConn {
                    client: c.client,
                    server: c.server,
                    first_frame: c.frame,
                    last_frame: c.frame,
                },
            ));
        }
    }

    fn facts(&self, info: SessionInfo) -> ConnectionFacts {
        let mut f = ConnectionFacts {
            tunnel: Some(TunnelFacts {
                session: info.id,
                start_seen: info.start_seen,
                closed: info.closed,
                connections: self.carriers.iter().map(|(_, t)| *t).collect(),
                connections_dropped: info.connections_dropped,
                requests: info.requests,
                gaps: info.gaps,
                gap_count: info.gap_count,
                over_tls: self.over_tls,
            }),
            ..ConnectionFacts::new(
                self.id,
                (self.client, self.server),
                (self.first_seen, self.last_seen),
            )
        };
        (f.first_frame, f.last_frame) = (self.first_frame, self.last_frame);
        f.reassembly[0].delivered_bytes = info.bytes[0];
        f.reassembly[1].delivered_bytes = info.bytes[1];
        facts::rtmp_facts(&self.rtmp, &mut f);
        f
    }
}
