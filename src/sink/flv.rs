//! FLV file writing: header, tags, PreviousTagSize, and the header flags patched at the end.

use std::io::{self, IoSlice, Seek, SeekFrom, Write};

use bytes::{Bytes, BytesMut};

use crate::rtmp::TagKind;

/// Where an [`FlvWriter`]'s bytes go: any `Write`, and a batch of whole tags in one write.
pub trait TagOut: Write {
    /// Write `parts` one after the other, in one write: whole tags. The default is one
    /// vectored write; an implementation may keep the parts (they are shared, not copied).
    fn write_parts(&mut self, parts: Vec<Bytes>) -> io::Result<()> {
        let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        write_all_vectored(self, &mut slices)
    }

    /// Have what was written so far reach its destination soon, without waiting for it (an
    /// output that writes at once has nothing to do).
    fn hurry(&mut self) {}
}

impl TagOut for Vec<u8> {}
impl TagOut for io::Cursor<Vec<u8>> {}

pub const HEADER: [u8; 13] = [b'F', b'L', b'V', 1, 0x05, 0, 0, 0, 9, 0, 0, 0, 0];

/// Whole tags are written together once this many bytes are waiting.
const FLUSH_AT: usize = 128 << 10;
/// A body at least this large (most video frames) is not copied into the waiting bytes: it goes
/// to the file straight from the message, in the same write as the tags around it.
const DIRECT_AT: usize = 4 << 10;

/// Writes one FLV file. Bodies are written exactly as given.
///
/// Any `Write` will do (a pipe too); [`finish`](FlvWriter::finish) needs `Seek` as well, to set
/// the header flags and the onMetaData duration once they are known.
///
/// The file stays readable if the process is killed: the header is written when the file is
/// created, and tags reach the file whole (never a partial tag from a full buffer), in one
/// write per batch. Only a SIGKILL landing inside that write can cut it (the kernel stops a
/// write between pages), leaving every tag before the cut one intact. The underlying file can
/// be closed while the stream is idle ([`suspend`](Self::suspend)) and handed back later
/// ([`resume`](Self::resume)).
#[derive(Debug)]
pub struct FlvWriter<W: TagOut> {
    out: Option<W>,
    /// Whole tags not yet written, in order: the bodies of large tags (shared, not copied)
    /// and, between them, what was copied into `scratch`.
    batch: Vec<Bytes>,
    /// Tag headers, trailers and small bodies not yet in `batch`.
    scratch: BytesMut,
    /// Bytes in `batch` and `scratch`.
    waiting: usize,
    has_audio: bool,
    has_video: bool,
    bytes: u64,
    /// Timestamps of the first and last audio/video tags.
    span: Option<(u32, u32)>,
    /// File offset of the onMetaData `duration` number (its 8 bytes), when one was written.
    duration_at: Option<u64>,
    /// File offset of the onMetaData `filesize` number, when one was written.
    filesize_at: Option<u64>,
}

impl<W: TagOut> FlvWriter<W> {
    /// Start a file. The header says audio and video until [`finish`](Self::finish) knows better,
    /// so a file cut short by a kill still opens in players.
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(&HEADER)?;
        Ok(Self::after_header(out))
    }

    /// Go on into `out`, which already holds the header [`new`](Self::new) would write.
    pub fn after_header(out: W) -> Self {
        FlvWriter {
            out: Some(out),
            batch: Vec::new(),
            scratch: BytesMut::new(),
            waiting: 0,
            has_audio: false,
            has_video: false,
            bytes: HEADER.len() as u64,
            span: None,
            duration_at: None,
            filesize_at: None,
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether the underlying file is open.
    pub fn is_open(&self) -> bool {
        self.out.is_some()
    }

    /// Bytes of whole tags not handed to the output yet.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// Whether one more tag of `body_len` bytes can wait here without reaching the point at
    /// which the batch is handed on (what a suspended writer holds until its file is opened
    /// again).
    pub fn can_hold(&self, body_len: usize) -> bool {
        self.waiting + 15 + body_len < FLUSH_AT
    }

    /// Write one tag with a 32-bit millisecond timestamp.
    pub fn tag(&mut self, kind: TagKind, timestamp: u32, body: &[u8]) -> io::Result<()> {
        self.put(kind, timestamp, body, None)
    }

    /// Write one tag whose body is shared, not copied, when it is large.
    pub fn tag_shared(&mut self, kind: TagKind, timestamp: u32, body: &Bytes) -> io::Result<()> {
        self.put(kind, timestamp, body, Some(body))
    }

    fn put(
        &mut self,
        kind: TagKind,
        timestamp: u32,
        body: &[u8],
        shared: Option<&Bytes>,
    ) -> io::Result<()> {
        let size = body.len().min(0x00ff_ffff) as u32;
        let body = &body[..size as usize];
        match kind {
            TagKind::Audio => self.has_audio = true,
            TagKind::Video => self.has_video = true,
            TagKind::Script => {
                if self.duration_at.is_none()
                    && let Some(at) = metadata_number_offset(body, b"duration")
                {
                    self.duration_at = Some(self.bytes + 11 + at as u64);
                }
                if self.filesize_at.is_none()
                    && let Some(at) = metadata_number_offset(body, b"filesize")
                {
                    self.filesize_at = Some(self.bytes + 11 + at as u64);
                }
            }
        }
        if kind != TagKind::Script {
            let (first, last) = self.span.get_or_insert((timestamp, timestamp));
            *first = (*first).min(timestamp);
            *last = (*last).max(timestamp);
        }
        let ts = timestamp.to_be_bytes();
        let s = size.to_be_bytes();
        let header = [
            kind as u8, s[1], s[2], s[3], ts[1], ts[2], ts[3], ts[0], 0, 0, 0,
        ];
        let trailer = (11 + size).to_be_bytes();
        self.bytes += 15 + size as u64;
        self.waiting += 15 + size as usize;
        let direct = body.len() >= DIRECT_AT;
        self.copy(&header);
        if direct {
            self.cut();
            self.batch.push(match shared {
                Some(b) => b.slice(..body.len()),
                None => Bytes::copy_from_slice(body),
            });
        } else {
            self.copy(body);
        }
        self.copy(&trailer);
        if self.waiting >= FLUSH_AT {
            self.write_pending()?;
        }
        Ok(())
    }

    /// Copy bytes into the batch.
    fn copy(&mut self, b: &[u8]) {
        if self.scratch.capacity() - self.scratch.len() < b.len() {
            // The written part of the buffer may still be in a write: a new one, as large as
            // a batch (the old one goes when the write is done).
            self.cut();
            self.scratch = BytesMut::with_capacity(b.len().max(FLUSH_AT + DIRECT_AT));
        }
        self.scratch.extend_from_slice(b);
    }

    /// End the copied run here: it becomes a part of the batch.
    fn cut(&mut self) {
        if !self.scratch.is_empty() {
            self.batch.push(self.scratch.split().freeze());
        }
    }

    /// Hand the waiting tags to the output, without waiting for it to write them.
    pub fn write_pending(&mut self) -> io::Result<()> {
        self.cut();
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        if self.batch.is_empty() {
            return Ok(());
        }
        self.waiting = 0;
        out.write_parts(std::mem::take(&mut self.batch))
    }

    /// Hand the waiting tags to the output and have them written soon, without waiting.
    pub fn hand_over(&mut self) -> io::Result<()> {
        self.write_pending()?;
        if let Some(out) = self.out.as_mut() {
            out.hurry();
        }
        Ok(())
    }

    /// Write the waiting tags, so a reader of the file sees every whole tag written so far.
    pub fn flush(&mut self) -> io::Result<()> {
        self.write_pending()?;
        match self.out.as_mut() {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }

    /// The header flags the file deserves: audio 0x04, video 0x01.
    pub fn flags(&self) -> u8 {
        (self.has_audio as u8) << 2 | self.has_video as u8
    }

    /// Write what is waiting and let go of the file (the stream is idle).
    pub fn suspend(&mut self) -> io::Result<()> {
        self.flush()?;
        self.out = None;
        Ok(())
    }

    /// Carry on into `out`, the same file positioned at its end.
    pub fn resume(&mut self, out: W) {
        self.out = Some(out);
    }

    /// Flush and hand back the output as it is (for outputs that cannot seek, such as a pipe,
    /// where the header must stay as first written); `None` when suspended.
    pub fn into_inner(mut self) -> io::Result<Option<W>> {
        self.flush()?;
        Ok(self.out.take())
    }
}

impl<W: TagOut + Seek> FlvWriter<W> {
    /// Set the header flags to what the file holds, the onMetaData duration (when the metadata
    /// has one) to the time the file spans, and hand back the output (`None` when the writer
    /// was suspended: its file is complete but keeps the provisional header).
    pub fn finish(self) -> io::Result<Option<W>> {
        let flags = self.flags();
        let duration = self
            .duration_at
            .map(|at| (at, self.span.map_or(0, |(a, b)| b - a)));
        let (filesize_at, size) = (self.filesize_at, self.bytes);
        let Some(mut w) = self.into_inner()? else {
            return Ok(None);
        };
        w.seek(SeekFrom::Start(4))?;
        w.write_all(&[flags])?;
        if let Some((at, ms)) = duration {
            w.seek(SeekFrom::Start(at))?;
            w.write_all(&(ms as f64 / 1000.0).to_be_bytes())?;
        }
        if let Some(at) = filesize_at {
            w.seek(SeekFrom::Start(at))?;
            w.write_all(&(size as f64).to_be_bytes())?;
        }
        w.seek(SeekFrom::End(0))?;
        w.flush()?;
        Ok(Some(w))
    }
}

/// `Write::write_all_vectored`, which is not stable yet.
fn write_all_vectored<W: Write + ?Sized>(
    w: &mut W,
    mut bufs: &mut [IoSlice<'_>],
) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match w.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Where the 8-byte value of the number `key` sits in an onMetaData script body (AMF0: name
/// string, ECMA array or object, then `key`, marker 0x00, f64).
fn metadata_number_offset(body: &[u8], key: &[u8]) -> Option<usize> {
    const NAME: &[u8] = b"\x02\x00\x0aonMetaData";
    if !body.starts_with(NAME) || key.len() > 255 {
        return None;
    }
    let mut pattern = vec![0, key.len() as u8];
    pattern.extend_from_slice(key);
    pattern.push(0);
    let at = memchr::memmem::find(&body[NAME.len()..], &pattern)? + NAME.len() + pattern.len();
    (body.len() >= at + 8).then_some(at)
}

/// One tag read back from an FLV file (for tests and verification).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadTag {
    pub kind: u8,
    pub timestamp: u32,
    pub body: Vec<u8>,
}

/// Parse a whole FLV file; `None` if it is not well formed (see [`parse_prefix`] for a file
/// that may end in a cut tag).
pub fn parse(data: &[u8]) -> Option<(u8, Vec<ReadTag>)> {
    if data.get(..3)? != b"FLV" {
        return None;
    }
    let flags = *data.get(4)?;
    let hlen = u32::from_be_bytes(data.get(5..9)?.try_into().ok()?) as usize;
    let mut pos = hlen.checked_add(4)?;
    let mut tags = Vec::new();
    let mut prev = 0u32;
    if u32::from_be_bytes(data.get(hlen..pos)?.try_into().ok()?) != prev {
        return None;
    }
    while pos < data.len() {
        let h = data.get(pos..pos + 11)?;
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let body = data.get(pos + 11..pos + 11 + size)?.to_vec();
        pos += 11 + size;
        prev = u32::from_be_bytes(data.get(pos..pos + 4)?.try_into().ok()?);
        if prev as usize != 11 + size {
            return None;
        }
        pos += 4;
        tags.push(ReadTag {
            kind: h[0],
            timestamp: ts,
            body,
        });
    }
    Some((flags, tags))
}

/// Parse an FLV file that may have been cut anywhere (a process killed while writing): the
/// whole tags, and how many bytes follow the last of them. `None` when even the header or a
/// whole tag is malformed.
pub fn parse_prefix(data: &[u8]) -> Option<(u8, Vec<ReadTag>, usize)> {
    if data.len() < HEADER.len() {
        return None;
    }
    let mut end = HEADER.len();
    while let Some(h) = data.get(end..end + 11) {
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let next = end + 11 + size + 4;
        if next > data.len() {
            break;
        }
        end = next;
    }
    let (flags, tags) = parse(&data[..end])?;
    Some((flags, tags, data.len() - end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn writes_a_parseable_file_with_true_flags() {
        let mut w = FlvWriter::new(Cursor::new(Vec::new())).unwrap();
        w.tag(TagKind::Script, 0, b"\x02\x00\x0aonMetaData")
            .unwrap();
        w.tag(TagKind::Video, 0x1234_5678, &[0x17, 0, 0, 0, 0])
            .unwrap();
        let bytes = w.bytes();
        let out = w.finish().unwrap().unwrap().into_inner();
        assert_eq!(out.len() as u64, bytes);
        let (flags, tags) = parse(&out).unwrap();
        assert_eq!(flags, 0x01);
        assert_eq!(tags.len(), 2);
        assert_eq!(tags[1].timestamp, 0x1234_5678);
        assert_eq!(tags[1].body, vec![0x17, 0, 0, 0, 0]);
    }

    #[test]
    fn file_holds_only_whole_tags_at_any_moment() {
        let mut w = FlvWriter::new(Cursor::new(Vec::new())).unwrap();
        let mut sizes = Vec::new();
        for i in 0..200u32 {
            w.tag(TagKind::Audio, i * 23, &vec![0xaf; 1000 + i as usize * 37])
                .unwrap();
            let now = w.out.as_ref().unwrap().get_ref().clone();
            let (_, tags, rest) = parse_prefix(&now).unwrap();
            assert_eq!(rest, 0, "a partial tag reached the file");
            sizes.push(tags.len());
        }
        assert!(
            sizes.windows(2).any(|w| w[1] > w[0]),
            "tags were written as they went"
        );
        // Suspended and resumed, the file goes on where it was.
        w.suspend().unwrap();
        assert!(!w.is_open());
        let mut c = Cursor::new(Vec::new());
        c.get_mut().extend_from_slice(&HEADER);
        c.set_position(HEADER.len() as u64);
        w.resume(c);
        w.tag(TagKind::Video, 5, &[0x17, 1, 0, 0, 0]).unwrap();
        let out = w.finish().unwrap().unwrap().into_inner();
        assert_eq!(parse(&out).unwrap().1.len(), 1);
    }

    fn metadata(duration: f64) -> Vec<u8> {
        let mut b = b"\x02\x00\x0aonMetaData\x08\x00\x00\x00\x02".to_vec();
        b.extend_from_slice(b"\x00\x05width\x00");
        b.extend_from_slice(&320f64.to_be_bytes());
        b.extend_from_slice(b"\x00\x08duration\x00");
        b.extend_from_slice(&duration.to_be_bytes());
        b.extend_from_slice(b"\x00\x00\x09");
        b
    }

    #[test]
    fn finish_sets_the_metadata_duration_to_the_span_written() {
        let mut w = FlvWriter::new(Cursor::new(Vec::new())).unwrap();
        w.tag(TagKind::Script, 0, &metadata(0.0)).unwrap();
        w.tag(TagKind::Audio, 40, &[0xaf, 1, 0]).unwrap();
        w.tag(TagKind::Audio, 2540, &[0xaf, 1, 0]).unwrap();
        let out = w.finish().unwrap().unwrap().into_inner();
        let (flags, tags) = parse(&out).unwrap();
        assert_eq!(flags, 0x04);
        assert_eq!(tags[0].body, metadata(2.5));
    }

    #[test]
    fn a_pipe_keeps_the_header_as_written() {
        let mut w = FlvWriter::new(Vec::new()).unwrap();
        w.tag(TagKind::Script, 0, &metadata(0.0)).unwrap();
        w.tag(TagKind::Video, 0, &[0x17, 0, 0, 0, 0]).unwrap();
        let out = w.into_inner().unwrap().unwrap();
        let (flags, tags) = parse(&out).unwrap();
        assert_eq!(flags, 0x05);
        assert_eq!(tags[0].body, metadata(0.0));
    }
}
