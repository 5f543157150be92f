//! What the performance work must not break: the benchmark's kind of capture (publishers
//! pushing as fast as TCP allows, made by `bench/bench.sh` at a CI size) comes back bit-exact,
//! and idle connections are closed by packet time. No timing is asserted here.

use std::path::Path;
use std::process::Command;

use rtmpsniff::flow::ConnId;
use rtmpsniff::pipeline::Output;
use rtmpsniff::sink::report::ConnectionSummary;
use rtmpsniff::{Config, Driver, Pipeline};

use crate::synthetic::{self, Opts, Session};
use crate::util::*;

/// Root and the peers `bench/bench.sh` needs to make a capture; in CI a missing one fails.
fn bench_lab_ready() {
    // SAFETY: geteuid has no preconditions.
    require(
        "the benchmark capture needs root",
        unsafe { libc::geteuid() } == 0,
    );
    for (tool, arg) in [
        ("nginx", "-v"),
        ("ffmpeg", "-version"),
        ("tcpdump", "--version"),
        ("ip", "-V"),
    ] {
        let ok = Command::new(tool)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success());
        require(&format!("{tool} is not installed"), ok);
    }
}

#[test]
fn benchmark_capture_small_is_recovered_bit_exact() {
    bench_lab_ready();
    let data = temp_dir("bench-small");
    let o = Command::new("bash")
        .arg(root().join("bench/bench.sh"))
        .args(["--make-only", "-n", "3", "-s", "2", "-d"])
        .arg(&data)
        .output()
        .expect("run bench/bench.sh");
    assert!(
        o.status.success(),
        "bench/bench.sh --make-only failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let capture = data.join("capture.pcap");
    let out = data.join("out");
    let report = read_ok(&capture, &out);
    let file_of = |name: &str| -> std::path::PathBuf {
        let s = report["connections"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["streams"].as_array().unwrap())
            .find(|s| s["name"] == name && s["direction"] == "publish")
            .unwrap_or_else(|| panic!("no publish stream {name} in the report"));
        out.join(s["file"].as_str().unwrap())
    };
    let mut truths: Vec<_> = std::fs::read_dir(data.join("truth"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    truths.sort();
    assert_eq!(truths.len(), 3);
    for truth in truths {
        let name = truth.file_stem().unwrap().to_str().unwrap().to_string();
        let want = media_of(&truth);
        let got = media_of(&file_of(&name));
        assert!(want.packets.len() > 50, "{} is too short", truth.display());
        assert_eq!(
            got.packets, want.packets,
            "{name}: every audio/video packet, bit for bit, in order"
        );
        assert_eq!(got.configs, want.configs);
    }
    let _ = std::fs::remove_dir_all(&data);
}

/// Run frames through a pipeline; the outputs after each frame, by frame index.
fn outputs_by_frame(config: Config, frames: &[(f64, Vec<u8>)]) -> Vec<(usize, Output)> {
    let mut d = Driver::new(Pipeline::new(config), Vec::new());
    let mut v = Vec::new();
    let mut n = 0;
    d.run(&mut Frames::new(frames), |d, _| {
        v.extend(d.sink.drain(..).map(|o| (n, o)));
        n += 1;
        Ok(())
    })
    .unwrap();
    v.extend(d.sink.drain(..).map(|o| (frames.len(), o)));
    v
}

/// A publish whose FIN was never captured, then, `pause` seconds of packet time later,
/// another publish from another port.
fn unfinished_then_another(pause: f64) -> (Vec<(f64, Vec<u8>)>, usize) {
    let writes = synthetic::publish_session(&Opts::default());
    let mut a = Session::new(1935).frames(&writes, 1400);
    a.truncate(a.len() - 3);
    let mut s = Session::new(1935);
    s.client.set_port(50001);
    let last = a.last().unwrap().0;
    let b = s.frames(&writes, 1400);
    let shift = last + pause - b[0].0;
    let first_of_b = a.len();
    a.extend(b.into_iter().map(|(t, f)| (t + shift, f)));
    (a, first_of_b)
}

#[test]
fn idle_connection_is_closed_by_packet_time() {
    let (frames, first_of_b) = unfinished_then_another(Config::default().idle_timeout + 1.0);
    let out = outputs_by_frame(Config::default(), &frames);
    let ended: Vec<_> = out
        .iter()
        .filter_map(|(n, o)| match o {
            Output::ConnectionEnded(s) => Some((*n, s)),
            _ => None,
        })
        .collect();
    assert_eq!(ended.len(), 2);
    // The first connection ends when the packet time has moved past its idle timeout, not
    // at the end of the input, and says why.
    let (n, s) = ended[0];
    assert_eq!(s.id.0, 0);
    assert_eq!(n, first_of_b, "closed at the first packet after the pause");
    let words = ConnectionSummary::new(s, &rtmpsniff::Limits::default());
    assert!(
        words.warnings.iter().any(|w| w.contains("idle timeout")),
        "{:?}",
        words.warnings
    );
    // Everything it carried was handed on before it closed.
    let tags = out
        .iter()
        .filter(|(n, o)| {
            *n <= first_of_b
                && matches!(
                    o,
                    Output::Tag {
                        conn: ConnId(0),
                        ..
                    }
                )
        })
        .count();
    assert!(tags >= synthetic::expected_media(&Opts::default()).len());

    // A shorter pause closes nothing early.
    let (frames, _) = unfinished_then_another(Config::default().idle_timeout - 1.0);
    let out = outputs_by_frame(Config::default(), &frames);
    let early = out
        .iter()
        .filter(|(n, o)| *n < frames.len() && matches!(o, Output::ConnectionEnded(_)))
        .count();
    assert_eq!(early, 1, "only the second publish, at its FIN");
}

#[test]
fn bench_script_documents_itself() {
    // `--help` prints the header comment, without root or peers.
    let o = Command::new("bash")
        .arg(Path::new(&root()).join("bench/bench.sh"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("tcpflow") && text.contains("--make-only"),
        "{text}"
    );
}
