//! Validated configuration handed to the pipeline, and the hard limits that bound memory.

/// Hard limits on what the tool buffers or believes. Every limit that is hit is counted in the
/// report, never turned into a panic or an unbounded allocation.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Out-of-order bytes buffered per TCP direction before the oldest hole is declared a gap.
    pub reassembly_bytes: usize,
    /// Out-of-order segments buffered per TCP direction.
    pub reassembly_segments: usize,
    /// Largest RTMP message accepted (the wire format allows 16 MiB - 1).
    pub message_bytes: u32,
    /// Bytes held in partial messages across all chunk streams of one direction.
    pub partial_bytes: usize,
    /// Chunk streams tracked per direction.
    pub chunk_streams: usize,
    /// AMF0 nesting depth.
    pub amf_depth: usize,
    /// Connections tracked at once.
    pub connections: usize,
    /// Media streams per connection.
    pub streams_per_connection: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            reassembly_bytes: 8 << 20,
            reassembly_segments: 8192,
            message_bytes: (1 << 24) - 1,
            partial_bytes: 32 << 20,
            chunk_streams: 1024,
            amf_depth: 32,
            connections: 65_536,
            streams_per_connection: 64,
        }
    }
}

/// What the pipeline needs to know from the command line.
#[derive(Clone, Debug)]
pub struct Config {
    /// TCP ports on which RTMP is expected (server side).
    pub ports: Vec<u16>,
    /// Also recognise RTMP on any port by its handshake signature.
    pub any_port: bool,
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ports: vec![1935],
            any_port: false,
            limits: Limits::default(),
        }
    }
}
