//! Where recovered streams go: FLV files in the output folder, and the report.

pub mod flv;
pub mod naming;
pub mod report;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::config::{LimitHits, Limits};

use crate::pipeline::Output;
use crate::rtmp::{Direction, TagKind, media};
use flv::FlvWriter;
use report::{ConnectionReport, StreamReport};

struct StreamOut {
    base_name: String,
    writer: Option<FlvWriter<File>>,
    /// The file's name in the folder and identity (device, inode), to open it again after
    /// it was closed for the open-file limit and be sure it is still ours.
    file: Option<(String, (u64, u64))>,
    /// When its file was last written (the sink's own clock).
    tick: u64,
    /// Timestamp that becomes 0 in the file.
    base_ts: Option<u32>,
    video_config: bool,
    audio_config: bool,
    report: StreamReport,
}

/// Writes one FLV file per stream into a folder and gathers the report.
pub struct FlvSink {
    dir: PathBuf,
    streams: HashMap<(u64, u32), StreamOut>,
    finished: HashMap<u64, Vec<(u32, StreamReport)>>,
    connections: BTreeMap<u64, ConnectionReport>,
    used: HashSet<String>,
    /// Next suffix to try per file stem, so naming stays linear however many streams share
    /// a stem.
    next_suffix: HashMap<String, u32>,
    /// Streams whose file is open, least recently written first.
    open: BTreeMap<u64, (u64, u32)>,
    tick: u64,
    open_files: usize,
    pub limit_hits: LimitHits,
}

impl FlvSink {
    /// Output into `dir` (created if missing; earlier files in it are never touched).
    pub fn new(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(FlvSink {
            dir: dir.to_path_buf(),
            streams: HashMap::new(),
            finished: HashMap::new(),
            connections: BTreeMap::new(),
            used: HashSet::new(),
            next_suffix: HashMap::new(),
            open: BTreeMap::new(),
            tick: 0,
            open_files: Limits::default().open_files,
            limit_hits: LimitHits::default(),
        })
    }

    /// Keep at most `n` files open at once (at least one).
    pub fn with_open_files(mut self, n: usize) -> Self {
        self.open_files = n.max(1);
        self
    }

    /// Write every waiting tag, so the files on disk are up to date.
    pub fn flush(&mut self) -> io::Result<()> {
        for s in self.streams.values_mut() {
            if let Some(w) = s.writer.as_mut() {
                w.flush()?;
            }
        }
        Ok(())
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
            let s = self.streams.get_mut(&key).expect("looked up above");
            let reopened = match (&s.file, s.writer.as_mut()) {
                (Some((name, id)), Some(w)) => match reopen(&self.dir.join(name), *id)? {
                    Some(f) => {
                        w.resume(f);
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
                let (file, name) = create_unique(
                    &self.dir,
                    &s.base_name,
                    &mut self.used,
                    &mut self.next_suffix,
                )?;
                let meta = file.metadata()?;
                s.writer = Some(FlvWriter::new(file)?);
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
            self.open.remove(&s.tick);
            let r = close(s, &self.dir)?;
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
                ..
            } => {
                let base_name = file_stem(app.as_deref(), name.as_deref(), msid, client, direction);
                self.streams.insert(
                    (conn, stream),
                    StreamOut {
                        base_name,
                        writer: None,
                        file: None,
                        tick: 0,
                        base_ts: None,
                        video_config: false,
                        audio_config: false,
                        report: StreamReport {
                            name: name.as_deref().map(naming::escape),
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
                self.open_file((conn, stream))?;
                let Some(s) = self.streams.get_mut(&(conn, stream)) else {
                    return Ok(());
                };
                let base = *s.base_ts.get_or_insert(timestamp);
                let rel = timestamp.wrapping_sub(base);
                // A tag slightly before the first one (audio/video interleaving) stays at 0.
                let ts = if (rel as i32) < 0 { 0 } else { rel };
                let w = s.writer.as_mut().expect("opened above");
                w.tag(kind, ts, &body)?;
                let r = &mut s.report;
                r.bytes = w.bytes();
                r.first_timestamp.get_or_insert(timestamp);
                r.last_timestamp = Some(timestamp);
                r.duration_ms = r.duration_ms.max(ts as u64);
                r.first_frame.get_or_insert(frame);
                r.last_frame = Some(frame);
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
                if summary.is_rtmp || !streams.is_empty() {
                    self.connections.insert(
                        id,
                        ConnectionReport {
                            summary: *summary,
                            streams: streams.into_iter().map(|(_, r)| r).collect(),
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// The connections seen, in the order they began.
    pub fn into_connections(self) -> Vec<ConnectionReport> {
        self.connections.into_values().collect()
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
            if i.config {
                s.video_config = true;
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
            } else if i.needs_config && !s.audio_config {
                r.dropped_before_config += 1;
                return false;
            }
            if i.frame {
                r.audio_frames += 1;
            }
        }
        TagKind::Script => r.script_tags += 1,
    }
    true
}

fn close(s: StreamOut, dir: &Path) -> io::Result<StreamReport> {
    let mut r = s.report;
    if let Some(mut w) = s.writer {
        r.bytes = w.bytes();
        if !w.is_open()
            && let Some((name, id)) = &s.file
            && let Some(f) = reopen(&dir.join(name), *id)?
        {
            // Opened again only to set the header's flags to what the file holds.
            w.resume(f);
        }
        w.finish()?;
    }
    if r.dropped_before_config > 0 {
        r.notes.push(format!(
            "sequence headers not captured: {} coded frames before the first one were left out",
            r.dropped_before_config
        ));
    }
    Ok(r)
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
    used: &mut HashSet<String>,
    next_suffix: &mut HashMap<String, u32>,
) -> io::Result<(File, String)> {
    let first = next_suffix.get(stem).copied().unwrap_or(1);
    for n in first.. {
        let name = if n == 1 {
            format!("{stem}.flv")
        } else {
            format!("{stem}-{n}.flv")
        };
        if used.contains(&name) {
            continue;
        }
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join(&name))
        {
            Ok(f) => {
                used.insert(name.clone());
                next_suffix.insert(stem.to_string(), n + 1);
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
pub fn write_report(dir: &Path, json: &[u8]) -> io::Result<PathBuf> {
    let name = |n: u32| {
        dir.join(if n == 1 {
            "report.json".to_string()
        } else {
            format!("report-{n}.json")
        })
    };
    let write = |f: &mut File| {
        f.write_all(json)?;
        f.write_all(b"\n")?;
        f.sync_all()
    };
    let (tmp, mut f) = create_unique_tmp(dir)?;
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

/// A new hidden temporary file in `dir`.
fn create_unique_tmp(dir: &Path) -> io::Result<(PathBuf, File)> {
    for k in 0u32.. {
        let path = dir.join(format!(".report-{}-{k}.json.tmp", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("u32 names run out")
}
