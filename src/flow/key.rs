//! Names for connections and their directions: the table's key, the run's connection id,
//! and a media stream's key within the run.

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

/// Which of a TCP connection's two byte streams: the one the client sends, or the server's.
/// (Not to be confused with a media stream's [`Role`](crate::rtmp::Role), publish or play.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    ClientToServer,
    ServerToClient,
}

impl Dir {
    pub fn index(self) -> usize {
        match self {
            Dir::ClientToServer => 0,
            Dir::ServerToClient => 1,
        }
    }

    pub fn other(self) -> Dir {
        match self {
            Dir::ClientToServer => Dir::ServerToClient,
            Dir::ServerToClient => Dir::ClientToServer,
        }
    }
}

/// A connection's index within the run: 0 for the first one seen, counting up in the order
/// they began. People see it as a number from 1 (the report's `id`, `list`'s `#N`, the
/// summary's `connection #N`): that is what it displays and serialises as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ConnId(pub u64);

impl ConnId {
    /// The number people see: 1 for the first connection.
    pub fn number(self) -> u64 {
        self.0 + 1
    }
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.number().fmt(f)
    }
}

impl Serialize for ConnId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.number())
    }
}

/// One media stream of the run: its connection, and its number within the connection (the
/// order the connection's streams started in). Ordered by connection, then stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamKey {
    pub conn: ConnId,
    pub stream: u32,
}

/// A connection's 4-tuple with the endpoints in a canonical order, so both directions of a
/// connection find the same entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConnKey {
    pub lo: SocketAddr,
    pub hi: SocketAddr,
}

/// Hashed for every packet: the addresses as two 128-bit words and the ports as one 32-bit
/// word (the derived hash went through each address's variant and parts, a twentieth of
/// the run). Keys that are equal hash alike, as they must.
impl Hash for ConnKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        fn ip(a: &SocketAddr) -> u128 {
            match a.ip() {
                IpAddr::V4(v4) => u32::from(v4) as u128,
                IpAddr::V6(v6) => u128::from(v6),
            }
        }
        h.write_u128(ip(&self.lo));
        h.write_u128(ip(&self.hi));
        h.write_u32((self.lo.port() as u32) << 16 | self.hi.port() as u32);
    }
}

impl ConnKey {
    pub fn new(a: SocketAddr, b: SocketAddr) -> Self {
        if a <= b {
            ConnKey { lo: a, hi: b }
        } else {
            ConnKey { lo: b, hi: a }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_direction_independent() {
        let a: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:1935".parse().unwrap();
        assert_eq!(ConnKey::new(a, b), ConnKey::new(b, a));
        assert_eq!(Dir::ClientToServer.other(), Dir::ServerToClient);
    }
}
