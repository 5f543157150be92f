//! Keys for the connection table and the two directions of a connection.

use std::net::SocketAddr;

/// Direction of travel within a connection.
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

/// A connection's 4-tuple with the endpoints in a canonical order, so both directions of a
/// connection find the same entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnKey {
    pub lo: SocketAddr,
    pub hi: SocketAddr,
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
