//! A synthetic capture builder (RTMP chunk writer, TCP segmenter, pcap writer) and the tests
//! that need exact control of the wire: any segmentation, reordering, duplication or
//! retransmission of the same session gives the same FLV bytes.

use std::net::{Ipv4Addr, SocketAddrV4};

use etherparse::PacketBuilder;
use proptest::prelude::*;
use rtmpsniff::flow::Dir;
use rtmpsniff::rtmp::amf0::{Value, encode};
use rtmpsniff::rtmp::{ChunkWriter, message::types};
use rtmpsniff::sink::{FlvSink, flv};
use rtmpsniff::{Config, Driver, Pipeline};

use crate::util::*;

/// What the synthetic publisher does.
#[derive(Clone, Debug)]
pub struct Opts {
    pub chunk_size: u32,
    pub fmt3_ext: bool,
    pub frames: usize,
    pub base_ts: u32,
    pub step: u32,
    pub csid_video: u32,
    pub csid_audio: u32,
    /// Change the chunk size again after the publish began.
    pub late_chunk_size: Option<u32>,
    /// Send each video+audio pair as one aggregate message.
    pub aggregate: bool,
    /// The application in `connect` and the stream name in `publish`, as sent.
    pub app: Vec<u8>,
    pub name: Vec<u8>,
    /// More entries of the onMetaData array, after `width`.
    pub meta_extra: Vec<(Vec<u8>, Value)>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            chunk_size: 4096,
            fmt3_ext: true,
            frames: 30,
            base_ts: 0,
            step: 40,
            csid_video: 6,
            csid_audio: 4,
            late_chunk_size: None,
            aggregate: false,
            app: b"live".to_vec(),
            name: b"cam1".to_vec(),
            meta_extra: Vec::new(),
        }
    }
}

fn s(x: &str) -> Value {
    Value::String(x.as_bytes().to_vec())
}

fn amf(vals: &[Value]) -> Vec<u8> {
    let mut b = Vec::new();
    for v in vals {
        encode(v, &mut b);
    }
    b
}

/// Body of the i-th video frame (AVC, one NAL unit): sizes vary so some span many chunks.
pub fn video_body(i: usize) -> Vec<u8> {
    let n = 20 + (i * 7919) % 9000;
    let mut b = vec![if i.is_multiple_of(10) { 0x17 } else { 0x27 }, 1, 0, 0, 0];
    b.extend_from_slice(&(n as u32).to_be_bytes());
    b.extend((0..n).map(|k| (k * 31 + i) as u8));
    b
}

pub fn audio_body(i: usize) -> Vec<u8> {
    let mut b = vec![0xaf, 1];
    b.extend((0..100 + i % 50).map(|k| (k + 3 * i) as u8));
    b
}

pub const VIDEO_CONFIG: [u8; 16] = [
    0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0, 2, 0x67, 0x42, 0x01,
];
pub const AUDIO_CONFIG: [u8; 4] = [0xaf, 0, 0x12, 0x10];

/// The application writes of a publish session, in the order they happen.
pub fn publish_session(o: &Opts) -> Vec<(Dir, Vec<u8>)> {
    let mut w = Vec::new();
    let mut c = ChunkWriter::new(128);
    c.fmt3_ext = o.fmt3_ext;
    let mut sv = ChunkWriter::new(128);
    let c1: Vec<u8> = std::iter::once(3u8)
        .chain((0..1536).map(|i| (i * 7) as u8))
        .collect();
    w.push((Dir::ClientToServer, c1));
    let s012: Vec<u8> = std::iter::once(3u8)
        .chain((0..3072).map(|i| (i * 13) as u8))
        .collect();
    w.push((Dir::ServerToClient, s012));
    let mut b: Vec<u8> = (0..1536).map(|i| (i * 13) as u8).collect();
    let connect = amf(&[
        s("connect"),
        Value::Number(1.0),
        Value::Object(vec![
            (b"app".to_vec(), Value::String(o.app.clone())),
            (b"tcUrl".to_vec(), s("rtmp://127.0.0.1/live")),
            (b"flashVer".to_vec(), s("FMLE/3.0")),
        ]),
    ]);
    c.write(3, 0, types::COMMAND_AMF0, 0, &connect, &mut b);
    w.push((Dir::ClientToServer, b));
    let mut b = Vec::new();
    sv.write(
        2,
        0,
        types::WINDOW_ACK_SIZE,
        0,
        &2_500_000u32.to_be_bytes(),
        &mut b,
    );
    sv.set_chunk_size(4096, &mut b);
    sv.write(
        3,
        0,
        types::COMMAND_AMF0,
        0,
        &amf(&[s("_result"), Value::Number(1.0), Value::Null, Value::Null]),
        &mut b,
    );
    w.push((Dir::ServerToClient, b));
    let mut b = Vec::new();
    c.set_chunk_size(o.chunk_size, &mut b);
    c.write(
        3,
        0,
        types::COMMAND_AMF0,
        0,
        &amf(&[s("createStream"), Value::Number(2.0), Value::Null]),
        &mut b,
    );
    w.push((Dir::ClientToServer, b));
    let mut b = Vec::new();
    sv.write(
        3,
        0,
        types::COMMAND_AMF0,
        0,
        &amf(&[
            s("_result"),
            Value::Number(2.0),
            Value::Null,
            Value::Number(1.0),
        ]),
        &mut b,
    );
    w.push((Dir::ServerToClient, b));
    let mut b = Vec::new();
    c.write(
        8,
        1,
        types::COMMAND_AMF0,
        0,
        &amf(&[
            s("publish"),
            Value::Number(3.0),
            Value::Null,
            Value::String(o.name.clone()),
            s("live"),
        ]),
        &mut b,
    );
    let meta = amf(&[
        s("@setDataFrame"),
        s("onMetaData"),
        Value::EcmaArray(
            std::iter::once((b"width".to_vec(), Value::Number(320.0)))
                .chain(o.meta_extra.iter().cloned())
                .collect(),
        ),
    ]);
    c.write(o.csid_audio, 1, types::DATA_AMF0, o.base_ts, &meta, &mut b);
    c.write(
        o.csid_video,
        1,
        types::VIDEO,
        o.base_ts,
        &VIDEO_CONFIG,
        &mut b,
    );
    c.write(
        o.csid_audio,
        1,
        types::AUDIO,
        o.base_ts,
        &AUDIO_CONFIG,
        &mut b,
    );
    w.push((Dir::ClientToServer, b));
    for i in 0..o.frames {
        let ts = o.base_ts.wrapping_add(i as u32 * o.step);
        let mut b = Vec::new();
        if i == o.frames / 2
            && let Some(cs) = o.late_chunk_size
        {
            c.set_chunk_size(cs, &mut b);
        }
        if o.aggregate {
            // Sub-message times are on their own base; the aggregate's time rebases them.
            let mut agg = Vec::new();
            for (t, body) in [(types::VIDEO, video_body(i)), (types::AUDIO, audio_body(i))] {
                let sub_ts = 90_000 + i as u32;
                agg.push(t);
                agg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
                agg.extend_from_slice(&sub_ts.to_be_bytes()[1..]);
                agg.push((sub_ts >> 24) as u8);
                agg.extend_from_slice(&[0, 0, 0]);
                agg.extend_from_slice(&body);
                agg.extend_from_slice(&(11 + body.len() as u32).to_be_bytes());
            }
            c.write(o.csid_video, 1, types::AGGREGATE, ts, &agg, &mut b);
        } else {
            c.write(o.csid_video, 1, types::VIDEO, ts, &video_body(i), &mut b);
            c.write(o.csid_audio, 1, types::AUDIO, ts, &audio_body(i), &mut b);
        }
        w.push((Dir::ClientToServer, b));
        if i == 0 {
            let mut b = Vec::new();
            let status = amf(&[
                s("onStatus"),
                Value::Number(0.0),
                Value::Null,
                Value::Object(vec![(b"code".to_vec(), s("NetStream.Publish.Start"))]),
            ]);
            sv.write(5, 1, types::COMMAND_AMF0, 0, &status, &mut b);
            w.push((Dir::ServerToClient, b));
        }
    }
    let mut b = Vec::new();
    c.write(
        3,
        0,
        types::COMMAND_AMF0,
        0,
        &amf(&[
            s("deleteStream"),
            Value::Number(4.0),
            Value::Null,
            Value::Number(1.0),
        ]),
        &mut b,
    );
    w.push((Dir::ClientToServer, b));
    w
}

/// `writes` sent over `n` connections at once, from client ports `first_port`,
/// `first_port + 1`, ...: their frames interleaved one by one.
pub fn concurrent(writes: &[(Dir, Vec<u8>)], n: u16, first_port: u16) -> Vec<(f64, Vec<u8>)> {
    let each: Vec<Vec<(f64, Vec<u8>)>> = (0..n)
        .map(|k| {
            let mut s = Session::new(1935);
            s.client.set_port(first_port + k);
            s.frames(writes, 1400)
        })
        .collect();
    let longest = each.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::new();
    for i in 0..longest {
        for f in &each {
            out.extend(f.get(i).cloned());
        }
    }
    out
}

/// The media tags the FLV must hold for `publish_session(o)`, timestamps rebased.
pub fn expected_media(o: &Opts) -> Vec<(u8, u32, Vec<u8>)> {
    let mut v = vec![(9, 0, VIDEO_CONFIG.to_vec()), (8, 0, AUDIO_CONFIG.to_vec())];
    for i in 0..o.frames {
        let ts = i as u32 * o.step;
        v.push((9, ts, video_body(i)));
        v.push((8, ts, audio_body(i)));
    }
    v
}

pub fn plain(c2s: &[u8], s2c: &[u8]) -> Vec<(Dir, Vec<u8>)> {
    vec![
        (Dir::ClientToServer, c2s.to_vec()),
        (Dir::ServerToClient, s2c.to_vec()),
    ]
}

/// Two endpoints of a TCP connection.
pub struct Session {
    pub client: SocketAddrV4,
    pub server: SocketAddrV4,
    pub isn: [u32; 2],
}

impl Session {
    pub fn new(port: u16) -> Self {
        Session {
            client: SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 10), 50000),
            server: SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), port),
            isn: [0xffff_f000, 1000], // the client's sequence numbers wrap
        }
    }

    pub fn packet(&self, dir: Dir, seq: u32, ack: u32, flags: &str, payload: &[u8]) -> Vec<u8> {
        let (src, dst) = match dir {
            Dir::ClientToServer => (self.client, self.server),
            Dir::ServerToClient => (self.server, self.client),
        };
        let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(src.ip().octets(), dst.ip().octets(), 64)
            .tcp(src.port(), dst.port(), seq, 65535);
        if flags.contains('S') {
            b = b.syn();
        }
        if flags.contains('A') {
            b = b.ack(ack);
        }
        if flags.contains('F') {
            b = b.fin();
        }
        if flags.contains('P') {
            b = b.psh();
        }
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    /// Frames of the whole connection: handshake, the writes cut into `mss`-byte segments
    /// (each acknowledged by the peer), FIN both ways.
    pub fn frames(&self, writes: &[(Dir, Vec<u8>)], mss: usize) -> Vec<(f64, Vec<u8>)> {
        let mut next = [self.isn[0].wrapping_add(1), self.isn[1].wrapping_add(1)];
        let mut out = Vec::new();
        let mut t = 1_700_000_000.0;
        let mut push = |f: Vec<u8>, out: &mut Vec<(f64, Vec<u8>)>| {
            t += 0.001;
            out.push((t, f));
        };
        push(
            self.packet(Dir::ClientToServer, self.isn[0], 0, "S", &[]),
            &mut out,
        );
        push(
            self.packet(Dir::ServerToClient, self.isn[1], next[0], "SA", &[]),
            &mut out,
        );
        push(
            self.packet(Dir::ClientToServer, next[0], next[1], "A", &[]),
            &mut out,
        );
        for (dir, data) in writes {
            let i = dir.index();
            for piece in data.chunks(mss.max(1)) {
                push(
                    self.packet(*dir, next[i], next[1 - i], "AP", piece),
                    &mut out,
                );
                next[i] = next[i].wrapping_add(piece.len() as u32);
                push(
                    self.packet(dir.other(), next[1 - i], next[i], "A", &[]),
                    &mut out,
                );
            }
        }
        push(
            self.packet(Dir::ClientToServer, next[0], next[1], "FA", &[]),
            &mut out,
        );
        push(
            self.packet(
                Dir::ServerToClient,
                next[1],
                next[0].wrapping_add(1),
                "FA",
                &[],
            ),
            &mut out,
        );
        push(
            self.packet(
                Dir::ClientToServer,
                next[0].wrapping_add(1),
                next[1].wrapping_add(1),
                "A",
                &[],
            ),
            &mut out,
        );
        out
    }

    pub fn pcap(&self, writes: &[(Dir, Vec<u8>)], mss: usize) -> Vec<u8> {
        pcap_file(&self.frames(writes, mss))
    }
}

/// A classic pcap file (microsecond timestamps, Ethernet).
pub fn pcap_file(frames: &[(f64, Vec<u8>)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&262144u32.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    for (t, f) in frames {
        let sec = t.floor() as u32;
        let usec = ((t - t.floor()) * 1e6).round() as u32;
        b.extend_from_slice(&sec.to_le_bytes());
        b.extend_from_slice(&usec.min(999_999).to_le_bytes());
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(f);
    }
    b
}

/// Run the library pipeline on frames and return the FLV files it wrote, by name.
pub fn run_frames(frames: &[(f64, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    run_frames_reported(frames).0
}

/// [`run_frames`], and the connections' reports (as report.json has them) with the run's
/// counters.
pub fn run_frames_reported(
    frames: &[(f64, Vec<u8>)],
) -> (
    Vec<(String, Vec<u8>)>,
    serde_json::Value,
    rtmpsniff::pipeline::Stats,
) {
    let dir = temp_dir("syn");
    let sink = FlvSink::new(&dir).unwrap();
    let mut d = Driver::new(Pipeline::new(Config::default()), sink);
    d.run(&mut Frames::new(frames), |_, _| Ok(())).unwrap();
    let Driver { pipeline, sink } = d;
    let stats = pipeline.stats();
    let connections = serde_json::to_value(sink.into_connections()).unwrap();
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    let _ = std::fs::remove_dir_all(&dir);
    (files, connections, stats)
}

fn media_tags(file: &[u8]) -> Vec<(u8, u32, Vec<u8>)> {
    let (_, tags) = flv::parse(file).expect("valid FLV");
    tags.into_iter()
        .filter(|t| t.kind != 18)
        .map(|t| (t.kind, t.timestamp, t.body))
        .collect()
}

fn check(o: &Opts, mss: usize) {
    let frames = Session::new(1935).frames(&publish_session(o), mss);
    let files = run_frames(&frames);
    assert_eq!(files.len(), 1, "{o:?}");
    assert_eq!(files[0].0, "live_cam1_192.0.2.10-50000_publish.flv");
    let (_, tags) = flv::parse(&files[0].1).unwrap();
    assert_eq!(tags[0].kind, 18, "onMetaData comes first");
    assert!(
        tags[0].body.starts_with(b"\x02\x00\x0aonMetaData"),
        "@setDataFrame unwrapped"
    );
    assert_eq!(media_tags(&files[0].1), expected_media(o), "{o:?}");
}

#[test]
fn basic_publish_is_exact() {
    check(&Opts::default(), 1400);
}

#[test]
fn extended_timestamps_both_fmt3_conventions_and_wrap() {
    for fmt3_ext in [true, false] {
        for base_ts in [0x00ff_ff00, 0xffff_ff00] {
            for chunk_size in [128, 4096] {
                let o = Opts {
                    fmt3_ext,
                    base_ts,
                    chunk_size,
                    ..Opts::default()
                };
                check(&o, 1400);
            }
        }
    }
}

#[test]
fn aggregate_messages_are_split_with_their_times() {
    check(
        &Opts {
            aggregate: true,
            frames: 10,
            ..Opts::default()
        },
        1400,
    );
}

/// Handshake plus connect, as in `publish_session`, for sessions built by hand.
fn opening(c: &mut ChunkWriter) -> Vec<(Dir, Vec<u8>)> {
    let mut w = publish_session(&Opts {
        frames: 0,
        ..Opts::default()
    });
    // Keep handshake, connect and the server's answer; drop createStream and what follows.
    w.truncate(4);
    c.set_chunk_size(4096, &mut w[2].1);
    w
}

#[test]
fn two_message_streams_on_one_connection() {
    let mut c = ChunkWriter::new(128);
    let mut w = opening(&mut c);
    let mut b = Vec::new();
    for (msid, name) in [(1u32, "left"), (2, "right")] {
        c.write(
            8,
            msid,
            types::COMMAND_AMF0,
            0,
            &amf(&[
                s("publish"),
                Value::Number(5.0),
                Value::Null,
                s(name),
                s("live"),
            ]),
            &mut b,
        );
    }
    for i in 0..6 {
        for msid in [1u32, 2] {
            let mut v = video_body(i);
            v[0] = 0x12 + if i == 0 { 0 } else { 0x10 }; // Sorenson H.263: no configuration needed
            v.push(msid as u8);
            c.write(4 + msid, msid, types::VIDEO, 40 * i as u32, &v, &mut b);
        }
    }
    w.push((Dir::ClientToServer, b));
    let files = run_frames(&Session::new(1935).frames(&w, 1400));
    let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "live_left_192.0.2.10-50000_publish.flv",
            "live_right_192.0.2.10-50000_publish.flv"
        ]
    );
    for (i, (_, data)) in files.iter().enumerate() {
        let tags = media_tags(data);
        assert_eq!(tags.len(), 6);
        assert!(
            tags.iter().all(|t| *t.2.last().unwrap() == i as u8 + 1),
            "media kept to its stream"
        );
    }
}

#[test]
fn enhanced_rtmp_fourcc_is_carried_and_named() {
    let mut c = ChunkWriter::new(128);
    let mut w = opening(&mut c);
    let mut b = Vec::new();
    c.write(
        8,
        1,
        types::COMMAND_AMF0,
        0,
        &amf(&[
            s("publish"),
            Value::Number(5.0),
            Value::Null,
            s("hevc"),
            s("live"),
        ]),
        &mut b,
    );
    let start = [&[0x90u8][..], b"hvc1", &[1, 2, 3, 4]].concat();
    c.write(6, 1, types::VIDEO, 0, &start, &mut b);
    let opus_head = [&[0x90u8][..], b"Opus", b"OpusHead"].concat();
    c.write(4, 1, types::AUDIO, 0, &opus_head, &mut b);
    for i in 0..5u32 {
        let frame = [
            &[if i == 0 { 0x91u8 } else { 0xa1 }][..],
            b"hvc1",
            &[0, 0, 0],
            &[i as u8; 50],
        ]
        .concat();
        c.write(6, 1, types::VIDEO, 33 * i, &frame, &mut b);
        let opus = [&[0x91u8][..], b"Opus", &[i as u8; 20]].concat();
        c.write(4, 1, types::AUDIO, 33 * i, &opus, &mut b);
    }
    w.push((Dir::ClientToServer, b));
    let frames = Session::new(1935).frames(&w, 1400);
    let dir = temp_dir("enhanced");
    let cap = dir.join("e.pcap");
    std::fs::write(&cap, pcap_file(&frames)).unwrap();
    let o = rtmpsniff(&[
        "read",
        cap.to_str().unwrap(),
        "-o",
        dir.join("o").to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let st = &read_json(&dir.join("o/report.json"))["connections"][0]["streams"][0];
    assert_eq!(st["video_codec"], "hevc");
    assert_eq!(st["audio_codec"], "opus");
    assert_eq!(st["video_frames"], 5);
    assert_eq!(st["keyframes"], 1);
    let files = run_frames(&frames);
    assert_eq!(
        media_tags(&files[0].1).len(),
        12,
        "two sequence starts, 5 video, 5 audio"
    );
}

#[test]
fn rtmpe_and_tls_are_reported_as_encrypted_and_not_written() {
    for (first, want) in [(6u8, "rtmpe"), (9, "rtmpe"), (0x16, "tls")] {
        let mut c1 = vec![first, 3, 1];
        c1.resize(1537, 0x5a);
        let w = plain(&c1, &[first; 2000]);
        let dir = temp_dir("enc");
        let cap = dir.join("e.pcap");
        std::fs::write(&cap, Session::new(1935).pcap(&w, 1400)).unwrap();
        let o = rtmpsniff(&[
            "read",
            cap.to_str().unwrap(),
            "-o",
            dir.join("o").to_str().unwrap(),
            "-q",
        ]);
        assert_eq!(o.status.code(), Some(0), "{first}");
        let c = &read_json(&dir.join("o/report.json"))["connections"][0];
        assert_eq!(c["encrypted"], true);
        assert_eq!(c["encryption"], want);
        assert!(c["streams"].as_array().unwrap().is_empty());
    }
}

#[test]
fn any_port_finds_a_mid_stream_publish_on_another_port() {
    let o = Opts {
        frames: 40,
        ..Opts::default()
    };
    let frames = Session::new(8080).frames(&publish_session(&o), 1400);
    // The capture begins after the handshake, connect and publish.
    let late = &frames[frames.len() / 3..];
    let dir = temp_dir("anyport");
    let cap = dir.join("p.pcap");
    std::fs::write(&cap, pcap_file(late)).unwrap();
    let out = dir.join("without");
    let o1 = rtmpsniff(&[
        "read",
        cap.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(
        o1.status.code(),
        Some(1),
        "port 8080 is not looked at by default"
    );
    let out = dir.join("with");
    let o2 = rtmpsniff(&[
        "read",
        cap.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
        "--any-port",
    ]);
    assert_eq!(
        o2.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o2.stderr)
    );
    let c = &read_json(&out.join("report.json"))["connections"][0];
    assert_eq!(c["handshake"], "missing");
    assert_eq!(c["server"], "192.0.2.1:8080");
    let st = &c["streams"][0];
    assert_eq!(st["direction"], "publish");
    assert!(st["video_frames"].as_u64().unwrap() >= 20, "{st}");
}

#[test]
fn chunk_sizes_and_csid_ranges() {
    for chunk_size in [1, 127, 128, 4000, 60000, 0x7fff_ffff] {
        for (csid_video, csid_audio) in [(6, 4), (64, 319), (320, 65599)] {
            let o = Opts {
                chunk_size,
                csid_video,
                csid_audio,
                frames: 8,
                late_chunk_size: Some(333),
                ..Opts::default()
            };
            check(&o, 1460);
        }
    }
}

/// Duplicate and locally reorder frames, as a real path and capture can; the first three
/// (the TCP handshake) stay first so roles are known.
pub fn mangle(
    mut frames: Vec<(f64, Vec<u8>)>,
    swaps: &[(usize, usize)],
    dups: &[usize],
) -> Vec<(f64, Vec<u8>)> {
    let n = frames.len();
    for d in dups {
        let f = frames[d % n].clone();
        let at = (d % n + 3).min(frames.len());
        frames.insert(at, f);
    }
    // Each frame moves at most once, a few places: a displacement real paths show, where an
    // ACK may overtake the data it acknowledges.
    let mut moved = std::collections::HashSet::new();
    for &(at, dist) in swaps {
        let n = frames.len();
        let i = 3 + at % (n - 3);
        let j = (i + dist).min(n - 1);
        if moved.contains(&i) || moved.contains(&j) {
            continue;
        }
        moved.insert(i);
        moved.insert(j);
        frames.swap(i, j);
    }
    frames
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any segmentation, reordering, duplication and retransmission of the same session gives
    /// the same FLV bytes.
    #[test]
    fn any_segmentation_reordering_duplication_same_flv(
        mss in 1usize..3000,
        swaps in proptest::collection::vec((0usize..10_000, 1usize..6), 0..60),
        dups in proptest::collection::vec(0usize..10_000, 0..30),
    ) {
        let o = Opts { frames: 12, ..Opts::default() };
        let writes = publish_session(&o);
        let baseline = run_frames(&Session::new(1935).frames(&writes, 1400));
        let frames = mangle(Session::new(1935).frames(&writes, mss), &swaps, &dups);
        let got = run_frames(&frames);
        let digest = |f: &[(String, Vec<u8>)]| f.iter().map(|(n, b)| (n.clone(), b.len(), b.iter().fold(0u64, |h, &x| h.wrapping_mul(31).wrapping_add(x as u64)))).collect::<Vec<_>>();
        prop_assert_eq!(digest(&got), digest(&baseline));
    }
}

#[test]
fn a_stream_joined_mid_stream_borrows_the_configuration_of_the_same_pictures() {
    let o = Opts {
        frames: 40,
        ..Opts::default()
    };
    let writes = publish_session(&o);
    // A: captured from a third of the way in (no configuration); B: the same pictures, whole.
    let a = Session::new(1935).frames(&writes, 1400);
    let mut b_session = Session::new(1935);
    b_session.client.set_port(50001);
    let b = b_session.frames(&writes, 1400);
    let mut frames: Vec<(f64, Vec<u8>)> = a[a.len() / 3..].to_vec();
    frames.extend(b.into_iter().map(|(t, f)| (t + 100.0, f)));
    let dir = temp_dir("borrow");
    let cap = dir.join("c.pcap");
    std::fs::write(&cap, pcap_file(&frames)).unwrap();
    let out = dir.join("o");
    let o1 = rtmpsniff(&[
        "read",
        cap.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
        "--sha256",
    ]);
    assert_eq!(
        o1.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o1.stderr)
    );
    let report = read_json(&out.join("report.json"));
    let mid = report["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["handshake"] == "missing")
        .expect("the mid-stream connection");
    let st = &mid["streams"][0];
    assert!(
        st["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("taken from connection")),
        "{st}"
    );
    let file = out.join(st["file"].as_str().unwrap());
    let tags = media_tags(&std::fs::read(&file).unwrap());
    assert_eq!(tags[0], (9, 0, VIDEO_CONFIG.to_vec()));
    assert_eq!(tags[1], (8, 0, AUDIO_CONFIG.to_vec()));
    let first_video = tags[2..].iter().find(|t| t.0 == 9).unwrap();
    assert!(
        rtmpsniff::rtmp::media::video(&first_video.2)
            .unwrap()
            .keyframe
    );
    // The sum is of the file as rewritten with the configuration.
    let sum: String = {
        use sha2::{Digest, Sha256};
        Sha256::digest(std::fs::read(&file).unwrap())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert_eq!(st["sha256"].as_str().unwrap(), sum);
    // Without --sha256 no file is read back: the report has no sums.
    let plain = dir.join("plain");
    let report = read_ok(&cap, &plain);
    assert!(
        report["connections"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["streams"].as_array().unwrap())
            .all(|s| s["sha256"].is_null())
    );
}

#[test]
fn keep_alives_zero_window_probes_and_duplicates_change_nothing() {
    use rtmpsniff::capture::linktype;
    use rtmpsniff::decode::decode;
    let o = Opts {
        frames: 12,
        ..Opts::default()
    };
    let session = Session::new(1935);
    let frames = session.frames(&publish_session(&o), 1400);
    let baseline = run_frames(&frames);
    let mut mangled = Vec::new();
    let mut client_next: Option<u32> = None;
    for (i, (t, f)) in frames.iter().enumerate() {
        mangled.push((*t, f.clone()));
        let seg = decode(linktype::ETHERNET, f).unwrap();
        if seg.src == std::net::SocketAddr::V4(session.client) && !seg.payload.is_empty() {
            let next = seg.seq.wrapping_add(seg.payload.len() as u32);
            client_next = Some(next);
            // A zero-window probe: one new byte, sent before the window opens; the full
            // segment that follows carries it again. Here: the next segment's first byte.
            if let Some((_, nf)) = frames[i + 1..].iter().find(|(_, nf)| {
                let s = decode(linktype::ETHERNET, nf).unwrap();
                s.src == seg.src && !s.payload.is_empty()
            }) {
                let ns = decode(linktype::ETHERNET, nf).unwrap();
                let probe =
                    session.packet(Dir::ClientToServer, ns.seq, seg.ack, "A", &ns.payload[..1]);
                mangled.push((*t, probe));
            }
        } else if seg.src == std::net::SocketAddr::V4(session.server)
            && let Some(next) = client_next
            && seg.ack == next
        {
            // Idle and acknowledged: a keep-alive (one garbage byte just below the next
            // sequence number), sent twice as a capture on `any` can show it.
            let ka = session.packet(
                Dir::ClientToServer,
                next.wrapping_sub(1),
                seg.seq,
                "A",
                &[0xee],
            );
            mangled.push((*t, ka.clone()));
            mangled.push((*t, ka));
        }
    }
    assert!(mangled.len() > frames.len() + 20);
    assert_eq!(run_frames(&mangled), baseline);
}

/// Ethernet + IPv4 (no options): where the TCP header starts in the builder's frames.
const TCP_AT: usize = 14 + 20;

/// A frame with one bit flipped at byte `at` of its TCP segment, its checksum as it was: the
/// copy corrupted on the wire.
fn flipped(f: &[u8], at: usize, bit: u8) -> Vec<u8> {
    let mut g = f.to_vec();
    g[TCP_AT + at] ^= bit;
    g
}

/// The frame with the checksum its sender leaves to offloading (the pseudo-header's sum).
fn offloaded(f: &[u8]) -> Vec<u8> {
    let mut g = f.to_vec();
    let ip = &f[14..34];
    let tcp_len = u16::from_be_bytes([ip[2], ip[3]]) as u32 - 20;
    let mut sum: u32 = 6 + tcp_len;
    for w in ip[12..20].chunks(2) {
        sum += u16::from_be_bytes([w[0], w[1]]) as u32;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    g[TCP_AT + 16..TCP_AT + 18].copy_from_slice(&(sum as u16).to_be_bytes());
    g
}

#[test]
fn corrupted_copies_on_the_wire_change_nothing() {
    use rtmpsniff::capture::linktype;
    use rtmpsniff::decode::{Checksum, decode};
    let o = Opts {
        frames: 40,
        ..Opts::default()
    };
    let session = Session::new(1935);
    let right = session.frames(&publish_session(&o), 1000);
    // Checksums computed (a capture off the hosts), or left to offloading (on the sender;
    // there the copies that were corrupted are those whose checksum was made in software
    // before a bit flipped, as netem does).
    let offl: Vec<_> = right.iter().map(|(t, f)| (*t, offloaded(f))).collect();
    assert_eq!(
        decode(linktype::ETHERNET, &offl[5].1).unwrap().checksum(),
        Checksum::Offloaded
    );
    for frames in [right.clone(), offl] {
        let (baseline, base_report, _) = run_frames_reported(&frames);
        assert_eq!(baseline.len(), 1);
        // Before every fourth frame from the third on, a copy of it corrupted on the wire
        // (which the receiver dropped; what follows is its retransmission): a flipped bit in
        // the sequence number (2^29 ahead or behind), the acknowledgement, a flag (RST, FIN,
        // SYN) or a port.
        let damage: [(usize, u8); 8] = [
            (4, 0x20),
            (5, 0x80),
            (8, 0x10),
            (13, 0x04),
            (13, 0x01),
            (13, 0x02),
            (1, 0x01),
            (2, 0x40),
        ];
        let mut mangled = Vec::new();
        let mut n = 0;
        for (i, (t, f)) in frames.iter().enumerate() {
            if i >= 3 && i % 4 == 3 {
                let (at, bit) = damage[n % damage.len()];
                n += 1;
                let bad = flipped(&right[i].1, at, bit);
                assert_eq!(
                    decode(linktype::ETHERNET, &bad).unwrap().checksum(),
                    Checksum::Wrong
                );
                mangled.push((*t, bad));
            }
            mangled.push((*t, f.clone()));
        }
        assert!(n > 3 * damage.len());
        let (files, report, stats) = run_frames_reported(&mangled);
        let names = |f: &[(String, Vec<u8>)]| f.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
        assert_eq!(names(&files), names(&baseline));
        assert!(files == baseline, "the same names, other bytes");
        assert_eq!(stats.bad_checksums, n as u64);
        assert_eq!(stats.connections, 1);
        let c = &report[0];
        assert_eq!(report.as_array().unwrap().len(), 1);
        assert_eq!(c["gaps"], serde_json::json!([]));
        assert_eq!(c["warnings"], base_report[0]["warnings"]);
        assert_eq!(c["streams"][0]["video_frames"], 40);
        // Those of the connection's own 4-tuple are its own bad checksums (a flipped port
        // makes another 4-tuple).
        let own = c["bad_checksums"].as_u64().unwrap();
        assert!(own > 0 && own < n as u64, "{own} of {n}");
    }
}

#[test]
fn where_every_checksum_is_wrong_a_reset_still_ends_the_connection() {
    // A capture whose checksums are all wrong (offloading that leaves other values, a tool
    // that writes none): the segments are the data, and a RST is a RST.
    let o = Opts {
        frames: 20,
        ..Opts::default()
    };
    let session = Session::new(1935);
    let zeroed = |f: &[u8]| {
        let mut g = f.to_vec();
        g[TCP_AT + 16] ^= 0x5a;
        g
    };
    let mut frames: Vec<_> = session
        .frames(&publish_session(&o), 1000)
        .iter()
        .map(|(t, f)| (*t, zeroed(f)))
        .collect();
    let (baseline, _, stats) = run_frames_reported(&frames);
    assert_eq!(stats.bad_checksums, 0);
    assert_eq!(baseline.len(), 1);
    // The client resets it two thirds of the way: what follows is a connection without its
    // start (its own report).
    let at = frames.len() * 2 / 3;
    let seg = rtmpsniff::decode::decode(1, &frames[at].1).unwrap();
    let rst = session.packet(Dir::ClientToServer, seg.seq, 0, "", &[]);
    let mut rst = zeroed(&rst);
    rst[TCP_AT + 13] |= 0x04;
    frames.insert(at, (frames[at].0, rst));
    let (_, report, stats) = run_frames_reported(&frames);
    assert_eq!(stats.bad_checksums, 0);
    assert_eq!(report.as_array().unwrap().len(), 2, "ended by the RST");
}
