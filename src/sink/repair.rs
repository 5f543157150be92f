//! Repair across connections: where the input holds the same stream more than once (a
//! publisher and its players, two players, an edge and an origin), a message lost to a gap in
//! one copy is taken from another copy that holds it, and the times after a gap, which the
//! timing stage could only rebuild, are taken from a copy that had no gap there.
//!
//! Nothing is guessed. Two copies are aligned by their media bodies: tags whose body appears
//! once in each are anchors, and between two anchors the bodies once in each segment are
//! matched, in the same order in both. A message is put in only where a gap came in this
//! copy, between two neighbours that are identical in both copies, and only a coded frame
//! (never a decoder configuration or a script tag); its time is the copy's, from a
//! neighbour. A stretch of this copy between two of its gaps is moved by its error, where
//! the stretches the two copies share tell that it is this copy's and not the other's (see
//! [`plan`]). The other copy is read at the times it was first written, where it was
//! repaired itself already (but for the runs of frames after a gap that its repair put on
//! the times of the rest of their stretch): its errors are then constant between its gaps,
//! as [`plan`] takes them to be (a repair may have moved some of its stretches only).
//!
//! Done at the end of the input, from the files on disk: each is read a tag at a time into an
//! index of at most [`MAX_INDEX_TAGS`] entries of 40 bytes, and a file is rewritten through a
//! new file renamed over it (never through a link, never another run's file).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde::Serialize;

use super::fs::{FileId, create_unique_tmp, reopen};
use super::hash::sha256_of;
use super::report::StreamReport;
use crate::flow::{ConnId, StreamKey};
use crate::rtmp::media;
use crate::rtmp::timing::diff;

/// Tags indexed per file, at most (a longer file is not repaired, and the report says so).
pub const MAX_INDEX_TAGS: usize = 1 << 20;
/// How far (tags of this copy) a neighbour of a tag put in is looked for.
const MAX_NEIGHBOUR_STEPS: usize = 64;
/// Runs kept per rewritten file of how its times differ from those first written, and for
/// all files together (past these, a file is a copy for others at its times as corrected).
const MAX_UNDO_RUNS: usize = 1 << 14;
const MAX_UNDO_RUNS_TOTAL: usize = 1 << 18;
/// Streams that can be repaired, at most (each keeps its gaps' marks until the end).
const MAX_TARGETS: usize = 1024;
/// Gap marks kept per stream.
const MAX_MARKS: usize = 4096;
/// Pictures remembered to pair copies, at most (the oldest are forgotten first); as many
/// sounds.
const MAX_PICTURES: usize = 65536;
/// The smallest video frame that pairs two copies (bytes).
const MIN_PAIRING_BYTES: usize = 256;
/// The smallest audio frame that pairs two copies without video (bytes): silence and other
/// frames alike by chance code in fewer.
const MIN_PAIRING_SOUND_BYTES: usize = 64;
/// Pictures (or sounds) two streams must share to be taken for copies of one another.
const MIN_SHARED: u32 = 4;
/// Copies tried per stream.
const MAX_SOURCES: usize = 3;
/// Streams repaired from one copy, at most.
const MAX_USES: u32 = 8;
/// Differences of times between two copies that are not corrected (ms).
const MIN_CORRECTION_MS: i64 = 2;
/// Most frames of a kind in a row after a gap whose times are taken from another copy one by
/// one (see [`plan`]).
const MAX_WRONG_AFTER_GAP: usize = 4;
/// How far (ms) from the file's usual difference between two copies one matched sound, alone
/// in its cell, may put a stretch.
const MAX_LONE_SOUND_MS: i64 = 500;
/// Tags of one copy between two anchors that are aligned, at most.
const MAX_SEGMENT: usize = 1024;

/// A body's hash: the same message in two copies hashes alike.
pub(super) fn body_hash(body: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    h.finish()
}

/// What repair says of a stream in the report.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct RepairReport {
    /// Messages put in from other copies (coded frames), per kind.
    pub video_frames: u64,
    pub audio_frames: u64,
    /// Gaps whose later times were taken from a copy (per kind), and the most ms moved.
    pub times_corrected: u64,
    pub largest_correction_ms: i64,
    /// The copies used.
    pub from: Vec<RepairSource>,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct RepairSource {
    pub connection: u64,
    pub stream: u32,
    pub messages: u64,
    pub times_corrected: u64,
}

/// One tag of an FLV file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    /// FLV tag type (8 audio, 9 video, 18 script).
    kind: u8,
    ts: u32,
    hash: u64,
    /// File offset of the tag's header; the body's length.
    at: u64,
    len: u32,
    /// A coded frame (not a decoder configuration, not an end of sequence).
    frame: bool,
    /// A keyframe.
    key: bool,
}

/// What is known of a stream during the input.
#[derive(Default)]
struct Copy {
    /// Hashes of the first tag written after each gap of its direction.
    marks: HashSet<u64>,
    mark_next: bool,
    gaps: u32,
    /// Its file, once it has one, and whether the stream is all in it.
    file: Option<(String, FileId)>,
    one_file: bool,
    /// Streams repaired from it so far (at most [`MAX_USES`]: a file is read a bounded
    /// number of times, however many streams share its pictures).
    uses: u32,
    /// Whether it has had a picture that pairs copies (until then its sounds pair them).
    pictured: bool,
    /// Whether it is to be repaired at the end (at most [`MAX_TARGETS`] are).
    target: bool,
    /// Once its file was rewritten: how its tags' times differ from those first written.
    undo: Option<Undo>,
}

/// How a rewritten file's tags differ from the file as first written, in its tags' order:
/// runs of (first tag, its time less the time first written, or `None` for tags put in).
/// A copy is aligned with another at the times it was first written: those are constant
/// errors between its gaps, where a correction may have mended part of a stretch only.
#[derive(Clone, Debug, Default, PartialEq)]
struct Undo {
    runs: Vec<(u32, Option<i64>)>,
}

impl Undo {
    /// Each tag's difference, for the `n` tags of the file.
    fn expand(&self, n: usize) -> Vec<Option<i64>> {
        let mut out = vec![Some(0); n];
        for (r, &(start, d)) in self.runs.iter().enumerate() {
            let end = self.runs.get(r + 1).map_or(n, |x| x.0 as usize).min(n);
            for x in out.iter_mut().take(end).skip(start as usize) {
                *x = d;
            }
        }
        out
    }

    /// From each tag's difference; `None` past [`MAX_UNDO_RUNS`].
    fn of(each: &[Option<i64>]) -> Option<Undo> {
        let mut runs: Vec<(u32, Option<i64>)> = Vec::new();
        for (i, &d) in each.iter().enumerate() {
            if runs.last().is_none_or(|r| r.1 != d) {
                if runs.len() == MAX_UNDO_RUNS {
                    return None;
                }
                runs.push((i as u32, d));
            }
        }
        Some(Undo { runs })
    }
}

/// The copy `b` at the times it was first written. A tag put in it since (from another copy)
/// is moved as the tag of its kind before it was: it stays an anchor between them.
fn as_first_written(mut b: Vec<Entry>, undo: Option<&Undo>) -> Vec<Entry> {
    let Some(u) = undo else { return b };
    let each = u.expand(b.len());
    let mut last = [0i64; 2];
    for (e, d) in b.iter_mut().zip(each) {
        let k = (e.kind == 9) as usize;
        let d = d.unwrap_or(last[k]);
        if matches!(e.kind, 8 | 9) {
            last[k] = d;
        }
        e.ts = e.ts.wrapping_sub(d as u32);
    }
    b
}

/// Make stream `key`'s copy `c` one to repair at the end (its connection's report waits for
/// it), unless it is one already; false when [`MAX_TARGETS`] are.
fn become_target(
    c: &mut Copy,
    key: StreamKey,
    targets: &mut usize,
    conns: &mut HashSet<ConnId>,
) -> bool {
    if c.target {
        return true;
    }
    if *targets >= MAX_TARGETS {
        return false;
    }
    c.target = true;
    *targets += 1;
    conns.insert(key.conn);
    true
}

/// Frames that pair copies: a frame's hash -> the streams whose files hold it (at most 8),
/// the oldest forgotten first past [`MAX_PICTURES`].
#[derive(Default)]
struct Shared {
    streams: HashMap<u64, Vec<StreamKey>>,
    order: VecDeque<u64>,
}

impl Shared {
    /// Stream `key` holds a frame with this body.
    fn add(&mut self, key: StreamKey, body: &[u8]) {
        // Its length and first KiB: enough to pair copies, cheap for every frame.
        let h = body_hash(&body[..body.len().min(1024)]) ^ (body.len() as u64).rotate_left(40);
        let v = self.streams.entry(h).or_default();
        if v.is_empty() {
            self.order.push_back(h);
        }
        if v.len() < 8 && !v.contains(&key) {
            v.push(key);
        }
        while self.order.len() > MAX_PICTURES {
            if let Some(old) = self.order.pop_front() {
                self.streams.remove(&old);
            }
        }
    }

    /// The other streams, of those `usable`, that share at least [`MIN_SHARED`] frames with
    /// `key`, most shared first.
    fn with(&self, key: StreamKey, usable: impl Fn(&StreamKey) -> bool) -> Vec<StreamKey> {
        let mut shared: HashMap<StreamKey, u32> = HashMap::new();
        for v in self.streams.values() {
            if v.contains(&key) {
                for k in v {
                    if *k != key && usable(k) {
                        *shared.entry(*k).or_default() += 1;
                    }
                }
            }
        }
        let mut v: Vec<(StreamKey, u32)> = shared
            .into_iter()
            .filter(|(_, n)| *n >= MIN_SHARED)
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.into_iter().map(|(k, _)| k).collect()
    }

    fn clear(&mut self) {
        self.streams.clear();
        self.order.clear();
    }
}

/// Copies of the input's streams, paired by the pictures they share.
#[derive(Default)]
pub(super) struct Repair {
    pub(super) enabled: bool,
    copies: HashMap<StreamKey, Copy>,
    /// Coded video frames; and audio frames of streams without video so far (an audio-only
    /// stream and its copies pair by them).
    pictures: Shared,
    sounds: Shared,
    /// Connections with a stream that lost bytes: their reports wait for the end.
    conns: HashSet<ConnId>,
    targets: usize,
}

impl Repair {
    pub(super) fn new(enabled: bool) -> Self {
        Repair {
            enabled,
            ..Default::default()
        }
    }

    /// A tag of stream `key` goes in its file; `gaps` gaps of its direction came since the
    /// stream began.
    pub(super) fn tag(&mut self, key: StreamKey, gaps: u32, kind: u8, body: &[u8]) {
        if !self.enabled {
            return;
        }
        if !self.copies.contains_key(&key) && self.copies.len() >= 4 * MAX_TARGETS {
            return;
        }
        let c = self.copies.entry(key).or_insert_with(|| Copy {
            one_file: true,
            ..Default::default()
        });
        if gaps != c.gaps {
            c.gaps = gaps;
            if !become_target(c, key, &mut self.targets, &mut self.conns) {
                return;
            }
            c.mark_next = true;
        }
        if c.mark_next && matches!(kind, 8 | 9) {
            c.mark_next = false;
            if c.marks.len() < MAX_MARKS {
                c.marks.insert(body_hash(body));
            }
        }
        let picture = (kind == 9)
            .then(|| media::video(body))
            .flatten()
            .filter(|i| i.frame);
        // Pictures pair copies: coded video frames big enough not to be alike by chance (a
        // few bytes of an unchanging picture can be). Until a stream has one, its audio
        // frames pair it.
        if picture.is_some() && body.len() >= MIN_PAIRING_BYTES {
            c.pictured = true;
            self.pictures.add(key, body);
        } else if kind == 8
            && !c.pictured
            && body.len() >= MIN_PAIRING_SOUND_BYTES
            && media::audio(body).is_some_and(|i| i.frame)
        {
            self.sounds.add(key, body);
        }
    }

    /// The stream's file, as its report gives it when the stream ends.
    pub(super) fn closed(&mut self, r: &StreamReport) {
        if let Some(c) = self.copies.get_mut(&r.key) {
            c.file = r.file.clone().zip(r.file_id);
            c.one_file = r.more_files.is_empty() && c.file.is_some();
        }
    }

    /// Whether the report of connection `conn` must wait for the end of the input.
    pub(super) fn waits(&self, conn: ConnId) -> bool {
        self.enabled && self.conns.contains(&conn)
    }

    /// End of the input: every stream that lost bytes and has a copy is repaired from it,
    /// its file rewritten (hashed again if `sha256`) and its report updated. `reports` are
    /// those that waited for the end.
    pub(super) fn finish(
        &mut self,
        dir: &Path,
        reports: &mut std::collections::BTreeMap<ConnId, super::report::ConnectionReport>,
        sha256: bool,
    ) -> io::Result<()> {
        if !self.enabled {
            return Ok(());
        }
        // Files as the reports give them now (a fix-up may have written one anew).
        for c in reports.values() {
            for r in &c.streams {
                self.closed(r);
            }
        }
        let mut targets: Vec<StreamKey> = self
            .copies
            .iter()
            .filter(|(_, c)| c.target && c.one_file)
            .map(|(k, _)| *k)
            .collect();
        targets.sort();
        let mut undo_runs = 0usize;
        for key in targets {
            let sources = self.sources_of(key);
            let Some(r) = reports
                .get_mut(&key.conn)
                .and_then(|c| c.streams.iter_mut().find(|s| s.key == key))
            else {
                continue;
            };
            for src in sources.into_iter().take(MAX_SOURCES) {
                let (Some(t), Some(s)) = (self.copies.get(&key), self.copies.get(&src)) else {
                    continue;
                };
                if s.uses >= MAX_USES {
                    continue;
                }
                let (Some((tname, _)), Some((sname, sid))) = (&t.file, &s.file) else {
                    continue;
                };
                let Some(tid) = r.file_id else { break };
                let (tname, sname, sid) = (tname.clone(), sname.clone(), *sid);
                let marks = (&t.marks, &s.marks);
                let undo = (t.undo.as_ref(), s.undo.as_ref());
                let outcome = repair_one(dir, (&tname, tid), (&sname, sid), marks, undo)?;
                if let Some(s) = self.copies.get_mut(&src) {
                    s.uses += 1;
                }
                match outcome {
                    Outcome::Done(done) => {
                        apply(r, src, &done, dir.join(&tname), sha256)?;
                        // The file is a new one now (and a copy for the others from now on).
                        if let (Some(c), Some(id)) = (self.copies.get_mut(&key), done.id) {
                            c.file = Some((tname, id));
                            // (Bounded in all: 24 bytes a run.)
                            let runs = |u: &Option<Undo>| u.as_ref().map_or(0, |u| u.runs.len());
                            undo_runs -= runs(&c.undo);
                            c.undo = done
                                .undo
                                .filter(|u| undo_runs + u.runs.len() <= MAX_UNDO_RUNS_TOTAL);
                            undo_runs += runs(&c.undo);
                        }
                    }
                    Outcome::Nothing => {}
                    Outcome::TooLong => {
                        r.notes.push(format!(
                            "not repaired from other connections: more than {MAX_INDEX_TAGS} tags in its file or in the copy's"
                        ));
                        break;
                    }
                    Outcome::Failed(e) => {
                        r.notes.push(format!(
                            "not repaired from connection {} stream {}: {e}",
                            src.conn, src.stream
                        ));
                        break;
                    }
                }
            }
        }
        self.copies.clear();
        self.pictures.clear();
        self.sounds.clear();
        self.conns.clear();
        Ok(())
    }

    /// The other streams that share pictures with `key`, most shared first; for a stream
    /// that shares none, those that share its sounds.
    fn sources_of(&self, key: StreamKey) -> Vec<StreamKey> {
        let usable = |k: &StreamKey| self.copies.get(k).is_some_and(|c| c.one_file);
        let v = self.pictures.with(key, usable);
        if v.is_empty() {
            self.sounds.with(key, usable)
        } else {
            v
        }
    }
}

/// What one copy gave a stream.
#[derive(Debug, Default, PartialEq)]
struct Done {
    video_frames: u64,
    audio_frames: u64,
    video_bytes: u64,
    audio_bytes: u64,
    keyframes: u64,
    times_corrected: u64,
    largest_ms: i64,
    bytes: u64,
    id: Option<FileId>,
    /// The times of the video frames put in.
    video_times: Vec<u32>,
    /// Whether the file's first picture is a keyframe now.
    starts_with_keyframe: Option<bool>,
    /// How the new file's times differ from those first written.
    undo: Option<Undo>,
}

enum Outcome {
    Done(Done),
    Nothing,
    TooLong,
    /// Reading or writing failed (the file is left as it was).
    Failed(io::Error),
}

/// The report of a stream repaired from `src`.
fn apply(
    r: &mut StreamReport,
    src: StreamKey,
    d: &Done,
    path: std::path::PathBuf,
    sha256: bool,
) -> io::Result<()> {
    let rep = r.repair.get_or_insert_with(Default::default);
    rep.video_frames += d.video_frames;
    rep.audio_frames += d.audio_frames;
    rep.times_corrected += d.times_corrected;
    rep.largest_correction_ms = rep.largest_correction_ms.max(d.largest_ms);
    rep.from.push(RepairSource {
        connection: src.conn.number(),
        stream: src.stream,
        messages: d.video_frames + d.audio_frames,
        times_corrected: d.times_corrected,
    });
    r.video_frames += d.video_frames;
    r.audio_frames += d.audio_frames;
    r.keyframes += d.keyframes;
    r.video_bytes += d.video_bytes;
    r.audio_bytes += d.audio_bytes;
    r.set_bitrates();
    // Video frames put back are no longer lost inside the file.
    r.repaired_video_times.extend_from_slice(&d.video_times);
    r.decodable.starts_with_keyframe = d.starts_with_keyframe;
    r.settle_clean();
    r.bytes = d.bytes;
    r.file_id = d.id;
    if sha256 && let Some(id) = d.id {
        r.sha256 = sha256_of(&path, id)?;
    }
    Ok(())
}

/// Repair the file `target` from the file `source` (each with the marks of its gaps). A
/// failure to read or write leaves the file as it was (and no temporary file behind).
fn repair_one(
    dir: &Path,
    target: (&str, FileId),
    source: (&str, FileId),
    (marks, source_marks): (&HashSet<u64>, &HashSet<u64>),
    (undo, source_undo): (Option<&Undo>, Option<&Undo>),
) -> io::Result<Outcome> {
    let (Some(mut tf), Some(mut sf)) = (
        reopen(&dir.join(target.0), target.1)?,
        reopen(&dir.join(source.0), source.1)?,
    ) else {
        return Ok(Outcome::Nothing);
    };
    let (a, b) = match (index(&mut tf), index(&mut sf)) {
        (Ok(Some(a)), Ok(Some(b))) => (a, as_first_written(b, source_undo)),
        (Err(e), _) | (_, Err(e)) => return Ok(Outcome::Failed(e)),
        _ => return Ok(Outcome::TooLong),
    };
    let p = plan(&a, &b, marks, source_marks);
    if p.inserts.is_empty() && p.corrected == 0 {
        return Ok(Outcome::Nothing);
    }
    // Our own file of this run, replaced whole through a new file renamed over it.
    let stem = target.0.strip_suffix(".flv").unwrap_or(target.0);
    let (tmp, f) = match create_unique_tmp(dir, stem, ".flv.tmp") {
        Ok(x) => x,
        Err(e) => return Ok(Outcome::Failed(e)),
    };
    match rewrite(f, &mut tf, &mut sf, (&a, undo), &b, &p) {
        Ok(mut done) => match std::fs::rename(&tmp, dir.join(target.0)) {
            Ok(()) => {
                done.times_corrected = p.corrected;
                done.largest_ms = p.largest_ms;
                Ok(Outcome::Done(done))
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Ok(Outcome::Failed(e))
            }
        },
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Ok(Outcome::Failed(e))
        }
    }
}

/// The target's tags into `f`, with the copy's put in and times moved as `p` says.
fn rewrite(
    f: File,
    tf: &mut File,
    sf: &mut File,
    (a, undo): (&[Entry], Option<&Undo>),
    b: &[Entry],
    p: &Plan,
) -> io::Result<Done> {
    let mut done = Done::default();
    let before = undo.map_or_else(|| vec![Some(0); a.len()], |u| u.expand(a.len()));
    let mut each: Vec<Option<i64>> = Vec::with_capacity(a.len() + p.inserts.len());
    let new_id = FileId::of(&f.metadata()?);
    let mut w = BufWriter::with_capacity(256 << 10, f);
    tf.seek(SeekFrom::Start(0))?;
    let mut head = [0u8; 13];
    tf.read_exact(&mut head)?;
    w.write_all(&head)?;
    let mut written = head.len() as u64;
    let mut tr = BufReader::with_capacity(256 << 10, tf);
    let mut ins = p.inserts.iter().peekable();
    let mut buf = Vec::new();
    for (i, e) in a.iter().enumerate() {
        while let Some(x) = ins.next_if(|x| x.before == i) {
            let s = &b[x.from];
            if s.kind == 9 && s.frame {
                done.starts_with_keyframe.get_or_insert(s.key);
            }
            read_tag(sf, s, &mut buf)?;
            set_ts(&mut buf, x.ts);
            each.push(None);
            w.write_all(&buf)?;
            written += buf.len() as u64;
            let body = s.len as u64;
            if s.kind == 9 {
                done.video_frames += 1;
                done.video_times.push(x.ts);
                done.video_bytes += body;
                done.keyframes += s.key as u64;
            } else {
                done.audio_frames += 1;
                done.audio_bytes += body;
            }
        }
        if e.kind == 9 && e.frame {
            done.starts_with_keyframe.get_or_insert(e.key);
        }
        // The target's own tags, in order, a time moved where it was corrected.
        buf.resize(11 + e.len as usize + 4, 0);
        tr.read_exact(&mut buf)?;
        if let Some(t) = p.times[i] {
            set_ts(&mut buf, t);
        }
        let moved = p.times[i].filter(|_| p.stretch_moved[i]);
        each.push(before[i].map(|d| d + moved.map_or(0, |t| diff(t, e.ts))));
        w.write_all(&buf)?;
        written += buf.len() as u64;
    }
    w.flush()?;
    done.bytes = written;
    done.id = Some(new_id);
    done.undo = Undo::of(&each);
    Ok(done)
}

fn read_tag(f: &mut File, e: &Entry, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.resize(11 + e.len as usize + 4, 0);
    f.seek(SeekFrom::Start(e.at))?;
    f.read_exact(buf)
}

fn set_ts(tag: &mut [u8], ts: u32) {
    let b = ts.to_be_bytes();
    tag[4..7].copy_from_slice(&b[1..4]);
    tag[7] = b[0];
}

/// The tags of an FLV file (after its 13-byte header), or `None` past [`MAX_INDEX_TAGS`].
/// A cut last tag ends the index.
fn index(f: &mut File) -> io::Result<Option<Vec<Entry>>> {
    f.seek(SeekFrom::Start(13))?;
    let mut r = BufReader::with_capacity(256 << 10, &*f);
    let mut out = Vec::new();
    let mut at = 13u64;
    let mut head = [0u8; 11];
    let mut body = Vec::new();
    loop {
        if r.read_exact(&mut head).is_err() {
            break;
        }
        let len = u32::from_be_bytes([0, head[1], head[2], head[3]]);
        body.resize(len as usize + 4, 0);
        if r.read_exact(&mut body).is_err() {
            break;
        }
        if out.len() == MAX_INDEX_TAGS {
            return Ok(None);
        }
        let kind = head[0] & 0x1f;
        let b = &body[..len as usize];
        let (frame, key) = match kind {
            9 => media::video(b).map_or((false, false), |i| (i.frame, i.frame && i.keyframe)),
            8 => (media::audio(b).is_some_and(|i| i.frame), false),
            _ => (false, false),
        };
        out.push(Entry {
            kind,
            ts: u32::from_be_bytes([head[7], head[4], head[5], head[6]]),
            hash: body_hash(b),
            at,
            len,
            frame,
            key,
        });
        at += 11 + len as u64 + 4;
    }
    Ok(Some(out))
}

/// A tag of the copy to put in before the target's tag `before`, at time `ts`.
#[derive(Debug, PartialEq)]
struct Insert {
    before: usize,
    from: usize,
    ts: u32,
}

/// What to do to the target: tags put in, and each of its tags' new time where corrected.
#[derive(Debug)]
struct Plan {
    inserts: Vec<Insert>,
    times: Vec<Option<u32>>,
    /// The tags whose time is their stretch's, moved (not one of a run mended after a gap:
    /// such a run is taken as first written when this file is a copy for another).
    stretch_moved: Vec<bool>,
    corrected: u64,
    largest_ms: i64,
}

/// The longest subsequence of `pairs` (in increasing first element) whose second elements
/// increase too (patience sorting, O(n log n)).
fn longest_chain(pairs: &[(usize, usize)]) -> Vec<(usize, usize)> {
    // tails[k]: index in `pairs` of the smallest last element of a chain of length k + 1.
    let mut tails: Vec<usize> = Vec::new();
    let mut prev: Vec<Option<usize>> = vec![None; pairs.len()];
    for (n, &(_, j)) in pairs.iter().enumerate() {
        let k = tails.partition_point(|&t| pairs[t].1 < j);
        prev[n] = k.checked_sub(1).map(|k| tails[k]);
        if k == tails.len() {
            tails.push(n);
        } else {
            tails[k] = n;
        }
    }
    let mut out = Vec::with_capacity(tails.len());
    let mut at = tails.last().copied();
    while let Some(n) = at {
        out.push(pairs[n]);
        at = prev[n];
    }
    out.reverse();
    out
}

/// The longest chain of the coded frames' `pairs`, with the other pairs (decoder
/// configurations) that fit in it, taken in order. A server sends a player its
/// configurations as it joins, not where the publisher sent them: crossed with the frames
/// after them, they must not push those frames out of the chain.
fn frames_first(pairs: &[(usize, usize)], frame: impl Fn(usize) -> bool) -> Vec<(usize, usize)> {
    let frames: Vec<(usize, usize)> = pairs.iter().copied().filter(|p| frame(p.0)).collect();
    let chain = longest_chain(&frames);
    let mut out = Vec::with_capacity(chain.len());
    let (mut next, mut last_j) = (0, None);
    for &(i, j) in pairs {
        if frame(i) {
            if chain.get(next) == Some(&(i, j)) {
                out.push((i, j));
                last_j = Some(j);
                next += 1;
            }
        } else if last_j.is_none_or(|l| j > l) && chain.get(next).is_none_or(|n| j < n.1) {
            out.push((i, j));
            last_j = Some(j);
        }
    }
    out
}

/// The most common value give or take 1 ms, how many agree with it so, and how many there are.
fn mode(counts: &HashMap<i64, u32>) -> Option<(i64, u32, u32)> {
    let total = counts.values().sum();
    let near = |v: i64| (v - 1..=v + 1).filter_map(|x| counts.get(&x)).sum::<u32>();
    counts
        .iter()
        .map(|(&v, &c)| (near(v), c, std::cmp::Reverse(v)))
        .max()
        .map(|(agree, _, std::cmp::Reverse(v))| (v, agree, total))
}

/// Align the target `a` with the copy `b` (see the module's comment).
fn plan(a: &[Entry], b: &[Entry], marks_a: &HashSet<u64>, marks_b: &HashSet<u64>) -> Plan {
    let media = |e: &Entry| matches!(e.kind, 8 | 9);
    let mut count: HashMap<u64, (u32, u32, usize)> = HashMap::new();
    for (j, e) in b.iter().enumerate().filter(|(_, e)| media(e)) {
        let c = count.entry(e.hash).or_insert((0, 0, j));
        c.1 += 1;
    }
    for e in a.iter().filter(|e| media(e)) {
        if let Some(c) = count.get_mut(&e.hash) {
            c.0 += 1;
        }
    }
    // Anchors: bodies once in each, in the same order in both: the longest chain of such
    // pairs in order in both copies (a body that repeats, a periodic tone's frame, can be
    // once in each by chance, losses having taken its other copies, and out of order: such
    // pairs fall out of the chain).
    let pairs: Vec<(usize, usize)> = a
        .iter()
        .enumerate()
        .filter(|(_, e)| media(e))
        .filter_map(|(i, e)| match count.get(&e.hash) {
            Some(&(1, 1, j)) if b[j].kind == e.kind => Some((i, j)),
            _ => None,
        })
        .collect();
    let anchors = frames_first(&pairs, |i| a[i].frame);
    let mut matched: Vec<Option<usize>> = vec![None; a.len()];
    for &(i, j) in &anchors {
        matched[i] = Some(j);
    }
    // Between anchors: each copy may hold messages the other lost. Bodies once in each
    // segment are matched (they must come in the same order in both); what the copy holds
    // and this one does not, between two matched neighbours, is a run that may have been
    // lost here: (left neighbour, right neighbour, the copy's tags).
    let mut runs: Vec<(usize, usize, Vec<usize>)> = Vec::new();
    let mut inner: Vec<Option<usize>> = vec![None; a.len()];
    'segment: for w in anchors.windows(2) {
        let ((i1, j1), (i2, j2)) = (w[0], w[1]);
        let (sa, sb) = (i1 + 1..i2, j1 + 1..j2);
        if sb.len() > MAX_SEGMENT || sa.len() > MAX_SEGMENT {
            continue;
        }
        // A body of this segment twice in either copy's segment (a repeated silent frame)
        // could be matched with either: the alignment would be a guess. (Bodies only the
        // copy holds may repeat: they are all missing here.)
        let mut mine: HashMap<(u8, u64), usize> = HashMap::with_capacity(sa.len());
        for i in sa.clone() {
            if mine.insert((a[i].kind, a[i].hash), i).is_some() {
                continue 'segment;
            }
        }
        let mut bodies = HashSet::with_capacity(sa.len());
        for e in &b[sb.clone()] {
            let k = (e.kind, e.hash);
            if mine.contains_key(&k) && !bodies.insert(k) {
                continue 'segment;
            }
        }
        let mut seg_match = Vec::new();
        let mut seg_runs = Vec::new();
        let (mut left, mut missing) = (i1, Vec::new());
        for j in sb.clone() {
            match mine.get(&(b[j].kind, b[j].hash)) {
                Some(&i) if i > left => {
                    if !missing.is_empty() {
                        seg_runs.push((left, i, std::mem::take(&mut missing)));
                    }
                    seg_match.push((i, j));
                    left = i;
                }
                // In another order in the two copies: they differ otherwise than by loss.
                Some(_) => continue 'segment,
                None => missing.push(j),
            }
        }
        if !missing.is_empty() {
            seg_runs.push((left, i2, missing));
        }
        for (i, j) in seg_match {
            inner[i] = Some(j);
        }
        runs.extend(seg_runs);
    }
    // Times. Each copy's times can be wrong only from one of its gaps to the next (the time
    // a gap took, rebuilt), per kind; so the difference between the two copies' times of one
    // message is constant within a cell, a stretch between gaps of this copy crossed with
    // one of the other's, and it is the difference most anchors of the file show where both
    // are right.
    let slot = |k: u8| (k == 9) as usize;
    let stretches = |v: &[Entry], m: &HashSet<u64>| {
        let mut n = 0u32;
        v.iter()
            .map(|e| {
                n += (media(e) && m.contains(&e.hash)) as u32;
                n
            })
            .collect::<Vec<u32>>()
    };
    let (seg, seg_b) = (stretches(a, marks_a), stretches(b, marks_b));
    let mut all: HashMap<i64, u32> = HashMap::new();
    // (this copy's stretch, kind, the other's stretch) -> differences seen.
    let mut cells: HashMap<(u32, usize, u32), HashMap<i64, u32>> = HashMap::new();
    for &(i, j) in &anchors {
        let d = diff(a[i].ts, b[j].ts);
        *all.entry(d).or_default() += 1;
        let cell = (seg[i], slot(a[i].kind), seg_b[j]);
        *cells.entry(cell).or_default().entry(d).or_default() += 1;
    }
    let mut times: Vec<Option<u32>> = vec![None; a.len()];
    let mut stretch_moved = vec![false; a.len()];
    let mut shift_of: HashMap<(u32, usize), i64> = HashMap::new();
    // Per copy (this one, the other) and kind: each stretch's error, where it was found (a
    // ms or two included; a stretch two paths gave two errors left out).
    let mut found: [[HashMap<u32, i64>; 2]; 2] = Default::default();
    let wrong = |e: &i64| e.abs() > MIN_CORRECTION_MS;
    // Per kind: a cell whose anchors mostly agree says d - reference = (this stretch's
    // error) - (the other's). The cells joined through shared stretches give every error in
    // a group up to one constant; the constant taken is the one under which the most
    // anchors, of both copies' stretches, have no error (most times are right), so a wrong
    // stretch of the other copy is told from a wrong one of this copy. Each stretch of this
    // copy is then moved by its error. A stretch given two errors (by two paths) stays.
    // Both copies' first pictures (before any gap of either) are each sender's own times:
    // their difference is the one where both are right. Else the file's usual one.
    let reference = cells
        .get(&(0, 1, 0))
        .and_then(mode)
        .or_else(|| mode(&all))
        .map(|m| m.0);
    // Pictures first: their bodies are each one message, and a group of audio stretches
    // that cannot tell by itself which copy is wrong is told by them (below).
    for k in [1, 0] {
        let Some(reference) = reference else { break };
        let mut edges: Vec<(u32, u32, i64, u32)> = Vec::new();
        for ((sa, k_, sb), ds) in &cells {
            // An audio frame's body can come again (a steady tone), and be once in each
            // copy by chance: two must agree, or the one be off the file's usual
            // difference by no more than a few lost frames take (two copies' gaps close
            // together leave cells of one sound each; a body matched with a repeat of
            // itself is off by wherever in the stream that repeat was). A picture's is
            // one message.
            if *k_ == k
                && let Some((d, agree, total)) = mode(ds)
                && (agree >= 2 || k == slot(9) || (d - reference).abs() <= MAX_LONE_SOUND_MS)
                && agree * 2 > total
            {
                edges.push((*sa, *sb, d - reference, agree));
            }
        }
        edges.sort_unstable();
        // Errors up to the group's constant: u this copy's, w the other's (a walk through
        // the cells, each visited once).
        let mut u: HashMap<u32, (i64, u32)> = HashMap::new();
        let mut w: HashMap<u32, (i64, u32)> = HashMap::new();
        let mut of_a: HashMap<u32, Vec<usize>> = HashMap::new();
        let mut of_b: HashMap<u32, Vec<usize>> = HashMap::new();
        for (n, &(sa, sb, _, _)) in edges.iter().enumerate() {
            of_a.entry(sa).or_default().push(n);
            of_b.entry(sb).or_default().push(n);
        }
        let mut group = 0u32;
        for seed in edges.iter().map(|e| e.0).collect::<Vec<_>>() {
            if u.contains_key(&seed) {
                continue;
            }
            group += 1;
            u.insert(seed, (0, group));
            // (is this copy's, stretch)
            let mut todo = vec![(true, seed)];
            while let Some((mine, st)) = todo.pop() {
                let around = if mine { &of_a[&st] } else { &of_b[&st] };
                for &n in around {
                    let (sa, sb, e, _) = edges[n];
                    if mine && !w.contains_key(&sb) {
                        w.insert(sb, (u[&sa].0 - e, group));
                        todo.push((false, sb));
                    } else if !mine && !u.contains_key(&sa) {
                        u.insert(sa, (w[&sb].0 + e, group));
                        todo.push((true, sa));
                    }
                }
            }
        }
        // A stretch two paths give two errors (of this copy, and of the other).
        let (mut torn, mut torn_b) = (HashSet::new(), HashSet::new());
        for &(sa, sb, e, _) in &edges {
            if let (Some((x, _)), Some((y, _))) = (u.get(&sa), w.get(&sb))
                && (x - y - e).abs() > MIN_CORRECTION_MS
            {
                torn.insert(sa);
                torn_b.insert(sb);
            }
        }
        // Per group, the constant that leaves the most anchors without an error.
        let mut votes: HashMap<u32, HashMap<i64, u32>> = HashMap::new();
        for &(sa, sb, _, agree) in &edges {
            for (x, g) in [u.get(&sa).copied(), w.get(&sb).copied()]
                .into_iter()
                .flatten()
            {
                *votes.entry(g).or_default().entry(-x).or_default() += agree;
            }
        }
        // (Only where most of the group's anchors agree on it: else who is wrong is a guess.)
        // A group holding this copy's first stretch (before any of its gaps: the sender's
        // own times) takes that stretch as right.
        let mut constant: HashMap<u32, i64> = votes
            .iter()
            .filter_map(|(g, v)| mode(v).filter(|m| m.1 * 2 > m.2).map(|(c, _, _)| (*g, c)))
            .collect();
        if let Some(&(x, g)) = u.get(&0) {
            constant.insert(g, -x);
        }
        // Each group's stretches: (this copy's, stretch, error up to the constant).
        let mut members: HashMap<u32, Vec<(bool, u32, i64)>> = HashMap::new();
        for (mine, errs) in [(true, &u), (false, &w)] {
            for (&st, &(x, g)) in errs {
                members.entry(g).or_default().push((mine, st, x));
            }
        }
        // The picture error found for a stretch of this copy (`mine`) or the other.
        let picture_err = |mine: bool, st: u32| found[!mine as usize][1].get(&st).copied();
        if k == 0 {
            // Audio of a stretch that only one stretch of the other copy shares (the two
            // copies had gaps close together) gives a tie: either copy may be the one
            // wrong. A gap whose time was rebuilt wrong made both kinds after it wrong, as
            // a rule: the constant taken is then the one under which the stretches wrong
            // are the ones whose pictures were found wrong, where that is so for one only.
            let pictures_wrong =
                |mine: bool, st: u32| picture_err(mine, st).is_some_and(|e| wrong(&e));
            for (g, v) in &votes {
                if constant.contains_key(g) {
                    continue;
                }
                let Some(members) = members.get(g) else {
                    continue;
                };
                let most = v.values().copied().max().unwrap_or(0);
                if !members
                    .iter()
                    .any(|&(mine, st, _)| pictures_wrong(mine, st))
                {
                    continue;
                }
                // Each tied constant: the stretches it makes wrong are those whose
                // pictures are wrong, and no other.
                let fits: Vec<i64> = v
                    .iter()
                    .filter(|&(_, &n)| n == most)
                    .map(|(&c, _)| c)
                    .filter(|&c| {
                        members.iter().all(|&(mine, st, x)| {
                            ((x + c).abs() > MIN_CORRECTION_MS) == pictures_wrong(mine, st)
                        })
                    })
                    .collect();
                if let [c] = fits[..] {
                    constant.insert(*g, c);
                }
            }
        }
        // A group still undecided (as many anchors for either copy being the one wrong:
        // both copies had a gap between the same two anchors, and nothing joins it to the
        // stretches around it) takes, of the constants near as many anchors vote for, the
        // one under which fewer of the two copies' errors change from their stretch before
        // it whose error is known: a gap rebuilt wrong changes its own copy's error; two
        // rebuilt wrong at once, one in each copy, by the same amount, is the rarer thing.
        // Sounds with no stretch before them known take the one under which fewer of their
        // stretches are wrong otherwise than those stretches' pictures are.
        // (group, its first stretch of this copy, of the other), in this copy's order.
        let mut undecided: Vec<(u32, u32, u32)> = members
            .iter()
            .filter(|(g, _)| !constant.contains_key(g))
            .map(|(&g, m)| {
                let first = |side: bool| {
                    m.iter()
                        .filter(|x| x.0 == side)
                        .map(|x| x.1)
                        .min()
                        .unwrap_or(u32::MAX)
                };
                (g, first(true), first(false))
            })
            .collect();
        undecided.sort_unstable_by_key(|x| (x.1, x.2));
        for (g, fa, fb) in undecided {
            let (Some(v), Some(members)) = (votes.get(&g), members.get(&g)) else {
                continue;
            };
            // The error of the last stretch before `st` whose error is known.
            let before = |errs: &HashMap<u32, (i64, u32)>, torn: &HashSet<u32>, st: u32| {
                errs.iter()
                    .filter(|&(s, (_, h))| *s < st && !torn.contains(s) && constant.contains_key(h))
                    .max_by_key(|&(s, _)| *s)
                    .map(|(_, &(x, h))| x + constant[&h])
            };
            let changed = |x: Option<i64>, p: Option<i64>| match (x, p) {
                (Some(x), Some(p)) => ((x - p).abs() > MIN_CORRECTION_MS) as u32,
                _ => 0,
            };
            let (xa, xb) = (u.get(&fa).map(|x| x.0), w.get(&fb).map(|x| x.0));
            let (pa, pb) = (before(&u, &torn, fa), before(&w, &torn_b, fb));
            let near = |c: i64| (c - 1..=c + 1).filter_map(|x| v.get(&x)).sum::<u32>();
            let most = v.keys().map(|&c| near(c)).max().unwrap_or(0);
            let candidates: Vec<i64> = v.keys().copied().filter(|&c| near(c) * 2 >= most).collect();
            let cost = |c: i64| -> u32 {
                if pa.is_some() || pb.is_some() {
                    changed(xa.map(|x| x + c), pa) + changed(xb.map(|x| x + c), pb)
                } else if k == 0 {
                    members
                        .iter()
                        .map(|&(mine, st, x)| changed(Some(x + c), picture_err(mine, st)))
                        .sum()
                } else {
                    0
                }
            };
            let costs: Vec<(u32, i64)> = candidates.iter().map(|&c| (cost(c), c)).collect();
            let Some(&(least, _)) = costs.iter().min() else {
                continue;
            };
            let best: Vec<i64> = costs.iter().filter(|x| x.0 == least).map(|x| x.1).collect();
            let lo = best.iter().copied().min().unwrap_or(0);
            let hi = best.iter().copied().max().unwrap_or(0);
            // Only where the rest cost more: else it is a guess still.
            if hi - lo <= MIN_CORRECTION_MS && best.len() < costs.len() {
                let c = best
                    .iter()
                    .copied()
                    .max_by_key(|c| (v[c], std::cmp::Reverse(*c)));
                if let Some(c) = c {
                    constant.insert(g, c);
                }
            }
        }
        // Each stretch of this copy is moved by its error (a ms or two is the rounding of
        // the two copies' own clocks; a lost frame is tens of ms). The other copy's
        // stretches found wrong the same way: a frame taken from one of them is put in at
        // its time less that error.
        for (side, errs, torn) in [(0, u, &torn), (1, w, &torn_b)] {
            for (st, (x, g)) in errs {
                let Some(c) = constant.get(&g) else { continue };
                if torn.contains(&st) {
                    continue;
                }
                let err = x + c;
                found[side][k].insert(st, err);
                if side == 0 && wrong(&err) {
                    shift_of.insert((st, k), -err);
                }
            }
        }
    }
    // A move that would put a kind's times out of order (earlier than the tag of its kind
    // before, or later than the one after) is not made: that copy's times are never worse
    // than they were.
    loop {
        let mut wrong: HashSet<(u32, usize)> = HashSet::new();
        for k in 0..2 {
            let mut last: Option<(i64, (u32, usize))> = None;
            for (i, e) in a.iter().enumerate() {
                if !media(e) || slot(e.kind) != k || !e.frame {
                    continue;
                }
                let key = (seg[i], k);
                let t = e.ts as i64 + shift_of.get(&key).copied().unwrap_or(0);
                // Never before the file's start either.
                if t < 0 && shift_of.contains_key(&key) {
                    wrong.insert(key);
                }
                if let Some((lt, lkey)) = last
                    && t + MIN_CORRECTION_MS < lt
                    && lkey != key
                {
                    for x in [key, lkey] {
                        if shift_of.contains_key(&x) {
                            wrong.insert(x);
                        }
                    }
                }
                last = Some((t, key));
            }
        }
        if wrong.is_empty() {
            break;
        }
        for x in wrong {
            shift_of.remove(&x);
        }
    }
    let mut corrected = shift_of.len() as u64;
    let mut largest = shift_of.values().map(|c| c.abs()).max().unwrap_or(0);
    for (i, e) in a.iter().enumerate() {
        if media(e)
            && let Some(c) = shift_of.get(&(seg[i], slot(e.kind)))
        {
            times[i] = Some(e.ts.wrapping_add(*c as u32));
            stretch_moved[i] = true;
        }
    }
    // The copy's times, less the errors of its stretches where they were found.
    let bt = |j: usize| {
        let err = found[1][slot(b[j].kind)]
            .get(&seg_b[j])
            .filter(|e| wrong(e));
        b[j].ts.wrapping_sub(err.map_or(0, |&e| e as u32))
    };
    let clean =
        |from: usize, to: usize| !b[from + 1..=to].iter().any(|x| marks_b.contains(&x.hash));
    // The copy's first frame of each kind in each of its stretches.
    let mut first_b: HashMap<(u32, usize), usize> = HashMap::new();
    for (j, e) in b.iter().enumerate() {
        if media(e) && e.frame {
            first_b.entry((seg_b[j], slot(e.kind))).or_insert(j);
        }
    }
    // The first frames of a kind after a gap can be wrong where the rest of the stretch is
    // right (a delta re-applied before the time lost was known): a run of them, right after
    // a gap of this copy, whose times differ from the copy's by other than the frames
    // before and after them both do, takes the copy's times, where the copy had no gap
    // from the frame before the run to the run's last, and this copy's frames of the kind
    // stay in order.
    for k in 0..2 {
        let pairs: Vec<(usize, usize, i64)> = (0..a.len())
            .filter(|&i| media(&a[i]) && a[i].frame && slot(a[i].kind) == k)
            .filter_map(|i| {
                let j = matched[i].or(inner[i])?;
                let t = times[i].unwrap_or(a[i].ts);
                Some((i, j, diff(t, bt(j))))
            })
            .collect();
        let mut p = 1;
        while p + 1 < pairs.len() {
            let (ip, jp, d) = pairs[p - 1];
            let wrong = |x: &(usize, usize, i64)| (x.2 - d).abs() > MIN_CORRECTION_MS;
            if !wrong(&pairs[p]) || seg[ip] == seg[pairs[p].0] {
                p += 1;
                continue;
            }
            let q = (p..pairs.len().min(p + MAX_WRONG_AFTER_GAP + 1))
                .find(|&q| !wrong(&pairs[q]))
                .unwrap_or(pairs.len());
            let Some(&(iq, _, _)) = pairs.get(q) else {
                // Not a run of a few (a stretch that differs throughout): the ones after it
                // are looked at still.
                p += 1;
                continue;
            };
            let run = &pairs[p..q];
            let fixed: Vec<u32> = run.iter().map(|x| bt(x.1).wrapping_add(d as u32)).collect();
            // This copy's frames of the kind from the one before the run to the one after,
            // with the run's new times: still in order.
            let mut new_times = run.iter().map(|x| x.0).zip(fixed.iter().copied());
            let mut next_new = new_times.next();
            let mut last: Option<u32> = None;
            let mut in_order = true;
            for i in (ip..=iq).filter(|&i| media(&a[i]) && a[i].frame && slot(a[i].kind) == k) {
                let t = match next_new {
                    Some((n, t)) if n == i => {
                        next_new = new_times.next();
                        t
                    }
                    _ => times[i].unwrap_or(a[i].ts),
                };
                in_order &= last.is_none_or(|l| diff(t, l) > 0);
                last = Some(t);
            }
            let jl = run[run.len() - 1].1;
            // The copy had a gap there too: its times hold where none of the run is the
            // first of its kind after that gap (such a frame can be a delta early in the copy
            // as well), and the frame after the run, where the two agree, is in the same
            // stretch of the copy as the run.
            let first_of_kind = |j: usize| first_b.get(&(seg_b[j], k)) == Some(&j);
            let copy_holds = seg_b[jl] == seg_b[pairs[q].1]
                && run
                    .iter()
                    .all(|x| seg_b[x.1] == seg_b[jl] && !first_of_kind(x.1));
            if in_order && jp < jl && (clean(jp, jl) || copy_holds) {
                for (x, t) in run.iter().zip(fixed) {
                    largest = largest.max(x.2.saturating_sub(d).abs());
                    times[x.0] = Some(t);
                    stretch_moved[x.0] = false;
                }
                corrected += 1;
            }
            p = q + 1;
        }
    }
    // What is put in: coded frames only, where a gap came in this copy between the two
    // neighbours, at the copy's time from the neighbour before them (as corrected), or from
    // the one after them where the copy had a gap of its own in between; among this copy's
    // own tags between the neighbours, by time.
    let mut inserts = Vec::new();
    let at = |i: usize| times[i].unwrap_or(a[i].ts);
    // Frames of a kind come at least half their usual spacing apart (the median step
    // between this copy's frames of that kind): one put in nearer to a frame of its kind
    // has a time from a copy that is itself wrong there (both copies had a gap close
    // together), and ffmpeg's muxer, at the frame rate's time base, refuses two pictures a
    // ms apart.
    let near: [i64; 2] = std::array::from_fn(|k| {
        let mut steps: Vec<i64> = Vec::new();
        let mut last: Option<u32> = None;
        for (i, e) in a.iter().enumerate() {
            if media(e) && e.frame && slot(e.kind) == k {
                if let Some(l) = last {
                    steps.push(diff(at(i), l));
                }
                last = Some(at(i));
            }
        }
        steps.retain(|&d| d > 0);
        if steps.len() < 8 {
            return 1;
        }
        let mid = steps.len() / 2;
        (*steps.select_nth_unstable(mid).1 / 2).max(1)
    });
    // Whether this copy holds the copy's tag `j` somewhere.
    let held = |j: usize| count.get(&b[j].hash).is_some_and(|c| c.0 > 0);
    for (left, right, js) in runs {
        let gap = (left + 1..=right).any(|i| media(&a[i]) && marks_a.contains(&a[i].hash));
        if !gap {
            continue;
        }
        // None that this copy holds anywhere (a message is never put in twice): those were
        // not lost here, only sent in another order (a server sends a player the decoder
        // configurations as it joins, the publisher sent them before its first frames).
        // The rest must be coded frames.
        let js: Vec<usize> = js.into_iter().filter(|&j| !held(j)).collect();
        if js.is_empty() || !js.iter().all(|&j| b[j].frame) {
            continue;
        }
        let (Some(jl), Some(jr)) = (
            matched[left].or(inner[left]),
            matched[right].or(inner[right]),
        ) else {
            continue;
        };
        for j in js {
            // Its time from a neighbour of the copy, matched, with no gap of the copy in
            // between: one of its kind, or of the other where the errors of both kinds of
            // that stretch of the copy are known, before one of the other kind whose error
            // or its own is not (the two may differ by what a gap took from one kind only).
            let sure = |n: usize| {
                b[n].kind == b[j].kind || found[1].iter().all(|errs| errs.contains_key(&seg_b[j]))
            };
            let of_kind = |i: usize| media(&a[i]) && a[i].kind == b[j].kind;
            let back = (left.saturating_sub(MAX_NEIGHBOUR_STEPS)..=left)
                .rev()
                .filter(|&i| of_kind(i))
                .find_map(|i| matched[i].or(inner[i]).map(|n| (i, n)))
                .filter(|&(_, n)| n < j && clean(n, j));
            let ahead = (right..a.len().min(right + MAX_NEIGHBOUR_STEPS))
                .filter(|&i| of_kind(i))
                .find_map(|i| matched[i].or(inner[i]).map(|n| (i, n)))
                .filter(|&(_, n)| n > j && clean(j, n));
            let from = [
                Some((left, jl)).filter(|_| clean(jl, j) && sure(jl)),
                Some((right, jr)).filter(|_| clean(j, jr) && sure(jr)),
                back,
                ahead,
                Some((left, jl)).filter(|_| clean(jl, j)),
                Some((right, jr)).filter(|_| clean(j, jr)),
            ];
            let Some((i, n)) = from.into_iter().flatten().next() else {
                continue;
            };
            let ts = at(i).wrapping_add(bt(j).wrapping_sub(bt(n)));
            // Only between its neighbours' times: where they do not leave room for it, this
            // copy's times there are wrong (a gap's time not rebuilt) and it would go out
            // of order.
            if diff(ts, at(left)) < -1 || diff(ts, at(right)) > 1 {
                continue;
            }
            let before = (left + 1..right)
                .find(|&i| diff(at(i), ts) > 0)
                .unwrap_or(right);
            // Nor at or after the time of this copy's next tag of its kind: frames of a kind
            // come at rising times (ffmpeg's muxer refuses an audio frame at the time of the
            // one before). The tags before it are checked below, with the others put in.
            let kind = b[j].kind;
            let next = (before..a.len()).find(|&i| a[i].kind == kind && a[i].frame);
            if next.is_some_and(|n| diff(at(n), ts) < near[slot(kind)]) {
                continue;
            }
            inserts.push(Insert {
                before,
                from: j,
                ts,
            });
        }
    }
    inserts.sort_by_key(|x| (x.before, x.from));
    // The file as it will be, per kind: a tag put in that would come before the tag of its
    // kind ahead of it, or at its time (this copy's or another put in), is left out.
    let mut last: [Option<u32>; 2] = [None; 2];
    let mut next_insert = 0;
    let mut kept = vec![false; inserts.len()];
    for (i, e) in a.iter().enumerate() {
        while next_insert < inserts.len() && inserts[next_insert].before == i {
            let x = &inserts[next_insert];
            let k = slot(b[x.from].kind);
            if last[k].is_none_or(|l| diff(x.ts, l) >= near[k]) {
                last[k] = Some(x.ts);
                kept[next_insert] = true;
            }
            next_insert += 1;
        }
        if media(e) && e.frame {
            last[slot(e.kind)] = Some(at(i));
        }
    }
    let mut kept = kept.into_iter();
    inserts.retain(|_| kept.next().unwrap_or(false));
    Plan {
        inserts,
        times,
        stretch_moved,
        corrected,
        largest_ms: largest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sender's tags: audio every 23 ms and video every 40 ms, in time order, each body
    /// its own.
    fn sent(n: usize) -> Vec<Entry> {
        let mut v = Vec::new();
        let (mut ta, mut tv) = (0u32, 0u32);
        for i in 0..n {
            let (kind, ts) = if ta <= tv {
                ta += 23;
                (8, ta - 23)
            } else {
                tv += 40;
                (9, tv - 40)
            };
            v.push(Entry {
                kind,
                ts,
                hash: 1000 + i as u64,
                at: 0,
                len: 0,
                frame: true,
                key: false,
            });
        }
        v
    }

    /// A video and an audio decoder configuration, at 0.
    fn configurations() -> (Entry, Entry) {
        let config = |kind: u8, hash: u64| Entry {
            kind,
            ts: 0,
            hash,
            at: 0,
            len: 0,
            frame: false,
            key: false,
        };
        (config(9, 1), config(8, 2))
    }

    /// Every tag of `a` at the time `b` (the sender's) has for it, as `p` leaves it.
    fn at_copy_times(p: &Plan, a: &[Entry], b: &[Entry]) {
        for (i, e) in a.iter().enumerate() {
            let want = b.iter().find(|x| x.hash == e.hash).unwrap().ts;
            assert_eq!(p.times[i].unwrap_or(e.ts), want, "tag {i} {}", e.kind);
        }
    }

    /// The sender's tags `b` as a copy read them: those `lost` left out, and each one's
    /// time less `early` of it.
    fn read_as(
        b: &[Entry],
        lost: impl Fn(usize) -> bool,
        early: impl Fn(usize, &Entry) -> u32,
    ) -> Vec<Entry> {
        let mut a = Vec::new();
        for (i, e) in b.iter().enumerate() {
            if lost(i) {
                continue;
            }
            let mut e = *e;
            e.ts -= early(i, &e);
            a.push(e);
        }
        a
    }

    fn marks(hashes: &[u64]) -> HashSet<u64> {
        hashes.iter().copied().collect()
    }

    #[test]
    fn a_lost_frame_comes_back_between_identical_neighbours_at_the_copy_s_time() {
        let b = sent(40);
        let mut a = b.clone();
        a.remove(20);
        let p = plan(&a, &b, &marks(&[b[21].hash]), &HashSet::new());
        assert_eq!(
            p.inserts,
            vec![Insert {
                before: 20,
                from: 20,
                ts: b[20].ts
            }]
        );
        assert_eq!(p.corrected, 0);
        assert!(p.times.iter().all(Option::is_none));
    }

    #[test]
    fn a_configuration_crossed_with_a_frame_leaves_the_frame_in_the_chain() {
        // Pair 2 (a configuration) crosses pair 1 (a frame): either makes a chain of three.
        let pairs = [(0, 0), (1, 2), (2, 1), (3, 3)];
        assert_eq!(
            frames_first(&pairs, |i| i != 2),
            vec![(0, 0), (1, 2), (3, 3)]
        );
        // A configuration that fits stays; one out of order with the frames goes.
        let pairs = [(0, 0), (1, 1), (2, 3), (3, 2), (4, 4)];
        assert_eq!(
            frames_first(&pairs, |i| i == 0 || i == 4),
            vec![(0, 0), (1, 1), (2, 3), (4, 4)]
        );
    }

    #[test]
    fn a_player_s_lost_keyframe_comes_back_though_its_configurations_came_later() {
        // The publisher sent both configurations, then its first frames; the server sent the
        // player the audio configuration after the first audio frame. The player lost its
        // first picture (tag 1 of the frames): its gap came before that configuration.
        let frames = sent(40);
        let (video, audio) = configurations();
        let mut b = vec![video, audio];
        b.extend_from_slice(&frames);
        let mut a = vec![video, frames[0], audio];
        a.extend_from_slice(&frames[2..]);
        let p = plan(&a, &b, &marks(&[audio.hash]), &HashSet::new());
        assert_eq!(
            p.inserts,
            vec![Insert {
                before: 3,
                from: 3,
                ts: frames[1].ts
            }]
        );
    }

    #[test]
    fn a_configuration_held_elsewhere_does_not_keep_out_the_frame_lost_beside_it() {
        // The player lost the first picture, and got the audio configuration after the
        // frame that followed it: between its two first anchors the publisher holds that
        // configuration and the lost picture.
        let frames = &sent(41)[1..];
        let (video, audio) = configurations();
        let mut b = vec![video, audio];
        b.extend_from_slice(frames);
        let mut a = vec![video, frames[1], audio];
        a.extend_from_slice(&frames[2..]);
        let p = plan(&a, &b, &marks(&[frames[1].hash]), &HashSet::new());
        assert_eq!(
            p.inserts,
            vec![Insert {
                before: 1,
                from: 2,
                ts: frames[0].ts
            }]
        );
    }

    #[test]
    fn nothing_is_put_in_where_this_copy_had_no_gap() {
        let b = sent(40);
        let mut a = b.clone();
        a.remove(20);
        assert!(
            plan(&a, &b, &HashSet::new(), &HashSet::new())
                .inserts
                .is_empty()
        );
    }

    #[test]
    fn each_copy_lost_another_message_between_the_same_neighbours() {
        // This copy lost tag 20, the other tag 21: tag 20 goes in before tag 21, by time.
        let b0 = sent(40);
        let mut a = b0.clone();
        a.remove(20);
        let mut b = b0.clone();
        b.remove(21);
        let p = plan(&a, &b, &marks(&[b0[21].hash]), &HashSet::new());
        assert_eq!(
            p.inserts,
            vec![Insert {
                before: 20,
                from: 20,
                ts: b0[20].ts
            }]
        );
        // In another order in the two copies: not the same stream there, nothing put in.
        let mut c = b0.clone();
        c.swap(19, 18);
        c.remove(20);
        let mut a = b0.clone();
        a.remove(20);
        let p = plan(&a, &c, &marks(&[b0[21].hash]), &HashSet::new());
        assert!(p.inserts.is_empty(), "{p:?}");
    }

    #[test]
    fn repeated_bodies_only_the_copy_holds_still_come_back() {
        // Two identical silent frames lost here: nothing of this copy could be matched with
        // either, so both go in; a repeated body this copy holds too is a guess: nothing.
        let mut b = sent(40);
        b[20].hash = 5555;
        b[22].hash = 5555;
        let mut a = b.clone();
        a.drain(20..23);
        let p = plan(&a, &b, &marks(&[b[23].hash]), &HashSet::new());
        let put: Vec<usize> = p.inserts.iter().map(|x| x.from).collect();
        assert_eq!(put, vec![20, 21, 22]);
        let mut a = b.clone();
        a.remove(21);
        a.remove(21);
        let p = plan(&a, &b, &marks(&[b[23].hash]), &HashSet::new());
        assert!(p.inserts.is_empty(), "{p:?}");
    }

    #[test]
    fn a_pair_out_of_order_falls_out_of_the_chain() {
        let pairs = [(0, 0), (1, 9), (2, 1), (3, 2), (4, 3), (5, 10)];
        assert_eq!(
            longest_chain(&pairs),
            vec![(0, 0), (2, 1), (3, 2), (4, 3), (5, 10)]
        );
        assert!(longest_chain(&[]).is_empty());
    }

    #[test]
    fn which_copy_is_wrong_is_told_by_the_stretches_they_share() {
        // The other copy is wrong from its gap at tag 30 on; this one had a gap at tag 20
        // but its times are right: its stretch from 20 meets the other's stretch before 30
        // (right) and after (wrong): only the other's is wrong, nothing here moves.
        let a = sent(60);
        let mut b = a.clone();
        for e in &mut b[30..] {
            e.ts += 80;
        }
        let p = plan(&a, &b, &marks(&[a[20].hash]), &marks(&[b[30].hash]));
        assert!(p.times.iter().all(Option::is_none), "{p:?}");
        // Both copies' gaps at the same tag and one of them wrong after it: which one is a
        // guess, nothing moves.
        let p = plan(&a, &b, &marks(&[a[30].hash]), &marks(&[b[30].hash]));
        assert!(p.times.iter().all(Option::is_none), "{p:?}");
        // This copy wrong after its gap at 30, the other's gap at 20 with its times right:
        // this copy's stretch moves back.
        let mut w = a.clone();
        for e in &mut w[30..] {
            e.ts += 80;
        }
        let p = plan(&w, &a, &marks(&[a[30].hash]), &marks(&[a[20].hash]));
        for (i, e) in w.iter().enumerate() {
            assert_eq!(p.times[i].unwrap_or(e.ts), a[i].ts, "tag {i}");
        }
    }

    /// The file a plan makes: each kind's times never go back.
    fn in_order(a: &[Entry], b: &[Entry], p: &Plan) -> bool {
        let mut last = [0u32; 2];
        let mut ins = p.inserts.iter().peekable();
        for (i, e) in a.iter().enumerate() {
            while let Some(x) = ins.next_if(|x| x.before == i) {
                let k = (b[x.from].kind == 9) as usize;
                if x.ts + 1 < last[k] {
                    return false;
                }
                last[k] = x.ts;
            }
            let (k, t) = ((e.kind == 9) as usize, p.times[i].unwrap_or(e.ts));
            if t + 1 < last[k] {
                return false;
            }
            last[k] = t;
        }
        true
    }

    #[test]
    fn nothing_put_in_goes_back_in_time() {
        // This copy lost 10 tags and the time they took was not rebuilt (its times after the
        // gap are early), the other copy had a gap of its own there too: the lost tags'
        // times from the other copy do not fit between this copy's neighbours.
        let b0 = sent(60);
        let mut a: Vec<Entry> = b0.clone();
        a.drain(20..30);
        for e in &mut a[20..] {
            e.ts -= 100;
        }
        let untouched = Plan {
            inserts: Vec::new(),
            times: vec![None; a.len()],
            stretch_moved: vec![false; a.len()],
            corrected: 0,
            largest_ms: 0,
        };
        assert!(
            in_order(&a, &b0, &untouched),
            "the input itself is in order"
        );
        let mut b = b0.clone();
        b.remove(32);
        let p = plan(&a, &b, &marks(&[b0[30].hash]), &marks(&[b0[33].hash]));
        assert!(in_order(&a, &b, &p), "{p:?}");
        let p = plan(&a, &b, &marks(&[b0[30].hash]), &HashSet::new());
        assert!(in_order(&a, &b, &p), "{p:?}");
    }

    #[test]
    fn a_decoder_configuration_is_never_put_in() {
        let mut b = sent(40);
        b[20].frame = false;
        let mut a = b.clone();
        a.remove(20);
        assert!(
            plan(&a, &b, &marks(&[b[21].hash]), &HashSet::new())
                .inserts
                .is_empty()
        );
    }

    #[test]
    fn a_stretch_whose_gap_took_time_unseen_is_moved_onto_the_copy_s_times() {
        // Two frames lost (one of each kind) and their time not rebuilt: everything after
        // the gap is early by what they took, per kind.
        let b = sent(60);
        let mut a: Vec<Entry> = b.clone();
        let (la, lv) = (b[30], b[31]);
        assert_ne!(la.kind, lv.kind);
        a.drain(30..32);
        for e in &mut a[30..] {
            e.ts -= if e.kind == 8 { 23 } else { 40 };
        }
        let p = plan(&a, &b, &marks(&[b[32].hash]), &HashSet::new());
        at_copy_times(&p, &a, &b);
        assert_eq!(p.corrected, 2);
        assert_eq!(p.largest_ms, 40);
        let put: Vec<(usize, u32)> = p.inserts.iter().map(|x| (x.from, x.ts)).collect();
        assert_eq!(put, vec![(30, la.ts), (31, lv.ts)]);
    }

    #[test]
    fn a_stretch_with_one_picture_is_moved_by_it() {
        // Two pictures lost, one picture apart: the first gap's time was not rebuilt, the
        // second's was. Between the gaps the one picture is early by 40 ms, and it alone
        // says so: enough, a picture's body being sent once.
        let b = sent(60);
        let pictures: Vec<usize> = (30..60).filter(|&i| b[i].kind == 9).take(3).collect();
        let (v1, v2, v3) = (pictures[0], pictures[1], pictures[2]);
        let a = read_as(
            &b,
            |i| i == v1 || i == v3,
            |i, _| if i == v2 { 40 } else { 0 },
        );
        let p = plan(
            &a,
            &b,
            &marks(&[b[v1 + 1].hash, b[v3 + 1].hash]),
            &HashSet::new(),
        );
        at_copy_times(&p, &a, &b);
        let put: Vec<(usize, u32)> = p.inserts.iter().map(|x| (x.from, x.ts)).collect();
        assert_eq!(put, vec![(v1, b[v1].ts), (v3, b[v3].ts)]);
    }

    #[test]
    fn a_frame_from_the_copy_s_wrong_stretch_goes_in_at_its_time_less_the_error() {
        // The copy's video is 80 ms late after a gap of its own (its audio is right); this
        // copy lost a picture there, after an audio frame.
        let sender = sent(60);
        let mut b = sender.clone();
        for e in b[40..].iter_mut().filter(|e| e.kind == 9) {
            e.ts += 80;
        }
        let v = (50..60)
            .find(|&i| sender[i].kind == 9 && sender[i - 1].kind == 8)
            .unwrap();
        let mut a = sender.clone();
        a.remove(v);
        let p = plan(&a, &b, &marks(&[sender[v + 1].hash]), &marks(&[b[40].hash]));
        assert!(p.times.iter().all(Option::is_none), "{p:?}");
        let put: Vec<(usize, u32)> = p.inserts.iter().map(|x| (x.from, x.ts)).collect();
        assert_eq!(put, vec![(v, sender[v].ts)]);
    }

    /// A sender's tags, an audio frame `g` of them, the next audio frame `h`, and this copy:
    /// `g` lost, and `h` read a delta early, at `g`'s time.
    fn read_one_delta_early() -> (Vec<Entry>, usize, usize, Vec<Entry>) {
        let sender = sent(60);
        let g = (30..40).find(|&i| sender[i].kind == 8).unwrap();
        let h = (g + 1..60).find(|&i| sender[i].kind == 8).unwrap();
        let mut a = sender.clone();
        a[h].ts = sender[g].ts;
        a.remove(g);
        (sender, g, h, a)
    }

    /// The tags a plan moves: (index in this copy, new time).
    fn moved(p: &Plan) -> Vec<(usize, u32)> {
        p.times
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.map(|t| (i, t)))
            .collect()
    }

    #[test]
    fn a_frame_read_one_delta_early_takes_the_copy_s_time_past_a_gap_of_the_copy_s_own() {
        // As on two 5% captures' player: this copy lost an audio frame and the next came
        // at its time; the copy lost the message before it, so its first frame after its
        // gap is the one lost here, and the frame read early here is its second.
        let (sender, g, h, a) = read_one_delta_early();
        let mut b = sender.clone();
        b.remove(g - 1);
        let p = plan(
            &a,
            &b,
            &marks(&[sender[g + 1].hash]),
            &marks(&[sender[g].hash]),
        );
        assert_eq!(moved(&p), vec![(h - 1, sender[h].ts)]);
        let put: Vec<(u32, u32)> = p.inserts.iter().map(|x| (b[x.from].ts, x.ts)).collect();
        assert_eq!(put, vec![(sender[g].ts, sender[g].ts)]);
        // The frame read early here the copy's first of its kind after its gap: nothing.
        let p = plan(
            &a,
            &b,
            &marks(&[sender[g + 1].hash]),
            &marks(&[sender[h].hash]),
        );
        assert!(p.times.iter().all(Option::is_none), "{p:?}");
    }

    #[test]
    fn the_first_frame_after_a_gap_read_one_delta_early_takes_the_copy_s_time() {
        // This copy lost an audio frame; the next one re-applied the delta from before the
        // gap and came out at the lost one's time, while later frames were rebuilt right.
        let (sender, g, h, a) = read_one_delta_early();
        let after_gap = marks(&[sender[g + 1].hash]);
        let p = plan(&a, &sender, &after_gap, &HashSet::new());
        assert_eq!(moved(&p), vec![(h - 1, sender[h].ts)]);
        assert_eq!((p.corrected, p.largest_ms), (1, 23));
        let put: Vec<(usize, u32)> = p.inserts.iter().map(|x| (x.from, x.ts)).collect();
        assert_eq!(put, vec![(g, sender[g].ts)]);
        // Where the copy had a gap of its own there, its times are no better: nothing moves,
        // and the lost frame has no room.
        let p = plan(&a, &sender, &after_gap, &marks(&[sender[h].hash]));
        assert!(p.times.iter().all(Option::is_none), "{p:?}");
        assert!(p.inserts.is_empty(), "{p:?}");
    }

    #[test]
    fn the_copy_s_own_wrong_stretch_is_outvoted() {
        // The copy's times are wrong after a gap of its own, in the last third of this
        // copy's stretch from its gap on; this copy's are right: nothing of this copy moves.
        let a = sent(60);
        let mut b = a.clone();
        for e in &mut b[47..] {
            e.ts += 80;
        }
        let p = plan(&a, &b, &marks(&[a[20].hash]), &marks(&[b[40].hash]));
        assert!(p.times.iter().all(Option::is_none), "{p:?}");
    }

    /// A copy `a` of the sender's tags `b` that lost a picture and a sound at a gap (the
    /// picture first) whose time it did not rebuild, so that both kinds are early after it
    /// until its next gap (which lost one tag and was rebuilt right); `b` had gaps where the
    /// sound after the first picture after a's gap came, and at a's second gap. Returns
    /// `a`, `b`, and the two copies' marks.
    fn gaps_close_together() -> (Vec<Entry>, Vec<Entry>, HashSet<u64>, HashSet<u64>) {
        let b = sent(90);
        let kinds = |g: usize| [b[g].kind, b[g + 1].kind, b[g + 2].kind, b[g + 3].kind];
        let g = (20..60)
            .find(|&g| kinds(g) == [9, 8, 9, 8])
            .expect("V A V A");
        let h = g + 24;
        let a = read_as(
            &b,
            |i| i == g || i == g + 1 || i == h,
            |i, e| match (g + 2..h).contains(&i) {
                true if e.kind == 8 => 23,
                true => 40,
                false => 0,
            },
        );
        let marks_a = marks(&[b[g + 2].hash, b[h + 1].hash]);
        let marks_b = marks(&[b[g + 3].hash, b[h + 1].hash]);
        (a, b, marks_a, marks_b)
    }

    #[test]
    fn sound_only_one_stretch_of_the_copy_shares_is_moved_as_its_pictures_are() {
        // a's sound between its gaps is shared with one stretch of b alone, which shares no
        // other: by the sound alone, either copy could be the one 23 ms early. Its pictures
        // reach b's stretch before its gap too, and say a is the one early.
        let (a, b, marks_a, marks_b) = gaps_close_together();
        let p = plan(&a, &b, &marks_a, &marks_b);
        at_copy_times(&p, &a, &b);
        // The other way round, b's times are right and nothing of b moves.
        let q = plan(&b, &a, &marks_b, &marks_a);
        assert!(q.times.iter().all(Option::is_none), "{q:?}");
    }

    #[test]
    fn a_stretch_whose_sounds_each_share_a_stretch_of_the_copy_alone_is_moved_by_them() {
        // a lost a sound at a gap whose time it did not rebuild: its two sounds before its
        // next gap are 23 ms early. b had a gap where a's did and one between those two
        // sounds, so each of b's stretches holds one of them: a cell of one sound each, the
        // rest of both copies agreeing.
        let b = sent(90);
        let sounds: Vec<usize> = (30..90).filter(|&i| b[i].kind == 8).collect();
        let (g, x2) = (sounds[0], sounds[2]);
        let h = sounds[3];
        let a = read_as(
            &b,
            |i| i == g || i == h,
            |i, e| {
                if (g + 1..h).contains(&i) && e.kind == 8 {
                    23
                } else {
                    0
                }
            },
        );
        let p = plan(
            &a,
            &b,
            &marks(&[b[g + 1].hash, b[h + 1].hash]),
            &marks(&[b[g + 1].hash, b[x2].hash]),
        );
        at_copy_times(&p, &a, &b);
    }

    /// The sender's tags, and a copy that lost `g` and read every time after it `late` ms
    /// late (a gap rebuilt wrong early on: most of its file is wrong), both copies having
    /// lost `h` later (so no anchor joins their stretches across it).
    fn wrong_after_an_early_gap(late: u32) -> (Vec<Entry>, Vec<Entry>, Vec<Entry>, usize, usize) {
        let sender = sent(200);
        let (g, h) = (30, 100);
        let a: Vec<Entry> = sender
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != g && i != h)
            .map(|(i, e)| Entry {
                ts: e.ts + if i > g { late } else { 0 },
                ..*e
            })
            .collect();
        let b: Vec<Entry> = sender
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != h)
            .map(|(_, e)| *e)
            .collect();
        (sender, a, b, g, h)
    }

    #[test]
    fn most_of_a_file_wrong_after_an_early_gap_is_moved_back_past_a_gap_both_copies_had() {
        // Most anchors differ by 320 ms: that is a's error, as both copies' first pictures
        // (before any gap of either) tell. Past h, a's stretch shares no anchor with any
        // before: its error is the one that leaves both copies' errors as they were before h.
        let (sender, a, b, g, h) = wrong_after_an_early_gap(320);
        let marks_a = marks(&[sender[g + 1].hash, sender[h + 1].hash]);
        let marks_b = marks(&[sender[h + 1].hash]);
        let p = plan(&a, &b, &marks_a, &marks_b);
        at_copy_times(&p, &a, &sender);
        // The other way round: b is right throughout, and nothing of it moves.
        let q = plan(&b, &a, &marks_b, &marks_a);
        assert!(q.times.iter().all(Option::is_none), "{q:?}");
    }

    #[test]
    fn a_rewritten_copy_is_read_at_its_times_as_first_written() {
        let first = sent(12);
        // Rewritten: tags 4..8 moved 40 ms later, one put in before tag 8 (at the time of its
        // kind's tags around it), the rest as they were.
        let mut now: Vec<Entry> = first.clone();
        for e in &mut now[4..8] {
            e.ts += 40;
        }
        let mut put = first[7];
        put.hash = 77;
        now.insert(8, put);
        let each: Vec<Option<i64>> = (0..now.len())
            .map(|i| match i {
                4..8 => Some(40),
                8 => None,
                _ => Some(0),
            })
            .collect();
        let undo = Undo::of(&each).expect("few runs");
        assert_eq!(undo.runs.len(), 4);
        assert_eq!(undo.expand(now.len()), each);
        let seen = as_first_written(now.clone(), Some(&undo));
        for (i, e) in seen.iter().enumerate() {
            let want = match i {
                ..8 => first[i].ts,
                // Put in: moved back as the tag of its kind before it (tag 7) was.
                8 => put.ts - 40,
                _ => first[i - 1].ts,
            };
            assert_eq!(e.ts, want, "tag {i}");
        }
        // Never rewritten: as it is.
        assert_eq!(as_first_written(now.clone(), None), now);
        // Past the bound of runs, none are kept.
        let many: Vec<Option<i64>> = (0..2 * MAX_UNDO_RUNS + 2)
            .map(|i| Some(i as i64 % 2))
            .collect();
        assert!(Undo::of(&many).is_none());
    }
}
