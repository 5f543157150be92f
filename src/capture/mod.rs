//! Where frames come from. This is the only module that talks to libpcap.

pub mod classic;
pub mod file;
pub mod live;

pub use file::{FileSet, OpenError};
pub use live::{LiveCapture, LiveError, LiveOptions};
