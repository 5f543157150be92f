//! Where recovered streams go: FLV files in the output folder, and the report.

mod amf_json;
pub mod flv;
mod fs;
mod hash;
pub mod html;
mod lend;
pub mod naming;
mod playable;
mod repair;
pub use playable::FileConfigs;
pub mod queue;
pub mod remux;
pub mod report;
mod select;
mod stream;
mod target;
mod waiting;

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::config::{LimitHits, Limits};
use crate::flow::{ConnId, StreamKey};
use crate::pipeline::Output;
use crate::rtmp::TagKind;
use flv::FlvWriter;
pub use fs::{fit_open_files, resolve_output_dir, write_page, write_report};
use hash::Hashing;
use lend::Lending;
use queue::WriteQueue;
use report::{ConnectionReport, ConnectionSummary, Connections, StreamReport, TextKind};
use select::file_stem;
pub use select::{Endpoint, Pattern, Selection};
use stream::{StreamOut, Tick};
use target::{Pipe, Target};
use waiting::Waiting;

/// Bytes of tags that may wait, across all streams, for files closed because of the open-file
/// limit. With more streams than open files, a closed file is opened again only once its
/// stream has a batch to write (or at a flush), not for every tag: 300 concurrent streams
/// with 256 open files had cost a million reopens.
pub const SUSPENDED_BYTES: usize = 32 << 20;

/// RTMP connections and streams the input held, whatever the selection kept (what a run
/// says when its selection matched nothing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    pub connections: u64,
    pub streams: u64,
}

/// Space kept in the output folder for the reports (see `FlvSink::ballast`).
pub const BALLAST_BYTES: u64 = 8 << 20;

/// Writes one FLV file per stream into a folder and gathers the report.
pub struct FlvSink {
    dir: PathBuf,
    /// Looked up for every tag: foldhash, not SipHash.
    streams: foldhash::HashMap<StreamKey, StreamOut>,
    finished: HashMap<ConnId, Vec<(u32, StreamReport)>>,
    /// Reports of ended connections, until they go to the spool.
    waiting: Waiting,
    pipe: Option<Pipe>,
    flush_on_keyframes: bool,
    selection: Selection,
    /// What the input held, whatever the selection kept.
    seen: Seen,
    /// Decoder configurations to lend to streams that joined mid-stream without theirs.
    lending: Lending,
    /// Messages lost in one copy of a stream taken from another at the end (`repair.rs`).
    repair: repair::Repair,
    /// Count and describe only: no file is written (`rtmpsniff list`).
    dry: bool,
    /// Next suffix to try for file stems that were used more than once, so naming stays
    /// linear however many streams share a stem (a stem used once is not remembered: seeing it
    /// again costs one name that exists already). At most `fs::MAX_STEMS`.
    next_suffix: HashMap<String, u32>,
    /// Streams whose file is open, least recently written first.
    open: BTreeMap<Tick, StreamKey>,
    /// Bytes of tags waiting in the writers of streams whose file is closed (for the open-file
    /// limit): at most [`SUSPENDED_BYTES`] in all, and less than a batch each.
    suspended_bytes: usize,
    tick: Tick,
    open_files: usize,
    /// The run's limits, which the report names.
    limits: Limits,
    /// The writer thread, once a file is written, and how many bytes it may hold in flight.
    queue: Option<WriteQueue>,
    write_budget: usize,
    /// SHA-256 of every finished file, for the report (`--sha256`).
    hashing: Option<Hashing>,
    pub limit_hits: LimitHits,
    /// Space held in the output folder from the start (an unnamed file), given back when the
    /// disk becomes full so that the reports can still be written.
    ballast: Option<std::fs::File>,
    /// The disk became full (what the file system said): no file is made or made longer.
    disk_full: Option<String>,
    /// Sequence headers from the analyst's file (`--config-from`), for streams without theirs.
    config_from: Option<FileConfigs>,
}

impl FlvSink {
    /// Output into `dir` (created if missing; earlier files in it are never touched).
    pub fn new(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut sink = FlvSink::in_dir(dir.to_path_buf());
        sink.ballast = fs::ballast(dir, BALLAST_BYTES);
        Ok(sink)
    }

    /// What went wrong with the output folder, for the report: the disk that became full.
    pub fn output_errors(&self) -> Vec<String> {
        let Some(why) = &self.disk_full else {
            return Vec::new();
        };
        let dropped = self
            .queue
            .as_ref()
            .and_then(|q| q.full())
            .map_or(0, |(_, d)| d);
        vec![format!(
            "{why}: from then on no FLV file was made or made longer ({dropped} bytes of tags \
             left out); every file ends at its last whole tag"
        )]
    }

    /// The disk is full: say so once, and give back the space held for the reports.
    fn note_full(&mut self, why: String) {
        if self.disk_full.is_none() {
            self.disk_full = Some(why);
            self.ballast = None;
        }
    }

    /// Whether the writer thread found the disk full since the last look.
    fn check_full(&mut self) {
        if self.disk_full.is_none()
            && let Some(q) = &self.queue
            && q.is_full()
        {
            let why = q
                .full()
                .map_or_else(|| "no space left".to_string(), |(m, _)| m);
            self.note_full(why);
        }
    }

    fn in_dir(dir: PathBuf) -> Self {
        FlvSink {
            dir,
            streams: Default::default(),
            finished: HashMap::new(),
            waiting: Waiting::default(),
            pipe: None,
            flush_on_keyframes: false,
            selection: Selection::default(),
            seen: Seen::default(),
            lending: Lending::default(),
            repair: repair::Repair::new(true),
            dry: false,
            next_suffix: HashMap::new(),
            open: BTreeMap::new(),
            suspended_bytes: 0,
            tick: Tick::default(),
            open_files: Limits::default().open_files,
            limits: Limits::default(),
            queue: None,
            write_budget: WriteQueue::BUDGET,
            hashing: None,
            limit_hits: LimitHits::default(),
            ballast: None,
            disk_full: None,
            config_from: None,
        }
    }

    /// Write the first stream that `selector` names to `out` instead of a file. The selector is
    /// matched against the stream name as the report shows it, `APP/NAME`, and the name
    /// without its query string.
    pub fn with_pipe(mut self, selector: &Pattern, out: Box<dyn Write + Send>) -> Self {
        self.pipe = Some(Pipe::new(selector, out));
        self
    }

    /// An inventory: streams are described in the report, no file is written, no folder made.
    pub fn inventory() -> Self {
        let mut sink = FlvSink::in_dir(PathBuf::new());
        sink.dry = true;
        sink.repair.enabled = false;
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

    /// The run's limits: what the report names, and the open-file limit.
    pub fn with_limits(mut self, limits: &Limits) -> Self {
        self.limits = limits.clone();
        self.with_open_files(limits.open_files)
    }

    /// Keep at most `n` files open at once (at least one).
    fn with_open_files(mut self, n: usize) -> Self {
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
    /// Streams without their decoder configuration may take it from `configs` (the
    /// analyst's file), where it fits their frames.
    pub fn with_config_from(mut self, configs: Option<FileConfigs>) -> Self {
        self.config_from = configs;
        self
    }

    /// Whether messages lost in one copy of a stream are taken from another copy in the
    /// input at the end (on unless `--no-repair`).
    pub fn with_repair(mut self, on: bool) -> Self {
        self.repair.enabled = on && !self.dry;
        self
    }

    pub fn with_sha256(mut self, on: bool) -> Self {
        self.hashing = on.then(Hashing::new);
        self
    }

    /// Keep the reports of ended connections in an unnamed file in `dir`, with `text` (the
    /// summary or table lines each gets), instead of memory: however many connections the
    /// input holds, memory holds a few bytes for each.
    pub fn spool_in(&mut self, dir: &Path, text: TextKind) -> io::Result<()> {
        self.waiting.spool_in(dir, text)
    }

    /// Write every waiting tag, and wait until the files on disk are up to date.
    pub fn flush(&mut self) -> io::Result<()> {
        self.reopen_held()?;
        for s in self.streams.values_mut() {
            if let Some(w) = s.writer.as_mut() {
                w.flush()?;
            }
        }
        self.wait_for_writes()
    }

    /// Open again the files of streams whose tags wait in memory (closed for the open-file
    /// limit), so that a flush puts every tag in its file.
    fn reopen_held(&mut self) -> io::Result<()> {
        if self.suspended_bytes == 0 {
            return Ok(());
        }
        let held: Vec<StreamKey> = self
            .streams
            .iter()
            .filter(|(_, s)| {
                s.writer
                    .as_ref()
                    .is_some_and(|w| !w.is_open() && w.waiting() > 0)
            })
            .map(|(k, _)| *k)
            .collect();
        for k in held {
            self.open_file(k)?;
            if let Some(w) = self.streams.get_mut(&k).and_then(|s| s.writer.as_mut()) {
                w.write_pending()?;
            }
        }
        Ok(())
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
        self.reopen_held()?;
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
    pub fn stream_report(&self, conn: ConnId, stream: u32) -> Option<&StreamReport> {
        if let Some(s) = self.streams.get(&StreamKey { conn, stream }) {
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
    fn open_file(&mut self, key: StreamKey) -> io::Result<()> {
        let Some(s) = self.streams.get(&key) else {
            return Ok(());
        };
        if s.writer.as_ref().is_some_and(|w| w.is_open()) {
            self.open.remove(&s.tick);
        } else {
            if let Some(w) = &s.writer {
                self.suspended_bytes = self.suspended_bytes.saturating_sub(w.waiting());
            }
            self.make_room()?;
            self.queue()?;
            let queue = self.queue.as_mut().expect("started above");
            let s = self.streams.get_mut(&key).expect("looked up above");
            s.open_file(&self.dir, queue, &mut self.next_suffix)?;
        }
        self.tick = self.tick.next();
        let s = self.streams.get_mut(&key).expect("looked up above");
        s.tick = self.tick;
        self.open.insert(self.tick, key);
        Ok(())
    }

    /// A stream is over: finish its file and keep its report.
    fn close_stream(&mut self, key: StreamKey) -> io::Result<()> {
        if let Some(s) = self.streams.remove(&key) {
            if s.to_pipe
                && let Some(p) = &mut self.pipe
            {
                p.done = true;
            }
            self.open.remove(&s.tick);
            if let Some(w) = s.writer.as_ref().filter(|w| !w.is_open()) {
                self.suspended_bytes = self.suspended_bytes.saturating_sub(w.waiting());
            }
            let file = s.file.clone().filter(|_| s.writer.is_some() && !s.to_pipe);
            let mut r = s.close(&self.dir, self.queue.as_mut())?;
            self.check_full();
            if !self.lending.waits_for(key) && self.disk_full.is_none() {
                // Nothing can be lent to it: what it lacks is built now, if it can be.
                playable::complete(&self.dir, &mut r, None, self.config_from.as_ref(), false)?;
            }
            if self.disk_full.is_some()
                && let Some((name, id)) = &file
                && let Ok(Some(f)) = fs::reopen(&self.dir.join(name), *id)
                && let Ok(m) = f.metadata()
                && m.len() < r.bytes
            {
                r.notes.push(format!(
                    "the disk became full: the file ends at its last whole tag ({} of {} bytes)",
                    m.len(),
                    r.bytes
                ));
                r.bytes = m.len();
            }
            if let (Some((name, id)), Some(h)) = (file, self.hashing.as_mut()) {
                // `close` waited for the file's last write.
                let path = self.dir.join(&name);
                h.start(name, path, id);
            }
            self.repair.closed(&r);
            self.finished
                .entry(key.conn)
                .or_default()
                .push((key.stream, r));
        }
        Ok(())
    }

    pub fn handle(&mut self, o: Output) -> io::Result<()> {
        let r = self.handle_one(o);
        self.check_full();
        r
    }

    fn handle_one(&mut self, o: Output) -> io::Result<()> {
        match o {
            o @ Output::StreamStarted { .. } => {
                self.stream_started(o);
                Ok(())
            }
            Output::Tag {
                conn,
                stream,
                kind,
                timestamp,
                body,
                frame,
                gaps,
            } => {
                let key = StreamKey { conn, stream };
                if gaps > 0
                    && let Some(s) = self.streams.get_mut(&key)
                {
                    s.gap_came();
                }
                self.tag(key, kind, timestamp, &body, frame, gaps)
            }
            Output::StreamEnded { conn, stream } => self.close_stream(StreamKey { conn, stream }),
            Output::ConnectionEnded(mut facts) => {
                // Timing reports belong to the streams, not the connection's warnings.
                let mut timing = Vec::new();
                facts.warnings.retain(|w| match w {
                    crate::rtmp::Warning::Timing { stream, report } => {
                        timing.push((*stream, report.clone()));
                        false
                    }
                    _ => true,
                });
                let summary = ConnectionSummary::new(&facts, &self.limits);
                self.connection_ended(summary, &timing)
            }
        }
    }

    /// A stream starts: kept if the selection keeps it, for the pipe if it is the one piped.
    fn stream_started(&mut self, o: Output) {
        let Output::StreamStarted {
            conn,
            client,
            app,
            stream,
            server,
            msid,
            role,
            name,
            mid_stream,
        } = o
        else {
            return;
        };
        self.seen.streams += 1;
        let (key, app, name) = (StreamKey { conn, stream }, app.as_deref(), name.as_deref());
        if !self.selection.keeps(app, name, (client, server), role) {
            return;
        }
        let base_name = file_stem(app, name, msid, client, role);
        let to_pipe = self.pipe.as_mut().is_some_and(|p| p.choose(key, app, name));
        let s = StreamOut::new(key, base_name, to_pipe, name, role, msid, mid_stream);
        self.streams.insert(key, s);
    }

    /// A tag of a stream: counted, and written if it goes in the file.
    fn tag(
        &mut self,
        key: StreamKey,
        kind: TagKind,
        timestamp: u32,
        body: &Bytes,
        frame: u64,
        gaps: u32,
    ) -> io::Result<()> {
        let Some(s) = self.streams.get_mut(&key) else {
            return Ok(());
        };
        if !s.accept(kind, body) {
            return Ok(());
        }
        if !self.dry && !s.to_pipe {
            self.repair.tag(key, gaps, kind as u8, body);
        }
        s.observe(kind, timestamp, body);
        self.lending.note_configuration(key, s, kind, body);
        if self.dry {
            s.count_only(timestamp, body.len(), frame);
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
        // A stream whose file was closed for the open-file limit keeps its tags until it has
        // a batch; then its file is opened again.
        let held = match &s.writer {
            Some(w) if !s.to_pipe && !w.is_open() => {
                w.can_hold(body.len()) && self.suspended_bytes + 15 + body.len() <= SUSPENDED_BYTES
            }
            _ => false,
        };
        if !s.to_pipe && s.writer.is_none() && self.disk_full.is_some() {
            // No new file on a full disk: the stream is counted, not written.
            s.count_only(timestamp, body.len(), frame);
            return Ok(());
        }
        if held {
            self.suspended_bytes += 15 + body.len();
        } else if !s.to_pipe {
            match self.open_file(key) {
                Err(e) if queue::is_no_space(&e) => {
                    self.note_full(e.to_string());
                    if let Some(s) = self.streams.get_mut(&key)
                        && s.writer.is_none()
                    {
                        s.count_only(timestamp, body.len(), frame);
                        return Ok(());
                    }
                }
                r => r?,
            }
        }
        let Some(s) = self.streams.get_mut(&key) else {
            return Ok(());
        };
        // Not written: the reader of the pipe went away, the piped stream is over.
        if !s.write(kind, timestamp, body, frame, self.flush_on_keyframes)?
            && let Some(p) = &mut self.pipe
        {
            p.done = true;
        }
        Ok(())
    }

    /// A connection is over: its report is made, of the streams the selection kept.
    fn connection_ended(
        &mut self,
        summary: ConnectionSummary,
        timing: &[(u32, crate::rtmp::timing::TimingReport)],
    ) -> io::Result<()> {
        let id = summary.id;
        // What the report would list without a selection.
        if summary.is_rtmp
            || self.finished.contains_key(&id)
            || self.streams.keys().any(|k| k.conn == id)
        {
            self.seen.connections += 1;
        }
        // Streams still open when their connection ended (should not happen: the
        // session ends them), closed here all the same.
        let open: Vec<StreamKey> = self
            .streams
            .keys()
            .filter(|k| k.conn == id)
            .copied()
            .collect();
        for k in open {
            self.close_stream(k)?;
        }
        let mut streams = self.finished.remove(&id).unwrap_or_default();
        streams.sort_by_key(|(sid, _)| *sid);
        for (sid, r) in &mut streams {
            if let Some((_, t)) = timing.iter().find(|(s, _)| s == sid) {
                r.timing = Some(report::StreamTiming::new(
                    t,
                    r.first_timestamp_ms.map(|f| f as u32),
                ));
            }
            r.settle_clean();
        }
        // With a selection, a connection is reported for the streams it kept.
        let wanted = if self.selection.is_empty() {
            summary.is_rtmp || !streams.is_empty()
        } else {
            !streams.is_empty()
        };
        if wanted {
            let c = ConnectionReport {
                summary,
                streams: streams.into_iter().map(|(_, r)| r).collect(),
            };
            let for_end = self.lending.waits(id) || self.repair.waits(id);
            self.waiting.settle(c, for_end, self.hashing.as_mut())?;
        } else {
            self.lending.forget(id);
        }
        self.waiting.release_summed(self.hashing.as_mut())
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
        let sha256 = self.hashing.is_some();
        self.lending.finish(
            &self.dir,
            self.waiting.end(),
            self.config_from.as_ref(),
            sha256,
        )?;
        self.repair.finish(&self.dir, self.waiting.end(), sha256)?;
        self.waiting.finish(self.hashing.as_mut())
    }

    /// RTMP connections and streams the input held, whatever the selection kept.
    pub fn seen(&self) -> Seen {
        self.seen
    }

    /// The connections seen, in the order they began (all in memory: a sink without a spool).
    pub fn into_connections(mut self) -> Vec<ConnectionReport> {
        self.waiting.take(self.hashing.as_mut())
    }

    /// The connections seen, for the report: the spool when there is one (after
    /// [`finish`](Self::finish)), else the reports in memory.
    pub fn into_report_connections(mut self) -> Connections {
        self.waiting.into_connections(self.hashing.as_mut())
    }
}

impl crate::pipeline::OutputSink for FlvSink {
    type Error = io::Error;

    fn output(&mut self, o: Output) -> io::Result<()> {
        self.handle(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtmp::Role;
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
            conn: ConnId(conn),
            client: "127.0.0.1:40000".parse().unwrap(),
            server: "127.0.0.1:1935".parse().unwrap(),
            app: Some(b"live".to_vec()),
            stream: 0,
            msid: 1,
            role: Role::Publish,
            name: Some(name.to_vec()),
            mid_stream: false,
        }
    }

    fn keyframe(conn: u64, timestamp: u32) -> Output {
        // Sorenson H.263 keyframe: needs no decoder configuration.
        Output::Tag {
            conn: ConnId(conn),
            stream: 0,
            kind: TagKind::Video,
            timestamp,
            body: Bytes::from_static(&[0x12, 0, 0, 0x84, 0]),
            frame: 1,
            gaps: 0,
        }
    }

    #[test]
    fn the_selected_stream_goes_to_the_pipe_and_the_others_to_files() {
        let dir = std::env::temp_dir().join(format!("rtmpsniff-sink-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let pipe = Shared::default();
        let mut sink = FlvSink::new(&dir)
            .unwrap()
            .with_pipe(&Pattern::new("live/cam1").unwrap(), Box::new(pipe.clone()))
            .flush_on_keyframes(true);
        sink.handle(started(1, b"other")).unwrap();
        sink.handle(started(2, b"cam1?token=x")).unwrap();
        for conn in [1, 2] {
            sink.handle(keyframe(conn, 1000)).unwrap();
        }
        // Handed to the writer on the keyframe: the file holds the tag soon, without an
        // explicit flush (the capture does not wait for the write).
        let file = dir.join(
            sink.stream_report(ConnId(1), 0)
                .unwrap()
                .file
                .clone()
                .unwrap(),
        );
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
        sink.handle(Output::StreamEnded {
            conn: ConnId(2),
            stream: 0,
        })
        .unwrap();
        assert!(sink.pipe_done());
        let (flags, tags) = flv::parse(&pipe.0.lock().unwrap()).unwrap();
        assert_eq!((flags, tags.len(), tags[1].timestamp), (0x05, 2, 40));
        assert_eq!(
            sink.stream_report(ConnId(2), 0).unwrap().file.as_deref(),
            Some("-")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
