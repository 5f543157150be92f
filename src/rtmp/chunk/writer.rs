//! The sender's side of the chunk layer: messages in, chunks out.

use std::collections::HashMap;

use crate::rtmp::header::EXTENDED;
use crate::rtmp::message::types;

/// Writes RTMP chunks: the sender's side, for tests and synthetic captures.
#[derive(Debug, Default)]
pub struct ChunkWriter {
    pub chunk_size: u32,
    /// Whether fmt-3 chunks repeat the extended timestamp (Flash/ffmpeg) or not (old librtmp).
    pub fmt3_ext: bool,
    /// The last message written on each chunk stream id.
    prev: HashMap<u32, Written>,
}

/// What the next header on a chunk stream can leave out: the message written last on it.
#[derive(Clone, Copy, Debug)]
struct Written {
    timestamp: u32,
    len: u32,
    type_id: u8,
    msid: u32,
    /// The timestamp field its header carried: a delta, or the timestamp itself (type 0).
    field: u32,
}

impl ChunkWriter {
    pub fn new(chunk_size: u32) -> Self {
        ChunkWriter {
            chunk_size,
            fmt3_ext: true,
            prev: HashMap::new(),
        }
    }

    fn basic_header(fmt: u8, csid: u32, out: &mut Vec<u8>) {
        if csid < 64 {
            out.push(fmt << 6 | csid as u8);
        } else if csid < 320 {
            out.push(fmt << 6);
            out.push((csid - 64) as u8);
        } else {
            let v = csid - 64;
            out.push(fmt << 6 | 1);
            out.push((v & 0xff) as u8);
            out.push((v >> 8) as u8);
        }
    }

    /// Append the chunks of one message. The header format is the most compact one that the
    /// previous message on `csid` allows (as real senders do).
    pub fn write(
        &mut self,
        csid: u32,
        msid: u32,
        type_id: u8,
        timestamp: u32,
        body: &[u8],
        out: &mut Vec<u8>,
    ) {
        let len = body.len() as u32;
        let (fmt, field) = match self.prev.get(&csid) {
            Some(p) if p.msid == msid && timestamp >= p.timestamp => {
                let delta = timestamp - p.timestamp;
                if p.len == len && p.type_id == type_id {
                    if delta == p.field {
                        (3, delta)
                    } else {
                        (2, delta)
                    }
                } else {
                    (1, delta)
                }
            }
            _ => (0, timestamp),
        };
        self.prev.insert(
            csid,
            Written {
                timestamp,
                len,
                type_id,
                msid,
                field,
            },
        );
        let ext = field >= EXTENDED;
        let f24 = if ext { EXTENDED } else { field };
        Self::basic_header(fmt, csid, out);
        if fmt < 3 {
            out.extend_from_slice(&f24.to_be_bytes()[1..]);
        }
        if fmt < 2 {
            out.extend_from_slice(&len.to_be_bytes()[1..]);
            out.push(type_id);
        }
        if fmt == 0 {
            out.extend_from_slice(&msid.to_le_bytes());
        }
        if ext && (fmt < 3 || self.fmt3_ext) {
            out.extend_from_slice(&field.to_be_bytes());
        }
        let cs = self.chunk_size.max(1) as usize;
        for (i, piece) in body.chunks(cs).enumerate() {
            if i > 0 {
                Self::basic_header(3, csid, out);
                if ext && self.fmt3_ext {
                    out.extend_from_slice(&field.to_be_bytes());
                }
            }
            out.extend_from_slice(piece);
        }
    }

    /// Send Set Chunk Size and switch to it.
    pub fn set_chunk_size(&mut self, size: u32, out: &mut Vec<u8>) {
        self.write(2, 0, types::SET_CHUNK_SIZE, 0, &size.to_be_bytes(), out);
        self.chunk_size = size;
    }
}
