//! TCP: the connection table and, per direction, the reassembly of the byte stream.
//!
//! Segments come in from decode; what goes up, per connection and direction, is bytes in
//! order with their stream offsets, or a gap ([`StreamEvent`]). The table decides which
//! connections live and hands the ones it ends back to its caller, to be flushed.

pub mod key;
pub mod reassembly;
pub mod seq;
pub mod table;

pub use key::{ConnId, ConnKey, Dir, StreamKey};
pub use reassembly::{GapRecord, Reassembler, StreamEvent};
pub use table::{Conn, Eviction, Held, Streams, Table};
