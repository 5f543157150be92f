//! Lock-on: where chunk headers begin in bytes whose start was not captured (a capture begun
//! mid-stream, or the bytes after a gap).
//!
//! A candidate is a position where a chunk header parses plausibly (a fmt-0 or fmt-1 header
//! with a known message type and a sensible length, or any header of a chunk stream already
//! known). For each candidate chunk size (the one in force, sizes the data itself suggests,
//! and the sizes real senders use) a resumed [`ChunkReader`] runs over the bytes that follow;
//! the candidate is trusted once several messages in a row decode plausibly with no
//! contradiction.

use super::chunk::ChunkReader;
use super::header::{ChunkHeader, EXTENDED};
use super::media;
use super::message::{Message, length_fits, plausible, types};
use crate::config::Limits;

/// Consecutive plausible messages that make a lock trustworthy.
const MIN_MESSAGES: usize = 4;
/// Bytes run through the reader per candidate.
const PROBE: usize = 96 << 10;
/// The probe is fed this many bytes at a time, so that a candidate is dropped at its first
/// implausible message instead of after the whole probe.
const PROBE_STEP: usize = 4 << 10;
/// What trying one candidate costs besides the bytes it reads (setting up its reader), in
/// the bytes of [`find_within`]'s budget.
const CANDIDATE_COST: u64 = 1024;
/// What a candidate costs whose next chunk header is not where its first chunk ends (see
/// [`next_header_fits`]): it is not probed.
const REJECT_COST: u64 = 64;
/// What reading one chunk costs in a probe besides its bytes (its header is parsed and its
/// chunk stream looked up): small chunk sizes make a probe's bytes dearer.
const CHUNK_COST: u64 = 128;
/// Payload bytes are copied, not parsed: this many make one unit of work.
const PAYLOAD_SHARE: u64 = 4;
/// What a message a probe decodes costs besides its bytes (it is built, then checked).
const MESSAGE_COST: u64 = 256;
/// The fewest bytes a probe reads at a time: below it the direction's work is taken as spent.
const MIN_PIECE: usize = 256;
/// Probe work one candidate may spend over all its chunk sizes: sizes are tried best-guess
/// first (the one in force, the ones its own bytes suggest), and bytes made so that every
/// size reads far before failing cannot make a candidate cost more than this.
pub const CANDIDATE_BUDGET: u64 = 3 * PROBE as u64;
/// Chunk sizes real senders use (RTMP-NOTES quirk 4, plus common MTU-sized ones).
const COMMON_SIZES: [u32; 16] = [
    128, 4096, 4000, 60000, 1024, 2048, 8192, 16384, 32768, 65536, 256, 512, 1400, 1460, 5000,
    131072,
];
/// How usual a chunk size is: its place in [`COMMON_SIZES`] (others after them all).
fn usual(cs: u32) -> usize {
    COMMON_SIZES
        .iter()
        .position(|&s| s == cs)
        .unwrap_or(COMMON_SIZES.len())
}

/// The longest first chunk a candidate whose bytes end inside it is waited for with (a
/// frame longer than the segments that brought it so far): a waited candidate is probed
/// again at each search.
const MAX_WAITED_CHUNK: usize = 16 << 10;

/// Chunk sizes inferred from one candidate's continuation headers.
const MAX_INFERRED: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lock {
    /// Position in the searched bytes where the first trusted header starts.
    pub pos: usize,
    pub chunk_size: u32,
    /// Messages decoded in the probe.
    pub messages: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Search {
    Found(Lock),
    /// The candidate at this position parses so far but needs more bytes to be trusted.
    NeedMore(usize),
    /// No candidate before the end (minus a possible header tail).
    NotFound,
}

/// A header at `p` that could start a lock: the basic header and message header parse with
/// plausible values (the extended timestamp is not needed to judge it). Returns the chunk
/// stream id, the length of the basic and message header, and the message length if known.
#[inline(always)]
fn plausible_start(
    buf: &[u8],
    p: usize,
    known: Option<&ChunkReader>,
    limits: &Limits,
) -> Option<(u32, usize, Option<u32>)> {
    let h = ChunkHeader::parse_fixed(buf.get(p..)?)?;
    let (csid, hlen) = (h.csid, h.fixed_len());
    let known_csid = known.is_some_and(|k| k.knows(csid));
    if known_csid && h.fmt >= 2 {
        return Some((csid, hlen, None));
    }
    if known.is_none() && h.fmt >= 2 && csid >= 2 && h.field() != EXTENDED {
        // An MP3 message whose chunk stream's last fmt-0/1 header was not captured (ffmpeg
        // sends MP3 under fmt-2/3 headers only): a resumed reader opens its chunk stream on
        // the length the frame's header gives (see `ChunkReader::admit`). The FLV audio
        // byte's format and an MPEG frame header's sync and fields are about 20 bits: bytes
        // match them by chance at about one position in a million, and then pay a probe.
        let len = media::mp3_message_len(buf.get(p + hlen..p + hlen + 5)?, 0)?;
        return (len <= limits.message_bytes).then_some((csid, hlen, Some(len)));
    }
    if h.fmt > 1 || csid < 2 {
        return None;
    }
    let (len, type_id) = h.length_and_type()?;
    if !types::known(type_id) || !length_fits(type_id, len) || len > limits.message_bytes {
        return None;
    }
    if known_csid {
        return Some((csid, hlen, Some(len)));
    }
    if let Some(msid) = h.msid() {
        if msid > 0xffff {
            return None;
        }
        // Protocol control lives on chunk stream 2 and message stream 0.
        if (1..=6).contains(&type_id) && (csid != 2 || msid != 0) {
            return None;
        }
    }
    Some((csid, hlen, Some(len)))
}

/// Whether a candidate at `p` (chunk stream `csid`, header of `hlen` bytes before any
/// extended timestamp, message length `len` when its header gives one) can be followed by the
/// next chunk header where chunk size `cs` puts it: every chunk is followed by one, so a
/// candidate with none there fails its probe at its first chunk's end, and is not probed.
/// True when that position is not in `buf` yet, or the length is not known.
#[allow(clippy::too_many_arguments)]
fn next_header_fits(
    buf: &[u8],
    p: usize,
    csid: u32,
    hlen: usize,
    len: Option<u32>,
    cs: u32,
    known: Option<&ChunkReader>,
    limits: &Limits,
) -> bool {
    let Some(h) = ChunkHeader::parse_fixed(&buf[p..]) else {
        return true;
    };
    // The length the chunk stream gives, its body starting `e` bytes after the header.
    let stream = |e: usize| {
        let first = buf.get(p + hlen + e..).unwrap_or_default();
        known.and_then(|k| k.next_length(csid, first))
    };
    let at_0 = if len.is_none() { stream(0) } else { None };
    if len.is_none() && at_0.is_none() {
        return true;
    }
    // The extended timestamp: announced by a fmt-0/1/2 header's field; on fmt 3 the reader
    // guesses whether it is repeated, so either place will do.
    let exts: &[usize] = match h.fmt {
        0..=2 if h.field() == EXTENDED => &[4],
        0..=2 => &[0],
        _ if at_0.is_some_and(|(_, ext)| ext) => &[0, 4],
        _ => &[0],
    };
    exts.iter().any(|&e| {
        let from_stream = if e == 0 { at_0 } else { stream(e) };
        let Some(len) = len.or(from_stream.map(|(l, _)| l)) else {
            return true;
        };
        let next = p + hlen + e + len.min(cs.max(1)) as usize;
        // (A continuation of the candidate's own message, on a chunk stream the reader from
        // before a gap may not know: its fmt-0 header may be what the gap took.)
        let own = len > cs
            && ChunkHeader::parse_fixed(buf.get(next..).unwrap_or_default())
                .is_some_and(|n| n.fmt == 3 && n.csid == csid);
        next >= buf.len() || own || plausible_start(buf, next, known, limits).is_some()
    })
}

/// Whether a message read after a lock-on is believable: it looks like what senders send
/// (see [`plausible`]) and its media codec is the one already seen on its chunk stream.
/// Remembers the codec of believable media in the reader's slot for that chunk stream.
pub fn believable(reader: &mut ChunkReader, m: &Message) -> bool {
    if !plausible(m) {
        return false;
    }
    let key = match (m.type_id, m.body.first()) {
        (types::AUDIO, Some(&b)) => (types::AUDIO, b >> 4),
        (types::VIDEO, Some(&b)) if b & 0x80 != 0 => (types::VIDEO, 0x80),
        (types::VIDEO, Some(&b)) => (types::VIDEO, b & 0x0f),
        _ => return true,
    };
    let Some(codec) = reader.codec_slot(m.csid) else {
        return true;
    };
    match *codec {
        Some(k) if k.0 == key.0 && k != key => false,
        _ => {
            *codec = Some(key);
            true
        }
    }
}

/// Chunk sizes to try for a candidate: the one in force, then sizes at which a continuation
/// header of the same chunk stream (fmt 3) follows the first chunk's payload, then the usual.
fn sizes_for(
    buf: &[u8],
    p: usize,
    csid: u32,
    hlen: usize,
    len: Option<u32>,
    known: Option<&ChunkReader>,
) -> Vec<u32> {
    let mut sizes = Vec::with_capacity(COMMON_SIZES.len() + MAX_INFERRED + 1);
    if let Some(k) = known {
        sizes.push(k.chunk_size());
    }
    if let (Some(len), true) = (len, csid < 64) {
        let marker = 0xc0 | csid as u8;
        let start = p + hlen;
        let end = buf.len().min(start + len as usize);
        if start < end {
            for k in memchr::memchr_iter(marker, &buf[start..end]).take(MAX_INFERRED) {
                if k > 0 && !sizes.contains(&(k as u32)) {
                    sizes.push(k as u32);
                }
            }
        }
    }
    for s in COMMON_SIZES {
        if !sizes.contains(&s) {
            sizes.push(s);
        }
    }
    sizes
}

/// Search `buf` from position `from` for a trustworthy lock. `known` carries what was known
/// of the chunk streams before the bytes were lost (none for a mid-stream start); `at_end`
/// says no more bytes will come, so a candidate may be trusted on fewer messages.
pub fn find(
    buf: &[u8],
    from: usize,
    known: Option<&ChunkReader>,
    limits: &Limits,
    at_end: bool,
) -> Search {
    let mut unlimited = u64::MAX;
    find_within(
        buf,
        from,
        known,
        limits,
        at_end,
        false,
        &mut unlimited,
        &mut Progress::default(),
    )
}

/// [`find`], spending at most `budget` (bytes run through probe readers, chunks and messages
/// read, and a fixed cost per candidate tried), and at most [`CANDIDATE_BUDGET`] on one
/// candidate; what it spends is taken off. When the budget runs out, even inside a probe, the
/// search stops and says it needs more ([`Search::NeedMore`] at that candidate), keeping in
/// `progress` how far it got with it. Bytes made of headers that parse but lead nowhere
/// (hostile, or a stream that is not what it seems) would otherwise cost whole probes at
/// every chunk size per candidate: hundreds of times the bytes themselves.
#[allow(clippy::too_many_arguments)]
pub fn find_within(
    buf: &[u8],
    from: usize,
    known: Option<&ChunkReader>,
    limits: &Limits,
    at_end: bool,
    resumed_at_start: bool,
    budget: &mut u64,
    progress: &mut Progress,
) -> Search {
    // After a gap the chunk size in force is kept (a lost Set Chunk Size is rare; a size that
    // merely agrees on short messages would decode garbage), unless it was a lock-on's
    // guess that then met bytes it could not read (tried first all the same).
    let only_size = known.filter(|k| !k.size_doubted()).map(|k| k.chunk_size());
    let ctx = Context {
        known,
        limits,
        at_end,
        only_size,
        resumed_at_start: resumed_at_start && known.is_some(),
        only_at: false,
    };
    find_with(buf, from, &ctx, budget, progress)
}

/// Whether the header at `p` locks (with the chunk size in force after a gap): [`find`] for
/// that one candidate, spending at most a quarter of what one candidate may. `Found` only at
/// `p`; `NeedMore` only while the bytes end inside its probe.
fn locks_at(buf: &[u8], p: usize, known: &ChunkReader, limits: &Limits, at_end: bool) -> Search {
    let ctx = Context {
        known: Some(known),
        limits,
        at_end,
        only_size: Some(known.chunk_size()),
        resumed_at_start: false,
        only_at: true,
    };
    let mut budget = CANDIDATE_BUDGET / 4 + CANDIDATE_COST;
    match find_with(buf, p, &ctx, &mut budget, &mut Progress::default()) {
        // Undecided for want of bytes, not of work: the bytes here are read to their end.
        Search::NeedMore(_) if budget > 0 && p + PROBE >= buf.len() => Search::NeedMore(p),
        Search::Found(l) => Search::Found(l),
        _ => Search::NotFound,
    }
}

/// What a search knows besides the bytes: the chunk streams from before a gap, whether the
/// input has ended, the one chunk size to try, and whether the bytes begin where the capture
/// resumed after a gap (senders write a message at a time, so a lost segment often ends
/// where a message begins).
struct Context<'a> {
    known: Option<&'a ChunkReader>,
    limits: &'a Limits,
    at_end: bool,
    only_size: Option<u32>,
    resumed_at_start: bool,
    /// Only the candidate at the search's start is tried.
    only_at: bool,
}

fn find_with(
    buf: &[u8],
    from: usize,
    ctx: &Context<'_>,
    budget: &mut u64,
    progress: &mut Progress,
) -> Search {
    let Context {
        known,
        limits,
        at_end,
        only_size,
        ..
    } = *ctx;
    let mut msgs = Vec::new();
    // The earliest candidate that parses so far but has not shown enough (with evidence: a
    // believable message and a second header, or a header whose first chunk the bytes end
    // inside: a frame longer than the segments that brought it so far), waited on rather
    // than passed over. (It is given up when the hunt's window is full.)
    let mut waiting: Option<usize> = None;
    let last = if ctx.only_at {
        buf.len().min(from + 1)
    } else {
        buf.len()
    };
    for p in from..last {
        let Some((csid, hlen, len)) = plausible_start(buf, p, known, limits) else {
            continue;
        };
        if let Some(cs) = only_size
            && !next_header_fits(buf, p, csid, hlen, len, cs, known, limits)
        {
            // Looked at, not probed: a little work all the same, so that bytes made of
            // such candidates cannot keep the search going for nothing.
            if *budget == 0 {
                return Search::NeedMore(waiting.unwrap_or(p));
            }
            *budget = budget.saturating_sub(REJECT_COST);
            continue;
        }
        if *budget == 0 {
            // (A candidate waited on comes before this one.)
            return Search::NeedMore(waiting.unwrap_or(p));
        }
        *budget = budget.saturating_sub(CANDIDATE_COST);
        let window = &buf[p..buf.len().min(p + PROBE)];
        let window_is_all = p + PROBE >= buf.len();
        let to_end = at_end && window_is_all;
        let mut best: Option<Lock> = None;
        // The best lock read a whole probe window with no error (see below).
        let mut clean = false;
        let mut sizes = match only_size {
            Some(cs) => vec![cs],
            None => sizes_for(buf, p, csid, hlen, len, known),
        };
        if p == from {
            // Where this candidate stood when the work ran out last time.
            sizes.retain(|cs| !progress.tried.contains(cs));
            // (Positions move when the buffer is trimmed: the candidate is the one at `p`.)
            best = progress.best.take().map(|l| Lock { pos: p, ..l });
        } else {
            *progress = Progress::default();
        }
        let mut allowance = CANDIDATE_BUDGET;
        // Chunk sizes longer than the window read it alike (no chunk boundary falls in it):
        // the first of them stands for the rest.
        if let Some(k) = sizes.iter().position(|&cs| cs as usize >= window.len()) {
            let first = sizes[k];
            sizes.retain(|&cs| (cs as usize) < window.len() || cs == first);
        }
        for (k, &cs) in sizes.iter().enumerate() {
            if allowance == 0 {
                break;
            }
            let spent_before = *budget;
            let res = probe(
                window, cs, known, limits, to_end, &mut msgs, budget, allowance,
            );
            allowance = allowance.saturating_sub(spent_before - *budget);
            let Probe {
                good,
                ok,
                chunks,
                starved,
            } = match res {
                Some(r) => r,
                None => {
                    // An implausible message: a wrong lock, whatever follows.
                    progress.tried(cs);
                    continue;
                }
            };
            if starved {
                if let (Some(l), None, true) = (&best, waiting, clean) {
                    // What was read already makes a lock no other size can beat: take it.
                    return Search::Found(l.clone());
                }
                // The direction's work ran out in the middle of this candidate: it is tried
                // again, from this size, when the direction has paid for more.
                if waiting.is_some() {
                    *progress = Progress::default();
                } else {
                    progress.best = best;
                }
                return Search::NeedMore(waiting.unwrap_or(p));
            }
            if !ok && good < MIN_MESSAGES {
                continue;
            }
            // At the end of the input fewer messages may remain; they must still parse to the
            // last byte with no error.
            let enough = good >= MIN_MESSAGES || (to_end && ok && good >= 2);
            if enough {
                // Sizes that read as many messages: the more usual one (a size the data
                // suggests was tried first, but a continuation header where it said may
                // be a byte that happens to match, and a message read across it can end
                // where the true size ends it too).
                if best.as_ref().is_none_or(|b| {
                    good > b.messages || (good == b.messages && usual(cs) < usual(b.chunk_size))
                }) {
                    best = Some(Lock {
                        pos: p,
                        chunk_size: cs,
                        messages: good,
                    });
                    clean = ok && !window_is_all && good >= 2 * MIN_MESSAGES;
                }
                if clean
                    && best.as_ref().is_some_and(|b| b.chunk_size == cs)
                    && sizes[k + 1..].iter().all(|&s| usual(s) >= usual(cs))
                {
                    // A whole probe window read with no error, every message believable: no
                    // other chunk size can do better than agree, nor is more usual, so the
                    // rest are not tried.
                    break;
                }
            } else if ok
                && window_is_all
                && waiting.is_none()
                && ((good >= 1 && (chunks >= 2 || known.is_some()))
                    || (p == 0 && ctx.resumed_at_start && chunks >= 1)
                    || (good == 0
                        && chunks == 1
                        && len.is_some_and(|l| {
                            // (4: room for an extended timestamp.)
                            let chunk = l.min(cs) as usize;
                            chunk <= MAX_WAITED_CHUNK && window.len() < hlen + 4 + chunk
                        })))
            {
                waiting = Some(p);
            }
            if !ok {
                progress.tried(cs);
            }
        }
        if let Some(l) = best {
            // Even past a candidate waited on: this one lies inside the message that one
            // has begun, so at most one is right, and this one read more messages (the one
            // waited on read a message and the start of another: a lock taken on that alone
            // left a direction unread for as long as a long message could be).
            return Search::Found(l);
        }
    }
    match waiting {
        Some(w) if !at_end => Search::NeedMore(w),
        _ => Search::NotFound,
    }
}

/// How far the search got with its first candidate when its work ran out: the chunk sizes
/// that proved wrong there, and the best lock the others gave. The next search goes on from
/// there instead of reading the same sizes again (a candidate costlier than the work a
/// direction saves up between two searches would otherwise never be finished).
#[derive(Clone, Debug, Default)]
pub struct Progress {
    tried: Vec<u32>,
    best: Option<Lock>,
}

impl Progress {
    fn tried(&mut self, cs: u32) {
        if self.tried.len() < 64 {
            self.tried.push(cs);
        }
    }
}

/// What reading a candidate's bytes with one chunk size showed.
struct Probe {
    /// Messages read, every one believable.
    good: usize,
    /// The reader met no error.
    ok: bool,
    /// Chunks read.
    chunks: usize,
    /// The direction's work, or the candidate's, ran out before the window was read.
    starved: bool,
}

/// Read `window`, the bytes from a candidate on, with chunk size `cs`, paying from `budget`
/// for the bytes read, and spending at most `allowance` of it; `to_end` when the window is
/// the rest of the input and the input has ended. `None` when a message read is not
/// believable: a wrong lock.
#[allow(clippy::too_many_arguments)]
fn probe(
    window: &[u8],
    cs: u32,
    known: Option<&ChunkReader>,
    limits: &Limits,
    to_end: bool,
    msgs: &mut Vec<Message>,
    budget: &mut u64,
    allowance: u64,
) -> Option<Probe> {
    let mut r = match known {
        Some(k) => k.resume_at(0, cs),
        None => ChunkReader::resumed(0, cs, limits.clone()),
    }
    .strict();
    msgs.clear();
    let chunks_before = r.stats.chunks;
    let mut ok = true;
    let mut good = 0;
    let mut implausible = false;
    let mut spent = 0u64;
    let mut starved = false;
    // What a byte costs at this chunk size (its share of a chunk header), so that a piece
    // never spends much more than is left.
    let per_byte = 1 + CHUNK_COST / u64::from(cs.max(1));
    let mut rest = window;
    // Pieces grow from small, so that a wrong lock, which mostly fails at its first chunks,
    // is paid for by what it read.
    let mut step = MIN_PIECE;
    while !rest.is_empty() {
        let left = (*budget).min(allowance.saturating_sub(spent));
        let n = (left / per_byte).min(step as u64) as usize;
        step = (step * 2).min(PROBE_STEP);
        if n < MIN_PIECE.min(rest.len()) {
            // A candidate that read well as far as it was allowed is waited on only when the
            // direction itself ran dry; one that used up its own allowance is judged on what
            // it read.
            starved = *budget / per_byte < MIN_PIECE as u64;
            break;
        }
        let (piece, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        let chunks = r.stats.chunks;
        ok = r.push(piece, 0, msgs).is_ok();
        let made = msgs.len() - good;
        let cost = piece.len() as u64 / PAYLOAD_SHARE
            + (r.stats.chunks - chunks) * CHUNK_COST
            + made as u64 * MESSAGE_COST;
        *budget = budget.saturating_sub(cost);
        spent += cost;
        implausible = !msgs[good..].iter().all(|m| believable(&mut r, m));
        good = msgs.len();
        if !ok || implausible {
            break;
        }
    }
    if ok && !implausible && to_end && !starved {
        ok = r.finish(0, msgs).is_ok();
        implausible = !msgs[good..].iter().all(|m| believable(&mut r, m));
        good = msgs.len();
    }
    if implausible {
        return None;
    }
    Some(Probe {
        good,
        ok,
        chunks: (r.stats.chunks - chunks_before) as usize,
        starved,
    })
}

/// The most bytes a lost chunk header takes (3-byte basic header, fmt 0, extended time).
pub const MAX_LOST_HEADER: u64 = 18;

/// What the bytes after a gap that took only a chunk header hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recovered {
    /// The body of a message on `csid` ends at `end`, where a header that locks begins.
    Body {
        csid: u32,
        end: usize,
    },
    NeedMore,
    No,
}

fn continuation(csid: u32) -> Vec<u8> {
    match csid {
        0..64 => vec![0xc0 | csid as u8],
        64..320 => vec![0xc0, (csid - 64) as u8],
        _ => vec![0xc1, ((csid - 64) & 0xff) as u8, ((csid - 64) >> 8) as u8],
    }
}

/// The payload of the chunks of one message on `csid` in `buf` (continuation headers taken
/// out), `buf` holding exactly its chunks.
pub fn body_of(buf: &[u8], csid: u32, chunk_size: u32) -> Vec<u8> {
    let (cs, b) = (chunk_size as usize, continuation(csid).len());
    let mut body = Vec::with_capacity(buf.len());
    let mut pos = 0;
    while pos < buf.len() {
        let take = cs.min(buf.len() - pos);
        body.extend_from_slice(&buf[pos..pos + take]);
        pos += take + b;
    }
    body
}

/// Where a message on `csid` whose header was lost, starting at 0 in `buf`, ends, when the
/// next message is on the same chunk stream with a fmt-2 or fmt-3 header (of the same length,
/// so the lost one's length is where that header stands): the first position before `before`
/// where such a header, its body beginning like this one (the same audio format, or video
/// codec), locks with that length. A few positions are tried.
#[allow(clippy::too_many_arguments)]
fn same_stream_end(
    buf: &[u8],
    before: usize,
    csid: u32,
    type_id: u8,
    cs: usize,
    known: &ChunkReader,
    limits: &Limits,
    at_end: bool,
) -> Search {
    /// Positions tried at most (each costs a quarter of a candidate's probe, at most).
    const MAX_TRIES: usize = 4;
    let (Some(&first), true) = (buf.first(), csid < 64) else {
        return Search::NotFound;
    };
    let cont = continuation(csid);
    let b = cont.len();
    let alike = |x: u8| match type_id {
        types::AUDIO => x == first,
        _ if first & 0x80 != 0 => x & 0x80 != 0,
        _ => x & 0x0f == first & 0x0f,
    };
    let mut tries = 0;
    let mut p = 1;
    // Positions of this message's continuation headers are passed over.
    let mut next_cont = cs;
    let mut conts = 0;
    while p < before.min(buf.len()) {
        if p == next_cont {
            if buf.get(p..p + b) != Some(&cont[..]) {
                return Search::NotFound;
            }
            p += b;
            next_cont = p + cs;
            conts += 1;
            continue;
        }
        let basic = buf[p];
        let hlen = match basic {
            _ if basic == 0xc0 | csid as u8 => b,
            _ if basic == 0x80 | csid as u8 => b + 3,
            _ => {
                p += 1;
                continue;
            }
        };
        if buf.get(p + hlen).is_some_and(|&x| alike(x)) {
            if tries == MAX_TRIES {
                return Search::NotFound;
            }
            tries += 1;
            let len = p - conts * b;
            let mut with_len = known.clone();
            with_len.assume_length(csid, len as u32);
            match locks_at(buf, p, &with_len, limits, at_end) {
                Search::Found(l) => return Search::Found(l),
                Search::NeedMore(_) => return Search::NeedMore(p),
                Search::NotFound => {}
            }
        }
        p += 1;
    }
    Search::NotFound
}

/// After a gap of `lost` bytes that began between chunks (ffmpeg often sends a chunk header
/// as a TCP segment of its own): the bytes in `buf` may start with the body of a message
/// whose header was lost. For each media chunk stream of `known` whose header form fits
/// `lost` bytes, the body is read (its length known from the previous header for fmt 2 and
/// 3, else ending where a header that locks begins, with the chunk size's continuation
/// headers in between) and taken when it is believable on that chunk stream alone.
pub fn recover_body(
    buf: &[u8],
    known: &ChunkReader,
    lost: u32,
    limits: &Limits,
    at_end: bool,
) -> Recovered {
    let cs = known.chunk_size() as usize;
    let mut fits = Vec::new();
    let mut need_more = false;
    for (csid, length, type_id, ext) in known.media_streams() {
        let cont = continuation(csid);
        let b = cont.len();
        let Some(rest) = (lost as usize).checked_sub(b) else {
            continue;
        };
        let rest = if ext && rest >= 4 { rest - 4 } else { rest };
        let known_len = match rest {
            0 | 3 => Some(length as usize),
            7 | 11 => None,
            _ => continue,
        };
        // MP3: the frame's header says the body's length, where the lost header's may have
        // changed it.
        let known_len = match (type_id, buf.get(..5)) {
            (types::AUDIO, Some(b)) => media::mp3_message_len(b, known_len.unwrap_or(0) as u32)
                .map(|l| l as usize)
                .or(known_len),
            _ => known_len,
        };
        if ext {
            continue; // continuation chunks may repeat the extended time: not handled
        }
        // Where the message's chunks end, given the position of the next header.
        let walk = |end: usize| -> Option<bool> {
            // Some(true): chunks of one message up to `end`.
            let mut pos = 0;
            while end - pos > cs {
                if buf.get(pos + cs..pos + cs + b)? != cont.as_slice() {
                    return Some(false);
                }
                pos += cs + b;
                if pos >= end {
                    return Some(false);
                }
            }
            Some(true)
        };
        let end = match known_len {
            Some(len) => {
                let chunks = len.div_ceil(cs).max(1);
                let end = len + (chunks - 1) * b;
                if end > buf.len() {
                    need_more = true;
                    continue;
                }
                if walk(end) != Some(true) {
                    continue;
                }
                end
            }
            None => {
                // Some(true): `p` is a continuation header of this message; Some(false):
                // its chunks can end at `p`; None: they cannot reach it.
                let at = |p: usize| -> Option<bool> {
                    let mut pos = 0;
                    while pos <= p {
                        if p - pos <= cs {
                            return Some(p - pos == cs && buf.get(p..p + b) == Some(&cont));
                        }
                        if buf.get(pos + cs..pos + cs + b) != Some(&cont) {
                            return None;
                        }
                        pos += cs + b;
                    }
                    None
                };
                let mut from = 1;
                let found = loop {
                    match find(buf, from, Some(known), limits, at_end) {
                        Search::Found(l) => match at(l.pos) {
                            Some(false) => break l.pos,
                            Some(true) => from = l.pos + b,
                            None => break 0,
                        },
                        Search::NeedMore(p) if at(p) == Some(true) => from = p + b,
                        Search::NeedMore(_) => {
                            need_more = true;
                            break 0;
                        }
                        Search::NotFound => break 0,
                    }
                };
                // The next message may be on this chunk stream with a fmt-2 or fmt-3 header:
                // then it has this one's length, which the search did not know (ffmpeg sends
                // one AAC frame's header as a segment of its own, and the next frame, fmt 3,
                // in the segment with this body).
                let before = if found > 0 { found } else { buf.len() };
                match same_stream_end(buf, before, csid, type_id, cs, known, limits, at_end) {
                    Search::Found(l) => l.pos,
                    Search::NeedMore(_) => {
                        need_more = true;
                        0
                    }
                    Search::NotFound => found,
                }
            }
        };
        if end == 0 {
            continue;
        }
        // The next header must lock right there (for a known length, check it).
        if known_len.is_some() {
            match find(buf, end, Some(known), limits, at_end) {
                Search::Found(l) if l.pos == end => {}
                Search::NeedMore(p) if p == end => {
                    need_more = true;
                    continue;
                }
                _ => continue,
            }
        }
        let body = body_of(&buf[..end], csid, cs as u32);
        let m = Message {
            csid,
            msid: 1,
            type_id,
            timestamp: 0,
            body: body.into(),
            offset: 0,
            frame: 0,
            base: Default::default(),
            resumed: 0,
            stale_delta: false,
        };
        // It must look like what senders send, in the codec already seen on the chunk
        // stream when one was (only one chunk stream may fit).
        let mut probe = known.clone();
        if believable(&mut probe, &m) {
            fits.push((csid, end));
        }
    }
    match fits.as_slice() {
        [(csid, end)] => Recovered::Body {
            csid: *csid,
            end: *end,
        },
        [] if need_more => Recovered::NeedMore,
        _ => Recovered::No,
    }
}

#[cfg(test)]
mod tests {

    /// Audio on csid 4 and video on csid 6 as ffmpeg sends them; the header of message
    /// `lost` is cut out. Returns the reader after the messages before it, the bytes after
    /// the header, the header's length and the lost message's body.
    fn header_cut(lost: usize) -> (ChunkReader, Vec<u8>, u32, Vec<u8>) {
        let mut w = ChunkWriter::new(128);
        let mut before = Vec::new();
        w.set_chunk_size(4096, &mut before);
        let mut msgs = Vec::new();
        for i in 0..40u32 {
            let (csid, t, mut body) = if i % 2 == 0 {
                (4, 8, vec![0xaf, 1])
            } else {
                (6, 9, vec![0x27, 1, 0, 0, 0])
            };
            let n = 100
                + 37 * (i as usize % 5)
                + if csid == 6 {
                    4100 * (i as usize % 3)
                } else {
                    0
                };
            if csid == 6 {
                body.extend_from_slice(&((n - 9) as u32).to_be_bytes());
            }
            body.resize(n, 0x41 + i as u8);
            let mut b = Vec::new();
            w.write(csid, 1, t, 23 * i, &body, &mut b);
            msgs.push((b, body));
        }
        let mut r = ChunkReader::new(0, 128, Limits::default());
        let mut out = Vec::new();
        r.push(&before, 0, &mut out).unwrap();
        for (b, _) in &msgs[..lost] {
            r.push(b, 0, &mut out).unwrap();
        }
        let (b, body) = &msgs[lost];
        let hlen = (b.len() - body.len() - (body.len().div_ceil(4096) - 1)) as u32;
        let mut after = b[hlen as usize..].to_vec();
        for (b, _) in &msgs[lost + 1..] {
            after.extend_from_slice(b);
        }
        (r, after, hlen, body.clone())
    }

    #[test]
    fn a_body_after_a_lost_header_is_read() {
        for lost in [4, 5, 6, 7, 8] {
            let (r, after, hlen, body) = header_cut(lost);
            assert!(r.at_chunk_boundary());
            match recover_body(&after, &r, hlen, &Limits::default(), true) {
                Recovered::Body { csid, end } => {
                    assert_eq!(csid, if lost % 2 == 0 { 4 } else { 6 });
                    assert_eq!(body_of(&after[..end], csid, 4096), body, "lost {lost}");
                }
                other => panic!("lost {lost} (header {hlen}): {other:?}"),
            }
        }
    }

    use super::*;
    use crate::rtmp::chunk::ChunkWriter;

    /// [`find_within`] from the first byte after a gap, on the chunk streams `known` from
    /// before it, with no limit on its work; `resumed`: the bytes begin where the capture
    /// resumed.
    fn find_after_gap(buf: &[u8], known: &ChunkReader, at_end: bool, resumed: bool) -> Search {
        let mut unlimited = u64::MAX;
        find_within(
            buf,
            0,
            Some(known),
            &Limits::default(),
            at_end,
            resumed,
            &mut unlimited,
            &mut Progress::default(),
        )
    }

    fn stream(chunk_size: u32, n: usize) -> Vec<u8> {
        let mut w = ChunkWriter::new(128);
        let mut b = Vec::new();
        w.set_chunk_size(chunk_size, &mut b);
        for i in 0..n {
            let n = 300 + i * 97 % 5000;
            let mut v = vec![if i % 5 == 0 { 0x17 } else { 0x27 }, 1, 0, 0, 0];
            v.extend_from_slice(&(n as u32).to_be_bytes());
            v.extend((0..n).map(|k| (k * 7 + i) as u8));
            w.write(6, 1, types::VIDEO, 40 * i as u32, &v, &mut b);
            let mut a = vec![0xaf, 1];
            a.extend((0..(200 + i % 30)).map(|k| k as u8));
            w.write(4, 1, types::AUDIO, 40 * i as u32 + 3, &a, &mut b);
        }
        b
    }

    #[test]
    fn locks_mid_stream_and_infers_the_chunk_size() {
        for cs in [128u32, 1000, 4096, 60000] {
            let b = stream(cs, 40);
            // Start at an arbitrary byte well inside.
            let cut = b.len() / 3;
            match find(&b[cut..], 0, None, &Limits::default(), false) {
                Search::Found(l) => {
                    assert!(l.messages >= MIN_MESSAGES);
                    // The lock's reader decodes everything after it.
                    let mut r = ChunkReader::resumed(0, l.chunk_size, Limits::default());
                    let mut out = Vec::new();
                    r.push(&b[cut + l.pos..], 0, &mut out).unwrap();
                    assert!(out.len() > 20, "cs {cs}: {} messages", out.len());
                    assert!(out.iter().all(plausible));
                }
                other => panic!("cs {cs}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_guessed_chunk_size_that_met_bytes_it_could_not_read_is_searched_again() {
        // A lock-on guessed 5000 where the sender's chunks are 4096 (a fresh real mid-stream
        // capture: a false header in a picture read six messages at 5000); the reader then
        // failed. Kept after a gap or an error, the wrong size was never left again.
        let b = stream(4096, 40);
        let cut = b.len() / 3;
        let Search::Found(l) = find(&b[cut..], 0, None, &Limits::default(), false) else {
            panic!("no lock");
        };
        let mut r = ChunkReader::resumed(0, l.chunk_size, Limits::default());
        r.push(&b[cut + l.pos..cut + l.pos + 20_000], 0, &mut Vec::new())
            .unwrap();
        let wrong = r.resume_at(0, 5000);
        let search = |known: &ChunkReader| {
            find(
                &b[b.len() * 2 / 3..],
                0,
                Some(known),
                &Limits::default(),
                false,
            )
        };
        assert!(!matches!(
            search(&wrong),
            Search::Found(Lock {
                chunk_size: 4096,
                ..
            })
        ));
        let mut doubted = wrong.clone();
        doubted.doubt_size();
        assert!(doubted.size_doubted());
        assert!(matches!(
            search(&doubted),
            Search::Found(Lock {
                chunk_size: 4096,
                ..
            })
        ));
        // A size the sender said is not doubted; nor is one after a new lock.
        let mut said = ChunkReader::new(0, 4096, Limits::default());
        said.doubt_size();
        assert!(!said.size_doubted());
        assert!(!doubted.resume_at(0, 4096).size_doubted());
    }

    #[test]
    fn commands_and_script_data_of_megabytes_are_no_candidates() {
        // The false header above: fmt 1 on csid 43, 3,162,441 bytes of AMF3 command.
        let h = [0x6b, 0x8c, 0xe0, 0x34, 0x30, 0x41, 0x49, 0x11];
        assert!(plausible_start(&h, 0, None, &Limits::default()).is_none());
        assert!(length_fits(types::COMMAND_AMF0, 400));
        assert!(length_fits(types::DATA_AMF0, 300 << 10));
        assert!(!length_fits(types::COMMAND_AMF3, 3_162_441));
        assert!(!length_fits(types::DATA_AMF0, 2 << 20));
    }

    #[test]
    fn random_bytes_do_not_lock() {
        let mut x: u32 = 12345;
        let junk: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        assert!(!matches!(
            find(&junk, 0, None, &Limits::default(), true),
            Search::Found(_)
        ));
    }

    #[test]
    fn hunting_stops_when_its_budget_is_spent() {
        // Headers that parse (fmt 0, video, plausible length) but whose bodies are not
        // video: every position offers a candidate, none leads anywhere.
        let mut junk = Vec::new();
        for i in 0..4000u32 {
            junk.extend_from_slice(&[0x06, 0, 0, 0, 0, 0x01, 0x00, 0x09, 1, 0, 0, 0]);
            junk.extend((0..256).map(|k| (k as u32 * 31 + i) as u8 | 0x80));
        }
        let limits = Limits::default();
        let mut budget = 1 << 20;
        let r = find_within(
            &junk,
            0,
            None,
            &limits,
            false,
            false,
            &mut budget,
            &mut Progress::default(),
        );
        assert!(matches!(r, Search::NeedMore(_)), "{r:?}");
        assert!(
            budget < 1 << 12,
            "spent to within the last piece: {budget} left"
        );
        // Without a budget the same search looks at every candidate, and finds nothing.
        let mut unlimited = u64::MAX;
        let r = find_within(
            &junk,
            0,
            None,
            &limits,
            true,
            false,
            &mut unlimited,
            &mut Progress::default(),
        );
        assert!(!matches!(r, Search::Found(_)), "{r:?}");
        assert!(u64::MAX - unlimited > 1 << 20, "the budget was spent");
    }

    /// ffmpeg's Sorenson and MP3 publish at 4096-byte chunks: MP3 of 209 or 210 bytes
    /// (padding), video of thousands. Returns the bytes of each message as written.
    fn sorenson_mp3(n: usize) -> Vec<(u32, Vec<u8>, Vec<u8>)> {
        let mut w = ChunkWriter::new(128);
        let mut first = Vec::new();
        w.set_chunk_size(4096, &mut first);
        let mut out = vec![(2, first, Vec::new())];
        for i in 0..n as u32 {
            if i % 2 == 0 {
                let mut v = vec![0x22, 0, 0, 0x84, 6];
                v.resize(7000 + 97 * (i as usize % 7), 0x33 + i as u8);
                let mut b = Vec::new();
                w.write(6, 1, types::VIDEO, 40 * (i / 2), &v, &mut b);
                out.push((6, b, v));
            }
            let padded = i > 0;
            let mut a = vec![0x2e, 0xff, 0xfb, if padded { 0x52 } else { 0x50 }, 0xc4];
            a.resize(if padded { 210 } else { 209 }, 0x55);
            let mut b = Vec::new();
            w.write(4, 1, types::AUDIO, 26 * i, &a, &mut b);
            out.push((4, b, a));
        }
        out
    }

    /// A reader from the connection's start that has read the first `n` of `msgs`.
    fn read_first(msgs: &[(u32, Vec<u8>, Vec<u8>)], n: usize) -> ChunkReader {
        let mut r = ChunkReader::new(0, 128, Limits::default());
        let mut out = Vec::new();
        for (_, b, _) in &msgs[..n] {
            r.push(b, 0, &mut out).unwrap();
        }
        r
    }

    #[test]
    fn after_a_gap_a_message_where_the_bytes_resume_is_waited_for_and_mp3_lengths_are_read() {
        let msgs = sorenson_mp3(40);
        // Read up to the first video; the gap takes the next audio (the first of 210 bytes,
        // its fmt-1 header with it) and the capture resumes at the next video's header.
        let r = read_first(&msgs, 3);
        assert_eq!((msgs[3].0, msgs[4].0), (4, 6));
        let after: Vec<u8> = msgs[4..].iter().flat_map(|m| m.1.clone()).collect();
        let known = r.resume_at(0, 4096);
        let search =
            |buf: &[u8], resumed: bool, at_end: bool| find_after_gap(buf, &known, at_end, resumed);
        // Only part of the video is here: the candidate at the first byte is waited for
        // (before, it was passed over and the bytes before the next candidate dropped).
        assert_eq!(search(&after[..6000], true, false), Search::NeedMore(0));
        assert_ne!(search(&after[..6000], false, false), Search::NeedMore(0));
        let Search::Found(l) = search(&after, true, false) else {
            panic!("no lock");
        };
        assert_eq!(l.pos, 0);
        // The audio after it are fmt-3 chunks on the 209 bytes of the header before the
        // gap: their frame headers say 210, and every message is read whole.
        let mut r = known.resume_at(0, l.chunk_size);
        let mut got = Vec::new();
        r.push(&after, 0, &mut got).unwrap();
        let want: Vec<&Vec<u8>> = msgs[4..].iter().map(|m| &m.2).collect();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert_eq!(&g.body[..], &w[..]);
        }
        assert!(r.stats.mp3_lengths_read >= 1);
    }

    /// A message sent: (csid, message type, its chunks, its body).
    type Sent = (u32, u8, Vec<u8>, Vec<u8>);

    /// ffmpeg publishing Sorenson and MP3 at chunk size 4096: `@setDataFrame` on csid 4,
    /// the chunk stream its audio then takes (a fmt-1 header for the type, then fmt-2 and
    /// fmt-3 headers of 210-byte frames), and video on csid 6 of up to 9 KB. Messages and
    /// their chunks, and the bytes of the connection's start.
    fn ffmpeg_sorenson_mp3(n: u32) -> (Vec<u8>, Vec<Sent>) {
        let mut w = ChunkWriter::new(128);
        let mut start = Vec::new();
        w.set_chunk_size(4096, &mut start);
        let mut script = vec![2, 0, 13];
        script.extend_from_slice(b"@setDataFrame");
        script.resize(309, 0);
        w.write(4, 1, types::DATA_AMF0, 0, &script, &mut start);
        let mut msgs = Vec::new();
        for i in 0..n {
            let mut v = vec![0x22, 0, 0, 0x84];
            v.resize(1500 + 2600 * (i as usize % 4), 0x40 + i as u8);
            let mut b = Vec::new();
            w.write(6, 1, types::VIDEO, 40 * i, &v, &mut b);
            msgs.push((6, types::VIDEO, b, v));
            for k in 0..2 {
                let t = (40 * i + 20 * k) * 26 / 20;
                let mut a = vec![0x2e, 0xff, 0xfb, 0x52, 0xc4];
                a.resize(210, (i * 2 + k) as u8);
                let mut b = Vec::new();
                w.write(4, 1, types::AUDIO, t, &a, &mut b);
                msgs.push((4, types::AUDIO, b, a));
            }
        }
        (start, msgs)
    }

    #[test]
    fn after_a_gap_that_took_the_first_media_headers_video_and_mp3_are_read() {
        // The gap takes every header that set csid 6 (video) or made csid 4 audio; the
        // reader from before it knows csid 4 as the script's 309 bytes. The bytes resume at
        // a video header; the audio after it come under fmt-2 and fmt-3 headers only.
        let (start, msgs) = ffmpeg_sorenson_mp3(12);
        let mut r = ChunkReader::new(0, 128, Limits::default());
        let mut out = Vec::new();
        r.push(&start, 0, &mut out).unwrap();
        assert_eq!(out.last().map(|m| m.type_id), Some(types::DATA_AMF0));
        let from = 9; // the first video frame after the first audio's fmt-1 header
        assert_eq!(msgs[from].0, 6);
        assert!(
            msgs[from + 1..]
                .iter()
                .all(|m| m.0 != 4 || m.2[0] & 0xc0 >= 0x80)
        );
        let after: Vec<u8> = msgs[from..].iter().flat_map(|m| m.2.clone()).collect();
        let known = r.resume_at(0, 4096);
        let search = |buf: &[u8], at_end: bool| find_after_gap(buf, &known, at_end, true);
        // Only part of the first video frame is here: it is waited for (before, it was
        // passed over, its chunks' csid 6 being unknown to the reader).
        assert!(msgs[from].3.len() > 4096);
        assert_eq!(search(&after[..1400], false), Search::NeedMore(0));
        assert_eq!(search(&after[..5000], false), Search::NeedMore(0));
        let Search::Found(l) = search(&after, false) else {
            panic!("no lock");
        };
        assert_eq!(l.pos, 0);
        let mut r = known.resume_at(0, l.chunk_size);
        let mut got = Vec::new();
        r.push(&after, 0, &mut got).unwrap();
        r.finish(0, &mut got).unwrap();
        assert_eq!(got.len(), msgs.len() - from);
        for (g, m) in got.iter().zip(&msgs[from..]) {
            assert_eq!((g.csid, g.type_id), (m.0, m.1));
            assert_eq!(&g.body[..], &m.3[..]);
        }
    }

    #[test]
    fn mid_stream_mp3_under_a_fmt2_header_and_a_first_message_not_all_here_are_locked_on() {
        // A capture begun mid-stream: its first bytes are an MP3 frame under a fmt-2 header
        // of a chunk stream never seen (ffmpeg sends MP3 under fmt-2/3 headers only), then
        // a video frame longer than the first segment.
        let (_, msgs) = ffmpeg_sorenson_mp3(12);
        let from = (1..msgs.len())
            .find(|&k| msgs[k].0 == 4 && msgs[k].2[0] >> 6 == 2 && msgs[k + 1].0 == 6)
            .expect("a fmt-2 audio before a video");
        let bytes: Vec<u8> = msgs[from..].iter().flat_map(|m| m.2.clone()).collect();
        let search = |buf: &[u8], at: usize| find(buf, at, None, &Limits::default(), false);
        let Search::Found(l) = search(&bytes, 0) else {
            panic!("no lock");
        };
        // (Before, the fmt-2 header was no candidate: the lock came at the video after it.)
        assert_eq!(l.pos, 0);
        // The video after it, where the first segment ends inside it, is waited for rather
        // than passed over (before, the bytes up to the next candidate were dropped).
        let video = msgs[from].2.len();
        assert!(msgs[from + 1].3.len() > 1400);
        assert_eq!(
            search(&bytes[..video + 1400], video),
            Search::NeedMore(video)
        );
        let mut r = ChunkReader::resumed(0, l.chunk_size, Limits::default());
        let mut got = Vec::new();
        r.push(&bytes, 0, &mut got).unwrap();
        r.finish(0, &mut got).unwrap();
        assert_eq!(got.len(), msgs.len() - from);
        for (g, m) in got.iter().zip(&msgs[from..]) {
            assert_eq!((g.csid, g.type_id, &g.body[..]), (m.0, m.1, &m.3[..]));
        }
    }

    #[test]
    fn a_header_whose_first_chunk_is_all_here_is_not_waited_for_on_that_alone() {
        // A fmt-0 header of a 90 KB picture, then bytes that are fmt-3 headers of its chunk
        // stream (bytes made to defeat the search): its first chunk is here at 4096 bytes
        // and the reader stands at the next header. Waiting for it (probed again at every
        // search) made such bytes six times dearer to search.
        let mut b = vec![0x04, 0, 0, 40, 0x01, 0x5f, 0x90, 9, 1, 0, 0, 0];
        b.resize(b.len() + 11_200, 0xc4);
        assert_eq!(
            find(&b, 0, None, &Limits::default(), false),
            Search::NotFound
        );
        // Inside its first chunk it is waited for.
        assert_eq!(
            find(&b[..1400], 0, None, &Limits::default(), false),
            Search::NeedMore(0)
        );
    }

    #[test]
    fn after_a_gap_a_header_whose_first_chunk_is_not_all_here_is_waited_for() {
        // The bytes resume inside an audio message (its last 100 bytes), then a video
        // frame's header and the first 1,400 bytes of its 4,096-byte first chunk.
        let msgs = sorenson_mp3(10);
        let r = read_first(&msgs, 3);
        let (audio, video) = (&msgs[3], &msgs[4]);
        assert_eq!((audio.0, video.0), (4, 6));
        let mut after = audio.1[audio.1.len() - 100..].to_vec();
        after.extend_from_slice(&video.1[..1400]);
        let known = r.resume_at(0, 4096);
        // (Before, it was passed over, and with it the bytes up to the next header.)
        assert_eq!(
            find_after_gap(&after, &known, false, false),
            Search::NeedMore(100)
        );
    }

    #[test]
    fn a_lost_header_whose_message_a_fmt3_one_follows_ends_where_that_one_begins() {
        // ffmpeg's AAC: a fmt-1 header (a new length) sent as a segment of its own, lost;
        // the next frame, of the same length and delta, follows its body under a fmt-3
        // header in one segment. The lost length is where that header stands.
        let mut w = ChunkWriter::new(128);
        let mut before = Vec::new();
        w.set_chunk_size(4096, &mut before);
        let frame = |n: usize, fill: u8| {
            let mut a = vec![0xaf, 1, 0x21, 0x19];
            a.resize(n, fill);
            a
        };
        for (i, n) in [200usize, 222, 190].into_iter().enumerate() {
            w.write(
                4,
                1,
                types::AUDIO,
                23 * i as u32,
                &frame(n, i as u8),
                &mut before,
            );
        }
        let picture = |n: usize, fill: u8| {
            let mut v = vec![0x27, 1, 0, 0, 0];
            v.extend_from_slice(&(n as u32 - 9).to_be_bytes());
            v.resize(n, fill);
            v
        };
        w.write(6, 1, types::VIDEO, 40, &picture(900, 7), &mut before);
        let mut r = ChunkReader::new(0, 128, Limits::default());
        let mut out = Vec::new();
        r.push(&before, 0, &mut out).unwrap();
        let mut lost = Vec::new();
        let (a, b) = (frame(180, 0xa0), frame(180, 0xb0));
        w.write(4, 1, types::AUDIO, 69, &a, &mut lost);
        assert_eq!(lost.len(), 8 + 180, "a fmt-1 header");
        let mut after = lost[8..].to_vec();
        let at = after.len();
        w.write(4, 1, types::AUDIO, 92, &b, &mut after);
        assert_eq!(after[at], 0xc4, "a fmt-3 header");
        for i in 0..6u32 {
            let v = picture(700 + 50 * i as usize, i as u8);
            w.write(6, 1, types::VIDEO, 120 + 40 * i, &v, &mut after);
            w.write(
                4,
                1,
                types::AUDIO,
                138 + 23 * i,
                &frame(170 + i as usize, 9),
                &mut after,
            );
        }
        match recover_body(&after, &r, 8, &Limits::default(), false) {
            Recovered::Body { csid: 4, end: 180 } => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mp3_alone_after_a_lost_length_changing_header_is_read_on() {
        // ffmpeg publishing MP3 alone: a fmt-1 header when the frame's padding changes the
        // length, then fmt-3 headers of one byte. The gap takes the fmt-1 header of the
        // first 210-byte message; the reader from before it knows 209.
        let msgs: Vec<_> = sorenson_mp3(16).into_iter().filter(|m| m.0 != 6).collect();
        let mut r = ChunkReader::new(0, 128, Limits::default());
        let mut out = Vec::new();
        for (_, b, _) in &msgs[..2] {
            r.push(b, 0, &mut out).unwrap();
        }
        let (cut, body) = (&msgs[2].1, &msgs[2].2);
        assert_eq!(body.len(), 210);
        let hlen = cut.len() - body.len();
        assert_eq!(hlen, 8, "a fmt-1 header");
        let mut after = body.clone();
        after.extend(msgs[3..].iter().flat_map(|m| m.1.clone()));
        assert_eq!(msgs[3].1.len(), 211, "fmt-3 headers after it");
        match recover_body(&after, &r, hlen as u32, &Limits::default(), false) {
            Recovered::Body { csid: 4, end: 210 } => {}
            other => panic!("{other:?}"),
        }
        // And a lock right after that body, where the fmt-3 headers say 209 from before.
        let found = find(&after, 1, Some(&r), &Limits::default(), false);
        assert!(
            matches!(found, Search::Found(Lock { pos: 210, .. })),
            "{found:?}"
        );
    }

    #[test]
    fn short_input_asks_for_more() {
        let b = stream(4096, 3);
        let cut = 20;
        assert!(matches!(
            find(&b[cut..b.len() / 2], 0, None, &Limits::default(), false),
            Search::NeedMore(_) | Search::NotFound
        ));
    }
}
