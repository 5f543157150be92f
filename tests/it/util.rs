//! Small helpers shared by the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use rtmpsniff::rtmp::media;
use rtmpsniff::sink::flv;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file of the samples folder.
pub fn sample(name: &str) -> PathBuf {
    root().join("samples").join(name)
}

/// The FLVs a run wrote into `dir`, by name, with their bytes.
pub fn flvs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "flv").then(|| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&p).unwrap())
            })
        })
        .collect();
    out.sort();
    out
}

/// A fresh, empty folder under the target directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = root().join("target").join("it-tmp").join(format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn rtmpsniff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rtmpsniff"))
        .args(args)
        .output()
        .expect("run rtmpsniff")
}

/// A test that cannot run without something it depends on (a peer, root, ../shared) fails,
/// so that cargo's own summary shows it was not run, in CI and locally alike: never an `ok`
/// for a test that did not run. `.ci/run` installs everything.
pub fn require(what: &str, present: bool) {
    assert!(
        present,
        "NOT RUN: {what} (.ci/run installs what the tests need)"
    );
}

/// An external tool, which must be installed (see [`require`]): it answers `-version`
/// (ffmpeg, tshark) or `--version` (gzip, xz, zstd, chromium).
pub fn require_tool(tool: &str) {
    let answers = |flag: &str| {
        Command::new(tool)
            .arg(flag)
            .stdin(std::process::Stdio::null())
            .output()
            .map(|o| o.status.success() || !o.stdout.is_empty())
            .unwrap_or(false)
    };
    let ok = answers("-version") || answers("--version");
    require(&format!("{tool} is not installed"), ok);
}

/// Whether ffmpeg decodes the file without a single error message.
pub fn ffmpeg_decodes_cleanly(path: &Path) -> Result<(), String> {
    ffmpeg_decodes_cleanly_with(Path::new("ffmpeg"), path)
}

/// [`ffmpeg_decodes_cleanly`] with the ffmpeg at `ffmpeg` (a recent one, for Enhanced RTMP).
pub fn ffmpeg_decodes_cleanly_with(ffmpeg: &Path, path: &Path) -> Result<(), String> {
    let o = Command::new(ffmpeg)
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    let err = String::from_utf8_lossy(&o.stderr);
    if o.status.success() && err.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}", path.display(), err.trim()))
    }
}

/// ffprobe's streams and format of a file, with packets counted (`nb_read_packets`).
pub fn ffprobe_streams(path: &Path) -> serde_json::Value {
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

/// The audio/video tags of an FLV file, split into decoder configurations and the rest.
pub struct Media {
    pub configs: Vec<(u8, Vec<u8>)>,
    pub packets: Vec<(u8, u32, Vec<u8>)>,
    /// Index in `packets` of the first coded frame that came before any configuration of
    /// its kind (players need the configuration first).
    pub frame_before_config: Option<usize>,
}

pub fn media_of(path: &Path) -> Media {
    let data = std::fs::read(path).unwrap();
    let (_, tags) =
        flv::parse(&data).unwrap_or_else(|| panic!("{} is not a valid FLV", path.display()));
    let mut m = Media {
        configs: Vec::new(),
        packets: Vec::new(),
        frame_before_config: None,
    };
    let mut seen = [false; 2];
    for t in tags {
        let info = match t.kind {
            8 => media::audio(&t.body),
            9 => media::video(&t.body),
            _ => continue,
        };
        let Some(info) = info else { continue };
        let k = (t.kind == 9) as usize;
        if info.config {
            seen[k] = true;
            if !m.configs.contains(&(t.kind, t.body.clone())) {
                m.configs.push((t.kind, t.body));
            }
        } else {
            if info.needs_config && !seen[k] && m.frame_before_config.is_none() {
                m.frame_before_config = Some(m.packets.len());
            }
            m.packets.push((t.kind, t.timestamp, t.body));
        }
    }
    m
}

/// How many of `truth`'s packets appear in `got`, in order (timestamps and bytes equal).
pub fn matched_in_order(truth: &[(u8, u32, Vec<u8>)], got: &[(u8, u32, Vec<u8>)]) -> usize {
    let mut j = 0;
    let mut n = 0;
    for t in truth {
        if let Some(k) = got[j..].iter().position(|g| g == t) {
            j += k + 1;
            n += 1;
        }
    }
    n
}

/// [`matched_in_order`] kind by kind (audio, video): a player's recording (ffmpeg's muxer)
/// interleaves audio and video by time, which may put an audio and a video packet of the same
/// timestamp the other way round from the wire.
pub fn matched_per_kind(truth: &[(u8, u32, Vec<u8>)], got: &[(u8, u32, Vec<u8>)]) -> usize {
    let of = |v: &[(u8, u32, Vec<u8>)], kind: u8| -> Vec<(u8, u32, Vec<u8>)> {
        v.iter().filter(|p| p.0 == kind).cloned().collect()
    };
    [8, 9]
        .into_iter()
        .map(|k| matched_in_order(&of(truth, k), &of(got, k)))
        .sum()
}

/// `got` (read from `file`) carries every audio/video packet of `truth`, bit for bit, nothing
/// more (each kind in order, [`matched_per_kind`]), the same decoder configurations, no frame
/// before its configuration, and `file` decodes without an error. `label` names it.
pub fn assert_bit_exact(label: &str, truth: &Media, got: &Media, file: &Path) {
    let matched = matched_per_kind(&truth.packets, &got.packets);
    eprintln!(
        "{label}: {matched}/{} truth packets bit-exact, {} recovered",
        truth.packets.len(),
        got.packets.len()
    );
    assert_eq!(got.packets.len(), truth.packets.len(), "{label}");
    assert_eq!(matched, truth.packets.len(), "{label}");
    assert_eq!(got.configs, truth.configs, "{label}");
    assert_eq!(got.frame_before_config, None, "{label}");
    ffmpeg_decodes_cleanly(file).unwrap();
}

/// A JSON file; a report (`report.json`, `report-2.json`, ...) must follow the schema
/// ([`report_json`]).
pub fn read_json(path: &Path) -> serde_json::Value {
    let data = std::fs::read(path).unwrap();
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    if name.starts_with("report") && name.ends_with(".json") {
        return report_json(&data);
    }
    serde_json::from_slice(&data).unwrap()
}

/// schema/report.schema.json, compiled once.
fn report_schema() -> &'static jsonschema::Validator {
    static SCHEMA: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| {
        let text = std::fs::read(root().join("schema/report.schema.json")).unwrap();
        let schema: serde_json::Value = serde_json::from_slice(&text).unwrap();
        jsonschema::draft202012::new(&schema).expect("schema/report.schema.json is a schema")
    })
}

/// Where `report` departs from schema/report.schema.json, one line each (none: it follows).
pub fn schema_errors(report: &serde_json::Value) -> Vec<String> {
    report_schema()
        .iter_errors(report)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// A report (report.json or `list --json`), parsed and checked against the schema: every
/// report a test makes goes through here.
pub fn report_json(data: &[u8]) -> serde_json::Value {
    let report: serde_json::Value = serde_json::from_slice(data).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&data[..data.len().min(200)])
        )
    });
    let errors = schema_errors(&report);
    assert!(
        errors.is_empty(),
        "the report does not follow schema/report.schema.json:\n{}",
        errors.join("\n")
    );
    report
}

/// `rtmpsniff read CAPTURE -o OUT -q` that must succeed; its report.
pub fn read_ok(capture: &Path, out: &Path) -> serde_json::Value {
    read_ok_with(capture, out, &[])
}

/// [`read_ok`] with more options (`--port 8080`).
pub fn read_ok_with(capture: &Path, out: &Path, options: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "read",
        capture.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
    ];
    args.extend_from_slice(options);
    let o = rtmpsniff(&args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    read_json(&out.join("report.json"))
}

/// Ethernet frames with their packet times, as a frame source for the library's driver;
/// numbered from 1.
pub struct Frames<'a> {
    list: &'a [(f64, Vec<u8>)],
    next: usize,
}

impl<'a> Frames<'a> {
    pub fn new(list: &'a [(f64, Vec<u8>)]) -> Self {
        Frames { list, next: 0 }
    }
}

impl rtmpsniff::FrameSource for Frames<'_> {
    fn next_frame(&mut self) -> Option<rtmpsniff::Frame<'_>> {
        let (ts, data) = self.list.get(self.next)?;
        self.next += 1;
        Some(rtmpsniff::Frame {
            ts: *ts,
            number: self.next as u64,
            linktype: 1,
            data,
            orig_len: data.len() as u32,
        })
    }
}

/// The `--port` options a sample's capture is read with: its HTTP server's port for an RTMPT
/// sample (manifest `http_server`), none (1935) otherwise.
pub fn port_options(manifest: &serde_json::Value) -> Vec<String> {
    match manifest.get("http_server").and_then(|s| s.as_str()) {
        Some(server) => {
            let port = server.rsplit(':').next().unwrap();
            vec!["--port".to_string(), port.to_string()]
        }
        None => Vec::new(),
    }
}

/// The report's connection that carried a manifest stream: by RTMPT session id
/// (`rtmpt_session`, and then it must be reported as RTMPT) or by client port (`client_port`).
pub fn connection_of<'a>(
    report: &'a serde_json::Value,
    stream: &serde_json::Value,
) -> &'a serde_json::Value {
    connection_over(report, stream, "rtmpt")
}

/// [`connection_of`], an RTMPT session having to be reported with `transport` ("rtmpts" for
/// RTMPT over TLS).
pub fn connection_over<'a>(
    report: &'a serde_json::Value,
    stream: &serde_json::Value,
    transport: &str,
) -> &'a serde_json::Value {
    let conns = report["connections"].as_array().unwrap();
    if let Some(session) = stream.get("rtmpt_session") {
        let c = conns
            .iter()
            .find(|c| c["rtmpt"]["session"] == *session)
            .unwrap_or_else(|| panic!("no connection for RTMPT session {session} in the report"));
        assert_eq!(c["transport"], transport, "RTMPT session {session}");
        return c;
    }
    let port = stream["client_port"].as_u64().unwrap();
    conns
        .iter()
        .find(|c| c["client"].as_str().unwrap().ends_with(&format!(":{port}")))
        .unwrap_or_else(|| panic!("no connection from client port {port} in the report"))
}

/// Whether a video body is an end of sequence (AVC/HEVC/AV1 packet type 2): not a coded frame.
pub fn end_of_sequence(kind: u8, body: &[u8]) -> bool {
    kind == 9 && body.len() >= 2 && matches!(body[0] & 0x0f, 7 | 12 | 13) && body[1] == 2
}

/// The packets to compare of a stream and its truth. A player that recorded with ffmpeg
/// (`client_tool` ffmpeg, direction play) has an end of sequence at the end of its truth
/// that its FLV muxer wrote, whether one came over the wire or not (ffmpeg's own RTMPT
/// publisher never sends one: it closes the session with what it still buffers unsent), so
/// ends of sequence are left out of both sides there. Elsewhere (nginx's record of a
/// publish, rtmpdump's raw FLV) the truth has what travelled, and so must the output.
pub fn comparable(
    stream: &serde_json::Value,
    packets: Vec<(u8, u32, Vec<u8>)>,
) -> Vec<(u8, u32, Vec<u8>)> {
    let muxed = stream["direction"] == "play"
        && stream["client_tool"]
            .as_str()
            .is_some_and(|t| t.starts_with("ffmpeg"));
    packets
        .into_iter()
        .filter(|p| !(muxed && end_of_sequence(p.0, &p.2)))
        .collect()
}

/// The records of a little-endian classic pcap: (seconds, microseconds, frame, length).
pub fn pcap_records(bytes: &[u8]) -> Vec<(u32, u32, Vec<u8>, u32)> {
    assert_eq!(
        bytes[..4],
        [0xd4, 0xc3, 0xb2, 0xa1],
        "a little-endian microsecond pcap"
    );
    let u = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let mut at = 24;
    let mut out = Vec::new();
    while at + 16 <= bytes.len() {
        let len = u(at + 8) as usize;
        out.push((
            u(at),
            u(at + 4),
            bytes[at + 16..at + 16 + len].to_vec(),
            u(at + 12),
        ));
        at += 16 + len;
    }
    out
}
