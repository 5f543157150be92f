//! Every limit in `Limits` is reached by an input made for it, counted, reported on the
//! connection (and in the run's totals), and the run goes on; README.md documents each one
//! with its default.

use rtmpsniff::config::LimitHits;
use rtmpsniff::pipeline::Stats;
use rtmpsniff::sink::report::ConnectionReport;
use rtmpsniff::sink::{FlvSink, flv};
use rtmpsniff::{Config, Driver, Limits, Pipeline};

use crate::synthetic::{self, Opts, Session};
use crate::util::*;

struct Run {
    stats: Stats,
    sink_hits: LimitHits,
    connections: Vec<ConnectionReport>,
    files: Vec<(String, Vec<u8>)>,
}

fn run(limits: Limits, frames: &[(f64, Vec<u8>)]) -> Run {
    let dir = temp_dir("limits");
    let sink = FlvSink::new(&dir).unwrap().with_limits(&limits);
    let p = Pipeline::new(Config {
        limits,
        ..Config::default()
    });
    let mut d = Driver::new(p, sink);
    d.run(&mut Frames::new(frames), |_, _| Ok(())).unwrap();
    let Driver { pipeline: p, sink } = d;
    let sink_hits = sink.limit_hits.clone();
    let connections = sink.into_connections();
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
    for (name, data) in &files {
        assert!(flv::parse(data).is_some(), "{name} is not a valid FLV");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Run {
        stats: p.stats(),
        sink_hits,
        connections,
        files,
    }
}

/// A publish session's frames, `mss`-byte segments.
fn session(o: &Opts, mss: usize) -> Vec<(f64, Vec<u8>)> {
    Session::new(1935).frames(&synthetic::publish_session(o), mss)
}

/// The same session with client data frame `k` held back to the very end: a hole that
/// stays open while everything after it is buffered.
fn with_hole(mut frames: Vec<(f64, Vec<u8>)>, k: usize) -> Vec<(f64, Vec<u8>)> {
    // Frames alternate data, ACK after the three handshake frames; take a data frame.
    let i = 3 + 2 * k;
    let f = frames.remove(i);
    // Drop the receiver's ACKs too, so nothing is released or declared lost early.
    let mut kept: Vec<_> = frames
        .into_iter()
        .enumerate()
        .filter(|(j, _)| *j < i || (j - i) % 2 == 1)
        .map(|(_, f)| f)
        .collect();
    kept.push(f);
    kept
}

/// Two sessions from two client ports, their frames interleaved after the first's start.
fn two_sessions(o: &Opts) -> Vec<(f64, Vec<u8>)> {
    sessions(o, 2)
}

/// `n` sessions from `n` client ports, their frames interleaved one by one.
fn sessions(o: &Opts, n: u16) -> Vec<(f64, Vec<u8>)> {
    synthetic::concurrent(&synthetic::publish_session(o), n, 50000)
}

fn reported(r: &Run, name: &str) -> bool {
    r.connections.iter().any(|c| {
        c.summary
            .limits_hit
            .iter()
            .any(|l| l.name == name && l.hits > 0)
    })
}

fn check(r: &Run, name: &str, hits: impl Fn(&LimitHits) -> u64) {
    assert!(hits(&r.stats.limit_hits) > 0, "{name}: not counted");
    assert!(reported(r, name), "{name}: not on the connection");
    let warned = r
        .connections
        .iter()
        .flat_map(|c| &c.summary.warnings)
        .count();
    assert!(warned > 0, "{name}: no warning");
}

fn small(f: impl FnOnce(&mut Limits)) -> Limits {
    let mut l = Limits::default();
    f(&mut l);
    l
}

#[test]
fn reassembly_bytes_and_segments() {
    let frames = with_hole(session(&Opts::default(), 500), 40);
    let r = run(small(|l| l.reassembly_bytes = 4000), &frames);
    check(&r, "reassembly_bytes", |h| h.reassembly_bytes);
    let r = run(small(|l| l.reassembly_segments = 3), &frames);
    check(&r, "reassembly_segments", |h| h.reassembly_segments);
}

#[test]
fn message_partial_and_chunk_stream_limits() {
    let o = Opts {
        chunk_size: 128,
        ..Opts::default()
    };
    let frames = session(&o, 1400);
    let r = run(small(|l| l.message_bytes = 1000), &frames);
    check(&r, "message_bytes", |h| h.message_bytes);
    let r = run(small(|l| l.partial_bytes = 100), &frames);
    check(&r, "partial_bytes", |h| h.partial_bytes);
    let r = run(small(|l| l.chunk_streams = 2), &frames);
    check(&r, "chunk_streams", |h| h.chunk_streams);
}

#[test]
fn amf_and_text_limits() {
    let frames = session(&Opts::default(), 1400);
    let r = run(small(|l| l.amf_depth = 0), &frames);
    check(&r, "amf_depth", |h| h.amf_depth);
    let r = run(small(|l| l.amf_elements = 3), &frames);
    check(&r, "amf_elements", |h| h.amf_elements);
    let r = run(small(|l| l.text_bytes = 2), &frames);
    check(&r, "text_bytes", |h| h.text_bytes);
    // The name is cut, the file is still written under it.
    assert_eq!(r.connections[0].streams[0].name.as_deref(), Some("ca"));
    assert_eq!(r.files.len(), 1);
}

#[test]
fn connection_stream_and_memory_limits() {
    let frames = two_sessions(&Opts::default());
    let r = run(small(|l| l.connections = 1), &frames);
    check(&r, "connections", |h| h.connections);
    assert!(r.stats.connections_evicted > 0);
    let r = run(small(|l| l.streams_per_connection = 0), &frames);
    check(&r, "streams_per_connection", |h| h.streams_per_connection);
    assert!(r.files.is_empty());
    let frames = with_hole(session(&Opts::default(), 500), 40);
    let r = run(small(|l| l.buffered_bytes_total = 20_000), &frames);
    check(&r, "buffered_bytes_total", |h| h.buffered_bytes_total);
}

#[test]
fn open_files_limit_closes_and_reopens_without_losing_a_tag() {
    let o = Opts::default();
    let frames = two_sessions(&o);
    let all = run(Limits::default(), &frames);
    let one = run(small(|l| l.open_files = 1), &frames);
    assert!(one.sink_hits.open_files > 0, "{:?}", one.sink_hits);
    assert_eq!(all.sink_hits.open_files, 0);
    assert_eq!(one.files.len(), 2);
    // Closed and opened again many times, the files are the same bytes (header flags too).
    assert_eq!(one.files, all.files);
}

#[test]
fn more_streams_than_open_files_are_not_reopened_for_every_tag() {
    // 40 streams at once, 8 open files: a closed file keeps its stream's tags until it has a
    // batch (or the end), so files are opened again a few times each, not once per tag.
    let o = Opts {
        frames: 60,
        ..Opts::default()
    };
    let frames = sessions(&o, 40);
    let all = run(Limits::default(), &frames);
    let few = run(small(|l| l.open_files = 8), &frames);
    assert_eq!(all.files.len(), 40);
    assert_eq!(few.files, all.files);
    let tags = 40 * (2 * 60 + 3);
    let reopens = few.sink_hits.open_files;
    // Each file is closed once it is made (for the next one), and about once more.
    assert!(
        reopens > 0 && reopens <= 3 * 40,
        "{reopens} closes for {tags} tags"
    );
}

#[test]
fn readme_documents_every_limit_with_its_default() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for (name, value) in Limits::default().named() {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}` |")))
            .unwrap_or_else(|| panic!("README.md has no Limits row for {name}"));
        assert!(
            row.contains(&format!("| {value} ")) || row.contains(&format!("({value})")),
            "README.md row for {name} does not give its default {value}: {row}"
        );
    }
}

#[test]
fn syn_flood_is_bounded_and_spares_the_real_session() {
    // 100,000 SYNs from distinct ports, interleaved with a real publish, at a table of 1000.
    let real = session(&Opts::default(), 1400);
    let mut frames = Vec::new();
    let mut real_frames = real.into_iter();
    for i in 0..100_000u32 {
        let mut b = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([198, 51, 100, (i % 250) as u8], [192, 0, 2, 1], 64)
            .tcp(1024 + (i / 250) as u16, 1935, i, 1024)
            .syn()
            .write(&mut b, &[])
            .unwrap();
        // At the real session's packet time: the flood is not idle, so it is evicted, not
        // expired (see idle_timeout).
        frames.push((1_700_000_000.0, b));
        if i % 1000 == 0
            && let Some(f) = real_frames.next()
        {
            frames.push(f);
        }
    }
    frames.extend(real_frames);
    let start = std::time::Instant::now();
    let r = run(small(|l| l.connections = 1000), &frames);
    assert!(start.elapsed().as_secs() < 60, "{:?}", start.elapsed());
    assert!(r.stats.connections_evicted >= 99_000);
    assert_eq!(r.stats.limit_hits.connections, r.stats.connections_evicted);
    // The publish carried data both ways, so the flood never pushed it out.
    assert_eq!(r.files.len(), 1);
    let (_, tags) = flv::parse(&r.files[0].1).unwrap();
    assert_eq!(
        tags.iter().filter(|t| t.kind != 18).count(),
        synthetic::expected_media(&Opts::default()).len()
    );
}

#[test]
fn limits_set_on_the_command_line_hold_and_are_reported() {
    let cap = root().join("samples/netns-multi/capture.pcap");
    let base = temp_dir("limits-cli-base");
    let want = read_ok(&cap, &base);
    // open_files=1: every file closed and opened again, the same bytes in the end.
    let out = temp_dir("limits-cli");
    let o = rtmpsniff(&[
        "read",
        "-q",
        cap.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--limit",
        "open_files=1",
        "--limit",
        "text_bytes=3",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let got = read_json(&out.join("report.json"));
    let limit = |r: &serde_json::Value, name: &str| {
        r["limits"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(limit(&got, "open_files")["value"], 1);
    assert!(limit(&got, "open_files")["hits"].as_u64().unwrap() > 0);
    assert_eq!(limit(&got, "text_bytes")["value"], 3);
    assert!(limit(&got, "text_bytes")["hits"].as_u64().unwrap() > 0);
    assert_eq!(limit(&want, "open_files")["hits"], 0);
    let bytes = |dir: &std::path::Path, r: &serde_json::Value| {
        let mut v: Vec<Vec<u8>> = r["connections"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["streams"].as_array().unwrap().iter())
            .filter_map(|s| s["file"].as_str())
            .map(|f| std::fs::read(dir.join(f)).unwrap())
            .collect();
        v.sort();
        v
    };
    let (got_files, want_files) = (bytes(&out, &got), bytes(&base, &want));
    assert!(!want_files.is_empty());
    assert_eq!(got_files, want_files);
    // A name that is not a limit: one line naming the limits, status 2, nothing written.
    let bad = temp_dir("limits-cli-bad").join("out");
    let o = rtmpsniff(&[
        "read",
        cap.to_str().unwrap(),
        "-o",
        bad.to_str().unwrap(),
        "--limit",
        "opened_files=1",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no such limit") && err.contains("open_files"),
        "{err}"
    );
    assert!(!bad.exists());
}

#[test]
fn a_low_descriptor_limit_lowers_open_files_instead_of_failing() {
    require_tool("bash");
    let o = Opts {
        frames: 20,
        ..Opts::default()
    };
    let dir = temp_dir("limits-ulimit");
    let cap = dir.join("in.pcap");
    std::fs::write(&cap, synthetic::pcap_file(&sessions(&o, 60))).unwrap();
    let (base, low) = (dir.join("base"), dir.join("low"));
    let want = read_ok(&cap, &base);
    let script = format!(
        "ulimit -n 48 && exec '{}' read -q '{}' -o '{}'",
        env!("CARGO_BIN_EXE_rtmpsniff"),
        cap.display(),
        low.display()
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("open_files lowered from 256 to 16: the descriptor limit (ulimit -n) is 48"),
        "{err}"
    );
    let got = read_json(&low.join("report.json"));
    let open_files = got["limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "open_files")
        .unwrap()
        .clone();
    assert_eq!(open_files["value"], 16);
    assert!(open_files["hits"].as_u64().unwrap() > 0);
    // The report's two counts of it agree.
    assert_eq!(got["stats"]["limit_hits"]["open_files"], open_files["hits"]);
    let streams = |r: &serde_json::Value| r["connections"].as_array().unwrap().len();
    assert_eq!(streams(&got), 60);
    assert_eq!(streams(&got), streams(&want));
    for c in got["connections"].as_array().unwrap() {
        let f = c["streams"][0]["file"].as_str().unwrap();
        let a = std::fs::read(low.join(f)).unwrap();
        let b = std::fs::read(base.join(f)).unwrap();
        assert!(a == b, "{f} differs");
    }
}

/// Writes the capture `bench/many-streams.sh` times: 300 publishes at once (more than
/// `open_files`), 200 video and audio frames each. Run by hand (ignored):
/// `RTMPSNIFF_CAPTURE=/tmp/many.pcap cargo test --test it many_streams_capture -- --ignored`.
#[test]
#[ignore]
fn many_streams_capture() {
    let path = std::env::var("RTMPSNIFF_CAPTURE").unwrap_or_else(|_| "/tmp/many.pcap".into());
    let n: u16 = std::env::var("RTMPSNIFF_STREAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let o = Opts {
        frames: 200,
        ..Opts::default()
    };
    std::fs::write(&path, synthetic::pcap_file(&sessions(&o, n))).unwrap();
}

/// `n` publishes that each send the first `sent` bytes of a 16 MiB video message and never
/// the rest: partial messages held to the end of the input.
fn partial_message_sessions(n: u16, sent: usize) -> Vec<(f64, Vec<u8>)> {
    let o = Opts {
        frames: 0,
        ..Opts::default()
    };
    let mut writes = synthetic::publish_session(&o);
    writes.pop(); // deleteStream
    let mut c = rtmpsniff::rtmp::ChunkWriter::new(o.chunk_size);
    let body = vec![0x17u8; (1 << 24) - 1];
    let mut b = Vec::new();
    c.write(o.csid_video, 1, 9, 0, &body, &mut b);
    b.truncate(sent);
    for piece in b.chunks(1 << 20) {
        writes.push((rtmpsniff::flow::Dir::ClientToServer, piece.to_vec()));
    }
    synthetic::concurrent(&writes, n, 40000)
}

/// Writes the capture `bench/memory-limit.sh` measures: 64 connections each holding 15 MiB of
/// a 16 MiB message. Run by hand (ignored), as for `many_streams_capture`.
#[test]
#[ignore]
fn partial_messages_capture() {
    let path = std::env::var("RTMPSNIFF_CAPTURE").unwrap_or_else(|_| "/tmp/partial.pcap".into());
    let n: u16 = std::env::var("RTMPSNIFF_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    std::fs::write(
        &path,
        synthetic::pcap_file(&partial_message_sessions(n, 15 << 20)),
    )
    .unwrap();
}

/// `n` connections that each send `segments` one-byte segments with a hole before each, never
/// acknowledged: out-of-order data held to the end (the costliest bytes to keep).
fn hole_sessions(n: u16, segments: u32) -> Vec<(f64, Vec<u8>)> {
    use rtmpsniff::flow::Dir;
    let mut out = Vec::new();
    let mut t = 1_700_000_000.0;
    let mut sessions: Vec<Session> = (0..n)
        .map(|k| {
            let mut s = Session::new(1935);
            s.client.set_port(20000 + k);
            s
        })
        .collect();
    for s in &mut sessions {
        let (c, v) = (s.isn[0], s.isn[1]);
        for (dir, seq, ack, flags) in [
            (Dir::ClientToServer, c, 0, "S"),
            (Dir::ServerToClient, v, c.wrapping_add(1), "SA"),
            (
                Dir::ClientToServer,
                c.wrapping_add(1),
                v.wrapping_add(1),
                "A",
            ),
        ] {
            t += 1e-6;
            out.push((t, s.packet(dir, seq, ack, flags, &[])));
        }
    }
    for i in 0..segments {
        for s in &sessions {
            let seq = s.isn[0].wrapping_add(2 + 2 * i);
            t += 1e-6;
            out.push((
                t,
                s.packet(
                    Dir::ClientToServer,
                    seq,
                    s.isn[1].wrapping_add(1),
                    "A",
                    b"x",
                ),
            ));
        }
    }
    out
}

/// Writes the capture `bench/memory-limit.sh` measures for out-of-order segments. Ignored.
#[test]
#[ignore]
fn hole_segments_capture() {
    let path = std::env::var("RTMPSNIFF_CAPTURE").unwrap_or_else(|_| "/tmp/holes.pcap".into());
    let n: u16 = std::env::var("RTMPSNIFF_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    std::fs::write(&path, synthetic::pcap_file(&hole_sessions(n, 8000))).unwrap();
}
