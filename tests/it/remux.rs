//! `read --remux mp4|mkv`: every stream's FLV also remuxed by ffmpeg, the same packets bit for
//! bit (ffprobe's hashes of each packet), MP4 where it holds the codecs and Matroska with a
//! note where it does not, under a name nothing had, listed beside the FLV in the report;
//! without ffmpeg, one line and status 2.

use std::path::Path;
use std::process::Command;

use crate::util::{read_json, require_tool, rtmpsniff, sample, temp_dir};

/// ffprobe's view of a file's packets: per stream (by codec), the MD5 of each packet's data.
fn packets(path: &Path) -> Vec<(String, Vec<String>)> {
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-show_data_hash", "MD5", "-show_entries"])
        .args([
            "packet=stream_index,data_hash:stream=index,codec_name",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success(), "ffprobe {}", path.display());
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut out: Vec<(String, Vec<String>)> = j["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let index = s["index"].as_u64().unwrap();
            let hashes = j["packets"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["stream_index"].as_u64() == Some(index))
                .map(|p| p["data_hash"].as_str().unwrap().to_string())
                .collect();
            (s["codec_name"].as_str().unwrap().to_string(), hashes)
        })
        .collect();
    out.sort();
    out
}

fn read(capture: &Path, out: &Path, more: &[&str]) -> std::process::Output {
    let mut args = vec![
        "read",
        capture.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(more);
    rtmpsniff(&args)
}

/// Check every stream of a `--remux` run: the container and note expected for its codecs,
/// ffprobe reads the file, and it holds the FLV's packets, bit for bit, as many as the report
/// counts. The files made, by name.
fn check(out: &Path, want: &str, note: Option<&str>) -> Vec<String> {
    let report = read_json(&out.join("report.json"));
    let mut made = Vec::new();
    for c in report["connections"].as_array().unwrap() {
        for st in c["streams"].as_array().unwrap() {
            let flv = st["file"].as_str().unwrap();
            let r = &st["remuxed"];
            let label = format!("{flv}: {r}");
            assert_eq!(r["container"], want, "{label}");
            assert_eq!(r["note"].as_str(), note, "{label}");
            assert_eq!(r["error"], serde_json::Value::Null, "{label}");
            let file = r["file"].as_str().unwrap();
            assert!(file.ends_with(&format!(".{want}")), "{label}");
            let path = out.join(file);
            assert_eq!(
                std::fs::metadata(&path).unwrap().len(),
                r["bytes"].as_u64().unwrap()
            );
            let got = packets(&path);
            assert_eq!(
                got,
                packets(&out.join(flv)),
                "{label}: not the FLV's packets"
            );
            let count = |codec: &serde_json::Value| {
                got.iter()
                    .find(|(c, _)| Some(c.as_str()) == codec.as_str())
                    .map_or(0, |(_, p)| p.len() as u64)
            };
            assert_eq!(
                count(&st["video_codec"]),
                st["video_frames"].as_u64().unwrap(),
                "{label}"
            );
            assert_eq!(
                count(&st["audio_codec"]),
                st["audio_frames"].as_u64().unwrap(),
                "{label}"
            );
            made.push(file.to_string());
        }
    }
    made
}

#[test]
fn h264_and_aac_go_into_mp4_and_flv1_into_mkv_with_a_note() {
    require_tool("ffmpeg");
    require_tool("ffprobe");
    let dir = temp_dir("remux");
    let out = dir.join("h264");
    let o = read(
        &sample("lo-h264-aac/capture.pcap"),
        &out,
        &["--remux", "mp4"],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let made = check(&out, "mp4", None);
    assert_eq!(made.len(), 1);
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(
        summary.contains(&format!(
            "remuxed: {} -> {}\n",
            made[0].replace(".mp4", ".flv"),
            made[0]
        )),
        "{summary}"
    );

    let out = dir.join("legacy");
    let o = read(
        &sample("lo-legacy-play/capture.pcapng"),
        &out,
        &["--remux", "mp4", "-q"],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.stdout.is_empty());
    let made = check(&out, "mkv", Some("mkv, not mp4: mp4 cannot hold flv1"));
    assert_eq!(made.len(), 3);

    // Asked for Matroska: Matroska, whatever the codecs.
    let out = dir.join("mkv");
    let o = read(
        &sample("lo-h264-aac/capture.pcap"),
        &out,
        &["--remux", "mkv", "-q"],
    );
    assert_eq!(o.status.code(), Some(0));
    check(&out, "mkv", None);
    // Without --remux, no remuxed file and no field.
    let out = dir.join("none");
    let o = read(&sample("lo-h264-aac/capture.pcap"), &out, &["-q"]);
    assert_eq!(o.status.code(), Some(0));
    let report = read_json(&out.join("report.json"));
    assert!(
        report["connections"][0]["streams"][0]
            .get("remuxed")
            .is_none()
    );
}

#[test]
fn a_remuxed_file_never_replaces_one_that_is_there() {
    require_tool("ffmpeg");
    require_tool("ffprobe");
    let dir = temp_dir("remux-names");
    let capture = sample("lo-h264-aac/capture.pcap");
    let o = read(&capture, &dir.join("first"), &["-q", "--remux", "mp4"]);
    assert_eq!(o.status.code(), Some(0));
    let name = check(&dir.join("first"), "mp4", None).remove(0);
    let out = dir.join("second");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join(&name), b"precious").unwrap();
    // A dangling link under the second name is not followed either.
    let second = name.replace(".mp4", "-2.mp4");
    std::os::unix::fs::symlink(dir.join("elsewhere"), out.join(&second)).unwrap();
    let o = read(&capture, &out, &["-q", "--remux", "mp4"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(std::fs::read(out.join(&name)).unwrap(), b"precious");
    assert!(!dir.join("elsewhere").exists());
    let made = check(&out, "mp4", None);
    assert_eq!(made, vec![name.replace(".mp4", "-3.mp4")]);
}

#[test]
fn remux_without_ffmpeg_is_one_line_and_status_2() {
    let out = temp_dir("remux-noffmpeg");
    let empty = out.join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_rtmpsniff"))
        .args(["read", sample("lo-h264-aac/capture.pcap").to_str().unwrap()])
        .args(["-o", out.join("out").to_str().unwrap(), "--remux", "mp4"])
        .env("PATH", &empty)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("rtmpsniff: --remux needs ffmpeg"), "{err}");
    // Nothing was read or written.
    assert!(!out.join("out").exists());
    // list has no --remux: a usage error.
    let o = rtmpsniff(&["list", "x.pcap", "--remux", "mp4"]);
    assert_eq!(o.status.code(), Some(2));
}
