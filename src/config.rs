//! Validated configuration handed to the pipeline, and the hard limits that bound memory.

/// Hard limits on what the tool buffers or believes, so that no input (a hostile peer, a
/// damaged capture, a SYN flood) can make it run out of memory, time or file handles. Every
/// limit that is hit is counted ([`LimitHits`]) and reported, never turned into a panic or an
/// unbounded allocation. README.md's "Limits" table lists the same names and defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes buffered per TCP direction (out of order, or waiting for the receiver's ACK).
    /// Past it, held bytes are handed on unacknowledged, then the oldest hole becomes a gap.
    pub reassembly_bytes: usize,
    /// Out-of-order segments (and so holes) buffered per TCP direction; past it, as above.
    pub reassembly_segments: usize,
    /// Largest RTMP message accepted (the wire format allows 16 MiB - 1); a longer one stops
    /// the direction.
    pub message_bytes: u32,
    /// Bytes held in partial messages across all chunk streams of one direction.
    pub partial_bytes: usize,
    /// Bytes of one direction searched for chunk headers without finding any (a capture
    /// begun mid-stream, bytes after a gap or after bytes the reader could not read) before
    /// the direction gives up: reported as `gave_up`, its bytes passed over from then on.
    pub lockon_bytes: usize,
    /// Chunk streams tracked per direction.
    pub chunk_streams: usize,
    /// AMF0 nesting depth; deeper values are not decoded.
    pub amf_depth: usize,
    /// AMF0 values decoded from one message (each costs far more memory than its bytes).
    pub amf_elements: usize,
    /// Bytes kept of a name or text from the wire (stream name, app, tcUrl, status code);
    /// the rest is cut, with a warning giving the full length.
    pub text_bytes: usize,
    /// Connections tracked at once; past it the least recently active one is closed, bare
    /// SYNs first, then connections with an answer or data one way, then the rest.
    pub connections: usize,
    /// Media streams per connection.
    pub streams_per_connection: usize,
    /// Bytes buffered across all connections (reassembly and partial messages); past it the
    /// connection holding the most is closed.
    pub buffered_bytes_total: usize,
    /// FLV files kept open at once; past it the least recently written one is closed, and
    /// opened again (without following links) when it gets more tags.
    pub open_files: usize,
    /// `live`: bytes of captured frames queued between the capture thread and the pipeline
    /// (allocated only as a burst fills it). Past half of it, frames of flows not being
    /// recovered are dropped; when full, any frame (`dropped_by_rtmpsniff`).
    pub queue_bytes: usize,
    /// `live --http`: bytes queued for one HTTP-FLV viewer and not yet sent; a viewer that
    /// falls this far behind is dropped (the capture never waits for it).
    pub http_viewer_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            reassembly_bytes: 8 << 20,
            reassembly_segments: 8192,
            message_bytes: (1 << 24) - 1,
            partial_bytes: 32 << 20,
            lockon_bytes: 64 << 20,
            chunk_streams: 1024,
            amf_depth: 32,
            amf_elements: 65_536,
            text_bytes: 4096,
            connections: 65_536,
            streams_per_connection: 64,
            buffered_bytes_total: 1 << 30,
            open_files: 256,
            // A second at 2 Gbit/s.
            queue_bytes: 256 << 20,
            http_viewer_bytes: 8 << 20,
        }
    }
}

/// How many times each limit of [`Limits`] was reached (all zero on ordinary input).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LimitHits {
    pub reassembly_bytes: u64,
    pub reassembly_segments: u64,
    pub message_bytes: u64,
    pub partial_bytes: u64,
    pub lockon_bytes: u64,
    pub chunk_streams: u64,
    pub amf_depth: u64,
    pub amf_elements: u64,
    pub text_bytes: u64,
    pub connections: u64,
    pub streams_per_connection: u64,
    pub buffered_bytes_total: u64,
    pub open_files: u64,
    pub queue_bytes: u64,
    pub http_viewer_bytes: u64,
}

/// One limit as the report shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LimitReport {
    pub name: &'static str,
    pub value: u64,
    pub hits: u64,
}

impl LimitHits {
    fn fields_mut(&mut self) -> [&mut u64; 15] {
        [
            &mut self.reassembly_bytes,
            &mut self.reassembly_segments,
            &mut self.message_bytes,
            &mut self.partial_bytes,
            &mut self.lockon_bytes,
            &mut self.chunk_streams,
            &mut self.amf_depth,
            &mut self.amf_elements,
            &mut self.text_bytes,
            &mut self.connections,
            &mut self.streams_per_connection,
            &mut self.buffered_bytes_total,
            &mut self.open_files,
            &mut self.queue_bytes,
            &mut self.http_viewer_bytes,
        ]
    }

    pub fn add(&mut self, other: &LimitHits) {
        let mut o = other.clone();
        for (a, b) in self.fields_mut().into_iter().zip(o.fields_mut()) {
            *a += *b;
        }
    }

    /// Each limit's name, value and hits, in the order of [`Limits`].
    pub fn report(&self, limits: &Limits) -> Vec<LimitReport> {
        let mut hits = self.clone();
        limits
            .named()
            .into_iter()
            .zip(hits.fields_mut())
            .map(|((name, value), hits)| LimitReport {
                name,
                value,
                hits: *hits,
            })
            .collect()
    }
}

/// A number as `--limit` takes it: decimal, with an optional binary suffix (`K`, `M`, `G`:
/// KiB, MiB, GiB; `KiB` etc. also read).
fn parse_amount(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().ok()?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

impl Limits {
    /// Sets the limit `name` (as [`Limits::named`] and the README name them) from `value`, as
    /// `--limit NAME=VALUE` gives it. Every limit must be at least 1; `message_bytes` at most
    /// what the wire format allows (16 MiB - 1).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let n = parse_amount(value)
            .ok_or_else(|| format!("--limit {name}={value}: not a number (suffixes K, M, G)"))?;
        if n == 0 {
            return Err(format!("--limit {name}={value}: must be at least 1"));
        }
        let size = |n: u64| usize::try_from(n).map_err(|_| format!("--limit {name}: too large"));
        match name {
            "reassembly_bytes" => self.reassembly_bytes = size(n)?,
            "reassembly_segments" => self.reassembly_segments = size(n)?,
            "message_bytes" => {
                if n >= 1 << 24 {
                    return Err(format!(
                        "--limit message_bytes={value}: RTMP messages are shorter than 16 MiB"
                    ));
                }
                self.message_bytes = n as u32;
            }
            "partial_bytes" => self.partial_bytes = size(n)?,
            "lockon_bytes" => self.lockon_bytes = size(n)?,
            "chunk_streams" => self.chunk_streams = size(n)?,
            "amf_depth" => self.amf_depth = size(n)?,
            "amf_elements" => self.amf_elements = size(n)?,
            "text_bytes" => self.text_bytes = size(n)?,
            "connections" => self.connections = size(n)?,
            "streams_per_connection" => self.streams_per_connection = size(n)?,
            "buffered_bytes_total" => self.buffered_bytes_total = size(n)?,
            "open_files" => self.open_files = size(n)?,
            "queue_bytes" => self.queue_bytes = size(n)?,
            "http_viewer_bytes" => self.http_viewer_bytes = size(n)?,
            _ => {
                let names: Vec<&str> = self.named().iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "--limit {name}: no such limit (limits: {})",
                    names.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Every `NAME=VALUE` of the command line, in order (a later one wins).
    pub fn set_all(&mut self, settings: &[String]) -> Result<(), String> {
        for s in settings {
            let Some((name, value)) = s.split_once('=') else {
                return Err(format!("--limit {s}: expected NAME=VALUE"));
            };
            self.set(name.trim(), value)?;
        }
        Ok(())
    }

    /// Each limit's name and value, in declaration order.
    pub fn named(&self) -> [(&'static str, u64); 15] {
        [
            ("reassembly_bytes", self.reassembly_bytes as u64),
            ("reassembly_segments", self.reassembly_segments as u64),
            ("message_bytes", self.message_bytes as u64),
            ("partial_bytes", self.partial_bytes as u64),
            ("lockon_bytes", self.lockon_bytes as u64),
            ("chunk_streams", self.chunk_streams as u64),
            ("amf_depth", self.amf_depth as u64),
            ("amf_elements", self.amf_elements as u64),
            ("text_bytes", self.text_bytes as u64),
            ("connections", self.connections as u64),
            ("streams_per_connection", self.streams_per_connection as u64),
            ("buffered_bytes_total", self.buffered_bytes_total as u64),
            ("open_files", self.open_files as u64),
            ("queue_bytes", self.queue_bytes as u64),
            ("http_viewer_bytes", self.http_viewer_bytes as u64),
        ]
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
    /// Seconds of packet time after which a connection that carried nothing is closed (its
    /// files finished), so that connections whose FIN or RST was never captured do not stay
    /// in memory until the end of the input. Looked at once per second of packet time.
    pub idle_timeout: f64,
    /// Ciphertext a TLS connection may hold while its keys are not in the key log yet (a
    /// live capture whose key log grows as encoders start); 0 when every key is known before
    /// the first packet.
    pub tls_backlog: usize,
}

/// [`Config::idle_timeout`]'s default: longer than any keep-alive or pause RTMP peers have.
const IDLE_TIMEOUT: f64 = 120.0;

impl Default for Config {
    fn default() -> Self {
        Config {
            ports: vec![1935],
            any_port: false,
            limits: Limits::default(),
            idle_timeout: IDLE_TIMEOUT,
            tls_backlog: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_set_by_name_with_suffixes_and_checked() {
        let mut l = Limits::default();
        l.set_all(&["open_files=8".into(), "buffered_bytes_total=64M".into()])
            .unwrap();
        assert_eq!((l.open_files, l.buffered_bytes_total), (8, 64 << 20));
        l.set("reassembly_bytes", "16KiB").unwrap();
        assert_eq!(l.reassembly_bytes, 16 << 10);
        for (name, default) in Limits::default().named() {
            let mut m = Limits::default();
            m.set(name, "7").unwrap();
            let got = m.named().into_iter().find(|(n, _)| *n == name).unwrap().1;
            assert_eq!(got, 7, "{name} (default {default})");
        }
        assert!(l.set("message_bytes", "16M").is_err());
        assert!(l.set("open_files", "0").is_err());
        assert!(l.set("open_files", "-1").is_err());
        assert!(l.set("open_files", "3X").is_err());
        assert!(l.set("open_files", "99999999999999999999").is_err());
        let e = l.set_all(&["nolimit=3".into()]).unwrap_err();
        assert!(e.contains("open_files"), "{e}");
        assert!(l.set_all(&["open_files".into()]).is_err());
    }
}
