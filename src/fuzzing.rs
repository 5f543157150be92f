//! Fuzz targets: each takes arbitrary bytes, drives one layer (or the whole tool) with them and
//! panics only when an invariant breaks. `fuzz/` runs them under libFuzzer (`cargo fuzz`);
//! `tests/it/fuzz.rs` replays the committed corpora and a short random run without it, so CI
//! exercises the same code on the stable toolchain.
//!
//! Not part of the tool's interface.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::capture::Frame;
use crate::capture::linktype;
use crate::config::{Config, Limits};
use crate::decode;
use crate::flow::{Reassembler, StreamEvent};
use crate::pipeline::Pipeline;
use crate::rtmp::amf0;
use crate::rtmp::{ChunkReader, Message};
use crate::run::Driver;
use crate::sink::{FlvSink, flv};

/// Link types a frame can be decoded as, chosen by the first input byte.
const LINKTYPES: [i32; 11] = [
    linktype::NULL,
    linktype::ETHERNET,
    linktype::RAW_OPENBSD,
    linktype::RAW_BSDOS,
    linktype::RAW,
    linktype::LOOP,
    linktype::LINUX_SLL,
    linktype::IPV4,
    linktype::IPV6,
    linktype::LINUX_SLL2,
    999,
];

/// A little reader over the fuzz input, for targets that take structured decisions from it.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.data.split_at(n.min(self.data.len()));
        self.data = b;
        a
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// One frame through the link/IP/TCP decoder: it never panics, and what it returns lies
/// inside the frame.
pub fn decode_frame(data: &[u8]) {
    let Some((&sel, frame)) = data.split_first() else {
        return;
    };
    let lt = LINKTYPES[sel as usize % LINKTYPES.len()];
    if let Ok(seg) = decode::decode(lt, frame) {
        let inside = |s: &[u8]| {
            let (a, b) = (frame.as_ptr() as usize, s.as_ptr() as usize);
            s.is_empty() || (b >= a && b + s.len() <= a + frame.len())
        };
        assert!(inside(seg.payload), "payload outside the frame");
        assert!(inside(seg.tcp), "TCP segment outside the frame");
        let _ = seg.checksum();
    }
}

/// The reassembler under a stream of segments and acknowledgements taken from the input:
/// what it hands on is contiguous (data and gaps, in order, from offset 0 of the stream it
/// chose), and it never buffers more than its limit.
pub fn reassembly(data: &[u8]) {
    let mut inp = Input { data };
    let max_bytes = 1 + inp.u16() as usize * 4;
    let max_segments = 1 + inp.u8() as usize;
    let mut r = Reassembler::new(max_bytes, max_segments);
    let base = inp.u32();
    if inp.u8() & 1 == 1 {
        r.syn(base);
    }
    let mut expect: Option<u64> = None;
    let mut check = |ev: StreamEvent<'_>| {
        let (offset, len) = match ev {
            StreamEvent::Data { offset, bytes } => {
                assert!(!bytes.is_empty(), "empty data event");
                (offset, bytes.len() as u64)
            }
            StreamEvent::Gap { offset, len } => {
                assert!(len > 0, "empty gap");
                (offset, len)
            }
        };
        if let Some(e) = expect {
            assert_eq!(offset, e, "events are not contiguous");
        }
        expect = Some(offset + len);
    };
    let mut frame = 0;
    while !inp.is_empty() {
        frame += 1;
        let op = inp.u8();
        // Sequence numbers near the base, so segments overlap and leave holes.
        let seq = base.wrapping_add(inp.u16() as u32).wrapping_sub(64);
        match op % 4 {
            0 | 1 => {
                let n = inp.u8() as usize;
                let payload = inp.bytes(n);
                r.segment(seq, payload, op & 0x10 != 0, frame, &mut check);
            }
            2 => r.peer_ack(seq, frame, &mut check),
            _ => r.flush(frame, &mut check),
        }
        assert!(
            r.buffered_bytes() <= max_bytes,
            "{} bytes buffered over a limit of {max_bytes}",
            r.buffered_bytes()
        );
    }
    r.flush(frame, &mut check);
    assert_eq!(r.buffered_bytes(), 0, "bytes left after the final flush");
}

fn messages(m: &[Message]) -> Vec<(u32, u32, u8, u32, &[u8])> {
    m.iter()
        .map(|m| (m.csid, m.msid, m.type_id, m.timestamp, m.body.as_ref()))
        .collect()
}

/// The chunk reader on arbitrary bytes, fed whole and fed in pieces: the same messages and
/// the same error either way (the design's "split at any byte boundary" contract).
pub fn chunks(data: &[u8]) {
    let mut inp = Input { data };
    let chunk_size = match inp.u8() {
        0 => 1,
        1 => crate::rtmp::chunk::MAX_CHUNK_SIZE,
        n => n as u32 * 32,
    };
    let step = 1 + inp.u8() as usize % 17;
    let limits = Limits {
        message_bytes: 1 << 16,
        partial_bytes: 1 << 18,
        chunk_streams: 16,
        ..Limits::default()
    };
    let stream = inp.data;
    let run = |pieces: &mut dyn Iterator<Item = &[u8]>| {
        let mut r = ChunkReader::new(0, chunk_size, limits.clone());
        let mut out = Vec::new();
        let mut res = Ok(());
        for p in pieces {
            res = r.push(p, 0, &mut out);
            if res.is_err() {
                break;
            }
        }
        if res.is_ok() {
            res = r.finish(0, &mut out);
        }
        (out, res)
    };
    let (whole, whole_res) = run(&mut std::iter::once(stream));
    let (split, split_res) = run(&mut stream.chunks(step));
    assert_eq!(
        whole_res, split_res,
        "errors differ when fed in {step}-byte pieces"
    );
    assert_eq!(
        messages(&whole),
        messages(&split),
        "messages differ when fed in {step}-byte pieces"
    );
}

/// AMF0 decoding: never panics, honours the depth limit, and what it decodes encodes to bytes
/// that decode to the same encoding again.
pub fn amf0(data: &[u8]) {
    let (vals, _) = amf0::decode_all(data, 32, 4096);
    for v in vals {
        let mut once = Vec::new();
        amf0::encode(&v, &mut once);
        let mut r = amf0::Reader::new(&once, 64, 1 << 20);
        let again = r.value().expect("an encoded value decodes");
        let mut twice = Vec::new();
        amf0::encode(&again, &mut twice);
        assert_eq!(once, twice, "encode/decode is not stable for {v:?}");
    }
}

static SCRATCH: AtomicU64 = AtomicU64::new(0);

/// A scratch path unique to this process and call.
fn scratch(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "rtmpsniff-fuzz-{}-{}-{tag}",
        std::process::id(),
        SCRATCH.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Every frame list through the pipeline and the FLV sink; the files written must be valid.
fn run_pipeline<'a>(frames: impl Iterator<Item = Frame<'a>>, limits: Limits, any_port: bool) {
    let dir = scratch("out");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        drive(frames, limits, any_port, &dir);
    }));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

fn drive<'a>(frames: impl Iterator<Item = Frame<'a>>, limits: Limits, any_port: bool, dir: &Path) {
    let sink = FlvSink::new(dir)
        .expect("scratch folder")
        .with_limits(&limits);
    let config = Config {
        ports: vec![1935],
        any_port,
        limits,
        ..Config::default()
    };
    let mut d = Driver::new(Pipeline::new(config), sink);
    for f in frames {
        d.frame(&f).expect("write into the scratch folder");
    }
    d.finish().expect("write into the scratch folder");
    let connections = d.sink.into_connections();
    serde_json::to_vec(&connections).expect("the report serialises");
    for e in std::fs::read_dir(dir).expect("scratch folder") {
        let path = e.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read back");
        assert!(
            flv::parse(&bytes).is_some(),
            "{} is not a valid FLV",
            path.display()
        );
    }
}

/// Small limits, so the fuzzer reaches every one of them.
fn small_limits(sel: u8) -> Limits {
    if sel & 1 == 0 {
        return Limits::default();
    }
    Limits {
        reassembly_bytes: 4096,
        reassembly_segments: 8,
        message_bytes: 4096,
        partial_bytes: 8192,
        lockon_bytes: 8192,
        chunk_streams: 4,
        amf_depth: 4,
        amf_elements: 64,
        text_bytes: 16,
        connections: 4,
        streams_per_connection: 2,
        buffered_bytes_total: 16 << 10,
        open_files: 2,
        queue_bytes: 64 << 10,
        http_viewer_bytes: 64 << 10,
    }
}

/// The whole pipeline on frames cut from the input (a length byte pair, then the frame),
/// without libpcap: fast enough for the fuzzer to go deep into RTMP.
pub fn pipeline_frames(data: &[u8]) {
    let mut inp = Input { data };
    let sel = inp.u8();
    let lt = LINKTYPES[(sel >> 1) as usize % LINKTYPES.len()];
    let mut frames = Vec::new();
    while !inp.is_empty() {
        let n = inp.u16() as usize;
        frames.push(inp.bytes(n));
    }
    let frames = frames.iter().enumerate().map(|(i, d)| Frame {
        ts: i as f64 * 0.001,
        number: i as u64 + 1,
        linktype: lt,
        data: d,
        orig_len: d.len() as u32,
    });
    run_pipeline(frames, small_limits(sel), sel & 0x80 != 0);
}

/// The whole tool from capture file bytes: libpcap reads them (pcap or pcapng, any damage),
/// then the pipeline and the FLV sink.
pub fn capture_file(data: &[u8]) {
    let path = scratch("cap");
    std::fs::write(&path, data).expect("write the scratch capture");
    let p = path.to_string_lossy().into_owned();
    let result = std::panic::catch_unwind(|| {
        if let Ok(mut files) = crate::capture::FileSet::open(std::slice::from_ref(&p)) {
            let mut frames = Vec::new();
            while let Some(f) = files.next_frame() {
                frames.push((f.ts, f.number, f.linktype, f.data.to_vec(), f.orig_len));
            }
            run_pipeline(
                frames
                    .iter()
                    .map(|(ts, number, linktype, data, orig_len)| Frame {
                        ts: *ts,
                        number: *number,
                        linktype: *linktype,
                        data,
                        orig_len: *orig_len,
                    }),
                Limits::default(),
                true,
            );
        }
    });
    let _ = std::fs::remove_file(&path);
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}
