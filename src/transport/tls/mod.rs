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

pub mod crypto;
pub mod handshake;
pub mod keylog;

pub use crypto::suite_name;
pub use keylog::{KeyLog, KeyLogEntry, KeysFrom, Secret};

use crate::flow::{Dir, StreamEvent};
use crypto::{RecordKeys, Suite};
use handshake as hs;

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
/// Sequence numbers tried for one candidate record after a gap.
const MAX_SEQ_CANDIDATES: usize = 96;
/// Most entries (runs of bytes or gaps) held while the keys are missing.
const MAX_HELD_ENTRIES: usize = 4096;

const CT_CCS: u8 = 20;
#[allow(dead_code)]
const CT_ALERT: u8 = 21;
const CT_HANDSHAKE: u8 = 22;
const CT_APPDATA: u8 = 23;
const CT_HEARTBEAT: u8 = 24;

/// Limits of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsLimits {
    /// Ciphertext bytes held (both directions) while keys are missing.
    pub backlog_bytes: usize,
    /// AEAD attempts per gap to find the sequence number of the record after it.
    pub resync_attempts: u32,
}

impl Default for TlsLimits {
    fn default() -> TlsLimits {
        TlsLimits {
            backlog_bytes: DEFAULT_BACKLOG,
            resync_attempts: DEFAULT_RESYNC_ATTEMPTS,
        }
    }
}

/// Records lost in one direction: a gap in the ciphertext, resynchronised or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsLoss {
    pub dir: Dir,
    /// Frame at which the loss was resolved (resynchronised, or the end).
    pub frame: u64,
    /// Records lost (found from the sequence number, or estimated at the end).
    pub records: u64,
    /// The plaintext gap passed up.
    pub plaintext_offset: u64,
    pub plaintext_len: u64,
    /// Whether a later record was decrypted again.
    pub resynchronised: bool,
}

/// What is known of a TLS connection, as typed facts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// Negotiated protocol version (0x0303 TLS 1.2, 0x0304 TLS 1.3), from the ServerHello.
    pub version: Option<u16>,
    /// Negotiated cipher suite (see [`suite_name`]).
    pub cipher_suite: Option<u16>,
    /// Server name from the ClientHello (raw bytes, at most 255).
    pub sni: Option<Vec<u8>>,
    /// ALPN protocol selected (ServerHello for TLS 1.2, EncryptedExtensions for 1.3).
    pub alpn: Option<Vec<u8>>,
    /// ALPN protocols offered in the ClientHello (at most 8).
    pub alpn_offered: Vec<Vec<u8>>,
    /// Subject commonName of the server's first certificate (TLS 1.2 in the clear; TLS 1.3
    /// once decrypted).
    pub server_cert_cn: Option<Vec<u8>>,
    pub client_random: Option<[u8; 32]>,
    pub server_random: Option<[u8; 32]>,
    /// The server asked for a second ClientHello (HelloRetryRequest).
    pub hello_retry: bool,
    /// At least one record decrypted.
    pub decrypted: bool,
    /// Where the keys used came from.
    pub keys_from: KeysFrom,
    /// Records framed (both directions).
    pub records_seen: u64,
    /// Records decrypted with a valid tag.
    pub records: u64,
    /// Records whose tag failed (passed up as gaps).
    pub failed_records: u64,
    /// Records lost in ciphertext gaps.
    pub lost_records: u64,
    /// Losses, the first [`MAX_LOSSES`].
    pub losses: Vec<TlsLoss>,
    /// Gaps after which no record could be decrypted again (the direction stayed lost).
    pub resync_failures: u64,
    /// Protected records of a version or suite this module cannot decrypt (CBC, TLS < 1.2).
    pub undecryptable_records: u64,
    /// Ciphertext bytes dropped because the backlog held while keys were missing was full.
    pub backlog_dropped_bytes: u64,
    /// TLS 1.3 KeyUpdates followed.
    pub key_updates: u64,
    /// A record header that cannot be TLS was seen: the connection is not decoded further.
    pub not_tls: bool,
}

/// Whether the first bytes a client sent open a TLS ClientHello: a handshake record
/// (0x16 0x03 0x00..=0x04) whose first message is of type 1.
pub fn looks_like_tls(client_first_bytes: &[u8]) -> bool {
    matches!(client_first_bytes, [0x16, 0x03, 0..=4, _, _, 1, ..])
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Handshake,
    Application,
}

enum Held {
    Data(Vec<u8>),
    Gap(u64),
}

struct Loss {
    /// Ciphertext bytes lost so far: the partial record, the gap, bytes skipped since.
    ct_bytes: u64,
    /// Sequence number of the first record touched.
    base_seq: u64,
    attempts: u32,
    gave_up: bool,
}

struct Side {
    ct_off: u64,
    plain_off: u64,
    buf: Vec<u8>,
    encrypted: bool,
    phase: Phase,
    keys: Option<RecordKeys>,
    secret: Option<Secret>,
    seq: u64,
    switch_after_record: bool,
    update_after_record: bool,
    hs_buf: Vec<u8>,
    hs_skip: usize,
    lost: Option<Loss>,
    held: Option<Vec<Held>>,
    closed: bool,
    record_bytes: u64,
    record_count: u64,
    /// TLS 1.2 GCM: explicit nonce minus sequence number, as last seen (GnuTLS sends the
    /// sequence number, OpenSSL a counter from a random start: either way constant).
    nonce_delta: Option<u64>,
}

impl Side {
    fn new() -> Side {
        Side {
            ct_off: 0,
            plain_off: 0,
            buf: Vec::new(),
            encrypted: false,
            phase: Phase::Handshake,
            keys: None,
            secret: None,
            seq: 0,
            switch_after_record: false,
            update_after_record: false,
            hs_buf: Vec::new(),
            hs_skip: 0,
            lost: None,
            held: None,
            closed: false,
            record_bytes: 0,
            record_count: 0,
            nonce_delta: None,
        }
    }

    fn avg_record(&self) -> u64 {
        (self.record_bytes / self.record_count.max(1)).max(64)
    }
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
                n += h.capacity() * std::mem::size_of::<Held>();
                for e in h {
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

    fn hold_push(&mut self, i: usize, e: Held) {
        let limit = self.limits.backlog_bytes;
        let held_bytes = &mut self.held_bytes;
        let info = &mut self.info;
        let Some(h) = self.sides[i].held.as_mut() else {
            return;
        };
        let e = match e {
            Held::Data(d) if *held_bytes + d.len() > limit || h.len() >= MAX_HELD_ENTRIES => {
                info.backlog_dropped_bytes += d.len() as u64;
                Held::Gap(d.len() as u64)
            }
            e => e,
        };
        match (h.last_mut(), e) {
            (Some(Held::Gap(g)), Held::Gap(n)) => *g = g.saturating_add(n),
            (Some(Held::Data(d)), Held::Data(n)) => {
                *held_bytes += n.len();
                d.extend_from_slice(&n);
            }
            (_, Held::Data(n)) => {
                *held_bytes += n.len();
                h.push(Held::Data(n));
            }
            (_, e) => h.push(e),
        }
    }

    fn gap(&mut self, i: usize, len: u64) {
        let s = &mut self.sides[i];
        if s.closed || len == 0 {
            return;
        }
        if s.held.is_some() {
            self.hold_push(i, Held::Gap(len));
            return;
        }
        let partial = s.buf.len() as u64;
        s.buf.clear();
        s.hs_buf.clear();
        s.hs_skip = 0;
        match &mut s.lost {
            Some(l) => l.ct_bytes = l.ct_bytes.saturating_add(partial + len),
            None => {
                s.lost = Some(Loss {
                    ct_bytes: partial.saturating_add(len),
                    base_seq: s.seq,
                    attempts: 0,
                    gave_up: false,
                })
            }
        }
    }

    fn feed(&mut self, i: usize, mut bytes: &[u8], keys: &KeyLog, up: Up<'_>) {
        while !bytes.is_empty() {
            let s = &mut self.sides[i];
            if s.closed {
                return;
            }
            if s.held.is_some() {
                self.hold_push(i, Held::Data(bytes.to_vec()));
                return;
            }
            if s.lost.is_some() {
                let cap = 2 * (RECORD_HEADER + MAX_CIPHERTEXT);
                let n = bytes.len().min(cap.saturating_sub(s.buf.len()).max(1));
                s.buf.extend_from_slice(&bytes[..n]);
                bytes = &bytes[n..];
                self.resync(i, keys, up);
                continue;
            }
            // normal framing
            if s.buf.len() < RECORD_HEADER {
                let n = (RECORD_HEADER - s.buf.len()).min(bytes.len());
                s.buf.extend_from_slice(&bytes[..n]);
                bytes = &bytes[n..];
                if s.buf.len() < RECORD_HEADER {
                    return;
                }
                let b = &s.buf;
                let len = u16::from_be_bytes([b[3], b[4]]) as usize;
                if !(CT_CCS..=CT_HEARTBEAT).contains(&b[0]) || b[1] != 3 || len > MAX_CIPHERTEXT {
                    s.closed = true;
                    s.buf = Vec::new();
                    s.hs_buf = Vec::new();
                    self.info.not_tls = true;
                    return;
                }
                s.buf.reserve(len);
            }
            let len = u16::from_be_bytes([s.buf[3], s.buf[4]]) as usize;
            let want = RECORD_HEADER + len - s.buf.len();
            let n = want.min(bytes.len());
            s.buf.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if s.buf.len() == RECORD_HEADER + len {
                let mut rec = std::mem::take(&mut self.sides[i].buf);
                self.record(i, &mut rec, keys, up);
                rec.clear();
                let s = &mut self.sides[i];
                if s.buf.is_empty() && rec.capacity() <= 2 * (RECORD_HEADER + MAX_CIPHERTEXT) {
                    s.buf = rec;
                }
            }
        }
    }

    /// Makes the keys of side `i` if it is protected, has none, and the key log has them.
    fn ensure_keys(&mut self, i: usize, keys: &KeyLog) {
        let Some(suite) = self.suite else {
            return;
        };
        let (Some(cr), Some(sr)) = (self.info.client_random, self.info.server_random) else {
            return;
        };
        let s = &self.sides[i];
        if s.keys.is_some() || !s.encrypted {
            return;
        }
        let Some(e) = keys.get(&cr) else {
            return;
        };
        if suite.tls13 {
            let secret = match (i, s.phase) {
                (0, Phase::Handshake) => &e.client_handshake,
                (1, Phase::Handshake) => &e.server_handshake,
                (0, Phase::Application) => &e.client_traffic_0,
                _ => &e.server_traffic_0,
            };
            let Some(secret) = secret.clone() else {
                return;
            };
            if secret.as_bytes().len() != suite.hash.output_len() {
                return;
            }
            let k = RecordKeys::from_traffic_secret(suite, secret.as_bytes());
            let s = &mut self.sides[i];
            s.keys = k;
            s.secret = Some(secret);
        } else {
            let Some(ms) = e.master_secret else {
                return;
            };
            let kl = suite.cipher.key_len();
            let ivl = if suite.cipher == crypto::CipherAlg::ChaCha20Poly1305 {
                12
            } else {
                4
            };
            let mut seed = [0u8; 64];
            seed[..32].copy_from_slice(&sr);
            seed[32..].copy_from_slice(&cr);
            let mut kb = [0u8; 2 * (32 + 12)];
            let kb = &mut kb[..2 * (kl + ivl)];
            crypto::prf12(suite.hash, &ms, b"key expansion", &seed, kb);
            let (key, iv) = if i == 0 {
                (&kb[..kl], &kb[2 * kl..2 * kl + ivl])
            } else {
                (&kb[kl..2 * kl], &kb[2 * kl + ivl..2 * kl + 2 * ivl])
            };
            self.sides[i].keys = RecordKeys::new(suite.cipher, key, iv, false);
        }
        if self.sides[i].keys.is_some() && self.info.keys_from == KeysFrom::None {
            self.info.keys_from = e.origin;
        }
    }

    /// Whether side `i` can go on decoding (its protected records have keys, or are not
    /// protected, and the version is known when it matters).
    fn ready(&self, i: usize) -> bool {
        let s = &self.sides[i];
        !s.encrypted || s.keys.is_some() || self.suite.is_none() && self.info.version.is_some()
    }

    fn release(&mut self, keys: &KeyLog, up: Up<'_>) {
        for _round in 0..2 {
            let mut any = false;
            for i in 0..2 {
                if self.sides[i].held.is_none() {
                    continue;
                }
                if self.info.version.is_none() {
                    continue;
                }
                self.ensure_keys(i, keys);
                if !self.ready(i) {
                    continue;
                }
                let held = self.sides[i].held.take().unwrap_or_default();
                let n: usize = held
                    .iter()
                    .map(|e| if let Held::Data(d) = e { d.len() } else { 0 })
                    .sum();
                self.held_bytes = self.held_bytes.saturating_sub(n);
                any = true;
                for e in held {
                    match e {
                        Held::Data(d) => self.feed(i, &d, keys, up),
                        Held::Gap(n) => self.gap(i, n),
                    }
                }
            }
            if !any {
                break;
            }
        }
    }

    /// One whole record (header + body) of side `i`.
    fn record(&mut self, i: usize, rec: &mut [u8], keys: &KeyLog, up: Up<'_>) {
        self.info.records_seen += 1;
        let ty = rec[0];
        let tls13 = self.info.version == Some(0x0304);
        let protected = match ty {
            CT_CCS => {
                if self.info.version.is_none() {
                    self.start_hold(i, rec);
                    return;
                }
                if !tls13 {
                    let s = &mut self.sides[i];
                    s.encrypted = true;
                    s.keys = None;
                    s.seq = 0;
                    self.ensure_keys(i, keys);
                }
                return;
            }
            CT_APPDATA => {
                if self.info.version.is_none() {
                    self.start_hold(i, rec);
                    return;
                }
                if !self.sides[i].encrypted {
                    // protected data without a ChangeCipherSpec seen: treat as protected
                    self.sides[i].encrypted = true;
                    self.ensure_keys(i, keys);
                }
                true
            }
            _ => self.sides[i].encrypted,
        };
        if !protected {
            if ty == CT_HANDSHAKE {
                let body = &rec[RECORD_HEADER..];
                self.handshake_bytes(i, body, keys);
            }
            return;
        }
        if self.suite.is_none() {
            self.info.undecryptable_records += 1;
            return;
        }
        if self.sides[i].keys.is_none() {
            self.ensure_keys(i, keys);
        }
        if self.sides[i].keys.is_none() {
            self.start_hold(i, rec);
            return;
        }
        let s = &mut self.sides[i];
        s.record_bytes += rec.len() as u64;
        s.record_count += 1;
        let seq = s.seq;
        s.seq = s.seq.wrapping_add(1);
        let mut header = [0u8; 5];
        header.copy_from_slice(&rec[..RECORD_HEADER]);
        let body = &mut rec[RECORD_HEADER..];
        let (opened, over) = match s.keys.as_ref() {
            Some(k) => (k.open(seq, &header, body), k.overhead() as u64),
            None => (None, 17),
        };
        match opened {
            Some(r) => {
                if over == 24 && body.len() >= 8 {
                    let mut e = [0u8; 8];
                    e.copy_from_slice(&body[..8]);
                    self.sides[i].nonce_delta = Some(u64::from_be_bytes(e).wrapping_sub(seq));
                }
                self.info.records += 1;
                self.info.decrypted = true;
                let pt = &body[r];
                self.plaintext(i, ty, pt, keys, up);
            }
            None => {
                self.info.failed_records += 1;
                let len = (body.len() as u64).saturating_sub(over);
                let s = &mut self.sides[i];
                let offset = s.plain_off;
                s.plain_off = s.plain_off.saturating_add(len);
                if len > 0 {
                    up(dir_of(i), StreamEvent::Gap { offset, len });
                }
            }
        }
    }

    fn start_hold(&mut self, i: usize, rec: &[u8]) {
        self.sides[i].held = Some(Vec::new());
        self.hold_push(i, Held::Data(rec.to_vec()));
    }

    /// A decrypted record's plaintext (TLS 1.3: the inner plaintext with its type and padding).
    fn plaintext(&mut self, i: usize, outer: u8, pt: &[u8], keys: &KeyLog, up: Up<'_>) {
        let (ty, pt) = if self.info.version == Some(0x0304) {
            let Some(last) = pt.iter().rposition(|&b| b != 0) else {
                return; // no content type: a malformed record, nothing in it
            };
            (pt[last], &pt[..last])
        } else {
            (outer, pt)
        };
        match ty {
            CT_APPDATA => {
                let s = &mut self.sides[i];
                let offset = s.plain_off;
                s.plain_off = s.plain_off.saturating_add(pt.len() as u64);
                if !pt.is_empty() {
                    up(dir_of(i), StreamEvent::Data { offset, bytes: pt });
                }
            }
            CT_HANDSHAKE => self.handshake_bytes(i, pt, keys),
            _ => {}
        }
        let s = &mut self.sides[i];
        if s.switch_after_record {
            s.switch_after_record = false;
            s.phase = Phase::Application;
            s.keys = None;
            s.secret = None;
            s.seq = 0;
            self.ensure_keys(i, keys);
        }
        let s = &mut self.sides[i];
        if s.update_after_record {
            s.update_after_record = false;
            if let (Some(suite), Some(sec)) = (self.suite, s.secret.as_ref()) {
                let mut next = [0u8; 48];
                let n = suite.hash.output_len();
                if crypto::hkdf_expand_label(
                    suite.hash,
                    sec.as_bytes(),
                    b"traffic upd",
                    &mut next[..n],
                ) && let Some(ns) = Secret::new(&next[..n])
                {
                    s.keys = RecordKeys::from_traffic_secret(suite, ns.as_bytes());
                    s.secret = Some(ns);
                    s.seq = 0;
                    self.info.key_updates += 1;
                }
            }
        }
    }

    fn handshake_bytes(&mut self, i: usize, mut bytes: &[u8], keys: &KeyLog) {
        let s = &mut self.sides[i];
        if s.hs_skip > 0 {
            let n = s.hs_skip.min(bytes.len());
            s.hs_skip -= n;
            bytes = &bytes[n..];
        }
        s.hs_buf.extend_from_slice(bytes);
        loop {
            let s = &mut self.sides[i];
            if s.hs_buf.len() < 4 {
                return;
            }
            let ty = s.hs_buf[0];
            let len = ((s.hs_buf[1] as usize) << 16)
                | ((s.hs_buf[2] as usize) << 8)
                | s.hs_buf[3] as usize;
            if len > MAX_HANDSHAKE_MESSAGE {
                let have = s.hs_buf.len() - 4;
                if have >= len {
                    s.hs_buf.drain(..4 + len);
                    continue;
                }
                s.hs_skip = len - have;
                s.hs_buf.clear();
                return;
            }
            if s.hs_buf.len() < 4 + len {
                return;
            }
            let msg: Vec<u8> = s.hs_buf.drain(..4 + len).collect();
            self.handshake_message(i, ty, &msg[4..], keys);
        }
    }

    fn handshake_message(&mut self, i: usize, ty: u8, body: &[u8], keys: &KeyLog) {
        let tls13 = self.info.version == Some(0x0304);
        match (i, ty) {
            (0, hs::CLIENT_HELLO) => {
                if let Some(ch) = hs::parse_client_hello(body) {
                    self.info.client_random = Some(ch.random);
                    if ch.sni.is_some() {
                        self.info.sni = ch.sni;
                    }
                    if !ch.alpn.is_empty() {
                        self.info.alpn_offered = ch.alpn;
                    }
                }
            }
            (1, hs::SERVER_HELLO) => {
                let Some(sh) = hs::parse_server_hello(body) else {
                    return;
                };
                self.info.version = Some(sh.version());
                self.info.cipher_suite = Some(sh.cipher_suite);
                if sh.is_hello_retry() {
                    self.info.hello_retry = true;
                    return;
                }
                self.info.server_random = Some(sh.random);
                if sh.alpn.is_some() {
                    self.info.alpn = sh.alpn.clone();
                }
                let v = sh.version();
                self.suite = crypto::suite(sh.cipher_suite)
                    .filter(|s| (v == 0x0304) == s.tls13 && (v == 0x0303 || v == 0x0304));
                if v == 0x0304 {
                    for k in 0..2 {
                        let s = &mut self.sides[k];
                        s.encrypted = true;
                        s.phase = Phase::Handshake;
                        s.keys = None;
                        s.seq = 0;
                        self.ensure_keys(k, keys);
                    }
                }
            }
            (1, hs::ENCRYPTED_EXTENSIONS) => {
                if let Some(a) = hs::parse_encrypted_extensions_alpn(body) {
                    self.info.alpn = Some(a);
                }
            }
            (1, hs::CERTIFICATE) => {
                if self.info.server_cert_cn.is_none()
                    && let Some(c) = hs::first_certificate(body, tls13)
                {
                    self.info.server_cert_cn = hs::subject_cn(c);
                }
            }
            (_, hs::FINISHED) if tls13 && self.sides[i].phase == Phase::Handshake => {
                self.sides[i].switch_after_record = true;
            }
            (_, hs::KEY_UPDATE) if tls13 && self.sides[i].phase == Phase::Application => {
                self.sides[i].update_after_record = true;
            }
            _ => {}
        }
    }

    /// The application keys of side `i` while it is in its TLS 1.3 handshake phase.
    fn app_keys13(&self, i: usize, keys: &KeyLog) -> Option<(RecordKeys, Secret)> {
        let suite = self.suite.filter(|s| s.tls13)?;
        if self.sides[i].phase != Phase::Handshake {
            return None;
        }
        let e = keys.get(self.info.client_random.as_ref()?)?;
        let sec = if i == 0 {
            e.client_traffic_0.clone()?
        } else {
            e.server_traffic_0.clone()?
        };
        if sec.as_bytes().len() != suite.hash.output_len() {
            return None;
        }
        Some((RecordKeys::from_traffic_secret(suite, sec.as_bytes())?, sec))
    }

    /// Side `i` is lost after a gap: look for the next record that decrypts.
    fn resync(&mut self, i: usize, keys: &KeyLog, up: Up<'_>) {
        // TLS 1.2 lost before its ChangeCipherSpec was seen: the CCS may be in the gap, and
        // the records after it are protected from sequence number 0 (the Finished)
        let s = &mut self.sides[i];
        if !s.encrypted && self.info.version == Some(0x0303) && self.suite.is_some() {
            s.encrypted = true;
            s.keys = None;
            s.seq = 0;
            if let Some(l) = s.lost.as_mut() {
                l.base_seq = 0;
            }
        }
        self.ensure_keys(i, keys);
        // TLS 1.3 lost during its handshake flight: the Finished may be in the gap, so the
        // next records may already be under the application traffic secret
        let mut app13 = self.app_keys13(i, keys);
        loop {
            let budget = self.limits.resync_attempts;
            let s = &mut self.sides[i];
            let avg = s.avg_record();
            let Some(l) = s.lost.as_mut() else {
                return;
            };
            if l.gave_up || s.keys.is_none() {
                // nothing can be recognised: count and drop
                l.ct_bytes = l.ct_bytes.saturating_add(s.buf.len() as u64);
                s.buf.clear();
                return;
            }
            // find a plausible header
            let b = &s.buf;
            let mut found = None;
            let mut p = 0;
            while p + RECORD_HEADER <= b.len() {
                if b[p] == CT_APPDATA && b[p + 1] == 3 && b[p + 2] == 3 {
                    let len = u16::from_be_bytes([b[p + 3], b[p + 4]]) as usize;
                    if (17..=MAX_RESYNC_BODY).contains(&len) {
                        found = Some((p, len));
                        break;
                    }
                }
                p += 1;
            }
            let Some((p, len)) = found else {
                let keep = s.buf.len().min(RECORD_HEADER - 1);
                let drop = s.buf.len() - keep;
                l.ct_bytes = l.ct_bytes.saturating_add(drop as u64);
                s.buf.drain(..drop);
                return;
            };
            l.ct_bytes = l.ct_bytes.saturating_add(p as u64);
            s.buf.drain(..p);
            if s.buf.len() < RECORD_HEADER + len {
                return;
            }
            // candidate sequence numbers
            let Some(k) = s.keys.as_ref() else {
                return;
            };
            let over = k.overhead() as u64;
            let t = l.ct_bytes;
            let min_rec = RECORD_HEADER as u64 + over;
            let kmin = t
                .div_ceil(RECORD_HEADER as u64 + MAX_CIPHERTEXT as u64)
                .max(1);
            let kmax = (t / min_rec).max(kmin);
            let kest = (t / avg).clamp(kmin, kmax);
            // candidates: the TLS 1.2 GCM explicit nonce's word first, then alternately
            // around the estimate from the average record size and up from the fewest
            // records the gap can hold (small gaps usually lose one or two records)
            let mut cands: Vec<u64> = Vec::with_capacity(MAX_SEQ_CANDIDATES);
            let add = |c: u64, cands: &mut Vec<u64>| {
                if (kmin..=kmax).contains(&c) && !cands.contains(&c) {
                    cands.push(c);
                }
            };
            if over == 24 {
                let mut e = [0u8; 8];
                e.copy_from_slice(&s.buf[RECORD_HEADER..RECORD_HEADER + 8]);
                let explicit = u64::from_be_bytes(e);
                if let Some(delta) = s.nonce_delta {
                    add(
                        explicit.wrapping_sub(delta).wrapping_sub(l.base_seq),
                        &mut cands,
                    );
                }
                add(explicit.wrapping_sub(l.base_seq), &mut cands);
            }
            let mut d = 0u64;
            while cands.len() < MAX_SEQ_CANDIDATES && (kest + d <= kmax || kmin + d <= kmax) {
                add(kest + d, &mut cands);
                add(kmin + d, &mut cands);
                if kest > d {
                    add(kest - d - 1, &mut cands);
                }
                d += 1;
            }
            let mut header = [0u8; 5];
            header.copy_from_slice(&s.buf[..RECORD_HEADER]);
            let mut hit = None;
            for &c in &cands {
                if l.attempts >= budget {
                    break;
                }
                l.attempts += 1;
                self.scratch.clear();
                self.scratch
                    .extend_from_slice(&s.buf[RECORD_HEADER..RECORD_HEADER + len]);
                if let Some(r) = k.open(l.base_seq.wrapping_add(c), &header, &mut self.scratch) {
                    hit = Some((c, r));
                    break;
                }
            }
            let mut switched = false;
            if hit.is_none()
                && let Some((ak, _)) = &app13
            {
                for c in 0..64u64 {
                    if l.attempts >= budget {
                        break;
                    }
                    l.attempts += 1;
                    self.scratch.clear();
                    self.scratch
                        .extend_from_slice(&s.buf[RECORD_HEADER..RECORD_HEADER + len]);
                    if let Some(r) = ak.open(c, &header, &mut self.scratch) {
                        hit = Some((c, r));
                        switched = true;
                        break;
                    }
                }
            }
            match hit {
                Some((c, r)) => {
                    // records lost: c before this one under the same keys, plus (after a
                    // switch) at least the Finished under the old ones
                    let lost = if switched { c + 1 } else { c };
                    let lost_len = t.saturating_sub(lost * min_rec);
                    let base = if switched { 0 } else { l.base_seq };
                    s.lost = None;
                    if switched && let Some((ak, sec)) = app13.take() {
                        s.phase = Phase::Application;
                        s.keys = Some(ak);
                        s.secret = Some(sec);
                        s.switch_after_record = false;
                    }
                    s.seq = base.wrapping_add(c).wrapping_add(1);
                    s.record_bytes += (RECORD_HEADER + len) as u64;
                    s.record_count += 1;
                    let rest: Vec<u8> = s.buf.drain(RECORD_HEADER + len..).collect();
                    s.buf.clear();
                    self.loss(i, lost, lost_len, true, up);
                    self.info.records_seen += 1;
                    self.info.records += 1;
                    self.info.decrypted = true;
                    let pt = std::mem::take(&mut self.scratch);
                    self.plaintext(i, CT_APPDATA, &pt[r], keys, up);
                    self.scratch = pt;
                    self.feed(i, &rest, keys, up);
                    return;
                }
                None => {
                    if l.attempts >= budget {
                        l.gave_up = true;
                        self.info.resync_failures += 1;
                    }
                    l.ct_bytes = l.ct_bytes.saturating_add(1);
                    s.buf.drain(..1);
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
