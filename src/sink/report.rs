//! The report: what was found, per input, connection and stream; as JSON and as a summary.
//!
//! A capture can hold any number of connections, so the reports of finished connections can
//! be kept in a [`Spool`] (an unnamed file) instead of memory: each is rendered (JSON, and the
//! summary or table lines) when its connection ends, and the whole report is streamed out at
//! the end.

use std::io::{self, Write};

use serde::Serialize;

use crate::capture::{InputReport, SelectionReport};
use crate::config::{LimitHits, LimitReport, Limits};
use crate::flow::{ConnId, Dir, Eviction, StreamKey};
use crate::pipeline::{ConnectionFacts, Stats};
use crate::rtmp::HandshakeOutcome;

use super::naming::escape;

mod spool;
mod text;
mod time;
mod transport;

pub use spool::Spool;
pub(crate) use text::rate as rate_text;
use text::{summary_of, table_of};
pub use time::{iso8601, iso8601_us, parse_time};
pub use transport::{RtmptReport, TlsReport};

/// Where a direction was locked onto without a handshake (mid-stream start or after a gap).
#[derive(Clone, Debug, Serialize)]
pub struct LockReport {
    pub direction: &'static str,
    /// Stream offset of the first chunk header trusted.
    pub offset: u64,
    pub frame: u64,
    pub skipped_bytes: u64,
    pub chunk_size: u32,
    pub after_gap: bool,
}

/// A direction that searched [`Limits::lockon_bytes`](crate::Limits::lockon_bytes) for chunk
/// headers without finding any and stopped looking.
#[derive(Clone, Debug, Serialize)]
pub struct GaveUpReport {
    pub direction: &'static str,
    /// Bytes searched without a lock.
    pub bytes: u64,
    /// Stream offset where the search stopped; what follows was passed over.
    pub offset: u64,
    pub frame: u64,
    /// The direction had been read before (the search followed a gap or unreadable bytes).
    pub after_lock: bool,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct GapReport {
    pub direction: &'static str,
    pub offset: u64,
    pub len: u64,
    pub frame: u64,
    pub reason: &'static str,
}

/// A connection as the report shows it: [`ConnectionFacts`] in words.
#[derive(Clone, Debug, Serialize)]
pub struct ConnectionSummary {
    pub id: ConnId,
    pub client: String,
    pub server: String,
    /// Packet times of its first and last packets, seconds since the epoch, and the same in
    /// ISO 8601 (UTC) for people.
    pub first_time: f64,
    pub last_time: f64,
    pub first_time_utc: Option<String>,
    pub last_time_utc: Option<String>,
    pub first_frame: u64,
    pub last_frame: u64,
    /// "seen", "missing" or "partial".
    pub handshake: &'static str,
    /// "simple" or "complex" when seen.
    pub handshake_type: Option<&'static str>,
    pub encrypted: bool,
    /// "rtmpe" (RTMP versions 6, 8, 9) or "tls"; nothing of either can be read passively.
    pub encryption: Option<&'static str>,
    pub rtmp_version: Option<u8>,
    pub app: Option<String>,
    pub tc_url: Option<String>,
    pub flash_ver: Option<String>,
    pub swf_url: Option<String>,
    pub page_url: Option<String>,
    /// Chunk sizes in force, in order, client to server and server to client.
    pub chunk_sizes_client: Vec<u32>,
    pub chunk_sizes_server: Vec<u32>,
    pub messages_client: u64,
    pub messages_server: u64,
    pub bytes_client: u64,
    pub bytes_server: u64,
    pub duplicate_bytes: u64,
    /// Retransmissions whose bytes differed from the copy held (the later copy is kept: the
    /// earlier one was not acknowledged).
    pub conflicting_retransmissions: u64,
    pub bad_checksums: u64,
    pub gaps: Vec<GapReport>,
    pub locks: Vec<LockReport>,
    pub gave_up: Vec<GaveUpReport>,
    pub status_codes: Vec<String>,
    pub warnings: Vec<String>,
    /// Limits this connection reached (only those reached are listed).
    pub limits_hit: Vec<LimitReport>,
    /// How RTMP was carried, when not straight over TCP: `rtmpt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<&'static str>,
    /// An RTMPT session: its id, the TCP connections and the requests that carried it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtmpt: Option<RtmptReport>,
    /// RTMPS: what TLS showed in the clear, and what was decrypted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsReport>,
    #[serde(skip)]
    pub is_rtmp: bool,
    #[serde(skip)]
    pub hits: LimitHits,
}

pub(super) fn dir_name(d: Dir) -> &'static str {
    match d {
        Dir::ClientToServer => "client_to_server",
        Dir::ServerToClient => "server_to_client",
    }
}

fn eviction_why(e: Eviction) -> &'static str {
    match e {
        Eviction::Connections => "more connections than the connection limit were open",
        Eviction::BufferedTotal => "the bytes buffered across all connections reached their limit",
        Eviction::Idle => "nothing for the idle timeout of packet time",
    }
}

impl ConnectionSummary {
    /// The facts of a connection in words; `limits` are those the run had.
    pub fn new(f: &ConnectionFacts, limits: &Limits) -> Self {
        let hs = &f.handshake;
        let handshake = if hs.seen() {
            "seen"
        } else if hs.bytes_lost() {
            // Lost in part, the chunk streams read from their start all the same.
            "partial"
        } else if hs.missing || hs.version.is_none() {
            "missing"
        } else {
            "partial"
        };
        let text = |b: &Option<Vec<u8>>| b.as_deref().map(escape);
        let s = &f.connect;
        let [c2s, s2c] = &f.reassembly;
        ConnectionSummary {
            id: f.id,
            client: f.client.to_string(),
            server: f.server.to_string(),
            first_time: f.first_seen,
            last_time: f.last_seen,
            first_time_utc: iso8601_us(f.first_seen),
            last_time_utc: iso8601_us(f.last_seen),
            first_frame: f.first_frame,
            last_frame: f.last_frame,
            handshake,
            handshake_type: match hs.outcome {
                Some(HandshakeOutcome::Simple) => Some("simple"),
                Some(HandshakeOutcome::Complex) => Some("complex"),
                _ => None,
            },
            encrypted: matches!(
                hs.outcome,
                Some(HandshakeOutcome::Encrypted(_) | HandshakeOutcome::Tls)
            ) || f.tls.as_ref().is_some_and(|t| !t.decrypted),
            encryption: match (hs.outcome, &f.tls) {
                (_, Some(_)) => Some("tls"),
                _ if f.tunnel.as_ref().is_some_and(|t| t.over_tls) => Some("tls"),
                (Some(HandshakeOutcome::Encrypted(_)), _) => Some("rtmpe"),
                (Some(HandshakeOutcome::Tls), _) => Some("tls"),
                _ => None,
            },
            rtmp_version: hs.version,
            app: text(&s.app),
            tc_url: text(&s.tc_url),
            flash_ver: text(&s.flash_ver),
            swf_url: text(&s.swf_url),
            page_url: text(&s.page_url),
            chunk_sizes_client: f.chunk_sizes[0].clone(),
            chunk_sizes_server: f.chunk_sizes[1].clone(),
            messages_client: f.messages[0],
            messages_server: f.messages[1],
            bytes_client: c2s.delivered_bytes,
            bytes_server: s2c.delivered_bytes,
            duplicate_bytes: c2s.duplicate_bytes + s2c.duplicate_bytes,
            conflicting_retransmissions: c2s.conflicts + s2c.conflicts,
            bad_checksums: f.bad_checksums,
            gaps: gaps(f),
            locks: f
                .locks
                .iter()
                .map(|l| LockReport {
                    direction: dir_name(l.dir),
                    offset: l.offset,
                    frame: l.frame,
                    skipped_bytes: l.skipped,
                    chunk_size: l.chunk_size,
                    after_gap: l.after_gap,
                })
                .collect(),
            gave_up: f
                .gave_up
                .iter()
                .map(|g| GaveUpReport {
                    direction: dir_name(g.dir),
                    bytes: g.bytes,
                    offset: g.offset,
                    frame: g.frame,
                    after_lock: g.after_lock,
                    reason: format!("no RTMP chunk structure after {} bytes", g.bytes),
                })
                .collect(),
            status_codes: f.status_codes.iter().map(|c| escape(c)).collect(),
            warnings: warnings(f, limits),
            limits_hit: f
                .hits
                .report(limits)
                .into_iter()
                .filter(|l| l.hits > 0)
                .collect(),
            hits: f.hits.clone(),
            transport: f
                .tunnel
                .as_ref()
                .map(|t| if t.over_tls { "rtmpts" } else { "rtmpt" }),
            rtmpt: f.tunnel.as_ref().map(RtmptReport::new),
            tls: f.tls.as_ref().map(TlsReport::new),
            is_rtmp: f.is_rtmp(),
        }
    }
}

fn gaps(f: &ConnectionFacts) -> Vec<GapReport> {
    let mut gaps = Vec::new();
    for d in [Dir::ClientToServer, Dir::ServerToClient] {
        for g in &f.reassembly[d.index()].gaps {
            gaps.push(GapReport {
                direction: dir_name(d),
                offset: g.offset,
                len: g.len,
                frame: g.frame,
                reason: g.reason,
            });
        }
    }
    gaps
}

/// The connection's problems: the protocol layers' own, then the limits its directions
/// reached, what could not be read, and why it was closed early.
fn warnings(f: &ConnectionFacts, limits: &Limits) -> Vec<String> {
    let mut warnings: Vec<String> = f.warnings.iter().map(|w| w.to_string()).collect();
    for (d, name) in [
        (Dir::ClientToServer, "client"),
        (Dir::ServerToClient, "server"),
    ] {
        let st = &f.reassembly[d.index()];
        if st.byte_limit_hits > 0 {
            warnings.push(format!(
                "{name} direction: reassembly buffer limit ({} bytes) hit {} times",
                limits.reassembly_bytes, st.byte_limit_hits
            ));
        }
        if st.segment_limit_hits > 0 {
            warnings.push(format!(
                "{name} direction: out-of-order segment limit ({}) hit {} times",
                limits.reassembly_segments, st.segment_limit_hits
            ));
        }
        if f.skipped_bytes[d.index()] > 0 {
            warnings.push(format!(
                "{name} direction: {} bytes not decoded",
                f.skipped_bytes[d.index()]
            ));
        }
    }
    if let Some(e) = f.evicted {
        warnings.push(format!("closed before its end: {}", eviction_why(e)));
    }
    warnings
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct StreamReport {
    /// (connection, stream) inside the run; not reported.
    #[serde(skip)]
    pub key: StreamKey,
    /// The stream name as sent (escaped), or null when the naming command was not captured.
    pub name: Option<String>,
    /// The name as it stands in the file name (sanitised).
    pub name_in_file: Option<String>,
    pub direction: &'static str,
    pub message_stream_id: u32,
    /// Path of the FLV file relative to the output folder (null when nothing was written).
    pub file: Option<String>,
    /// Which file `file` is (device and inode): a fix-up at the end opens it again only if
    /// the name still leads to it. Not reported.
    #[serde(skip)]
    pub(crate) file_id: Option<super::fs::FileId>,
    /// Further files the stream went on in (only if its first file was replaced under it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub more_files: Vec<String>,
    pub bytes: u64,
    /// SHA-256 of the file as left on disk (null for standard output or an inventory).
    pub sha256: Option<String>,
    pub video_codec: Option<&'static str>,
    pub audio_codec: Option<&'static str>,
    /// Picture size from the AVC sequence header or the H.263 picture header, else onMetaData.
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub audio_rate: Option<u32>,
    pub audio_channels: Option<u8>,
    /// Coded frames (configuration records excluded).
    pub video_frames: u64,
    pub audio_frames: u64,
    pub keyframes: u64,
    pub script_tags: u64,
    /// RTMP timestamps (ms) of the first and last media message. The first is below 0 when
    /// the times went on through 0 from it (RTMP's arithmetic is modulo 2^32): a stream
    /// joined mid-stream whose first sound came before the time taken as 0 shows -22, not
    /// 4294967274.
    pub first_timestamp_ms: Option<i64>,
    pub last_timestamp_ms: Option<u32>,
    pub duration_ms: u64,
    /// Bit rates (bit/s) of the coded video and audio frames as carried (the messages'
    /// bodies, sequence headers left out) over the stream's media time (`duration_ms`); null
    /// without such frames or without media time.
    pub video_bitrate: Option<u64>,
    pub audio_bitrate: Option<u64>,
    /// Bytes of the coded video and audio frames written; not reported.
    #[serde(skip)]
    pub video_bytes: u64,
    #[serde(skip)]
    pub audio_bytes: u64,
    pub first_frame: Option<u64>,
    pub last_frame: Option<u64>,
    /// Coded frames dropped because their decoder configuration had not been seen.
    pub dropped_before_config: u64,
    /// Video frames dropped before the first keyframe of a stream joined mid-stream.
    pub dropped_before_keyframe: u64,
    /// The first onMetaData as the sender sent it.
    pub metadata: Option<serde_json::Value>,
    pub notes: Vec<String>,
    /// What is uncertain in the file's times: the audio-vs-video offset applied after a
    /// mid-stream join, and the time rebuilt after gaps (absent when every time is as sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timing: Option<StreamTiming>,
    /// Enhanced RTMP multitrack streams: each track (track 0 being the messages that are not
    /// multitrack), with its own frame count. Absent for a stream without multitrack messages.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tracks: Vec<TrackReport>,
    /// Whether the file decodes: each kind's decoder configuration, and whether frames of
    /// inter-predicted video were lost inside it.
    pub decodable: Decodable,
    /// Messages lost to gaps taken from other connections carrying the same stream, and
    /// times after gaps taken from them (absent when nothing was repaired).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair: Option<super::repair::RepairReport>,
    /// Decoder configurations built for what the stream lacks, to be written at the start of
    /// its file once it is known that none can be lent. Not reported.
    #[serde(skip)]
    pub(crate) pending: Option<Box<Pending>>,
    /// H.264/HEVC frames with a composition time (reordered pictures, B-frames). Not reported.
    #[serde(skip)]
    pub reordered: bool,
    /// File times of the video frames repair put in (see [`StreamReport::settle_clean`]).
    /// Not reported.
    #[serde(skip)]
    pub repaired_video_times: Vec<u32>,
}

/// Configuration tags (FLV bodies) built for a stream, with what the report says of them.
#[derive(Clone, Debug, Default)]
pub struct Pending {
    pub video: Option<(bytes::Bytes, Synthesised)>,
    pub audio: Option<(bytes::Bytes, Synthesised)>,
    /// What a configuration from the analyst's file is checked against: the first keyframe
    /// that needed one, the channels the first AAC frame shows, the rate their timing shows,
    /// and the AAC frames' FLV audio header byte.
    pub keyframe: Option<bytes::Bytes>,
    pub aac_channels: Option<u8>,
    pub aac_rate: Option<u32>,
    pub audio_header: Option<u8>,
}

/// One track of an Enhanced RTMP multitrack stream.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct TrackReport {
    /// "video" or "audio".
    pub kind: &'static str,
    pub track_id: u8,
    /// From the track's FourCC (or the legacy codec id, for track 0).
    pub codec: &'static str,
    /// Coded frames of this track alone.
    pub frames: u64,
    /// From the track's configuration (video: AVC's SPS; audio: OpusHead, STREAMINFO, ASC).
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub audio_rate: Option<u32>,
    pub audio_channels: Option<u8>,
}

/// Where a kind's decoder configuration in the file came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigSource {
    /// The stream's own, as sent.
    Captured,
    /// Another connection's, carrying the same pictures (`lend.rs`).
    Lent,
    /// Taken from the analyst's file (`--config-from`), checked against the frames.
    FromFile,
    /// Built from what the frames show: an estimate (see `synthesised`).
    Synthesised,
    /// The codec needs one and the file has none: players cannot decode that kind.
    Missing,
    /// The codec needs none (Sorenson H.263, MP3, ...).
    #[default]
    NotNeeded,
}

/// A decoder configuration the tool built, and what of it is certain.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Synthesised {
    /// "video" or "audio".
    pub kind: &'static str,
    pub codec: &'static str,
    /// The configuration record, hex.
    pub config: String,
    /// What the stream shows for certain, and what was assumed or estimated.
    pub certain: Vec<String>,
    pub estimated: Vec<String>,
}

/// Whether the file plays, per kind.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Decodable {
    /// Every kind in the file has what its decoder needs, and it is `clean`: the file
    /// decodes without an error.
    pub ok: bool,
    /// Null when the file holds no frame of that kind.
    pub video: Option<ConfigSource>,
    pub audio: Option<ConfigSource>,
    /// No video frame lost inside the file where a decoder notices (see
    /// [`StreamReport::settle_clean`]).
    pub clean: bool,
    /// Video frames lost inside the file (headers lost to gaps, as the timing stage counted,
    /// and bodies gaps cut), less those repair put back.
    pub lost_video_frames: u64,
    /// Whether the file's first picture is a keyframe (none: no picture). ffmpeg says
    /// "first frame is no keyframe" of one that is not, and decodes the pictures before the
    /// first keyframe damaged.
    pub starts_with_keyframe: Option<bool>,
    pub synthesised: Vec<Synthesised>,
    /// When the video cannot be decoded but the audio can: a file beside `file` with the
    /// audio (and script tags) only, which players open.
    pub audio_file: Option<String>,
}

impl Decodable {
    /// `ok` from the rest.
    pub fn settle(&mut self) {
        let fine = |s: Option<ConfigSource>| s != Some(ConfigSource::Missing);
        self.ok = fine(self.video) && fine(self.audio) && self.clean;
    }

    /// A few words for the summary.
    pub fn words(&self) -> String {
        let name = |s: Option<ConfigSource>| match s {
            None => "none",
            Some(ConfigSource::Captured) => "captured",
            Some(ConfigSource::Lent) => "lent",
            Some(ConfigSource::FromFile) => "from file",
            Some(ConfigSource::Synthesised) => "synthesised",
            Some(ConfigSource::Missing) => "MISSING",
            Some(ConfigSource::NotNeeded) => "not needed",
        };
        let mut s = format!(
            "decodable: {} (video config {}, audio config {}",
            if self.ok { "yes" } else { "no" },
            name(self.video),
            name(self.audio)
        );
        if !self.clean && self.lost_video_frames > 0 {
            s.push_str(&format!(
                ", {} video frames lost inside",
                self.lost_video_frames
            ));
        }
        if self.starts_with_keyframe == Some(false) {
            s.push_str(", its first picture no keyframe");
        }
        s.push(')');
        if let Some(a) = &self.audio_file {
            s.push_str(&format!("; audio alone -> {a}"));
        }
        s
    }
}

/// A stream's times where they are not simply the sender's.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct StreamTiming {
    /// After a mid-stream join audio and video each counted from an unknown base: ms added
    /// to the audio (relative to the video) from wire order, and how far the truth may lie
    /// from it (null: nothing bounded it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub av_offset_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub av_offset_uncertainty_ms: Option<i64>,
    /// Gaps that took frames' headers, and the time put back for them.
    pub lost: Vec<LostTime>,
    /// Frames whose headers were read but whose bodies a gap cut: not in the file (unless
    /// repaired), and the times after them are exact.
    pub cut_audio_frames: u32,
    pub cut_video_frames: u32,
}

/// Time rebuilt after a gap.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LostTime {
    /// File times (ms) of the last frame before the gap and the first after it.
    pub start_ms: i64,
    pub end_ms: i64,
    /// Frames whose headers were lost, per kind, and the ms put back for them.
    pub audio_frames: u32,
    pub video_frames: u32,
    pub audio_ms: i64,
    pub video_ms: i64,
    /// "exact" when wire order allowed one answer, or a live sender's capture times put
    /// video's count within a quarter frame and wire order then left audio one; else
    /// "estimated": later times are as sure as this.
    pub later_times: &'static str,
    /// What counted the frames lost: "wire order" alone, or with "capture times" (video's
    /// frames timed by when they were captured, for a sender seen to be live).
    pub counted_by: &'static str,
}

impl StreamTiming {
    /// From what the timing stage reports, in file time (`first` is the RTMP timestamp that
    /// is 0 in the file).
    pub fn new(t: &crate::rtmp::timing::TimingReport, first: Option<u32>) -> Self {
        let file = |ts: u32| first.map_or(ts as i64, |f| ts.wrapping_sub(f) as i32 as i64);
        let last = t.av_offsets.last();
        StreamTiming {
            av_offset_ms: last.map(|o| o.offset_ms),
            av_offset_uncertainty_ms: last
                .and_then(|o| (o.uncertainty_ms >= 0).then_some(o.uncertainty_ms)),
            lost: t
                .lost
                .iter()
                .map(|l| LostTime {
                    start_ms: file(l.start),
                    end_ms: file(l.end),
                    audio_frames: l.frames[0],
                    video_frames: l.frames[1],
                    audio_ms: l.ms[0],
                    video_ms: l.ms[1],
                    later_times: if l.exact { "exact" } else { "estimated" },
                    counted_by: if l.by_capture_time {
                        "capture times"
                    } else {
                        "wire order"
                    },
                })
                .collect(),
            cut_audio_frames: t.cut[0],
            cut_video_frames: t.cut[1],
        }
    }
}

/// Bits per second of `bytes` over `ms` milliseconds, rounded; none for nothing or no time.
pub fn bitrate(bytes: u64, ms: u64) -> Option<u64> {
    (bytes > 0 && ms > 0).then(|| ((bytes as u128 * 8000 + ms as u128 / 2) / ms as u128) as u64)
}

impl StreamReport {
    /// Whether video frames were lost inside the file (from the timing report) where a
    /// decoder notices: H.264 or HEVC with reordered pictures (B-frames), whose lost
    /// references break the picture order ffmpeg reports as errors. Measured on the real
    /// samples: lost frames of Sorenson H.263 or of H.264 without B-frames (P-frames only) are
    /// concealed without an error; of H.264 with B-frames, never.
    ///
    /// Frames repair put back count against the gap they fall in, and only that one: a frame
    /// it put in where no gap was counted (before the first tag after a gap, say) leaves the
    /// others' lost frames lost. (The gap's end is the time before repair: a stretch repair
    /// moved later can move its frames past it, by at most the largest correction.)
    pub fn settle_clean(&mut self) {
        let moved = self
            .repair
            .as_ref()
            .map_or(0, |r| r.largest_correction_ms.abs());
        // Each picture put back fills one frame lost: one whose header a gap took, in whose
        // range it lies, or else one a gap cut (whose own time is exact).
        let lost: u64 = self.timing.as_ref().map_or(0, |t| {
            let mut left: Vec<u64> = t.lost.iter().map(|l| l.video_frames as u64).collect();
            let mut cut = t.cut_video_frames as u64;
            for &p in &self.repaired_video_times {
                let p = p as i64;
                match t
                    .lost
                    .iter()
                    .zip(&mut left)
                    .find(|(l, n)| **n > 0 && (l.start_ms..=l.end_ms + moved).contains(&p))
                {
                    Some((_, n)) => *n -= 1,
                    None => cut = cut.saturating_sub(1),
                }
            }
            left.iter().sum::<u64>() + cut
        });
        let noticed = self.reordered && matches!(self.video_codec, Some("h264" | "hevc"));
        self.decodable.lost_video_frames = lost;
        self.decodable.clean =
            (lost == 0 || !noticed) && self.decodable.starts_with_keyframe != Some(false);
        self.decodable.settle();
    }

    /// The bit rates, from the bytes counted and the media time (at the end of the stream).
    pub fn set_bitrates(&mut self) {
        self.video_bitrate = bitrate(self.video_bytes, self.duration_ms);
        self.audio_bitrate = bitrate(self.audio_bytes, self.duration_ms);
    }

    /// Account for a tag written (or, for an inventory, that would be): the file's size so
    /// far, the tag's RTMP timestamp and time in the file, and its capture frame.
    pub fn record(&mut self, bytes: u64, timestamp: u32, file_time: u32, frame: u64) {
        self.bytes = bytes;
        let first = self.first_timestamp_ms.get_or_insert(timestamp as i64);
        // Past 2^32 - 1 onto small times: forward by less than half the clock's range.
        if *first >= 0
            && (timestamp as i64) < *first
            && timestamp.wrapping_sub(*first as u32) < 1 << 31
        {
            *first -= 1 << 32;
        }
        self.last_timestamp_ms = Some(timestamp);
        self.duration_ms = self.duration_ms.max(file_time as u64);
        self.first_frame.get_or_insert(frame);
        self.last_frame = Some(frame);
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ConnectionReport {
    #[serde(flatten)]
    pub summary: ConnectionSummary,
    pub streams: Vec<StreamReport>,
}

/// The version of report.json's layout, `schema_version` in it and in
/// `schema/report.schema.json`: raised whenever a field is renamed, removed or changes its
/// meaning (1 was the layout before the field existed).
pub const SCHEMA_VERSION: u32 = 2;

/// The run a report is of, as the binary saw it: its command line and wall-clock times.
#[derive(Clone, Debug, Default)]
pub struct Run {
    pub command_line: Vec<String>,
    /// When the run began and ended, seconds since the epoch (the wall clock, not packet
    /// time).
    pub start_time: f64,
    pub end_time: f64,
}

/// The whole report. It is written with [`Report::write_json`], which streams the
/// connections out of their spool.
pub struct Report {
    pub run: Run,
    pub inputs: Vec<InputReport>,
    /// Which packets were read (`--filter`, `--start`, `--end`, `--count`; live: the
    /// capture filter in force).
    pub selection: SelectionReport,
    /// Inputs that could not be read at all, one line each.
    pub input_errors: Vec<String>,
    /// What went wrong with the output folder (a disk that became full), one line each.
    pub output_errors: Vec<String>,
    pub stats: Stats,
    /// Every limit, its value and how often it was reached.
    pub limits: Vec<LimitReport>,
    pub connections: Connections,
    /// `--remux`: what each FLV (by its name in the folder) was remuxed into; written beside
    /// the stream's `file`.
    pub remuxed: std::collections::HashMap<String, super::remux::RemuxReport>,
}

/// A stream of the report, as much as remuxing and the page need of it.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub struct StreamBrief {
    pub file: Option<String>,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub video_frames: u64,
    pub audio_frames: u64,
}

/// `json` (a connection's, pretty, at depth 0) with `"remuxed": {...}` after the `"file"` of
/// each stream that was remuxed. A stream's keys are the only ones six spaces in (metadata's
/// are deeper, the connection's shallower), so a file name is found only where it is the
/// stream's file.
fn splice_remuxed<'a>(
    json: &'a [u8],
    remuxed: &std::collections::HashMap<String, super::remux::RemuxReport>,
) -> std::borrow::Cow<'a, [u8]> {
    if remuxed.is_empty() {
        return json.into();
    }
    let mut out: Vec<u8> = Vec::with_capacity(json.len() + 256);
    let mut rest = json;
    const KEY: &[u8] = b"\n      \"file\": \"";
    while let Some(at) = memchr::memmem::find(rest, KEY) {
        // The value, as serde_json wrote it, up to the end of its line.
        let value_start = at + KEY.len() - 1;
        let line_end =
            memchr::memchr(b'\n', &rest[value_start..]).map_or(rest.len(), |e| value_start + e);
        let value = rest[value_start..line_end]
            .strip_suffix(b",")
            .unwrap_or(&rest[value_start..line_end]);
        out.extend_from_slice(&rest[..line_end]);
        let name: Option<String> = serde_json::from_slice(value).ok();
        if let Some(r) = name.as_ref().and_then(|n| remuxed.get(n)) {
            let pretty = serde_json::to_string_pretty(r).unwrap_or_else(|_| "null".into());
            if !rest[..line_end].ends_with(b",") {
                out.push(b',');
            }
            out.extend_from_slice(b"\n      \"remuxed\": ");
            for (i, line) in pretty.split('\n').enumerate() {
                if i > 0 {
                    out.extend_from_slice(b"\n      ");
                }
                out.extend_from_slice(line.as_bytes());
            }
            if rest[..line_end].ends_with(b",") {
                out.push(b',');
            }
        }
        rest = &rest[line_end..];
    }
    out.extend_from_slice(rest);
    out.into()
}

/// The report's fields other than the connections, as they go into the JSON.
#[derive(Serialize)]
struct Head<'a> {
    schema_version: u32,
    tool: &'static str,
    tool_version: &'static str,
    command_line: &'a [String],
    start_time: f64,
    start_time_utc: Option<String>,
    end_time: f64,
    end_time_utc: Option<String>,
    inputs: Vec<Input<'a>>,
    packet_selection: Selection<'a>,
    input_errors: &'a [String],
    output_errors: &'a [String],
    stats: &'a Stats,
    limits: &'a [LimitReport],
}

/// An input as the report shows it: what the capture stage counted, and its first and last
/// packet times in ISO 8601 (UTC) for people.
#[derive(Serialize)]
struct Input<'a> {
    #[serde(flatten)]
    input: &'a InputReport,
    first_time_utc: Option<String>,
    last_time_utc: Option<String>,
}

impl<'a> Input<'a> {
    fn new(input: &'a InputReport) -> Self {
        Input {
            input,
            first_time_utc: input.first_time.and_then(iso8601_us),
            last_time_utc: input.last_time.and_then(iso8601_us),
        }
    }
}

/// The packet selection as the report shows it, its times also in ISO 8601 (UTC).
#[derive(Serialize)]
struct Selection<'a> {
    #[serde(flatten)]
    selection: &'a SelectionReport,
    start_time_utc: Option<String>,
    end_time_utc: Option<String>,
}

/// The finished connections' reports, in the order the connections began.
pub enum Connections {
    Memory(Vec<ConnectionReport>),
    Spooled(Spool),
}

impl Connections {
    pub fn len(&self) -> usize {
        match self {
            Connections::Memory(v) => v.len(),
            Connections::Spooled(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Streams over all connections.
    pub fn streams(&self) -> u64 {
        match self {
            Connections::Memory(v) => v.iter().map(|c| c.streams.len() as u64).sum(),
            Connections::Spooled(s) => s.streams(),
        }
    }
}

/// What text a spooled connection keeps besides its JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextKind {
    /// The summary `read` and `live` print ([`summary_of`]).
    Summary { verbose: bool },
    /// The inventory table `list` prints ([`table_of`]); `verbose` as for the summary.
    Table { verbose: bool },
}

impl TextKind {
    /// A connection's lines.
    fn render(self, c: &ConnectionReport) -> String {
        match self {
            TextKind::Summary { verbose } => summary_of(c, verbose),
            TextKind::Table { verbose } => table_of(c, verbose),
        }
    }
}

/// `json` (pretty, at depth 0) indented to sit at `depth` levels of two spaces.
fn write_indented(out: &mut dyn Write, json: &[u8], depth: usize) -> io::Result<()> {
    let pad = &b"            "[..(2 * depth).min(12)];
    for (i, line) in json.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            out.write_all(b"\n")?;
        }
        out.write_all(pad)?;
        out.write_all(line)?;
    }
    Ok(())
}

impl Report {
    /// The report as JSON (pretty), the connections streamed from their spool.
    pub fn write_json(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let run = &self.run;
        let head = serde_json::to_string_pretty(&Head {
            schema_version: SCHEMA_VERSION,
            tool: env!("CARGO_PKG_NAME"),
            tool_version: env!("CARGO_PKG_VERSION"),
            command_line: &run.command_line,
            start_time: run.start_time,
            start_time_utc: iso8601_us(run.start_time),
            end_time: run.end_time,
            end_time_utc: iso8601_us(run.end_time),
            inputs: self.inputs.iter().map(Input::new).collect(),
            packet_selection: Selection {
                selection: &self.selection,
                start_time_utc: self.selection.start_time.and_then(iso8601_us),
                end_time_utc: self.selection.end_time.and_then(iso8601_us),
            },
            input_errors: &self.input_errors,
            output_errors: &self.output_errors,
            stats: &self.stats,
            limits: &self.limits,
        })
        .map_err(io::Error::other)?;
        let head = head.strip_suffix("\n}").unwrap_or(&head);
        out.write_all(head.as_bytes())?;
        out.write_all(b",\n  \"connections\": [")?;
        let mut first = true;
        let mut each = |json: &[u8]| -> io::Result<()> {
            out.write_all(if first { b"\n" } else { b",\n" })?;
            first = false;
            write_indented(out, json, 2)
        };
        let remuxed = &self.remuxed;
        match &mut self.connections {
            Connections::Memory(v) => {
                for c in v.iter() {
                    let json = serde_json::to_vec_pretty(c).map_err(io::Error::other)?;
                    each(&splice_remuxed(&json, remuxed))?;
                }
            }
            Connections::Spooled(sp) => {
                sp.each_json(|json| each(&splice_remuxed(json, remuxed)))?;
            }
        }
        out.write_all(if first { b"]\n}" } else { b"\n  ]\n}" })?;
        Ok(())
    }

    /// Each stream of each connection (in the order the connections began), as much as
    /// remuxing needs of it.
    pub fn each_stream(&mut self, mut each: impl FnMut(StreamBrief)) -> io::Result<()> {
        #[derive(serde::Deserialize)]
        struct Conn {
            streams: Vec<StreamBrief>,
        }
        self.each_connection_json(|json| {
            let c: Conn = serde_json::from_slice(json).map_err(io::Error::other)?;
            c.streams.into_iter().for_each(&mut each);
            Ok(())
        })
    }

    /// Each connection's JSON as report.json has it (before `remuxed` is added), in the
    /// order the connections began, one at a time.
    pub fn each_connection_json(
        &mut self,
        mut each: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        match &mut self.connections {
            Connections::Memory(v) => {
                for c in v.iter() {
                    each(&serde_json::to_vec(c).map_err(io::Error::other)?)?;
                }
            }
            Connections::Spooled(sp) => sp.each_json(each)?,
        }
        Ok(())
    }

    /// Each connection's text (what `text` names), in the order they began.
    fn write_texts(&mut self, out: &mut dyn Write, text: TextKind) -> io::Result<()> {
        let mut each = |t: &[u8]| -> io::Result<()> { out.write_all(t) };
        match &mut self.connections {
            Connections::Memory(v) => {
                for c in v.iter() {
                    each(text.render(c).as_bytes())?;
                }
            }
            Connections::Spooled(sp) => {
                if sp.text() != text {
                    return Err(io::Error::other("the spool keeps another text"));
                }
                sp.each_text(&mut each)?;
            }
        }
        Ok(())
    }

    /// The human summary of the same facts; `verbose` adds each connection's warnings, gaps
    /// and lock-ons (a spooled report has the text it was spooled with).
    pub fn write_summary(&mut self, out: &mut dyn Write, verbose: bool) -> io::Result<()> {
        self.write_texts(out, TextKind::Summary { verbose })?;
        writeln!(
            out,
            "{} RTMP connection(s), {} stream(s) from {} packets",
            self.connections.len(),
            self.connections.streams(),
            self.stats.frames
        )
    }

    /// The inventory `rtmpsniff list` prints: a line per connection and a row per stream;
    /// `verbose` adds each connection's warnings, gaps and lock-ons (a spooled report has the
    /// text it was spooled with).
    pub fn write_table(&mut self, out: &mut dyn Write, verbose: bool) -> io::Result<()> {
        self.write_texts(out, TextKind::Table { verbose })?;
        writeln!(
            out,
            "{} RTMP connection(s), {} stream(s) in {} packets",
            self.connections.len(),
            self.connections.streams(),
            self.stats.frames
        )
    }

    /// [`write_summary`](Self::write_summary) as a string.
    pub fn summary(&mut self, verbose: bool) -> String {
        let mut v = Vec::new();
        let _ = self.write_summary(&mut v, verbose);
        String::from_utf8_lossy(&v).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::remux::{Container, RemuxReport};

    /// A gap's time rebuilt, `video_frames` of 40 ms lost in it.
    fn lost(start_ms: i64, end_ms: i64, video_frames: u32) -> LostTime {
        LostTime {
            start_ms,
            end_ms,
            audio_frames: 0,
            video_frames,
            audio_ms: 0,
            video_ms: 40 * video_frames as i64,
            later_times: "exact",
            counted_by: "wire order",
        }
    }

    #[test]
    fn a_first_timestamp_the_times_went_on_through_0_from_is_below_0() {
        let first = |times: &[u32]| {
            let mut r = StreamReport::default();
            for &t in times {
                r.record(0, t, 0, 1);
            }
            r.first_timestamp_ms
        };
        // A mid-stream sound 22 ms before the time taken as 0.
        assert_eq!(first(&[u32::MAX - 21, 1, 24]), Some(-22));
        // A stream long on air, its audio a little before its video: no wrap.
        assert_eq!(
            first(&[3_000_000_000, 2_999_999_990, 3_000_000_040]),
            Some(3_000_000_000)
        );
        assert_eq!(first(&[100, 90, 140]), Some(100));
        // Across 2^32 after 49.7 days: the first is below 0 too, as the times went on.
        assert_eq!(first(&[u32::MAX - 999, u32::MAX, 500]), Some(-1000));
    }

    #[test]
    fn a_picture_repaired_where_no_gap_was_counted_leaves_another_gap_s_loss_lost() {
        let mut r = StreamReport {
            video_codec: Some("h264"),
            reordered: true,
            timing: Some(StreamTiming {
                lost: vec![lost(400, 480, 1), lost(1000, 1080, 1)],
                ..Default::default()
            }),
            ..Default::default()
        };
        r.settle_clean();
        assert_eq!(r.decodable.lost_video_frames, 2);
        // Two pictures put back: one before the first tag after a gap (no gap counted
        // there), one in the first gap counted. The second gap's picture is still lost.
        r.repaired_video_times = vec![0, 440];
        r.settle_clean();
        assert_eq!(r.decodable.lost_video_frames, 1);
        assert!(!r.decodable.clean && !r.decodable.ok);
        r.repaired_video_times.push(1040);
        r.settle_clean();
        assert_eq!(r.decodable.lost_video_frames, 0);
        assert!(r.decodable.clean);
        // A first picture that is no keyframe is not clean either, whatever else.
        r.decodable.starts_with_keyframe = Some(false);
        r.settle_clean();
        assert!(!r.decodable.clean && !r.decodable.ok);
        assert!(r.decodable.words().contains("first picture no keyframe"));
    }

    #[test]
    fn pictures_gaps_cut_are_lost_until_put_back_each_filling_one_loss() {
        let mut r = StreamReport {
            video_codec: Some("h264"),
            reordered: true,
            timing: Some(StreamTiming {
                lost: vec![lost(400, 480, 1)],
                cut_video_frames: 2,
                ..Default::default()
            }),
            ..Default::default()
        };
        r.settle_clean();
        assert_eq!(r.decodable.lost_video_frames, 3);
        // Two put back in the gap's range: one fills it, the other a cut picture (before,
        // both went to the gap, and a cut picture's loss was not counted at all).
        r.repaired_video_times = vec![420, 440];
        r.settle_clean();
        assert_eq!(r.decodable.lost_video_frames, 1);
        assert!(!r.decodable.clean);
        r.repaired_video_times.push(2000);
        r.settle_clean();
        assert_eq!(r.decodable.lost_video_frames, 0);
        assert!(r.decodable.clean);
    }

    #[test]
    fn remuxed_goes_beside_the_streams_file_and_nowhere_else() {
        let json = r#"{
  "id": 1,
  "streams": [
    {
      "name": "a",
      "file": "live_a.flv",
      "bytes": 10,
      "metadata": {
        "file": "live_a.flv",
        "x": {
          "file": "live_b.flv"
        }
      }
    },
    {
      "file": "live_b.flv",
      "bytes": 20
    },
    {
      "file": null,
      "bytes": 0
    }
  ]
}"#;
        let mut remuxed = std::collections::HashMap::new();
        remuxed.insert(
            "live_a.flv".to_string(),
            RemuxReport {
                file: Some("live_a.mp4".into()),
                container: Container::Mp4,
                bytes: 9,
                note: None,
                error: None,
            },
        );
        let out = splice_remuxed(json.as_bytes(), &remuxed);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let streams = v["streams"].as_array().unwrap();
        assert_eq!(streams[0]["remuxed"]["file"], "live_a.mp4");
        assert_eq!(streams[0]["bytes"], 10);
        assert!(streams[0]["metadata"].get("remuxed").is_none());
        assert!(streams[1].get("remuxed").is_none());
        assert!(streams[2].get("remuxed").is_none());
        // The rest is as it was, byte for byte.
        let text = String::from_utf8(out.into_owned()).unwrap();
        let back = text.replace(
            ",\n      \"remuxed\": {\n        \"file\": \"live_a.mp4\",\n        \"container\": \"mp4\",\n        \"bytes\": 9,\n        \"note\": null,\n        \"error\": null\n      }",
            "",
        );
        assert_eq!(back, json);
        assert_eq!(
            splice_remuxed(json.as_bytes(), &Default::default()),
            json.as_bytes()
        );
    }
}
