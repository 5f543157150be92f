//! Where frames come from. This is the only module that talks to libpcap.

pub mod file;

pub use file::{FileSet, OpenError};
