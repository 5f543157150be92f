//! RTMP messages: what the chunk layer puts together, the message type ids, and what real
//! senders send (the rules a message read after a lock-on must pass).

use bytes::Bytes;

use super::media;

/// Message type ids.
pub mod types {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACK: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF3: u8 = 15;
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    pub const COMMAND_AMF3: u8 = 17;
    pub const DATA_AMF0: u8 = 18;
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    pub const COMMAND_AMF0: u8 = 20;
    pub const AGGREGATE: u8 = 22;

    pub fn known(t: u8) -> bool {
        matches!(t, 1..=6 | 8 | 9 | 15..=20 | 22)
    }
}

/// Where a chunk stream's timestamps count from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TimeBase {
    /// From a captured fmt-0 header (absolute, as the sender sent it).
    #[default]
    Exact,
    /// From a base guessed at a lock-on (the chunk stream was first seen with a delta): right
    /// up to one unknown offset, the same for every message with this number.
    Guessed(u32),
}

/// A whole RTMP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub csid: u32,
    pub msid: u32,
    pub type_id: u8,
    pub timestamp: u32,
    pub body: Bytes,
    /// Stream offset of the message's first chunk header.
    pub offset: u64,
    /// Whether `timestamp` counts from a captured fmt-0 header or from a base guessed at a
    /// lock-on (see [`TimeBase`]).
    pub base: TimeBase,
    /// The number of the last gap the reader resumed after since this chunk stream's last
    /// fmt-0 header (0: none): messages whose headers were lost there may have taken time
    /// with them.
    pub resumed: u32,
    /// The timestamp re-applied a delta from before a gap (a fmt-3 chunk, no fmt 0-2 header
    /// on its chunk stream since): a lost header may have changed it.
    pub stale_delta: bool,
    /// Capture frame that completed the message.
    pub frame: u64,
}

/// Largest chunk size real senders were seen to use (RTMP-NOTES quirk 4: 128 MiB).
const MAX_PLAUSIBLE_CHUNK_SIZE: u32 = 128 << 20;

/// Longest command or shared-object message taken after a lock-on (real ones are a few KB).
const MAX_PLAUSIBLE_COMMAND: u32 = 64 << 10;
/// Longest script-data message taken after a lock-on (onMetaData with a file's keyframe
/// index can run to hundreds of KB).
const MAX_PLAUSIBLE_DATA: u32 = 1 << 20;

/// Length rules for protocol control messages, and the lengths lock-on believes of commands
/// and script data (a header found in a picture's bytes said 3 MB of AMF3 command).
pub fn length_fits(type_id: u8, len: u32) -> bool {
    match type_id {
        types::SET_CHUNK_SIZE | types::ABORT | types::ACK | types::WINDOW_ACK_SIZE => len == 4,
        types::SET_PEER_BANDWIDTH => len == 5,
        types::USER_CONTROL => (2..=10).contains(&len),
        types::AUDIO | types::VIDEO => len >= 1,
        types::COMMAND_AMF0 | types::SHARED_OBJECT_AMF0 => {
            (3..=MAX_PLAUSIBLE_COMMAND).contains(&len)
        }
        types::COMMAND_AMF3 | types::SHARED_OBJECT_AMF3 => {
            (1..=MAX_PLAUSIBLE_COMMAND).contains(&len)
        }
        types::DATA_AMF0 => (3..=MAX_PLAUSIBLE_DATA).contains(&len),
        types::DATA_AMF3 => (1..=MAX_PLAUSIBLE_DATA).contains(&len),
        types::AGGREGATE => len >= 15,
        _ => len >= 1,
    }
}

/// Whether a decoded message looks like what RTMP senders send.
pub fn plausible(m: &Message) -> bool {
    let b = &m.body;
    if !types::known(m.type_id) || !length_fits(m.type_id, b.len() as u32) {
        return false;
    }
    // Protocol control travels on chunk stream 2, message stream 0.
    if (1..=6).contains(&m.type_id) && (m.csid != 2 || m.msid != 0) {
        return false;
    }
    match m.type_id {
        types::AUDIO => media::audio_plausible(b),
        types::VIDEO => media::video_plausible(b),
        types::COMMAND_AMF0 | types::DATA_AMF0 => b[0] == 0x02,
        types::SET_CHUNK_SIZE => {
            // Real sizes are small, or round (RTMP-NOTES quirk 4): four bytes of a body a
            // lock-on misread as one (a fmt-3 header on chunk stream 2 inside a picture) are
            // neither, but for one value in about a thousand.
            let v = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            v != 0 && v <= MAX_PLAUSIBLE_CHUNK_SIZE && (v <= 1 << 16 || v.is_multiple_of(1024))
        }
        types::AGGREGATE => matches!(b[0], 8 | 9 | 18),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_chunk_size_is_plausible_when_small_or_round() {
        let scs = |v: u32| Message {
            csid: 2,
            msid: 0,
            type_id: types::SET_CHUNK_SIZE,
            timestamp: 0,
            body: Bytes::copy_from_slice(&v.to_be_bytes()),
            offset: 0,
            frame: 0,
            base: TimeBase::Exact,
            resumed: 0,
            stale_delta: false,
        };
        for v in [
            128,
            1400,
            1460,
            4000,
            4096,
            5000,
            60000,
            65536,
            131072,
            1 << 20,
            128 << 20,
        ] {
            assert!(plausible(&scs(v)), "{v}");
        }
        // Four bytes of a Sorenson picture read as one after a lock-on (a real 5% capture:
        // every message after it was then read at that size), and nothing or too much.
        for v in [0x02c8_1670, 0, 100_001, (128 << 20) + 1024] {
            assert!(!plausible(&scs(v)), "{v}");
        }
    }
}
