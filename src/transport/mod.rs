//! Transport: from a TCP connection's two byte streams to the two byte streams RTMP reads.
//!
//! Between flow (reassembly) and rtmp. Bytes and gaps come in per TCP direction, in stream
//! order, as [`StreamEvent`]s; what goes up is, per RTMP direction, bytes in order with
//! offsets counted in that RTMP byte stream, and gaps where bytes of it were lost. A transport
//! never hands up bytes it could not vouch for: a gap goes up as a gap.
//!
//! Today there is one kind, [`Transport::Plain`]: RTMP straight over TCP, so the TCP byte
//! streams are the RTMP byte streams. ARCHITECTURE.md says how a TLS decryptor (RTMPS) and
//! an HTTP tunnel (RTMPT, several TCP connections feeding one RTMP session) plug in here.

pub mod rtmpt;

use crate::flow::{Dir, StreamEvent};

/// How RTMP is carried on one TCP connection.
#[derive(Debug, Default)]
pub enum Transport {
    /// RTMP directly over TCP: every event goes up as it is.
    #[default]
    Plain,
}

impl Transport {
    /// One event of TCP direction `dir` (bytes in order, or a gap); what it carries of RTMP
    /// goes to `up`, with the RTMP direction it belongs to.
    #[inline]
    pub fn stream_event<F>(&mut self, dir: Dir, ev: StreamEvent<'_>, up: &mut F)
    where
        F: FnMut(Dir, StreamEvent<'_>),
    {
        match self {
            Transport::Plain => up(dir, ev),
        }
    }

    /// The start of TCP direction `dir` was not captured: which RTMP directions start
    /// unknown.
    pub fn start_unknown(&self, dir: Dir) -> Option<Dir> {
        match self {
            Transport::Plain => Some(dir),
        }
    }

    /// Bytes held (records or bodies waiting to be whole), for the memory limits.
    pub fn held_bytes(&self) -> usize {
        match self {
            Transport::Plain => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_passes_bytes_and_gaps_up_unchanged() {
        let mut t = Transport::Plain;
        let mut seen = Vec::new();
        let mut up = |d: Dir, ev: StreamEvent<'_>| {
            seen.push(match ev {
                StreamEvent::Data { offset, bytes } => (d, offset, bytes.to_vec(), 0),
                StreamEvent::Gap { offset, len } => (d, offset, Vec::new(), len),
            })
        };
        t.stream_event(
            Dir::ServerToClient,
            StreamEvent::Data {
                offset: 7,
                bytes: b"abc",
            },
            &mut up,
        );
        t.stream_event(
            Dir::ClientToServer,
            StreamEvent::Gap { offset: 3, len: 9 },
            &mut up,
        );
        assert_eq!(
            seen,
            vec![
                (Dir::ServerToClient, 7, b"abc".to_vec(), 0),
                (Dir::ClientToServer, 3, Vec::new(), 9)
            ]
        );
        assert_eq!(
            t.start_unknown(Dir::ClientToServer),
            Some(Dir::ClientToServer)
        );
        assert_eq!(t.held_bytes(), 0);
    }
}
