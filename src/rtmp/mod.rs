//! RTMP as seen from the wire: handshake, chunk streams, messages, commands, media.
//!
//! Layers, each file using only those before it: `header` (one chunk header's bytes),
//! `media` (audio and video bodies), `message` (messages and what senders send), `amf0`,
//! `chunk` (the chunk reader of one direction), `lockon` (finding chunk headers where the
//! start was not captured), `handshake`, `warning` (what is reported), `session` (what the
//! messages mean), `connection` (both directions of one connection). This file holds the
//! types the session and connection share with the sinks.

pub mod amf0;
pub mod chunk;
pub mod connection;
pub mod handshake;
pub mod header;
pub mod lockon;
pub mod media;
pub mod message;
pub mod session;
pub mod timing;
pub mod warning;

use bytes::Bytes;
use serde::Serialize;

pub use chunk::{ChunkReader, ChunkWriter};
pub use connection::{Connection, GaveUp, LockRecord};
pub use handshake::{Handshake, HandshakeOutcome};
pub use message::{Message, TimeBase};
pub use session::{ConnectInfo, Session};
pub use warning::Warning;

/// Which way a stream's media travels: published by the client, or played to it. (Not a
/// TCP direction: that is [`crate::flow::Dir`].)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Client to server.
    Publish,
    /// Server to client.
    Play,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Publish => "publish",
            Role::Play => "play",
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
        role: Role,
        name: Option<Vec<u8>>,
        /// The connection was joined mid-stream (its start was not captured).
        mid_stream: bool,
    },
    Tag {
        stream: u32,
        kind: TagKind,
        timestamp: u32,
        body: Bytes,
        frame: u64,
        /// Gaps in the stream's direction since the stream began, before this tag (at least
        /// 1 when the tag was read after one): its decoder configuration may have been among
        /// them, and a copy of the stream elsewhere may hold what they took.
        gaps: u32,
    },
    StreamEnded {
        stream: u32,
    },
}
