//! `read`/`list` choosing packets as tcpdump, tshark and editcap do: `-f EXPR` gives the
//! streams `tcpdump -r FILE -w OUT EXPR` gives, `--start`/`--end` those of `editcap -A/-B`,
//! `-c N` those of `tcpdump -c N`; the report records what was asked.

use std::path::Path;
use std::process::Command;

use crate::util::{flvs, read_json, report_json, require_tool, rtmpsniff, sample, temp_dir};

/// `read CAPTURE -q -o OUT OPTIONS...` that must succeed: the FLVs and the report.
fn read(
    capture: &Path,
    out: &Path,
    options: &[&str],
) -> (Vec<(String, Vec<u8>)>, serde_json::Value) {
    let mut args = vec![
        "read",
        "-q",
        capture.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(options);
    let o = rtmpsniff(&args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (flvs(out), read_json(&out.join("report.json")))
}

/// Run a tool that must succeed.
fn run(tool: &str, args: &[&str]) {
    require_tool(tool);
    let o = Command::new(tool).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn packets_of(report: &serde_json::Value) -> u64 {
    report["stats"]["frames"].as_u64().unwrap()
}

#[test]
fn a_filter_gives_what_tcpdump_with_the_filter_gives() {
    for (capture, expr) in [
        (sample("lo-legacy-play/capture.pcapng"), "tcp port 43914"),
        (
            sample("netns-multi/capture.pcap"),
            "host 10.201.0.2 and (port 55992 or port 55996)",
        ),
    ] {
        let dir = temp_dir("packets-filter");
        let cut = dir.join("tcpdump.pcap");
        run(
            "tcpdump",
            &[
                "-r",
                capture.to_str().unwrap(),
                "-w",
                cut.to_str().unwrap(),
                expr,
            ],
        );
        let (want, want_report) = read(&cut, &dir.join("want"), &[]);
        let (all, all_report) = read(&capture, &dir.join("all"), &[]);
        let (got, report) = read(&capture, &dir.join("got"), &["-f", expr]);
        let label = format!("{} -f {expr}", capture.display());
        assert!(!want.is_empty(), "{label}");
        assert!(
            want.len() < all.len(),
            "{label}: the filter left out nothing"
        );
        assert_eq!(got, want, "{label}");
        assert_eq!(packets_of(&report), packets_of(&want_report), "{label}");
        let read_all = all_report["inputs"][0]["packets"].as_u64().unwrap();
        assert_eq!(
            report["inputs"][0]["skipped_packets"].as_u64().unwrap(),
            read_all - packets_of(&want_report),
            "{label}"
        );
        assert_eq!(all_report["inputs"][0]["skipped_packets"], 0);
        let sel = &report["packet_selection"];
        assert_eq!(sel["filter"], expr, "{label}");
        assert_eq!(sel["count"], serde_json::Value::Null);
        assert_eq!(
            all_report["packet_selection"]["filter"],
            serde_json::Value::Null
        );
        // list takes it too, and shows the same streams.
        let o = rtmpsniff(&[
            "list",
            "--json",
            capture.to_str().unwrap(),
            "--filter",
            expr,
        ]);
        assert_eq!(o.status.code(), Some(0), "{label}");
        let listed = report_json(&o.stdout);
        let streams = |r: &serde_json::Value| -> Vec<serde_json::Value> {
            r["connections"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|c| c["streams"].as_array().unwrap().clone())
                .map(|s| serde_json::json!([s["name"], s["video_frames"], s["audio_frames"]]))
                .collect()
        };
        assert_eq!(streams(&listed), streams(&report), "{label}");
    }
}

#[test]
fn start_and_end_give_what_editcap_a_and_b_give() {
    let capture = sample("lo-legacy-play/capture.pcapng");
    let dir = temp_dir("packets-time");
    let (_, all) = read(&capture, &dir.join("all"), &[]);
    let input = &all["inputs"][0];
    let (first, last) = (
        input["first_time"].as_f64().unwrap(),
        input["last_time"].as_f64().unwrap(),
    );
    // A window inside the capture, on whole milliseconds, packets on either side of it.
    let start = ((first + (last - first) * 0.3) * 1000.0).floor() / 1000.0;
    let end = ((first + (last - first) * 0.7) * 1000.0).floor() / 1000.0;
    let iso = |t: f64| rtmpsniff::sink::report::iso8601(t, 3).unwrap();
    let cut = dir.join("editcap.pcapng");
    run(
        "editcap",
        &[
            "-A",
            &iso(start),
            "-B",
            &iso(end),
            capture.to_str().unwrap(),
            cut.to_str().unwrap(),
        ],
    );
    let (want, want_report) = read(&cut, &dir.join("want"), &[]);
    assert!(!want.is_empty());
    // The start as an ISO time one hour east of UTC, the end as epoch seconds.
    let east = rtmpsniff::sink::report::iso8601(start + 3600.0, 3).unwrap();
    let east = format!("{}+01:00", east.trim_end_matches('Z'));
    let end_epoch = format!("{end:.3}");
    let (got, report) = read(
        &capture,
        &dir.join("got"),
        &["--start", &east, "--end", &end_epoch],
    );
    assert_eq!(got, want);
    assert_eq!(packets_of(&report), packets_of(&want_report));
    assert!(packets_of(&report) < packets_of(&all));
    let sel = &report["packet_selection"];
    assert!((sel["start_time"].as_f64().unwrap() - start).abs() < 1e-6);
    assert!((sel["end_time"].as_f64().unwrap() - end).abs() < 1e-6);
    assert_eq!(
        sel["start_time_utc"],
        rtmpsniff::sink::report::iso8601_us(start).unwrap()
    );
    let got_input = &report["inputs"][0];
    assert!(got_input["first_time"].as_f64().unwrap() <= start);
    assert_eq!(
        got_input["skipped_packets"].as_u64().unwrap(),
        packets_of(&all) - packets_of(&want_report)
    );
}

#[test]
fn count_stops_after_n_packets_as_tcpdump_c() {
    let capture = sample("netns-multi/capture.pcap");
    let dir = temp_dir("packets-count");
    let expr = "tcp port 55992";
    let cut = dir.join("tcpdump.pcap");
    run(
        "tcpdump",
        &[
            "-r",
            capture.to_str().unwrap(),
            "-c",
            "300",
            "-w",
            cut.to_str().unwrap(),
            expr,
        ],
    );
    let (want, _) = read(&cut, &dir.join("want"), &[]);
    let (got, report) = read(&capture, &dir.join("got"), &["-f", expr, "-c", "300"]);
    assert!(!want.is_empty());
    assert_eq!(got, want);
    assert_eq!(packets_of(&report), 300);
    let sel = &report["packet_selection"];
    assert_eq!(
        (sel["count"].as_u64(), sel["count_reached"].as_bool()),
        (Some(300), Some(true))
    );
    // The capture was not read to its end.
    let (_, all) = read(&capture, &dir.join("all"), &[]);
    assert!(
        report["inputs"][0]["packets"].as_u64().unwrap()
            < all["inputs"][0]["packets"].as_u64().unwrap()
    );
    // More than there are: every packet, and the count not reached.
    let (_, report) = read(&capture, &dir.join("more"), &["--count", "1000000"]);
    assert_eq!(packets_of(&report), packets_of(&all));
    assert_eq!(report["packet_selection"]["count_reached"], false);
}

#[test]
fn a_wrong_filter_time_or_count_is_one_line_and_status_2() {
    let capture = sample("lo-h264-aac/capture.pcap");
    let c = capture.to_str().unwrap();
    for (args, says) in [
        (vec!["list", c, "-f", "tcp prt 1935"], "--filter: "),
        (
            vec!["list", c, "--start", "yesterday"],
            "--start yesterday: ",
        ),
        (
            vec!["list", c, "--end", "2026-11-25T04:34:03"],
            "no time zone",
        ),
        (
            vec!["list", c, "--start", "1795581245", "--end", "1795581244"],
            "--start must be before --end",
        ),
    ] {
        let o = rtmpsniff(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let o = rtmpsniff(&["list", c, "-f", "tcp prt 1935"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("syntax error") && err.starts_with(&format!("rtmpsniff: {c}: ")),
        "{err}"
    );
    let o = rtmpsniff(&["list", c, "-c", "0"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_selection_that_keeps_no_packet_exits_1_saying_so() {
    let capture = sample("lo-h264-aac/capture.pcap");
    let o = rtmpsniff(&["list", capture.to_str().unwrap(), "-f", "udp"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(
        err.trim_end(),
        format!(
            "rtmpsniff: no packet of {} passes --filter, --start and --end (352 read, all \
             skipped)",
            capture.display()
        )
    );
}
