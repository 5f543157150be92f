//! The public real-world captures in ../shared/captures: at least every media message
//! Wireshark's dissector finds, clean decodes, and the connection facts they are known for.

use std::path::PathBuf;
use std::process::Command;

use crate::util::*;

fn shared() -> PathBuf {
    let d = root().join("..").join("shared").join("captures");
    require("../shared/captures is not beside the project", d.is_dir());
    d
}

/// Audio and video messages tshark's RTMP dissector finds.
fn tshark_media(path: &std::path::Path) -> (usize, usize) {
    let o = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(path)
        .args([
            "-T",
            "fields",
            "-e",
            "rtmpt.header.typeid",
            "-E",
            "occurrence=a",
            "-E",
            "separator=,",
        ])
        .output()
        .expect("run tshark");
    let text = String::from_utf8_lossy(&o.stdout);
    let mut a = 0;
    let mut v = 0;
    for f in text.split([',', '\n']) {
        match f.trim() {
            "0x08" | "8" => a += 1,
            "0x09" | "9" => v += 1,
            _ => {}
        }
    }
    (a, v)
}

#[test]
fn at_least_what_wireshark_finds_and_clean_decodes() {
    let dir = shared();
    require_tool("tshark");
    require_tool("ffmpeg");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    names.sort();
    assert!(names.len() >= 6);
    for cap in names {
        let out = temp_dir("shared");
        let o = rtmpsniff(&[
            "read",
            cap.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "-q",
            "--any-port",
        ]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}: {}",
            cap.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        let report = read_json(&out.join("report.json"));
        let (mut audio, mut video) = (0usize, 0usize);
        for c in report["connections"].as_array().unwrap() {
            for s in c["streams"].as_array().unwrap() {
                let Some(f) = s["file"].as_str() else {
                    continue;
                };
                let path = out.join(f);
                let data = std::fs::read(&path).unwrap();
                let (_, tags) = rtmpsniff::sink::flv::parse(&data).expect("valid FLV");
                audio += tags.iter().filter(|t| t.kind == 8).count();
                video += tags.iter().filter(|t| t.kind == 9).count();
                ffmpeg_decodes_cleanly(&path).unwrap();
            }
        }
        let (wa, wv) = tshark_media(&cap);
        eprintln!(
            "{}: rtmpsniff {audio} audio / {video} video messages, Wireshark {wa} / {wv}",
            cap.file_name().unwrap().to_string_lossy()
        );
        assert!(
            audio >= wa && video >= wv,
            "{}: fewer than Wireshark",
            cap.display()
        );
    }
}

#[test]
fn tunnels_vlan_and_nonstandard_port() {
    let dir = shared();
    let cap = dir.join("ndpi-vlan-gtp-nonstd-port.pcapng");
    let out = temp_dir("ndpi");
    let o = rtmpsniff(&[
        "read",
        cap.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
        "--any-port",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let report = read_json(&out.join("report.json"));
    let conns = report["connections"].as_array().unwrap();
    assert_eq!(
        conns.len(),
        3,
        "plain, GTP-U in VLAN, and GTP-U on port 6002"
    );
    assert!(
        conns
            .iter()
            .any(|c| c["server"].as_str().unwrap().ends_with(":6002"))
    );
    assert!(
        conns
            .iter()
            .all(|c| c["handshake"] == "seen" && c["app"].is_string())
    );
    // Without --any-port the port-6002 connection is not looked at.
    let out = temp_dir("ndpi-ports");
    rtmpsniff(&[
        "read",
        cap.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
    ]);
    let report = read_json(&out.join("report.json"));
    assert_eq!(report["connections"].as_array().unwrap().len(), 2);
}

#[test]
fn obs_publish_facts() {
    let dir = shared();
    let out = temp_dir("obs");
    let cap = dir.join("obs-publish-nginx.pcap");
    let o = rtmpsniff(&[
        "read",
        cap.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let report = read_json(&out.join("report.json"));
    let c = &report["connections"][0];
    assert_eq!(c["app"], "twinx");
    assert_eq!(c["chunk_sizes_client"], serde_json::json!([128, 4096]));
    assert_eq!(c["chunk_sizes_server"], serde_json::json!([128, 4000]));
    let s = &c["streams"][0];
    assert_eq!(s["name"], "1234");
    assert_eq!(s["direction"], "publish");
    assert_eq!(s["video_codec"], "h264");
    assert_eq!(s["audio_codec"], "aac");
    assert_eq!(s["audio_rate"], 48000);
    assert_eq!(s["audio_channels"], 2);
    assert_eq!(s["video_frames"], 125);
}

/// 10% of the packets corrupted on the wire (netem) where the sender left its checksums to
/// offloading: the segments whose checksum is neither right nor the pseudo-header's sum were
/// corrupted, and must not end the connection (a flipped RST flag did), open another (a
/// flipped port), or move its sequence space (a flipped sequence number made a 1 GiB gap).
#[test]
fn corrupted_segments_neither_end_open_nor_move_a_connection() {
    let dir = shared();
    require_tool("ffmpeg");
    require_tool("ffprobe");
    let cap = dir.join("vlc-play-h263-corrupt10.pcapng");
    for any_port in [false, true] {
        let out = temp_dir("corrupt10");
        let opts: &[&str] = if any_port { &["--any-port"] } else { &[] };
        let report = read_ok_with(&cap, &out, opts);
        let conns = report["connections"].as_array().unwrap();
        assert_eq!(conns.len(), 1, "one connection, reported once");
        let c = &conns[0];
        assert_eq!(c["client"], "172.17.0.3:53858");
        assert_eq!(c["handshake"], "seen");
        assert_eq!(
            c["gaps"],
            serde_json::json!([]),
            "every hole was retransmitted"
        );
        assert_eq!(c["warnings"], serde_json::json!([]));
        // About a tenth of the server's 1,939 segments were corrupted; those whose flipped
        // bit fell in the TCP segment show it in their checksum.
        let bad = c["bad_checksums"].as_u64().unwrap();
        assert!((100..=400).contains(&bad), "{bad} segments dropped");
        assert!(report["stats"]["bad_checksums"].as_u64().unwrap() >= bad);
        assert_eq!(
            report["stats"]["connections"], 1,
            "no connection of a flipped port"
        );
        let s = &c["streams"][0];
        assert_eq!(
            (&s["name"], &s["direction"]),
            (&"stream".into(), &"play".into())
        );
        let file = out.join(s["file"].as_str().unwrap());
        ffmpeg_decodes_cleanly(&file).unwrap();
        let probe = ffprobe_streams(&file);
        let packets: u64 = probe["streams"][0]["nb_read_packets"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(s["video_frames"].as_u64(), Some(packets));
        assert!(packets >= tshark_media(&cap).1 as u64);
        // To the end of the play: the server's last media message is near the capture's end.
        assert!(
            s["last_frame"].as_u64().unwrap() > 3000,
            "{}",
            s["last_frame"]
        );
    }
}
