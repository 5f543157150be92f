//! Where recovered streams go: FLV files in the output folder, and the report.

mod amf_json;
pub mod flv;
pub mod naming;
pub mod queue;
pub mod report;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use bytes::Bytes;

use crate::config::{LimitHits, Limits};

use crate::pipeline::Output;
use crate::rtmp::{Direction, TagKind, amf0, media};
use flv::{FlvWriter, TagOut};
use queue::{QueuedFile, WriteQueue};
use report::{ConnectionReport, Connections, Spool, StreamReport, TextKind};

/// Where one stream's FLV goes.
enum Target {
    /// A file in the folder, written by the writer thread (see [`queue`]).
    File(QueuedFile),
    /// Standard output or another pipe: written as it comes, the header never revisited.
    Pipe(Box<dyn Write + Send>),
}

impl Write for Target {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Target::File(f) => f.write(buf),
            Target::Pipe(p) => p.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Target::File(f) => f.flush(),
            Target::Pipe(p) => p.flush(),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Target::File(f) => f.write_vectored(bufs),
            Target::Pipe(p) => p.write_vectored(bufs),
        }
    }
}

impl TagOut for Target {
    // To a file, the batch goes to the writer thread as it is: large bodies are not copied.
    fn write_parts(&mut self, parts: Vec<Bytes>) -> io::Result<()> {
        match self {
            Target::File(f) => f.write_parts(parts),
            Target::Pipe(p) => p.write_parts(parts),
        }
    }

    fn hurry(&mut self) {
        if let Target::File(f) = self {
            f.hurry();
        }
    }
}

impl TagOut for Box<dyn Write + Send> {}

impl Seek for Target {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match self {
            Target::File(f) => f.seek(pos),
            Target::Pipe(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a pipe cannot seek",
            )),
        }
    }
}

/// The one stream that goes to a pipe instead of a file (`--stdout --stream NAME`).
struct Pipe {
    selector: String,
    /// Taken by the stream once it is chosen.
    out: Option<Box<dyn Write + Send>>,
    chosen: Option<(u64, u32)>,
    done: bool,
}

struct StreamOut {
    base_name: String,
    writer: Option<FlvWriter<Target>>,
    to_pipe: bool,
    /// The file's name in the folder and identity (device, inode), to open it again after
    /// it was closed for the open-file limit and be sure it is still ours.
    file: Option<(String, (u64, u64))>,
    /// When its file was last written (the sink's own clock).
    tick: u64,
    /// Timestamp that becomes 0 in the file.
    base_ts: Option<u32>,
    video_config: bool,
    audio_config: bool,
    /// The decoder configurations last seen (to lend to a stream that missed them).
    video_cfg: Option<bytes::Bytes>,
    audio_cfg: Option<bytes::Bytes>,
    /// Joined mid-stream without a video configuration: its first keyframe's hash, to find
    /// the same pictures (and so their configuration) in another connection of the input.
    missing_cfg_key: Option<u64>,
    /// Joined mid-stream: video frames before the first keyframe cannot be decoded.
    mid_stream: bool,
    wait_keyframe: bool,
    audio_note: bool,
    report: StreamReport,
}

impl StreamOut {
    /// The tag's time in the file: the first tag is at 0. A tag slightly before the first one
    /// (audio/video interleaving) stays at 0.
    fn file_time(&mut self, timestamp: u32) -> u32 {
        let base = *self.base_ts.get_or_insert(timestamp);
        let rel = timestamp.wrapping_sub(base);
        if (rel as i32) < 0 { 0 } else { rel }
    }
}

/// Writes one FLV file per stream into a folder and gathers the report.
pub struct FlvSink {
    dir: PathBuf,
    /// Looked up for every tag: foldhash, not SipHash.
    streams: foldhash::HashMap<(u64, u32), StreamOut>,
    finished: HashMap<u64, Vec<(u32, StreamReport)>>,
    /// Reports of ended connections, in the order they began, that wait for the end of the
    /// input (a stream of theirs may be lent a decoder configuration then), or all of them
    /// when there is no spool.
    waiting_end: BTreeMap<u64, ConnectionReport>,
    /// Reports of ended connections that wait for the SHA-256 of a file (a few: at most one
    /// file per core is hashed at a time).
    waiting_sum: BTreeMap<u64, ConnectionReport>,
    /// Where the reports of the other ended connections go (`spool_in`).
    spool: Option<Spool>,
    pipe: Option<Pipe>,
    flush_on_keyframes: bool,
    selection: Selection,
    /// Recent keyframes of streams whose decoder configuration is known, by content hash,
    /// with that configuration; oldest first in `keyframe_order` (at most [`MAX_KEYFRAMES`]).
    keyframes: HashMap<u64, Lender>,
    keyframe_order: VecDeque<u64>,
    /// Streams that joined mid-stream without their configuration, by the hash of their first
    /// keyframe, until a stream with the same keyframe and a configuration turns up.
    needs: HashMap<u64, Vec<(u64, u32)>>,
    /// Streams a configuration was found for, to write at the start of their files at the end
    /// (with `needs`, at most [`MAX_FIXES`]).
    fixes: HashMap<(u64, u32), Lender>,
    /// Connections with a stream in `needs` or `fixes`.
    fix_conns: HashSet<u64>,
    /// Count and describe only: no file is written (`rtmpsniff list`).
    dry: bool,
    /// Next suffix to try for file stems that were used more than once, so naming stays
    /// linear however many streams share a stem (a stem used once is not remembered: seeing it
    /// again costs one name that exists already). At most [`MAX_STEMS`].
    next_suffix: HashMap<String, u32>,
    /// Streams whose file is open, least recently written first.
    open: BTreeMap<u64, (u64, u32)>,
    tick: u64,
    open_files: usize,
    /// The writer thread, once a file is written, and how many bytes it may hold in flight.
    queue: Option<WriteQueue>,
    write_budget: usize,
    /// SHA-256 of every finished file, for the report (`--sha256`).
    hashing: Option<Hashing>,
    pub limit_hits: LimitHits,
}

/// File stems whose next suffix is remembered, at most.
const MAX_STEMS: usize = 65536;
/// Keyframes remembered to lend a configuration, at most.
const MAX_KEYFRAMES: usize = 16384;
/// Streams that can wait for a configuration to be lent, at most.
const MAX_FIXES: usize = 1024;

/// A stream whose decoder configuration another stream with the same pictures can borrow.
#[derive(Clone)]
struct Lender {
    from: (u64, u32),
    video: Option<Bytes>,
    audio: Option<Bytes>,
}

/// SHA-256 of the finished files, worked out on other threads. Reading a file back and hashing
/// it costs about as much as all the rest of the work on its bytes (so it is asked for, not
/// done by default), and nothing needs the sum before the report is written: the capture (a
/// live one above all) does not wait for it. At most one file per core is hashed at a time.
struct Hashing {
    /// File name (relative to the folder) and the thread working on it, oldest first.
    running: VecDeque<(String, JoinHandle<io::Result<Option<String>>>)>,
    done: HashMap<String, io::Result<Option<String>>>,
    limit: usize,
}

impl Hashing {
    fn new() -> Self {
        Hashing {
            running: VecDeque::new(),
            done: HashMap::new(),
            limit: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    fn start(&mut self, name: String, path: PathBuf, id: (u64, u64)) {
        while self.running.len() >= self.limit {
            self.join_oldest();
        }
        let job = path.clone();
        let spawned = std::thread::Builder::new()
            .name("sha256".into())
            .spawn(move || sha256_of(&job, id));
        match spawned {
            Ok(h) => self.running.push_back((name, h)),
            // No thread to be had: hash here.
            Err(_) => {
                let sum = sha256_of(&path, id);
                self.done.insert(name, sum);
            }
        }
    }

    fn join_oldest(&mut self) {
        if let Some((name, h)) = self.running.pop_front() {
            let sum = h
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the hashing thread panicked")));
            self.done.insert(name, sum);
        }
    }

    /// Take the sums worked out so far, without waiting.
    fn poll(&mut self) {
        while self.running.front().is_some_and(|(_, h)| h.is_finished()) {
            self.join_oldest();
        }
    }

    /// Wait for every sum.
    fn wait_all(&mut self) {
        while !self.running.is_empty() {
            self.join_oldest();
        }
    }

    /// Whether the sum of one of a connection's files is still being worked out.
    fn waited_for(&self, c: &ConnectionReport) -> bool {
        c.streams.iter().any(|r| {
            r.file
                .as_deref()
                .is_some_and(|f| self.running.iter().any(|(n, _)| n == f))
        })
    }

    /// Put the sums of a connection's files into its report.
    fn apply(&mut self, c: &mut ConnectionReport) {
        for r in &mut c.streams {
            // A file rewritten by `finish` was hashed again there: that sum stands.
            if r.sha256.is_some() {
                continue;
            }
            match r.file.as_ref().and_then(|f| self.done.remove(f)) {
                Some(Ok(sum)) => r.sha256 = sum,
                Some(Err(e)) => r.notes.push(format!("SHA-256 not worked out: {e}")),
                None => {}
            }
        }
    }
}

impl FlvSink {
    /// Output into `dir` (created if missing; earlier files in it are never touched).
    pub fn new(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(FlvSink::in_dir(dir.to_path_buf()))
    }

    fn in_dir(dir: PathBuf) -> Self {
        FlvSink {
            dir,
            streams: Default::default(),
            finished: HashMap::new(),
            waiting_end: BTreeMap::new(),
            waiting_sum: BTreeMap::new(),
            spool: None,
            pipe: None,
            flush_on_keyframes: false,
            selection: Selection::default(),
            keyframes: HashMap::new(),
            keyframe_order: VecDeque::new(),
            needs: HashMap::new(),
            fixes: HashMap::new(),
            fix_conns: HashSet::new(),
            dry: false,
            next_suffix: HashMap::new(),
            open: BTreeMap::new(),
            tick: 0,
            open_files: Limits::default().open_files,
            queue: None,
            write_budget: WriteQueue::BUDGET,
            hashing: None,
            limit_hits: LimitHits::default(),
        }
    }

    /// Write the first stream that `selector` names to `out` instead of a file. The selector is
    /// the stream name as the report shows it, `APP/NAME`, or the name without its query string.
    pub fn with_pipe(mut self, selector: &str, out: Box<dyn Write + Send>) -> Self {
        self.pipe = Some(Pipe {
            selector: selector.to_string(),
            out: Some(out),
            chosen: None,
            done: false,
        });
        self
    }

    /// An inventory: streams are described in the report, no file is written, no folder made.
    pub fn inventory() -> Self {
        let mut sink = FlvSink::in_dir(PathBuf::new());
        sink.dry = true;
        sink
    }

    /// Keep only the streams `selection` names.
    pub fn with_selection(mut self, selection: Selection) -> Self {
        self.selection = selection;
        self
    }

    /// Flush a file after each video keyframe, so a reader following it always has whole
    /// groups of pictures (for live capture; reading a file needs no such thing).
    pub fn flush_on_keyframes(mut self, on: bool) -> Self {
        self.flush_on_keyframes = on;
        self
    }

    /// Keep at most `n` files open at once (at least one).
    pub fn with_open_files(mut self, n: usize) -> Self {
        self.open_files = n.max(1);
        self
    }

    /// Let up to `bytes` of tags wait for the writer thread (a live capture absorbs bursts
    /// with it, instead of leaving packets in a kernel buffer that overflows).
    pub fn with_write_budget(mut self, bytes: usize) -> Self {
        self.write_budget = bytes;
        self
    }

    /// Work out the SHA-256 of each finished file for the report.
    pub fn with_sha256(mut self, on: bool) -> Self {
        self.hashing = on.then(Hashing::new);
        self
    }

    /// Keep the reports of ended connections in an unnamed file in `dir`, with `text` (the
    /// summary or table lines each gets), instead of memory: however many connections the
    /// input holds, memory holds a few bytes for each.
    pub fn spool_in(&mut self, dir: &Path, text: TextKind) -> io::Result<()> {
        self.spool = Some(Spool::new(dir, text)?);
        Ok(())
    }

    /// Write every waiting tag, and wait until the files on disk are up to date.
    pub fn flush(&mut self) -> io::Result<()> {
        for s in self.streams.values_mut() {
            if let Some(w) = s.writer.as_mut() {
                w.flush()?;
            }
        }
        self.wait_for_writes()
    }

    /// Hand every waiting tag to the writer thread, without waiting for it.
    pub fn write_pending(&mut self) -> io::Result<()> {
        for s in self.streams.values_mut() {
            if let Some(w) = s.writer.as_mut() {
                w.write_pending()?;
            }
        }
        Ok(())
    }

    /// Hand every waiting tag to the writer thread and have it write them now, without
    /// waiting for it (pipes are flushed); a write that failed since is reported.
    pub fn hand_over(&mut self) -> io::Result<()> {
        for s in self.streams.values_mut() {
            if let Some(w) = s.writer.as_mut() {
                if s.to_pipe {
                    w.flush()?;
                } else {
                    w.hand_over()?;
                }
            }
        }
        match &self.queue {
            Some(q) => q.error(),
            None => Ok(()),
        }
    }

    /// Wait until every write queued so far is made; the first that failed, if one did.
    fn wait_for_writes(&self) -> io::Result<()> {
        match &self.queue {
            Some(q) => q.wait(),
            None => Ok(()),
        }
    }

    /// The writer thread, started on first use.
    fn queue(&mut self) -> io::Result<&mut WriteQueue> {
        if self.queue.is_none() {
            self.queue = Some(WriteQueue::with_budget(self.write_budget)?);
        }
        Ok(self.queue.as_mut().expect("just set"))
    }

    /// The piped stream ended, or the pipe's reader went away.
    pub fn pipe_done(&self) -> bool {
        self.pipe.as_ref().is_some_and(|p| p.done)
    }

    /// Streams with a file (or the pipe) open.
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// What is known of a stream, open or closed.
    pub fn stream_report(&self, conn: u64, stream: u32) -> Option<&StreamReport> {
        if let Some(s) = self.streams.get(&(conn, stream)) {
            return Some(&s.report);
        }
        self.finished
            .get(&conn)?
            .iter()
            .find(|(id, _)| *id == stream)
            .map(|(_, r)| r)
    }

    /// Make room for one more open file: close the least recently written one.
    fn make_room(&mut self) -> io::Result<()> {
        while self.open.len() >= self.open_files {
            let Some((_, key)) = self.open.pop_first() else {
                break;
            };
            self.limit_hits.open_files += 1;
            if let Some(w) = self.streams.get_mut(&key).and_then(|s| s.writer.as_mut()) {
                w.suspend()?;
            }
        }
        Ok(())
    }

    /// Make sure the stream `key` has its file open, creating it on first use.
    fn open_file(&mut self, key: (u64, u32)) -> io::Result<()> {
        let Some(s) = self.streams.get(&key) else {
            return Ok(());
        };
        if s.writer.as_ref().is_some_and(|w| w.is_open()) {
            self.open.remove(&s.tick);
        } else {
            self.make_room()?;
            self.queue()?;
            let queue = self.queue.as_mut().expect("started above");
            let s = self.streams.get_mut(&key).expect("looked up above");
            let reopened = match (&s.file, s.writer.as_mut()) {
                (Some((name, id)), Some(w)) => match reopen(&self.dir.join(name), *id)? {
                    Some(f) => {
                        w.resume(Target::File(queue.open(f, w.bytes())?));
                        true
                    }
                    None => {
                        // Something else took the file's place: carry on in a new file.
                        let old = s.writer.take().expect("matched");
                        old.finish()?;
                        s.report.notes.push(format!(
                            "{name} was replaced by another file while rtmpsniff wrote it; \
                             the stream goes on in a new file"
                        ));
                        false
                    }
                },
                _ => false,
            };
            if !reopened {
                let (file, name) = create_unique(&self.dir, &s.base_name, &mut self.next_suffix)?;
                let meta = file.metadata()?;
                // The header is written here, not queued: from now on a kill leaves a file
                // players open.
                let mut file = file;
                file.write_all(&flv::HEADER)?;
                let len = flv::HEADER.len() as u64;
                s.writer = Some(FlvWriter::after_header(Target::File(
                    queue.open(file, len)?,
                )));
                s.report.file.get_or_insert_with(|| name.clone());
                if s.report.file.as_deref() != Some(name.as_str()) {
                    s.report.more_files.push(name.clone());
                }
                s.file = Some((name, (meta.dev(), meta.ino())));
            }
        }
        self.tick += 1;
        let s = self.streams.get_mut(&key).expect("looked up above");
        s.tick = self.tick;
        self.open.insert(self.tick, key);
        Ok(())
    }

    /// A stream is over: finish its file and keep its report.
    fn close_stream(&mut self, conn: u64, stream: u32) -> io::Result<()> {
        if let Some(s) = self.streams.remove(&(conn, stream)) {
            if s.to_pipe
                && let Some(p) = &mut self.pipe
            {
                p.done = true;
            }
            self.open.remove(&s.tick);
            let file = s.file.clone().filter(|_| s.writer.is_some() && !s.to_pipe);
            let r = close(s, &self.dir, self.queue.as_mut())?;
            if let (Some((name, id)), Some(h)) = (file, self.hashing.as_mut()) {
                // `close` waited for the file's last write.
                let path = self.dir.join(&name);
                h.start(name, path, id);
            }
            self.finished.entry(conn).or_default().push((stream, r));
        }
        Ok(())
    }

    pub fn handle(&mut self, o: Output) -> io::Result<()> {
        match o {
            Output::StreamStarted {
                conn,
                client,
                app,
                stream,
                msid,
                direction,
                name,
                mid_stream,
                ..
            } => {
                if !self
                    .selection
                    .keeps(app.as_deref(), name.as_deref(), client, direction)
                {
                    return Ok(());
                }
                let base_name = file_stem(app.as_deref(), name.as_deref(), msid, client, direction);
                let to_pipe = self.pipe.as_mut().is_some_and(|p| {
                    let take =
                        p.chosen.is_none() && selects(&p.selector, app.as_deref(), name.as_deref());
                    if take {
                        p.chosen = Some((conn, stream));
                    }
                    take
                });
                self.streams.insert(
                    (conn, stream),
                    StreamOut {
                        base_name,
                        writer: None,
                        to_pipe,
                        file: None,
                        tick: 0,
                        base_ts: None,
                        video_config: false,
                        audio_config: false,
                        video_cfg: None,
                        audio_cfg: None,
                        missing_cfg_key: None,
                        mid_stream,
                        wait_keyframe: mid_stream,
                        audio_note: false,
                        report: StreamReport {
                            key: (conn, stream),
                            name: name.as_deref().map(naming::escape),
                            name_in_file: name.as_deref().map(naming::sanitize),
                            direction: direction.as_str(),
                            message_stream_id: msid,
                            ..Default::default()
                        },
                    },
                );
            }
            Output::Tag {
                conn,
                stream,
                kind,
                timestamp,
                body,
                frame,
            } => {
                let Some(s) = self.streams.get_mut(&(conn, stream)) else {
                    return Ok(());
                };
                if !accept(s, kind, &body) {
                    return Ok(());
                }
                self.note_configuration(conn, stream, kind, &body);
                let Some(s) = self.streams.get_mut(&(conn, stream)) else {
                    return Ok(());
                };
                if self.dry {
                    let ts = s.file_time(timestamp);
                    let bytes =
                        s.report.bytes.max(flv::HEADER.len() as u64) + 15 + body.len() as u64;
                    s.report.record(bytes, timestamp, ts, frame);
                    return Ok(());
                }
                if s.writer.is_none() && s.to_pipe {
                    let Some(out) = self.pipe.as_mut().and_then(|p| p.out.take()) else {
                        // The pipe's reader went away: nothing more is written.
                        return Ok(());
                    };
                    s.writer = Some(FlvWriter::new(Target::Pipe(out))?);
                    s.report.file = Some("-".into());
                }
                if !s.to_pipe {
                    self.open_file((conn, stream))?;
                }
                let Some(s) = self.streams.get_mut(&(conn, stream)) else {
                    return Ok(());
                };
                let ts = s.file_time(timestamp);
                let w = s.writer.as_mut().expect("opened above");
                let mut res = w.tag_shared(kind, ts, &body);
                if res.is_ok() && s.to_pipe {
                    // A pipe is read as it is written (a player): no waiting for a buffer to fill.
                    res = w.flush();
                } else if res.is_ok()
                    && self.flush_on_keyframes
                    && kind == TagKind::Video
                    && media::video(&body).is_some_and(|i| i.keyframe && i.frame)
                {
                    // Whole groups of pictures reach the file at once; the capture does not
                    // wait for the write (a live capture that waits drops packets).
                    res = w.hand_over();
                }
                if let Err(e) = res {
                    if !s.to_pipe {
                        return Err(e);
                    }
                    // The reader of the pipe went away (a player was closed): the stream is
                    // over for it, and for this run.
                    s.writer = None;
                    s.report
                        .notes
                        .push(format!("standard output closed by its reader ({e})"));
                    if let Some(p) = &mut self.pipe {
                        p.done = true;
                    }
                    return Ok(());
                }
                let bytes = w.bytes();
                s.report.record(bytes, timestamp, ts, frame);
            }
            Output::StreamEnded { conn, stream } => self.close_stream(conn, stream)?,
            Output::ConnectionEnded(summary) => {
                let id = summary.id;
                // Streams still open when their connection ended (should not happen: the
                // session ends them), closed here all the same.
                let open: Vec<(u64, u32)> =
                    self.streams.keys().filter(|k| k.0 == id).copied().collect();
                for k in open {
                    self.close_stream(k.0, k.1)?;
                }
                let mut streams = self.finished.remove(&id).unwrap_or_default();
                streams.sort_by_key(|(sid, _)| *sid);
                // With a selection, a connection is reported for the streams it kept.
                let wanted = if self.selection.is_empty() {
                    summary.is_rtmp || !streams.is_empty()
                } else {
                    !streams.is_empty()
                };
                if wanted {
                    self.settle(ConnectionReport {
                        summary: *summary,
                        streams: streams.into_iter().map(|(_, r)| r).collect(),
                    })?;
                } else {
                    self.forget_fixes(id);
                }
                self.release_summed()?;
            }
        }
        Ok(())
    }

    /// An ended connection's report: into the spool, or kept until what it waits for comes.
    fn settle(&mut self, mut c: ConnectionReport) -> io::Result<()> {
        let id = c.summary.id;
        if self.spool.is_none() || self.fix_conns.contains(&id) {
            self.waiting_end.insert(id, c);
            return Ok(());
        }
        if let Some(h) = &mut self.hashing {
            if h.waited_for(&c) {
                self.waiting_sum.insert(id, c);
                return Ok(());
            }
            h.apply(&mut c);
        }
        match &mut self.spool {
            Some(sp) => sp.push(&c),
            None => Ok(()),
        }
    }

    /// Spool the reports whose sums have been worked out since.
    fn release_summed(&mut self) -> io::Result<()> {
        let Some(h) = &mut self.hashing else {
            return Ok(());
        };
        if self.waiting_sum.is_empty() {
            return Ok(());
        }
        h.poll();
        let ready: Vec<u64> = self
            .waiting_sum
            .iter()
            .filter(|(_, c)| !h.waited_for(c))
            .map(|(&id, _)| id)
            .collect();
        for id in ready {
            if let Some(mut c) = self.waiting_sum.remove(&id) {
                h.apply(&mut c);
                if let Some(sp) = &mut self.spool {
                    sp.push(&c)?;
                }
            }
        }
        Ok(())
    }

    /// A connection that is not reported: its streams wait for nothing.
    fn forget_fixes(&mut self, conn: u64) {
        if self.fix_conns.remove(&conn) {
            self.fixes.retain(|k, _| k.0 != conn);
            for v in self.needs.values_mut() {
                v.retain(|k| k.0 != conn);
            }
            self.needs.retain(|_, v| !v.is_empty());
        }
    }

    /// Remember decoder configurations and keyframes, to lend a configuration to a stream
    /// that joined mid-stream and carries the same pictures as another (a publisher and the
    /// players of its stream).
    fn note_configuration(&mut self, conn: u64, stream: u32, kind: TagKind, body: &bytes::Bytes) {
        use std::hash::{Hash, Hasher};
        let Some(s) = self.streams.get_mut(&(conn, stream)) else {
            return;
        };
        match kind {
            TagKind::Video => {
                let Some(i) = media::video(body) else { return };
                if i.config {
                    s.video_cfg = Some(body.clone());
                } else if i.keyframe && i.frame && i.needs_config {
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    body.hash(&mut h);
                    let h = h.finish();
                    if s.video_cfg.is_some() {
                        let lender = Lender {
                            from: (conn, stream),
                            video: s.video_cfg.clone(),
                            audio: s.audio_cfg.clone(),
                        };
                        // Streams that were waiting for these pictures get this configuration.
                        for k in self.needs.remove(&h).unwrap_or_default() {
                            self.fixes.insert(k, lender.clone());
                        }
                        if self.keyframes.insert(h, lender).is_none() {
                            self.keyframe_order.push_back(h);
                        }
                        while self.keyframe_order.len() > MAX_KEYFRAMES {
                            if let Some(old) = self.keyframe_order.pop_front() {
                                self.keyframes.remove(&old);
                            }
                        }
                    } else if s.mid_stream && s.missing_cfg_key.is_none() {
                        s.missing_cfg_key = Some(h);
                        let waiting =
                            self.fixes.len() + self.needs.values().map(Vec::len).sum::<usize>();
                        if waiting >= MAX_FIXES {
                            s.report.notes.push(format!(
                                "sequence headers not captured, and not looked for in other connections (more than {MAX_FIXES} streams needed them)"
                            ));
                        } else {
                            match self.keyframes.get(&h) {
                                Some(l) => {
                                    self.fixes.insert((conn, stream), l.clone());
                                }
                                None => self.needs.entry(h).or_default().push((conn, stream)),
                            }
                            self.fix_conns.insert(conn);
                        }
                    }
                }
            }
            TagKind::Audio => {
                if media::audio(body).is_some_and(|i| i.config) {
                    s.audio_cfg = Some(body.clone());
                }
            }
            TagKind::Script => {}
        }
    }

    /// End of the input: a stream that joined mid-stream without its decoder configuration,
    /// whose first keyframe another stream of the input also carried with one, gets that
    /// configuration written at the start of its file (so it decodes), and the report says so.
    /// Then every report still waiting goes to the spool.
    pub fn finish(&mut self) -> io::Result<()> {
        // What is rewritten here is read back: every write must be made first.
        self.wait_for_writes()?;
        if let Some(h) = &mut self.hashing {
            h.wait_all();
        }
        self.needs.clear();
        let mut fixes: Vec<((u64, u32), Lender)> = self.fixes.drain().collect();
        fixes.sort_by_key(|(k, _)| *k);
        for (key, lender) in fixes {
            let Some(report) = self
                .waiting_end
                .get_mut(&key.0)
                .and_then(|c| c.streams.iter_mut().find(|s| s.key == key))
            else {
                continue;
            };
            lend(&self.dir, report, &lender, self.hashing.is_some())?;
        }
        self.fix_conns.clear();
        if self.spool.is_some() {
            for c in self.take_waiting() {
                if let Some(sp) = &mut self.spool {
                    sp.push(&c)?;
                }
            }
        }
        Ok(())
    }

    /// Every report still waiting, in the order the connections began, with the sums of
    /// their files (once every sum is worked out).
    fn take_waiting(&mut self) -> Vec<ConnectionReport> {
        if let Some(h) = &mut self.hashing {
            h.wait_all();
        }
        let mut all: Vec<ConnectionReport> = std::mem::take(&mut self.waiting_end)
            .into_values()
            .chain(std::mem::take(&mut self.waiting_sum).into_values())
            .collect();
        all.sort_by_key(|c| c.summary.id);
        if let Some(h) = &mut self.hashing {
            for c in &mut all {
                h.apply(c);
            }
        }
        all
    }

    /// The connections seen, in the order they began (all in memory: a sink without a spool).
    pub fn into_connections(mut self) -> Vec<ConnectionReport> {
        self.take_waiting()
    }

    /// The connections seen, for the report: the spool when there is one (after
    /// [`finish`](Self::finish)), else the reports in memory.
    pub fn into_report_connections(mut self) -> Connections {
        match self.spool.take() {
            Some(sp) => Connections::Spooled(sp),
            None => Connections::Memory(self.into_connections()),
        }
    }
}

/// Write `lender`'s decoder configuration at the start of the stream's file (after the FLV
/// header), through a new file renamed over it, and say so in the report.
fn lend(dir: &Path, report: &mut StreamReport, lender: &Lender, sha256: bool) -> io::Result<()> {
    let Some(name) = report.file.clone() else {
        return Ok(());
    };
    let path = dir.join(&name);
    let mut old = match File::open(&path) {
        Ok(f) => f,
        Err(_) => return Ok(()),
    };
    let mut head = [0u8; flv::HEADER.len()];
    if io::Read::read_exact(&mut old, &mut head).is_err() {
        return Ok(());
    }
    // Our own file of this run, replaced whole through a new file renamed over it; copied a
    // block at a time, not read into memory.
    let (tmp, f) = create_unique_tmp(dir, "report", ".json.tmp")?;
    let mut f = io::BufWriter::new(f);
    let mut cfg = Vec::new();
    for (k, b) in [
        (TagKind::Video, &lender.video),
        (TagKind::Audio, &lender.audio),
    ] {
        if let Some(b) = b {
            let s = (b.len() as u32).to_be_bytes();
            cfg.extend_from_slice(&[k as u8, s[1], s[2], s[3], 0, 0, 0, 0, 0, 0, 0]);
            cfg.extend_from_slice(b);
            cfg.extend_from_slice(&(11 + b.len() as u32).to_be_bytes());
        }
    }
    f.write_all(&head)?;
    f.write_all(&cfg)?;
    let rest = io::copy(&mut old, &mut f)?;
    f.flush()?;
    drop(f);
    std::fs::rename(&tmp, &path)?;
    report.bytes = head.len() as u64 + cfg.len() as u64 + rest;
    if sha256 {
        let meta = std::fs::symlink_metadata(&path)?;
        report.sha256 = sha256_of(&path, (meta.dev(), meta.ino()))?;
    }
    report.notes.push(format!(
        "decoder configuration taken from connection {} stream {}, which carries the same pictures",
        lender.from.0, lender.from.1
    ));
    Ok(())
}

/// Count the tag and decide whether it goes in the file: coded frames wait for their decoder
/// configuration, as players need it first.
fn accept(s: &mut StreamOut, kind: TagKind, body: &[u8]) -> bool {
    let r = &mut s.report;
    match kind {
        TagKind::Video => {
            let Some(i) = media::video(body) else {
                return false;
            };
            r.video_codec.get_or_insert(i.codec);
            if (i.config || r.width.is_none())
                && let Some((w, h)) = media::video_dimensions(body)
            {
                r.width = Some(w);
                r.height = Some(h);
            }
            if i.config {
                s.video_config = true;
            } else if s.mid_stream {
                // Joined mid-stream: write from the first keyframe on, configuration or not
                // (the report says when it was not captured).
                if s.wait_keyframe && i.frame {
                    if !i.keyframe {
                        r.dropped_before_keyframe += 1;
                        return false;
                    }
                    s.wait_keyframe = false;
                    if i.needs_config && !s.video_config {
                        r.notes.push("video sequence header not captured".into());
                    }
                }
            } else if i.needs_config && !s.video_config {
                r.dropped_before_config += 1;
                return false;
            }
            if i.frame {
                r.video_frames += 1;
                r.keyframes += i.keyframe as u64;
            }
        }
        TagKind::Audio => {
            let Some(i) = media::audio(body) else {
                return false;
            };
            r.audio_codec.get_or_insert(i.codec);
            if let Some((rate, ch)) = media::audio_params(body)
                && (i.config || r.audio_rate.is_none())
            {
                r.audio_rate = Some(rate);
                r.audio_channels = Some(ch);
            }
            if i.config {
                s.audio_config = true;
            } else if s.mid_stream {
                if i.needs_config && !s.audio_config && !s.audio_note {
                    s.audio_note = true;
                    r.notes.push("audio sequence header not captured".into());
                }
            } else if i.needs_config && !s.audio_config {
                r.dropped_before_config += 1;
                return false;
            }
            if i.frame {
                r.audio_frames += 1;
            }
        }
        TagKind::Script => {
            r.script_tags += 1;
            if r.metadata.is_none() {
                let (vals, _) = amf0::decode_all(body, 16, 4096);
                if vals.first().and_then(|v| v.as_bytes()) == Some(b"onMetaData")
                    && let Some(m) = vals.get(1)
                {
                    let json = amf_json::to_json(m);
                    let num = |k: &str| {
                        json.get(k)
                            .and_then(|v| v.as_f64())
                            .filter(|v| *v >= 1.0 && *v < 65536.0)
                    };
                    if r.width.is_none()
                        && let (Some(w), Some(h)) = (num("width"), num("height"))
                    {
                        r.width = Some(w as u32);
                        r.height = Some(h as u32);
                    }
                    r.metadata = Some(json);
                }
            }
        }
    }
    true
}

/// Finish a stream's file (its last writes made when this returns) and its report.
fn close(s: StreamOut, dir: &Path, queue: Option<&mut WriteQueue>) -> io::Result<StreamReport> {
    let mut r = s.report;
    if let Some(mut w) = s.writer {
        r.bytes = w.bytes();
        if s.to_pipe {
            if let Err(e) = w.into_inner() {
                r.notes
                    .push(format!("standard output closed by its reader ({e})"));
            }
        } else {
            if !w.is_open()
                && let Some((name, id)) = &s.file
                && let Some(queue) = queue
                && let Some(f) = reopen(&dir.join(name), *id)?
            {
                // Opened again only to set the header's flags to what the file holds.
                let len = w.bytes();
                w.resume(Target::File(queue.open(f, len)?));
            }
            // Waits for the file's last write (flush).
            w.finish()?;
        }
    }
    if r.dropped_before_keyframe > 0 {
        r.notes.push(format!(
            "joined mid-stream: {} video frames before the first keyframe were left out",
            r.dropped_before_keyframe
        ));
    }
    if r.dropped_before_config > 0 {
        r.notes.push(format!(
            "sequence headers not captured: {} coded frames before the first one were left out",
            r.dropped_before_config
        ));
    }
    Ok(r)
}

/// SHA-256 of a finished file, read back (without following a link) if it is still ours.
fn sha256_of(path: &Path, id: (u64, u64)) -> io::Result<Option<String>> {
    use sha2::{Digest, Sha256};
    let Some(mut f) = reopen(path, id)? else {
        return Ok(None);
    };
    f.seek(SeekFrom::Start(0))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = io::Read::read(&mut f, &mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(Some(
        h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
    ))
}

/// Whether a `--stream` selector names this stream: its name as the report shows it, the name
/// without its query string, or `APP/NAME`.
fn selects(selector: &str, app: Option<&[u8]>, name: Option<&[u8]>) -> bool {
    let Some(name) = name else {
        return false;
    };
    let name = naming::escape(name);
    let bare = name.split('?').next().unwrap_or("");
    let app = app.map(naming::escape).unwrap_or_default();
    [
        name.clone(),
        bare.to_string(),
        format!("{app}/{name}"),
        format!("{app}/{bare}"),
    ]
    .iter()
    .any(|candidate| glob(selector.as_bytes(), candidate.as_bytes()))
}

/// Shell-style pattern match: `*` any run, `?` any one character, everything else itself.
pub fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// Which streams a run keeps (`--stream`, `--app`, `--client`, `--direction`); the others are
/// neither written nor reported.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Glob over the stream name, the name without its query string, or `APP/NAME`.
    pub stream: Option<String>,
    /// Glob over the application name.
    pub app: Option<String>,
    /// The client's address (`IP`) or address and port (`IP:PORT`).
    pub client: Option<String>,
    pub direction: Option<Direction>,
}

impl Selection {
    pub fn is_empty(&self) -> bool {
        self.stream.is_none()
            && self.app.is_none()
            && self.client.is_none()
            && self.direction.is_none()
    }

    fn keeps(
        &self,
        app: Option<&[u8]>,
        name: Option<&[u8]>,
        client: SocketAddr,
        d: Direction,
    ) -> bool {
        if self.direction.is_some_and(|x| x != d) {
            return false;
        }
        if let Some(c) = &self.client {
            let ip = client.ip().to_string();
            if *c != ip && *c != client.to_string() {
                return false;
            }
        }
        if let Some(a) = &self.app {
            let app = app.map(naming::escape).unwrap_or_default();
            if !glob(a.as_bytes(), app.as_bytes()) {
                return false;
            }
        }
        match &self.stream {
            Some(sel) => selects(sel, app, name),
            None => true,
        }
    }
}

/// `app_name_client-port_direction`, every part sanitised.
fn file_stem(
    app: Option<&[u8]>,
    name: Option<&[u8]>,
    msid: u32,
    client: SocketAddr,
    d: Direction,
) -> String {
    let app = naming::sanitize(app.unwrap_or(b"noapp"));
    let name = match name {
        Some(n) => naming::sanitize(n),
        None => format!("msid{msid}"),
    };
    let ip = naming::sanitize(client.ip().to_string().as_bytes());
    format!("{app}_{name}_{ip}-{}_{}", client.port(), d.as_str())
}

/// Open a file this sink created, again, to write at its end: never through a symbolic link,
/// never truncating, and only if it is still the same file (`None` otherwise).
fn reopen(path: &Path, id: (u64, u64)) -> io::Result<Option<File>> {
    let f = match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ELOOP) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let meta = f.metadata()?;
    if (meta.dev(), meta.ino()) != id {
        return Ok(None);
    }
    let mut f = f;
    f.seek(SeekFrom::End(0))?;
    Ok(Some(f))
}

/// Create `stem.flv` (or `stem-2.flv`, ...) without ever replacing or following anything that
/// is already there (`create_new` is O_CREAT|O_EXCL: it fails on any existing name, a symbolic
/// link included, dangling or not).
fn create_unique(
    dir: &Path,
    stem: &str,
    next_suffix: &mut HashMap<String, u32>,
) -> io::Result<(File, String)> {
    let first = next_suffix.get(stem).copied().unwrap_or(1);
    for n in first.. {
        let name = if n == 1 {
            format!("{stem}.flv")
        } else {
            format!("{stem}-{n}.flv")
        };
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join(&name))
        {
            Ok(f) => {
                if n > 1 {
                    if next_suffix.len() >= MAX_STEMS {
                        // Forget them all: a stem seen again then costs a look at the names
                        // it already has, once.
                        next_suffix.clear();
                    }
                    next_suffix.insert(stem.to_string(), n + 1);
                }
                return Ok((f, name));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("u32 names run out")
}

/// Write `report.json` (or `report-2.json`, ...) without replacing an earlier one. The report
/// appears whole or not at all: it is written under a temporary name, then linked to its
/// name (which, like `create_new`, fails rather than replace anything). Where the file system
/// has no hard links, it is written in place under its `create_new` name.
pub fn write_report(
    dir: &Path,
    json: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
) -> io::Result<PathBuf> {
    let name = |n: u32| {
        dir.join(if n == 1 {
            "report.json".to_string()
        } else {
            format!("report-{n}.json")
        })
    };
    let mut write = |f: &mut File| {
        let mut w = io::BufWriter::with_capacity(1 << 16, &mut *f);
        json(&mut w)?;
        w.write_all(b"\n")?;
        w.flush()?;
        drop(w);
        f.sync_all()
    };
    let (tmp, mut f) = create_unique_tmp(dir, "report", ".json.tmp")?;
    let linked = write(&mut f).map(|()| {
        for n in 1u32.. {
            match std::fs::hard_link(&tmp, name(n)) {
                Ok(()) => return Some(name(n)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(_) => return None,
            }
        }
        unreachable!("u32 names run out")
    });
    drop(f);
    let _ = std::fs::remove_file(&tmp);
    if let Some(path) = linked? {
        return Ok(path);
    }
    for n in 1u32.. {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(name(n))
        {
            Ok(mut f) => {
                write(&mut f)?;
                return Ok(name(n));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("u32 names run out")
}

/// A new hidden temporary file in `dir`, `.STEM-PID-K EXT`, open to read and write.
fn create_unique_tmp(dir: &Path, stem: &str, ext: &str) -> io::Result<(PathBuf, File)> {
    for k in 0u32.. {
        let path = dir.join(format!(".{stem}-{}-{k}{ext}", std::process::id()));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("u32 names run out")
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::sync::{Arc, Mutex};

    /// A pipe whose bytes the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn started(conn: u64, name: &[u8]) -> Output {
        Output::StreamStarted {
            conn,
            client: "127.0.0.1:40000".parse().unwrap(),
            server: "127.0.0.1:1935".parse().unwrap(),
            app: Some(b"live".to_vec()),
            stream: 0,
            msid: 1,
            direction: Direction::Publish,
            name: Some(name.to_vec()),
            mid_stream: false,
        }
    }

    fn keyframe(conn: u64, timestamp: u32) -> Output {
        // Sorenson H.263 keyframe: needs no decoder configuration.
        Output::Tag {
            conn,
            stream: 0,
            kind: TagKind::Video,
            timestamp,
            body: Bytes::from_static(&[0x12, 0, 0, 0x84, 0]),
            frame: 1,
        }
    }

    #[test]
    fn the_selected_stream_goes_to_the_pipe_and_the_others_to_files() {
        let dir = std::env::temp_dir().join(format!("rtmpsniff-sink-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let pipe = Shared::default();
        let mut sink = FlvSink::new(&dir)
            .unwrap()
            .with_pipe("live/cam1", Box::new(pipe.clone()))
            .flush_on_keyframes(true);
        sink.handle(started(1, b"other")).unwrap();
        sink.handle(started(2, b"cam1?token=x")).unwrap();
        for conn in [1, 2] {
            sink.handle(keyframe(conn, 1000)).unwrap();
        }
        // Handed to the writer on the keyframe: the file holds the tag soon, without an
        // explicit flush (the capture does not wait for the write).
        let file = dir.join(sink.stream_report(1, 0).unwrap().file.clone().unwrap());
        let mut tags = Vec::new();
        for _ in 0..500 {
            tags = flv::parse(&std::fs::read(&file).unwrap()).unwrap().1;
            if !tags.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(tags.len(), 1);
        // The pipe gets each tag as it comes.
        assert_eq!(flv::parse(&pipe.0.lock().unwrap()).unwrap().1.len(), 1);
        assert!(!sink.pipe_done());
        sink.handle(keyframe(2, 1040)).unwrap();
        sink.handle(Output::StreamEnded { conn: 2, stream: 0 })
            .unwrap();
        assert!(sink.pipe_done());
        let (flags, tags) = flv::parse(&pipe.0.lock().unwrap()).unwrap();
        assert_eq!((flags, tags.len(), tags[1].timestamp), (0x05, 2, 40));
        assert_eq!(sink.stream_report(2, 0).unwrap().file.as_deref(), Some("-"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn selectors() {
        let n = Some(&b"cam1?key=abc"[..]);
        let app = Some(&b"live"[..]);
        assert!(selects("cam1", app, n));
        assert!(selects("cam1?key=abc", app, n));
        assert!(selects("live/cam1", app, n));
        assert!(!selects("live/cam", app, n));
        assert!(!selects("other/cam1", app, n));
        assert!(!selects("cam1", app, None));
    }
}
