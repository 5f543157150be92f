//! rtmpsniff: recover RTMP audio and video from network captures without joining the session.
//!
//! Data flows one way through the layers, each testable alone with bytes in and events out:
//!
//! ```text
//! capture (libpcap) -> decode (link/IP/TCP) -> flow (connections, TCP reassembly)
//!     -> rtmp (handshake, chunks, messages, AMF0, session) -> sink (FLV files, report)
//! ```
//!
//! [`timing`] sits between the session and the sink (the session runs one clock per stream):
//! audio and video on one clock after a mid-stream join (wire-order bounds), the time lost
//! after a gap rebuilt (frame grid), and what of it is exact or estimated, for the report.
//!
//! [`pipeline::Pipeline`] joins decode, flow and rtmp: frames in, [`pipeline::Output`] events out.

pub mod capture;
pub mod config;
pub mod decode;
pub mod flow;
#[doc(hidden)]
pub mod fuzzing;
pub mod pipeline;
pub mod rtmp;
pub mod run;
pub mod sink;
pub mod timing;
pub mod transport;

pub use capture::Frame;
pub use config::{Config, Limits};
pub use pipeline::{Output, OutputSink, Pipeline};
pub use run::{Driver, FrameSource};
