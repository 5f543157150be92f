//! Thousands of damaged variants of the real samples (bit flips, overwritten bytes, cuts,
//! blocks copied, inserted or deleted) through the binary, each with a time limit: no crash,
//! no hang, an exit status of 0, 1 or 2, every FLV written valid and the report readable.
//!
//! RTMPSNIFF_MUTATIONS sets how many variants (default 2400, spread over the samples).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rtmpsniff::sink::flv;

use crate::fuzz::{Rng, mutate};
use crate::util::*;

/// Far above what a sample takes (tens of milliseconds in a debug build).
const TIME_LIMIT: Duration = Duration::from_secs(30);

enum Verdict {
    Ok(i32),
    Bad(String),
}

/// Every how many variants the run also makes report.html (with its contact sheets, an
/// ffmpeg run per stream: too slow for all of them).
const HTML_EVERY: usize = 20;

fn run_variant(capture: &Path, dir: &Path, html: bool) -> Verdict {
    let out = dir.join("o");
    let stderr = std::fs::File::create(dir.join("stderr")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rtmpsniff"))
        .arg("read")
        .arg(capture)
        .arg("-o")
        .arg(&out)
        .arg("-q")
        .arg(if html { "--html" } else { "--no-html" })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("run rtmpsniff");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Verdict::Bad(format!("hang: still running after {TIME_LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let err = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
    let code = match status.code() {
        Some(c @ 0..=2) => c,
        Some(c) => return Verdict::Bad(format!("exit status {c}: {err}")),
        None => return Verdict::Bad(format!("killed by a signal ({status}): {err}")),
    };
    if err.contains("panicked") {
        return Verdict::Bad(format!("panic: {err}"));
    }
    if code != 2 {
        let report = out.join("report.json");
        match std::fs::read(&report) {
            Ok(b) => match serde_json::from_slice::<serde_json::Value>(&b) {
                Ok(r) => {
                    let errors = schema_errors(&r);
                    if !errors.is_empty() {
                        return Verdict::Bad(format!(
                            "report.json does not follow the schema: {}",
                            errors.join("; ")
                        ));
                    }
                }
                Err(_) => return Verdict::Bad("no readable report.json".into()),
            },
            _ => return Verdict::Bad("no readable report.json".into()),
        }
        let page = std::fs::read_to_string(out.join("report.html"));
        match (html, page) {
            (true, Ok(p)) if p.ends_with("</body></html>\n") => {}
            (true, _) => return Verdict::Bad("no whole report.html".into()),
            (false, Ok(_)) => return Verdict::Bad("report.html despite --no-html".into()),
            (false, Err(_)) => {}
        }
    }
    if let Ok(entries) = std::fs::read_dir(&out) {
        for e in entries {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "flv") {
                let data = std::fs::read(&p).unwrap();
                if flv::parse(&data).is_none() {
                    return Verdict::Bad(format!("{} is not a valid FLV", p.display()));
                }
            }
        }
    }
    Verdict::Ok(code)
}

#[test]
fn damaged_samples_never_crash_or_hang() {
    let total: usize = std::env::var("RTMPSNIFF_MUTATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2400);
    let samples: Vec<(PathBuf, Vec<u8>)> = [
        "samples/lo-h264-aac/capture.pcap",
        "samples/netns-multi/capture.pcap",
        "samples/lo-legacy-play/capture.pcapng",
    ]
    .iter()
    .map(|p| (root().join(p), std::fs::read(root().join(p)).unwrap()))
    .collect();
    let work = temp_dir("mutation");
    let next = AtomicUsize::new(0);
    let codes = Mutex::new([0usize; 3]);
    let failures = Mutex::new(Vec::new());
    let start = Instant::now();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= total {
                        break;
                    }
                    let (path, data) = &samples[i % samples.len()];
                    let mut rng = Rng(0xda3a_9e00 ^ (i as u64).wrapping_mul(0x1000_0001));
                    let variant = mutate(&mut rng, data);
                    let dir = work.join(format!("v{i}"));
                    std::fs::create_dir_all(&dir).unwrap();
                    let ext = path.extension().unwrap().to_str().unwrap();
                    let cap = dir.join(format!("capture.{ext}"));
                    std::fs::write(&cap, &variant).unwrap();
                    match run_variant(&cap, &dir, i.is_multiple_of(HTML_EVERY)) {
                        Verdict::Ok(code) => {
                            codes.lock().unwrap()[code as usize] += 1;
                            let _ = std::fs::remove_dir_all(&dir);
                        }
                        Verdict::Bad(why) => {
                            // The variant stays in `dir` for a rerun.
                            failures.lock().unwrap().push(format!(
                                "variant {i} of {} ({}): {why}",
                                path.display(),
                                cap.display()
                            ));
                        }
                    }
                }
            });
        }
    });
    let codes = codes.into_inner().unwrap();
    let failures = failures.into_inner().unwrap();
    eprintln!(
        "mutation: {total} damaged variants in {:.1} s: exit 0: {}, exit 1: {}, exit 2: {}, failures: {}",
        start.elapsed().as_secs_f64(),
        codes[0],
        codes[1],
        codes[2],
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {total} variants failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(codes.iter().sum::<usize>(), total);
    let _ = std::fs::remove_dir_all(&work);
}
