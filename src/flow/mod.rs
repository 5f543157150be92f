//! Connections and TCP reassembly.

pub mod reassembly;
pub mod seq;
pub mod table;

pub use reassembly::{GapRecord, Reassembler, StreamEvent};
pub use table::{ConnKey, Dir};
