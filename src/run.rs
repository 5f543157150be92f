//! The one driver: frames through the [`Pipeline`] into anything that takes its outputs.
//!
//! `read`, `list` and `live`, the fuzz targets, the tests and the benches all push frames
//! through [`Driver`]; none of them writes the loop again. What the outputs become (FLV files,
//! an inventory, a list in a test) is the sink's business ([`OutputSink`]).

use crate::capture::Frame;
use crate::pipeline::{Output, OutputSink, Pipeline};
use crate::transport::tls::{KeyLog, KeysFrom};

/// Where frames come from, one at a time, each borrowed until the next is asked for.
pub trait FrameSource {
    /// The next frame, or `None` at the end of the input.
    fn next_frame(&mut self) -> Option<Frame<'_>>;

    /// TLS key logs the input carries next to its frames (pcapng Decryption Secrets Blocks),
    /// found since the last call and before the next frame.
    fn take_secrets(&mut self) -> Vec<Vec<u8>> {
        Vec::new()
    }
}

impl FrameSource for crate::capture::FileSet {
    fn next_frame(&mut self) -> Option<Frame<'_>> {
        crate::capture::FileSet::next_frame(self)
    }

    fn take_secrets(&mut self) -> Vec<Vec<u8>> {
        self.take_new_secrets()
    }
}

/// A pipeline and the sink its outputs go to.
pub struct Driver<S> {
    pub pipeline: Pipeline,
    pub sink: S,
}

impl<S: OutputSink> Driver<S> {
    pub fn new(pipeline: Pipeline, sink: S) -> Self {
        Driver { pipeline, sink }
    }

    /// One frame through the pipeline; what it made goes to the sink.
    pub fn frame(&mut self, f: &Frame<'_>) -> Result<(), S::Error> {
        self.pipeline.frame(f);
        self.take()
    }

    /// End of the input: every connection is closed, a batch at a time, and what each batch
    /// made goes to the sink before the next (so what waits is a batch's worth).
    pub fn finish(&mut self) -> Result<(), S::Error> {
        loop {
            let more = self.pipeline.finish_some();
            self.take()?;
            if !more {
                return Ok(());
            }
        }
    }

    /// Every frame of `source`, then [`finish`](Self::finish). After each frame, `after` is
    /// called with the driver and the frame's size on the wire (as a capture file stores it):
    /// for progress and periodic flushes.
    pub fn run<F>(&mut self, source: &mut impl FrameSource, mut after: F) -> Result<(), S::Error>
    where
        F: FnMut(&mut Self, usize) -> Result<(), S::Error>,
    {
        loop {
            for s in source.take_secrets() {
                let keys = KeyLog::parse(&s, KeysFrom::PcapngBlock);
                self.pipeline.add_keys(&keys);
                self.take()?;
            }
            let Some(f) = source.next_frame() else {
                break;
            };
            let len = f.data.len();
            self.frame(&f)?;
            after(self, len)?;
        }
        self.finish()
    }

    /// Hand the sink what the pipeline made outside a frame (keys added to a live run's key
    /// log decrypt records that waited for them).
    pub fn take(&mut self) -> Result<(), S::Error> {
        if self.pipeline.is_idle() {
            return Ok(());
        }
        for o in self.pipeline.drain() {
            self.sink.output(o)?;
        }
        Ok(())
    }
}

/// Keeps every output, in order (tests).
impl OutputSink for Vec<Output> {
    type Error = std::convert::Infallible;

    fn output(&mut self, o: Output) -> Result<(), Self::Error> {
        self.push(o);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    /// Frames from a list, for the driver's own test.
    struct Frames(Vec<Vec<u8>>, usize);

    impl FrameSource for Frames {
        fn next_frame(&mut self) -> Option<Frame<'_>> {
            let data = self.0.get(self.1)?;
            self.1 += 1;
            Some(Frame {
                ts: self.1 as f64,
                number: self.1 as u64,
                linktype: crate::capture::linktype::RAW,
                data,
                orig_len: data.len() as u32,
            })
        }
    }

    #[test]
    fn run_calls_back_after_each_frame_and_finishes() {
        // Not IP at all: counted, nothing made, and the end still runs.
        let mut source = Frames(vec![vec![0u8; 20], vec![1u8; 30]], 0);
        let mut d = Driver::new(Pipeline::new(Config::default()), Vec::new());
        let mut sizes = Vec::new();
        d.run(&mut source, |_, n| {
            sizes.push(n);
            Ok(())
        })
        .unwrap();
        assert_eq!(sizes, vec![20, 30]);
        assert_eq!(d.pipeline.stats().frames, 2);
        assert!(d.sink.is_empty());
    }
}
