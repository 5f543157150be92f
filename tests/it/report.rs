//! The report and the inventory: fields checked against ffprobe of each peer's own recording,
//! sha256 against the file, `list` writing nothing, and the table against a golden copy.

use std::process::Command;

use crate::util::*;

fn ffprobe_streams(path: &std::path::Path) -> serde_json::Value {
    let o = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_packets",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("run ffprobe");
    serde_json::from_slice(&o.stdout).unwrap()
}

fn sha256_hex(path: &std::path::Path) -> String {
    let o = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn report_fields_agree_with_ffprobe_of_the_truth() {
    if !have_tool("ffprobe") {
        return;
    }
    for sample in ["lo-h264-aac", "lo-legacy-play", "netns-multi"] {
        let dir = root().join("samples").join(sample);
        let manifest = read_json(&dir.join("manifest.json"));
        let out = temp_dir("report");
        let cap = dir.join(manifest["capture"].as_str().unwrap());
        let o = rtmpsniff(&[
            "read",
            cap.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "-q",
            "--sha256",
        ]);
        assert_eq!(o.status.code(), Some(0));
        let report = read_json(&out.join("report.json"));
        for m in manifest["streams"].as_array().unwrap() {
            let port = m["client_port"].as_u64().unwrap();
            let conn = report["connections"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["client"].as_str().unwrap().ends_with(&format!(":{port}")))
                .unwrap();
            assert!(conn["tc_url"].as_str().unwrap().starts_with("rtmp://"));
            assert!(conn["flash_ver"].is_string());
            let st = &conn["streams"][0];
            let probe = ffprobe_streams(&dir.join(m["truth"].as_str().unwrap()));
            for ps in probe["streams"].as_array().unwrap() {
                let packets: u64 = ps["nb_read_packets"].as_str().unwrap().parse().unwrap();
                match ps["codec_type"].as_str().unwrap() {
                    "video" => {
                        assert_eq!(st["video_codec"], ps["codec_name"], "{sample} {port}");
                        assert_eq!(st["width"], ps["width"]);
                        assert_eq!(st["height"], ps["height"]);
                        assert_eq!(
                            st["video_frames"].as_u64().unwrap(),
                            packets,
                            "{sample} {port} video"
                        );
                    }
                    "audio" => {
                        assert_eq!(st["audio_codec"], ps["codec_name"]);
                        let rate: u64 = ps["sample_rate"].as_str().unwrap().parse().unwrap();
                        assert_eq!(st["audio_rate"].as_u64().unwrap(), rate);
                        assert_eq!(st["audio_channels"], ps["channels"]);
                        assert_eq!(
                            st["audio_frames"].as_u64().unwrap(),
                            packets,
                            "{sample} {port} audio"
                        );
                    }
                    _ => {}
                }
            }
            let duration: f64 = probe["format"]["duration"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let ours = st["duration_ms"].as_u64().unwrap() as f64 / 1000.0;
            assert!(
                (ours - duration).abs() < 0.1,
                "{sample} {port}: {ours} vs {duration}"
            );
            let file = out.join(st["file"].as_str().unwrap());
            assert_eq!(st["sha256"].as_str().unwrap(), sha256_hex(&file));
            assert_eq!(
                st["bytes"].as_u64().unwrap(),
                std::fs::metadata(&file).unwrap().len()
            );
            assert!(st["first_frame"].as_u64().unwrap() <= st["last_frame"].as_u64().unwrap());
        }
    }
}

#[test]
fn list_writes_nothing_and_matches_the_golden_table() {
    let cap = root().join("samples/lo-h264-aac/capture.pcap");
    let cwd = temp_dir("list");
    let o = Command::new(env!("CARGO_BIN_EXE_rtmpsniff"))
        .current_dir(&cwd)
        .args(["list", cap.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let golden = std::fs::read_to_string(root().join("tests/golden/list-lo-h264-aac.txt")).unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), golden);
    assert_eq!(
        std::fs::read_dir(&cwd).unwrap().count(),
        0,
        "list wrote a file"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_rtmpsniff"))
        .current_dir(&cwd)
        .args(["list", "--json", cap.to_str().unwrap()])
        .output()
        .unwrap();
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["connections"][0]["streams"][0]["name"], "cam1");
    assert!(j["connections"][0]["streams"][0]["file"].is_null());
    assert_eq!(std::fs::read_dir(&cwd).unwrap().count(), 0);
}

#[test]
fn selection_keeps_only_what_it_names() {
    let cap = root().join("samples/netns-multi/capture.pcap");
    let count = |args: &[&str]| {
        let out = temp_dir("select");
        let mut a = vec![
            "read",
            cap.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "-q",
        ];
        a.extend_from_slice(args);
        let o = rtmpsniff(&a);
        if o.status.code() == Some(1) {
            return 0;
        }
        let r = read_json(&out.join("report.json"));
        r["connections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["streams"].as_array().unwrap().len())
            .sum::<usize>()
    };
    assert_eq!(count(&[]), 3);
    assert_eq!(count(&["--stream", "a"]), 2);
    assert_eq!(count(&["--stream", "a", "--direction", "play"]), 1);
    assert_eq!(count(&["--stream", "live/?"]), 3);
    assert_eq!(count(&["--app", "other*"]), 0);
    assert_eq!(count(&["--client", "10.201.0.2"]), 3);
    assert_eq!(count(&["--client", "10.201.0.9"]), 0);
}

#[test]
fn man_page_and_completions_come_from_the_cli() {
    let o = rtmpsniff(&["man"]);
    assert_eq!(o.status.code(), Some(0));
    let man = String::from_utf8_lossy(&o.stdout);
    assert!(man.contains(".TH") && man.contains("rtmpsniff"));
    for shell in ["bash", "zsh", "fish"] {
        let o = rtmpsniff(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0));
        assert!(String::from_utf8_lossy(&o.stdout).contains("list"));
    }
}
