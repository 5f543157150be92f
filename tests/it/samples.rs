//! Every sample made with real peers (samples/*/manifest.json) comes back bit-exact: every
//! audio/video packet of the peer's own recording, no extra one, and a clean ffmpeg decode.

use std::path::Path;

use crate::util::*;

fn check_sample(dir: &Path) -> Vec<String> {
    let manifest = read_json(&dir.join("manifest.json"));
    let capture = dir.join(manifest["capture"].as_str().unwrap());
    let out = temp_dir(dir.file_name().unwrap().to_str().unwrap());
    let report = read_ok(&capture, &out);
    let mut lines = Vec::new();
    for s in manifest["streams"].as_array().unwrap() {
        let port = s["client_port"].as_u64().unwrap();
        let direction = s["direction"].as_str().unwrap();
        let name = s["name"].as_str().unwrap();
        let conn = report["connections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["client"].as_str().unwrap().ends_with(&format!(":{port}")))
            .unwrap_or_else(|| panic!("no connection from client port {port} in the report"));
        assert_eq!(conn["handshake"], "seen");
        assert_eq!(conn["app"], s["app"]);
        let st = conn["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["direction"] == direction)
            .unwrap_or_else(|| panic!("no {direction} stream from port {port}"));
        assert_eq!(st["name"], name);
        assert_eq!(st["video_codec"], s["video_codec"]);
        assert_eq!(st["audio_codec"], s["audio_codec"]);
        let file = out.join(st["file"].as_str().unwrap());
        let truth_path = dir.join(s["truth"].as_str().unwrap());
        let truth = media_of(&truth_path);
        let got = media_of(&file);
        let matched = matched_in_order(&truth.packets, &got.packets);
        lines.push(format!(
            "{}: {direction} {name} port {port}: {matched}/{} truth packets bit-exact, {} recovered",
            dir.file_name().unwrap().to_string_lossy(),
            truth.packets.len(),
            got.packets.len()
        ));
        assert_eq!(
            got.packets.len(),
            truth.packets.len(),
            "packet count, {}",
            file.display()
        );
        assert_eq!(
            matched,
            truth.packets.len(),
            "bit-exact packets, {}",
            file.display()
        );
        assert_eq!(
            got.configs,
            truth.configs,
            "decoder configurations, {}",
            file.display()
        );
        assert_eq!(
            got.frame_before_config, None,
            "a frame precedes its configuration"
        );
        assert_eq!(
            st["video_frames"].as_u64().unwrap() as usize,
            got.packets
                .iter()
                .filter(|p| p.0 == 9 && rtmpsniff::rtmp::media::video(&p.2).unwrap().frame)
                .count()
        );
        ffmpeg_decodes_cleanly(&file).unwrap();
    }
    lines
}

#[test]
fn every_sample_is_recovered_bit_exact() {
    require_tool("ffmpeg");
    let samples = root().join("samples");
    let mut dirs: Vec<_> = std::fs::read_dir(&samples)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("manifest.json").exists())
        // RTMPT samples (samples/rtmpt-*, manifests with "http_server") are read by the
        // transport::rtmpt unit tests; the binary does not unwrap RTMPT yet.
        // RTMPS samples (manifest "encryption": "tls") need their ports and key logs:
        // tests/it/rtmps.rs checks them.
        .filter(|p| {
            let m = read_json(&p.join("manifest.json"));
            m.get("http_server").is_none() && m.get("encryption").is_none()
        })
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 3, "samples are missing");
    for d in dirs {
        for l in check_sample(&d) {
            eprintln!("{l}");
        }
    }
}
