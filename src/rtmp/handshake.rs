//! The RTMP handshake: C0 C1 C2 from the client, S0 S1 S2 from the server.

use crate::flow::Dir;

const PACKET: usize = 1536;
/// Bytes of handshake in each direction before the first chunk.
const LEN: usize = 1 + 2 * PACKET;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeOutcome {
    /// Version 3 with zero in C1's second field.
    Simple,
    /// Version 3 with a digest scheme version in C1 (HMAC-SHA256 "complex" handshake).
    Complex,
    /// RTMPE (versions 6, 8, 9): a passive observer cannot read it.
    Encrypted(u8),
    /// TLS on the RTMP port (RTMPS, or something else tunnelled): a TLS handshake record.
    Tls,
    /// The first byte was no RTMP version at all.
    NotRtmp,
}

#[derive(Clone, Debug, Default)]
pub struct Handshake {
    seen: [usize; 2],
    /// Bytes 5..9 of the client direction (C1's version field).
    c1_version: [u8; 4],
    pub version: Option<u8>,
    pub outcome: Option<HandshakeOutcome>,
    /// The start of a direction was not captured.
    pub missing: bool,
    /// Some of a direction's handshake bytes were lost (its chunk stream still starts where
    /// the handshake ends): what kind of handshake it was is not claimed.
    lost_some: bool,
    /// Byte that started a non-RTMP direction (0x16 = TLS).
    pub first_byte: Option<u8>,
}

impl Handshake {
    pub fn done(&self, dir: Dir) -> bool {
        self.seen[dir.index()] >= LEN
    }

    /// True when both directions' handshakes were read in full.
    pub fn seen(&self) -> bool {
        self.done(Dir::ClientToServer) && self.done(Dir::ServerToClient) && !self.lost_some
    }

    /// Whether some handshake bytes were lost (the chunk streams were read from their start).
    pub fn bytes_lost(&self) -> bool {
        self.lost_some
    }

    /// Bytes of `dir`'s handshake up to stream offset `upto` were lost.
    pub fn lost(&mut self, dir: Dir, upto: u64) {
        let i = dir.index();
        self.seen[i] = self.seen[i].max(upto.min(LEN as u64) as usize);
        self.lost_some = true;
    }

    /// Bytes of a direction's handshake: its chunk stream starts after them.
    pub const LEN: u64 = LEN as u64;

    /// Consume handshake bytes of `dir`; returns how many were used.
    pub fn push(&mut self, dir: Dir, data: &[u8]) -> usize {
        let i = dir.index();
        let at = self.seen[i];
        let used = (LEN - at).min(data.len());
        if used == 0 {
            return 0;
        }
        if at == 0 && !self.lost_some {
            let v = data[0];
            match v {
                3 => {
                    self.version.get_or_insert(3);
                }
                6 | 8 | 9 => {
                    self.version = Some(v);
                    self.outcome = Some(HandshakeOutcome::Encrypted(v));
                }
                _ => {
                    self.first_byte = Some(v);
                    if !matches!(
                        self.outcome,
                        Some(HandshakeOutcome::Encrypted(_) | HandshakeOutcome::Tls)
                    ) {
                        // A TLS record: content type 22 (handshake), version 3.x.
                        let tls = v == 0x16 && data.get(1) == Some(&3);
                        self.outcome = Some(if tls {
                            HandshakeOutcome::Tls
                        } else {
                            HandshakeOutcome::NotRtmp
                        });
                    }
                    return 0;
                }
            }
        }
        if dir == Dir::ClientToServer {
            for (k, &b) in data[..used].iter().enumerate() {
                let pos = at + k;
                if (5..9).contains(&pos) {
                    self.c1_version[pos - 5] = b;
                }
            }
        }
        self.seen[i] += used;
        if self.seen() && self.outcome.is_none() {
            self.outcome = Some(if self.c1_version == [0; 4] {
                HandshakeOutcome::Simple
            } else {
                HandshakeOutcome::Complex
            });
        }
        used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_and_complex() {
        for (ver, want) in [
            ([0u8; 4], HandshakeOutcome::Simple),
            ([9, 0, 124, 2], HandshakeOutcome::Complex),
        ] {
            let mut h = Handshake::default();
            let mut c = vec![3u8, 0, 0, 0, 0];
            c.extend_from_slice(&ver);
            c.resize(LEN + 10, 7);
            let s = vec![3u8; LEN];
            assert_eq!(h.push(Dir::ClientToServer, &c[..100]), 100);
            assert_eq!(h.push(Dir::ClientToServer, &c[100..]), LEN - 100);
            assert!(h.done(Dir::ClientToServer));
            assert_eq!(h.push(Dir::ServerToClient, &s), LEN);
            assert_eq!(h.outcome, Some(want));
        }
    }

    #[test]
    fn encrypted_and_not_rtmp() {
        let mut h = Handshake::default();
        h.push(Dir::ClientToServer, &[6, 1, 2]);
        assert_eq!(h.outcome, Some(HandshakeOutcome::Encrypted(6)));
        let mut h = Handshake::default();
        assert_eq!(h.push(Dir::ClientToServer, &[0x16, 3, 1]), 0);
        assert_eq!(h.outcome, Some(HandshakeOutcome::Tls));
        let mut h = Handshake::default();
        assert_eq!(h.push(Dir::ClientToServer, b"GET / HTTP/1.1"), 0);
        assert_eq!(h.outcome, Some(HandshakeOutcome::NotRtmp));
    }
}
