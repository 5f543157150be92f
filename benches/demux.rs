//! Micro-benchmarks of the two layers every captured byte goes through: TCP reassembly
//! (segments of one direction with the receiver's ACKs) and the RTMP chunk reader (a publish's
//! worth of video and audio messages), and the whole pipeline on a sample capture.
//! Throughput is in bytes of stream (of capture file for the pipeline).
//!
//!     cargo bench --bench demux
//!
//! `bench/bench.sh` measures the whole tool on a real capture.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rtmpsniff::capture::FileSet;
use rtmpsniff::flow::{Reassembler, StreamEvent};
use rtmpsniff::rtmp::{ChunkReader, ChunkWriter};
use rtmpsniff::sink::FlvSink;
use rtmpsniff::{Config, Driver, Limits, Pipeline};

/// A publisher's chunk stream: video messages of `video` bytes and audio of 418 bytes,
/// interleaved as ffmpeg sends them, at `chunk_size`.
fn chunk_stream(chunk_size: u32, video: usize, frames: usize) -> Vec<u8> {
    let mut w = ChunkWriter::new(128);
    let mut out = Vec::new();
    w.set_chunk_size(chunk_size, &mut out);
    let body =
        |n: usize, seed: usize| -> Vec<u8> { (0..n).map(|i| (i * 31 + seed) as u8).collect() };
    for i in 0..frames {
        let ts = (i * 33) as u32;
        w.write(6, 1, 9, ts, &body(video, i), &mut out);
        w.write(4, 1, 8, ts, &body(418, i), &mut out);
        w.write(4, 1, 8, ts + 13, &body(418, i + 1), &mut out);
    }
    out
}

fn chunk_reader(c: &mut Criterion) {
    let mut g = c.benchmark_group("chunk_reader");
    for (name, chunk_size, video) in [
        ("4096-byte chunks, 50 KB video", 4096, 50_000),
        ("128-byte chunks, 50 KB video", 128, 50_000),
        ("4096-byte chunks, 2 KB video", 4096, 2_000),
    ] {
        let data = chunk_stream(chunk_size, video, 200);
        g.throughput(Throughput::Bytes(data.len() as u64));
        // Fed as the reassembler hands bytes on: about one TCP segment at a time.
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || (ChunkReader::new(0, 128, Limits::default()), Vec::new()),
                |(r, out)| {
                    for piece in data.chunks(1448) {
                        r.push(piece, 0, out).unwrap();
                        out.clear();
                    }
                    black_box(r.offset())
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn reassembler(c: &mut Criterion) {
    let mut g = c.benchmark_group("reassembler");
    let data: Vec<u8> = (0..8 << 20).map(|i: usize| (i * 7) as u8).collect();
    let segments: Vec<(u32, &[u8])> = data
        .chunks(1448)
        .enumerate()
        .map(|(i, p)| (1 + (i * 1448) as u32, p))
        .collect();
    g.throughput(Throughput::Bytes(data.len() as u64));
    // In order, each segment acknowledged two segments later (what a server-side capture of
    // a bulk upload shows): every byte is held, then handed on.
    g.bench_function("in order, acknowledged", |b| {
        b.iter_batched_ref(
            || {
                let mut r = Reassembler::new(8 << 20, 8192);
                r.syn(0);
                r
            },
            |r| {
                let mut n = 0usize;
                let mut out = |ev: StreamEvent<'_>| {
                    if let StreamEvent::Data { bytes, .. } = ev {
                        n += bytes.len();
                    }
                };
                for (i, (seq, p)) in segments.iter().enumerate() {
                    r.segment(*seq, p, false, 0, &mut out);
                    if i >= 2 {
                        let (s, q) = segments[i - 2];
                        r.peer_ack(s + q.len() as u32, 0, &mut out);
                    }
                }
                r.flush(0, &mut out);
                black_box(n)
            },
            BatchSize::LargeInput,
        )
    });
    // Pairs swapped: every other segment waits beyond a hole for the one before it.
    g.bench_function("pairs swapped, no ACKs", |b| {
        b.iter_batched_ref(
            || {
                let mut r = Reassembler::new(8 << 20, 8192);
                r.syn(0);
                r
            },
            |r| {
                let mut n = 0usize;
                let mut out = |ev: StreamEvent<'_>| {
                    if let StreamEvent::Data { bytes, .. } = ev {
                        n += bytes.len();
                    }
                };
                for pair in segments.chunks(2) {
                    for (seq, p) in pair.iter().rev() {
                        r.segment(*seq, p, false, 0, &mut out);
                    }
                }
                r.flush(0, &mut out);
                black_box(n)
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// The whole library on a real capture (ffmpeg publishing to nginx-rtmp, and two players),
/// through the same driver `rtmpsniff list` uses, into an inventory (nothing written).
fn pipeline(c: &mut Criterion) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/samples/netns-multi/capture.pcap"
    );
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Bytes(size));
    g.bench_function("netns-multi sample, inventory", |b| {
        b.iter(|| {
            let mut files = FileSet::open(&[path.to_string()]).expect("the sample capture");
            let mut d = Driver::new(Pipeline::new(Config::default()), FlvSink::inventory());
            d.run(&mut files, |_, _| Ok(()))
                .expect("an inventory writes nothing");
            black_box(d.sink.into_connections().len())
        })
    });
    g.finish();
}

criterion_group!(benches, chunk_reader, reassembler, pipeline);
criterion_main!(benches);
