//! The RTMP chunk layer of one direction: chunk headers in, whole messages out.
//!
//! State is kept per chunk stream id (previous header, partial message), so interleaved chunk
//! streams never share a buffer. Payload is consumed as it arrives: nothing is ever allocated by
//! the chunk size, and a partial message grows only as its bytes come in.

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

use super::header::{ChunkHeader, Fields, MAX_HEADER};
use super::media;
use super::message::{self, Message, TimeBase, types};
use crate::config::{LimitHits, Limits};

mod writer;
pub use writer::ChunkWriter;

pub const DEFAULT_CHUNK_SIZE: u32 = 128;
pub const MAX_CHUNK_SIZE: u32 = 0x7fff_ffff;
/// Chunk sizes kept in [`ChunkStats::chunk_sizes`].
const MAX_CHUNK_SIZES_KEPT: usize = 64;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ChunkError {
    #[error(
        "chunk stream {csid} continues (fmt {fmt}) without an earlier fmt-0 header at offset {offset}"
    )]
    NoPreviousHeader { csid: u32, fmt: u8, offset: u64 },
    #[error("more than {limit} chunk streams at offset {offset}")]
    TooManyChunkStreams { limit: usize, offset: u64 },
    #[error("message of {len} bytes exceeds the limit at offset {offset}")]
    MessageTooLarge { len: u32, offset: u64 },
    #[error("partial messages exceed {limit} bytes at offset {offset}")]
    PartialLimit { limit: usize, offset: u64 },
    /// Only from a [`strict`](ChunkReader::strict) reader.
    #[error("implausible chunk header at offset {offset}")]
    Implausible { offset: u64 },
}

impl ChunkError {
    /// Count the error in `hits` when it is a limit being reached.
    pub fn count(&self, hits: &mut LimitHits) {
        match self {
            ChunkError::TooManyChunkStreams { .. } => hits.chunk_streams += 1,
            ChunkError::MessageTooLarge { .. } => hits.message_bytes += 1,
            ChunkError::PartialLimit { .. } => hits.partial_bytes += 1,
            ChunkError::NoPreviousHeader { .. } | ChunkError::Implausible { .. } => {}
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Partial {
    body: Vec<u8>,
    length: u32,
    offset: u64,
}

/// Bytes of a message a gap cut that are kept to say what it was (a frame or a
/// configuration, and its codec: see [`ChunkReader::cut_media`]).
pub const CUT_BYTES_KEPT: usize = 16;

/// A partial message grows to at least this (or its length) once its second chunk comes.
const GROW_TO: usize = 256 << 10;

impl Partial {
    /// The capacity the body needs to take `incoming` more bytes. A message's first chunk is
    /// all that is reserved for it; once a second one comes the body grows to its length (up
    /// to [`GROW_TO`] at a time, or double), so most messages are copied once, not once per
    /// doubling.
    fn capacity_for(&self, incoming: usize) -> usize {
        let need = self.body.len() + incoming;
        let cap = self.body.capacity();
        if need <= cap {
            return cap;
        }
        need.max(2 * cap)
            .max(GROW_TO)
            .min(self.length as usize)
            .max(need)
    }
}

#[derive(Debug, Default, Clone)]
pub(crate) struct ChunkStream {
    timestamp: u32,
    delta: u32,
    length: u32,
    type_id: u8,
    msid: u32,
    /// Raw extended-timestamp value of the last fmt 0/1/2 header, when it had one.
    ext: Option<u32>,
    partial: Option<Partial>,
    /// Codec of the media last read on this chunk stream (audio format or video codec id).
    codec: Option<(u8, u8)>,
    /// Where its timestamps count from.
    base: TimeBase,
    /// The last gap resumed after since its last fmt-0 header (see [`Message::resumed`]).
    resumed: u32,
    /// No fmt 0-2 header since the last gap: its delta is from before (see
    /// [`Message::stale_delta`]).
    stale: bool,
    /// No fmt 0-1 header since the last gap: its length is from before.
    stale_length: bool,
}

impl ChunkStream {
    /// Whether its messages may be MP3 whose length the frame's header says (see
    /// [`Self::mp3_length`]): audio, or script data (ffmpeg sends `@setDataFrame` on the
    /// chunk stream of its audio, so that a gap that took the first audio header leaves the
    /// chunk stream's type from the script's).
    fn audio(&self) -> bool {
        (self.type_id == types::AUDIO && self.length >= 5) || self.script()
    }

    fn script(&self) -> bool {
        matches!(self.type_id, types::DATA_AMF0 | types::DATA_AMF3)
    }

    /// Whether a message begun by a fmt-2 or fmt-3 header takes its length from its first
    /// bytes: an audio message on a length from before a gap.
    fn peeks(&self) -> bool {
        self.stale_length && self.audio()
    }

    /// The length of an audio message from its first bytes, where they say it is not the
    /// one in force: the header that last set this length may have been lost, and MP3
    /// frames change length by their padding byte, which the frame's own header gives. (A
    /// script body never begins like MP3: its first byte is an AMF marker.)
    fn mp3_length(&self, first: &[u8]) -> Option<u32> {
        if !self.audio() {
            return None;
        }
        let stale = if self.script() { 0 } else { self.length };
        media::mp3_message_len(first.get(..5)?, stale)
    }

    /// Take in a header's fields (`new_message`: its chunk starts a message).
    fn apply(&mut self, h: &ChunkHeader, new_message: bool) {
        match h.fields {
            Fields::Full {
                length,
                type_id,
                msid,
                ..
            } => {
                let ts = h.time();
                self.timestamp = ts;
                self.delta = ts;
                self.base = TimeBase::Exact;
                self.resumed = 0;
                self.stale = false;
                self.stale_length = false;
                self.length = length;
                self.type_id = type_id;
                self.msid = msid;
                self.ext = h.extended;
            }
            Fields::Sized {
                length, type_id, ..
            } => {
                self.advance(h.time());
                self.length = length;
                self.type_id = type_id;
                self.ext = h.extended;
                self.stale = false;
                self.stale_length = false;
            }
            Fields::Delta { .. } => {
                self.advance(h.time());
                self.ext = h.extended;
                self.stale = false;
            }
            Fields::Continue => {
                if new_message {
                    self.timestamp = self.timestamp.wrapping_add(self.delta);
                }
            }
        }
    }

    fn advance(&mut self, delta: u32) {
        self.delta = delta;
        self.timestamp = self.timestamp.wrapping_add(delta);
    }
}

/// Bytes after a header looked at for an AAC message's length (its frames are at most
/// 768 bytes a channel).
const AAC_SPAN: usize = 2048;
/// The largest delta (ms) a header found there may carry.
const AAC_NEXT_DELTA_MS: u32 = 1000;

/// Whether a body begins as an AAC frame (not its configuration).
fn is_aac_frame(body: &[u8]) -> bool {
    matches!(body, [b0, 1, ..] if b0 >> 4 == 10)
}

/// The length of an AAC message whose header's length is from before a gap (`stale`): the
/// stale one where it fits, else the first place within `span` bytes of `body`'s start that
/// does. A place fits where a chunk header follows on a known chunk stream (fmt 0 to 2, its
/// fields what that chunk stream carries; or fmt 3 of this chunk stream `csid`, a message of
/// the same length) and another where that header's chunk ends (or past the bytes here).
/// `None` where no place fits. (A fmt-3 header of another chunk stream, one byte, is not
/// looked for first: bytes that happen to match would be everywhere.)
fn aac_length(
    body: &[u8],
    csid: u32,
    span: usize,
    chunk_size: u32,
    streams: &foldhash::HashMap<u32, ChunkStream>,
    stale: u32,
) -> Option<u32> {
    // The header at the start of `b`, when it fits, this chunk stream's message being `l`
    // bytes long: where its chunk ends. `any3`: a fmt-3 header of any chunk stream.
    let fits = |b: &[u8], any3: bool, l: usize| -> Option<usize> {
        let h = ChunkHeader::parse_fixed(b)?;
        let cs = streams.get(&h.csid)?;
        let media = matches!(cs.type_id, types::AUDIO | types::VIDEO);
        // Under fmt 2 or 3, the length of the message before on the chunk stream.
        let same = if h.csid == csid { l as u32 } else { cs.length };
        let len = match h.fmt {
            0 | 1 => {
                let (len, t) = h.length_and_type()?;
                let ok = t == cs.type_id
                    && message::length_fits(t, len)
                    && h.msid().is_none_or(|m| m == cs.msid)
                    && (h.fmt == 0 || h.field() <= AAC_NEXT_DELTA_MS);
                ok.then_some(len)?
            }
            2 => (media && h.field() <= AAC_NEXT_DELTA_MS).then_some(same)?,
            _ => (any3 || h.csid == csid).then_some(same)?,
        };
        let ext = if h.field() == 0xff_ffff { 4 } else { 0 };
        Some(h.fixed_len() + ext + len.min(chunk_size) as usize)
    };
    let at = |l: usize| {
        l <= body.len()
            && fits(&body[l..], false, l).is_some_and(|end| {
                l + end >= body.len() || fits(&body[l + end..], true, l).is_some()
            })
    };
    // The length from before the gap first: bytes that happen to fit nearer are not taken
    // over it.
    if at(stale as usize) {
        return Some(stale);
    }
    (1..=span.min(body.len()))
        .find(|&l| at(l))
        .map(|l| l as u32)
}

/// Whether a fmt-3 chunk repeats the extended timestamp. Senders disagree, so the four bytes
/// after its basic header (`avail` holds what is here of them) are taken only when they hold
/// a value expected: the last extended timestamp, or `absolute`, the timestamp a new message
/// would have. `None` while too few bytes are here to tell and more may come.
fn fmt3_extended(expected: u32, absolute: Option<u32>, avail: &[u8], at_end: bool) -> Option<bool> {
    let candidates = [Some(expected), absolute];
    match avail.get(..4) {
        Some(e) => Some(candidates.contains(&Some(u32::from_be_bytes([e[0], e[1], e[2], e[3]])))),
        None => {
            // Wait for more bytes only while they could still be the timestamp.
            let could_be = candidates
                .iter()
                .flatten()
                .any(|c| c.to_be_bytes().starts_with(avail));
            if could_be && !at_end {
                None
            } else {
                Some(false)
            }
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct ChunkStats {
    pub messages: u64,
    pub chunks: u64,
    /// Chunk sizes in force, in order (the first is the initial 128 or the inferred one).
    pub chunk_sizes: Vec<u32>,
    pub aborts: u64,
    /// Partial messages dropped because a new header replaced them.
    pub replaced_partials: u64,
    /// fmt-3 chunks whose extended timestamp was present / absent (sender conventions).
    pub fmt3_ext_present: u64,
    pub fmt3_ext_absent: u64,
    pub invalid_chunk_sizes: u64,
    /// MP3 messages after a gap whose length came from their frame header, not from a header
    /// before the gap.
    pub mp3_lengths_read: u64,
    /// AAC messages after a gap whose length came from where the next chunk header is.
    pub aac_lengths_found: u64,
}

/// Incremental chunk-stream reader for one direction.
#[derive(Debug, Clone)]
pub struct ChunkReader {
    buf: BytesMut,
    /// Stream offset of `buf[0]`.
    offset: u64,
    chunk_size: u32,
    /// Looked up for every chunk: foldhash, not SipHash.
    streams: foldhash::HashMap<u32, ChunkStream>,
    /// Chunk streams 0 to 63 known (bit `csid`): lock-on asks of every byte it looks at.
    known_small: u64,
    /// Bytes of payload left in the chunk being read, and its chunk stream.
    payload_left: u32,
    current: u32,
    partial_bytes: usize,
    /// No more bytes will come: a pending fmt-3 timestamp peek decides on what is there.
    at_end: bool,
    /// A header waits for the bytes after it, where an AAC message's length is looked for
    /// (see [`aac_length`]).
    awaits_length: bool,
    /// Reading from a point other than the stream start (lock-on, resync): a fmt-1 header may
    /// introduce a chunk stream, whose message stream id is then `default_msid` and whose
    /// timestamps are aligned with the latest timestamp seen on any chunk stream.
    lenient: bool,
    /// The chunk size is a lock-on's guess (no Set Chunk Size read since), and, once the
    /// reader met bytes it could not read, in doubt: the next search tries every size.
    size_guessed: bool,
    size_doubted: bool,
    default_msid: u32,
    latest_ts: u32,
    /// Bases guessed so far (numbers [`TimeBase::Guessed`]).
    guesses: u32,
    /// Gaps resumed after so far.
    resumes: u32,
    /// Trying a lock-on (see [`strict`](Self::strict)).
    strict: bool,
    limits: Limits,
    pub stats: ChunkStats,
}

impl ChunkReader {
    /// A reader whose first byte is at stream offset `offset`.
    pub fn new(offset: u64, chunk_size: u32, limits: Limits) -> Self {
        ChunkReader {
            buf: BytesMut::new(),
            offset,
            chunk_size,
            streams: Default::default(),
            known_small: 0,
            payload_left: 0,
            current: 0,
            partial_bytes: 0,
            at_end: false,
            awaits_length: false,
            lenient: false,
            size_guessed: false,
            size_doubted: false,
            default_msid: 1,
            latest_ts: 0,
            guesses: 0,
            resumes: 0,
            strict: false,
            limits,
            stats: ChunkStats {
                chunk_sizes: vec![chunk_size],
                ..Default::default()
            },
        }
    }

    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// The reader of a lock-on probe: a header that introduces a message real senders would
    /// not send (a type unknown or a length that does not fit it, protocol control off chunk
    /// stream 2 and message stream 0, a message stream id past 65535) or that abandons a
    /// message half sent is an error at once, so that bytes that are not chunks fail at their
    /// first false header instead of after a long read.
    pub fn strict(mut self) -> Self {
        self.strict = true;
        self
    }

    /// A reader that starts somewhere inside a chunk stream (see `lenient`).
    pub fn resumed(offset: u64, chunk_size: u32, limits: Limits) -> Self {
        let mut r = ChunkReader::new(offset, chunk_size, limits);
        r.lenient = true;
        r.size_guessed = true;
        r
    }

    /// The same chunk-stream knowledge, reading again at `offset` with `chunk_size` after bytes
    /// were lost: partial messages are dropped, the per-csid headers are kept.
    pub fn resume_at(&self, offset: u64, chunk_size: u32) -> Self {
        let mut r = self.clone();
        r.buf = BytesMut::new();
        r.offset = offset;
        r.payload_left = 0;
        r.partial_bytes = 0;
        r.at_end = false;
        r.awaits_length = false;
        r.lenient = true;
        r.size_doubted = false;
        r.resumes = r.resumes.wrapping_add(1).max(1);
        for cs in r.streams.values_mut() {
            cs.partial = None;
            cs.resumed = r.resumes;
            cs.stale = true;
            cs.stale_length = true;
        }
        if r.chunk_size != chunk_size {
            r.size_guessed = true;
            r.chunk_size = chunk_size;
            if r.stats.chunk_sizes.len() < MAX_CHUNK_SIZES_KEPT {
                r.stats.chunk_sizes.push(chunk_size);
            }
        }
        r
    }

    /// Whether the reader stands between chunks (no payload or header bytes pending): bytes
    /// lost here began with a chunk header.
    pub fn at_chunk_boundary(&self) -> bool {
        self.payload_left == 0 && self.buf.is_empty()
    }

    /// Media chunk streams known: (csid, message length, type id, extended timestamp in use).
    pub(crate) fn media_streams(&self) -> Vec<(u32, u32, u8, bool)> {
        let mut v: Vec<_> = self
            .streams
            .iter()
            .filter(|(_, cs)| cs.type_id == types::AUDIO || cs.type_id == types::VIDEO)
            .map(|(&id, cs)| (id, cs.length, cs.type_id, cs.ext.is_some()))
            .collect();
        v.sort_unstable();
        v
    }

    /// Chunk stream `csid`'s messages are taken to be `length` bytes long from here (a
    /// lock-on trying what a lost header said).
    pub(crate) fn assume_length(&mut self, csid: u32, length: u32) {
        if let Some(cs) = self.streams.get_mut(&csid) {
            cs.length = length;
        }
    }

    /// A message whose header was lost and whose body was found whole (`length` bytes,
    /// `body`): its chunk stream takes it in as if the header had been read, its time being
    /// the last delta applied again (exact for a lost fmt-3 header, estimated otherwise).
    pub(crate) fn recovered(
        &mut self,
        csid: u32,
        body: Bytes,
        offset: u64,
        frame: u64,
    ) -> Option<Message> {
        let cs = self.streams.get_mut(&csid)?;
        cs.timestamp = cs.timestamp.wrapping_add(cs.delta);
        cs.length = body.len() as u32;
        self.stats.messages += 1;
        self.latest_ts = cs.timestamp;
        Some(Message {
            csid,
            msid: cs.msid,
            type_id: cs.type_id,
            timestamp: cs.timestamp,
            body,
            offset,
            frame,
            base: cs.base,
            resumed: cs.resumed,
            stale_delta: true,
        })
    }

    /// The reader met bytes it could not read: if its chunk size was a lock-on's guess, the
    /// guess may be what was wrong.
    pub fn doubt_size(&mut self) {
        self.size_doubted = self.size_guessed;
    }

    /// Whether the chunk size in force is a lock-on's guess that bytes it could not read
    /// put in doubt (see [`Self::doubt_size`]).
    pub fn size_doubted(&self) -> bool {
        self.size_doubted
    }

    /// Whether this reader resumed inside a stream (its chunk stream state is partly guessed).
    pub fn is_resumed(&self) -> bool {
        self.lenient
    }

    /// The codec last remembered for chunk stream `csid` (audio format or video codec id;
    /// lock-on's believability check keeps it), when the chunk stream is known.
    pub(crate) fn codec_slot(&mut self, csid: u32) -> Option<&mut Option<(u8, u8)>> {
        self.streams.get_mut(&csid).map(|cs| &mut cs.codec)
    }

    /// The length a fmt-2 or fmt-3 header starting a message on chunk stream `csid` gives
    /// it after a gap, its body beginning with `first` (MP3: as a resumed reader finds it),
    /// and whether its chunks may carry an extended timestamp, when the chunk stream is
    /// known. (Called on the reader from before the gap: its lengths are all from before.)
    pub fn next_length(&self, csid: u32, first: &[u8]) -> Option<(u32, bool)> {
        self.streams.get(&csid).map(|cs| {
            let len = cs.mp3_length(first).unwrap_or(cs.length);
            (len, cs.ext.is_some())
        })
    }

    /// The media messages begun but not whole: what a gap now cuts, in the order their
    /// headers came, each with the first bytes of its body that came (at most
    /// [`CUT_BYTES_KEPT`]) and its header's offset. Their headers were read, so the times
    /// after them are exact.
    pub(crate) fn cut_media(&self, frame: u64) -> Vec<Message> {
        let mut cut: Vec<Message> = self
            .streams
            .iter()
            .filter(|(_, cs)| matches!(cs.type_id, types::AUDIO | types::VIDEO))
            .filter_map(|(&csid, cs)| {
                let p = cs.partial.as_ref()?;
                Some(Message {
                    csid,
                    msid: cs.msid,
                    type_id: cs.type_id,
                    timestamp: cs.timestamp,
                    body: Bytes::copy_from_slice(&p.body[..p.body.len().min(CUT_BYTES_KEPT)]),
                    offset: p.offset,
                    frame,
                    base: cs.base,
                    resumed: cs.resumed,
                    stale_delta: cs.stale,
                })
            })
            .collect();
        cut.sort_unstable_by_key(|m| m.offset);
        cut
    }

    /// Whether a chunk stream's header state is known.
    pub fn knows(&self, csid: u32) -> bool {
        if csid < 64 {
            return self.known_small & (1 << csid) != 0;
        }
        self.streams.contains_key(&csid)
    }

    /// The bytes not parsed yet and their stream offset (after an error, to hunt in them).
    pub fn take_unparsed(&mut self) -> (u64, BytesMut) {
        let b = std::mem::take(&mut self.buf);
        (self.offset, b)
    }

    /// Bytes held but not yet consumed.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Memory held for the global budget: unparsed bytes, partial messages, chunk streams.
    pub fn buffered_bytes(&self) -> usize {
        self.buf.capacity()
            + self.partial_bytes
            + self.streams.len() * std::mem::size_of::<ChunkStream>()
    }

    /// Stream offset of the next byte to parse.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Feed bytes; complete messages are appended to `out`. After an error the reader must not
    /// be fed again (the caller re-locks with a new reader).
    ///
    /// Payload goes from `data` straight into its message; only chunk headers (and the few
    /// bytes after one) pass through the reader's own buffer, so the bytes are copied once.
    pub fn push(
        &mut self,
        mut data: &[u8],
        frame: u64,
        out: &mut Vec<Message>,
    ) -> Result<(), ChunkError> {
        loop {
            if let Err(e) = self.drain(frame, out) {
                // The bytes not parsed are the buffered ones and the rest of `data`.
                self.buf.extend_from_slice(data);
                return Err(e);
            }
            if data.is_empty() {
                break;
            }
            if self.buf.is_empty() && self.payload_left > 0 {
                let n = (self.payload_left as usize).min(data.len());
                let used = self.take_payload(&data[..n], frame, out);
                data = &data[used..];
                if used > 0 {
                    continue;
                }
            }
            // A chunk header comes next: buffer enough bytes for the largest one.
            let n = data.len().min(MAX_HEADER);
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        // Keep the buffer from holding on to a large allocation once drained.
        if self.buf.is_empty() && self.buf.capacity() > 1 << 20 {
            self.buf = BytesMut::new();
        }
        Ok(())
    }

    /// Parse what is buffered, as far as it goes.
    fn drain(&mut self, frame: u64, out: &mut Vec<Message>) -> Result<(), ChunkError> {
        while self.step(frame, out)? {}
        Ok(())
    }

    /// Bytes are about to be lost: a header waiting for the bytes after it (see
    /// [`aac_length`]) decides on those here, as at the end.
    pub fn before_gap(&mut self, frame: u64, out: &mut Vec<Message>) {
        if !self.awaits_length {
            return;
        }
        self.at_end = true;
        let _ = self.drain(frame, out);
        self.at_end = false;
        self.awaits_length = false;
    }

    /// The direction ended: finish what the bytes already here allow.
    pub fn finish(&mut self, frame: u64, out: &mut Vec<Message>) -> Result<(), ChunkError> {
        self.at_end = true;
        while self.step(frame, out)? {}
        Ok(())
    }

    fn consume(&mut self, n: usize) {
        self.buf.advance(n);
        self.offset += n as u64;
    }

    fn step(&mut self, frame: u64, out: &mut Vec<Message>) -> Result<bool, ChunkError> {
        if self.payload_left > 0 {
            return Ok(self.read_payload(frame, out));
        }
        self.read_header(frame, out)
    }

    fn read_payload(&mut self, frame: u64, out: &mut Vec<Message>) -> bool {
        let n = (self.payload_left as usize).min(self.buf.len());
        if n == 0 {
            return false;
        }
        let buf = std::mem::take(&mut self.buf);
        let used = self.take_payload(&buf[..n], frame, out);
        self.buf = buf;
        self.buf.advance(used);
        true
    }

    /// Payload of the chunk being read (at most `payload_left` bytes, from the buffer or from
    /// the caller's bytes) into its partial message; the message goes out when complete.
    /// Returns the bytes used: none when the partial message is gone (then the chunk is over).
    fn take_payload(&mut self, bytes: &[u8], frame: u64, out: &mut Vec<Message>) -> usize {
        let n = bytes.len();
        let csid = self.current;
        let Some(cs) = self.streams.get_mut(&csid) else {
            self.payload_left = 0;
            return 0;
        };
        let Some(p) = cs.partial.as_mut() else {
            self.payload_left = 0;
            return 0;
        };
        let cap = p.body.capacity();
        let want = p.capacity_for(n);
        if want > cap {
            p.body.reserve_exact(want - p.body.len());
            self.partial_bytes += p.body.capacity() - cap;
        }
        p.body.extend_from_slice(bytes);
        let complete = p.body.len() as u32 >= p.length;
        self.payload_left -= n as u32;
        self.offset += n as u64;
        if complete {
            let p = cs.partial.take().expect("partial present");
            self.partial_bytes -= p.body.capacity();
            let msg = Message {
                csid,
                msid: cs.msid,
                type_id: cs.type_id,
                timestamp: cs.timestamp,
                body: Bytes::from(p.body),
                offset: p.offset,
                frame,
                base: cs.base,
                resumed: cs.resumed,
                stale_delta: cs.stale,
            };
            self.payload_left = 0;
            self.complete(msg, out);
        }
        n
    }

    /// The next chunk header: its chunk stream takes in the fields, and the payload that
    /// follows is set up (a message whole in this chunk and already here goes out at once).
    /// `Ok(false)` while more bytes are needed.
    fn read_header(&mut self, frame: u64, out: &mut Vec<Message>) -> Result<bool, ChunkError> {
        let Some(h) = ChunkHeader::parse(&self.buf) else {
            return Ok(false);
        };
        let csid = h.csid;
        if !self.streams.contains_key(&csid) {
            // An MP3 chunk stream's first message after a lock-on may come under a fmt-2 or
            // fmt-3 header: its first bytes say what it is, so they must be here.
            if self.lenient && h.fmt >= 2 && !self.at_end && self.buf.len() < h.len + 5 {
                return Ok(false);
            }
            let mp3 = (self.lenient && h.fmt >= 2 && h.extended.is_none())
                .then(|| media::mp3_message_len(self.buf.get(h.len..h.len + 5)?, 0))
                .flatten();
            self.admit(&h, mp3)?;
        }
        let header_offset = self.offset;
        if csid < 64 {
            self.known_small |= 1 << csid;
        }
        let mut cs = self.streams.entry(csid).or_default();
        let new_message = h.fmt < 3 || cs.partial.is_none();
        // An audio message on a length from before a gap: its first bytes are looked at
        // (see below), so they must be here.
        let peek = new_message && h.fmt >= 2 && cs.peeks();
        let ext_room = if h.fmt == 3 && cs.ext.is_some() { 4 } else { 0 };
        if peek && !self.at_end && self.buf.len() < h.len + ext_room + 5 {
            return Ok(false);
        }
        let mut pos = h.len;
        if h.fmt == 3
            && let Some(expected) = cs.ext
        {
            let absolute = new_message.then_some(cs.timestamp.wrapping_add(cs.delta));
            match fmt3_extended(expected, absolute, &self.buf[pos..], self.at_end) {
                None => return Ok(false),
                Some(true) => {
                    pos += 4;
                    self.stats.fmt3_ext_present += 1;
                }
                Some(false) => self.stats.fmt3_ext_absent += 1,
            }
        }
        if peek && let Some(len) = cs.mp3_length(&self.buf[pos..]) {
            cs.length = len;
            cs.type_id = types::AUDIO;
            self.stats.mp3_lengths_read += 1;
        } else if peek && cs.type_id == types::AUDIO && is_aac_frame(&self.buf[pos..]) {
            // AAC's frames say nothing of their length: the bytes after the header are
            // looked at for where the next header is.
            let span = AAC_SPAN.min(self.chunk_size as usize);
            if !self.at_end && self.buf.len() < pos + span + MAX_HEADER {
                self.awaits_length = true;
                return Ok(false);
            }
            let stale = cs.length;
            let found = aac_length(
                &self.buf[pos..],
                csid,
                span,
                self.chunk_size,
                &self.streams,
                stale,
            );
            cs = self.streams.entry(csid).or_default();
            if let Some(len) = found {
                // Known now (the one before the gap, or another): not looked for again.
                cs.length = len;
                cs.stale_length = false;
                self.stats.aac_lengths_found += (len != stale) as u64;
            }
        }
        self.awaits_length = false;
        cs.apply(&h, new_message);
        self.stats.chunks += 1;
        if self.strict && h.fmt < 3 {
            let (t, len, msid) = (cs.type_id, cs.length, cs.msid);
            let control = (1..=6).contains(&t);
            if !types::known(t)
                || !message::length_fits(t, len)
                || (control && (csid != 2 || msid != 0))
                || msid > 0xffff
                || cs.partial.is_some()
            {
                return Err(ChunkError::Implausible {
                    offset: header_offset,
                });
            }
        }
        if h.fmt < 3
            && let Some(old) = cs.partial.take()
        {
            // A new header while a message was incomplete: the sender abandoned it.
            self.partial_bytes -= old.body.capacity();
            self.stats.replaced_partials += 1;
        }
        if new_message && cs.length > self.limits.message_bytes {
            return Err(ChunkError::MessageTooLarge {
                len: cs.length,
                offset: header_offset,
            });
        }
        let (length, msid, type_id, timestamp, base, resumed, stale_delta) = (
            cs.length,
            cs.msid,
            cs.type_id,
            cs.timestamp,
            cs.base,
            cs.resumed,
            cs.stale,
        );
        if new_message {
            let in_chunk = length.min(self.chunk_size) as usize;
            if length as usize == in_chunk && self.buf.len() >= pos + in_chunk {
                // The whole message is in this chunk and already here: no copy.
                self.consume(pos);
                let body = self.buf.split_to(in_chunk).freeze();
                self.offset += in_chunk as u64;
                let msg = Message {
                    csid,
                    msid,
                    type_id,
                    timestamp,
                    body,
                    offset: header_offset,
                    frame,
                    base,
                    resumed,
                    stale_delta,
                };
                self.complete(msg, out);
                return Ok(true);
            }
            self.begin_partial(csid, length, header_offset);
        } else {
            self.continue_partial(csid);
        }
        self.check_partial_limit(csid, header_offset)?;
        self.current = csid;
        self.consume(pos);
        Ok(true)
    }

    /// A header on a chunk stream not seen before: only fmt 0 may start one, or after a
    /// lock-on fmt 1 (see `lenient`), or then fmt 2 or 3 beginning an MP3 message (`mp3`:
    /// its length, from its first bytes), and there are only so many.
    fn admit(&mut self, h: &ChunkHeader, mp3: Option<u32>) -> Result<(), ChunkError> {
        // Resumed mid-stream, a chunk stream opens on a guessed base: its message stream id
        // is the usual one and its time is aligned with the other streams.
        let guessed = ChunkStream {
            msid: self.default_msid,
            base: TimeBase::Guessed(self.guesses),
            ..Default::default()
        };
        let opened = if let Some(length) = mp3 {
            // ffmpeg sends MP3 frames of one length under fmt-2 and fmt-3 headers only, so
            // after a lock-on that missed the chunk stream's last fmt-0 or fmt-1 header no
            // other would come. The frame's header gives the length (and later ones, from
            // their frames: the length is marked as from before); the delta is not known
            // (the last delta is marked stale).
            let delta = if h.fmt == 2 { h.time() } else { 0 };
            Some(ChunkStream {
                timestamp: self.latest_ts.wrapping_sub(delta),
                length,
                type_id: types::AUDIO,
                stale: true,
                stale_length: true,
                ..guessed
            })
        } else if h.fmt == 1 && self.lenient {
            // The fmt-1 header gives length and type.
            Some(ChunkStream {
                timestamp: self.latest_ts.wrapping_sub(h.time()),
                ..guessed
            })
        } else if h.fmt != 0 {
            return Err(ChunkError::NoPreviousHeader {
                csid: h.csid,
                fmt: h.fmt,
                offset: self.offset,
            });
        } else {
            None
        };
        if let Some(cs) = opened {
            self.streams.insert(h.csid, cs);
            self.guesses = self.guesses.wrapping_add(1);
            if h.csid < 64 {
                self.known_small |= 1 << h.csid;
            }
        }
        if self.streams.len() >= self.limits.chunk_streams {
            return Err(ChunkError::TooManyChunkStreams {
                limit: self.limits.chunk_streams,
                offset: self.offset,
            });
        }
        Ok(())
    }

    /// A message that does not come whole with its header: a partial message takes its
    /// payload as it arrives.
    fn begin_partial(&mut self, csid: u32, length: u32, offset: u64) {
        let chunk_size = self.chunk_size;
        let cs = self
            .streams
            .get_mut(&csid)
            .expect("inserted by read_header");
        // Sized by what this chunk brings, not by the claimed length: a header costs
        // nothing until its bytes arrive.
        // (Counted at once: the limit check sees it.)
        let first = length.min(chunk_size).min(GROW_TO as u32) as usize;
        cs.partial = Some(Partial {
            body: Vec::with_capacity(first),
            length,
            offset,
        });
        self.partial_bytes += cs.partial.as_ref().map_or(0, |p| p.body.capacity());
        self.payload_left = length.min(chunk_size);
    }

    /// A fmt-3 chunk continuing a partial message: its payload is the rest, up to a chunk.
    fn continue_partial(&mut self, csid: u32) {
        let cs = self.streams.get(&csid).expect("known");
        let p = cs.partial.as_ref().expect("continuation has a partial");
        let left = p.length - p.body.len() as u32;
        self.payload_left = left.min(self.chunk_size);
    }

    /// Partial messages may not hold more than the limit once this chunk's payload is in.
    fn check_partial_limit(&self, csid: u32, offset: u64) -> Result<(), ChunkError> {
        let grows = {
            let p = self.streams.get(&csid).and_then(|cs| cs.partial.as_ref());
            p.map_or(0, |p| {
                p.capacity_for(self.payload_left as usize) - p.body.capacity()
            })
        };
        if self.partial_bytes + grows > self.limits.partial_bytes {
            return Err(ChunkError::PartialLimit {
                limit: self.limits.partial_bytes,
                offset,
            });
        }
        Ok(())
    }

    /// Act on protocol control messages, then hand the message on.
    fn complete(&mut self, msg: Message, out: &mut Vec<Message>) {
        self.stats.messages += 1;
        self.latest_ts = msg.timestamp;
        if msg.type_id == types::AUDIO || msg.type_id == types::VIDEO {
            self.default_msid = msg.msid;
        }
        match msg.type_id {
            // After a lock-on only a plausible Set Chunk Size is believed (see lockon).
            types::SET_CHUNK_SIZE
                if msg.body.len() >= 4 && (!self.lenient || message::plausible(&msg)) =>
            {
                let b = &msg.body;
                let size = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & MAX_CHUNK_SIZE;
                if size == 0 {
                    self.stats.invalid_chunk_sizes += 1;
                } else {
                    self.chunk_size = size;
                    self.size_guessed = false;
                    if self.stats.chunk_sizes.len() < MAX_CHUNK_SIZES_KEPT {
                        self.stats.chunk_sizes.push(size);
                    }
                }
            }
            types::ABORT if msg.body.len() >= 4 => {
                let b = &msg.body;
                let csid = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                if let Some(cs) = self.streams.get_mut(&csid)
                    && let Some(p) = cs.partial.take()
                {
                    self.partial_bytes -= p.body.capacity();
                    if self.payload_left > 0 && self.current == csid {
                        self.payload_left = 0;
                    }
                }
                self.stats.aborts += 1;
            }
            _ => {}
        }
        out.push(msg);
    }
}

#[cfg(test)]
mod tests;
