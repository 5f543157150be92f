//! The command line's contract: exit statuses, one clear line for a bad input, no clobbering.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};

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
    assert_eq!(names.len(), 6, "{names:?}");
    for name in [
        "report.json",
        "report-2.json",
        "report.html",
        "report-2.html",
    ] {
        assert!(names.contains(&name.to_string()), "{names:?}");
    }
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

/// `rtmpsniff ARGS` with standard output and/or standard error a pipe whose reader is gone
/// before the first write (`rtmpsniff list x | head -0`); its exit status and what it said on
/// standard error (when that is still open).
fn with_closed(args: &[&str], close_stdout: bool, close_stderr: bool) -> (ExitStatus, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rtmpsniff"));
    cmd.args(args).stdin(Stdio::null());
    // The pipes are made here and a closed one's reader dropped before the child starts, so
    // that its first write always finds the reader gone (a child quicker than the test to
    // write would otherwise fill the pipe and exit 0).
    let (out, out_w) = std::io::pipe().unwrap();
    let (err, err_w) = std::io::pipe().unwrap();
    cmd.stdout(out_w).stderr(err_w);
    let out = (!close_stdout).then_some(out);
    let err = (!close_stderr).then_some(err);
    let mut child = cmd.spawn().unwrap();
    // The child's copies of the write ends are all that is left.
    drop(cmd);
    let mut said = String::new();
    if let Some(mut err) = err {
        std::io::Read::read_to_string(&mut err, &mut said).unwrap();
    }
    let status = child.wait().unwrap();
    drop(out);
    (status, said)
}

/// Standard output's reader going away ends the run as it ends `cat` or `grep`: quietly, by
/// SIGPIPE (the shell's 141), never a panic (101); whatever was to be written to files is.
#[test]
fn a_closed_standard_output_ends_quietly_by_sigpipe() {
    let cap = root().join("samples/netns-multi/capture.pcap");
    let cap = cap.to_str().unwrap();
    let out = temp_dir("epipe");
    let dir = out.join("o");
    for args in [
        &["list", cap][..],
        &["list", "--json", cap],
        &["list", "-v", cap],
        &["read", cap, "-o", dir.to_str().unwrap()],
        &["--help"],
        &["list", "--help"],
        &["man"],
        &["completions", "bash"],
        &["interfaces"],
    ] {
        let (st, err) = with_closed(args, true, false);
        assert_eq!(st.signal(), Some(libc::SIGPIPE), "{args:?}: {st:?} {err}");
        assert_eq!(err, "", "{args:?}");
    }
    // read wrote its files and report before it had a summary to print.
    let report = read_json(&dir.join("report.json"));
    assert_eq!(report["connections"].as_array().unwrap().len(), 3);
}

/// Standard error that cannot be written loses its lines and changes nothing else: the exit
/// status is the one the run would have had (no panic), with both closed too (`2>&1 | head`).
#[test]
fn a_closed_standard_error_changes_nothing_but_what_is_said() {
    let cap = root().join("samples/netns-multi/capture.pcap");
    let cap = cap.to_str().unwrap();
    for (args, code) in [
        (&["list", cap, "--stream", "zz"][..], 1),
        (&["list", "/nonexistent.pcap"], 2),
        (&["list", cap, "--client", "notanip"], 2),
        (&["list", "--no-such-option"], 2),
    ] {
        let (st, _) = with_closed(args, false, true);
        assert_eq!(st.code(), Some(code), "{args:?}: {st:?}");
        let (st, _) = with_closed(args, true, true);
        assert!(
            st.code() == Some(code) || st.signal() == Some(libc::SIGPIPE),
            "{args:?}: {st:?}"
        );
    }
    let (st, _) = with_closed(&["list", cap], true, true);
    assert_eq!(st.signal(), Some(libc::SIGPIPE));
}

/// `-q` and `-v` mean the same for read, list and live: nothing but errors, or each
/// connection's gaps, lock-ons and warnings besides; together they are refused.
#[test]
fn quiet_and_verbose_mean_the_same_for_read_and_list() {
    let cap = root().join("samples/netns-midstream/capture.pcap");
    let cap = cap.to_str().unwrap();
    let report = rtmpsniff(&["list", "--json", cap]);
    let report = report_json(&report.stdout);
    let conns = report["connections"].as_array().unwrap();
    let count = |k: &str| -> usize { conns.iter().map(|c| c[k].as_array().unwrap().len()).sum() };
    let (locks, warnings) = (count("locks"), count("warnings"));
    assert!(locks > 0 && warnings > 0, "the sample joins mid-stream");
    let details = |text: &str, what: &str| text.lines().filter(|l| l.starts_with(what)).count();
    for cmd in ["list", "read"] {
        let out = temp_dir("talk");
        let run = |flag: &str| {
            let dir = out.join(format!("o{flag}"));
            let mut a = vec![cmd, cap];
            if cmd == "read" {
                a.extend(["-o", dir.to_str().unwrap()]);
            }
            if !flag.is_empty() {
                a.push(flag);
            }
            let o = rtmpsniff(&a);
            assert_eq!(o.status.code(), Some(0), "{a:?}");
            String::from_utf8(o.stdout).unwrap()
        };
        let plain = run("");
        assert_eq!(details(&plain, "    lock-on: "), 0, "{cmd}");
        for long in ["", "-long"] {
            let v = run(if long.is_empty() { "-v" } else { "--verbose" });
            assert_eq!(details(&v, "    lock-on: "), locks, "{cmd}: {v}");
            assert_eq!(details(&v, "    warning: "), warnings, "{cmd}: {v}");
            // Verbose is the plain text with the details added.
            let without: Vec<&str> = v.lines().filter(|l| !l.starts_with("    ")).collect();
            let plain_lines: Vec<&str> = plain.lines().filter(|l| !l.starts_with("    ")).collect();
            assert_eq!(without.len(), plain_lines.len(), "{cmd}");
            let q = run(if long.is_empty() { "-q" } else { "--quiet" });
            assert_eq!(q, "", "{cmd}");
        }
        let o = rtmpsniff(&[cmd, cap, "-q", "-v"]);
        assert_eq!(o.status.code(), Some(2), "{cmd}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("cannot be used with"));
    }
    // Quiet still says why nothing was found.
    let o = rtmpsniff(&["list", "-q", cap, "--stream", "zz"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no stream matches"));
}

/// `read --threads 3` shares the connections among three pipelines and gives what one
/// thread gives: the same FLV files, byte for byte, and the same report.json (but for the
/// run's own times and command line), on 300 sessions from as many clients, an RTMPT
/// capture (a session over many TCP connections) and a lossy one, read as one timeline.
#[test]
fn read_threads_gives_the_same_files_and_report_as_one_thread() {
    let dir = temp_dir("threads");
    let many = dir.join("many.pcap");
    let st = Command::new("python3")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/many-conns.py"))
        .args(["--shape", "sessions", "--count", "300", "-o"])
        .arg(&many)
        .status()
        .expect("NOT RUN: python3 is needed for bench/many-conns.py");
    assert!(st.success());
    let inputs = [
        many.to_str().unwrap().to_string(),
        sample("rtmpt-per-request/capture.pcap")
            .to_str()
            .unwrap()
            .to_string(),
        sample("netns-loss/capture.pcap")
            .to_str()
            .unwrap()
            .to_string(),
    ];
    let run = |out: &str, threads: &str| {
        let out = dir.join(out);
        let mut args: Vec<&str> = vec!["read"];
        args.extend(inputs.iter().map(String::as_str));
        args.extend(["--port", "1935", "--port", "8080", "--no-html", "-q"]);
        args.extend(["--threads", threads, "-o", out.to_str().unwrap()]);
        let o = rtmpsniff(&args);
        assert_eq!(o.status.code(), Some(0), "{o:?}");
        let mut report = read_json(&out.join("report.json"));
        for k in [
            "start_time",
            "end_time",
            "start_time_utc",
            "end_time_utc",
            "command_line",
        ] {
            report.as_object_mut().unwrap().remove(k);
        }
        (flvs(&out), report)
    };
    let (one_files, one_report) = run("one", "1");
    let (three_files, three_report) = run("three", "3");
    assert!(one_files.len() > 300, "{}", one_files.len());
    assert_eq!(one_files.len(), three_files.len());
    for (a, b) in one_files.iter().zip(&three_files) {
        assert_eq!(a.0, b.0);
        assert!(a.1 == b.1, "{} differs", a.0);
    }
    assert_eq!(
        one_report["connections"].as_array().unwrap().len(),
        three_report["connections"].as_array().unwrap().len()
    );
    assert!(one_report == three_report, "the reports differ");
}
