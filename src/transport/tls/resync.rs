//! Resynchronisation after a gap (see the module's documentation): finding the next record
//! that decrypts, and with which sequence number.

use std::ops::Range;

use super::crypto::RecordKeys;
use super::keylog::{KeyLog, Secret};
use super::record::Phase;
use super::{CT_APPDATA, MAX_CIPHERTEXT, MAX_RESYNC_BODY, RECORD_HEADER, TlsConnection, Up};

/// Sequence numbers tried for one candidate record after a gap.
const MAX_SEQ_CANDIDATES: usize = 96;
/// Sequence numbers tried under the TLS 1.3 application secret (0 up to this).
const APP13_CANDIDATES: u64 = 64;

/// A candidate record after a gap that decrypted (its plaintext in `scratch`).
struct Hit {
    /// Records lost before it under the keys it decrypted with.
    c: u64,
    /// Its body's length.
    len: usize,
    /// Where its plaintext is in `scratch`.
    range: Range<usize>,
    /// It decrypted under the TLS 1.3 application keys: the handshake's Finished was lost.
    switched: bool,
    /// AEAD overhead of the keys the gap was lost under.
    over: u64,
}

impl TlsConnection {
    /// Side `i` is lost after a gap: look for the next record that decrypts.
    pub(super) fn resync(&mut self, i: usize, keys: &KeyLog, up: Up<'_>) {
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
        let app13 = self.app_keys13(i, keys);
        loop {
            let Some(len) = self.resync_candidate(i) else {
                return;
            };
            match self.try_candidate(i, len, app13.as_ref()) {
                Some(hit) => {
                    self.resynchronised(i, hit, app13, keys, up);
                    return;
                }
                None => self.skip_candidate(i),
            }
        }
    }

    /// Drops from the buffer of lost side `i` what cannot start a record; returns the body
    /// length of the plausible record it then starts with, once that record is whole (`None`:
    /// more bytes are needed, or nothing can be recognised).
    fn resync_candidate(&mut self, i: usize) -> Option<usize> {
        let s = &mut self.sides[i];
        let l = s.lost.as_mut()?;
        if l.gave_up || s.keys.is_none() {
            // nothing can be recognised: count and drop
            l.ct_bytes = l.ct_bytes.saturating_add(s.buf.len() as u64);
            s.buf.clear();
            return None;
        }
        let Some((p, len)) = find_header(&s.buf) else {
            let keep = s.buf.len().min(RECORD_HEADER - 1);
            let drop = s.buf.len() - keep;
            l.ct_bytes = l.ct_bytes.saturating_add(drop as u64);
            s.buf.drain(..drop);
            return None;
        };
        l.ct_bytes = l.ct_bytes.saturating_add(p as u64);
        s.buf.drain(..p);
        if s.buf.len() < RECORD_HEADER + len {
            return None;
        }
        Some(len)
    }

    /// Tries the sequence numbers the gap allows on the candidate record (body `len` bytes)
    /// at the start of lost side `i`'s buffer, then those of the TLS 1.3 application keys
    /// `app13`, within the attempts left.
    fn try_candidate(
        &mut self,
        i: usize,
        len: usize,
        app13: Option<&(RecordKeys, Secret)>,
    ) -> Option<Hit> {
        let budget = self.limits.resync_attempts;
        let s = &mut self.sides[i];
        let avg = s.avg_record();
        let l = s.lost.as_mut()?;
        let k = s.keys.as_ref()?;
        let over = k.overhead() as u64;
        let explicit = (over == 24).then(|| {
            let mut e = [0u8; 8];
            e.copy_from_slice(&s.buf[RECORD_HEADER..RECORD_HEADER + 8]);
            u64::from_be_bytes(e)
        });
        let cands = seq_candidates(l.ct_bytes, avg, over, l.base_seq, explicit, s.nonce_delta);
        let mut header = [0u8; 5];
        header.copy_from_slice(&s.buf[..RECORD_HEADER]);
        let body = &s.buf[RECORD_HEADER..RECORD_HEADER + len];
        let scratch = &mut self.scratch;
        let mut open = |k: &RecordKeys, seq: u64| {
            scratch.clear();
            scratch.extend_from_slice(body);
            k.open(seq, &header, scratch)
        };
        let hit = |c, range, switched| Hit {
            c,
            len,
            range,
            switched,
            over,
        };
        for &c in &cands {
            if l.attempts >= budget {
                break;
            }
            l.attempts += 1;
            if let Some(r) = open(k, l.base_seq.wrapping_add(c)) {
                return Some(hit(c, r, false));
            }
        }
        let (ak, _) = app13?;
        for c in 0..APP13_CANDIDATES {
            if l.attempts >= budget {
                break;
            }
            l.attempts += 1;
            if let Some(r) = open(ak, c) {
                return Some(hit(c, r, true));
            }
        }
        None
    }

    /// The candidate record of lost side `i` decrypted: the loss is passed up, the record's
    /// plaintext after it, and the bytes buffered after the record are framed again.
    fn resynchronised(
        &mut self,
        i: usize,
        hit: Hit,
        app13: Option<(RecordKeys, Secret)>,
        keys: &KeyLog,
        up: Up<'_>,
    ) {
        let Hit {
            c,
            len,
            range,
            switched,
            over,
        } = hit;
        let s = &mut self.sides[i];
        let Some(l) = s.lost.take() else {
            return;
        };
        // records lost: c before this one under the same keys, plus (after a switch) at least
        // the Finished under the old ones
        let lost = if switched { c + 1 } else { c };
        let lost_len = l
            .ct_bytes
            .saturating_sub(lost * (RECORD_HEADER as u64 + over));
        let base = if switched { 0 } else { l.base_seq };
        if switched && let Some((ak, sec)) = app13 {
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
        self.plaintext(i, CT_APPDATA, &pt[range], keys, up);
        self.scratch = pt;
        self.feed(i, &rest, keys, up);
    }

    /// No sequence number opened the candidate record of lost side `i`: skip one byte, and
    /// give up once the attempts are spent.
    fn skip_candidate(&mut self, i: usize) {
        let budget = self.limits.resync_attempts;
        let s = &mut self.sides[i];
        let Some(l) = s.lost.as_mut() else {
            return;
        };
        if l.attempts >= budget {
            l.gave_up = true;
            self.info.resync_failures += 1;
        }
        l.ct_bytes = l.ct_bytes.saturating_add(1);
        s.buf.drain(..1);
    }
}

/// The first plausible application-data header in `b` (type 23, version 0x0303, a body of
/// 17..=[`MAX_RESYNC_BODY`] bytes): where it is and its body's length.
fn find_header(b: &[u8]) -> Option<(usize, usize)> {
    let mut p = 0;
    while p + RECORD_HEADER <= b.len() {
        if b[p] == CT_APPDATA && b[p + 1] == 3 && b[p + 2] == 3 {
            let len = u16::from_be_bytes([b[p + 3], b[p + 4]]) as usize;
            if (17..=MAX_RESYNC_BODY).contains(&len) {
                return Some((p, len));
            }
        }
        p += 1;
    }
    None
}

/// Sequence numbers (counted from `base_seq`, the first record touched) to try on the record
/// after `t` lost ciphertext bytes, under keys of AEAD overhead `over`, records of `avg` bytes
/// seen on average: the TLS 1.2 GCM explicit nonce's word first (`explicit`, less the
/// `nonce_delta` seen before the gap), then alternately around the estimate from the average
/// record size and up from the fewest records the gap can hold (small gaps usually lose one
/// or two records).
fn seq_candidates(
    t: u64,
    avg: u64,
    over: u64,
    base_seq: u64,
    explicit: Option<u64>,
    nonce_delta: Option<u64>,
) -> Vec<u64> {
    let min_rec = RECORD_HEADER as u64 + over;
    let kmin = t
        .div_ceil(RECORD_HEADER as u64 + MAX_CIPHERTEXT as u64)
        .max(1);
    let kmax = (t / min_rec).max(kmin);
    let kest = (t / avg).clamp(kmin, kmax);
    let mut cands: Vec<u64> = Vec::with_capacity(MAX_SEQ_CANDIDATES);
    let add = |c: u64, cands: &mut Vec<u64>| {
        if (kmin..=kmax).contains(&c) && !cands.contains(&c) {
            cands.push(c);
        }
    };
    if let Some(explicit) = explicit {
        if let Some(delta) = nonce_delta {
            add(
                explicit.wrapping_sub(delta).wrapping_sub(base_seq),
                &mut cands,
            );
        }
        add(explicit.wrapping_sub(base_seq), &mut cands);
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
    cands
}
