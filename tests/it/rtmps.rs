//! RTMPS with real peers (samples/rtmps-*: ffmpeg publishing and playing through nginx's
//! stream module terminating TLS in front of nginx-rtmp, keys from ffmpeg's SSLKEYLOGFILE):
//! every stream decrypted comes back bit-exact against nginx's recording and the player's
//! own, decodes cleanly, and the report's TLS fields say what tshark says of the handshake.

use std::path::{Path, PathBuf};

use rtmpsniff::transport::tls::suite_name;

use crate::util::*;

fn rtmps_samples() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join("samples"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        // RTMPT over TLS (rtmpts-*: manifests with `http_server`) is reported by session, each
        // over several TLS connections to one port, not one connection per stream:
        // tests/it/rtmpt.rs checks it.
        .filter(|p| {
            p.join("manifest.json").exists() && {
                let m = read_json(&p.join("manifest.json"));
                m["encryption"] == "tls" && m.get("http_server").is_none()
            }
        })
        .collect();
    dirs.sort();
    dirs
}

/// `read` of a sample with its key log (if it has one: else the capture carries the keys)
/// on the two TLS ports the lab uses; the report.
fn read_rtmps(dir: &Path, out: &Path) -> serde_json::Value {
    let m = read_json(&dir.join("manifest.json"));
    let capture = dir.join(m["capture"].as_str().unwrap());
    let mut args = vec![
        "read".to_string(),
        capture.to_str().unwrap().to_string(),
        "-o".into(),
        out.to_str().unwrap().into(),
        "-q".into(),
        "--port".into(),
        "443".into(),
        "--port".into(),
        "8443".into(),
    ];
    if let Some(k) = m["keylog"].as_str() {
        args.push("--tls-keylog".into());
        args.push(dir.join(k).to_str().unwrap().into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = rtmpsniff(&args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}: {}",
        dir.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    read_json(&out.join("report.json"))
}

fn conn_on(report: &serde_json::Value, server_port: u64) -> &serde_json::Value {
    report["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["server"]
                .as_str()
                .unwrap()
                .ends_with(&format!(":{server_port}"))
        })
        .unwrap_or_else(|| panic!("no connection to port {server_port}"))
}

#[test]
fn every_rtmps_stream_is_recovered_bit_exact_and_its_tls_as_tshark_sees_it() {
    require_tool("ffmpeg");
    let dirs = rtmps_samples();
    assert!(dirs.len() >= 6, "RTMPS samples are missing");
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let m = read_json(&dir.join("manifest.json"));
        let out = temp_dir(&name);
        let report = read_rtmps(&dir, &out);
        // The handshake in the clear, as tshark read it when the sample was made.
        for t in m["tshark"].as_array().unwrap() {
            let c = conn_on(&report, t["server_port"].as_u64().unwrap());
            let tls = &c["tls"];
            let version = match t["supported_version"].as_str() {
                Some("0x0304") => "TLS 1.3",
                _ => "TLS 1.2",
            };
            assert_eq!(tls["version"], version, "{name}");
            let suite = u16::from_str_radix(&t["cipher_suite"].as_str().unwrap()[2..], 16).unwrap();
            assert_eq!(tls["cipher_suite"], suite_name(suite).unwrap(), "{name}");
            assert_eq!(tls["sni"], t["sni"], "{name}");
            assert_eq!(c["encryption"], "tls");
            let decrypted = t["decrypted_bytes"]["client_to_server"].as_u64().unwrap() > 0;
            assert_eq!(tls["decrypted"], decrypted, "{name}");
            assert_eq!(c["encrypted"], !decrypted, "{name}");
            assert_eq!(tls["failed_records"], 0, "{name}");
            if decrypted {
                assert_eq!(c["handshake"], "seen", "{name}");
                let from = if m["keylog"].is_string() {
                    "keylog"
                } else {
                    "pcapng"
                };
                assert_eq!(tls["keys_from"], from, "{name}");
            } else {
                assert!(
                    c["streams"].as_array().unwrap().is_empty(),
                    "{name}: no keys, no stream"
                );
            }
        }
        for s in m["streams"].as_array().unwrap() {
            if s["keys_missing"] == true {
                continue;
            }
            let c = conn_on(&report, s["server_port"].as_u64().unwrap());
            let direction = s["direction"].as_str().unwrap();
            let st = c["streams"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["direction"] == direction)
                .unwrap_or_else(|| panic!("{name}: no {direction} stream"));
            assert_eq!(st["name"], s["name"]);
            assert_eq!(c["app"], s["app"]);
            let file = out.join(st["file"].as_str().unwrap());
            let truth = media_of(&dir.join(s["truth"].as_str().unwrap()));
            let got = media_of(&file);
            assert_bit_exact(&format!("{name}: {direction}"), &truth, &got, &file);
        }
    }
}

#[test]
fn rtmps_without_its_keys_stays_encrypted_and_lists_what_tls_shows() {
    let dir = root().join("samples/rtmps-tls13");
    let cap = dir.join("capture.pcap");
    let o = rtmpsniff(&[
        "list",
        cap.to_str().unwrap(),
        "--port",
        "443",
        "--port",
        "8443",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        text.matches("ENCRYPTED (TLS 1.3, no keys) sni=localhost")
            .count(),
        2,
        "{text}"
    );
    // With the key log, list decodes it as read does, and writes nothing.
    let keylog = dir.join("keylog.txt");
    let o = rtmpsniff(&[
        "list",
        cap.to_str().unwrap(),
        "--port",
        "443",
        "--port",
        "8443",
        "--tls-keylog",
        keylog.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        text.matches("TLS 1.3 decrypted sni=localhost").count(),
        2,
        "{text}"
    );
    for direction in ["publish", "play"] {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().take(2).eq([direction, "tls13"])),
            "{text}"
        );
    }
}

#[test]
fn a_tls_key_log_that_cannot_be_read_is_one_line_and_status_2() {
    let cap = root().join("samples/rtmps-tls13/capture.pcap");
    let out = temp_dir("keylog-missing");
    let o = rtmpsniff(&[
        "read",
        cap.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--tls-keylog",
        "/nonexistent/keys.log",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/keys.log"), "{err}");
}

/// Frames deleted from an RTMPS capture (every 37th from frame 60, as a sniffer that misses
/// packets): the records they touch are lost, the rest decrypt (no record fails its tag), and
/// nothing recovered is wrong.
#[test]
fn rtmps_with_frames_missing_loses_only_what_they_touched() {
    require_tool("editcap");
    let dir = root().join("samples/rtmps-tls13");
    let m = read_json(&dir.join("manifest.json"));
    let work = temp_dir("rtmps-loss");
    let cut = work.join("capture.pcap");
    let frames: Vec<String> = (60..611).step_by(37).map(|f| f.to_string()).collect();
    let o = std::process::Command::new("editcap")
        .arg(dir.join("capture.pcap"))
        .arg(&cut)
        .args(&frames)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = work.join("out");
    let keylog = dir.join("keylog.txt");
    let args = [
        "read",
        cut.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
        "--port",
        "443",
        "--port",
        "8443",
        "--tls-keylog",
        keylog.to_str().unwrap(),
    ];
    let o = rtmpsniff(&args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report = read_json(&out.join("report.json"));
    let mut recovered = 0;
    for s in m["streams"].as_array().unwrap() {
        let c = conn_on(&report, s["server_port"].as_u64().unwrap());
        assert_eq!(c["tls"]["decrypted"], true);
        assert_eq!(c["tls"]["failed_records"], 0);
        assert!(c["tls"]["lost_records"].as_u64().unwrap() > 0);
        let st = &c["streams"][0];
        let truth = media_of(&dir.join(s["truth"].as_str().unwrap()));
        let got = media_of(&out.join(st["file"].as_str().unwrap()));
        for p in &got.packets {
            assert!(
                truth.packets.iter().any(|t| t.2 == p.2),
                "a recovered packet is not the sender's"
            );
        }
        recovered += got.packets.len();
    }
    // What this build recovers of the 346 packets (a floor, not a goal).
    eprintln!("rtmps with 14 of 611 frames deleted: {recovered} of 346 packets");
    assert!(recovered >= 260, "{recovered}");
}
