//! The binary against hostile names, an output folder that already holds things (files,
//! symbolic links, an earlier report), a kill in the middle of a run, cut captures and bad
//! inputs among good ones.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rtmpsniff::sink::{flv, naming};

use crate::synthetic::{self, Opts, Session};
use crate::util::*;

fn capture(dir: &Path, o: &Opts) -> PathBuf {
    let cap = dir.join("in.pcap");
    let s = Session::new(1935);
    std::fs::write(&cap, s.pcap(&synthetic::publish_session(o), 1400)).unwrap();
    cap
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn read(cap: &Path, out: &Path) -> std::process::Output {
    rtmpsniff(&[
        "read",
        cap.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
    ])
}

#[test]
fn hostile_stream_and_app_names_stay_inside_readable_and_visible() {
    let long = vec![b'a'; 1000];
    let names: Vec<&[u8]> = vec![
        b"../../../tmp/x",
        b"/etc/passwd",
        b"a/b\\c",
        b"nul\0byte",
        b"\x1b[31mred\r\nline",
        b"CON:",
        b"..",
        b".",
        b"",
        b"\xff\xfe not utf-8",
        "cam\u{202e}4pm.exe".as_bytes(),
        &long,
    ];
    let top = temp_dir("names");
    for (i, name) in names.iter().enumerate() {
        let work = top.join(format!("case{i}"));
        std::fs::create_dir_all(&work).unwrap();
        let o = Opts {
            frames: 3,
            name: name.to_vec(),
            app: if i % 2 == 0 {
                b"../../etc".to_vec()
            } else {
                b"live\\..\\x".to_vec()
            },
            ..Opts::default()
        };
        let cap = capture(&work, &o);
        let out = work.join("o");
        let r = read(&cap, &out);
        assert_eq!(r.status.code(), Some(0), "{name:?}");
        // Nothing appeared beside the output folder, and inside it only plain files.
        assert_eq!(entries(&work), vec!["in.pcap", "o"], "{name:?}");
        let files = entries(&out);
        // The FLV, report.json and report.html (ffmpeg draws no thumbnail of the synthetic
        // pictures).
        assert_eq!(files.len(), 3, "{name:?}: {files:?}");
        assert!(files.contains(&"report.html".to_string()), "{files:?}");
        let flv_name = files.iter().find(|f| f.ends_with(".flv")).unwrap();
        assert!(files.contains(&"report.json".to_string()));
        assert!(
            flv_name.len() <= 200
                && !flv_name.starts_with('.')
                && flv_name.bytes().all(|b| b.is_ascii_graphic()),
            "{flv_name}"
        );
        let meta = std::fs::symlink_metadata(out.join(flv_name)).unwrap();
        assert!(meta.is_file());
        assert!(flv::parse(&std::fs::read(out.join(flv_name)).unwrap()).is_some());
        // The report keeps the raw name, escaped, and points at the file.
        let report = read_json(&out.join("report.json"));
        let st = &report["connections"][0]["streams"][0];
        assert_eq!(st["name"].as_str().unwrap(), naming::escape(name));
        assert_eq!(st["file"].as_str().unwrap(), flv_name);
        assert_eq!(
            report["connections"][0]["app"].as_str().unwrap(),
            naming::escape(&o.app)
        );
    }
    assert!(!Path::new("/tmp/x.flv").exists());
}

#[test]
fn names_that_sanitise_alike_get_unique_files() {
    // Two connections from the same client port (the second after the first closed), with
    // names that differ only in characters a file name cannot hold.
    let work = temp_dir("alike");
    let mut frames = Vec::new();
    for name in [&b"a/b"[..], b"a\\b", b"a:b"] {
        let o = Opts {
            frames: 3,
            name: name.to_vec(),
            ..Opts::default()
        };
        frames.extend(Session::new(1935).frames(&synthetic::publish_session(&o), 1400));
    }
    let cap = work.join("in.pcap");
    std::fs::write(&cap, synthetic::pcap_file(&frames)).unwrap();
    let out = work.join("o");
    assert_eq!(read(&cap, &out).status.code(), Some(0));
    let report = read_json(&out.join("report.json"));
    let files: Vec<&str> = report["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["streams"][0]["file"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        vec![
            "live_a_b_192.0.2.10-50000_publish.flv",
            "live_a_b_192.0.2.10-50000_publish-2.flv",
            "live_a_b_192.0.2.10-50000_publish-3.flv"
        ]
    );
}

const FLV: &str = "live_cam1_192.0.2.10-50000_publish.flv";

#[test]
fn existing_files_and_links_in_the_folder_are_never_touched() {
    let work = temp_dir("clobber");
    let cap = capture(&work, &Opts::default());
    let out = work.join("o");
    std::fs::create_dir_all(&out).unwrap();
    let outside = work.join("victim");
    std::fs::write(&outside, b"evidence").unwrap();
    // The FLV's name is a link to a file outside; report.json a dangling link; and the
    // second choice of each name an ordinary file.
    std::os::unix::fs::symlink(&outside, out.join(FLV)).unwrap();
    std::os::unix::fs::symlink(work.join("nowhere"), out.join("report.json")).unwrap();
    let second = FLV.replace(".flv", "-2.flv");
    std::fs::write(out.join(&second), b"earlier run").unwrap();
    std::fs::write(out.join("report-2.json"), b"{}").unwrap();
    let r = read(&cap, &out);
    assert_eq!(r.status.code(), Some(0));
    assert_eq!(std::fs::read(&outside).unwrap(), b"evidence");
    assert!(
        !work.join("nowhere").exists(),
        "a dangling link was followed"
    );
    assert_eq!(std::fs::read(out.join(&second)).unwrap(), b"earlier run");
    assert_eq!(std::fs::read(out.join("report-2.json")).unwrap(), b"{}");
    assert!(
        std::fs::symlink_metadata(out.join(FLV))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let report = read_json(&out.join("report-3.json"));
    let file = report["connections"][0]["streams"][0]["file"]
        .as_str()
        .unwrap();
    assert_eq!(file, FLV.replace(".flv", "-3.flv"));
    assert!(flv::parse(&std::fs::read(out.join(file)).unwrap()).is_some());
}

#[test]
fn second_run_adds_files_and_keeps_the_first_report() {
    let work = temp_dir("rerun");
    let cap = capture(&work, &Opts::default());
    let out = work.join("o");
    assert_eq!(read(&cap, &out).status.code(), Some(0));
    let first_report = std::fs::read(out.join("report.json")).unwrap();
    let first_flv = std::fs::read(out.join(FLV)).unwrap();
    let r = rtmpsniff(&["read", cap.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&r.stdout).contains("report-2.json"));
    assert_eq!(
        std::fs::read(out.join("report.json")).unwrap(),
        first_report
    );
    assert_eq!(std::fs::read(out.join(FLV)).unwrap(), first_flv);
    assert_eq!(
        std::fs::read(out.join(FLV.replace(".flv", "-2.flv"))).unwrap(),
        first_flv
    );
    // No temporary file is left behind (two FLVs, two reports, two pages).
    assert_eq!(entries(&out).len(), 6, "{:?}", entries(&out));
    assert!(String::from_utf8_lossy(&r.stdout).contains("report-2.html"));
    // Each page links to its own report.
    let page = std::fs::read_to_string(out.join("report-2.html")).unwrap();
    assert!(page.contains("href=\"./report-2.json\""), "{page}");
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(page.contains("href=\"./report.json\""));
}

/// Every FLV in `dir` is whole tags after a valid header (what a player opens). A kill that
/// lands inside a write can cut the last tag (the kernel stops a write between pages on
/// SIGKILL); unless `cut_allowed`, the last tag must be whole too. Returns the whole tags and
/// the files whose last tag was cut.
fn check_killed_output(dir: &Path, cut_allowed: bool) -> (usize, Vec<PathBuf>) {
    let mut cut = Vec::new();
    let mut tags = 0;
    for name in entries(dir) {
        // A kill while the report is written leaves its temporary file, never a partial
        // report.json; one while a borrowed decoder configuration is written into a stream's
        // file leaves that file's temporary, never a partial FLV.
        if name.starts_with('.') {
            assert!(
                name.ends_with(".json.tmp") || name.ends_with(".flv.tmp"),
                "unexpected file: {name}"
            );
            continue;
        }
        if name.ends_with(".json") {
            let data = std::fs::read(dir.join(&name)).unwrap();
            report_json(&data);
            continue;
        }
        assert!(name.ends_with(".flv"), "unexpected file: {name}");
        let data = std::fs::read(dir.join(&name)).unwrap();
        let (_, t, rest) =
            flv::parse_prefix(&data).unwrap_or_else(|| panic!("{name}: not an FLV after the kill"));
        if rest > 0 {
            assert!(cut_allowed, "{name}: a tag was cut");
            cut.push(dir.join(&name));
        }
        tags += t.len();
    }
    (tags, cut)
}

#[test]
fn killed_mid_run_leaves_valid_files() {
    // A long session fed through standard input; the process is killed while it waits for
    // the rest, after it wrote some of the stream.
    let work = temp_dir("killed");
    let o = Opts {
        frames: 1500,
        ..Opts::default()
    };
    let pcap = Session::new(1935).pcap(&synthetic::publish_session(&o), 1400);
    let out = work.join("o");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rtmpsniff"))
        .args(["read", "-", "-o", out.to_str().unwrap(), "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&pcap[..pcap.len() * 2 / 3]).unwrap();
    stdin.flush().unwrap();
    let start = Instant::now();
    let flv = out.join(FLV);
    while std::fs::metadata(&flv).map_or(true, |m| m.len() < 200_000) {
        assert!(start.elapsed() < Duration::from_secs(60), "nothing written");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
    // The process waited for input when it was killed: no write was under way.
    let (tags, _) = check_killed_output(&out, false);
    assert!(tags > 100, "{tags} tags");
    require_tool("ffprobe");
    let p = Command::new("ffprobe")
        .args(["-v", "error", "-show_format"])
        .arg(&flv)
        .output()
        .unwrap();
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
}

#[test]
fn killed_at_random_moments_on_a_real_sample() {
    let cap = root().join("samples/netns-multi/capture.pcap");
    let work = temp_dir("killed-real");
    require_tool("ffmpeg");
    let mut rng = crate::fuzz::Rng(7);
    for i in 0..12 {
        let out = work.join(format!("o{i}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_rtmpsniff"))
            .args([
                "read",
                cap.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "-q",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rng.below(60_000) as u64));
        let _ = child.kill();
        child.wait().unwrap();
        if !out.exists() {
            continue;
        }
        let (_, cut) = check_killed_output(&out, true);
        for name in entries(&out).iter().filter(|n| n.ends_with(".flv")) {
            let path = out.join(name);
            let data = std::fs::read(&path).unwrap();
            let (_, tags, _) = flv::parse_prefix(&data).unwrap();
            if cut.contains(&path) {
                // The cut frame is damaged; the file still opens and plays to it, once it
                // holds whole a decoder configuration and a picture (a kill in the first
                // milliseconds, on a loaded machine, can cut the file before them: ffmpeg
                // then finds no codec parameters, and says so with an error status).
                if tags.iter().filter(|t| t.kind == 9).count() < 2 {
                    continue;
                }
                let o = Command::new("ffmpeg")
                    .args(["-nostdin", "-v", "error", "-i"])
                    .arg(&path)
                    .args(["-f", "null", "-"])
                    .output()
                    .unwrap();
                assert!(o.status.success(), "{}", path.display());
            } else if tags.iter().any(|t| t.kind == 9) {
                ffmpeg_decodes_cleanly(&path).unwrap();
            }
        }
    }
}

#[test]
fn cut_capture_is_read_up_to_the_cut_with_a_warning_naming_file_and_offset() {
    let work = temp_dir("cut");
    for sample in [
        "samples/lo-h264-aac/capture.pcap",
        "samples/lo-legacy-play/capture.pcapng",
    ] {
        let data = std::fs::read(root().join(sample)).unwrap();
        let name = Path::new(sample).file_name().unwrap().to_str().unwrap();
        let cap = work.join(format!("cut-{name}"));
        // Cut in the middle of a record.
        std::fs::write(&cap, &data[..data.len() * 3 / 5 + 7]).unwrap();
        let out = work.join(format!("o-{name}"));
        let r = read(&cap, &out);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(0), "{err}");
        let line = err
            .lines()
            .find(|l| l.contains("warning"))
            .unwrap_or_else(|| panic!("no warning: {err}"));
        assert!(line.contains(cap.to_str().unwrap()), "{line}");
        let report = read_json(&out.join("report.json"));
        let offset = report["inputs"][0]["error_offset"].as_u64().unwrap();
        assert!(line.contains(&format!("byte {offset} of")), "{line}");
        assert!(offset > 0 && offset < data.len() as u64 * 3 / 5 + 7);
        for f in entries(&out).iter().filter(|n| n.ends_with(".flv")) {
            assert!(flv::parse(&std::fs::read(out.join(f)).unwrap()).is_some());
        }
    }
    // For classic pcap the offset is exactly where the cut record starts.
    let data = std::fs::read(root().join("samples/lo-h264-aac/capture.pcap")).unwrap();
    let mut pos = 24;
    let cut = data.len() * 3 / 5 + 7;
    loop {
        let caplen = u32::from_le_bytes(data[pos + 8..pos + 12].try_into().unwrap()) as usize;
        if pos + 16 + caplen > cut {
            break;
        }
        pos += 16 + caplen;
    }
    let report = read_json(&work.join("o-capture.pcap/report.json"));
    assert_eq!(
        report["inputs"][0]["error_offset"].as_u64(),
        Some(pos as u64)
    );
}

#[test]
fn bad_inputs_among_good_ones() {
    let work = temp_dir("mixed");
    let good = capture(&work, &Opts::default());
    let text = work.join("notes.txt");
    std::fs::write(&text, "not a capture\n").unwrap();
    // A pcap of link type 147 (user-defined): readable by libpcap, not by us.
    let mut unknown = std::fs::read(&good).unwrap();
    unknown[20..24].copy_from_slice(&147u32.to_le_bytes());
    let unknown_path = work.join("user147.pcap");
    std::fs::write(&unknown_path, unknown).unwrap();
    let empty = work.join("empty.pcap");
    std::fs::write(&empty, b"").unwrap();
    let bad = [
        "/nonexistent/capture.pcap".to_string(),
        work.to_str().unwrap().to_string(),
        text.to_str().unwrap().to_string(),
        unknown_path.to_str().unwrap().to_string(),
        empty.to_str().unwrap().to_string(),
    ];
    // Alone, each is one line naming it and exit 2, and no output folder is made.
    for b in &bad {
        let out = work.join("alone");
        let r = rtmpsniff(&["read", b, "-o", out.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{b}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(b.as_str()), "{err}");
        assert!(!out.exists());
    }
    // Among good ones: the good one is read, each bad one named, and the status says so.
    let out = work.join("o");
    let mut args = vec![
        "read".to_string(),
        bad[0].clone(),
        good.to_str().unwrap().into(),
    ];
    args.extend(bad[2..].iter().cloned());
    args.extend(["-o".into(), out.to_str().unwrap().into(), "-q".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = rtmpsniff(&args);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{err}");
    for b in bad.iter().filter(|b| **b != bad[1]) {
        assert!(err.lines().any(|l| l.contains(b.as_str())), "{b}: {err}");
    }
    assert!(out.join(FLV).exists());
    let report = read_json(&out.join("report.json"));
    assert_eq!(report["input_errors"].as_array().unwrap().len(), 4);
    assert_eq!(report["connections"].as_array().unwrap().len(), 1);
    // Standard input given twice: the second is an error, not a hang.
    let r = Command::new(env!("CARGO_BIN_EXE_rtmpsniff"))
        .args([
            "read",
            "-",
            "-",
            "-o",
            work.join("stdin").to_str().unwrap(),
            "-q",
        ])
        .stdin(std::fs::File::open(&good).unwrap())
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("standard input"));
}

#[test]
fn report_lists_every_limit_with_its_value() {
    let work = temp_dir("limits-report");
    let cap = capture(&work, &Opts::default());
    let out = work.join("o");
    assert_eq!(read(&cap, &out).status.code(), Some(0));
    let report = read_json(&out.join("report.json"));
    let limits = report["limits"].as_array().unwrap();
    let named = rtmpsniff::Limits::default().named();
    assert_eq!(limits.len(), named.len());
    for (l, (name, value)) in limits.iter().zip(named) {
        assert_eq!(l["name"], name);
        assert_eq!(l["value"].as_u64(), Some(value));
        assert_eq!(l["hits"].as_u64(), Some(0));
    }
}

#[test]
fn an_output_folder_given_as_a_link_is_resolved_once_and_said_so() {
    let dir = temp_dir("hostile-outlink");
    let cap = capture(&dir, &Opts::default());
    let real = dir.join("real");
    std::fs::create_dir(&real).unwrap();
    let link = dir.join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let o = read(&cap, &link);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    let real = real.canonicalize().unwrap();
    assert!(
        err.contains(&format!(
            "output folder {} is a symbolic link: writing into {}",
            link.display(),
            real.display()
        )),
        "{err}"
    );
    let names = entries(&real);
    assert!(names.iter().any(|n| n.ends_with(".flv")), "{names:?}");
    assert!(names.contains(&"report.json".to_string()), "{names:?}");
    // Nothing was made beside the link.
    assert_eq!(entries(&dir), vec!["in.pcap", "link", "real"]);
}

#[test]
fn metadata_made_to_fill_the_report_is_cut_and_said_so() {
    // An onMetaData of 15 MB (15 texts of 1 MB): the report keeps a bounded copy and says
    // it was cut; the file keeps the script tag whole, as sent.
    let dir = temp_dir("hostile-meta");
    let big = vec![b'm'; 1 << 20];
    let o = Opts {
        meta_extra: (0..15)
            .map(|i| {
                let v = rtmpsniff::rtmp::amf0::Value::LongString(big.clone());
                (format!("k{i}").into_bytes(), v)
            })
            .collect(),
        ..Opts::default()
    };
    let cap = capture(&dir, &o);
    let out = dir.join("out");
    let r = read(&cap, &out);
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let report = out.join("report.json");
    let size = std::fs::metadata(&report).unwrap().len();
    assert!(size < 256 << 10, "report.json is {size} bytes");
    let j = read_json(&report);
    let s = &j["connections"][0]["streams"][0];
    assert_eq!(s["metadata"]["width"], 320.0);
    assert_eq!(s["metadata"]["k0"].as_str().unwrap().len(), 4096);
    let notes = s["notes"].as_array().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.as_str().unwrap().contains("onMetaData cut")),
        "{notes:?}"
    );
    let flv = std::fs::read(out.join(s["file"].as_str().unwrap())).unwrap();
    let (_, tags) = flv::parse(&flv).unwrap();
    let script = tags.iter().find(|t| t.kind == 18).expect("the script tag");
    assert!(script.body.len() > 15 << 20, "{}", script.body.len());
}

#[test]
fn a_full_disk_leaves_whole_files_and_a_report() {
    // SAFETY: geteuid has no preconditions.
    require(
        "root, to mount a small tmpfs",
        unsafe { libc::geteuid() } == 0,
    );
    // Four publishes of 1,500 frames (about 28 MB of FLV) into a 24 MiB file system (8 MiB of
    // it held for the reports until the disk is full): the
    // disk fills during the run.
    let dir = temp_dir("hostile-full");
    let o = Opts {
        frames: 1500,
        ..Opts::default()
    };
    let frames = synthetic::concurrent(&synthetic::publish_session(&o), 4, 51000);
    let cap = dir.join("in.pcap");
    std::fs::write(&cap, synthetic::pcap_file(&frames)).unwrap();
    let whole = dir.join("whole");
    let want = read_ok(&cap, &whole);
    let mnt = dir.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success(), "mount a tmpfs");
    let out = mnt.join("out");
    let o = read(&cap, &out);
    let report = out.join("report.json");
    let got = std::fs::read(&report);
    let files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&out)
        .map(|d| {
            d.map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "flv"))
                .map(|p| {
                    (
                        p.file_name().unwrap().to_string_lossy().into_owned(),
                        std::fs::read(&p).unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let _ = Command::new("umount").arg(&mnt).status();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    std::fs::write(dir.join("report.json"), got.expect("report.json written")).unwrap();
    let r = read_json(&dir.join("report.json"));
    let errors = r["output_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]
            .as_str()
            .unwrap()
            .contains("No space left on device")
    );
    assert!(!files.is_empty());
    let mut cut = 0;
    for (name, data) in &files {
        // Every file is a whole FLV whose tags are the first tags of the file written with
        // room to spare.
        let (_, tags) = flv::parse(data).unwrap_or_else(|| panic!("{name} is not a whole FLV"));
        let full = std::fs::read(whole.join(name)).unwrap();
        let (_, all) = flv::parse(&full).unwrap();
        assert!(tags.len() <= all.len());
        for (a, b) in tags.iter().zip(&all) {
            assert!(
                a.kind == b.kind && a.timestamp == b.timestamp && a.body == b.body,
                "{name}"
            );
        }
        cut += (tags.len() < all.len()) as usize;
        let s = r["connections"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["streams"].as_array().unwrap().iter())
            .find(|s| s["file"] == name.as_str())
            .unwrap();
        assert_eq!(
            s["bytes"],
            data.len(),
            "{name}: the report gives the size on disk"
        );
    }
    assert!(cut > 0, "the disk filled before the end");
    assert_eq!(
        r["connections"].as_array().unwrap().len(),
        want["connections"].as_array().unwrap().len(),
        "every connection is reported"
    );
}
