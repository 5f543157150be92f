//! The command line's contract: exit statuses, one clear line for a bad input, no clobbering.

use crate::synthetic;
use crate::util::*;

#[test]
fn missing_file_directory_and_text_file_exit_2_naming_the_path() {
    let out = temp_dir("bad");
    let text = out.join("notes.txt");
    std::fs::write(&text, "this is not a capture\n").unwrap();
    for bad in [
        "/nonexistent/capture.pcap",
        out.to_str().unwrap(),
        text.to_str().unwrap(),
    ] {
        let o = rtmpsniff(&["read", bad, "-o", out.join("o").to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(bad), "{err}");
    }
}

#[test]
fn capture_without_rtmp_exits_1() {
    let out = temp_dir("nortmp");
    let cap = out.join("web.pcap");
    // A TCP conversation on port 80 only.
    let s = synthetic::Session::new(80);
    std::fs::write(
        &cap,
        s.pcap(
            &synthetic::plain(b"GET / HTTP/1.0\r\n\r\n", b"HTTP/1.0 200 OK\r\n\r\n"),
            1000,
        ),
    )
    .unwrap();
    let o = rtmpsniff(&[
        "read",
        cap.to_str().unwrap(),
        "-o",
        out.join("o").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no RTMP"));
}

#[test]
fn second_run_never_overwrites() {
    let out = temp_dir("twice");
    let cap = out.join("s.pcap");
    let s = synthetic::Session::new(1935);
    std::fs::write(
        &cap,
        s.pcap(
            &synthetic::publish_session(&synthetic::Opts::default()),
            1400,
        ),
    )
    .unwrap();
    let dir = out.join("o");
    for _ in 0..2 {
        let o = rtmpsniff(&[
            "read",
            cap.to_str().unwrap(),
            "-o",
            dir.to_str().unwrap(),
            "-q",
        ]);
        assert_eq!(o.status.code(), Some(0));
    }
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(names.contains(&"report.json".to_string()));
    assert!(names.contains(&"report-2.json".to_string()));
}

#[test]
fn several_files_read_as_one_timeline() {
    // A connection split across two rotated capture files continues.
    let out = temp_dir("rotated");
    let s = synthetic::Session::new(1935);
    let segs = synthetic::publish_session(&synthetic::Opts::default());
    let frames = s.frames(&segs, 1400);
    let half = frames.len() / 2;
    let a = out.join("a.pcap");
    let b = out.join("b.pcap");
    std::fs::write(&a, synthetic::pcap_file(&frames[..half])).unwrap();
    std::fs::write(&b, synthetic::pcap_file(&frames[half..])).unwrap();
    let dir = out.join("o");
    // Given in the wrong order on purpose: time decides.
    let o = rtmpsniff(&[
        "read",
        b.to_str().unwrap(),
        a.to_str().unwrap(),
        "-o",
        dir.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report = read_json(&dir.join("report.json"));
    assert_eq!(report["connections"].as_array().unwrap().len(), 1);
    let st = &report["connections"][0]["streams"][0];
    assert_eq!(st["video_frames"], synthetic::Opts::default().frames as u64);
}

/// A selection option that cannot match anything as written is refused with the reason.
#[test]
fn a_bad_selection_option_exits_2_saying_why() {
    let cap = root().join("samples/lo-h264-aac/capture.pcap");
    for (args, want) in [
        (
            &["--client", "notanip"][..],
            "--client notanip: not an IP address",
        ),
        (
            &["--server", "10.0.0.1:99999"],
            "--server 10.0.0.1:99999: not an IP address",
        ),
        (
            &["--stream", "[ab"],
            "--stream [ab: unclosed character class",
        ),
        (&["--app", "{live"], "--app {live: unclosed alternate group"),
    ] {
        for cmd in ["list", "read"] {
            let out = temp_dir("badsel");
            let mut a = vec![cmd, cap.to_str().unwrap()];
            if cmd == "read" {
                a.extend(["-o", out.to_str().unwrap()]);
            }
            a.extend_from_slice(args);
            let o = rtmpsniff(&a);
            assert_eq!(o.status.code(), Some(2), "{a:?}");
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(err.trim().lines().count(), 1, "{err}");
            assert!(err.starts_with(&format!("rtmpsniff: {want}")), "{err}");
            assert!(o.stdout.is_empty());
            assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "{a:?}");
        }
    }
}

/// A selection that matches nothing in an input that holds RTMP says so (not "no RTMP"),
/// with what the input held, and exits 1.
#[test]
fn a_selection_that_matches_nothing_exits_1_saying_what_there_was() {
    let cap = root().join("samples/netns-multi/capture.pcap");
    for cmd in ["list", "read"] {
        let out = temp_dir("nomatch");
        let mut a = vec![cmd, cap.to_str().unwrap(), "--stream", "[cd]"];
        if cmd == "read" {
            a.extend(["-o", out.to_str().unwrap()]);
        }
        let o = rtmpsniff(&a);
        assert_eq!(o.status.code(), Some(1), "{cmd}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            err.trim(),
            "rtmpsniff: no stream matches the selection (3 RTMP connections, 3 streams in the input)",
            "{cmd}"
        );
    }
    // Without a selection, an input without RTMP still says that.
    let o = rtmpsniff(&[
        "list",
        root()
            .join("samples/netns-multi/capture.pcap")
            .to_str()
            .unwrap(),
        "--port",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no RTMP found"));
}
