//! Passive TLS decryption (RTMPS) with the sender's key log.
//!
//! [`TlsConnection`] takes the TCP reassembler's events of both directions of one connection
//! (ciphertext in order, gaps where bytes were lost), frames TLS records, reads the
//! handshake in the clear (ClientHello, ServerHello, TLS 1.2 Certificate), derives the record
//! keys from a [`KeyLog`] entry found by the client random, checks every record's tag and
//! hands the application data of each direction up as [`StreamEvent`]s in plaintext offsets.
//!
//! Pure: no I/O, no clock, no panic on any input, and every buffer is bounded:
//! - a record being assembled: at most [`RECORD_HEADER`] + [`MAX_CIPHERTEXT`] bytes per
//!   direction (a header announcing more means the stream is not TLS: it is then ignored);
//! - after a gap, a resynchronisation window of at most twice that;
//! - a handshake message: at most [`MAX_HANDSHAKE_MESSAGE`] bytes (longer ones are skipped);
//! - ciphertext held while the keys are missing: at most [`TlsLimits::backlog_bytes`]
//!   (default [`DEFAULT_BACKLOG`], 4 MiB) per connection; beyond it bytes are dropped, counted in
//!   [`TlsInfo::backlog_dropped_bytes`], and replayed later as a gap;
//! - work after a gap: at most [`TlsLimits::resync_attempts`] AEAD attempts per gap (default
//!   [`DEFAULT_RESYNC_ATTEMPTS`]); after that the direction stays lost to its end.
//!
//! Resynchronisation: after a gap, the next plausible header (type 23, version 0x0303,
//! length 17..=2^14+256) is tried with the sequence numbers the lost bytes allow (from one
//! record of the largest size to all records of the smallest), at most 96 per header: for
//! TLS 1.2 GCM first the one the explicit nonce gives (GnuTLS sends the sequence number,
//! OpenSSL a counter from a random start, so the difference seen before the gap is used),
//! then alternately around (lost bytes / average record size seen) and upwards from the
//! fewest. A header whose record decrypts with none is skipped by one byte. In TLS 1.3 a
//! direction lost during its handshake flight also tries its application secret (sequence
//! numbers 0..63); a TLS 1.2 direction lost before its ChangeCipherSpec is taken as
//! protected from sequence number 0.
//!
//! Gaps passed up: when a record fails its tag, `len` is its ciphertext length less the AEAD
//! overhead (TLS 1.2 GCM: 8-byte explicit nonce + 16-byte tag; ChaCha20-Poly1305: the tag;
//! TLS 1.3: the tag and the inner content type), an upper bound (TLS 1.3 padding, or a
//! record that was not application data). When ciphertext was lost, `len` is the lost
//! ciphertext bytes (from the start of the first record touched to the record resynchronised
//! on) less the overhead and header of the records found to be lost (from the sequence number
//! that decrypted); at the end of a connection still lost, the number of records is
//! estimated from the average record size seen.
//!
//! Here the connection and its entry points; in `record` each direction's state, framing and
//! decryption; in `keys` the handshake messages followed and the keys derived; in `resync`
//! the search for a record after a gap; in `info` the public facts and limits.

pub mod crypto;
pub mod handshake;
mod info;
pub mod keylog;
mod keys;
mod record;
mod resync;

pub use crypto::suite_name;
pub use info::{TlsInfo, TlsLimits, TlsLoss};
pub use keylog::{KeyLog, KeyLogEntry, KeysFrom, Secret};

use crate::flow::{Dir, StreamEvent};
#[cfg(test)]
use crypto::RecordKeys;
use crypto::Suite;
#[cfg(test)]
use handshake as hs;
use record::{Held, Side};

/// Bytes of a record header.
pub const RECORD_HEADER: usize = 5;
/// Largest record body accepted (2^14 + 2048, TLS 1.2's ciphertext limit).
pub const MAX_CIPHERTEXT: usize = 16384 + 2048;
/// Largest body of a record resynchronised on after a gap (2^14 + 256, TLS 1.3's limit).
pub const MAX_RESYNC_BODY: usize = 16384 + 256;
/// Largest handshake message read (longer ones are skipped unread).
pub const MAX_HANDSHAKE_MESSAGE: usize = 65536;
/// Default bound of ciphertext held per connection while its keys are missing.
pub const DEFAULT_BACKLOG: usize = 4 << 20;
/// Default bound of AEAD attempts spent to resynchronise after one gap.
pub const DEFAULT_RESYNC_ATTEMPTS: u32 = 4096;
/// Most losses listed in [`TlsInfo::losses`] (the rest are only counted).
pub const MAX_LOSSES: usize = 64;

const CT_CCS: u8 = 20;
#[allow(dead_code)]
const CT_ALERT: u8 = 21;
const CT_HANDSHAKE: u8 = 22;
const CT_APPDATA: u8 = 23;
const CT_HEARTBEAT: u8 = 24;

/// Whether the first bytes a client sent open a TLS ClientHello: a handshake record
/// (0x16 0x03 0x00..=0x04) whose first message is of type 1.
pub fn looks_like_tls(client_first_bytes: &[u8]) -> bool {
    matches!(client_first_bytes, [0x16, 0x03, 0..=4, _, _, 1, ..])
}

/// Where plaintext events go: `(direction, event)` in plaintext offsets of that direction.
pub type Up<'u> = &'u mut dyn FnMut(Dir, StreamEvent<'_>);

/// The decryptor of one TLS connection.
pub struct TlsConnection {
    sides: [Side; 2],
    info: TlsInfo,
    suite: Option<Suite>,
    limits: TlsLimits,
    held_bytes: usize,
    /// Orders what the two directions hold while keys are missing (see `hold_push`).
    hold_clock: u64,
    hold_side: Option<usize>,
    frame: u64,
    scratch: Vec<u8>,
}

impl Default for TlsConnection {
    fn default() -> Self {
        Self::new()
    }
}

fn dir_of(i: usize) -> Dir {
    if i == 0 {
        Dir::ClientToServer
    } else {
        Dir::ServerToClient
    }
}

impl std::fmt::Debug for TlsConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnection")
            .field("info", self.info())
            .finish_non_exhaustive()
    }
}

impl TlsConnection {
    pub fn new() -> TlsConnection {
        TlsConnection::with_limits(TlsLimits::default())
    }

    pub fn with_limits(limits: TlsLimits) -> TlsConnection {
        TlsConnection {
            sides: [Side::new(), Side::new()],
            info: TlsInfo::default(),
            suite: None,
            limits,
            held_bytes: 0,
            hold_clock: 0,
            hold_side: None,
            frame: 0,
            scratch: Vec::new(),
        }
    }

    pub fn info(&self) -> &TlsInfo {
        &self.info
    }

    /// Every byte this connection holds (buffers' capacities, held ciphertext).
    pub fn buffered_bytes(&self) -> usize {
        let mut n = self.scratch.capacity();
        for s in &self.sides {
            n += s.buf.capacity() + s.hs_buf.capacity();
            if let Some(h) = &s.held {
                n += h.capacity() * std::mem::size_of::<(u64, Held)>();
                for (_, e) in h {
                    if let Held::Data(d) = e {
                        n += d.capacity();
                    }
                }
            }
        }
        n
    }

    /// One event of the TCP reassembler for direction `dir` (ciphertext offsets). Plaintext
    /// events of either direction go to `up` (a direction held for its keys may be released
    /// by what the other one brings). `frame` is the capture frame the event came with; it is
    /// recorded in [`TlsInfo::losses`]. Data before the offset already seen is ignored, data
    /// beyond it counts the bytes between as lost. `keys` is looked up again on every call, so
    /// a key log that grew since the last call is used at once (see also [`Self::retry_with`]).
    pub fn stream_event(
        &mut self,
        dir: Dir,
        ev: StreamEvent<'_>,
        frame: u64,
        keys: &KeyLog,
        up: Up<'_>,
    ) {
        self.frame = frame;
        let i = dir.index();
        match ev {
            StreamEvent::Data { offset, bytes } => {
                let s = &mut self.sides[i];
                let end = offset.saturating_add(bytes.len() as u64);
                if end <= s.ct_off {
                    return;
                }
                let mut bytes = bytes;
                if offset > s.ct_off {
                    let gap = offset - s.ct_off;
                    s.ct_off = offset;
                    self.gap(i, gap);
                } else if offset < s.ct_off {
                    let skip = (s.ct_off - offset) as usize;
                    bytes = &bytes[skip.min(bytes.len())..];
                }
                self.sides[i].ct_off = end;
                self.feed(i, bytes, keys, up);
            }
            StreamEvent::Gap { offset, len } => {
                let s = &mut self.sides[i];
                let end = offset.saturating_add(len);
                if end <= s.ct_off {
                    return;
                }
                let len = end - s.ct_off;
                s.ct_off = end;
                self.gap(i, len);
            }
        }
        self.release(keys, up);
    }

    /// Tries again what is held for missing keys (a key log reread, a secrets block read).
    pub fn retry_with(&mut self, keys: &KeyLog, up: Up<'_>) {
        self.release(keys, up);
    }

    /// End of the connection: what was lost to the end is passed up as a gap; ciphertext
    /// still held for missing keys stays encrypted (nothing is passed up of it).
    pub fn finish(&mut self, keys: &KeyLog, up: Up<'_>) {
        self.release(keys, up);
        for i in 0..2 {
            let over = self.sides[i]
                .keys
                .as_ref()
                .map(|k| k.overhead())
                .unwrap_or(17) as u64;
            let s = &mut self.sides[i];
            if s.held.is_some() || s.closed {
                continue;
            }
            if let Some(l) = s.lost.take() {
                let t = l.ct_bytes.saturating_add(s.buf.len() as u64);
                s.buf.clear();
                let k = (t / s.avg_record()).max(1);
                let len = t.saturating_sub(k * (RECORD_HEADER as u64 + over));
                if !l.gave_up {
                    self.info.resync_failures += 1;
                }
                self.loss(i, k, len, false, up);
            } else if s.encrypted && s.keys.is_some() && s.buf.len() >= RECORD_HEADER {
                // a record cut by the end of the capture
                let body = u16::from_be_bytes([s.buf[3], s.buf[4]]) as u64;
                s.buf.clear();
                let len = body.saturating_sub(over);
                self.loss(i, 1, len, false, up);
            }
        }
    }

    fn loss(&mut self, i: usize, records: u64, len: u64, resync: bool, up: Up<'_>) {
        let s = &mut self.sides[i];
        let offset = s.plain_off;
        s.plain_off = s.plain_off.saturating_add(len);
        self.info.lost_records = self.info.lost_records.saturating_add(records);
        if self.info.losses.len() < MAX_LOSSES {
            self.info.losses.push(TlsLoss {
                dir: dir_of(i),
                frame: self.frame,
                records,
                plaintext_offset: offset,
                plaintext_len: len,
                resynchronised: resync,
            });
        }
        if len > 0 {
            up(dir_of(i), StreamEvent::Gap { offset, len });
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
