//! What the RTMP layer tells the analyst about a connection: problems met in the chunks and
//! messages, as values. Whoever writes the report renders them (their `Display` is the text).

use thiserror::Error;

use super::amf0;
use super::chunk::ChunkError;

#[derive(Clone, Debug, Error, PartialEq)]
pub enum Warning {
    /// A message decoded after a lock-on did not look right: the lock is lost.
    #[error("implausible message after a lock-on (frame {frame}); looking for chunk headers again")]
    Implausible { frame: u64 },
    /// The chunk reader met bytes it cannot read: the lock is lost.
    #[error("{error} (frame {frame}); looking for chunk headers again")]
    Relocking { error: ChunkError, frame: u64 },
    /// The chunk reader met bytes it cannot read where a direction ended.
    #[error("{error} (frame {frame})")]
    AtEnd { error: ChunkError, frame: u64 },
    /// An AMF0 limit was reached in a message.
    #[error("{error}: message at stream offset {offset} (frame {frame}) only partly decoded")]
    PartlyDecoded {
        error: amf0::Error,
        offset: u64,
        frame: u64,
    },
    /// A name or text longer than the text limit was cut.
    #[error("{what} of {len} bytes: only its first {kept} bytes are kept")]
    TextCut {
        what: &'static str,
        len: usize,
        kept: usize,
    },
    /// The limit of streams per connection was reached.
    #[error("more than {limit} streams on this connection: the rest are ignored")]
    TooManyStreams { limit: usize },
    /// Media on message stream 0 attached to the connection's only play or publish (as
    /// ffmpeg's -listen server sends them).
    #[error(
        "media on message stream 0 attached to the stream on message stream {msid}, the connection's only one in that direction (as ffmpeg's -listen server sends them)"
    )]
    MediaOnStreamZero { msid: u32 },
    /// An aggregate message whose sub-messages run past its end.
    #[error("aggregate message at offset {offset} is cut short")]
    AggregateCut { offset: u64 },
    /// What timing did to a stream's times (the sink puts it in the stream's report).
    #[error("stream {stream}: timestamps corrected ({} offsets after a lock-on, {} gaps rebuilt)", report.av_offsets.len(), report.lost.len())]
    Timing {
        stream: u32,
        report: super::timing::TimingReport,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_the_reports() {
        let e = ChunkError::PartialLimit {
            limit: 10,
            offset: 7,
        };
        let cases = [
            (
                Warning::Implausible { frame: 3 },
                "implausible message after a lock-on (frame 3); looking for chunk headers again",
            ),
            (
                Warning::Relocking {
                    error: e.clone(),
                    frame: 4,
                },
                "partial messages exceed 10 bytes at offset 7 (frame 4); looking for chunk headers again",
            ),
            (
                Warning::AtEnd { error: e, frame: 5 },
                "partial messages exceed 10 bytes at offset 7 (frame 5)",
            ),
            (
                Warning::PartlyDecoded {
                    error: amf0::Error::TooDeep(8),
                    offset: 9,
                    frame: 6,
                },
                "AMF0 nesting deeper than 8: message at stream offset 9 (frame 6) only partly decoded",
            ),
            (
                Warning::TextCut {
                    what: "stream name",
                    len: 300,
                    kept: 256,
                },
                "stream name of 300 bytes: only its first 256 bytes are kept",
            ),
            (
                Warning::TooManyStreams { limit: 16 },
                "more than 16 streams on this connection: the rest are ignored",
            ),
            (
                Warning::AggregateCut { offset: 12 },
                "aggregate message at offset 12 is cut short",
            ),
        ];
        for (w, text) in cases {
            assert_eq!(w.to_string(), text);
        }
    }
}
