//! The fuzz targets (rtmpsniff::fuzzing, run under libFuzzer by `fuzz/`) in CI without
//! libFuzzer: every input of the committed corpora, then a short coverage-less random run
//! mutating them. `make_fuzz_seeds` (ignored) cuts the seeds from samples/.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rtmpsniff::capture::FileSet;
use rtmpsniff::flow::{Reassembler, StreamEvent};
use rtmpsniff::fuzzing;
use rtmpsniff::rtmp::{ChunkReader, message::types};

use crate::util::*;

type Target = fn(&[u8]);

pub const TARGETS: [(&str, Target); 6] = [
    ("decode_frame", fuzzing::decode_frame),
    ("reassembly", fuzzing::reassembly),
    ("chunks", fuzzing::chunks),
    ("amf0", fuzzing::amf0),
    ("pipeline_frames", fuzzing::pipeline_frames),
    ("capture_file", fuzzing::capture_file),
];

fn corpus_dir(target: &str) -> PathBuf {
    root().join("fuzz").join("corpus").join(target)
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir(target))
        .unwrap_or_else(|e| panic!("fuzz/corpus/{target}: {e}"))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// A small deterministic generator (splitmix64): the same run every time, no dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Damage `data` the ways storage and capture do: bit flips, overwritten bytes, a cut, a
/// block copied over another place or inserted, a block deleted.
pub fn mutate(rng: &mut Rng, data: &[u8]) -> Vec<u8> {
    let mut d = data.to_vec();
    for _ in 0..1 + rng.below(4) {
        let n = d.len();
        match rng.below(7) {
            0 | 1 if n > 0 => {
                for _ in 0..1 + rng.below(16) {
                    let i = rng.below(n);
                    d[i] ^= 1 << rng.below(8);
                }
            }
            2 if n > 0 => {
                let i = rng.below(n);
                d[i] = [0, 0xff, 0x7f, 0x80, 1][rng.below(5)];
            }
            3 if n > 0 => d.truncate(rng.below(n)),
            4 if n > 1 => {
                let a = rng.below(n);
                let len = rng.below((n - a).min(4096)) + 1;
                let block = d[a..a + len].to_vec();
                let b = rng.below(n);
                let end = (b + len).min(n);
                d[b..end].copy_from_slice(&block[..end - b]);
            }
            5 if n > 1 => {
                let a = rng.below(n);
                let len = rng.below((n - a).min(4096)) + 1;
                let block = d[a..a + len].to_vec();
                let b = rng.below(n);
                d.splice(b..b, block);
            }
            _ if n > 1 => {
                let a = rng.below(n);
                let len = rng.below((n - a).min(4096)) + 1;
                d.drain(a..a + len);
            }
            _ => d.push(rng.next() as u8),
        }
    }
    d
}

#[test]
fn fuzz_corpora_replay_cleanly() {
    let mut total = 0;
    for (name, target) in TARGETS {
        let inputs = corpus(name);
        assert!(!inputs.is_empty(), "fuzz/corpus/{name} is empty");
        for input in &inputs {
            target(input);
        }
        eprintln!("fuzz corpus {name}: {} inputs replayed", inputs.len());
        total += inputs.len();
    }
    assert!(total > 0);
}

/// A short random run per target (a smoke test: libFuzzer runs are in `fuzz/`).
#[test]
fn fuzz_smoke_random_mutations() {
    let budget = Duration::from_millis(
        std::env::var("RTMPSNIFF_FUZZ_SMOKE_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3000),
    );
    for (i, (name, target)) in TARGETS.into_iter().enumerate() {
        let inputs = corpus(name);
        let mut rng = Rng(0x5eed_0000 + i as u64);
        let start = Instant::now();
        let mut runs = 0u64;
        while start.elapsed() < budget {
            let seed = &inputs[rng.below(inputs.len())];
            let input = mutate(&mut rng, seed);
            let r = std::panic::catch_unwind(|| target(&input));
            if r.is_err() {
                let path = std::env::temp_dir().join(format!("rtmpsniff-fuzz-crash-{name}"));
                std::fs::write(&path, &input).unwrap();
                panic!(
                    "fuzz target {name} failed; input saved in {}",
                    path.display()
                );
            }
            runs += 1;
        }
        eprintln!("fuzz smoke {name}: {runs} random inputs, no failure");
    }
}

fn frames_of(path: &Path, max: usize) -> Vec<(i32, Vec<u8>)> {
    let mut f = FileSet::open(&[path.to_string_lossy().into_owned()]).unwrap();
    let mut out = Vec::new();
    while let Some(fr) = f.next_frame() {
        out.push((fr.linktype, fr.data.to_vec()));
        if out.len() == max {
            break;
        }
    }
    out
}

/// Classic pcap bytes of `frames` (one link type).
fn pcap_of(linktype: i32, frames: &[(i32, Vec<u8>)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&65535u32.to_le_bytes());
    b.extend_from_slice(&(linktype as u32).to_le_bytes());
    for (i, (_, f)) in frames.iter().enumerate() {
        b.extend_from_slice(&(1_700_000_000u32 + i as u32 / 100).to_le_bytes());
        b.extend_from_slice(&((i as u32 % 100) * 10_000).to_le_bytes());
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(f);
    }
    b
}

/// The first blocks of a pcapng file, up to about `max` bytes (whole blocks only).
fn pcapng_prefix(data: &[u8], max: usize) -> Vec<u8> {
    let mut pos = 0;
    while pos + 12 <= data.len() {
        let len = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().unwrap()) as usize;
        if pos + len > max || pos + len > data.len() || len < 12 {
            break;
        }
        pos += len;
    }
    data[..pos].to_vec()
}

/// One direction's bytes of the first connection in `frames`, in order.
fn stream_bytes(frames: &[(i32, Vec<u8>)], client_to_server: bool) -> Vec<u8> {
    let mut r = Reassembler::new(1 << 24, 1 << 16);
    let mut out = Vec::new();
    for (lt, f) in frames {
        let Ok(s) = rtmpsniff::decode::decode(*lt, f) else {
            continue;
        };
        if (s.dst.port() == 1935) != client_to_server {
            continue;
        }
        if s.flags.syn {
            r.syn(s.seq);
        }
        r.segment(s.seq, s.payload, false, 0, &mut |ev| {
            if let StreamEvent::Data { bytes, .. } = ev {
                out.extend_from_slice(bytes)
            }
        });
    }
    out
}

/// Regenerate the seed inputs in fuzz/corpus/*/seed-* from samples/ (then `cargo fuzz cmin`
/// keeps the corpora small).
#[test]
#[ignore = "writes fuzz/corpus; run by hand"]
fn make_fuzz_seeds() {
    let samples = [
        ("h264", root().join("samples/lo-h264-aac/capture.pcap")),
        ("multi", root().join("samples/netns-multi/capture.pcap")),
        (
            "legacy",
            root().join("samples/lo-legacy-play/capture.pcapng"),
        ),
    ];
    let write = |target: &str, name: String, data: &[u8]| {
        let d = corpus_dir(target);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("seed-{name}")), data).unwrap();
    };
    for (tag, path) in &samples {
        let frames = frames_of(path, 400);
        let lt = frames[0].0;
        let sel = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276]
            .iter()
            .position(|&x| x == lt)
            .unwrap() as u8;
        // decode_frame: a few frames of each kind (SYN, data, ACK).
        for (i, (_, f)) in frames.iter().enumerate().take(12) {
            let mut d = vec![sel];
            d.extend_from_slice(f);
            d.truncate(600);
            write("decode_frame", format!("{tag}-{i}"), &d);
        }
        // pipeline_frames and capture_file: the start of the session, small.
        for (n, small) in [(24usize, false), (60, true)] {
            let mut d = vec![(sel << 1) | small as u8];
            for (_, f) in frames.iter().take(n) {
                let f = &f[..f.len().min(1600)];
                d.extend_from_slice(&(f.len() as u16).to_be_bytes());
                d.extend_from_slice(f);
            }
            if d.len() <= 64 << 10 {
                write("pipeline_frames", format!("{tag}-{n}"), &d);
            }
        }
        let raw = std::fs::read(path).unwrap();
        let cap = if raw.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
            pcapng_prefix(&raw, 24 << 10)
        } else {
            pcap_of(lt, &frames[..frames.len().min(20)])
        };
        write("capture_file", tag.to_string(), &cap);
        // reassembly: the client's segments as operations.
        let mut d = vec![0x40, 0, 8, 0, 0, 0, 0, 0];
        for (lt, f) in frames.iter().take(40) {
            let Ok(s) = rtmpsniff::decode::decode(*lt, f) else {
                continue;
            };
            let n = s.payload.len().min(255);
            d.push(0);
            d.extend_from_slice(&((s.seq & 0xffff) as u16).to_be_bytes());
            d.push(n as u8);
            d.extend_from_slice(&s.payload[..n]);
        }
        write("reassembly", tag.to_string(), &d);
        // chunks and amf0: the chunk stream after the handshake, and its AMF0 bodies.
        for c2s in [true, false] {
            let bytes = stream_bytes(&frames, c2s);
            let Some(chunk_stream) = bytes.get(3073..) else {
                continue;
            };
            let chunk_stream = &chunk_stream[..chunk_stream.len().min(6000)];
            let mut d = vec![4, 5];
            d.extend_from_slice(chunk_stream);
            write("chunks", format!("{tag}-{c2s}"), &d);
            let mut r = ChunkReader::new(0, 128, rtmpsniff::Limits::default());
            let mut msgs = Vec::new();
            let _ = r.push(chunk_stream, 0, &mut msgs);
            for (i, m) in msgs.iter().enumerate() {
                if matches!(m.type_id, types::COMMAND_AMF0 | types::DATA_AMF0) {
                    write("amf0", format!("{tag}-{c2s}-{i}"), &m.body);
                }
            }
        }
    }
}
