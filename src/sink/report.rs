//! The report: what was found, per input, connection and stream; as JSON and as a summary.

use serde::Serialize;

use crate::config::LimitReport;
use crate::pipeline::{ConnectionSummary, Stats};

#[derive(Clone, Debug, Serialize)]
pub struct InputReport {
    pub path: String,
    pub format: String,
    pub link_type: String,
    pub packets: u64,
    pub bytes: u64,
    pub truncated_packets: u64,
    pub first_time: Option<f64>,
    pub last_time: Option<f64>,
    /// Set when the file ended inside a record (cut short), or a live capture failed.
    pub error: Option<String>,
    /// Where the data that was not used begins (when it can be told).
    pub error_offset: Option<u64>,
    /// Live captures only: what the kernel counted, drops included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelStats>,
}

/// The kernel's packet counters for the capture (libpcap's `pcap_stats`), as tcpdump prints
/// them when it stops. A dropped packet is a gap in whatever stream it belonged to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KernelStats {
    /// Packets that passed the filter.
    pub received: u32,
    /// Packets the kernel dropped because the capture buffer was full.
    pub dropped: u32,
    /// Packets the interface or its driver dropped (not counted on every platform).
    pub if_dropped: u32,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct StreamReport {
    /// The stream name as sent (escaped), or null when the naming command was not captured.
    pub name: Option<String>,
    pub direction: &'static str,
    pub message_stream_id: u32,
    /// Path of the FLV file relative to the output folder (null when nothing was written).
    pub file: Option<String>,
    /// Further files the stream went on in (only if its first file was replaced under it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub more_files: Vec<String>,
    pub bytes: u64,
    pub video_codec: Option<&'static str>,
    pub audio_codec: Option<&'static str>,
    pub audio_rate: Option<u32>,
    pub audio_channels: Option<u8>,
    /// Coded frames (configuration records excluded).
    pub video_frames: u64,
    pub audio_frames: u64,
    pub keyframes: u64,
    pub script_tags: u64,
    pub first_timestamp: Option<u32>,
    pub last_timestamp: Option<u32>,
    pub duration_ms: u64,
    pub first_frame: Option<u64>,
    pub last_frame: Option<u64>,
    /// Coded frames dropped because their decoder configuration had not been seen.
    pub dropped_before_config: u64,
    /// Video frames dropped before the first keyframe of a stream joined mid-stream.
    pub dropped_before_keyframe: u64,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConnectionReport {
    #[serde(flatten)]
    pub summary: ConnectionSummary,
    pub streams: Vec<StreamReport>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub tool: String,
    pub inputs: Vec<InputReport>,
    /// Inputs that could not be read at all, one line each.
    pub input_errors: Vec<String>,
    pub stats: Stats,
    /// Every limit, its value and how often it was reached.
    pub limits: Vec<LimitReport>,
    pub connections: Vec<ConnectionReport>,
}

impl Report {
    /// A short human summary of the same facts.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for c in &self.connections {
            let m = &c.summary;
            s.push_str(&format!(
                "connection {} -> {}  app={}  handshake={}{}\n",
                m.client,
                m.server,
                m.app.as_deref().unwrap_or("?"),
                m.handshake,
                if m.encrypted {
                    "  ENCRYPTED (RTMPE)"
                } else {
                    ""
                }
            ));
            if !m.gaps.is_empty() {
                let lost: u64 = m.gaps.iter().map(|g| g.len).sum();
                s.push_str(&format!(
                    "  {} gaps, {} bytes not captured\n",
                    m.gaps.len(),
                    lost
                ));
            }
            for st in &c.streams {
                let codecs = [st.video_codec, st.audio_codec]
                    .iter()
                    .flatten()
                    .copied()
                    .collect::<Vec<_>>()
                    .join("+");
                s.push_str(&format!(
                    "  {} {} (msid {}): {} video, {} audio frames, {:.1} s, {} -> {}\n",
                    st.direction,
                    st.name
                        .as_deref()
                        .map_or("<unnamed>".to_string(), |n| format!("\"{n}\"")),
                    st.message_stream_id,
                    st.video_frames,
                    st.audio_frames,
                    st.duration_ms as f64 / 1000.0,
                    if codecs.is_empty() {
                        "no media"
                    } else {
                        &codecs
                    },
                    st.file.as_deref().unwrap_or("(no file)"),
                ));
                for n in &st.notes {
                    s.push_str(&format!("    note: {n}\n"));
                }
            }
        }
        let streams: usize = self.connections.iter().map(|c| c.streams.len()).sum();
        s.push_str(&format!(
            "{} RTMP connection(s), {} stream(s) from {} packets\n",
            self.connections.len(),
            streams,
            self.stats.frames
        ));
        s
    }
}
