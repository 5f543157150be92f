//! pcapng files read without libpcap, from any byte stream (a file, a pipe, standard input):
//! section headers in both byte orders, any number of interfaces each with its own link type,
//! snapshot length and timestamp resolution and offset; enhanced, simple and obsolete packet
//! blocks; Decryption Secrets Blocks (TLS key logs) wherever they appear. libpcap's reader
//! refuses a file whose interfaces have different link types (what `mergecap` of an Ethernet
//! and a cooked capture gives) and needs a second open to tell pcapng from pcap, which a pipe
//! does not allow. Checks and messages follow libpcap's `sf-pcapng.c`, and times come out as
//! libpcap gives them at nanosecond precision.

use std::io::{self, Read};

use super::classic::{MAXIMUM_SNAPLEN, ReadBuffer};
use super::dsb::{DSB_TYPE, SHB_TYPE, tls_secrets_of_block};

const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// Largest block read (libpcap's limit for the largest snapshot length, rounded up): a block
/// that claims more is corrupt, and is never allocated.
pub const MAX_BLOCK: usize = 16 << 20;
/// Interfaces described in one section; past it the file is treated as corrupt.
pub const MAX_INTERFACES: usize = 1024;
/// TLS key logs (Decryption Secrets Blocks) kept across the file, in bytes.
pub const MAX_SECRETS_BYTES: usize = 16 << 20;

const IDB: u32 = 1;
const OPB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;

/// What an Interface Description Block says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Interface {
    /// As libpcap's `pcap_datalink` gives it (LINKTYPE_RAW is DLT_RAW).
    linktype: i32,
    snaplen: u32,
    /// Timestamp units per second (`if_tsresol`; microseconds when absent).
    units: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset: i64,
}

/// The header of the packet whose frame the reader holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Packet {
    /// Seconds since the epoch.
    pub ts: f64,
    pub caplen: usize,
    pub orig_len: u32,
    pub linktype: i32,
}

/// Why a file stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("truncated pcapng dump file; tried to read {want} bytes, only got {got}")]
    Truncated { want: usize, got: usize },
    #[error("block in pcapng dump file has a length of {0}, not a multiple of 4 of at least 12")]
    BadLength(u32),
    #[error("pcapng block size {0} > maximum {MAX_BLOCK}")]
    TooLong(u32),
    #[error("block total length in header and trailer don't match")]
    TrailerMismatch,
    #[error("the section header has an unknown byte-order magic")]
    BadMagic,
    #[error("unsupported pcapng savefile version {0}.{1}")]
    Version(u16, u16),
    #[error(
        "a packet arrived on interface {0}, but there's no Interface Description Block for that interface"
    )]
    NoInterface(u32),
    #[error("more than {MAX_INTERFACES} interfaces in one section")]
    TooManyInterfaces,
    #[error("interface description block: {0}")]
    BadInterface(&'static str),
    #[error("packet block: {0}")]
    BadPacket(&'static str),
    #[error("error reading dump file: {0}")]
    Io(#[from] io::Error),
}

/// Reads the packets of a pcapng stream, one frame at a time, out of one buffer.
pub struct PcapngReader<R> {
    input: ReadBuffer<R>,
    big: bool,
    /// The interfaces of the current section, by id.
    interfaces: Vec<Interface>,
    /// Every link type an interface of the file has had, in order of appearance.
    linktypes: Vec<i32>,
    /// The current frame: `input.buf[frame.0..frame.1]`.
    frame: (usize, usize),
    /// Bytes of the stream read as whole blocks so far.
    offset: u64,
    /// TLS key logs found and not yet taken.
    secrets: Vec<Vec<u8>>,
    secrets_bytes: usize,
}

fn u16_of(b: &[u8], big: bool) -> u16 {
    let b = [b[0], b[1]];
    if big {
        u16::from_be_bytes(b)
    } else {
        u16::from_le_bytes(b)
    }
}

fn u32_of(b: &[u8], big: bool) -> u32 {
    let b = [b[0], b[1], b[2], b[3]];
    if big {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    }
}

/// Timestamp units per second from an `if_tsresol` byte: a negative power of 10, or of 2 when
/// the top bit is set. `None` when it does not fit 64 bits (libpcap refuses those too).
fn units_of(tsresol: u8) -> Option<u64> {
    let exp = u32::from(tsresol & 0x7f);
    if tsresol & 0x80 == 0 {
        10u64.checked_pow(exp)
    } else {
        1u64.checked_shl(exp).filter(|_| exp < 64)
    }
}

impl Interface {
    /// Parses an Interface Description Block's body (after type and length, before the
    /// trailing length).
    fn parse(body: &[u8], big: bool) -> Result<Interface, ReadError> {
        if body.len() < 8 {
            return Err(ReadError::BadInterface("shorter than its fixed fields"));
        }
        let mut linktype = i32::from(u16_of(&body[0..2], big));
        if linktype == 101 {
            // As libpcap (and the classic reader): LINKTYPE_RAW is DLT_RAW, 12 here.
            linktype = 12;
        }
        let mut iface = Interface {
            linktype,
            snaplen: u32_of(&body[4..8], big),
            units: 1_000_000,
            offset: 0,
        };
        let mut opts = &body[8..];
        while opts.len() >= 4 {
            let code = u16_of(&opts[0..2], big);
            let len = usize::from(u16_of(&opts[2..4], big));
            let Some(value) = opts.get(4..4 + len) else {
                return Err(ReadError::BadInterface("an option runs past the block"));
            };
            match (code, len) {
                (0, _) => break,
                (9, 1) => {
                    iface.units = units_of(value[0])
                        .ok_or(ReadError::BadInterface("if_tsresol too large"))?;
                }
                (14, 8) => {
                    let b: [u8; 8] = value.try_into().expect("length checked");
                    iface.offset = if big {
                        i64::from_be_bytes(b)
                    } else {
                        i64::from_le_bytes(b)
                    };
                }
                (9 | 14, _) => return Err(ReadError::BadInterface("option of the wrong length")),
                _ => {}
            }
            let padded = (len + 3) & !3;
            opts = opts.get(4 + padded..).unwrap_or(&[]);
        }
        Ok(iface)
    }

    /// A packet time in the interface's units, as libpcap gives it at nanosecond precision.
    fn time(&self, t: u64) -> f64 {
        let sec = t / self.units;
        let frac = t % self.units;
        let nanos = match self.units {
            1_000_000_000 => frac,
            u if u < 1_000_000_000 && 1_000_000_000 % u == 0 => frac * (1_000_000_000 / u),
            u if u % 1_000_000_000 == 0 => frac / (u / 1_000_000_000),
            u => (u128::from(frac) * 1_000_000_000 / u128::from(u)) as u64,
        };
        (sec as i64).wrapping_add(self.offset) as f64 + nanos as f64 * 1e-9
    }
}

impl<R: Read> PcapngReader<R> {
    /// A reader of the whole stream, its Section Header Block included.
    pub fn new(inner: R) -> Self {
        PcapngReader {
            input: ReadBuffer::new(inner),
            big: false,
            interfaces: Vec::new(),
            linktypes: Vec::new(),
            frame: (0, 0),
            offset: 0,
            secrets: Vec::new(),
            secrets_bytes: 0,
        }
    }

    /// Bytes of the stream read as whole blocks so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The link types of the interfaces described so far, in order of appearance, each once.
    pub fn linktypes(&self) -> &[i32] {
        &self.linktypes
    }

    /// The TLS key logs of the Decryption Secrets Blocks read since the last call.
    pub fn take_secrets(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.secrets)
    }

    /// Whether key logs wait to be taken.
    pub fn has_secrets(&self) -> bool {
        !self.secrets.is_empty()
    }

    /// Move to the next packet: its header, or `None` at the end of the stream. The blocks
    /// before it (section and interface descriptions, secrets, others) are read on the way.
    pub fn advance(&mut self) -> Result<Option<Packet>, ReadError> {
        self.frame = (0, 0);
        loop {
            let got = self.input.fill(12)?;
            if got == 0 {
                return Ok(None);
            }
            if got < 12 {
                return Err(ReadError::Truncated { want: 12, got });
            }
            let at = self.input.pos;
            let head = &self.input.buf[at..at + 12];
            let raw_type = u32_of(&head[0..4], false);
            if raw_type == SHB_TYPE {
                let magic = u32_of(&head[8..12], false);
                self.big = match magic {
                    BYTE_ORDER_MAGIC => false,
                    m if m.swap_bytes() == BYTE_ORDER_MAGIC => true,
                    _ => return Err(ReadError::BadMagic),
                };
            }
            let big = self.big;
            let ty = u32_of(&head[0..4], big);
            let len32 = u32_of(&head[4..8], big);
            let len = len32 as usize;
            if len < 12 || !len.is_multiple_of(4) {
                return Err(ReadError::BadLength(len32));
            }
            if len > MAX_BLOCK {
                return Err(ReadError::TooLong(len32));
            }
            let got = self.input.fill(len)?;
            if got < len {
                return Err(ReadError::Truncated { want: len, got });
            }
            let at = self.input.pos;
            let block = &self.input.buf[at..at + len];
            if u32_of(&block[len - 4..], big) != len32 {
                return Err(ReadError::TrailerMismatch);
            }
            let body = &block[8..len - 4];
            let packet = match ty {
                SHB_TYPE => {
                    if body.len() < 16 {
                        return Err(ReadError::BadLength(len32));
                    }
                    let (major, minor) = (u16_of(&body[4..6], big), u16_of(&body[6..8], big));
                    if major != 1 {
                        return Err(ReadError::Version(major, minor));
                    }
                    self.interfaces.clear();
                    None
                }
                IDB => {
                    if self.interfaces.len() >= MAX_INTERFACES {
                        return Err(ReadError::TooManyInterfaces);
                    }
                    let iface = Interface::parse(body, big)?;
                    if !self.linktypes.contains(&iface.linktype) {
                        self.linktypes.push(iface.linktype);
                    }
                    self.interfaces.push(iface);
                    None
                }
                EPB | OPB => {
                    if body.len() < 20 {
                        return Err(ReadError::BadPacket("shorter than its fixed fields"));
                    }
                    let id = if ty == EPB {
                        u32_of(&body[0..4], big)
                    } else {
                        u32::from(u16_of(&body[0..2], big))
                    };
                    let t = (u64::from(u32_of(&body[4..8], big)) << 32)
                        | u64::from(u32_of(&body[8..12], big));
                    let caplen = u32_of(&body[12..16], big) as usize;
                    let orig_len = u32_of(&body[16..20], big);
                    if caplen > body.len() - 20 {
                        return Err(ReadError::BadPacket(
                            "captured length larger than the block",
                        ));
                    }
                    Some((id, Some(t), 8 + 20, caplen, orig_len))
                }
                SPB => {
                    if body.len() < 4 {
                        return Err(ReadError::BadPacket("shorter than its fixed fields"));
                    }
                    let orig_len = u32_of(&body[0..4], big);
                    let caplen = (orig_len as usize).min(body.len() - 4);
                    Some((0, None, 8 + 4, caplen, orig_len))
                }
                DSB_TYPE => {
                    if let Some(s) = tls_secrets_of_block(block, big)
                        && self.secrets_bytes + s.len() <= MAX_SECRETS_BYTES
                    {
                        self.secrets_bytes += s.len();
                        self.secrets.push(s.to_vec());
                    }
                    None
                }
                _ => None,
            };
            self.input.pos += len;
            self.offset += len as u64;
            let Some((id, t, data_at, caplen, orig_len)) = packet else {
                continue;
            };
            let iface = *self
                .interfaces
                .get(id as usize)
                .ok_or(ReadError::NoInterface(id))?;
            // As libpcap: a frame is handed out cut to the interface's snapshot length.
            let snaplen = match iface.snaplen {
                0 => MAXIMUM_SNAPLEN,
                s => s,
            } as usize;
            let caplen = caplen.min(snaplen);
            self.frame = (at + data_at, at + data_at + caplen);
            return Ok(Some(Packet {
                ts: t.map_or(0.0, |t| iface.time(t)),
                caplen,
                orig_len,
                linktype: iface.linktype,
            }));
        }
    }

    /// The frame of the current packet.
    pub fn data(&self) -> &[u8] {
        &self.input.buf[self.frame.0..self.frame.1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds pcapng files block by block, in either byte order.
    pub(crate) struct Writer {
        pub big: bool,
        pub out: Vec<u8>,
    }

    impl Writer {
        pub fn new(big: bool) -> Writer {
            let mut w = Writer {
                big,
                out: Vec::new(),
            };
            w.section();
            w
        }

        fn w16(&self, v: u16) -> [u8; 2] {
            if self.big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }

        fn w32(&self, v: u32) -> [u8; 4] {
            if self.big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }

        pub fn block(&mut self, ty: u32, body: &[u8]) {
            let mut body = body.to_vec();
            while !body.len().is_multiple_of(4) {
                body.push(0);
            }
            let len = (body.len() + 12) as u32;
            let (t, l) = (self.w32(ty), self.w32(len));
            self.out.extend_from_slice(&t);
            self.out.extend_from_slice(&l);
            self.out.extend_from_slice(&body);
            self.out.extend_from_slice(&l);
        }

        pub fn section(&mut self) {
            let mut b = self.w32(BYTE_ORDER_MAGIC).to_vec();
            b.extend_from_slice(&self.w16(1));
            b.extend_from_slice(&self.w16(0));
            b.extend_from_slice(&[0xff; 8]);
            self.block(SHB_TYPE, &b);
        }

        /// An interface; `tsresol` and `tsoffset` as options when given.
        pub fn interface(&mut self, linktype: u16, snaplen: u32, tsresol: Option<u8>, off: i64) {
            let mut b = self.w16(linktype).to_vec();
            b.extend_from_slice(&[0, 0]);
            b.extend_from_slice(&self.w32(snaplen));
            if let Some(r) = tsresol {
                b.extend_from_slice(&self.w16(9));
                b.extend_from_slice(&self.w16(1));
                b.extend_from_slice(&[r, 0, 0, 0]);
            }
            if off != 0 {
                b.extend_from_slice(&self.w16(14));
                b.extend_from_slice(&self.w16(8));
                b.extend_from_slice(&if self.big {
                    off.to_be_bytes()
                } else {
                    off.to_le_bytes()
                });
            }
            b.extend_from_slice(&[0; 4]);
            self.block(IDB, &b);
        }

        pub fn packet(&mut self, iface: u32, t: u64, data: &[u8], orig: u32) {
            let mut b = self.w32(iface).to_vec();
            b.extend_from_slice(&self.w32((t >> 32) as u32));
            b.extend_from_slice(&self.w32(t as u32));
            b.extend_from_slice(&self.w32(data.len() as u32));
            b.extend_from_slice(&self.w32(orig));
            b.extend_from_slice(data);
            self.block(EPB, &b);
        }

        pub fn secrets(&mut self, text: &[u8]) {
            let mut b = self.w32(super::super::dsb::SECRETS_TLS_KEYLOG).to_vec();
            b.extend_from_slice(&self.w32(text.len() as u32));
            b.extend_from_slice(text);
            self.block(DSB_TYPE, &b);
        }
    }

    fn all(bytes: &[u8]) -> Result<Vec<(Packet, Vec<u8>)>, ReadError> {
        let mut r = PcapngReader::new(bytes);
        let mut out = Vec::new();
        while let Some(p) = r.advance()? {
            out.push((p, r.data().to_vec()));
        }
        Ok(out)
    }

    #[test]
    fn interfaces_of_different_link_types_in_both_byte_orders() {
        for big in [false, true] {
            let mut w = Writer::new(big);
            w.interface(1, 65535, None, 0);
            w.interface(113, 65535, Some(9), 0);
            w.packet(0, 1_500_000_000_123_456, b"ether", 5);
            w.packet(1, 1_500_000_001_000_000_007, b"cooked", 60);
            let got = all(&w.out).unwrap();
            assert_eq!(got.len(), 2);
            assert_eq!(got[0].0.linktype, 1);
            assert_eq!(got[0].0.ts, 1_500_000_000.0 + 123_456e-9 * 1000.0);
            assert_eq!(got[0].1, b"ether");
            assert_eq!(got[1].0.linktype, 113);
            assert_eq!(got[1].0.ts, 1_500_000_001.0 + 7e-9);
            assert_eq!((got[1].0.caplen, got[1].0.orig_len), (6, 60));
            assert_eq!(got[1].1, b"cooked");
        }
    }

    #[test]
    fn times_follow_resolution_and_offset_as_libpcap_gives_them() {
        let i = |units, offset| Interface {
            linktype: 1,
            snaplen: 0,
            units,
            offset,
        };
        assert_eq!(i(1000, 0).time(5_001), 5.0 + 1e-3);
        assert_eq!(i(1_000_000_000_000, 3).time(2_000_000_000_500), 5.0);
        assert_eq!(i(1 << 10, 0).time((7 << 10) + 512), 7.5);
        assert_eq!(units_of(0x86), Some(64));
        assert_eq!(units_of(20), None);
        assert_eq!(units_of(0x80 | 64), None);
    }

    #[test]
    fn a_new_section_starts_new_interfaces_and_secrets_are_collected() {
        let mut w = Writer::new(false);
        w.secrets(b"CLIENT_RANDOM a b\n");
        w.interface(1, 0, None, 0);
        w.packet(0, 1, b"a", 1);
        let mut second = Writer::new(true);
        second.interface(101, 0, None, 0);
        second.packet(0, 2, b"b", 1);
        second.secrets(b"later\n");
        w.out.extend_from_slice(&second.out);
        let mut r = PcapngReader::new(w.out.as_slice());
        assert_eq!(r.advance().unwrap().unwrap().linktype, 1);
        assert_eq!(r.take_secrets(), vec![b"CLIENT_RANDOM a b\n".to_vec()]);
        assert_eq!(r.advance().unwrap().unwrap().linktype, 12);
        assert!(r.advance().unwrap().is_none());
        assert_eq!(r.take_secrets(), vec![b"later\n".to_vec()]);
        assert_eq!(r.linktypes(), &[1, 12]);
        assert_eq!(r.offset(), w.out.len() as u64);
    }

    #[test]
    fn frames_are_cut_to_the_snapshot_length() {
        let mut w = Writer::new(false);
        w.interface(1, 4, None, 0);
        w.packet(0, 0, b"abcdefgh", 8);
        let got = all(&w.out).unwrap();
        assert_eq!(got[0].1, b"abcd");
        assert_eq!((got[0].0.caplen, got[0].0.orig_len), (4, 8));
    }

    #[test]
    fn damage_is_an_error_that_says_where_the_good_blocks_end() {
        let mut w = Writer::new(false);
        w.interface(1, 0, None, 0);
        w.packet(0, 0, b"one", 3);
        let good = w.out.len();
        w.packet(0, 0, b"two", 3);
        // Cut inside the second packet.
        let mut r = PcapngReader::new(&w.out[..w.out.len() - 3]);
        assert!(r.advance().unwrap().is_some());
        assert!(matches!(r.advance(), Err(ReadError::Truncated { .. })));
        assert_eq!(r.offset(), good as u64);
        // A packet on an interface never described.
        let mut bad = Writer::new(false);
        bad.packet(3, 0, b"x", 1);
        assert!(matches!(all(&bad.out), Err(ReadError::NoInterface(3))));
        // A length that does not match the trailer, a huge length, a captured length past
        // its block: errors, never allocations or panics.
        let mut t = w.out.clone();
        let n = t.len();
        t[n - 4] ^= 4;
        assert!(matches!(all(&t), Err(ReadError::TrailerMismatch)));
        let mut h = w.out.clone();
        h[good + 4..good + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(all(&h), Err(ReadError::BadLength(_))));
        h[good + 4..good + 8].copy_from_slice(&(1u32 << 30).to_le_bytes());
        assert!(matches!(all(&h), Err(ReadError::TooLong(_))));
        let mut c = w.out.clone();
        c[good + 20..good + 24].copy_from_slice(&1000u32.to_le_bytes());
        assert!(matches!(all(&c), Err(ReadError::BadPacket(_))));
    }

    #[test]
    fn any_bytes_give_an_error_or_packets_never_a_panic() {
        let mut w = Writer::new(false);
        w.interface(1, 0, Some(6), 0);
        for i in 0..8u64 {
            w.packet(0, i, &[i as u8; 33], 33);
        }
        let base = w.out;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..3000 {
            let mut f = base.clone();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = (x as usize) % f.len();
                f[at] = (x >> 32) as u8;
            }
            let cut = (x >> 40) as usize % (f.len() + 1);
            let _ = all(&f[..cut]);
        }
    }
}
