//! One stream being written: what goes in its file (and what the report counts), its times,
//! and its end.

use std::collections::HashMap;
use std::io;
use std::path::Path;

use bytes::Bytes;

use super::amf_json::{MAX_METADATA_JSON, MAX_METADATA_TEXT};
use super::flv::{self, FlvWriter};
use super::fs::{FileId, create_unique_with, reopen};
use super::lend::Carried;
use super::naming;
use super::queue::WriteQueue;
use super::report::StreamReport;
use super::target::Target;
use crate::flow::StreamKey;
use crate::rtmp::{Role, TagKind, amf0, media};

/// When a stream's file was last written to, counting up over the run: of the open files,
/// the one with the lowest tick is closed first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Tick(u64);

impl Tick {
    pub(super) fn next(self) -> Tick {
        Tick(self.0 + 1)
    }
}

pub(super) struct StreamOut {
    base_name: String,
    pub(super) writer: Option<FlvWriter<Target>>,
    pub(super) to_pipe: bool,
    /// The file's name in the folder and identity (device, inode), to open it again after
    /// it was closed for the open-file limit and be sure it is still ours.
    pub(super) file: Option<(String, FileId)>,
    /// When its file was last written (the sink's own clock).
    pub(super) tick: Tick,
    /// Timestamp that becomes 0 in the file.
    base_ts: Option<u32>,
    video_config: bool,
    audio_config: bool,
    /// What lending a decoder configuration needs to know of the stream.
    pub(super) carried: Carried,
    /// Joined mid-stream: video frames before the first keyframe cannot be decoded.
    mid_stream: bool,
    /// Bytes were lost before its decoder configurations came: they may have been lost, so
    /// its frames are kept instead of waiting for them (a configuration lent or built at
    /// the end goes at the start of the file).
    gapped: bool,
    wait_keyframe: bool,
    video_note: bool,
    audio_note: bool,
    /// What building a missing decoder configuration needs to see of the frames.
    seen: Seen,
    /// Enhanced RTMP tracks by (kind: 0 video, 1 audio; track id); reported only once a
    /// multitrack message was seen. At most 512 (track ids are one byte).
    tracks: std::collections::BTreeMap<(u8, u8), super::report::TrackReport>,
    multitrack: bool,
    pub(super) report: StreamReport,
}

/// Audio frames whose times are kept to tell an AAC sample rate, at most.
const RATE_FRAMES: usize = 64;

/// What the frames of a stream without its decoder configuration show (bounded).
#[derive(Default)]
struct Seen {
    video_needs_config: bool,
    audio_needs_config: bool,
    /// The first AAC raw frame's first bytes and its FLV audio header byte.
    aac_frame: Option<(u8, Vec<u8>)>,
    /// RTMP timestamps of the first AAC raw frames, in order.
    aac_times: Vec<u32>,
    /// The configuration record built from the first keyframe with SPS and PPS in band.
    avc_in_band: Option<(Vec<u8>, u8)>,
    /// HEVC's, from VPS, SPS and PPS in band.
    hevc_in_band: Option<HevcInBand>,
    /// The first keyframe that needed a configuration (at most [`KEYFRAME_KEPT`] bytes), to
    /// check a configuration from the analyst's file against.
    keyframe: Option<Bytes>,
}

/// An hvcC built from parameter sets in band: the sequence header's FLV body, the record,
/// its NAL length size, the profile and the level.
type HevcInBand = (Vec<u8>, Vec<u8>, u8, u8, u8);

/// The largest keyframe kept to check a configuration against.
const KEYFRAME_KEPT: usize = 256 << 10;

impl StreamOut {
    /// A stream that starts, its file named after `base_name` (not made yet).
    pub(super) fn new(
        key: StreamKey,
        base_name: String,
        to_pipe: bool,
        name: Option<&[u8]>,
        role: Role,
        msid: u32,
        mid_stream: bool,
    ) -> Self {
        StreamOut {
            base_name,
            writer: None,
            to_pipe,
            file: None,
            tick: Tick::default(),
            base_ts: None,
            video_config: false,
            audio_config: false,
            carried: Carried::default(),
            mid_stream,
            gapped: false,
            wait_keyframe: mid_stream,
            video_note: false,
            audio_note: false,
            seen: Seen::default(),
            tracks: Default::default(),
            multitrack: false,
            report: StreamReport {
                key,
                name: name.map(naming::escape),
                name_in_file: name.map(naming::sanitize),
                direction: role.as_str(),
                message_stream_id: msid,
                ..Default::default()
            },
        }
    }

    /// A gap in the capture came before the stream's next tag. Until its decoder
    /// configurations come, frames that need one no longer wait for it (it may have been
    /// lost). Pictures after a keyframe the gap took are kept too: they are what the
    /// capture holds, another copy may hold the keyframe, and a copy whose configuration
    /// was captured keeps them the same way.
    pub(super) fn gap_came(&mut self) {
        if !self.mid_stream {
            self.gapped = true;
        }
    }

    /// Whether its decoder configuration may be missing from the capture: it joined
    /// mid-stream, or bytes were lost before it came.
    pub(super) fn may_lack_config(&self) -> bool {
        self.mid_stream || self.gapped
    }

    /// The tag's time in the file: the first tag is at 0. A tag slightly before the first one
    /// (audio/video interleaving) stays at 0.
    pub(super) fn file_time(&mut self, timestamp: u32) -> u32 {
        let base = *self.base_ts.get_or_insert(timestamp);
        let rel = timestamp.wrapping_sub(base);
        if (rel as i32) < 0 { 0 } else { rel }
    }

    /// Count an accepted tag of `len` bytes as if it were written (an inventory writes none).
    pub(super) fn count_only(&mut self, timestamp: u32, len: usize, frame: u64) {
        let ts = self.file_time(timestamp);
        let bytes = self.report.bytes.max(flv::HEADER.len() as u64) + 15 + len as u64;
        self.report.record(bytes, timestamp, ts, frame);
    }

    /// Write an accepted tag to the stream's file or pipe, which is open. `Ok(false)` when
    /// the reader of the pipe went away: the stream is over for it (the report says so).
    pub(super) fn write(
        &mut self,
        kind: TagKind,
        timestamp: u32,
        body: &Bytes,
        frame: u64,
        flush_on_keyframes: bool,
    ) -> io::Result<bool> {
        let ts = self.file_time(timestamp);
        let w = self.writer.as_mut().expect("opened above");
        let mut res = w.tag_shared(kind, ts, body);
        if res.is_ok() && self.to_pipe {
            // A pipe is read as it is written (a player): no waiting for a buffer to fill.
            res = w.flush();
        } else if res.is_ok()
            && flush_on_keyframes
            && kind == TagKind::Video
            && media::video(body).is_some_and(|i| i.keyframe && i.frame)
        {
            // Whole groups of pictures reach the file at once; the capture does not
            // wait for the write (a live capture that waits drops packets).
            res = w.hand_over();
        }
        if let Err(e) = res {
            if !self.to_pipe {
                return Err(e);
            }
            // The reader of the pipe went away (a player was closed): the stream is
            // over for it, and for this run.
            self.writer = None;
            self.report
                .notes
                .push(format!("standard output closed by its reader ({e})"));
            return Ok(false);
        }
        let bytes = w.bytes();
        self.report.record(bytes, timestamp, ts, frame);
        Ok(true)
    }

    /// A tag that goes in the file, seen for what building a missing decoder configuration
    /// needs (only while none was captured; bounded).
    pub(super) fn observe(&mut self, kind: TagKind, timestamp: u32, body: &Bytes) {
        self.note_tracks(kind, body);
        match kind {
            TagKind::Video => {
                let Some(i) = media::video(body) else { return };
                if i.frame
                    && matches!(i.codec, "h264" | "hevc")
                    && body[0] & 0x80 == 0
                    && body.get(2..5).is_some_and(|c| c != [0, 0, 0])
                {
                    // A composition time: pictures are reordered (B-frames).
                    self.report.reordered = true
                }
                let seen = &mut self.seen;
                if i.frame && i.needs_config {
                    seen.video_needs_config = true;
                    if !self.video_config
                        && i.keyframe
                        && seen.keyframe.is_none()
                        && body.len() <= KEYFRAME_KEPT
                    {
                        seen.keyframe = Some(body.clone());
                    }
                    if !self.video_config
                        && seen.avc_in_band.is_none()
                        && i.keyframe
                        && i.codec == "h264"
                    {
                        seen.avc_in_band = media::avc_config_in_band(body);
                    }
                    if !self.video_config
                        && seen.hevc_in_band.is_none()
                        && i.keyframe
                        && i.codec == "hevc"
                    {
                        seen.hevc_in_band =
                            media::hevc_config_in_band(body).map(|(rec, len, profile, level)| {
                                (
                                    media::hevc_config_body(body, &rec),
                                    rec,
                                    len,
                                    profile,
                                    level,
                                )
                            });
                    }
                }
            }
            TagKind::Audio => {
                let Some(i) = media::audio(body) else { return };
                let seen = &mut self.seen;
                if i.frame && i.needs_config {
                    seen.audio_needs_config = true;
                    if !self.audio_config && i.codec == "aac" && body[0] >> 4 == 10 {
                        // The first frame whose first syntax element is a channel's: an
                        // encoder's first frame may begin with a fill element (ffmpeg's does).
                        let raw = body.get(2..).unwrap_or_default();
                        let tells = |r: &[u8]| media::aac_channels_of_frame(r).is_some();
                        let take = match &seen.aac_frame {
                            None => true,
                            Some((_, kept)) => !tells(kept) && tells(raw),
                        };
                        if take {
                            seen.aac_frame = Some((body[0], raw[..raw.len().min(16)].to_vec()));
                        }
                        if seen.aac_times.len() < RATE_FRAMES {
                            seen.aac_times.push(timestamp);
                        }
                    }
                }
            }
            TagKind::Script => {}
        }
    }

    /// Count the message in its track (Enhanced RTMP multitrack: each part in its own).
    fn note_tracks(&mut self, kind: TagKind, body: &[u8]) {
        let (video, k) = match kind {
            TagKind::Video => (true, 0u8),
            TagKind::Audio => (false, 1u8),
            TagKind::Script => return,
        };
        let mut put = |id: u8, codec: &'static str, frame: bool, params: Option<(u32, u32)>| {
            let t = self
                .tracks
                .entry((k, id))
                .or_insert_with(|| super::report::TrackReport {
                    kind: if video { "video" } else { "audio" },
                    track_id: id,
                    codec,
                    ..Default::default()
                });
            t.frames += frame as u64;
            if let Some((a, b)) = params {
                if video {
                    (t.width, t.height) = (Some(a), Some(b));
                } else {
                    (t.audio_rate, t.audio_channels) = (Some(a), Some(b.min(255) as u8));
                }
            }
        };
        if let Some(parts) = media::multitrack(body, video) {
            self.multitrack = true;
            for p in parts {
                put(p.id, p.codec, p.frame(video), p.params(video));
            }
            return;
        }
        let info = if video {
            media::video(body)
        } else {
            media::audio(body)
        };
        let Some(i) = info else { return };
        let params = if !i.config {
            None
        } else if video {
            media::video_dimensions(body)
        } else {
            media::audio_params(body).map(|(r, c)| (r, c as u32))
        };
        put(0, i.codec, i.frame, params);
    }

    /// Each kind's decoder configuration as the stream carried it, and the configurations
    /// that could be built for those it lacks (in the report, for the end).
    fn settle_configs(&mut self) {
        use super::report::{ConfigSource, Pending, Synthesised};
        let (seen, r) = (&self.seen, &mut self.report);
        let source = |frames: u64, captured: bool, needs: bool| {
            (frames > 0).then_some(if captured {
                ConfigSource::Captured
            } else if needs {
                ConfigSource::Missing
            } else {
                ConfigSource::NotNeeded
            })
        };
        r.decodable.video = source(r.video_frames, self.video_config, seen.video_needs_config);
        r.decodable.audio = source(r.audio_frames, self.audio_config, seen.audio_needs_config);
        let mut pending = Pending {
            keyframe: seen.keyframe.clone(),
            aac_channels: seen
                .aac_frame
                .as_ref()
                .and_then(|(_, raw)| media::aac_channels_of_frame(raw)),
            aac_rate: media::aac_rate_of_times(&seen.aac_times).map(|r| r.0),
            audio_header: seen.aac_frame.as_ref().map(|f| f.0),
            ..Default::default()
        };
        if r.decodable.video == Some(ConfigSource::Missing)
            && let Some((rec, len)) = &seen.avc_in_band
        {
            let mut body = vec![0x17, 0, 0, 0, 0];
            body.extend_from_slice(rec);
            let hex = hex(rec);
            pending.video = Some((
                Bytes::from(body),
                Synthesised {
                    kind: "video",
                    codec: "h264",
                    config: hex,
                    certain: vec![format!(
                        "SPS and PPS as the encoder sent them in band in a keyframe (profile {}, level {}), NAL unit lengths of {len} bytes (they divide the frame exactly)",
                        rec[1], rec[3]
                    )],
                    estimated: vec!["the first SPS and PPS seen stand for the whole stream".into()],
                },
            ));
        }
        if r.decodable.video == Some(ConfigSource::Missing)
            && let Some((body, rec, len, profile, level)) = &seen.hevc_in_band
        {
            pending.video = Some((
                Bytes::from(body.clone()),
                Synthesised {
                    kind: "video",
                    codec: "hevc",
                    config: hex(rec),
                    certain: vec![
                        format!(
                            "VPS, SPS and PPS as the encoder sent them in band in a keyframe (profile {profile}, level {level}), NAL unit lengths of {len} bytes (they divide the frame exactly)"
                        ),
                        "profile, tier, level, chroma format, bit depths and sub-layers as that SPS states them".into(),
                    ],
                    estimated: vec![
                        "the first VPS, SPS and PPS seen stand for the whole stream".into(),
                        "spatial segmentation, parallelism and frame rate (which the record repeats) given as unknown".into(),
                    ],
                },
            ));
        }
        if r.decodable.audio == Some(ConfigSource::Missing)
            && let Some((b0, raw)) = &seen.aac_frame
            && let Some(ch) = media::aac_channels_of_frame(raw)
            && let Some((rate, mean)) = media::aac_rate_of_times(&seen.aac_times)
            && let Some(asc) = media::aac_lc_config(rate, ch)
        {
            let mut certain = Vec::new();
            let mut estimated = vec![
                format!(
                    "sample rate {rate} Hz: 1024-sample frames every {mean:.2} ms on average over the first {} frames' timestamps (ms)",
                    seen.aac_times.len()
                ),
                "object type AAC LC (assumed; decoders find SBR/PS extensions in the frames)"
                    .into(),
            ];
            if ch == 2 {
                certain.push("2 channels: the frames begin with a channel pair element".into());
            } else {
                estimated.push(
                    "1 channel: the frames begin with a single channel element (3 to 7 channel layouts also do)"
                        .into(),
                );
            }
            pending.audio = Some((
                Bytes::from(vec![*b0, 0, asc[0], asc[1]]),
                Synthesised {
                    kind: "audio",
                    codec: "aac",
                    config: hex(&asc),
                    certain,
                    estimated,
                },
            ));
        }
        let missing = Some(ConfigSource::Missing);
        if r.decodable.video == missing || r.decodable.audio == missing {
            r.pending = Some(Box::new(pending));
        }
    }

    /// Count the tag and decide whether it goes in the file: coded frames wait for their
    /// decoder configuration, as players need it first.
    pub(super) fn accept(&mut self, kind: TagKind, body: &[u8]) -> bool {
        match kind {
            TagKind::Video => self.accept_video(body),
            TagKind::Audio => self.accept_audio(body),
            TagKind::Script => {
                self.count_script(body);
                true
            }
        }
    }

    fn accept_video(&mut self, body: &[u8]) -> bool {
        let r = &mut self.report;
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
            self.video_config = true;
        } else if self.mid_stream || self.gapped {
            // Joined mid-stream: write from the first keyframe on, configuration or not
            // (the report says when it was not captured). After a gap, every frame.
            if self.wait_keyframe && i.frame {
                if !i.keyframe {
                    r.dropped_before_keyframe += 1;
                    return false;
                }
                self.wait_keyframe = false;
            }
            if i.frame && i.needs_config && !self.video_config && !self.video_note {
                self.video_note = true;
                r.notes.push("video sequence header not captured".into());
            }
        } else if i.needs_config && !self.video_config {
            r.dropped_before_config += 1;
            return false;
        }
        if i.frame {
            r.decodable.starts_with_keyframe.get_or_insert(i.keyframe);
            r.video_frames += 1;
            r.keyframes += i.keyframe as u64;
            r.video_bytes += body.len() as u64;
        }
        true
    }

    fn accept_audio(&mut self, body: &[u8]) -> bool {
        let r = &mut self.report;
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
            self.audio_config = true;
        } else if self.mid_stream || self.gapped {
            if i.needs_config && !self.audio_config && !self.audio_note {
                self.audio_note = true;
                r.notes.push("audio sequence header not captured".into());
            }
        } else if i.needs_config && !self.audio_config {
            r.dropped_before_config += 1;
            return false;
        }
        if i.frame {
            r.audio_frames += 1;
            r.audio_bytes += body.len() as u64;
        }
        true
    }

    /// A script tag always goes in the file; the first `onMetaData` is kept for the report.
    fn count_script(&mut self, body: &[u8]) {
        let r = &mut self.report;
        r.script_tags += 1;
        if r.metadata.is_some() {
            return;
        }
        let (vals, _) = amf0::decode_all(body, 16, 4096);
        if vals.first().and_then(|v| v.as_bytes()) == Some(b"onMetaData")
            && let Some(m) = vals.get(1)
        {
            let (json, cut) =
                super::amf_json::to_json_bounded(m, MAX_METADATA_TEXT, MAX_METADATA_JSON);
            if cut {
                r.notes.push(format!(
                    "onMetaData cut to {} KiB of JSON (texts to {} bytes each) in this report",
                    MAX_METADATA_JSON >> 10,
                    MAX_METADATA_TEXT
                ));
            }
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

    /// Open the stream's file again (closed for the open-file limit), or a new one in `dir`
    /// on first use or when something else took its place.
    pub(super) fn open_file(
        &mut self,
        dir: &Path,
        queue: &mut WriteQueue,
        next_suffix: &mut HashMap<String, u32>,
    ) -> io::Result<()> {
        let reopened = match (&self.file, self.writer.as_mut()) {
            (Some((name, id)), Some(w)) => match reopen(&dir.join(name), *id)? {
                Some(f) => {
                    // What waits in the writer (held while the file was closed) is not in it yet.
                    let on_disk = w.bytes() - w.waiting() as u64;
                    w.resume(Target::File(queue.open(f, on_disk)?));
                    true
                }
                None => {
                    // Something else took the file's place: carry on in a new file.
                    let old = self.writer.take().expect("matched");
                    old.finish()?;
                    self.report.notes.push(format!(
                        "{name} was replaced by another file while rtmpsniff wrote it; \
                         the stream goes on in a new file"
                    ));
                    false
                }
            },
            _ => false,
        };
        if !reopened {
            // The header is in the file before the file has its name (not queued): a kill at
            // any moment leaves a file players open.
            let (file, name) = create_unique_with(dir, &self.base_name, next_suffix, &flv::HEADER)?;
            let meta = file.metadata()?;
            let len = flv::HEADER.len() as u64;
            self.writer = Some(FlvWriter::after_header(Target::File(
                queue.open(file, len)?,
            )));
            if self.report.file.is_none() {
                self.report.file = Some(name.clone());
                self.report.file_id = Some(FileId::of(&meta));
            }
            if self.report.file.as_deref() != Some(name.as_str()) {
                self.report.more_files.push(name.clone());
            }
            self.file = Some((name, FileId::of(&meta)));
        }
        Ok(())
    }

    /// Finish the stream's file (its last writes made when this returns) and its report.
    pub(super) fn close(
        mut self,
        dir: &Path,
        queue: Option<&mut WriteQueue>,
    ) -> io::Result<StreamReport> {
        self.settle_configs();
        if self.multitrack {
            self.report.tracks = std::mem::take(&mut self.tracks).into_values().collect();
        }
        let mut r = self.report;
        if let Some(mut w) = self.writer {
            r.bytes = w.bytes();
            if self.to_pipe {
                if let Err(e) = w.into_inner() {
                    r.notes
                        .push(format!("standard output closed by its reader ({e})"));
                }
            } else {
                if !w.is_open()
                    && let Some((name, id)) = &self.file
                    && let Some(queue) = queue
                    && let Some(f) = reopen(&dir.join(name), *id)?
                {
                    // Opened again only to set the header's flags to what the file holds.
                    let on_disk = w.bytes() - w.waiting() as u64;
                    w.resume(Target::File(queue.open(f, on_disk)?));
                }
                // Waits for the file's last write (flush).
                w.finish()?;
            }
        }
        r.set_bitrates();
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
}

/// Bytes as lower-case hex.
fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::ConnId;

    fn stream(mid_stream: bool) -> StreamOut {
        let key = StreamKey {
            conn: ConnId(1),
            stream: 0,
        };
        StreamOut::new(key, "s".into(), false, None, Role::Publish, 1, mid_stream)
    }

    // FLV video bodies of H.264: an inter frame and a keyframe (AVC NALU packets).
    const INTER: &[u8] = &[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41];
    const KEY: &[u8] = &[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65];

    #[test]
    fn pictures_after_a_keyframe_a_gap_took_are_kept_and_mid_stream_ones_wait() {
        // A gap took the sequence header and the first keyframe: the pictures after it are
        // kept (another copy may hold the keyframe, and a configuration lent or built at
        // the end goes first), and the missing header is said once.
        let mut s = stream(false);
        s.gap_came();
        assert!(s.accept(TagKind::Video, INTER));
        assert!(s.accept(TagKind::Video, INTER));
        assert!(s.accept(TagKind::Video, KEY));
        let r = &s.report;
        assert_eq!(
            (r.video_frames, r.keyframes, r.dropped_before_keyframe),
            (3, 1, 0)
        );
        assert_eq!(r.decodable.starts_with_keyframe, Some(false));
        let said = r
            .notes
            .iter()
            .filter(|n| n.contains("video sequence header"));
        assert_eq!(said.count(), 1, "{:?}", r.notes);
        // Joined mid-stream: nothing before the capture holds their keyframe.
        let mut s = stream(true);
        assert!(!s.accept(TagKind::Video, INTER));
        assert!(s.accept(TagKind::Video, KEY));
        assert!(s.accept(TagKind::Video, INTER));
        let r = &s.report;
        assert_eq!((r.video_frames, r.dropped_before_keyframe), (2, 1));
        assert_eq!(r.decodable.starts_with_keyframe, Some(true));
        // No gap and no configuration yet: coded frames wait for it.
        let mut s = stream(false);
        assert!(!s.accept(TagKind::Video, KEY));
        assert_eq!(s.report.dropped_before_config, 1);
    }

    #[test]
    fn an_aac_configuration_is_built_past_a_first_frame_that_begins_with_a_fill_element() {
        // ffmpeg's first AAC frame begins with a fill element (id 6); the rest with a
        // channel pair element (id 1): 2 channels, at 44.1 kHz by the timestamps.
        let mut s = stream(false);
        s.gap_came();
        for n in 0..20u32 {
            let first = if n == 0 { 0xde } else { 0x21 };
            let body = Bytes::from(vec![0xaf, 1, first, 0x4a, 0x55, 0x55]);
            s.observe(TagKind::Audio, n * 1024 * 1000 / 44100, &body);
        }
        s.report.audio_frames = 20;
        s.settle_configs();
        let p = s.report.pending.as_ref().expect("a configuration to build");
        let (body, syn) = p.audio.as_ref().expect("an AAC configuration");
        assert_eq!(&body[..], &[0xaf, 0, 0x12, 0x10]);
        assert_eq!(syn.config, "1210");
    }
}
