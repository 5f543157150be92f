//! The report and the inventory: fields checked against ffprobe of each peer's own recording,
//! sha256 against the file, `list` writing nothing, and the table against a golden copy.

use std::process::Command;

use crate::util::*;

fn sha256_hex(path: &std::path::Path) -> String {
    let o = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn report_fields_agree_with_ffprobe_of_the_truth() {
    require_tool("ffprobe");
    for sample in ["lo-h264-aac", "lo-legacy-play", "netns-multi"] {
        let dir = root().join("samples").join(sample);
        let manifest = read_json(&dir.join("manifest.json"));
        let out = temp_dir("report");
        let cap = dir.join(manifest["capture"].as_str().unwrap());
        let o = rtmpsniff(&[
            "read",
            cap.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "-q",
            "--sha256",
        ]);
        assert_eq!(o.status.code(), Some(0));
        let report = read_json(&out.join("report.json"));
        for m in manifest["streams"].as_array().unwrap() {
            let port = m["client_port"].as_u64().unwrap();
            let conn = report["connections"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["client"].as_str().unwrap().ends_with(&format!(":{port}")))
                .unwrap();
            assert!(conn["tc_url"].as_str().unwrap().starts_with("rtmp://"));
            assert!(conn["flash_ver"].is_string());
            let st = &conn["streams"][0];
            let probe = ffprobe_streams(&dir.join(m["truth"].as_str().unwrap()));
            for ps in probe["streams"].as_array().unwrap() {
                let packets: u64 = ps["nb_read_packets"].as_str().unwrap().parse().unwrap();
                match ps["codec_type"].as_str().unwrap() {
                    "video" => {
                        assert_eq!(st["video_codec"], ps["codec_name"], "{sample} {port}");
                        assert_eq!(st["width"], ps["width"]);
                        assert_eq!(st["height"], ps["height"]);
                        assert_eq!(
                            st["video_frames"].as_u64().unwrap(),
                            packets,
                            "{sample} {port} video"
                        );
                    }
                    "audio" => {
                        assert_eq!(st["audio_codec"], ps["codec_name"]);
                        let rate: u64 = ps["sample_rate"].as_str().unwrap().parse().unwrap();
                        assert_eq!(st["audio_rate"].as_u64().unwrap(), rate);
                        assert_eq!(st["audio_channels"], ps["channels"]);
                        assert_eq!(
                            st["audio_frames"].as_u64().unwrap(),
                            packets,
                            "{sample} {port} audio"
                        );
                    }
                    _ => {}
                }
            }
            let duration: f64 = probe["format"]["duration"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let ours = st["duration_ms"].as_u64().unwrap() as f64 / 1000.0;
            assert!(
                (ours - duration).abs() < 0.1,
                "{sample} {port}: {ours} vs {duration}"
            );
            let file = out.join(st["file"].as_str().unwrap());
            assert_eq!(st["sha256"].as_str().unwrap(), sha256_hex(&file));
            assert_eq!(
                st["bytes"].as_u64().unwrap(),
                std::fs::metadata(&file).unwrap().len()
            );
            assert!(st["first_frame"].as_u64().unwrap() <= st["last_frame"].as_u64().unwrap());
        }
    }
}

#[test]
fn list_writes_nothing_and_matches_the_golden_table() {
    let cap = root().join("samples/lo-h264-aac/capture.pcap");
    let cwd = temp_dir("list");
    let o = Command::new(env!("CARGO_BIN_EXE_rtmpsniff"))
        .current_dir(&cwd)
        .args(["list", cap.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let golden = std::fs::read_to_string(root().join("tests/golden/list-lo-h264-aac.txt")).unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), golden);
    assert_eq!(
        std::fs::read_dir(&cwd).unwrap().count(),
        0,
        "list wrote a file"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_rtmpsniff"))
        .current_dir(&cwd)
        .args(["list", "--json", cap.to_str().unwrap()])
        .output()
        .unwrap();
    let j = report_json(&o.stdout);
    assert_eq!(j["connections"][0]["streams"][0]["name"], "cam1");
    assert!(j["connections"][0]["streams"][0]["file"].is_null());
    assert_eq!(std::fs::read_dir(&cwd).unwrap().count(), 0);
}

#[test]
fn selection_keeps_only_what_it_names() {
    let cap = root().join("samples/netns-multi/capture.pcap");
    let count = |args: &[&str]| {
        let out = temp_dir("select");
        let mut a = vec![
            "read",
            cap.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "-q",
        ];
        a.extend_from_slice(args);
        let o = rtmpsniff(&a);
        if o.status.code() == Some(1) {
            return 0;
        }
        let r = read_json(&out.join("report.json"));
        r["connections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["streams"].as_array().unwrap().len())
            .sum::<usize>()
    };
    assert_eq!(count(&[]), 3);
    assert_eq!(count(&["--stream", "a"]), 2);
    assert_eq!(count(&["--stream", "a", "--direction", "play"]), 1);
    assert_eq!(count(&["--stream", "live/?"]), 3);
    assert_eq!(count(&["--app", "other*"]), 0);
    assert_eq!(count(&["--client", "10.201.0.2"]), 3);
    assert_eq!(count(&["--client", "10.201.0.9"]), 0);
    assert_eq!(count(&["--client", "10.201.0.2:55992"]), 1);
    assert_eq!(count(&["--server", "10.201.0.1:1935"]), 3);
    assert_eq!(count(&["--server", "10.201.0.1:1936"]), 0);
    assert_eq!(count(&["--server", "10.201.0.2"]), 0);
    // Character classes, negated ones and alternatives (globset's globs).
    assert_eq!(count(&["--stream", "[ab]"]), 3);
    assert_eq!(count(&["--stream", "[!a]"]), 1);
    assert_eq!(count(&["--stream", "{b,c}"]), 1);
    assert_eq!(count(&["--app", "l[i]ve"]), 3);
    assert_eq!(count(&["--stream", "\\a"]), 2);
}

/// A connection has one number everywhere: `list`'s `#N`, the summary's `connection #N` and
/// the report's `id`, counted from 1 in the order connections began; a selection leaves the
/// numbers of what it keeps as they were.
#[test]
fn a_connection_has_one_number_in_the_table_the_summary_and_the_json() {
    let cap = root().join("samples/netns-multi/capture.pcap");
    let cap = cap.to_str().unwrap();
    let all = rtmpsniff(&["list", "--json", cap]);
    let all = report_json(&all.stdout);
    let conns = all["connections"].as_array().unwrap();
    let ids: Vec<u64> = conns.iter().map(|c| c["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [1, 2, 3]);
    // The publish of "b" is the second connection; selected alone it keeps its number.
    let b = conns
        .iter()
        .find(|c| c["streams"][0]["name"] == "b")
        .unwrap();
    let client = b["client"].as_str().unwrap();
    assert_eq!(b["id"], 2);
    let table = rtmpsniff(&["list", cap, "--stream", "b"]);
    let table = String::from_utf8_lossy(&table.stdout);
    let numbered: Vec<&str> = table.lines().filter(|l| l.starts_with('#')).collect();
    assert_eq!(numbered.len(), 1, "{table}");
    assert!(
        numbered[0].starts_with(&format!("#2 {client} -> ")),
        "{table}"
    );
    let json = rtmpsniff(&["list", "--json", cap, "--stream", "b"]);
    let json = report_json(&json.stdout);
    assert_eq!(json["connections"].as_array().unwrap().len(), 1);
    assert_eq!(json["connections"][0]["id"], 2);
    let out = temp_dir("numbers");
    let o = rtmpsniff(&["read", cap, "-o", out.to_str().unwrap(), "--stream", "b"]);
    assert_eq!(o.status.code(), Some(0));
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(
        summary
            .lines()
            .any(|l| l.starts_with(&format!("connection #2 {client} -> "))),
        "{summary}"
    );
    assert_eq!(
        read_json(&out.join("report.json"))["connections"][0]["id"],
        2
    );
}

#[test]
fn man_page_and_completions_come_from_the_cli() {
    let o = rtmpsniff(&["man"]);
    assert_eq!(o.status.code(), Some(0));
    let man = String::from_utf8_lossy(&o.stdout);
    assert!(man.contains(".TH rtmpsniff 1"), "{man}");
    for shell in ["bash", "zsh", "fish"] {
        let o = rtmpsniff(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0));
        assert!(String::from_utf8_lossy(&o.stdout).contains("list"));
    }
}

/// The subcommands `rtmpsniff --help` lists.
fn subcommands() -> Vec<String> {
    let help = String::from_utf8(rtmpsniff(&["--help"]).stdout).unwrap();
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// The long options `rtmpsniff SUBCOMMAND --help` lists.
fn long_options(sub: &str) -> Vec<String> {
    let help = String::from_utf8(rtmpsniff(&[sub, "--help"]).stdout).unwrap();
    // The options' own lines (`  -o, --output <OUTPUT>`), from "Options:" to the closing
    // text.
    let options = help.split("\nOptions:\n").nth(1).unwrap();
    let options = options.split("\nExamples:\n").next().unwrap();
    let mut opts: Vec<String> = options
        .lines()
        .filter(|l| l.trim_start().starts_with('-'))
        .flat_map(|l| l.split([' ', ',', '[', ']', '=']))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(str::to_string)
        .collect();
    opts.sort();
    opts.dedup();
    opts
}

/// `rtmpsniff man --dir DIR` writes a page for rtmpsniff and one for every subcommand, each
/// valid roff (groff warns of nothing) with its options, exit status, examples (whose options
/// exist), files where it writes any, and see-also references to pages that are there;
/// `man` and `man SUBCOMMAND` print the same pages.
#[test]
fn man_dir_writes_a_page_for_every_subcommand() {
    let groff = Command::new("groff").arg("-v").output();
    require(
        "groff is not installed",
        groff.is_ok_and(|o| o.status.success()),
    );
    let dir = temp_dir("man").join("man1");
    let o = rtmpsniff(&["man", "--dir", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let subs = subcommands();
    assert!(subs.len() >= 6, "{subs:?}");
    let mut want: Vec<String> = subs.iter().map(|s| format!("rtmpsniff-{s}.1")).collect();
    want.push("rtmpsniff.1".into());
    want.sort();
    let mut got: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    got.sort();
    assert_eq!(got, want);
    // It says what it wrote.
    let listed: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| l.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(listed.len(), want.len());

    for page in &want {
        let path = dir.join(page);
        let roff = std::fs::read_to_string(&path).unwrap();
        let name = page.trim_end_matches(".1");
        assert!(roff.contains(&format!(".TH {name} 1 ")), "{page}");
        let check = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(check.status.success(), "{page}");
        assert_eq!(String::from_utf8_lossy(&check.stderr), "", "{page}");
        for section in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "\"EXIT STATUS\"",
            "EXAMPLES",
            "\"SEE ALSO\"",
        ] {
            assert!(
                roff.contains(&format!(".SH {section}\n")),
                "{page}: {section}"
            );
        }
        // The page as text, hyphens as typed.
        let text = roff.replace("\\-", "-");
        let sub = name.strip_prefix("rtmpsniff-");
        if let Some(sub) = sub {
            for opt in long_options(sub) {
                assert!(text.contains(&opt), "{page}: {opt}");
            }
            // Every option an example uses is one of the subcommand's.
            let opts = long_options(sub);
            assert!(opts.iter().any(|o| o == "--help"), "{sub}: {opts:?}");
            let examples = text.split(".SH EXAMPLES").nth(1).unwrap();
            let examples = examples.split(".SH ").next().unwrap();
            for line in examples
                .lines()
                .filter(|l| l.contains(&format!("rtmpsniff {sub}")))
            {
                let after = line.split(&format!("rtmpsniff {sub}")).nth(1).unwrap();
                for w in after
                    .split_whitespace()
                    .take_while(|w| *w != "|" && *w != "&&")
                {
                    if w.starts_with("--") {
                        assert!(opts.iter().any(|o| o == w), "{page}: example uses {w}");
                    }
                }
            }
        }
        if matches!(sub, Some("read" | "list" | "live")) {
            assert!(roff.contains(".SH FILES\n"), "{page}");
            assert!(roff.contains("report.json"), "{page}");
        }
        let see = roff.split(".SH \"SEE ALSO\"").nth(1).unwrap();
        for other in &want {
            if other != page {
                let n = other.trim_end_matches(".1").replace('-', "\\-");
                assert!(see.contains(&format!("\\fB{n}\\fR(1)")), "{page}: {n}");
            }
        }
        // man and man SUBCOMMAND print the same page.
        let printed = match sub {
            Some(s) => rtmpsniff(&["man", s]),
            None => rtmpsniff(&["man"]),
        };
        assert_eq!(String::from_utf8_lossy(&printed.stdout), roff, "{page}");
    }
    // The top page lists every subcommand's page.
    let top = std::fs::read_to_string(dir.join("rtmpsniff.1")).unwrap();
    for s in &subs {
        assert!(top.contains(&format!("rtmpsniff\\-{s}(1)")), "{s}");
    }
    let o = rtmpsniff(&["man", "nosuch"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no manual page for \"nosuch\""));
}

/// Many short sessions that end in another order than they began: the report (its
/// connections spooled to a file as they end) lists them in the order they began, the same
/// as the library's in-memory reports, and the summary and inventory agree with it.
#[test]
fn spooled_report_is_the_in_memory_report_in_the_order_connections_began() {
    use crate::synthetic::{Opts, Session, pcap_file, publish_session};
    use rtmpsniff::capture::FileSet;
    use rtmpsniff::sink::FlvSink;
    use rtmpsniff::{Config, Driver, Pipeline};

    let n = 60;
    let mut frames: Vec<(f64, Vec<u8>)> = Vec::new();
    for i in 0..n {
        let mut s = Session::new(1935);
        s.client.set_port(40000 + i as u16);
        // Later sessions are shorter: they end before earlier ones.
        let o = Opts {
            frames: 4 + (n - i) / 2,
            name: format!("cam{i}").into_bytes(),
            ..Opts::default()
        };
        for (ts, f) in s.frames(&publish_session(&o), 1400) {
            frames.push((ts + i as f64 * 0.01, f));
        }
    }
    frames.sort_by(|a, b| a.0.total_cmp(&b.0));
    let dir = temp_dir("spool");
    let cap = dir.join("many.pcap");
    std::fs::write(&cap, pcap_file(&frames)).unwrap();

    let out = dir.join("out");
    let o = rtmpsniff(&["read", cap.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report = read_json(&out.join("report.json"));
    let conns = report["connections"].as_array().unwrap();
    assert_eq!(conns.len(), n);
    let ids: Vec<u64> = conns.iter().map(|c| c["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    // No spool or temporary file is left in the folder.
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|f| !f.starts_with('.')), "{names:?}");

    // The summary lists the connections in the same order.
    let stdout = String::from_utf8_lossy(&o.stdout);
    let clients: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("connection #"))
        .map(|l| l.split(' ').nth(1).unwrap())
        .collect();
    let want: Vec<&str> = conns
        .iter()
        .map(|c| c["client"].as_str().unwrap())
        .collect();
    assert_eq!(clients, want);

    // The library, keeping every report in memory, says the same.
    let mem = dir.join("mem");
    let sink = FlvSink::new(&mem).unwrap();
    let mut d = Driver::new(Pipeline::new(Config::default()), sink);
    // The frames as the binary reads them (times rounded to the file's microseconds).
    let mut files = FileSet::open(&[cap.to_str().unwrap().to_string()]).unwrap();
    d.run(&mut files, |_, _| Ok(())).unwrap();
    let mut sink = d.sink;
    sink.finish().unwrap();
    // Through text both ways: serde_json's float parsing is not always exact.
    let text = serde_json::to_vec(&sink.into_connections()).unwrap();
    let in_memory: serde_json::Value = serde_json::from_slice(&text).unwrap();
    for (a, b) in in_memory.as_array().unwrap().iter().zip(conns) {
        for (k, v) in a.as_object().unwrap() {
            assert_eq!(v, &b[k], "connection {}: {k}", a["id"]);
        }
    }
    assert_eq!(&in_memory, &report["connections"]);

    // The inventory numbers the same connections in the same order.
    let l = rtmpsniff(&["list", cap.to_str().unwrap()]);
    let table = String::from_utf8_lossy(&l.stdout);
    let listed: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| l.split(' ').nth(1).unwrap())
        .collect();
    assert_eq!(listed, want);
    assert!(table.lines().any(|l| l.starts_with(&format!("#{n} "))));
    let lj = rtmpsniff(&["list", "--json", cap.to_str().unwrap()]);
    let inventory = report_json(&lj.stdout);
    assert_eq!(inventory["connections"].as_array().unwrap().len(), n);
}

/// Times for people are ISO 8601 in UTC with a `Z`: in `list`'s table (to the millisecond)
/// and beside the report's numbers (to the microsecond), and they are tshark's times.
#[test]
fn times_for_people_are_iso_8601_utc_and_agree_with_tshark() {
    require_tool("tshark");
    let cap = root().join("samples/lo-h264-aac/capture.pcap");
    let o = Command::new("tshark")
        .args(["-r", cap.to_str().unwrap(), "-t", "ud", "-T", "fields"])
        .args(["-e", "frame.time_epoch"])
        .output()
        .unwrap();
    let epoch: f64 = String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let o = Command::new("tshark")
        .args(["-r", cap.to_str().unwrap(), "-t", "ud", "-c", "1"])
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&o.stdout).to_string();
    let mut words = line.split_whitespace().skip(1);
    // "2026-11-25 04:34:02.321235" as tshark prints UTC.
    let theirs = format!("{}T{}Z", words.next().unwrap(), words.next().unwrap());

    let j = rtmpsniff(&["list", "--json", cap.to_str().unwrap()]);
    let j = report_json(&j.stdout);
    let input = &j["inputs"][0];
    assert_eq!(input["first_time_utc"], theirs.as_str());
    assert!((input["first_time"].as_f64().unwrap() - epoch).abs() < 1e-6);
    let conn = &j["connections"][0];
    assert_eq!(conn["first_time_utc"], theirs.as_str());
    assert!(conn["last_time_utc"].as_str().unwrap().ends_with('Z'));

    let table = rtmpsniff(&["list", cap.to_str().unwrap()]);
    let table = String::from_utf8_lossy(&table.stdout);
    let millis = &theirs[..theirs.len() - 4];
    assert!(
        table.contains(&format!("  {millis}Z .. ")),
        "{millis}: {table}"
    );
}

/// report.json is a contract: it says its schema version, the tool and its version, the
/// command line and the run's wall-clock start and end, and follows schema/report.schema.json
/// (which every test's reports are checked against), a schema strict enough to catch a
/// renamed, added or mistyped field.
#[test]
fn the_report_says_what_made_it_and_follows_its_schema() {
    let wall = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    let cap = root().join("samples/lo-h264-aac/capture.pcap");
    let out = temp_dir("contract");
    let before = wall();
    let args = [
        "read",
        cap.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
    ];
    assert_eq!(rtmpsniff(&args).status.code(), Some(0));
    let after = wall();
    let r = read_json(&out.join("report.json"));
    assert_eq!(r["schema_version"], 2);
    assert_eq!(r["tool"], "rtmpsniff");
    assert_eq!(r["tool_version"], env!("CARGO_PKG_VERSION"));
    let line: Vec<&str> = r["command_line"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(line[0], env!("CARGO_BIN_EXE_rtmpsniff"));
    assert_eq!(line[1..], args);
    let (start, end) = (
        r["start_time"].as_f64().unwrap(),
        r["end_time"].as_f64().unwrap(),
    );
    assert!(
        before <= start && start <= end && end <= after,
        "{before} {start} {end} {after}"
    );
    // The strings are the numbers, to the microsecond.
    for k in ["start_time", "end_time"] {
        let utc = r[format!("{k}_utc")].as_str().unwrap().to_string();
        let secs = r[k].as_f64().unwrap();
        let day = (secs / 86_400.0).floor() as i64;
        let tod = secs - day as f64 * 86_400.0;
        let hms = format!(
            "{:02}:{:02}:{:02}",
            (tod / 3600.0) as u32,
            (tod / 60.0) as u32 % 60,
            tod as u32 % 60
        );
        assert!(utc.contains(&format!("T{hms}.")), "{k}: {utc} vs {secs}");
    }
    // Packet times and RTMP times are named alike everywhere.
    let c = &r["connections"][0];
    assert!(c["first_time"].as_f64().unwrap() <= c["last_time"].as_f64().unwrap());
    assert_eq!(c["first_time"], r["inputs"][0]["first_time"]);
    let st = &c["streams"][0];
    assert_eq!(st["first_timestamp_ms"], 0);
    assert!(st["last_timestamp_ms"].as_u64().unwrap() > 0);
    assert!(st["duration_ms"].as_u64().unwrap() > 0);

    // The schema is strict: a field renamed, a field it does not know, a wrong type, a
    // wrong version are each caught.
    assert!(schema_errors(&r).is_empty());
    let broken = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut b = r.clone();
        f(&mut b);
        schema_errors(&b)
    };
    let renamed = broken(&|b| {
        let c = b["connections"][0].as_object_mut().unwrap();
        let v = c.remove("first_time").unwrap();
        c.insert("first_seen".into(), v);
    });
    assert!(
        renamed.iter().any(|e| e.contains("first_seen")),
        "{renamed:?}"
    );
    assert!(
        renamed.iter().any(|e| e.contains("first_time")),
        "{renamed:?}"
    );
    let added = broken(&|b| b["stats"]["surprise"] = 1.into());
    assert!(added.iter().any(|e| e.contains("surprise")), "{added:?}");
    let typed = broken(&|b| b["connections"][0]["streams"][0]["video_frames"] = "75".into());
    assert!(!typed.is_empty());
    let version = broken(&|b| b["schema_version"] = 1.into());
    assert!(!version.is_empty());
    let time = broken(&|b| b["start_time_utc"] = "2026-11-25 04:34:02".into());
    assert!(!time.is_empty());
}

/// A bit rate as the summary and the table show it (README: `1.25 Mbit/s`, `497 kbit/s`,
/// `64.0 kbit/s`, `900 bit/s`).
fn rate_text(bps: u64) -> String {
    if bps < 1_000 {
        format!("{bps} bit/s")
    } else if bps < 100_000 {
        format!("{:.1} kbit/s", bps as f64 / 1e3)
    } else if bps < 1_000_000 {
        format!("{:.0} kbit/s", bps as f64 / 1e3)
    } else {
        format!("{:.2} Mbit/s", bps as f64 / 1e6)
    }
}

#[test]
fn bit_rates_are_the_coded_frames_over_the_media_time() {
    require_tool("ffprobe");
    use rtmpsniff::rtmp::media;
    for sample in ["lo-h264-aac", "lo-legacy-play", "netns-multi"] {
        let dir = root().join("samples").join(sample);
        let cap = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_stem().is_some_and(|s| s == "capture"))
            .unwrap();
        let out = temp_dir("bitrates");
        let report = read_ok(&cap, &out);
        let o = rtmpsniff(&[
            "read",
            cap.to_str().unwrap(),
            "-o",
            out.join("again").to_str().unwrap(),
        ]);
        let summary = String::from_utf8_lossy(&o.stdout).into_owned();
        let o = rtmpsniff(&["list", cap.to_str().unwrap()]);
        let table = String::from_utf8_lossy(&o.stdout).into_owned();
        for c in report["connections"].as_array().unwrap() {
            for st in c["streams"].as_array().unwrap() {
                let file = out.join(st["file"].as_str().unwrap());
                let data = std::fs::read(&file).unwrap();
                let (_, tags) = rtmpsniff::sink::flv::parse(&data).unwrap();
                // Coded frames' bodies, per kind, straight from the file.
                let mut bytes = [0u64; 2];
                let mut span = (u32::MAX, 0u32);
                for t in &tags {
                    let info = match t.kind {
                        8 => media::audio(&t.body),
                        9 => media::video(&t.body),
                        _ => None,
                    };
                    if info.is_some_and(|i| i.frame && !i.config) {
                        bytes[(t.kind == 9) as usize] += t.body.len() as u64;
                    }
                    if t.kind == 8 || t.kind == 9 || t.kind == 18 {
                        span = (span.0.min(t.timestamp), span.1.max(t.timestamp));
                    }
                }
                let ms = st["duration_ms"].as_u64().unwrap();
                assert_eq!(ms, (span.1 - span.0) as u64, "{}", file.display());
                let label = format!("{sample} {}", st["file"]);
                // ffprobe's packets: the frames without their FLV codec headers (a few bytes
                // each), so a little less.
                let probe = Command::new("ffprobe")
                    .args([
                        "-v",
                        "error",
                        "-show_entries",
                        "packet=codec_type,size",
                        "-of",
                        "json",
                    ])
                    .arg(&file)
                    .output()
                    .unwrap();
                let probe: serde_json::Value = serde_json::from_slice(&probe.stdout).unwrap();
                for (k, kind) in [(0, "audio"), (1, "video")] {
                    let got = st[format!("{kind}_bitrate")].as_u64();
                    if bytes[k] == 0 {
                        assert_eq!(got, None, "{label} {kind}");
                        continue;
                    }
                    let want = (bytes[k] * 8000 + ms / 2) / ms;
                    assert_eq!(got, Some(want), "{label} {kind}");
                    let probed: u64 = probe["packets"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|p| p["codec_type"] == kind)
                        .map(|p| p["size"].as_str().unwrap().parse::<u64>().unwrap())
                        .sum();
                    let probed = probed * 8000 / ms;
                    assert!(
                        want >= probed && (want as f64) < probed as f64 * 1.05,
                        "{label} {kind}: {want} against ffprobe's {probed}"
                    );
                    let text = format!("{kind} {}", rate_text(want));
                    assert!(summary.contains(&text), "{label}: {text} not in\n{summary}");
                    assert!(table.contains(&rate_text(want)), "{label}: not in\n{table}");
                }
            }
        }
    }
}
