//! One direction's record state: framing the ciphertext into records, holding it while the
//! keys are missing, noting gaps, and decrypting and reading each whole record.

use super::crypto::{self, RecordKeys};
use super::keylog::{KeyLog, Secret};
use super::{
    CT_APPDATA, CT_CCS, CT_HANDSHAKE, CT_HEARTBEAT, MAX_CIPHERTEXT, RECORD_HEADER, TlsConnection,
    Up, dir_of,
};
use crate::flow::StreamEvent;

/// Most entries (runs of bytes or gaps) held while the keys are missing.
const MAX_HELD_ENTRIES: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    Handshake,
    Application,
}

pub(super) enum Held {
    Data(Vec<u8>),
    Gap(u64),
}

pub(super) struct Loss {
    /// Ciphertext bytes lost so far: the partial record, the gap, bytes skipped since.
    pub(super) ct_bytes: u64,
    /// Sequence number of the first record touched.
    pub(super) base_seq: u64,
    pub(super) attempts: u32,
    pub(super) gave_up: bool,
}

pub(super) struct Side {
    pub(super) ct_off: u64,
    pub(super) plain_off: u64,
    pub(super) buf: Vec<u8>,
    pub(super) encrypted: bool,
    pub(super) phase: Phase,
    pub(super) keys: Option<RecordKeys>,
    pub(super) secret: Option<Secret>,
    pub(super) seq: u64,
    pub(super) switch_after_record: bool,
    pub(super) update_after_record: bool,
    pub(super) hs_buf: Vec<u8>,
    pub(super) hs_skip: usize,
    pub(super) lost: Option<Loss>,
    /// Ciphertext (and gaps) held while the keys are missing, each entry stamped with the
    /// connection's hold clock, so that both directions are released in arrival order.
    pub(super) held: Option<Vec<(u64, Held)>>,
    pub(super) closed: bool,
    pub(super) record_bytes: u64,
    pub(super) record_count: u64,
    /// TLS 1.2 GCM: explicit nonce minus sequence number, as last seen (GnuTLS sends the
    /// sequence number, OpenSSL a counter from a random start: either way constant).
    pub(super) nonce_delta: Option<u64>,
}

impl Side {
    pub(super) fn new() -> Side {
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

    pub(super) fn avg_record(&self) -> u64 {
        (self.record_bytes / self.record_count.max(1)).max(64)
    }
}

impl TlsConnection {
    fn hold_push(&mut self, i: usize, e: Held) {
        // The clock ticks whenever the other direction held something last: entries of the
        // two directions then sort back into the order they arrived in.
        if self.hold_side != Some(i) {
            self.hold_side = Some(i);
            self.hold_clock += 1;
        }
        let now = self.hold_clock;
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
            (Some((t, Held::Gap(g))), Held::Gap(n)) if *t == now => *g = g.saturating_add(n),
            (Some((t, Held::Data(d))), Held::Data(n)) if *t == now => {
                *held_bytes += n.len();
                d.extend_from_slice(&n);
            }
            (_, Held::Data(n)) => {
                *held_bytes += n.len();
                h.push((now, Held::Data(n)));
            }
            (_, e) => h.push((now, e)),
        }
    }

    pub(super) fn gap(&mut self, i: usize, len: u64) {
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

    pub(super) fn feed(&mut self, i: usize, mut bytes: &[u8], keys: &KeyLog, up: Up<'_>) {
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

    /// protected, and the version is known when it matters).
    fn ready(&self, i: usize) -> bool {
        let s = &self.sides[i];
        !s.encrypted || s.keys.is_some() || self.suite.is_none() && self.info.version.is_some()
    }

    pub(super) fn release(&mut self, keys: &KeyLog, up: Up<'_>) {
        // Releasing one direction can make the other ready (its version or keys learnt).
        for _round in 0..4 {
            let mut ready = [false; 2];
            for (i, r) in ready.iter_mut().enumerate() {
                if self.sides[i].held.is_none() || self.info.version.is_none() {
                    continue;
                }
                self.ensure_keys(i, keys);
                *r = self.ready(i);
            }
            if ready == [false; 2] {
                break;
            }
            // Both directions released together go up in the order they arrived in (a
            // handshake or a command answered before its answer), one released alone as it is.
            let mut held = Vec::new();
            for (i, r) in ready.iter().enumerate() {
                if *r {
                    let h = self.sides[i].held.take().unwrap_or_default();
                    held.extend(h.into_iter().map(|(t, e)| (t, i, e)));
                }
            }
            held.sort_by_key(|(t, i, _)| (*t, *i));
            let n: usize = held
                .iter()
                .map(|(_, _, e)| if let Held::Data(d) = e { d.len() } else { 0 })
                .sum();
            self.held_bytes = self.held_bytes.saturating_sub(n);
            for (_, i, e) in held {
                match e {
                    Held::Data(d) => self.feed(i, &d, keys, up),
                    Held::Gap(n) => self.gap(i, n),
                }
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
        self.open_record(i, rec, keys, up);
    }

    /// One whole protected record of side `i`, whose keys are known: decrypted, or passed up
    /// as a gap when its tag fails.
    fn open_record(&mut self, i: usize, rec: &mut [u8], keys: &KeyLog, up: Up<'_>) {
        let ty = rec[0];
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
    pub(super) fn plaintext(&mut self, i: usize, outer: u8, pt: &[u8], keys: &KeyLog, up: Up<'_>) {
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
}
