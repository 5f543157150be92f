//! One direction of a TCP connection turned back into the byte stream its sender wrote.
//!
//! Bytes are handed on once the receiver has acknowledged them (while the receiver's ACKs are
//! in the capture): a segment that was corrupted on the wire is never acknowledged, and its
//! retransmission replaces it, so what comes out is what the receiver accepted. Where no ACK
//! from the receiver is seen (a one-sided capture), in-order data goes straight on from the
//! packet without a copy. Segments ahead of a hole wait in a bounded map. A hole that is never
//! filled becomes a [`StreamEvent::Gap`]: bytes are never spliced across it.

use std::collections::BTreeMap;

use bytes::BytesMut;

use super::seq;

/// What the reassembler hands to the layer above, in stream order.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamEvent<'a> {
    /// Bytes starting at stream offset `offset`.
    Data { offset: u64, bytes: &'a [u8] },
    /// `len` bytes at `offset` were never seen (capture loss or a bogus segment).
    Gap { offset: u64, len: u64 },
}

/// A hole declared lost, for the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GapRecord {
    pub offset: u64,
    pub len: u64,
    /// Frame at which the gap was declared.
    pub frame: u64,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Default)]
pub struct ReassemblyStats {
    pub delivered_bytes: u64,
    /// Bytes seen again after they were delivered or buffered (retransmissions, duplicates).
    pub duplicate_bytes: u64,
    /// Retransmissions whose bytes differed from the copy held (the later copy is kept).
    pub conflicts: u64,
    pub segments: u64,
    /// Segments too far from the expected sequence number to belong to this stream.
    pub bogus_segments: u64,
    pub gaps: Vec<GapRecord>,
    /// Times the byte limit forced bytes on before the receiver acknowledged them, or a gap.
    pub byte_limit_hits: u64,
    /// Times the segment limit (out-of-order segments, so holes) forced a gap.
    pub segment_limit_hits: u64,
}

/// Segments further than this from the next expected byte are not believed.
const MAX_AHEAD: i64 = 1 << 30;
/// Acknowledgements past a hole needed before it is declared lost.
const ACK_PATIENCE: u32 = 8;
/// Gap records kept per direction (later gaps are still handed on, not recorded).
const MAX_GAP_RECORDS: usize = 1000;

#[derive(Debug)]
pub struct Reassembler {
    /// Next sequence number to hand on, and the stream offset it stands for.
    next: Option<(u32, u64)>,
    /// Contiguous bytes from the next offset on, waiting for the receiver's acknowledgement.
    held: BytesMut,
    /// Segments beyond a hole, by stream offset.
    ooo: BTreeMap<u64, Vec<u8>>,
    ooo_bytes: usize,
    /// Highest stream offset the receiver acknowledged, once any ACK of it was seen.
    acked: Option<u64>,
    max_bytes: usize,
    max_segments: usize,
    fin_at: Option<u64>,
    acks_past_hole: u32,
    /// The hole (its stream offset) that `acks_past_hole` counts for.
    hole_at: u64,
    pub stats: ReassemblyStats,
}

/// What keeping one out-of-order segment costs beyond its bytes (see [`Reassembler::memory`]):
/// counted low, 1,000,000 one-byte segments under a 64 MiB budget had taken 1.8 times it.
const SEGMENT_OVERHEAD: usize = 112;

impl Reassembler {
    pub fn new(max_bytes: usize, max_segments: usize) -> Self {
        Reassembler {
            next: None,
            held: BytesMut::new(),
            ooo: BTreeMap::new(),
            ooo_bytes: 0,
            acked: None,
            max_bytes,
            max_segments: max_segments.max(1),
            fin_at: None,
            acks_past_hole: 0,
            hole_at: 0,
            stats: ReassemblyStats::default(),
        }
    }

    /// Whether the stream start is known (a SYN or a first data segment was seen).
    pub fn started(&self) -> bool {
        self.next.is_some()
    }

    /// Stream offset of the next byte to hand on.
    pub fn offset(&self) -> u64 {
        self.next.map_or(0, |(_, o)| o)
    }

    fn held_end(&self) -> u64 {
        self.offset() + self.held.len() as u64
    }

    /// True once every byte up to the FIN has been handed on.
    pub fn finished(&self) -> bool {
        matches!((self.fin_at, self.next), (Some(f), Some((_, o))) if o >= f)
    }

    /// Bytes waiting (held for acknowledgement or beyond a hole).
    pub fn buffered_bytes(&self) -> usize {
        self.held.len() + self.ooo_bytes
    }

    /// Memory this direction holds, for the global budget: buffered bytes plus what each
    /// out-of-order segment costs to keep (its share of a map node and its allocation's
    /// header and rounding: measured at about 97 bytes a segment with the system allocator).
    pub fn memory(&self) -> usize {
        self.held.capacity() + self.ooo_bytes + self.ooo.len() * SEGMENT_OVERHEAD
    }

    /// A SYN from this direction's sender: the stream starts at `seq + 1`.
    pub fn syn(&mut self, seq: u32) {
        if self.next.is_none() {
            self.next = Some((seq.wrapping_add(1), 0));
        }
    }

    /// The stream offset of sequence number `seq`, when it has one.
    pub fn stream_offset(&self, seq: u32) -> Option<u64> {
        u64::try_from(self.offset_of(seq)?).ok()
    }

    /// Stream offset for a sequence number, relative to the next byte to hand on.
    fn offset_of(&self, seq: u32) -> Option<i64> {
        let (nseq, noff) = self.next?;
        Some(noff as i64 + seq::diff(seq, nseq))
    }

    /// A segment from this direction's sender.
    pub fn segment<F>(&mut self, seq: u32, payload: &[u8], fin: bool, frame: u64, out: &mut F)
    where
        F: FnMut(StreamEvent<'_>),
    {
        self.stats.segments += 1;
        if self.next.is_none() {
            if payload.is_empty() && !fin {
                return;
            }
            // No SYN seen: the first segment with data starts the stream.
            self.next = Some((seq, 0));
        }
        let Some(start) = self.offset_of(seq) else {
            return;
        };
        let next_off = self.offset() as i64;
        if start - next_off > MAX_AHEAD || start + (payload.len() as i64) < next_off - MAX_AHEAD {
            self.stats.bogus_segments += 1;
            return;
        }
        if fin && self.fin_at.is_none() {
            let end = start + payload.len() as i64;
            if end >= 0 {
                self.fin_at = Some(end as u64);
            }
        }
        if payload.is_empty() {
            return;
        }
        let end = start + payload.len() as i64;
        if end <= next_off {
            self.stats.duplicate_bytes += payload.len() as u64;
            return;
        }
        let skip = (next_off - start).max(0) as usize;
        self.stats.duplicate_bytes += skip as u64;
        let data = &payload[skip..];
        // A segment can begin before the stream's first byte (a retransmission overlapping the
        // start of a capture without SYN): only its new part counts.
        let start = start.max(next_off) as u64;
        let held_end = self.held_end();
        if start == held_end && self.held.is_empty() && self.acked.is_none() {
            // Nothing to wait for: hand the bytes on straight from the packet.
            self.deliver_slice(data, out);
            self.merge_ooo();
        } else if start <= held_end {
            let at = (start - self.offset()) as usize;
            let overlap = (self.held.len() - at).min(data.len());
            if self.held[at..at + overlap] != data[..overlap] {
                // The later copy wins: the earlier one was not acknowledged (corrupted).
                self.stats.conflicts += 1;
                self.held[at..at + overlap].copy_from_slice(&data[..overlap]);
            }
            self.stats.duplicate_bytes += overlap as u64;
            self.held.extend_from_slice(&data[overlap..]);
            self.merge_ooo();
        } else {
            self.buffer(start, data);
        }
        self.release(out);
        self.enforce_limits(frame, out);
    }

    /// Hand on bytes that are not in `held` (the no-copy path); `held` must be empty.
    fn deliver_slice<F>(&mut self, bytes: &[u8], out: &mut F)
    where
        F: FnMut(StreamEvent<'_>),
    {
        let Some((nseq, noff)) = self.next else {
            return;
        };
        if bytes.is_empty() {
            return;
        }
        out(StreamEvent::Data {
            offset: noff,
            bytes,
        });
        self.stats.delivered_bytes += bytes.len() as u64;
        self.next = Some((
            nseq.wrapping_add(bytes.len() as u32),
            noff + bytes.len() as u64,
        ));
    }

    /// Hand on held bytes up to `limit` (a stream offset).
    fn deliver_held<F>(&mut self, limit: u64, out: &mut F)
    where
        F: FnMut(StreamEvent<'_>),
    {
        let n = (limit.saturating_sub(self.offset()) as usize).min(self.held.len());
        if n == 0 {
            return;
        }
        let chunk = self.held.split_to(n);
        self.deliver_slice(&chunk, out);
        if self.held.is_empty() && self.held.capacity() > 4 << 20 {
            self.held = BytesMut::new();
        }
    }

    /// Hand on what the receiver has acknowledged (everything, when its ACKs are not seen).
    fn release<F>(&mut self, out: &mut F)
    where
        F: FnMut(StreamEvent<'_>),
    {
        let limit = self.acked.unwrap_or(u64::MAX);
        self.deliver_held(limit, out);
    }

    /// Move buffered segments that have become contiguous into `held`.
    fn merge_ooo(&mut self) {
        loop {
            let held_end = self.held_end();
            let Some(entry) = self.ooo.first_entry() else {
                break;
            };
            let start = *entry.key();
            if start > held_end {
                break;
            }
            let data = entry.remove();
            self.ooo_bytes -= data.len();
            let end = start + data.len() as u64;
            if end <= held_end {
                self.stats.duplicate_bytes += data.len() as u64;
                continue;
            }
            let skip = (held_end - start) as usize;
            self.stats.duplicate_bytes += skip as u64;
            self.held.extend_from_slice(&data[skip..]);
        }
    }

    fn buffer(&mut self, start: u64, data: &[u8]) {
        let mut v = data.to_vec();
        if let Some(existing) = self.ooo.remove(&start) {
            self.ooo_bytes -= existing.len();
            let overlap = existing.len().min(v.len());
            if existing[..overlap] != v[..overlap] {
                self.stats.conflicts += 1;
            }
            self.stats.duplicate_bytes += overlap as u64;
            // The later copy wins where both have bytes.
            if existing.len() > v.len() {
                v.extend_from_slice(&existing[v.len()..]);
            }
        }
        self.ooo_bytes += v.len();
        self.ooo.insert(start, v);
    }

    fn enforce_limits<F>(&mut self, frame: u64, out: &mut F)
    where
        F: FnMut(StreamEvent<'_>),
    {
        loop {
            if self.buffered_bytes() > self.max_bytes {
                self.stats.byte_limit_hits += 1;
            } else if self.ooo.len() > self.max_segments {
                self.stats.segment_limit_hits += 1;
            } else {
                break;
            }
            if !self.held.is_empty() {
                self.deliver_held(u64::MAX, out);
            } else if !self.skip_hole(frame, "reassembly buffer limit", out) {
                break;
            }
        }
    }

    /// Declare the first hole lost and take what follows it. Held bytes before the hole are
    /// handed on first.
    fn skip_hole<F>(&mut self, frame: u64, reason: &'static str, out: &mut F) -> bool
    where
        F: FnMut(StreamEvent<'_>),
    {
        let Some((&first, _)) = self.ooo.first_key_value() else {
            return false;
        };
        self.deliver_held(u64::MAX, out);
        let Some((nseq, noff)) = self.next else {
            return false;
        };
        if first > noff {
            let len = first - noff;
            self.gap(noff, len, frame, reason, out);
            self.next = Some((nseq.wrapping_add(len as u32), first));
        }
        self.merge_ooo();
        true
    }

    fn gap<F>(&mut self, offset: u64, len: u64, frame: u64, reason: &'static str, out: &mut F)
    where
        F: FnMut(StreamEvent<'_>),
    {
        if self.stats.gaps.len() < MAX_GAP_RECORDS {
            self.stats.gaps.push(GapRecord {
                offset,
                len,
                frame,
                reason,
            });
        }
        out(StreamEvent::Gap { offset, len });
    }

    /// The receiver acknowledged `ack`. Bytes up to it are handed on; a hole below it that we
    /// hold data beyond will never be filled by this capture (the receiver has those bytes), so
    /// after a few such ACKs it is a gap.
    pub fn peer_ack<F>(&mut self, ack: u32, frame: u64, out: &mut F)
    where
        F: FnMut(StreamEvent<'_>),
    {
        let Some(acked) = self.offset_of(ack) else {
            return;
        };
        if acked < 0 || acked - (self.offset() as i64) > MAX_AHEAD {
            return;
        }
        let acked = acked as u64;
        self.acked = Some(self.acked.map_or(acked, |a| a.max(acked)));
        let acked = self.acked.unwrap_or(acked);
        let hole_acked = !self.ooo.is_empty() && acked > self.held_end();
        if hole_acked {
            // An ACK can overtake the data it acknowledges in a capture (several interfaces,
            // local reordering): wait for a few before declaring the hole lost.
            // Patience is per hole: ACKs counted while an earlier hole was open do not count
            // against the next one.
            if self.hole_at != self.held_end() {
                self.hole_at = self.held_end();
                self.acks_past_hole = 0;
            }
            self.acks_past_hole += 1;
            if self.acks_past_hole >= ACK_PATIENCE {
                self.acks_past_hole = 0;
                while self.ooo.first_key_value().is_some_and(|(&k, _)| k <= acked) {
                    self.skip_hole(frame, "acknowledged by the receiver but not captured", out);
                }
            }
        } else {
            self.acks_past_hole = 0;
        }
        self.release(out);
    }

    /// End of the connection or of the input: hand on everything still buffered.
    pub fn flush<F>(&mut self, frame: u64, out: &mut F)
    where
        F: FnMut(StreamEvent<'_>),
    {
        self.deliver_held(u64::MAX, out);
        while self.skip_hole(frame, "never filled before the end", out) {}
        self.deliver_held(u64::MAX, out);
    }
}

#[cfg(test)]
mod tests;
