//! report.html: written beside report.json by default (`--no-html` leaves it out), loaded in
//! Debian's headless Chromium (puppeteer-core, `tests/browser/check.js`): no console error,
//! nothing fetched but the run's own files, every stream's name on it, a contact sheet of
//! keyframes per video stream linking to its file; hostile names stay text; without ffmpeg
//! the page says why there are no thumbnails.

use std::path::Path;
use std::process::Command;

use crate::synthetic::{self, Opts, Session};
use crate::util::{read_json, require, require_tool, root, rtmpsniff, sample, temp_dir};

/// What the browser saw of a page (see tests/browser/check.js); a screenshot to `shot`.
fn load(page: &Path, shot: Option<&Path>) -> serde_json::Value {
    require_tool("chromium");
    require_tool("node");
    let script = root().join("tests/browser/check.js");
    require(
        "tests/browser/node_modules/puppeteer-core is not installed (npm ci --prefix tests/browser)",
        root()
            .join("tests/browser/node_modules/puppeteer-core")
            .exists(),
    );
    let mut cmd = Command::new("node");
    cmd.arg(&script).arg(page.canonicalize().unwrap());
    if let Some(s) = shot {
        cmd.arg(s);
    }
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "check.js: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The page loaded with no error, made no request but for files of `out`, and runs nothing.
fn assert_clean(seen: &serde_json::Value, out: &Path) {
    assert_eq!(seen["errors"], serde_json::json!([]), "{}", seen["errors"]);
    let base = format!("file://{}/", out.canonicalize().unwrap().display());
    for r in seen["requests"].as_array().unwrap() {
        let r = r.as_str().unwrap();
        assert!(
            r.starts_with(&base) && !r[base.len()..].contains('/'),
            "{r}"
        );
    }
    assert_eq!(seen["scripts"], 0);
    assert_eq!(seen["handlers"], 0);
}

fn streams(report: &serde_json::Value) -> Vec<serde_json::Value> {
    report["connections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["streams"].as_array().unwrap().clone())
        .collect()
}

/// A PNG's width and height, from its IHDR.
fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
    let be = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn the_page_loads_cleanly_with_every_stream_and_its_keyframes() {
    require_tool("ffmpeg");
    let top = temp_dir("html");
    for (capture, remux) in [
        (sample("lo-legacy-play/capture.pcapng"), true),
        (sample("netns-loss/capture.pcap"), false),
        (sample("rtmpt-per-request/capture.pcap"), false),
    ] {
        let out = top.join(capture.parent().unwrap().file_name().unwrap());
        let mut args = vec![
            "read",
            capture.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ];
        if remux {
            args.extend(["--remux", "mp4"]);
        }
        if capture.to_str().unwrap().contains("rtmpt") {
            args.extend(["--port", "8080"]);
        }
        let o = rtmpsniff(&args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let page = out.join("report.html");
        let summary = String::from_utf8_lossy(&o.stdout);
        assert!(
            summary.contains(&format!("page: {}\n", page.display())),
            "{summary}"
        );
        let report = read_json(&out.join("report.json"));
        let shot = remux.then(|| root().join("target/report-html.png"));
        let seen = load(&page, shot.as_deref());
        assert_clean(&seen, &out);
        let text = seen["text"].as_str().unwrap();
        let images = seen["images"].as_array().unwrap();
        let label = capture.display();
        let mut sheets = 0;
        for c in report["connections"].as_array().unwrap() {
            assert!(text.contains(&format!("#{} {}", c["id"], c["client"].as_str().unwrap())));
        }
        for st in streams(&report) {
            let name = st["name"].as_str().unwrap();
            let file = st["file"].as_str().unwrap();
            assert!(
                text.contains(name) && text.contains(file),
                "{label}: {name}"
            );
            let links = seen["links"].as_array().unwrap();
            assert!(
                links.contains(&format!("./{file}").into()),
                "{label}: {file}"
            );
            if let Some(m) = st["remuxed"]["file"].as_str() {
                assert!(links.contains(&format!("./{m}").into()), "{label}: {m}");
            }
            if st["keyframes"].as_u64().unwrap() > 0 {
                // Its contact sheet, drawn, linking to the FLV.
                let img = images
                    .iter()
                    .find(|i| i["link"] == format!("./{file}"))
                    .unwrap_or_else(|| panic!("{label}: no contact sheet for {file}"));
                assert!(img["width"].as_u64().unwrap() > 0, "{label}: {img}");
                let png = out.join(img["src"].as_str().unwrap().trim_start_matches("./"));
                let (w, _) = png_size(&png);
                let n = st["keyframes"].as_u64().unwrap().min(4);
                assert_eq!(u64::from(w), n * 160, "{label}: {}", png.display());
                sheets += 1;
            }
        }
        assert_eq!(images.len(), sheets, "{label}");
        assert!(sheets > 0, "{label}");
        // The timeline shows every gap and lock-on the report has (capped per connection).
        let marks: usize = report["connections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["gaps"].as_array().unwrap().len() + c["locks"].as_array().unwrap().len())
            .sum();
        let html = std::fs::read_to_string(&page).unwrap();
        let drawn = html.matches("<title>gap: ").count() + html.matches("<title>lock-on ").count();
        assert_eq!(drawn, marks, "{label}");
    }
    assert!(png_size(&root().join("target/report-html.png")).0 > 0);
}

#[test]
fn hostile_names_are_text_on_the_page() {
    let work = temp_dir("html-hostile");
    let hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>&amp;\"'";
    let o = Opts {
        frames: 3,
        name: hostile.as_bytes().to_vec(),
        app: b"\"><b onclick=alert(3)>app</b>".to_vec(),
        ..Opts::default()
    };
    let cap = work.join("in.pcap");
    let s = Session::new(1935);
    std::fs::write(&cap, s.pcap(&synthetic::publish_session(&o), 1400)).unwrap();
    let out = work.join("o");
    let r = rtmpsniff(&[
        "read",
        cap.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let report = read_json(&out.join("report.json"));
    let seen = load(&out.join("report.html"), None);
    assert_clean(&seen, &out);
    let text = seen["text"].as_str().unwrap();
    // Shown as the report has it, character for character, and nothing of it ran.
    let name = streams(&report)[0]["name"].as_str().unwrap().to_string();
    assert_eq!(name, hostile);
    assert!(text.contains(&name), "{text}");
    assert!(text.contains(report["connections"][0]["app"].as_str().unwrap()));
    assert_eq!(seen["images"], serde_json::json!([]));
}

#[test]
fn no_html_leaves_it_out_and_without_ffmpeg_the_page_says_why() {
    let top = temp_dir("html-options");
    let capture = sample("lo-h264-aac/capture.pcap");
    let out = top.join("none");
    let o = rtmpsniff(&[
        "read",
        capture.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--no-html",
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(!out.join("report.html").exists());
    assert!(!String::from_utf8_lossy(&o.stdout).contains("page: "));
    // The last of --html and --no-html counts.
    let out = top.join("again");
    let o = rtmpsniff(&[
        "read",
        capture.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
        "--no-html",
        "--html",
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(out.join("report.html").exists());
    // list writes nothing, and has no --html.
    assert_eq!(
        rtmpsniff(&["list", capture.to_str().unwrap(), "--html"])
            .status
            .code(),
        Some(2)
    );

    let empty = top.join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let out = top.join("noffmpeg");
    let o = Command::new(env!("CARGO_BIN_EXE_rtmpsniff"))
        .args([
            "read",
            capture.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "-q",
        ])
        .env("PATH", &empty)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let seen = load(&out.join("report.html"), None);
    assert_clean(&seen, &out);
    let text = seen["text"].as_str().unwrap();
    assert!(
        text.contains("No keyframe thumbnails: they are drawn by ffmpeg, which is not installed")
    );
    assert!(text.contains("cam1"));
    assert_eq!(seen["images"], serde_json::json!([]));
}

#[test]
fn a_contact_sheet_holds_at_most_twelve_keyframes_four_a_row() {
    require_tool("ffmpeg");
    let dir = temp_dir("html-sheet");
    // 50 keyframes (one every frame), 320x240: the sheet takes every fifth, ten of them.
    for (frames, want) in [(50u64, (640u32, 360u32)), (3, (480, 120)), (12, (640, 360))] {
        let flv = format!("k{frames}.flv");
        let st = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i"])
            .arg(format!(
                "testsrc=size=320x240:rate=25:duration={}",
                frames as f64 / 25.0
            ))
            .args(["-c:v", "flv1", "-g", "1", "-y"])
            .arg(dir.join(&flv))
            .status()
            .unwrap();
        assert!(st.success());
        let png = rtmpsniff::sink::html::contact_sheet(&dir, &flv, frames).unwrap();
        assert_eq!(png, format!("k{frames}.keyframes.png"));
        assert_eq!(png_size(&dir.join(&png)), want, "{frames} keyframes");
        // A second one never replaces the first.
        let again = rtmpsniff::sink::html::contact_sheet(&dir, &flv, frames).unwrap();
        assert_eq!(again, format!("k{frames}.keyframes-2.png"));
    }
    // Not a video it can draw: an error, and no file left.
    std::fs::write(
        dir.join("bad.flv"),
        b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00",
    )
    .unwrap();
    assert!(rtmpsniff::sink::html::contact_sheet(&dir, "bad.flv", 3).is_err());
    assert!(!dir.join("bad.keyframes.png").exists());
}
