//! One chunk header as it stands in the bytes: the basic header (format and chunk stream
//! id), the message header its format calls for, and the extended timestamp a fmt-0/1/2
//! header announces. Parsing only, with every length checked: what the fields mean for a
//! chunk stream (deltas, fmt-3 continuations, the fmt-3 extended-timestamp convention) is
//! the reader's business.

/// The 24-bit timestamp value that says an extended timestamp follows.
pub const EXTENDED: u32 = 0x00ff_ffff;
/// The largest chunk header: 3-byte basic header, 11-byte message header, extended timestamp.
pub const MAX_HEADER: usize = 3 + 11 + 4;
/// Message header bytes by format.
const MESSAGE_HEADER_LEN: [usize; 4] = [11, 7, 3, 0];

/// The message header fields, by format. `timestamp` and `delta` are the 24-bit field as
/// sent ([`EXTENDED`] when an extended timestamp follows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fields {
    /// fmt 0: a message with everything given.
    Full {
        timestamp: u32,
        length: u32,
        type_id: u8,
        msid: u32,
    },
    /// fmt 1: the message stream of the previous message on the chunk stream.
    Sized {
        delta: u32,
        length: u32,
        type_id: u8,
    },
    /// fmt 2: the message stream, length and type of the previous message.
    Delta { delta: u32 },
    /// fmt 3: all of it as before.
    Continue,
}

/// A parsed chunk header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkHeader {
    pub fmt: u8,
    pub csid: u32,
    /// Bytes of the basic header (1 to 3).
    pub basic_len: usize,
    pub fields: Fields,
    /// The extended timestamp of a fmt-0/1/2 header whose 24-bit field is [`EXTENDED`]
    /// (never set for fmt 3: whether a fmt-3 chunk repeats it is for the reader to guess).
    pub extended: Option<u32>,
    /// Bytes of the whole header, extended timestamp included.
    pub len: usize,
}

fn u24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

impl ChunkHeader {
    /// The header at the start of `buf`, extended timestamp included; `None` while `buf`
    /// does not hold all of it.
    #[inline(always)]
    pub fn parse(buf: &[u8]) -> Option<ChunkHeader> {
        let mut h = Self::parse_fixed(buf)?;
        if h.fmt < 3 && h.field() == EXTENDED {
            let e = buf.get(h.len..h.len + 4)?;
            h.extended = Some(u32::from_be_bytes([e[0], e[1], e[2], e[3]]));
            h.len += 4;
        }
        Some(h)
    }

    /// The basic and message header at the start of `buf`, whether or not the extended
    /// timestamp they announce is there yet (`extended` is `None`, `len` is
    /// [`fixed_len`](Self::fixed_len)); `None` while `buf` does not hold them.
    #[inline(always)]
    pub fn parse_fixed(buf: &[u8]) -> Option<ChunkHeader> {
        let b0 = *buf.first()?;
        let fmt = b0 >> 6;
        let (csid, basic_len) = match b0 & 0x3f {
            0 => (64 + *buf.get(1)? as u32, 2),
            1 => (64 + *buf.get(1)? as u32 + 256 * *buf.get(2)? as u32, 3),
            x => (x as u32, 1),
        };
        let len = basic_len + MESSAGE_HEADER_LEN[fmt as usize];
        let m = buf.get(basic_len..len)?;
        let fields = match fmt {
            0 => Fields::Full {
                timestamp: u24(&m[0..3]),
                length: u24(&m[3..6]),
                type_id: m[6],
                msid: u32::from_le_bytes([m[7], m[8], m[9], m[10]]),
            },
            1 => Fields::Sized {
                delta: u24(&m[0..3]),
                length: u24(&m[3..6]),
                type_id: m[6],
            },
            2 => Fields::Delta {
                delta: u24(&m[0..3]),
            },
            _ => Fields::Continue,
        };
        Some(ChunkHeader {
            fmt,
            csid,
            basic_len,
            fields,
            extended: None,
            len,
        })
    }

    /// Bytes of the basic and message header (the extended timestamp not counted).
    pub fn fixed_len(&self) -> usize {
        self.basic_len + MESSAGE_HEADER_LEN[self.fmt as usize]
    }

    /// The 24-bit timestamp (fmt 0) or delta (fmt 1, 2) field as sent; 0 for fmt 3.
    #[inline]
    pub fn field(&self) -> u32 {
        match self.fields {
            Fields::Full { timestamp, .. } => timestamp,
            Fields::Sized { delta, .. } | Fields::Delta { delta } => delta,
            Fields::Continue => 0,
        }
    }

    /// The timestamp (fmt 0) or delta (fmt 1, 2) meant: the extended timestamp when there is
    /// one, else the 24-bit field.
    #[inline]
    pub fn time(&self) -> u32 {
        self.extended.unwrap_or(self.field())
    }

    /// Message length and type id (fmt 0, 1).
    #[inline]
    pub fn length_and_type(&self) -> Option<(u32, u8)> {
        match self.fields {
            Fields::Full {
                length, type_id, ..
            }
            | Fields::Sized {
                length, type_id, ..
            } => Some((length, type_id)),
            _ => None,
        }
    }

    /// Message stream id (fmt 0).
    #[inline]
    pub fn msid(&self) -> Option<u32> {
        match self.fields {
            Fields::Full { msid, .. } => Some(msid),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One header of each format, for each basic-header size, with and without an extended
    /// timestamp.
    fn samples() -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        for basic in [vec![3u8], vec![0, 10], vec![1, 0x34, 0x12]] {
            for fmt in 0..4u8 {
                for ts in [[0, 0, 40], [0xff, 0xff, 0xff]] {
                    let mut b = basic.clone();
                    b[0] |= fmt << 6;
                    if fmt < 3 {
                        b.extend_from_slice(&ts);
                    }
                    if fmt < 2 {
                        b.extend_from_slice(&[0, 1, 0, 9]);
                    }
                    if fmt == 0 {
                        b.extend_from_slice(&[1, 0, 0, 0]);
                    }
                    if fmt < 3 && ts[0] == 0xff {
                        b.extend_from_slice(&[1, 2, 3, 4]);
                    }
                    v.push(b);
                }
            }
        }
        v
    }

    #[test]
    fn fields_of_each_format() {
        let h = ChunkHeader::parse(&[0x04, 0, 0, 40, 0, 1, 0, 9, 1, 0, 0, 0]).unwrap();
        assert_eq!((h.fmt, h.csid, h.basic_len, h.len), (0, 4, 1, 12));
        assert_eq!(h.length_and_type(), Some((256, 9)));
        assert_eq!((h.msid(), h.time(), h.extended), (Some(1), 40, None));

        let h = ChunkHeader::parse(&[0x41, 0x34, 0x12, 0xff, 0xff, 0xff, 0, 0, 4, 8, 1, 2, 3, 4])
            .unwrap();
        assert_eq!((h.fmt, h.csid, h.basic_len, h.len), (1, 64 + 0x1234, 3, 14));
        assert_eq!((h.field(), h.time()), (EXTENDED, 0x0102_0304));
        assert_eq!((h.length_and_type(), h.msid()), (Some((4, 8)), None));

        let h = ChunkHeader::parse(&[0x80, 10, 0, 0, 33]).unwrap();
        assert_eq!((h.fmt, h.csid, h.len, h.time()), (2, 74, 5, 33));
        assert_eq!(h.length_and_type(), None);

        let h = ChunkHeader::parse(&[0xc6, 0xff, 0xff]).unwrap();
        assert_eq!((h.fmt, h.csid, h.len, h.extended), (3, 6, 1, None));
        assert_eq!(h.fixed_len(), 1);
    }

    #[test]
    fn every_truncated_prefix_needs_more() {
        for s in samples() {
            let whole = ChunkHeader::parse(&s).unwrap_or_else(|| panic!("{s:?}"));
            assert_eq!(whole.len, s.len(), "{s:?}");
            for n in 0..s.len() {
                assert_eq!(ChunkHeader::parse(&s[..n]), None, "{s:?} cut at {n}");
            }
            let fixed = ChunkHeader::parse_fixed(&s).unwrap();
            assert_eq!(fixed.len, whole.fixed_len());
            assert_eq!(fixed.extended, None);
            for n in 0..fixed.len {
                assert_eq!(ChunkHeader::parse_fixed(&s[..n]), None, "{s:?} cut at {n}");
            }
        }
    }

    #[test]
    fn byte_at_a_time_equals_whole() {
        for s in samples() {
            let whole = ChunkHeader::parse(&s);
            // Bytes after the header change nothing.
            let mut longer = s.clone();
            longer.extend_from_slice(&[0xc4; 20]);
            assert_eq!(ChunkHeader::parse(&longer), whole);
            let mut buf = Vec::new();
            let mut first = None;
            for &b in &longer {
                buf.push(b);
                if let Some(h) = ChunkHeader::parse(&buf) {
                    first = Some(h);
                    break;
                }
            }
            assert_eq!(first, whole, "{s:?}");
            assert_eq!(buf.len(), s.len());
        }
    }

    proptest! {
        #[test]
        fn any_bytes_parse_consistently(b in proptest::collection::vec(any::<u8>(), 0..24)) {
            if let Some(h) = ChunkHeader::parse(&b) {
                prop_assert!(h.len <= b.len() && h.len <= MAX_HEADER);
                prop_assert_eq!(ChunkHeader::parse(&b[..h.len]), Some(h));
                prop_assert_eq!(ChunkHeader::parse(&b[..h.len - 1]), None);
                prop_assert_eq!(h.extended.is_some(), h.fmt < 3 && h.field() == EXTENDED);
            } else {
                let f = ChunkHeader::parse_fixed(&b);
                prop_assert!(f.is_none() || f.unwrap().fmt < 3 && f.unwrap().field() == EXTENDED);
            }
        }
    }
}
