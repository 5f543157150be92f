//! Where recovered streams go: FLV files in the output folder, and the report.

pub mod flv;
mod fs;
mod hash;
mod lend;
pub mod naming;
pub mod queue;
pub mod report;
mod select;
mod target;
mod waiting;

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::config::{LimitHits, Limits};

use crate::pipeline::Output;
use crate::rtmp::{TagKind, amf0, media};
use flv::FlvWriter;
pub use fs::write_report;
use fs::{create_unique, reopen};
use hash::Hashing;
use lend::{Carried, Lending};
use queue::WriteQueue;
use report::{ConnectionReport, Connections, StreamReport, TextKind};
use select::file_stem;
pub use select::{Selection, glob};
use target::{Pipe, Target};
use waiting::Waiting;

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
    /// What lending a decoder configuration needs to know of the stream.
    carried: Carried,
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
    /// Reports of ended connections, until they go to the spool.
    waiting: Waiting,
    pipe: Option<Pipe>,
    flush_on_keyframes: bool,
    selection: Selection,
    /// Decoder configurations to lend to streams that joined mid-stream without theirs.
    lending: Lending,
    /// Count and describe only: no file is written (`rtmpsniff list`).
    dry: bool,
    /// Next suffix to try for file stems that were used more than once, so naming stays
    /// linear however many streams share a stem (a stem used once is not remembered: seeing it
    /// again costs one name that exists already). At most `fs::MAX_STEMS`.
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
            waiting: Waiting::default(),
            pipe: None,
            flush_on_keyframes: false,
            selection: Selection::default(),
            lending: Lending::default(),
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
        self.pipe = Some(Pipe::new(selector, out));
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
        self.waiting.spool_in(dir, text)
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
                let to_pipe = self
                    .pipe
                    .as_mut()
                    .is_some_and(|p| p.choose((conn, stream), app.as_deref(), name.as_deref()));
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
                        carried: Carried::default(),
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
                self.lending
                    .note_configuration((conn, stream), s, kind, &body);
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
                    let c = ConnectionReport {
                        summary: *summary,
                        streams: streams.into_iter().map(|(_, r)| r).collect(),
                    };
                    let for_end = self.lending.waits(id);
                    self.waiting.settle(c, for_end, self.hashing.as_mut())?;
                } else {
                    self.lending.forget(id);
                }
                self.waiting.release_summed(self.hashing.as_mut())?;
            }
        }
        Ok(())
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
        self.lending.finish(&self.dir, self.waiting.end(), sha256)?;
        self.waiting.finish(self.hashing.as_mut())
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
                    let json = amf0::to_json(m);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtmp::Direction;
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
}
