//! Hard real captures (samples/make-hard-samples.sh): a capture begun mid-stream and one with
//! 1% of its frames deleted. Every packet written must be one the peer itself recorded (none
//! wrong), and nearly all of them must come back.

use std::path::Path;

use rtmpsniff::rtmp::media;

use crate::util::*;

type Packets = Vec<(u8, u32, Vec<u8>)>;

/// Recall of `truth` packets in `got` counted from `start` (a truth index), and how many of
/// `got` the truth does not have.
fn score(truth: &Packets, got: &Packets, start: usize) -> (usize, usize, usize) {
    let bodies: std::collections::HashSet<&[u8]> = got.iter().map(|p| p.2.as_slice()).collect();
    let truth_bodies: std::collections::HashSet<&[u8]> =
        truth.iter().map(|p| p.2.as_slice()).collect();
    let found = truth[start..]
        .iter()
        .filter(|p| bodies.contains(p.2.as_slice()))
        .count();
    let wrong = got
        .iter()
        .filter(|p| !truth_bodies.contains(p.2.as_slice()))
        .count();
    (found, truth.len() - start, wrong)
}

/// The output streams of a run, keyed by (direction, video codec).
fn outputs(
    dir: &Path,
    capture: &Path,
) -> Vec<(String, String, std::path::PathBuf, serde_json::Value)> {
    let report = read_ok(capture, dir);
    let mut v = Vec::new();
    for c in report["connections"].as_array().unwrap() {
        for s in c["streams"].as_array().unwrap() {
            v.push((
                s["direction"].as_str().unwrap().to_string(),
                s["video_codec"].as_str().unwrap_or("").to_string(),
                dir.join(s["file"].as_str().unwrap()),
                c.clone(),
            ));
        }
    }
    v
}

fn truth_for(direction: &str, codec: &str) -> &'static str {
    match (direction, codec) {
        ("publish", "h264") => "publish-mid.flv",
        ("play", "h264") => "play-ffmpeg-mid.flv",
        ("publish", "flv1") => "publish-leg.flv",
        ("play", "flv1") => "play-ffmpeg-leg.flv",
        other => panic!("unexpected stream {other:?}"),
    }
}

#[test]
fn capture_begun_mid_stream_is_recovered_from_the_first_keyframe() {
    let sample = root().join("samples/netns-midstream");
    let out = temp_dir("midstream");
    let streams = outputs(&out, &sample.join("capture.pcap"));
    assert_eq!(streams.len(), 4);
    for (direction, codec, file, conn) in streams {
        assert_eq!(conn["handshake"], "missing");
        assert!(!conn["locks"].as_array().unwrap().is_empty());
        // Audio and video each joined with an unknown base: the offset put between them is
        // reported, settled to a ms.
        for s in conn["streams"].as_array().unwrap() {
            let t = &s["timing"];
            assert!(t["av_offset_ms"].is_i64(), "{s}");
            assert!(t["av_offset_uncertainty_ms"].as_i64().unwrap() <= 1, "{s}");
        }
        let truth = media_of(&sample.join("truth").join(truth_for(&direction, &codec))).packets;
        let got = media_of(&file).packets;
        // The first keyframe written, and where it stands in the truth.
        let key = got
            .iter()
            .find(|p| p.0 == 9 && media::video(&p.2).is_some_and(|i| i.keyframe))
            .expect("a keyframe");
        let start = truth
            .iter()
            .position(|p| p.2 == key.2)
            .expect("keyframe is in the truth");
        let (found, total, wrong) = score(&truth, &got, start);
        eprintln!(
            "netns-midstream {direction} {codec}: {found}/{total} packets from the first keyframe, {wrong} wrong"
        );
        assert_eq!(wrong, 0);
        assert!(found * 100 >= total * 99, "{found}/{total}");
    }
}

#[test]
fn capture_with_one_percent_of_frames_missing() {
    let sample = root().join("samples/netns-loss");
    let out = temp_dir("loss");
    let streams = outputs(&out, &sample.join("capture.pcap"));
    assert_eq!(streams.len(), 4);
    let (mut all_found, mut all_total) = (0, 0);
    for (direction, codec, file, conn) in streams {
        assert!(
            !conn["gaps"].as_array().unwrap().is_empty(),
            "the deleted frames are gaps"
        );
        // Time the lost headers took is put back, and said.
        for s in conn["streams"].as_array().unwrap() {
            assert!(!s["timing"]["lost"].as_array().unwrap().is_empty(), "{s}");
        }
        let truth = media_of(&sample.join("truth").join(truth_for(&direction, &codec))).packets;
        let got = media_of(&file).packets;
        let (found, total, wrong) = score(&truth, &got, 0);
        eprintln!("netns-loss {direction} {codec}: {found}/{total} packets, {wrong} wrong");
        assert_eq!(wrong, 0);
        all_found += found;
        all_total += total;
    }
    assert!(all_found * 100 >= all_total * 95, "{all_found}/{all_total}");
}
