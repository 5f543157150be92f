//! Every sample made with real peers (samples/*/manifest.json) comes back bit-exact: every
//! audio/video packet of the peer's own recording, no extra one, and a clean ffmpeg decode.
//! RTMPT samples (manifests with `http_server`) are read with `--port` of their HTTP server,
//! and each stream is found by its session id; those cut or thinned on purpose (mid-stream,
//! loss) are held to what tests/it/hard.rs asks of such captures.

use std::path::Path;

use crate::util::*;

fn check_sample(dir: &Path) -> Vec<String> {
    let manifest = read_json(&dir.join("manifest.json"));
    let capture = dir.join(manifest["capture"].as_str().unwrap());
    let out = temp_dir(dir.file_name().unwrap().to_str().unwrap());
    let options = port_options(&manifest);
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    let report = read_ok_with(&capture, &out, &options);
    let mut lines = Vec::new();
    for s in manifest["streams"].as_array().unwrap() {
        let direction = s["direction"].as_str().unwrap();
        let name = s["name"].as_str().unwrap();
        let from = match s.get("rtmpt_session") {
            Some(id) => format!("session {}", id.as_str().unwrap()),
            None => format!("port {}", s["client_port"]),
        };
        let conn = connection_of(&report, s);
        assert_eq!(conn["handshake"], "seen");
        assert_eq!(conn["app"], s["app"]);
        let st = conn["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["direction"] == direction)
            .unwrap_or_else(|| panic!("no {direction} stream from {from}"));
        assert_eq!(st["name"], name);
        assert_eq!(st["video_codec"], s["video_codec"]);
        assert_eq!(st["audio_codec"], s["audio_codec"]);
        let file = out.join(st["file"].as_str().unwrap());
        let truth_path = dir.join(s["truth"].as_str().unwrap());
        let mut truth = media_of(&truth_path);
        let mut got = media_of(&file);
        truth.packets = comparable(s, truth.packets);
        got.packets = comparable(s, got.packets);
        let matched = matched_per_kind(&truth.packets, &got.packets);
        lines.push(format!(
            "{}: {direction} {name} {from}: {matched}/{} truth packets bit-exact, {} recovered",
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
        // A capture cut mid-stream or with frames deleted (rtmpt-midstream, rtmpt-loss):
        // tests/it/hard.rs. RTMPS samples (manifest "encryption": "tls") need their ports
        // and key logs: tests/it/rtmps.rs checks them.
        .filter(|p| {
            let m = read_json(&p.join("manifest.json"));
            m.get("cut_from_epoch").is_none()
                && m.get("dropped_frames").is_none()
                && m.get("encryption").is_none()
        })
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 6, "samples are missing");
    let rtmpt = dirs
        .iter()
        .filter(|d| {
            read_json(&d.join("manifest.json"))
                .get("http_server")
                .is_some()
        })
        .count();
    assert!(rtmpt >= 3, "RTMPT samples are missing");
    for d in dirs {
        for l in check_sample(&d) {
            eprintln!("{l}");
        }
    }
}
