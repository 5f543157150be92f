//! The bounded queue between a live capture's thread, which only drains the kernel's ring,
//! and the pipeline behind it. Frames are copied into batches (one allocation per batch, not
//! per frame) which cross the queue whole; the queue holds at most `limit` bytes of frames.
//!
//! When the pipeline falls behind, the queue drops by policy, not by accident: past half its
//! size it drops the frames of flows the tool is not recovering (frames that are not TCP at
//! all, connections known not to carry readable RTMP, streams the selection leaves out), so
//! that the other half stays for the flows it is recovering; when it is full, it drops
//! whatever comes (`queue_full`). Each drop is counted by its reason, apart from the kernel's.
//!
//! No libpcap and no other stage here: what a frame's flow is worth is told by the caller.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::Frame;

/// Why a frame was dropped in user space (the kernel's drops are [`super::KernelStats`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Not a TCP segment the pipeline would read (not IP, not TCP, a fragment, malformed).
    NotTcp,
    /// A connection known not to carry readable RTMP (not RTMP, RTMPE, TLS given up on).
    NotRtmp,
    /// A connection whose every stream the selection leaves out.
    Unselected,
    /// The queue was full: a frame of a flow being recovered, lost.
    QueueFull,
}

/// Frames dropped by rtmpsniff itself, by reason (`dropped_by_rtmpsniff` in the report).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DropCounts {
    pub not_tcp: u64,
    pub not_rtmp: u64,
    pub unselected: u64,
    pub queue_full: u64,
}

impl DropCounts {
    pub fn count(&mut self, r: DropReason) {
        *match r {
            DropReason::NotTcp => &mut self.not_tcp,
            DropReason::NotRtmp => &mut self.not_rtmp,
            DropReason::Unselected => &mut self.unselected,
            DropReason::QueueFull => &mut self.queue_full,
        } += 1;
    }

    pub fn total(&self) -> u64 {
        self.not_tcp + self.not_rtmp + self.unselected + self.queue_full
    }

    pub fn add(&mut self, o: &DropCounts) {
        self.not_tcp += o.not_tcp;
        self.not_rtmp += o.not_rtmp;
        self.unselected += o.unselected;
        self.queue_full += o.queue_full;
    }
}

/// The policy: whether a frame of `len` bytes may go in when `level` bytes are queued out of
/// `limit`. `unwanted` is asked only past half the queue (it may decode the frame): `Some`
/// with the reason when its flow is not being recovered.
pub fn admit(
    level: usize,
    len: usize,
    limit: usize,
    unwanted: impl FnOnce() -> Option<DropReason>,
) -> Result<(), DropReason> {
    let after = level.saturating_add(len);
    if after <= limit / 2 {
        return Ok(());
    }
    let reason = unwanted();
    if after > limit {
        return Err(reason.unwrap_or(DropReason::QueueFull));
    }
    match reason {
        Some(r) => Err(r),
        None => Ok(()),
    }
}

/// Where a frame is in its batch, and what the pipeline needs of it besides the bytes.
#[derive(Clone, Copy, Debug)]
struct Meta {
    ts: f64,
    number: u64,
    linktype: i32,
    orig_len: u32,
    start: usize,
    len: usize,
}

/// Frames copied one after another into one buffer.
#[derive(Debug, Default)]
pub struct Batch {
    data: Vec<u8>,
    frames: Vec<Meta>,
}

impl Batch {
    /// Bytes of frames it holds.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// One frame copied in.
    pub fn push(&mut self, f: &Frame<'_>) {
        let start = self.data.len();
        self.data.extend_from_slice(f.data);
        self.frames.push(Meta {
            ts: f.ts,
            number: f.number,
            linktype: f.linktype,
            orig_len: f.orig_len,
            start,
            len: f.data.len(),
        });
    }

    pub fn clear(&mut self) {
        self.data.clear();
        self.frames.clear();
    }

    /// The frames, in the order they were captured.
    pub fn frames(&self) -> impl Iterator<Item = Frame<'_>> {
        self.frames.iter().map(|m| Frame {
            ts: m.ts,
            number: m.number,
            linktype: m.linktype,
            data: &self.data[m.start..m.start + m.len],
            orig_len: m.orig_len,
        })
    }
}

/// Batches kept for reuse (more are freed, so a burst's memory goes back).
const SPARE_BATCHES: usize = 8;

struct State {
    batches: VecDeque<Batch>,
    spare: Vec<Batch>,
    closed: bool,
}

/// What the queue measured: its largest depth and the frames it dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueReport {
    pub limit_bytes: u64,
    pub peak_bytes: u64,
    pub dropped: DropCounts,
    /// Frames still in the kernel's ring when the capture was told to stop, read then.
    pub drained_at_stop: u64,
}

/// The queue itself, shared by one producer ([`Producer`]) and one consumer.
pub struct FrameQueue {
    limit: usize,
    /// Bytes in queued batches (read without the lock by the producer).
    level: AtomicUsize,
    peak: AtomicUsize,
    state: Mutex<State>,
    ready: Condvar,
}

impl FrameQueue {
    pub fn new(limit: usize) -> Self {
        FrameQueue {
            limit: limit.max(1),
            level: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            state: Mutex::new(State {
                batches: VecDeque::new(),
                spare: Vec::new(),
                closed: false,
            }),
            ready: Condvar::new(),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes queued now.
    pub fn level(&self) -> usize {
        self.level.load(Ordering::Relaxed)
    }

    /// The most bytes queued at once so far (the producer's unsent batch included).
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A thread that panicked while holding it left a consistent VecDeque: go on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, batch: Batch) -> Batch {
        let n = batch.bytes();
        let mut s = self.lock();
        s.batches.push_back(batch);
        self.level.fetch_add(n, Ordering::Relaxed);
        let next = s.spare.pop().unwrap_or_default();
        drop(s);
        self.ready.notify_one();
        next
    }

    /// The next batch, waiting up to `wait`; `None` when none came (or the queue is closed and
    /// empty: see [`FrameQueue::is_done`]).
    pub fn pop(&self, wait: Duration) -> Option<Batch> {
        let mut s = self.lock();
        if s.batches.is_empty() && !s.closed {
            s = self
                .ready
                .wait_timeout(s, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        let b = s.batches.pop_front()?;
        self.level.fetch_sub(b.bytes(), Ordering::Relaxed);
        Some(b)
    }

    /// A batch the consumer is done with, for the producer to fill again.
    pub fn give_back(&self, mut b: Batch) {
        b.clear();
        let mut s = self.lock();
        if s.spare.len() < SPARE_BATCHES {
            s.spare.push(b);
        }
    }

    /// No more batches will come.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Closed and nothing left in it.
    pub fn is_done(&self) -> bool {
        let s = self.lock();
        s.closed && s.batches.is_empty()
    }
}

/// The producer's side: the batch being filled, sent when it is large enough or when the
/// kernel has nothing more for now ([`Producer::flush`]).
pub struct Producer<'q> {
    queue: &'q FrameQueue,
    batch: Batch,
    batch_bytes: usize,
    pub dropped: DropCounts,
}

impl<'q> Producer<'q> {
    /// Batches of about `batch_bytes` (smaller when the queue is smaller).
    pub fn new(queue: &'q FrameQueue, batch_bytes: usize) -> Self {
        Producer {
            queue,
            batch: Batch::default(),
            batch_bytes: batch_bytes.clamp(1, (queue.limit / 8).max(1)),
            dropped: DropCounts::default(),
        }
    }

    /// One frame in, or dropped by the policy ([`admit`]) and counted; `unwanted` is asked
    /// only when the queue is more than half full. Returns the reason of a drop.
    pub fn push(
        &mut self,
        f: &Frame<'_>,
        unwanted: impl FnOnce() -> Option<DropReason>,
    ) -> Option<DropReason> {
        let level = self.queue.level() + self.batch.bytes();
        if let Err(r) = admit(level, f.data.len(), self.queue.limit, unwanted) {
            self.dropped.count(r);
            return Some(r);
        }
        self.batch.push(f);
        self.queue
            .peak
            .fetch_max(level + f.data.len(), Ordering::Relaxed);
        if self.batch.bytes() >= self.batch_bytes {
            self.flush();
        }
        None
    }

    /// Send what the batch holds.
    pub fn flush(&mut self) {
        if !self.batch.is_empty() {
            let full = std::mem::take(&mut self.batch);
            self.batch = self.queue.send(full);
        }
    }

    /// Whether frames wait in the batch.
    pub fn pending(&self) -> bool {
        !self.batch.is_empty()
    }

    /// What the queue measured, this producer's drops included.
    pub fn report(&self) -> QueueReport {
        QueueReport {
            limit_bytes: self.queue.limit as u64,
            peak_bytes: self.queue.peak() as u64,
            dropped: self.dropped,
            drained_at_stop: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(data: &[u8], number: u64) -> Frame<'_> {
        Frame {
            ts: number as f64,
            number,
            linktype: 1,
            data,
            orig_len: data.len() as u32,
        }
    }

    #[test]
    fn policy_drops_unrecovered_flows_first_then_everything() {
        let no = || None;
        let not_rtmp = || Some(DropReason::NotRtmp);
        // Below half: everything goes in, and the flow is not even asked about.
        assert_eq!(admit(0, 10, 100, || panic!("asked")), Ok(()));
        assert_eq!(admit(40, 10, 100, || panic!("asked")), Ok(()));
        // Past half: unrecovered flows are dropped, recovered ones go in.
        assert_eq!(admit(45, 10, 100, not_rtmp), Err(DropReason::NotRtmp));
        assert_eq!(admit(45, 10, 100, no), Ok(()));
        assert_eq!(admit(90, 10, 100, no), Ok(()));
        // Full: everything is dropped, a recovered flow's frame as queue_full.
        assert_eq!(admit(91, 10, 100, no), Err(DropReason::QueueFull));
        assert_eq!(
            admit(95, 10, 100, || Some(DropReason::Unselected)),
            Err(DropReason::Unselected)
        );
        assert_eq!(admit(usize::MAX, 1, 100, no), Err(DropReason::QueueFull));
    }

    #[test]
    fn a_queue_that_fills_drops_by_the_policy_and_counts_it() {
        // 1000 bytes of queue, 100-byte frames, nothing taken out: the first five of any flow
        // go in; then only the recovered flow's, up to the limit; then nothing.
        let q = FrameQueue::new(1000);
        let mut p = Producer::new(&q, 100);
        let data = [7u8; 100];
        let mut kept = Vec::new();
        for n in 1..=30u64 {
            // Odd frames belong to a flow that is not RTMP, every third is not TCP at all.
            let why = if n % 3 == 0 {
                Some(DropReason::NotTcp)
            } else if n % 2 == 1 {
                Some(DropReason::NotRtmp)
            } else {
                None
            };
            if p.push(&frame(&data, n), || why).is_none() {
                kept.push(n);
            }
        }
        p.flush();
        assert_eq!(kept, vec![1, 2, 3, 4, 5, 8, 10, 14, 16, 20]);
        assert_eq!(
            p.dropped,
            DropCounts {
                not_tcp: 9,
                not_rtmp: 8,
                unselected: 0,
                queue_full: 3,
            }
        );
        assert_eq!(p.dropped.total(), 20);
        assert_eq!(p.report().peak_bytes, 1000);
        // What went in comes out whole and in order.
        let mut out = Vec::new();
        while let Some(b) = q.pop(Duration::from_millis(1)) {
            for f in b.frames() {
                assert_eq!(f.data, &data[..]);
                out.push(f.number);
            }
            q.give_back(b);
        }
        assert_eq!(out, kept);
        assert_eq!(q.level(), 0);
        q.close();
        assert!(q.is_done());
    }

    #[test]
    fn batches_cross_between_threads() {
        let q = FrameQueue::new(1 << 20);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut p = Producer::new(&q, 4096);
                for n in 1..=10_000u64 {
                    let d = n.to_le_bytes();
                    p.push(&frame(&d, n), || None);
                }
                p.flush();
                q.close();
            });
            let mut next = 1u64;
            while !q.is_done() {
                if let Some(b) = q.pop(Duration::from_millis(10)) {
                    for f in b.frames() {
                        assert_eq!(f.number, next);
                        assert_eq!(f.data, &next.to_le_bytes()[..]);
                        next += 1;
                    }
                    q.give_back(b);
                }
            }
            // Frames may be dropped only if the queue filled, which 1 MiB does not here.
            assert_eq!(next, 10_001);
        });
    }
}
