//! Compressed captures (`x.pcap.gz`, `x.pcapng.zst`, `x.pcap.xz`), told by their magic
//! bytes, never by their names, and decoded as a stream out of the input's one open (a pipe
//! reads as a file does). Decoding holds a bounded amount: gzip's 32 KiB window, a zstd
//! window of at most 2^[`ZSTD_WINDOW_LOG_MAX`] bytes, an xz dictionary of at most
//! [`XZ_MEMLIMIT`] bytes (what `zstd --long` and `xz -9` need; their default levels need
//! 8 MiB or less); a file that needs more is refused with the reason. Damage inside the
//! compression is a read error, like a cut capture: the packets before it are used.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest zstd window accepted, as a power of two (128 MiB, zstd's own default limit).
pub const ZSTD_WINDOW_LOG_MAX: u32 = 27;
/// Most memory the xz decoder may use (xz -9 needs about 65 MiB).
pub const XZ_MEMLIMIT: u64 = 128 << 20;

/// A compression format rtmpsniff reads through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
    Xz,
}

impl Compression {
    /// The format whose magic bytes begin a stream, if any.
    pub fn of_magic(magic: [u8; 4]) -> Option<Self> {
        match magic {
            [0x1f, 0x8b, _, _] => Some(Compression::Gzip),
            [0x28, 0xb5, 0x2f, 0xfd] => Some(Compression::Zstd),
            [0xfd, 0x37, 0x7a, 0x58] => Some(Compression::Xz),
            _ => None,
        }
    }

    /// The report's name: `gzip`, `zstd`, `xz`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
        }
    }
}

/// Counts the bytes read through it (the compressed bytes the decoder took), for messages.
struct Counted<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The decompressed bytes of a stream. Its errors say the format and how far into the
/// compressed file the decoder had read when it found the damage.
pub struct Decompressed {
    inner: Box<dyn Read + Send>,
    kind: Compression,
    consumed: Arc<AtomicU64>,
    /// Decompressed bytes handed out so far.
    out: u64,
}

impl Decompressed {
    /// A decoder of `kind` over `raw` (which still begins with the magic bytes). Fails only
    /// when the decoder cannot be set up.
    pub fn new(kind: Compression, raw: Box<dyn Read + Send>) -> io::Result<Self> {
        let consumed = Arc::new(AtomicU64::new(0));
        let counted = Counted {
            inner: raw,
            count: consumed.clone(),
        };
        let inner: Box<dyn Read + Send> = match kind {
            // Every member, as gzip -d does with concatenated files.
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(counted)),
            Compression::Zstd => {
                let mut d = zstd::stream::read::Decoder::new(counted)?;
                d.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
                Box::new(d)
            }
            Compression::Xz => {
                let stream =
                    xz2::stream::Stream::new_stream_decoder(XZ_MEMLIMIT, xz2::stream::CONCATENATED)
                        .map_err(io::Error::from)?;
                Box::new(xz2::read::XzDecoder::new_stream(counted, stream))
            }
        };
        Ok(Decompressed {
            inner,
            kind,
            consumed,
            out: 0,
        })
    }
}

impl Read for Decompressed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.out += n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let at = self.consumed.load(Ordering::Relaxed);
                let kind = self.kind.name();
                let why = match e.kind() {
                    io::ErrorKind::UnexpectedEof => {
                        format!("{kind} data ends early, at byte {at} of the file ({e})")
                    }
                    _ => format!("{kind} data damaged before byte {at} of the file ({e})"),
                };
                Err(io::Error::new(e.kind(), why))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const TEXT: &[u8] = b"0123456789abcdef the capture inside, many times over; ";

    fn plain() -> Vec<u8> {
        TEXT.repeat(5000)
    }

    fn compressed(kind: Compression, data: &[u8]) -> Vec<u8> {
        match kind {
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Compression::Zstd => {
                // With the content checksum, as the zstd tool writes it.
                let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
                e.include_checksum(true).unwrap();
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Compression::Xz => {
                let mut e = xz2::write::XzEncoder::new(Vec::new(), 6);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
        }
    }

    fn decode(kind: Compression, bytes: Vec<u8>) -> (Vec<u8>, Option<io::Error>) {
        let mut d = Decompressed::new(kind, Box::new(io::Cursor::new(bytes))).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match d.read(&mut buf) {
                Ok(0) => return (out, None),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    const ALL: [Compression; 3] = [Compression::Gzip, Compression::Zstd, Compression::Xz];

    #[test]
    fn each_format_is_told_by_its_magic_and_decoded_whole() {
        for kind in ALL {
            let c = compressed(kind, &plain());
            let magic = [c[0], c[1], c[2], c[3]];
            assert_eq!(Compression::of_magic(magic), Some(kind), "{kind:?}");
            let (out, err) = decode(kind, c);
            assert!(err.is_none(), "{kind:?}: {err:?}");
            assert_eq!(out, plain(), "{kind:?}");
        }
        for not in [*b"\xd4\xc3\xb2\xa1", *b"\x0a\x0d\x0d\x0a", *b"BZh9"] {
            assert_eq!(Compression::of_magic(not), None);
        }
    }

    #[test]
    fn concatenated_members_and_frames_are_all_read() {
        for kind in ALL {
            let mut c = compressed(kind, b"first half, ");
            c.extend(compressed(kind, b"second half"));
            let (out, err) = decode(kind, c);
            assert!(err.is_none(), "{kind:?}: {err:?}");
            assert_eq!(out, b"first half, second half", "{kind:?}");
        }
    }

    #[test]
    fn a_cut_file_gives_what_came_before_and_an_error_that_says_so() {
        for kind in ALL {
            let mut c = compressed(kind, &plain());
            let cut = c.len() - 8;
            c.truncate(cut);
            let (out, err) = decode(kind, c);
            let err = err.unwrap_or_else(|| panic!("{kind:?}: a cut file read as whole"));
            let msg = err.to_string();
            assert!(msg.starts_with(kind.name()), "{kind:?}: {msg}");
            assert!(msg.contains(&format!("byte {cut} of the file")), "{msg}");
            // What was decoded before the cut is the start of the data.
            assert!(plain().starts_with(&out), "{kind:?}");
        }
    }

    #[test]
    fn damage_inside_is_an_error_not_a_panic() {
        for kind in ALL {
            let mut c = compressed(kind, &plain());
            let mid = c.len() / 2;
            for b in &mut c[mid..mid + 16] {
                *b ^= 0x5a;
            }
            let (out, err) = decode(kind, c);
            let err = err.unwrap_or_else(|| panic!("{kind:?}: damage went unnoticed"));
            assert!(err.to_string().contains("damaged"), "{kind:?}: {err}");
            assert!(out.len() < plain().len(), "{kind:?}");
        }
    }

    #[test]
    fn a_zstd_window_past_the_limit_is_refused() {
        // A frame header claiming a 2^31 window (Window_Descriptor exponent 21).
        let mut c = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 21 << 3];
        c.extend_from_slice(&[0u8; 16]);
        let (out, err) = decode(Compression::Zstd, c);
        assert!(out.is_empty());
        let msg = err.expect("refused").to_string();
        assert!(msg.starts_with("zstd data damaged"), "{msg}");
    }
}
