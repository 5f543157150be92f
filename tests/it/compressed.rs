//! Compressed captures: gzip, zstd and xz, made by their own command-line tools, told by their
//! magic bytes (the files here have no telling names), from a file and through a pipe, give
//! the same streams as the capture itself; damage inside the compression is a read error at a
//! position; something other than a capture inside is one line and status 2.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::util::{flvs, read_json, require_tool, sample, temp_dir};

/// The tools, the report's name for each, and their options to compress to standard output.
const TOOLS: [(&str, &[&str]); 3] = [("gzip", &["-c"]), ("zstd", &["-c", "-q"]), ("xz", &["-c"])];

/// `capture` compressed by `tool` into `dir`, under a name that says nothing of it.
fn compress(tool: &str, args: &[&str], capture: &Path, dir: &Path) -> PathBuf {
    require_tool(tool);
    let o = Command::new(tool).args(args).arg(capture).output().unwrap();
    assert!(
        o.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let path = dir.join(format!("capture-by-{tool}"));
    std::fs::write(&path, &o.stdout).unwrap();
    path
}

/// `rtmpsniff read -q ARG -o OUT`, with `stdin` (if any) written into its standard input.
fn read(arg: &str, stdin: Option<Vec<u8>>, out: &Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rtmpsniff"))
        .args(["read", "-q", arg, "-o", out.to_str().unwrap()])
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let writer = stdin.map(|bytes| {
        let mut pipe = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            for c in bytes.chunks(1000) {
                if pipe.write_all(c).is_err() {
                    break;
                }
            }
        })
    });
    let o = child.wait_with_output().unwrap();
    if let Some(w) = writer {
        w.join().unwrap();
    }
    o
}

fn ok(o: &Output) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn gzip_zstd_and_xz_captures_give_the_captures_streams_from_a_file_and_a_pipe() {
    for (capture, format) in [
        (sample("lo-h264-aac/capture.pcap"), "pcap"),
        (sample("lo-legacy-play/capture.pcapng"), "pcapng"),
    ] {
        let plain_out = temp_dir("compressed-plain");
        ok(&read(capture.to_str().unwrap(), None, &plain_out));
        let want = flvs(&plain_out);
        let want_report = read_json(&plain_out.join("report.json"));
        assert!(!want.is_empty(), "{}", capture.display());
        assert_eq!(
            want_report["inputs"][0]["compression"],
            serde_json::Value::Null
        );
        let dir = temp_dir("compressed");
        for (tool, args) in TOOLS {
            let file = compress(tool, args, &capture, &dir);
            for piped in [false, true] {
                let out = dir.join(format!("out-{tool}-{piped}"));
                let o = match piped {
                    false => read(file.to_str().unwrap(), None, &out),
                    true => read("-", Some(std::fs::read(&file).unwrap()), &out),
                };
                ok(&o);
                let label = format!("{} by {tool}, piped {piped}", capture.display());
                assert_eq!(flvs(&out), want, "{label}");
                let report = read_json(&out.join("report.json"));
                let input = &report["inputs"][0];
                assert_eq!(input["format"], format, "{label}");
                assert_eq!(input["compression"], tool, "{label}");
                assert_eq!(input["error"], serde_json::Value::Null, "{label}");
                for field in ["packets", "bytes", "first_time", "last_time", "link_type"] {
                    assert_eq!(
                        input[field], want_report["inputs"][0][field],
                        "{label}: {field}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_cut_or_damaged_compressed_capture_is_read_to_the_damage_with_a_warning() {
    let capture = sample("netns-multi/capture.pcap");
    let whole = temp_dir("compressed-whole");
    ok(&read(capture.to_str().unwrap(), None, &whole));
    let all_packets = read_json(&whole.join("report.json"))["inputs"][0]["packets"]
        .as_u64()
        .unwrap();
    let dir = temp_dir("compressed-damaged");
    for (tool, args) in TOOLS {
        let file = compress(tool, args, &capture, &dir);
        let bytes = std::fs::read(&file).unwrap();
        let cut = bytes[..bytes.len() / 2].to_vec();
        let mut flipped = bytes.clone();
        let mid = flipped.len() / 2;
        for b in &mut flipped[mid..mid + 64] {
            *b ^= 0xa5;
        }
        for (how, damaged) in [("cut", cut), ("flipped", flipped)] {
            let path = dir.join(format!("{tool}-{how}"));
            std::fs::write(&path, &damaged).unwrap();
            let out = dir.join(format!("out-{tool}-{how}"));
            let o = read(path.to_str().unwrap(), None, &out);
            let label = format!("{tool}, {how}");
            let err = String::from_utf8_lossy(&o.stderr);
            // The packets before the damage were used: the run goes on to its streams.
            assert_eq!(o.status.code(), Some(0), "{label}: {err}");
            assert!(
                err.contains(&format!("rtmpsniff: warning: {}: ", path.display()))
                    && err.contains(tool)
                    && err.contains("the packets before it were used"),
                "{label}: {err}"
            );
            let report = read_json(&out.join("report.json"));
            let input = &report["inputs"][0];
            assert_eq!(input["compression"], tool, "{label}");
            let packets = input["packets"].as_u64().unwrap();
            assert!(packets > 0 && packets < all_packets, "{label}: {packets}");
            let error = input["error"].as_str().unwrap();
            assert!(error.contains("of the capture inside"), "{label}: {error}");
            assert!(input["error_offset"].as_u64().unwrap() > 24, "{label}");
            assert!(!flvs(&out).is_empty(), "{label}");
        }
    }
}

#[test]
fn something_other_than_a_capture_inside_is_one_line_and_status_2() {
    let dir = temp_dir("compressed-text");
    let text = dir.join("notes.txt");
    std::fs::write(&text, "GET / HTTP/1.1\r\nHost: example\r\n\r\n".repeat(50)).unwrap();
    for (tool, args) in TOOLS {
        let file = compress(tool, args, &text, &dir);
        for piped in [false, true] {
            let out = dir.join(format!("out-{tool}-{piped}"));
            let (arg, stdin) = match piped {
                false => (file.to_str().unwrap().to_string(), None),
                true => ("-".to_string(), Some(std::fs::read(&file).unwrap())),
            };
            let o = read(&arg, stdin, &out);
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{tool}: {err}");
            assert_eq!(err.lines().count(), 1, "{tool}: {err}");
            assert_eq!(
                err.trim_end(),
                format!(
                    "rtmpsniff: {arg}: not a readable pcap or pcapng capture inside the {tool} \
                     compression (unknown file format, first bytes 47 45 54 20)"
                ),
            );
        }
    }
}
