//! Where recovered streams go: FLV files in the output folder, and the report.

pub mod flv;
pub mod naming;
pub mod report;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::pipeline::Output;
use crate::rtmp::{Direction, TagKind, media};
use flv::FlvWriter;
use report::{ConnectionReport, StreamReport};

struct StreamOut {
    base_name: String,
    writer: Option<FlvWriter<File>>,
    /// Timestamp that becomes 0 in the file.
    base_ts: Option<u32>,
    video_config: bool,
    audio_config: bool,
    /// Joined mid-stream: video frames before the first keyframe cannot be decoded.
    mid_stream: bool,
    wait_keyframe: bool,
    audio_note: bool,
    report: StreamReport,
}

/// Writes one FLV file per stream into a folder and gathers the report.
pub struct FlvSink {
    dir: PathBuf,
    streams: HashMap<(u64, u32), StreamOut>,
    finished: HashMap<u64, Vec<(u32, StreamReport)>>,
    connections: BTreeMap<u64, ConnectionReport>,
    used: HashSet<String>,
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
        })
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
                let base_name = file_stem(app.as_deref(), name.as_deref(), msid, client, direction);
                self.streams.insert(
                    (conn, stream),
                    StreamOut {
                        base_name,
                        writer: None,
                        base_ts: None,
                        video_config: false,
                        audio_config: false,
                        mid_stream,
                        wait_keyframe: mid_stream,
                        audio_note: false,
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
                if s.writer.is_none() {
                    let (file, rel) = create_unique(&self.dir, &s.base_name, &mut self.used)?;
                    s.writer = Some(FlvWriter::new(file)?);
                    s.report.file = Some(rel);
                }
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
            Output::StreamEnded { conn, stream } => {
                if let Some(s) = self.streams.remove(&(conn, stream)) {
                    let r = close(s)?;
                    self.finished.entry(conn).or_default().push((stream, r));
                }
            }
            Output::ConnectionEnded(summary) => {
                let id = summary.id;
                // Streams still open when their connection ended (should not happen: the
                // session ends them), closed here all the same.
                let open: Vec<(u64, u32)> =
                    self.streams.keys().filter(|k| k.0 == id).copied().collect();
                for k in open {
                    if let Some(s) = self.streams.remove(&k) {
                        let r = close(s)?;
                        self.finished.entry(id).or_default().push((k.1, r));
                    }
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
        TagKind::Script => r.script_tags += 1,
    }
    true
}

fn close(s: StreamOut) -> io::Result<StreamReport> {
    let mut r = s.report;
    if let Some(w) = s.writer {
        r.bytes = w.bytes();
        let mut f = w.finish()?;
        f.flush()?;
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

/// Create `stem.flv` (or `stem-2.flv`, ...) without ever replacing or following anything that
/// is already there.
fn create_unique(dir: &Path, stem: &str, used: &mut HashSet<String>) -> io::Result<(File, String)> {
    for n in 1u32.. {
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
                return Ok((f, name));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("u32 names run out")
}

/// Write `report.json` (or `report-2.json`, ...) without replacing an earlier one.
pub fn write_report(dir: &Path, json: &[u8]) -> io::Result<PathBuf> {
    for n in 1u32.. {
        let name = if n == 1 {
            "report.json".to_string()
        } else {
            format!("report-{n}.json")
        };
        let path = dir.join(name);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                f.write_all(json)?;
                f.write_all(b"\n")?;
                return Ok(path);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("u32 names run out")
}
