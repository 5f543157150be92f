//! RTMPT (RTMP over HTTP) as the binary reports it: each session one connection, with the
//! TCP connections and requests that carried it, counted as tshark counts them; also RTMPT
//! over TLS (rtmpts://), read with the clients' key logs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use crate::util::*;

/// What tshark sees of each session: POST requests by kind (open counted by the session id
/// its answer gave) and the TCP connections (tcp.stream) they travelled on.
#[derive(Debug, Default)]
struct Seen {
    requests: BTreeMap<String, u64>,
    tcp: BTreeSet<u64>,
}

/// tshark's fields of the frames `filter` takes; with a key log, of the TLS plaintext.
fn tshark_fields(
    capture: &Path,
    keylog: Option<&Path>,
    filter: &str,
    fields: &[&str],
) -> Vec<Vec<String>> {
    let mut args: Vec<String> = [
        "-r",
        capture.to_str().unwrap(),
        "-Y",
        filter,
        "-T",
        "fields",
    ]
    .map(String::from)
    .into();
    if let Some(k) = keylog {
        args.extend(["-o".into(), format!("tls.keylog_file:{}", k.display())]);
    }
    for f in fields {
        args.extend(["-e".into(), f.to_string()]);
    }
    let o = Command::new("tshark")
        .args(&args)
        .output()
        .expect("run tshark");
    assert!(
        o.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

fn tshark_sessions(capture: &Path, keylog: Option<&Path>) -> BTreeMap<String, Seen> {
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    let posts = tshark_fields(
        capture,
        keylog,
        r#"http.request.method == "POST""#,
        &["tcp.stream", "http.request.uri"],
    );
    for row in &posts {
        let parts: Vec<&str> = row[1].split('/').collect();
        // "/send/ID/SEQ": ["", "send", "ID", "SEQ"]; "/open/1" is placed by its answer.
        if let ["", kind @ ("send" | "idle" | "close"), id, _] = parts.as_slice() {
            let s = seen.entry(id.to_string()).or_default();
            *s.requests.entry(kind.to_string()).or_default() += 1;
            s.tcp.insert(row[0].parse().unwrap());
        }
    }
    let opens = tshark_fields(
        capture,
        keylog,
        r#"http.response and http.response_for.uri contains "/open/""#,
        &["tcp.stream", "http.file_data"],
    );
    for row in &opens {
        let id: String = row[1]
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        let s = seen.entry(id).or_default();
        *s.requests.entry("open".to_string()).or_default() += 1;
        s.tcp.insert(row[0].parse().unwrap());
    }
    let placed: u64 = seen.values().flat_map(|s| s.requests.values()).sum();
    assert_eq!(
        placed as usize,
        posts.len(),
        "every POST placed in a session"
    );
    seen
}

/// The report (or `list --json`) agrees with tshark on every session of the sample, each
/// reported as `transport` (rtmpt, or rtmpts over TLS).
fn check_sessions(
    sample: &str,
    transport: &str,
    report: &serde_json::Value,
    seen: &BTreeMap<String, Seen>,
) {
    let manifest = read_json(&root().join("samples").join(sample).join("manifest.json"));
    let conns = report["connections"].as_array().unwrap();
    assert_eq!(conns.len(), manifest["streams"].as_array().unwrap().len());
    let mut tcp_total = 0;
    for s in manifest["streams"].as_array().unwrap() {
        let id = s["rtmpt_session"].as_str().unwrap();
        let c = connection_over(report, s, transport);
        let r = &c["rtmpt"];
        let t = &seen[id];
        assert_eq!(r["session"], id);
        assert_eq!(r["start_seen"], true, "{sample} {id}");
        assert_eq!(r["closed"], true, "{sample} {id}");
        assert_eq!(r["connections_dropped"], 0);
        assert_eq!(
            r["connections"].as_array().unwrap().len(),
            t.tcp.len(),
            "{sample} {id}: TCP connections"
        );
        for kind in ["open", "send", "idle", "close"] {
            assert_eq!(
                r["requests"][kind].as_u64().unwrap(),
                t.requests.get(kind).copied().unwrap_or(0),
                "{sample} {id}: {kind} requests"
            );
        }
        assert_eq!(r["requests"]["ident"], 0);
        assert_eq!(r["requests"]["other"], 0);
        assert_eq!(r["gap_count"], 0, "{sample} {id}");
        // The connection is named after the first TCP connection that carried it.
        assert_eq!(c["client"], r["connections"][0]["client"]);
        tcp_total += t.tcp.len();
    }
    assert_eq!(
        tcp_total as u64,
        manifest["tshark"]["tcp_connections"].as_u64().unwrap(),
        "{sample}: TCP connections, all sessions"
    );
}

#[test]
fn list_and_report_show_each_rtmpt_session_as_tshark_counts_it() {
    require_tool("tshark");
    require_tool("ffmpeg");
    for sample in ["rtmpt-per-request", "rtmpt-publish-play", "rtmpt-chunked"] {
        let capture = root().join("samples").join(sample).join("capture.pcap");
        let cap = capture.to_str().unwrap();
        let seen = tshark_sessions(&capture, None);

        let o = rtmpsniff(&["list", "--port", "8080", cap]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let table = String::from_utf8(o.stdout).unwrap();
        for (id, t) in &seen {
            let n = t.tcp.len();
            let plural = if n == 1 { "" } else { "s" };
            let want = format!("  rtmpt session={id} ({n} TCP connection{plural})");
            assert!(
                table
                    .lines()
                    .any(|l| l.starts_with('#') && l.ends_with(&want)),
                "{sample}: no connection line ending {want:?} in\n{table}"
            );
        }

        let o = rtmpsniff(&["list", "--port", "8080", "--json", cap]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let listed = report_json(&o.stdout);
        check_sessions(sample, "rtmpt", &listed, &seen);

        let out = temp_dir(sample);
        let report = read_ok_with(&capture, &out, &["--port", "8080"]);
        check_sessions(sample, "rtmpt", &report, &seen);
        let mut files = 0;
        for c in report["connections"].as_array().unwrap() {
            for s in c["streams"].as_array().unwrap() {
                let file = out.join(s["file"].as_str().expect("every stream has a file"));
                ffmpeg_decodes_cleanly(&file).unwrap();
                files += 1;
            }
        }
        assert_eq!(files, seen.len(), "{sample}: one file per session");
    }
}

#[test]
fn rtmpt_is_read_on_the_ports_given_or_with_any_port() {
    let capture = root().join("samples/rtmpt-per-request/capture.pcap");
    let cap = capture.to_str().unwrap();
    // On the default port (1935) the HTTP on 8080 is not looked at.
    let o = rtmpsniff(&["list", cap]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // --any-port recognises it by its first request, and joins the sessions all the same.
    let o = rtmpsniff(&["list", "--any-port", "--json", cap]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let listed = report_json(&o.stdout);
    let mut got: Vec<(String, usize)> = listed["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let r = &c["rtmpt"];
            let n = r["connections"].as_array().unwrap().len();
            (r["session"].as_str().unwrap().to_string(), n)
        })
        .collect();
    got.sort();
    let want = vec![
        ("0215507521".to_string(), 68),
        ("7038489339".to_string(), 137),
    ];
    assert_eq!(got, want);
}

/// RTMPT over TLS (samples/rtmpts-publish-play: ffmpeg and rtmpdump play, ffmpeg publishes,
/// through nginx's stream module terminating TLS on 8443 in front of the lab's gateway): with
/// the clients' key logs each session is reported as rtmpts, with the TCP connections and
/// requests tshark finds in the plaintext, its stream bit-exact against nginx's recording or
/// the player's file, track by track, and decoding cleanly; without them nothing is written
/// and every TLS connection is reported encrypted.
#[test]
fn rtmpts_sessions_come_out_of_tls_bit_exact_and_stay_encrypted_without_keys() {
    require_tool("tshark");
    require_tool("ffmpeg");
    let sample = "rtmpts-publish-play";
    let dir = root().join("samples").join(sample);
    let manifest = read_json(&dir.join("manifest.json"));
    assert_eq!(manifest["encryption"], "tls");
    let capture = dir.join(manifest["capture"].as_str().unwrap());
    let keylog = dir.join(manifest["keylog"].as_str().unwrap());
    let seen = tshark_sessions(&capture, Some(&keylog));
    assert_eq!(seen.len(), 3, "tshark's sessions: {seen:?}");
    let keys = ["--port", "8443", "--tls-keylog", keylog.to_str().unwrap()];

    let o = rtmpsniff(
        &["list", "--json", capture.to_str().unwrap()]
            .into_iter()
            .chain(keys)
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let listed = report_json(&o.stdout);
    check_sessions(sample, "rtmpts", &listed, &seen);

    let out = temp_dir(sample);
    let report = read_ok_with(&capture, &out, &keys);
    check_sessions(sample, "rtmpts", &report, &seen);
    for s in manifest["streams"].as_array().unwrap() {
        let c = connection_over(&report, s, "rtmpts");
        assert_eq!(c["encryption"], "tls", "an RTMPT session over TLS says so");
        assert_eq!(c["encrypted"], false);
        let direction = s["direction"].as_str().unwrap();
        let label = format!("{sample}: {direction} by {}", s["client_tool"]);
        assert_eq!(c["handshake"], "seen", "{label}");
        assert_eq!(c["app"], s["app"], "{label}");
        let streams = c["streams"].as_array().unwrap();
        assert_eq!(streams.len(), 1, "{label}");
        let st = &streams[0];
        assert_eq!(st["direction"], direction, "{label}");
        assert_eq!(st["name"], s["name"], "{label}");
        assert_eq!(st["video_codec"], s["video_codec"], "{label}");
        assert_eq!(st["audio_codec"], s["audio_codec"], "{label}");
        let file = out.join(st["file"].as_str().unwrap());
        let mut truth = media_of(&dir.join(s["truth"].as_str().unwrap()));
        let mut got = media_of(&file);
        // ffmpeg's player file ends with an end of sequence its muxer wrote (see comparable).
        truth.packets = comparable(s, truth.packets);
        got.packets = comparable(s, got.packets);
        assert_bit_exact(&label, &truth, &got, &file);
    }

    // Without the key log: the TLS connections, encrypted, and no file.
    let out = temp_dir("rtmpts-no-keys");
    let o = rtmpsniff(&[
        "read",
        capture.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
        "--port",
        "8443",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report = read_json(&out.join("report.json"));
    let conns = report["connections"].as_array().unwrap();
    // One per TLS handshake tshark saw, with its version.
    let handshakes = manifest["tshark"]["tls"].as_array().unwrap();
    assert_eq!(conns.len(), handshakes.len());
    for t in handshakes {
        let port = t["client_port"].as_u64().unwrap();
        let c = conns
            .iter()
            .find(|c| c["client"].as_str().unwrap().ends_with(&format!(":{port}")))
            .unwrap_or_else(|| panic!("no TLS connection from port {port}"));
        let version = match t["supported_version"].as_str() {
            Some("0x0304") => "TLS 1.3",
            _ => "TLS 1.2",
        };
        assert_eq!(c["tls"]["version"], version, "{c}");
        assert_eq!(c["encryption"], "tls");
        assert_eq!(c["encrypted"], true);
        assert_eq!(c["tls"]["decrypted"], false);
        assert!(c["rtmpt"].is_null(), "no keys, no session: {c}");
        assert!(c["streams"].as_array().unwrap().is_empty(), "{c}");
    }
    let mut written: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    written.sort();
    assert_eq!(
        written,
        ["report.html", "report.json"],
        "written without keys"
    );
}
