//! The one driver: frames through the [`Pipeline`] into anything that takes its outputs.
//!
//! `read`, `list` and `live`, the fuzz targets, the tests and the benches all push frames
//! through [`Driver`]; none of them writes the loop again. What the outputs become (FLV files,
//! an inventory, a list in a test) is the sink's business ([`OutputSink`]).

use crate::capture::Frame;
use crate::pipeline::{Output, OutputSink, Pipeline, Stats};
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

/// `read --threads N`: the connections of one input shared among N pipelines, each on a
/// thread of its own, by a hash of the two IP addresses that is the same both ways (so both
/// directions of a connection, and the TCP connections of one client and server, such as
/// an RTMPT session's, meet in one pipeline). Frames are read and the outputs taken on the
/// calling thread; outputs reach `sink` in the order of the frames that made them, with the
/// connection numbers one pipeline would have given (numbers are handed out in the order
/// the pipelines gave them out, frame by frame), so the files and the report are those of
/// one thread. Returns the pipelines' counters, summed.
pub fn run_sharded<S: OutputSink>(
    threads: usize,
    make: impl Fn() -> Pipeline + Sync,
    source: &mut impl FrameSource,
    sink: &mut S,
    mut after: impl FnMut(&mut S, usize, &Stats) -> Result<(), S::Error>,
) -> Result<Stats, S::Error> {
    use std::collections::VecDeque;
    use std::sync::mpsc;

    let n = threads.max(1);
    let mut to: Vec<mpsc::SyncSender<In>> = Vec::new();
    let (back_tx, back) = mpsc::channel::<(usize, Back)>();
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for w in 0..n {
            let (tx, rx) = mpsc::sync_channel::<In>(4);
            to.push(tx);
            let back_tx = back_tx.clone();
            let make = &make;
            handles.push(
                std::thread::Builder::new()
                    .name(format!("shard{w}"))
                    .spawn_scoped(scope, move || shard(w, make(), rx, back_tx))
                    .expect("a thread for a pipeline"),
            );
        }
        drop(back_tx);
        let mut m = Merge {
            queues: (0..n).map(|_| VecDeque::new()).collect(),
            upto: vec![0; n],
            ids: vec![Vec::new(); n],
            next: 0,
            done: 0,
        };
        let mut batches: Vec<crate::capture::queue::Batch> =
            (0..n).map(|_| Default::default()).collect();
        let mut progress = Stats::default();
        let result = (|| -> Result<(), S::Error> {
            let mut last = 0u64;
            let mut sizes = 0usize;
            let mut ended = false;
            while !ended {
                for s in source.take_secrets() {
                    for t in &to {
                        let _ = t.send(In::Keys(s.clone()));
                    }
                }
                let mut count = 0;
                while count < SHARD_ROUND {
                    let Some(f) = source.next_frame() else {
                        ended = true;
                        break;
                    };
                    last = f.number;
                    sizes += f.data.len();
                    progress.frames += 1;
                    progress.bytes += f.data.len() as u64;
                    batches[shard_of(&f, n)].push(&f);
                    count += 1;
                }
                for (w, t) in to.iter().enumerate() {
                    let b = std::mem::take(&mut batches[w]);
                    // A shard that stopped (it cannot: it only ends when this side does) is
                    // passed over.
                    let _ = t.send(In::Frames(b, last));
                }
                while let Ok((w, b)) = back.try_recv() {
                    m.take(w, b);
                }
                m.release(sink)?;
                progress.connections = m.next;
                after(sink, std::mem::take(&mut sizes), &progress)?;
            }
            Ok(())
        })();
        to.clear();
        // Every shard finishes; what it made comes after every frame's outputs.
        while m.done < n {
            match back.recv() {
                Ok((w, b)) => m.take(w, b),
                Err(_) => break,
            }
            if result.is_ok() {
                m.release(sink)?;
            }
        }
        result?;
        m.release(sink)?;
        let mut total = Stats::default();
        for h in handles {
            total.add(&h.join().expect("a pipeline thread"));
        }
        Ok(total)
    })
}

/// Frames read before they are handed to the shards, a batch each.
const SHARD_ROUND: usize = 2048;

enum In {
    Frames(crate::capture::queue::Batch, u64),
    Keys(Vec<u8>),
}

enum Item {
    /// Connection numbers this shard's pipeline gave while taking this frame.
    Ids(u64),
    Out(Output),
}

enum Back {
    /// Items by the frame that made them, and every frame up to this one done.
    Items(Vec<(u64, Item)>, u64),
    /// The shard's pipeline finished (its last items came before).
    Done,
}

/// Which of `n` shards a frame goes to: by its two IP addresses, the same both ways;
/// frames that are not IP go to the first (they are only counted).
fn shard_of(f: &Frame<'_>, n: usize) -> usize {
    use std::hash::{Hash, Hasher};
    if n == 1 {
        return 0;
    }
    let Ok(seg) = crate::decode::decode(f.linktype, f.data) else {
        return 0;
    };
    let (a, b) = (seg.src.ip(), seg.dst.ip());
    let mut h = std::hash::DefaultHasher::new();
    (a.min(b), a.max(b)).hash(&mut h);
    (h.finish() % n as u64) as usize
}

fn shard(
    w: usize,
    mut pipeline: Pipeline,
    rx: std::sync::mpsc::Receiver<In>,
    back: std::sync::mpsc::Sender<(usize, Back)>,
) -> Stats {
    let mut items = Vec::new();
    let take = |p: &mut Pipeline, frame: u64, ids_before: u64, items: &mut Vec<(u64, Item)>| {
        let ids = p.ids_given() - ids_before;
        if ids > 0 {
            items.push((frame, Item::Ids(ids)));
        }
        for o in p.drain() {
            items.push((frame, Item::Out(o)));
        }
    };
    while let Ok(m) = rx.recv() {
        match m {
            In::Keys(s) => {
                let before = pipeline.ids_given();
                pipeline.add_keys(&KeyLog::parse(&s, KeysFrom::PcapngBlock));
                // Made outside a frame: they go with the next one (none: the next round).
                take(&mut pipeline, 0, before, &mut items);
            }
            In::Frames(batch, upto) => {
                for f in batch.frames() {
                    let before = pipeline.ids_given();
                    pipeline.frame(&f);
                    take(&mut pipeline, f.number, before, &mut items);
                }
                if back
                    .send((w, Back::Items(std::mem::take(&mut items), upto)))
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    loop {
        let before = pipeline.ids_given();
        let more = pipeline.finish_some();
        take(&mut pipeline, u64::MAX, before, &mut items);
        let _ = back.send((w, Back::Items(std::mem::take(&mut items), u64::MAX)));
        if !more {
            break;
        }
    }
    let _ = back.send((w, Back::Done));
    pipeline.stats()
}

/// The shards' outputs put back in frame order, their connection numbers made one run's.
struct Merge {
    queues: Vec<std::collections::VecDeque<(u64, Item)>>,
    /// Per shard, every frame up to this one has been taken.
    upto: Vec<u64>,
    /// Per shard, its numbers (from 0) to the run's.
    ids: Vec<Vec<u64>>,
    next: u64,
    done: usize,
}

impl Merge {
    fn take(&mut self, w: usize, b: Back) {
        match b {
            Back::Items(items, upto) => {
                self.queues[w].extend(items);
                self.upto[w] = self.upto[w].max(upto);
            }
            Back::Done => {
                self.upto[w] = u64::MAX;
                self.done += 1;
            }
        }
    }

    /// Everything every shard is past, oldest frame first, to the sink.
    fn release<S: OutputSink>(&mut self, sink: &mut S) -> Result<(), S::Error> {
        let frontier = self.upto.iter().copied().min().unwrap_or(0);
        loop {
            let next = self
                .queues
                .iter()
                .enumerate()
                .filter_map(|(w, q)| q.front().map(|(f, _)| (*f, w)))
                .filter(|(f, _)| *f <= frontier)
                .min();
            let Some((frame, w)) = next else {
                return Ok(());
            };
            // This frame's items, all from shard w, in the order it made them.
            while self.queues[w].front().is_some_and(|(f, _)| *f == frame) {
                let (_, item) = self.queues[w].pop_front().expect("a front");
                match item {
                    Item::Ids(k) => {
                        for _ in 0..k {
                            self.ids[w].push(self.next);
                            self.next += 1;
                        }
                    }
                    Item::Out(mut o) => {
                        self.renumber(w, &mut o);
                        sink.output(o)?;
                    }
                }
            }
        }
    }

    fn renumber(&self, w: usize, o: &mut Output) {
        let map = |c: &mut crate::flow::ConnId| {
            if let Some(g) = self.ids[w].get(c.0 as usize) {
                c.0 = *g;
            }
        };
        match o {
            Output::StreamStarted { conn, .. }
            | Output::Tag { conn, .. }
            | Output::StreamEnded { conn, .. } => map(conn),
            Output::ConnectionEnded(f) => map(&mut f.id),
        }
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
