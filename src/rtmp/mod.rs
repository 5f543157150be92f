//! RTMP as seen from the wire: handshake, chunk streams, messages, commands, media.

pub mod amf0;
pub mod chunk;
pub mod handshake;
pub mod media;
pub mod session;

use bytes::Bytes;
use serde::Serialize;

pub use chunk::{ChunkReader, ChunkWriter, Message};
pub use handshake::{Handshake, HandshakeOutcome};
pub use session::{ConnectInfo, Session};

use crate::config::{LimitHits, Limits};
use crate::flow::Dir;

/// Which way a stream's media travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Client to server.
    Publish,
    /// Server to client.
    Play,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Publish => "publish",
            Direction::Play => "play",
        }
    }
}

/// FLV tag types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagKind {
    Audio = 8,
    Video = 9,
    Script = 18,
}

/// What a connection yields for the sinks.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    StreamStarted {
        stream: u32,
        msid: u32,
        direction: Direction,
        name: Option<Vec<u8>>,
    },
    Tag {
        stream: u32,
        kind: TagKind,
        timestamp: u32,
        body: Bytes,
        frame: u64,
    },
    StreamEnded {
        stream: u32,
    },
}

/// How far one direction has got.
#[derive(Debug)]
enum Phase {
    /// Waiting for the first byte.
    Start,
    Handshake,
    Chunks(Box<ChunkReader>),
    /// Nothing more is read in this direction (encrypted, not RTMP, or out of sync).
    Stopped,
}

/// One RTMP connection: two directions and the session they make up.
#[derive(Debug)]
pub struct Connection {
    phases: [Phase; 2],
    pub handshake: Handshake,
    pub session: Session,
    /// Chunk-layer problems that stopped a direction, for the report.
    pub errors: Vec<String>,
    /// Bytes that reached a direction after it stopped.
    pub skipped_bytes: [u64; 2],
    /// Chunk-layer limits reached.
    pub limit_hits: LimitHits,
    limits: Limits,
    msgs: Vec<Message>,
}

impl Connection {
    pub fn new(limits: Limits) -> Self {
        Connection {
            phases: [Phase::Start, Phase::Start],
            handshake: Handshake::default(),
            session: Session::new(limits.clone()),
            errors: Vec::new(),
            skipped_bytes: [0, 0],
            limit_hits: LimitHits::default(),
            limits,
            msgs: Vec::new(),
        }
    }

    /// Chunk statistics of a direction, when it got as far as chunks.
    pub fn chunk_reader(&self, dir: Dir) -> Option<&ChunkReader> {
        match &self.phases[dir.index()] {
            Phase::Chunks(r) => Some(r),
            _ => None,
        }
    }

    /// Bytes held in chunk readers (unparsed bytes and partial messages).
    pub fn buffered_bytes(&self) -> usize {
        self.phases
            .iter()
            .map(|p| match p {
                Phase::Chunks(r) => r.buffered_bytes(),
                _ => 0,
            })
            .sum()
    }

    /// Whether the connection is known not to carry readable RTMP.
    pub fn is_dead(&self) -> bool {
        matches!(
            self.handshake.outcome,
            Some(HandshakeOutcome::Encrypted(_)) | Some(HandshakeOutcome::NotRtmp)
        )
    }

    /// Bytes of direction `dir` at stream offset `offset`, in order.
    pub fn push(
        &mut self,
        dir: Dir,
        offset: u64,
        mut data: &[u8],
        frame: u64,
        out: &mut Vec<Event>,
    ) {
        let i = dir.index();
        loop {
            match &mut self.phases[i] {
                Phase::Start => {
                    if data.is_empty() {
                        return;
                    }
                    if offset != 0 {
                        // The start of this direction was not captured (issue: mid-stream
                        // lock-on); nothing here can be read with confidence.
                        self.handshake.missing = true;
                        self.phases[i] = Phase::Stopped;
                        continue;
                    }
                    self.phases[i] = Phase::Handshake;
                }
                Phase::Handshake => {
                    let used = self.handshake.push(dir, data);
                    data = &data[used..];
                    match self.handshake.outcome {
                        Some(HandshakeOutcome::Encrypted(_)) | Some(HandshakeOutcome::NotRtmp) => {
                            self.phases = [Phase::Stopped, Phase::Stopped];
                            continue;
                        }
                        _ => {}
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
                    for m in msgs.drain(..) {
                        self.session.on_message(dir, m, out);
                    }
                    self.msgs = msgs;
                    if let Err(e) = res {
                        e.count(&mut self.limit_hits);
                        self.errors.push(format!("{} (frame {frame})", e));
                        self.phases[i] = Phase::Stopped;
                    }
                    return;
                }
                Phase::Stopped => {
                    self.skipped_bytes[i] += data.len() as u64;
                    return;
                }
            }
        }
    }

    /// Bytes of direction `dir` were lost: partial messages there cannot be trusted.
    pub fn gap(&mut self, dir: Dir, offset: u64, len: u64, frame: u64) {
        let i = dir.index();
        if let Phase::Chunks(_) | Phase::Handshake = self.phases[i] {
            self.errors.push(format!(
                "{} bytes missing at stream offset {offset} (frame {frame}); the rest of this direction is skipped",
                len
            ));
            self.phases[i] = Phase::Stopped;
        }
    }

    /// End of the connection: what is buffered is decoded, then open streams end.
    pub fn close(&mut self, frame: u64, out: &mut Vec<Event>) {
        for dir in [Dir::ClientToServer, Dir::ServerToClient] {
            if let Phase::Chunks(reader) = &mut self.phases[dir.index()] {
                let mut msgs = std::mem::take(&mut self.msgs);
                let res = reader.finish(frame, &mut msgs);
                for m in msgs.drain(..) {
                    self.session.on_message(dir, m, out);
                }
                self.msgs = msgs;
                if let Err(e) = res {
                    e.count(&mut self.limit_hits);
                    self.errors.push(format!("{e} (frame {frame})"));
                }
            }
        }
        self.session.close(out);
    }
}
