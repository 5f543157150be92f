//! Classic pcap files read without libpcap: a record header, then the frame, handed out of a
//! large read buffer. libpcap reads through stdio (a 4 KiB `read` at a time and a copy into
//! its own buffer) and the merge of several inputs needed a third copy; here a file costs one
//! `read` per megabyte and no copy at all. Record handling follows libpcap's `sf-pcap.c`, so
//! frames, lengths and times are the ones libpcap would give.

use std::io::{self, Read};

/// libpcap's largest snapshot length (`MAXIMUM_SNAPLEN`): a record that claims more is corrupt.
pub const MAXIMUM_SNAPLEN: u32 = 262_144;
/// Bytes asked of the operating system at a time.
const READ_SIZE: usize = 1 << 20;

/// What the 24-byte file header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileHeader {
    /// Bytes of each record header field are swapped relative to this machine's order.
    pub big_endian: bool,
    /// Timestamps' fraction in nanoseconds (magic 0xa1b23c4d) rather than microseconds.
    pub nanoseconds: bool,
    /// The link type as libpcap's `pcap_datalink` gives it.
    pub linktype: i32,
    pub snaplen: u32,
}

impl FileHeader {
    /// Parse a file header; `None` for anything but classic pcap version 2 (pcapng, the
    /// "modified" pcap variants and the rest are left to libpcap).
    pub fn parse(h: &[u8; 24]) -> Option<Self> {
        let (big_endian, nanoseconds) = match h[..4] {
            [0xd4, 0xc3, 0xb2, 0xa1] => (false, false),
            [0xa1, 0xb2, 0xc3, 0xd4] => (true, false),
            [0x4d, 0x3c, 0xb2, 0xa1] => (false, true),
            [0xa1, 0xb2, 0x3c, 0x4d] => (true, true),
            _ => return None,
        };
        let u16_at = |i: usize| {
            let b = [h[i], h[i + 1]];
            if big_endian {
                u16::from_be_bytes(b)
            } else {
                u16::from_le_bytes(b)
            }
        };
        let u32_at = |i: usize| read_u32(&h[i..i + 4], big_endian);
        if u16_at(4) != 2 {
            return None;
        }
        let snaplen = u32_at(16);
        // As libpcap: the link type is the low 26 bits (the rest says FCS length), and
        // LINKTYPE_RAW (101) is DLT_RAW, whose number depends on the platform (12 here).
        let linktype = match u32_at(20) & 0x03ff_ffff {
            101 => 12,
            lt => i32::try_from(lt).ok()?,
        };
        Some(FileHeader {
            big_endian,
            nanoseconds,
            linktype,
            snaplen,
        })
    }
}

fn read_u32(b: &[u8], big_endian: bool) -> u32 {
    let b = [b[0], b[1], b[2], b[3]];
    if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    }
}

/// The header of the record whose frame the reader holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Record {
    /// Seconds since the epoch.
    pub ts: f64,
    /// Bytes of the frame in the file (after libpcap's truncation to the snapshot length).
    pub caplen: usize,
    /// Length on the wire.
    pub orig_len: u32,
}

/// Why a file stopped before its end; the messages are libpcap's.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("truncated dump file; tried to read 16 header bytes, only got {0}")]
    TruncatedHeader(usize),
    #[error("truncated dump file; tried to read {want} captured bytes, only got {got}")]
    TruncatedRecord { want: u32, got: usize },
    #[error("invalid packet capture length {len}, bigger than snaplen of {snaplen}")]
    TooLong { len: u32, snaplen: u32 },
    #[error("error reading dump file: {0}")]
    Io(#[from] io::Error),
}

/// A large read buffer over a file or a pipe: `fill` makes the next `n` bytes available at
/// `pos`, reading a megabyte at a time; a frame is handed out of it without a copy. Shared by
/// the classic pcap and the pcapng readers.
pub(super) struct ReadBuffer<R> {
    inner: R,
    /// `buf[pos..end]` was read and not consumed yet. The buffer is allocated (and zeroed)
    /// once; it grows only for a record larger than itself.
    pub(super) buf: Vec<u8>,
    pub(super) pos: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> ReadBuffer<R> {
    pub(super) fn new(inner: R) -> Self {
        ReadBuffer {
            inner,
            buf: vec![0; READ_SIZE],
            pos: 0,
            end: 0,
            eof: false,
        }
    }

    /// Make `n` bytes from `pos` on available, unless the input ends first. Returns how many
    /// there are (at most `n`). Positions in `buf` from before the call are no longer valid.
    pub(super) fn fill(&mut self, n: usize) -> io::Result<usize> {
        if self.end - self.pos >= n {
            return Ok(n);
        }
        // Move the unread tail (less than one record) to the front, then read large blocks.
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        if self.buf.len() < n {
            self.buf.resize(n, 0);
        }
        while self.end < n && !self.eof {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(got) => self.end += got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.end.min(n))
    }
}

/// Reads the records of a classic pcap file, one frame at a time, out of one buffer.
pub struct PcapReader<R> {
    input: ReadBuffer<R>,
    header: FileHeader,
    /// The current frame: `input.buf[frame.0..frame.1]`.
    frame: (usize, usize),
    /// File offset where the current record ends (where the next one starts).
    record_end: u64,
}

impl<R: Read> PcapReader<R> {
    /// A reader of `inner`, whose 24-byte file header (already read) is `header`.
    pub fn new(inner: R, header: FileHeader) -> Self {
        PcapReader {
            input: ReadBuffer::new(inner),
            header,
            frame: (0, 0),
            record_end: 24,
        }
    }

    /// Bytes of the file read as whole records so far (with the file header).
    pub fn offset(&self) -> u64 {
        self.record_end
    }

    /// Move to the next record: its header, or `None` at the end of the file.
    pub fn advance(&mut self) -> Result<Option<Record>, ReadError> {
        self.frame = (0, 0);
        let input = &mut self.input;
        let got = input.fill(16)?;
        if got == 0 {
            return Ok(None);
        }
        if got < 16 {
            return Err(ReadError::TruncatedHeader(got));
        }
        let h = &input.buf[input.pos..input.pos + 16];
        let be = self.header.big_endian;
        let sec = read_u32(&h[0..4], be);
        let frac = read_u32(&h[4..8], be);
        let caplen = read_u32(&h[8..12], be);
        let orig_len = read_u32(&h[12..16], be);
        // libpcap hands out at most the snapshot length (a file whose header gives none, or
        // a larger one than libpcap allows, gets the largest) and skips the rest of a record.
        let snaplen = match self.header.snaplen {
            0 => MAXIMUM_SNAPLEN,
            s => s.min(MAXIMUM_SNAPLEN),
        };
        if caplen > MAXIMUM_SNAPLEN {
            return Err(ReadError::TooLong {
                len: caplen,
                snaplen,
            });
        }
        let keep = caplen.min(snaplen) as usize;
        let len = caplen as usize;
        let got = input.fill(16 + len)?;
        if got < 16 + len {
            return Err(ReadError::TruncatedRecord {
                want: caplen,
                got: got - 16,
            });
        }
        let start = input.pos + 16;
        self.frame = (start, start + keep);
        input.pos = start + len;
        self.record_end += 16 + len as u64;
        // As libpcap with nanosecond precision asked for: microseconds are scaled to
        // nanoseconds first (the same rounding as frames read through libpcap).
        let nanos = if self.header.nanoseconds {
            frac as u64
        } else {
            frac as u64 * 1000
        };
        Ok(Some(Record {
            ts: sec as f64 + nanos as f64 * 1e-9,
            caplen: keep,
            orig_len,
        }))
    }

    /// The frame of the current record.
    pub fn data(&self) -> &[u8] {
        &self.input.buf[self.frame.0..self.frame.1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(big_endian: bool, nanos: bool, records: &[(u32, u32, &[u8], u32)]) -> Vec<u8> {
        let w32 = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let mut f = Vec::new();
        f.extend_from_slice(&w32(magic));
        let (major, minor) = (2u16, 4u16);
        for v in [major, minor] {
            f.extend_from_slice(&if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            });
        }
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&w32(65535));
        f.extend_from_slice(&w32(1));
        for (sec, frac, data, orig) in records {
            f.extend_from_slice(&w32(*sec));
            f.extend_from_slice(&w32(*frac));
            f.extend_from_slice(&w32(data.len() as u32));
            f.extend_from_slice(&w32(*orig));
            f.extend_from_slice(data);
        }
        f
    }

    fn open(bytes: &[u8]) -> PcapReader<&[u8]> {
        let h = FileHeader::parse(bytes[..24].try_into().unwrap()).unwrap();
        PcapReader::new(&bytes[24..], h)
    }

    #[test]
    fn both_byte_orders_and_precisions() {
        for be in [false, true] {
            for ns in [false, true] {
                let f = file(be, ns, &[(10, 5, b"abc", 60), (12, 1, b"", 0)]);
                let mut r = open(&f);
                assert_eq!(r.header.linktype, 1);
                let a = r.advance().unwrap().unwrap();
                let frac = if ns { 5e-9 } else { 5e-6 };
                assert_eq!((a.ts, a.caplen, a.orig_len), (10.0 + frac, 3, 60));
                assert_eq!(r.data(), b"abc");
                assert!(r.advance().unwrap().unwrap().caplen == 0);
                assert!(r.advance().unwrap().is_none());
            }
        }
    }

    #[test]
    fn records_across_reads_come_whole() {
        // Records of 60000 bytes (the header's snaplen is 65535) straddle the 1 MiB reads.
        let bodies: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 60_000]).collect();
        let recs: Vec<(u32, u32, &[u8], u32)> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| (i as u32, 0, b.as_slice(), 60_000))
            .collect();
        let f = file(false, false, &recs);
        let mut r = open(&f);
        for b in &bodies {
            r.advance().unwrap().unwrap();
            assert_eq!(r.data(), b.as_slice());
        }
        assert!(r.advance().unwrap().is_none());
    }

    #[test]
    fn records_longer_than_the_snapshot_length_are_cut_as_libpcap_does() {
        let long = vec![9u8; 70_000];
        let f = file(false, false, &[(1, 0, &long, 70_000), (2, 0, b"next", 4)]);
        let mut r = open(&f);
        assert_eq!(r.advance().unwrap().unwrap().caplen, 65535);
        assert_eq!(r.data().len(), 65535);
        r.advance().unwrap().unwrap();
        assert_eq!(r.data(), b"next");
    }

    #[test]
    fn truncated_files_say_where() {
        let f = file(false, false, &[(1, 0, b"abcdef", 6), (2, 0, b"ghijkl", 6)]);
        let mut r = open(&f[..f.len() - 2]);
        assert!(r.advance().unwrap().is_some());
        assert!(matches!(
            r.advance(),
            Err(ReadError::TruncatedRecord { want: 6, got: 4 })
        ));
        let mut r = open(&f[..24 + 22 + 5]);
        assert!(r.advance().unwrap().is_some());
        assert!(matches!(r.advance(), Err(ReadError::TruncatedHeader(5))));
    }

    #[test]
    fn hostile_lengths_are_errors_not_allocations() {
        let mut f = file(false, false, &[(1, 0, b"ab", 2)]);
        f[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(open(&f).advance(), Err(ReadError::TooLong { .. })));
    }

    #[test]
    fn only_classic_version_2_is_taken() {
        let f = file(false, false, &[]);
        let mut h: [u8; 24] = f[..24].try_into().unwrap();
        assert!(FileHeader::parse(&h).is_some());
        h[..4].copy_from_slice(&[0x0a, 0x0d, 0x0d, 0x0a]);
        assert!(FileHeader::parse(&h).is_none());
        let mut h: [u8; 24] = f[..24].try_into().unwrap();
        h[4] = 3;
        assert!(FileHeader::parse(&h).is_none());
    }
}
