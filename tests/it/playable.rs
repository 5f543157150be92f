//! Every recovered file plays (issue 14): the report's `decodable` against what ffmpeg says
//! of each file on the real samples, configurations built for a capture begun mid-stream, and
//! the audio alone beside a video that cannot be decoded, opened by ffmpeg and VLC.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

/// Whether ffmpeg decodes the file without a word at level error, and how many lines it said.
fn ffmpeg_clean(file: &Path) -> (bool, usize) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    let lines = String::from_utf8_lossy(&out.stderr).lines().count();
    (out.status.success() && lines == 0, lines)
}

/// What VLC (cvlc, verbose, no output devices) says playing the file to its end: VLC will
/// not run as root, so as `nobody` on a world-readable copy.
fn vlc_log(file: &Path) -> String {
    let dir = std::env::temp_dir().join(format!("rtmpsniff-vlc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join(file.file_name().unwrap());
    std::fs::copy(file, &copy).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for p in [&dir, &copy] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let args = [
        "--aout=dummy",
        "--vout=dummy",
        "--play-and-exit",
        "--no-loop",
        "-vv",
    ];
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--", "cvlc"]);
        c
    } else {
        Command::new("cvlc")
    };
    let out = cmd
        .args(args)
        .arg(&copy)
        .env("HOME", &dir)
        .output()
        .expect("run cvlc");
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
}

/// The samples whose every stream is checked, with the options their capture needs.
const SAMPLES: &[&str] = &[
    "lo-h264-aac",
    "lo-legacy-play",
    "netns-multi",
    "netns-midstream",
    "netns-inband-midstream",
    "netns-loss",
    "rtmpt-publish-play",
    "rtmpt-midstream",
    "rtmpt-loss",
];

/// (sample, file, decodable.ok, ffmpeg's verdict, ffmpeg's error lines, the decodable object)
fn verdicts() -> Vec<(String, PathBuf, bool, bool, usize, serde_json::Value)> {
    let mut v = Vec::new();
    for name in SAMPLES {
        let dir = sample(name);
        let manifest = dir.join("manifest.json");
        let options = if manifest.exists() {
            port_options(&read_json(&manifest))
        } else {
            Vec::new()
        };
        let options: Vec<&str> = options.iter().map(String::as_str).collect();
        let cap = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("capture.")
            })
            .unwrap();
        let out = temp_dir("playable");
        let report = read_ok_with(&cap, &out, &options);
        for c in report["connections"].as_array().unwrap() {
            for s in c["streams"].as_array().unwrap() {
                let Some(file) = s["file"].as_str() else {
                    continue;
                };
                let d = s["decodable"].clone();
                let (clean, lines) = ffmpeg_clean(&out.join(file));
                v.push((
                    name.to_string(),
                    out.join(file),
                    d["ok"].as_bool().unwrap(),
                    clean,
                    lines,
                    d,
                ));
            }
        }
    }
    v
}

/// `decodable.ok` is what ffmpeg says of the file, on every stream of the real samples; and
/// every audio file beside decodes cleanly.
#[test]
fn decodable_is_what_ffmpeg_says() {
    require_tool("ffmpeg");
    let mut disagree = Vec::new();
    for (name, file, ok, clean, lines, d) in verdicts() {
        let base = file.file_name().unwrap().to_string_lossy().into_owned();
        eprintln!(
            "{name} {base}: decodable {ok}, ffmpeg {} ({lines} error lines), video {}, audio {}, lost video frames {}",
            if clean { "clean" } else { "errors" },
            d["video"],
            d["audio"],
            d["lost_video_frames"]
        );
        if ok != clean {
            disagree.push(format!("{name} {base}"));
        }
        if let Some(a) = d["audio_file"].as_str() {
            let a = file.with_file_name(a);
            let (aclean, alines) = ffmpeg_clean(&a);
            eprintln!("  audio alone {}: ffmpeg clean {aclean}", a.display());
            assert!(aclean, "{}: {alines} error lines", a.display());
        }
    }
    eprintln!("disagreements: {disagree:?}");
    assert!(disagree.is_empty(), "{disagree:?}");
}

/// The first video and audio configuration records of an FLV file (tag bodies).
fn configs_of(file: &Path) -> (Vec<u8>, Vec<u8>) {
    let data = std::fs::read(file).unwrap();
    let (_, tags) = rtmpsniff::sink::flv::parse(&data).unwrap();
    let first = |kind: u8| {
        tags.iter()
            .find(|t| t.kind == kind && t.body.get(1) == Some(&0))
            .map(|t| t.body.clone())
            .unwrap_or_default()
    };
    (first(9), first(8))
}

/// A capture begun after the sequence headers of an encoder that repeats its SPS and PPS in
/// every keyframe (netns-inband-midstream, x264 repeat-headers=1): the avcC built from a
/// keyframe is the encoder's own, byte for byte; the AAC configuration its first two bytes
/// (ffmpeg's encoder adds an explicit no-SBR extension); every packet from the first
/// keyframe is the peer's; the files decode cleanly in ffmpeg, and VLC decodes both kinds.
#[test]
fn in_band_parameter_sets_make_a_mid_stream_capture_play() {
    require_tool("ffmpeg");
    require(
        "cvlc (vlc-bin, vlc-plugin-base)",
        Path::new("/usr/bin/cvlc").exists(),
    );
    let dir = sample("netns-inband-midstream");
    let out = temp_dir("playable-inband");
    let report = read_ok(&dir.join("capture.pcap"), &out);
    let (avcc, asc) = configs_of(&dir.join("truth/publish-inb.flv"));
    let mut seen = 0;
    for c in report["connections"].as_array().unwrap() {
        for s in c["streams"].as_array().unwrap() {
            seen += 1;
            let d = &s["decodable"];
            assert_eq!(d["ok"], true, "{d}");
            assert_eq!(d["video"], "synthesised", "{d}");
            assert_eq!(d["audio"], "synthesised", "{d}");
            let file = out.join(s["file"].as_str().unwrap());
            let (v, a) = configs_of(&file);
            assert_eq!(v, avcc, "the avcC is the encoder's");
            assert_eq!(
                a[..4],
                asc[..4],
                "the AudioSpecificConfig's core is the encoder's"
            );
            assert!(ffmpeg_clean(&file).0);
            let truth = if s["direction"] == "publish" {
                "truth/publish-inb.flv"
            } else {
                "truth/play-ffmpeg-inb.flv"
            };
            let truth: std::collections::HashSet<Vec<u8>> = media_of(&dir.join(truth))
                .packets
                .into_iter()
                .map(|p| p.2)
                .collect();
            let got = media_of(&file).packets;
            let wrong = got.iter().filter(|p| !truth.contains(&p.2)).count();
            eprintln!(
                "netns-inband-midstream {}: {} packets, {wrong} not the peer's",
                s["direction"],
                got.len()
            );
            assert_eq!(wrong, 0);
            let log = vlc_log(&file);
            for kind in ["video", "audio"] {
                assert!(
                    log.contains(&format!("using {kind} decoder module")),
                    "VLC found no {kind} decoder: {}",
                    &log[log.len().saturating_sub(2000)..]
                );
            }
            assert!(!log.contains("Error splitting"), "{log}");
        }
    }
    assert_eq!(seen, 2);
}

/// A capture begun after the sequence headers (netns-midstream): the AAC configuration is
/// built from the frames and is the encoder's own (its first two bytes; ffmpeg's encoder
/// adds an explicit no-SBR extension after them), the H.264 one is missing (x264 sent its
/// SPS and PPS only once), and the audio alone opens and decodes in ffmpeg and VLC.
#[test]
fn mid_stream_audio_is_rebuilt_and_plays_alone() {
    require_tool("ffmpeg");
    require(
        "cvlc (vlc-bin, vlc-plugin-base)",
        Path::new("/usr/bin/cvlc").exists(),
    );
    let dir = sample("netns-midstream");
    let out = temp_dir("playable-mid");
    let report = read_ok(&dir.join("capture.pcap"), &out);
    let truth = std::fs::read(dir.join("truth/publish-mid.flv")).unwrap();
    let (_, tags) = rtmpsniff::sink::flv::parse(&truth).unwrap();
    let asc = tags
        .iter()
        .find(|t| t.kind == 8 && t.body.get(1) == Some(&0))
        .map(|t| t.body[2..4].to_vec())
        .expect("the truth's AAC configuration");
    let mut seen = 0;
    for c in report["connections"].as_array().unwrap() {
        for s in c["streams"].as_array().unwrap() {
            if s["video_codec"] != "h264" {
                continue;
            }
            seen += 1;
            let d = &s["decodable"];
            assert_eq!(d["video"], "missing", "{d}");
            assert_eq!(d["audio"], "synthesised", "{d}");
            assert_eq!(d["ok"], false);
            let syn = &d["synthesised"][0];
            let hex: String = asc.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(syn["config"], hex.as_str(), "{syn}");
            assert!(!syn["certain"].as_array().unwrap().is_empty());
            let audio = out.join(d["audio_file"].as_str().expect("an audio file"));
            assert!(ffmpeg_clean(&audio).0);
            let probe = Command::new("ffprobe")
                .args([
                    "-v",
                    "error",
                    "-show_entries",
                    "stream=codec_name,sample_rate,channels",
                ])
                .args(["-of", "csv=p=0"])
                .arg(&audio)
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "aac,44100,2");
            let log = vlc_log(&audio);
            assert!(
                log.contains("using audio decoder module"),
                "VLC found no audio decoder: {}",
                &log[log.len().saturating_sub(2000)..]
            );
            assert!(!log.contains("decoder error"), "{log}");
            // The file with the video itself does not decode, and says so.
            assert!(!ffmpeg_clean(&out.join(s["file"].as_str().unwrap())).0);
        }
    }
    assert_eq!(seen, 2);
}

/// `--config-from`: the sequence headers of an earlier recording of the same encoder make a
/// mid-stream capture decode (netns-midstream with its own publisher's recording); those of
/// another encoder (lo-h264-aac: Baseline, mono) are refused where they do not fit the frames
/// (B-frames, a channel pair element), and the file stays honest; a file that is not FLV is
/// one line and status 2.
#[test]
fn config_from_a_file_is_checked_before_use() {
    require_tool("ffmpeg");
    let cap = sample("netns-midstream").join("capture.pcap");
    let same = sample("netns-midstream").join("truth/publish-mid.flv");
    let out = temp_dir("playable-cfg");
    let report = read_ok_with(&cap, &out, &["--config-from", same.to_str().unwrap()]);
    let mut n = 0;
    for c in report["connections"].as_array().unwrap() {
        for s in c["streams"].as_array().unwrap() {
            let file = out.join(s["file"].as_str().unwrap());
            let d = &s["decodable"];
            assert_eq!(d["ok"], true, "{d}");
            assert!(ffmpeg_clean(&file).0, "{}", file.display());
            if s["video_codec"] == "h264" {
                n += 1;
                assert_eq!(d["video"], "from_file", "{d}");
                assert_eq!(d["audio"], "from_file", "{d}");
            }
        }
    }
    assert_eq!(n, 2);

    let other = sample("lo-h264-aac").join("truth/publish-cam1.flv");
    let out = temp_dir("playable-cfg-other");
    let report = read_ok_with(&cap, &out, &["--config-from", other.to_str().unwrap()]);
    for c in report["connections"].as_array().unwrap() {
        for s in c["streams"].as_array().unwrap() {
            if s["video_codec"] != "h264" {
                continue;
            }
            let d = &s["decodable"];
            assert_eq!(d["video"], "missing", "{d}");
            assert_eq!(d["audio"], "synthesised", "{d}");
            let notes = s["notes"].to_string();
            assert!(notes.contains("Baseline"), "{notes}");
            assert!(notes.contains("channel pair"), "{notes}");
        }
    }

    let out = temp_dir("playable-cfg-bad");
    let r = rtmpsniff(&[
        "read",
        cap.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--config-from",
        cap.to_str().unwrap(),
    ]);
    assert_eq!(r.status.code(), Some(2));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("--config-from") && err.contains("not an FLV file"),
        "{err}"
    );
}

/// A recent ffmpeg (imageio-ffmpeg's), which reads Enhanced RTMP FLV; the system's may not.
fn recent_ffmpeg() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())",
        ])
        .output();
    let path = out
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    require(
        "a recent ffmpeg (pip install imageio-ffmpeg)",
        path.as_ref().is_some_and(|p| p.exists()),
    );
    path.unwrap()
}

/// An Enhanced RTMP HEVC publish captured from 3 s in (lo-enhanced-hevc-midstream: ffmpeg 9,
/// x265 repeat-headers=1): the hvcC built from the VPS, SPS and PPS of a keyframe is the
/// encoder's own, byte for byte; the AAC configuration's first two bytes too; every frame
/// from the first keyframe is the publisher's, at its time; the file decodes cleanly in a
/// recent ffmpeg.
#[test]
fn hevc_in_band_parameter_sets_make_a_mid_stream_capture_play() {
    let ff = recent_ffmpeg();
    let dir = sample("lo-enhanced-hevc-midstream");
    let out = temp_dir("playable-hevc");
    let report = read_ok_with(&dir.join("capture.pcap"), &out, &["--port", "19355"]);
    let truth =
        rtmpsniff::sink::flv::parse(&std::fs::read(dir.join("truth/publish-hevc.flv")).unwrap())
            .unwrap()
            .1;
    // A sequence start (Enhanced RTMP packet type 0; legacy AAC packet type 0).
    let config = |t: &rtmpsniff::sink::flv::ReadTag| match t.kind {
        9 => t.body.len() > 5 && t.body[0] & 0x8f == 0x80,
        8 => t.body.get(1) == Some(&0),
        _ => false,
    };
    let truth_cfg = |kind: u8| {
        truth
            .iter()
            .find(|t| t.kind == kind && config(t))
            .map(|t| t.body.clone())
            .unwrap()
    };
    let streams: Vec<&serde_json::Value> = report["connections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["streams"].as_array().unwrap())
        .collect();
    assert_eq!(streams.len(), 1);
    let s = streams[0];
    assert_eq!(s["video_codec"], "hevc");
    let d = &s["decodable"];
    assert_eq!(d["ok"], true, "{d}");
    assert_eq!(d["video"], "synthesised", "{d}");
    assert_eq!(d["audio"], "synthesised", "{d}");
    let file = out.join(s["file"].as_str().unwrap());
    let got = rtmpsniff::sink::flv::parse(&std::fs::read(&file).unwrap())
        .unwrap()
        .1;
    let got_cfg = |kind: u8| {
        got.iter()
            .find(|t| t.kind == kind && config(t))
            .map(|t| t.body.clone())
            .unwrap()
    };
    assert_eq!(got_cfg(9), truth_cfg(9), "the hvcC is the encoder's");
    assert_eq!(got_cfg(8)[..4], truth_cfg(8)[..4]);
    let times: std::collections::HashMap<(u8, &[u8]), u32> = truth
        .iter()
        .filter(|t| !config(t))
        .map(|t| ((t.kind, &t.body[..]), t.timestamp))
        .collect();
    let frames: Vec<_> = got
        .iter()
        .filter(|t| matches!(t.kind, 8 | 9) && !config(t))
        .collect();
    let off = times[&(frames[0].kind, &frames[0].body[..])] as i64 - frames[0].timestamp as i64;
    let exact = frames
        .iter()
        .filter(|t| {
            times
                .get(&(t.kind, &t.body[..]))
                .is_some_and(|&ts| (ts as i64 - t.timestamp as i64 - off).abs() <= 1)
        })
        .count();
    eprintln!(
        "lo-enhanced-hevc-midstream: {} frames, {exact} the publisher's at its time",
        frames.len()
    );
    assert!(frames.len() > 200);
    assert_eq!(exact, frames.len());
    ffmpeg_decodes_cleanly_with(&ff, &file).unwrap();
}

/// Enhanced RTMP Opus and FLAC (lo-enhanced-opus, lo-enhanced-flac: ffmpeg 9 publishing to
/// itself): the rate and channels the report gives from their configurations (OpusHead,
/// STREAMINFO) are what a recent ffmpeg says of the publisher's own file; every packet is
/// the publisher's; the file decodes cleanly in that ffmpeg, as decodable says.
#[test]
fn opus_and_flac_rate_and_channels_are_what_ffmpeg_says() {
    let ff = recent_ffmpeg();
    for codec in ["opus", "flac"] {
        let dir = sample(&format!("lo-enhanced-{codec}"));
        let truth = dir.join(format!("truth/publish-{codec}.flv"));
        let probe = Command::new(&ff)
            .args(["-hide_banner", "-i"])
            .arg(&truth)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&probe.stderr).into_owned();
        let line = said
            .lines()
            .find(|l| l.contains("Audio:"))
            .expect("an audio stream");
        let out = temp_dir("playable-enhanced");
        let report = read_ok_with(&dir.join("capture.pcap"), &out, &["--port", "19354"]);
        let s = &report["connections"][0]["streams"][0];
        assert_eq!(s["audio_codec"], codec);
        let rate = s["audio_rate"].as_u64().expect("a rate");
        let channels = match s["audio_channels"].as_u64().expect("channels") {
            1 => "mono".to_string(),
            2 => "stereo".to_string(),
            n => format!("{n} channels"),
        };
        eprintln!(
            "{codec}: report {rate} Hz {channels}; ffmpeg: {}",
            line.trim()
        );
        assert!(
            line.contains(&format!("Audio: {codec}, {rate} Hz, {channels},")),
            "{line}"
        );
        let file = out.join(s["file"].as_str().unwrap());
        let want = media_of(&truth).packets;
        let got = media_of(&file).packets;
        assert_eq!(got, want, "{codec}: the publisher's packets");
        ffmpeg_decodes_cleanly_with(&ff, &file).unwrap();
        assert_eq!(s["decodable"]["ok"], true);
    }
}

/// Packets ffmpeg 9 reads in each stream of a file, in its stream order, with what it says of
/// each stream (`Video: h264 (High), ..., 160x120` and the like).
fn ffmpeg_streams(ff: &Path, file: &Path) -> Vec<(String, usize)> {
    let info = Command::new(ff)
        .arg("-hide_banner")
        .arg("-i")
        .arg(file)
        .output()
        .unwrap();
    let lines: Vec<String> = String::from_utf8_lossy(&info.stderr)
        .lines()
        .filter(|l| l.trim_start().starts_with("Stream #0:"))
        .map(str::to_string)
        .collect();
    let crc = Command::new(ff)
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-map", "0", "-c", "copy", "-f", "framecrc", "-"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&crc.stdout).into_owned();
    lines
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let n = text
                .lines()
                .filter(|x| {
                    !x.starts_with('#')
                        && x.split(',').next().map(str::trim) == Some(&i.to_string())
                })
                .count();
            (l, n)
        })
        .collect()
}

/// Enhanced RTMP multitrack (lo-enhanced-multitrack: ffmpeg 9 publishing two H.264 tracks,
/// 320x240 and 160x120, and AAC + Opus audio tracks): tracks[] has each track with its own
/// frames, size or rate and channels, equal to what ffmpeg 9 says of the publisher's file;
/// the file is the publisher's, packet for packet.
#[test]
fn multitrack_tracks_are_what_ffmpeg_says() {
    let ff = recent_ffmpeg();
    let dir = sample("lo-enhanced-multitrack");
    let truth = ffmpeg_streams(&ff, &dir.join("truth/publish-mt.flv"));
    let out = temp_dir("playable-multitrack");
    let report = read_ok_with(&dir.join("capture.pcap"), &out, &["--port", "19354"]);
    let s = &report["connections"][0]["streams"][0];
    let tracks = s["tracks"].as_array().expect("tracks");
    assert_eq!(tracks.len(), truth.len(), "{tracks:?} {truth:?}");
    for t in tracks {
        let want = if t["kind"] == "video" {
            format!(
                "Video: {} (High), yuv420p(progressive), {}x{}",
                t["codec"].as_str().unwrap(),
                t["width"],
                t["height"]
            )
        } else {
            let ch = if t["audio_channels"] == 2 {
                "stereo"
            } else {
                "mono"
            };
            format!(
                "Audio: {}{}, {} Hz, {ch}",
                t["codec"].as_str().unwrap(),
                if t["codec"] == "aac" { " (LC)" } else { "" },
                t["audio_rate"]
            )
        };
        let frames = t["frames"].as_u64().unwrap() as usize;
        let found = truth
            .iter()
            .find(|(l, n)| l.contains(&want) && *n == frames);
        eprintln!("track {t}: ffmpeg {found:?}");
        assert!(found.is_some(), "{t} not in {truth:?}");
    }
    // Every packet, of every track, is the publisher's.
    let file = out.join(s["file"].as_str().unwrap());
    assert_eq!(
        media_of(&file).packets,
        media_of(&dir.join("truth/publish-mt.flv")).packets
    );
    // The stream's own counts are track 0's, not the tracks mixed.
    let zero = |kind: &str| {
        tracks
            .iter()
            .find(|t| t["kind"] == kind && t["track_id"] == 0)
            .unwrap()["frames"]
            .clone()
    };
    assert_eq!(s["video_frames"], zero("video"));
    assert_eq!(s["audio_frames"], zero("audio"));
}

/// ffmpeg's -listen server sends a play's media on message stream 0 while Play.Start is on
/// stream 1 (lo-listen-play): they are the play's, one stream named as the client asked,
/// with a warning, not an unnamed extra stream; every packet is what the player recorded.
#[test]
fn media_on_stream_zero_join_the_only_play() {
    let dir = sample("lo-listen-play");
    let out = temp_dir("playable-listen");
    let report = read_ok_with(&dir.join("capture.pcap"), &out, &["--port", "19360"]);
    let c = &report["connections"][0];
    let streams = c["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 1, "{streams:?}");
    let s = &streams[0];
    assert_eq!(s["name"], "x");
    assert_eq!(s["message_stream_id"], 1);
    assert!(
        c["warnings"].to_string().contains("message stream 0"),
        "{}",
        c["warnings"]
    );
    let got = media_of(&out.join(s["file"].as_str().unwrap())).packets;
    let want = media_of(&dir.join("truth/play-ffmpeg-x.flv")).packets;
    assert!(!got.is_empty());
    assert_eq!(got, want);
    assert_eq!(s["decodable"]["ok"], true);
}
