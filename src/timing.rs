//! Timing: per stream, one clock for audio and video.
//!
//! A chunk stream's timestamps count from its last fmt-0 header. After a lock-on (a capture
//! begun mid-stream) a chunk stream first seen with a delta gets a guessed base (see
//! [`TimeBase`]): audio and video are then each right up to an unknown offset of their own.
//! Real senders emit messages in non-decreasing timestamp order across chunk streams (equal
//! timestamps: video first), so every audio message between two video messages in wire order
//! bounds the audio-versus-video offset: `v_before <= a + d < v_after`. The bounds are
//! intersected as messages come; a message that contradicts them (an AVC end of sequence, a
//! sequence header a server inserts for a joining player) is left out. Tags are held until
//! the offset is settled to within [`SETTLED_MS`] (or too much is held), then released with
//! the offset applied, so a file never holds a time that is corrected later.

use std::collections::VecDeque;

use crate::rtmp::{Event, TagKind, TimeBase, media};

/// The offset is taken once its bounds are this close (ms).
pub const SETTLED_MS: i64 = 1;
/// Tags held at most while the offset is being settled.
const MAX_HELD: usize = 1024;
/// Bytes held at most while the offset is being settled.
const MAX_HELD_BYTES: usize = 16 << 20;
/// Tags held waiting for the other kind to appear before one clock is all there is.
const MAX_ALONE: usize = 256;

/// What the timing stage did to a stream, for the report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimingReport {
    /// Offsets applied after a lock-on: ms added to the audio (negative: to the video, when
    /// audio was the exact one), and how far the truth may lie from it (ms).
    pub av_offsets: Vec<AvOffset>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvOffset {
    /// Added to audio timestamps relative to video (ms).
    pub offset_ms: i64,
    /// The truth is within this many ms of `offset_ms`.
    pub uncertainty_ms: i64,
    /// Wire-order bounds that contradicted the others and were left out.
    pub contradictions: u32,
}

/// `a - b` in ms, timestamps being 32-bit and wrapping.
fn diff(a: u32, b: u32) -> i64 {
    a.wrapping_sub(b) as i32 as i64
}

/// Settling the audio-versus-video offset of one pair of bases.
#[derive(Clone, Debug)]
struct Estimate {
    lo: i64,
    hi: i64,
    /// Timestamp of the last video frame in wire order.
    last_video: Option<u32>,
    /// Audio timestamps since the last video frame.
    audio_since: Vec<u32>,
    contradictions: u32,
}

impl Estimate {
    fn new() -> Self {
        Estimate {
            lo: i64::MIN / 4,
            hi: i64::MAX / 4,
            last_video: None,
            audio_since: Vec::new(),
            contradictions: 0,
        }
    }

    fn bound(&mut self, lo: i64, hi: i64) {
        let (nlo, nhi) = (self.lo.max(lo), self.hi.min(hi));
        if nlo > nhi {
            self.contradictions += 1;
        } else {
            (self.lo, self.hi) = (nlo, nhi);
        }
    }

    fn audio(&mut self, a: u32) {
        if let Some(v) = self.last_video {
            self.bound(diff(v, a), i64::MAX / 4);
        }
        self.audio_since.push(a);
    }

    fn video(&mut self, v: u32) {
        for a in std::mem::take(&mut self.audio_since) {
            // Audio sent before a video frame is earlier (ties go video first).
            self.bound(i64::MIN / 4, diff(v, a) - 1);
        }
        self.last_video = Some(v);
    }

    fn bounded(&self) -> bool {
        self.lo > i64::MIN / 4 && self.hi < i64::MAX / 4
    }

    fn settled(&self) -> bool {
        self.bounded() && self.hi - self.lo <= SETTLED_MS
    }

    /// The offset to apply and its uncertainty.
    fn pick(&self) -> (i64, i64) {
        match (self.lo > i64::MIN / 4, self.hi < i64::MAX / 4) {
            (true, true) => {
                let mid = self.lo + (self.hi - self.lo) / 2;
                (mid, (self.hi - mid).max(mid - self.lo))
            }
            (true, false) => (self.lo.max(0), 0),
            (false, true) => (self.hi.min(0), 0),
            (false, false) => (0, 0),
        }
    }
}

/// The clock of one stream.
#[derive(Debug, Default)]
pub struct StreamClock {
    /// Base of the last audio / video tag.
    audio: Option<TimeBase>,
    video: Option<TimeBase>,
    /// ms added to audio and to video timestamps.
    audio_adj: i64,
    video_adj: i64,
    estimate: Option<Estimate>,
    held: VecDeque<Event>,
    held_bytes: usize,
    pub report: TimingReport,
}

impl StreamClock {
    /// A tag of the stream (in wire order) whose timestamp counts from `base`. Tags go out in
    /// the order they came, with their timestamps corrected.
    pub fn tag(&mut self, base: TimeBase, ev: Event, out: &mut Vec<Event>) {
        let Event::Tag {
            kind,
            timestamp,
            ref body,
            ..
        } = ev
        else {
            out.push(ev);
            return;
        };
        let frame = match kind {
            TagKind::Audio => media::audio(body).is_some_and(|i| i.frame),
            TagKind::Video => media::video(body).is_some_and(|i| i.frame),
            TagKind::Script => false,
        };
        if kind != TagKind::Script {
            let slot = if kind == TagKind::Audio {
                &mut self.audio
            } else {
                &mut self.video
            };
            if *slot != Some(base) {
                *slot = Some(base);
                self.bases_changed(out);
            }
        }
        if let Some(e) = &mut self.estimate {
            if frame {
                match kind {
                    TagKind::Audio => e.audio(timestamp),
                    TagKind::Video => e.video(timestamp),
                    TagKind::Script => {}
                }
            }
            self.held_bytes += body.len();
            self.held.push_back(ev);
            let alone = self.audio.is_none() || self.video.is_none();
            let settled = self.estimate.as_ref().is_some_and(Estimate::settled);
            if settled
                || self.held.len() >= MAX_HELD
                || self.held_bytes >= MAX_HELD_BYTES
                || (alone && self.held.len() >= MAX_ALONE)
            {
                self.settle(out);
            }
            return;
        }
        out.push(self.adjusted(ev));
    }

    /// The stream is over: what is held goes out with the best offset known.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        self.settle(out);
    }

    /// Audio or video now counts from another base: while they count from different ones
    /// and either is guessed, the offset between them must be found again.
    fn bases_changed(&mut self, out: &mut Vec<Event>) {
        // What is held belongs to the bases before.
        self.settle(out);
        let needs = match (self.audio, self.video) {
            (Some(a), Some(v)) => a != v,
            (Some(TimeBase::Guessed(_)), None) | (None, Some(TimeBase::Guessed(_))) => true,
            _ => false,
        };
        if !needs {
            self.audio_adj = 0;
            self.video_adj = 0;
            return;
        }
        self.estimate = Some(Estimate::new());
    }

    /// Take the offset being settled, and release what is held.
    fn settle(&mut self, out: &mut Vec<Event>) {
        if let Some(e) = self.estimate.take() {
            let (d, unc) = e.pick();
            let both = self.audio.is_some() && self.video.is_some();
            if both {
                if self.audio != Some(TimeBase::Exact) {
                    (self.audio_adj, self.video_adj) = (d, 0);
                } else {
                    (self.audio_adj, self.video_adj) = (0, -d);
                }
                self.report.av_offsets.push(AvOffset {
                    offset_ms: d,
                    uncertainty_ms: if e.bounded() { unc } else { -1 },
                    contradictions: e.contradictions,
                });
            } else {
                self.audio_adj = 0;
                self.video_adj = 0;
                // One clock alone so far: the other, when it comes, is settled then.
                if self.audio.is_some() {
                    self.video = None;
                } else {
                    self.audio = None;
                }
            }
        }
        self.held_bytes = 0;
        while let Some(ev) = self.held.pop_front() {
            let ev = self.adjusted(ev);
            out.push(ev);
        }
    }

    fn adjusted(&self, mut ev: Event) -> Event {
        if let Event::Tag {
            kind, timestamp, ..
        } = &mut ev
        {
            let adj = match kind {
                TagKind::Audio => self.audio_adj,
                TagKind::Video => self.video_adj,
                TagKind::Script => 0,
            };
            *timestamp = timestamp.wrapping_add(adj as u32);
        }
        ev
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn tag(kind: TagKind, ts: u32) -> Event {
        let body = match kind {
            TagKind::Audio => Bytes::from_static(&[0xaf, 1, 0x21]),
            TagKind::Video => Bytes::from_static(&[0x27, 1, 0, 0, 0, 1]),
            TagKind::Script => Bytes::from_static(&[2, 0, 1, b'x']),
        };
        Event::Tag {
            stream: 0,
            kind,
            timestamp: ts,
            body,
            frame: 0,
        }
    }

    /// A sender's wire order: AAC every 1024/44.1 ms and video every 40 ms, non-decreasing
    /// in time, video first on ties.
    fn wire(ms: u32) -> Vec<(TagKind, u32)> {
        let mut v = Vec::new();
        let (mut a, mut f) = (0u32, 0u32);
        loop {
            let at = (a as u64 * 1_024_000 / 44100) as u32;
            let vt = f * 40;
            if at.min(vt) > ms {
                break;
            }
            if vt <= at {
                v.push((TagKind::Video, vt));
                f += 1;
            } else {
                v.push((TagKind::Audio, at));
                a += 1;
            }
        }
        v
    }

    fn times(out: &[Event]) -> Vec<(TagKind, u32)> {
        out.iter()
            .filter_map(|e| match e {
                Event::Tag {
                    kind, timestamp, ..
                } => Some((*kind, *timestamp)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn exact_bases_pass_through() {
        let mut c = StreamClock::default();
        let mut out = Vec::new();
        for (k, t) in wire(2000) {
            c.tag(TimeBase::Exact, tag(k, t), &mut out);
        }
        c.finish(&mut out);
        assert_eq!(times(&out), wire(2000));
        assert!(c.report.av_offsets.is_empty());
    }

    #[test]
    fn guessed_audio_base_is_put_back_on_the_video_clock() {
        for shift in [0u32, 7, 13, 22, 39] {
            let truth = wire(6000);
            let mut c = StreamClock::default();
            let mut out = Vec::new();
            for &(k, t) in &truth {
                // Audio joined with a base `shift` ms early; video's base is exact.
                let (base, t) = match k {
                    TagKind::Audio => (TimeBase::Guessed(1), t.wrapping_sub(shift)),
                    _ => (TimeBase::Exact, t),
                };
                c.tag(base, tag(k, t), &mut out);
            }
            c.finish(&mut out);
            let got = times(&out);
            assert_eq!(got.len(), truth.len());
            let exact = got
                .iter()
                .zip(&truth)
                .filter(|(g, t)| diff(g.1, t.1).abs() <= 1)
                .count();
            assert!(exact * 100 >= truth.len() * 99, "shift {shift}: {exact}");
            let o = c.report.av_offsets[0];
            assert!((o.offset_ms - shift as i64).abs() <= 1, "{o:?}");
            assert!(o.uncertainty_ms <= 1);
        }
    }

    #[test]
    fn both_guessed_agree_after_one_offset() {
        let truth = wire(6000);
        let mut c = StreamClock::default();
        let mut out = Vec::new();
        for &(k, t) in &truth {
            let (base, t) = match k {
                TagKind::Audio => (TimeBase::Guessed(2), t + 1000 - 17),
                _ => (TimeBase::Guessed(1), t + 1000),
            };
            c.tag(base, tag(k, t), &mut out);
        }
        c.finish(&mut out);
        for (g, t) in times(&out).iter().zip(&truth) {
            assert!((diff(g.1, t.1) - 1000).abs() <= 1, "{g:?} {t:?}");
        }
    }

    #[test]
    fn a_tag_out_of_order_is_left_out_of_the_bounds() {
        let mut truth = wire(4000);
        // A sequence header inserted late (a server's, for a joining player) and an AVC
        // end of sequence behind the last audio.
        truth.insert(50, (TagKind::Audio, 0));
        let mut c = StreamClock::default();
        let mut out = Vec::new();
        for (i, &(k, t)) in truth.iter().enumerate() {
            let (base, t) = match k {
                TagKind::Audio => (TimeBase::Guessed(1), t.wrapping_sub(9)),
                _ => (TimeBase::Exact, t),
            };
            let ev = if i == 50 {
                Event::Tag {
                    stream: 0,
                    kind: k,
                    timestamp: t,
                    body: Bytes::from_static(&[0xaf, 0, 0x12, 0x10]),
                    frame: 0,
                }
            } else {
                tag(k, t)
            };
            c.tag(base, ev, &mut out);
        }
        c.finish(&mut out);
        assert!((c.report.av_offsets[0].offset_ms - 9).abs() <= 1);
    }
}
