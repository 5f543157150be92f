//! rtmpsniff: recover RTMP audio and video from network captures without joining the session.
//!
//! Data flows one way through the stages, each testable alone with bytes in and events out:
//!
//! ```text
//! capture (libpcap) -> decode (link/IP/TCP) -> flow (connections, TCP reassembly)
//!     -> transport (plain, TLS, HTTP tunnel) -> rtmp (handshake, chunks, messages, session)
//!     -> sink (FLV files, report)
//! ```
//!
//! [`pipeline::Pipeline`] joins decode, flow, transport and rtmp: frames in,
//! [`pipeline::Output`]s out; [`run::Driver`] pushes frames through it into any
//! [`OutputSink`]. ARCHITECTURE.md at the top of the repository is the map.
//!
//! Within rtmp, [`rtmp::timing`] keeps one clock per stream: audio and video on one clock
//! after a mid-stream join (wire-order bounds), the time lost after a gap rebuilt (frame
//! grid), and what of it is exact or estimated, for the report.

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

pub mod transport;

pub use capture::Frame;
pub use config::{Config, Limits};
pub use pipeline::{Output, OutputSink, Pipeline};
pub use run::{Driver, FrameSource};
