//! Where frames come from. This is the only module that talks to libpcap.
//!
//! The lowest stage: it imports no other stage. It hands up [`Frame`]s (borrowed bytes, packet
//! time, frame number, link type) and, per input, an [`InputReport`] of what it read.

pub mod classic;
pub mod compress;
pub mod dsb;
pub mod file;
pub mod filter;
pub mod linktype;
pub mod live;
pub mod pcapng;
pub mod queue;

use serde::Serialize;

pub use file::{FileSet, OpenError};
pub use filter::{PacketSelection, SelectionReport};
pub use live::{LiveCapture, LiveError, LiveOptions};

/// A captured frame, borrowed from the capture layer.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Seconds since the epoch.
    pub ts: f64,
    /// 1-based frame number within its input file (as Wireshark numbers them).
    pub number: u64,
    pub linktype: i32,
    pub data: &'a [u8],
    /// Length on the wire (more than `data.len()` when the snap length cut it).
    pub orig_len: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct InputReport {
    pub path: String,
    pub format: String,
    /// The compression the capture was read through (`gzip`, `zstd`, `xz`), if any.
    pub compression: Option<&'static str>,
    pub link_type: String,
    pub packets: u64,
    pub bytes: u64,
    pub truncated_packets: u64,
    /// Packets read and left out by `--filter`, `--start` or `--end`.
    pub skipped_packets: u64,
    pub first_time: Option<f64>,
    pub last_time: Option<f64>,
    /// Set when the file ended inside a record (cut short), or a live capture failed.
    pub error: Option<String>,
    /// Where the data that was not used begins (when it can be told).
    pub error_offset: Option<u64>,
    /// Live captures only: what the kernel counted, drops included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelStats>,
    /// Live captures only: frames rtmpsniff itself dropped, by reason, when its queue between
    /// the capture thread and the pipeline filled ([`queue`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped_by_rtmpsniff: Option<queue::DropCounts>,
    /// Live captures only: that queue's size and the most it held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueStats>,
    /// Live captures only: what the run cost in CPU for what it captured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    /// Live captures only: the interface going down and coming up again during the run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub link_events: Vec<LinkEvent>,
}

/// The captured interface went down (`up: false`) or came up again, at `time` (Unix
/// seconds, the clock of the machine capturing).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LinkEvent {
    pub time: f64,
    pub time_utc: String,
    pub state: &'static str,
}

/// A live capture's queue: its size (`--limit queue_bytes`) and its peak depth.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    pub limit_bytes: u64,
    pub peak_bytes: u64,
    /// Frames the kernel still held when the capture stopped, read before the end (at most
    /// [`DRAIN_AT_STOP`](crate::capture::live::DRAIN_AT_STOP) of them by time).
    pub drained_at_stop: u64,
}

/// CPU time of the whole process (every thread, user and system) against the bytes captured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct CpuStats {
    pub cpu_seconds: f64,
    /// Gigabits captured (the frames that passed the filter, as captured).
    pub captured_gbit: f64,
    /// `cpu_seconds / captured_gbit`; null when nothing was captured.
    pub cpu_seconds_per_gbit: Option<f64>,
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

impl InputReport {
    /// An input about to be read: nothing counted yet.
    pub fn new(path: String, format: String, link_type: String) -> Self {
        InputReport {
            path,
            format,
            compression: None,
            link_type,
            packets: 0,
            bytes: 0,
            truncated_packets: 0,
            skipped_packets: 0,
            first_time: None,
            last_time: None,
            error: None,
            error_offset: None,
            kernel: None,
            dropped_by_rtmpsniff: None,
            queue: None,
            cpu: None,
            link_events: Vec::new(),
        }
    }
}
