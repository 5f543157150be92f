//! `rtmpsniff live` against real peers: nginx-rtmp (recording what it receives) and ffmpeg
//! publishing and playing, on loopback and on a veth pair between two network namespaces.
//! Needs root (CI is root); locally without root or the peers the tests say loudly that they
//! skipped. Every process and namespace a test makes is removed by a guard, even on failure.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rtmpsniff::sink::flv;

use crate::util::*;

/// What this test needs: root and the peers (each with the argument that makes it print its
/// version); a missing one fails the test (see [`require`]).
fn lab_ready(tools: &[(&str, &str)]) {
    // SAFETY: geteuid has no preconditions.
    require(
        "the live capture tests need root",
        unsafe { libc::geteuid() } == 0,
    );
    for (tool, version) in tools {
        let ok = Command::new(tool)
            .arg(version)
            .output()
            .is_ok_and(|o| o.status.success());
        require(&format!("{tool} is not installed"), ok);
    }
}

/// The peers of the tests with nginx-rtmp.
const PEERS: [(&str, &str); 3] = [("nginx", "-v"), ("ffmpeg", "-version"), ("ss", "-V")];

/// Kills what it started and deletes the namespaces it made, when dropped.
#[derive(Default)]
struct Guard {
    children: Vec<Child>,
    netns: Vec<String>,
}

impl Guard {
    fn spawn(&mut self, cmd: &mut Command) -> u32 {
        let c = cmd.spawn().unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
        let pid = c.id();
        self.children.push(c);
        pid
    }

    fn child(&mut self, pid: u32) -> &mut Child {
        self.children
            .iter_mut()
            .find(|c| c.id() == pid)
            .expect("a child of this guard")
    }

    /// Wait for a child to exit by itself, at most `limit`.
    fn wait(&mut self, pid: u32, limit: Duration, what: &str) -> ExitStatus {
        let end = Instant::now() + limit;
        let c = self.child(pid);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < end, "{what} still running after {limit:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&mut self, pid: u32, sig: i32) {
        // SAFETY: pid is a child of ours that has not been reaped (the guard owns it).
        unsafe { libc::kill(pid as i32, sig) };
    }

    fn netns(&mut self, name: &str) {
        run_ok(Command::new("ip").args(["netns", "add", name]));
        self.netns.push(name.to_string());
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for c in &mut self.children {
            if c.try_wait().ok().flatten().is_none() {
                // SAFETY: as in `signal`.
                unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            }
        }
        let end = Instant::now() + Duration::from_secs(3);
        for c in &mut self.children {
            while c.try_wait().ok().flatten().is_none() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.netns {
            // Deleting the namespace removes its veth end, and with it the peer.
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn run_ok(cmd: &mut Command) {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `ip netns exec NS` before a command, or nothing.
fn in_ns(ns: Option<&str>, program: &str) -> Command {
    match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, program]);
            c
        }
        None => Command::new(program),
    }
}

/// A TCP port free on loopback now (the kernel's choice, so parallel tests differ).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_until(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// nginx-rtmp in the foreground, one process, `record all` into `dir/rec`.
fn start_nginx(g: &mut Guard, dir: &Path, listen: &str, ns: Option<&str>) -> (u32, PathBuf) {
    start_nginx_with(g, dir, listen, ns, None)
}

/// [`start_nginx`], and with `tls: Some(ADDR)` nginx's stream module terminating TLS on ADDR
/// (a self-signed certificate made here) in front of it: RTMPS.
fn start_nginx_with(
    g: &mut Guard,
    dir: &Path,
    listen: &str,
    ns: Option<&str>,
    tls: Option<&str>,
) -> (u32, PathBuf) {
    let rec = dir.join("rec");
    std::fs::create_dir_all(&rec).unwrap();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let d = dir.display();
    let stream = match tls {
        None => String::new(),
        Some(addr) => {
            run_ok(
                Command::new("openssl")
                    .args([
                        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    ])
                    .args(["-subj", "/CN=rtmpsniff.test", "-keyout"])
                    .arg(dir.join("key.pem"))
                    .arg("-out")
                    .arg(dir.join("cert.pem")),
            );
            format!(
                "stream {{
  ssl_certificate {d}/cert.pem;
  ssl_certificate_key {d}/key.pem;
  server {{
    listen {addr} ssl;
    proxy_pass {listen};
  }}
}}
"
            )
        }
    };
    let modules = match tls {
        None => "",
        Some(_) => "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n",
    };
    let conf = format!(
        "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
{modules}daemon off;
master_process off;
user root root;
pid {d}/nginx.pid;
error_log {d}/logs/error.log info;
events {{ worker_connections 128; }}
rtmp {{
  access_log {d}/logs/rtmp-access.log;
  server {{
    listen {listen};
    chunk_size 4096;
    application live {{
      live on;
      play_restart on;
      record all;
      record_path {};
      record_unique off;
    }}
  }}
}}
{stream}",
        rec.display()
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let err = dir.join("logs/error.log");
    let pid = g.spawn(
        in_ns(ns, "nginx")
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(&err)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null()),
    );
    wait_until(Duration::from_secs(10), "nginx to listen", || {
        let o = in_ns(ns, "ss").arg("-Hltn").output().unwrap();
        String::from_utf8_lossy(&o.stdout).contains(&format!("{listen} "))
    });
    (pid, rec)
}

/// Stop nginx so that its recordings are complete.
fn stop_nginx(g: &mut Guard, pid: u32) {
    g.signal(pid, libc::SIGQUIT);
    g.wait(pid, Duration::from_secs(10), "nginx");
}

/// `rtmpsniff live ARGS`, started and listening (stderr goes to `dir/live.err`).
fn start_live(g: &mut Guard, dir: &Path, ns: Option<&str>, args: &[&str], stdout: Stdio) -> u32 {
    let err_path = dir.join("live.err");
    let err = std::fs::File::create(&err_path).unwrap();
    let pid = g.spawn(
        in_ns(ns, env!("CARGO_BIN_EXE_rtmpsniff"))
            .arg("live")
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(err),
    );
    wait_until(Duration::from_secs(10), "rtmpsniff to listen", || {
        let s = std::fs::read_to_string(&err_path).unwrap_or_default();
        // Any other line of its own before it listens is an error. (With --http the page's
        // address comes first: read between the two lines, it is no error.)
        let early = s
            .lines()
            .filter(|l| l.starts_with("rtmpsniff: "))
            .any(|l| !l.contains("listening on") && !l.contains("serving the live page on"));
        assert!(!early || s.contains("listening on"), "{s}");
        s.contains("listening on")
    });
    pid
}

/// ffmpeg encoding H.264 + AAC test signals in real time and publishing them for `secs`.
fn publish(ns: Option<&str>, url: &str, secs: u32) -> Command {
    let mut c = in_ns(ns, "ffmpeg");
    c.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", &secs.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-preset",
            "veryfast",
        ])
        .args(["-pix_fmt", "yuv420p", "-g", "25", "-b:v", "300k"])
        .args(["-c:a", "aac", "-b:a", "48k", "-ac", "1", "-f", "flv", url])
        .stdin(Stdio::null());
    c
}

/// The recovered file carries every audio/video packet of `truth`, bit for bit, nothing more,
/// the same decoder configurations, and decodes without an error. Each track is compared in
/// order on its own: ffmpeg's FLV muxer (a player's recording) interleaves audio and video by
/// time, not in the order they came over the wire.
fn assert_same_media(truth: &Path, got: &Path) {
    let t = media_of(truth);
    let m = media_of(got);
    assert!(t.packets.len() > 50, "{} is too short", truth.display());
    assert_bit_exact(&got.display().to_string(), &t, &m, got);
}

/// The tags of a file being written: whole ones only (the last may be half written).
fn whole_tags(path: &Path) -> Vec<flv::ReadTag> {
    let data = std::fs::read(path).unwrap_or_default();
    let mut end = 13;
    let mut pos = 13;
    while let Some(h) = data.get(pos..pos + 11) {
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        if data.len() < pos + 11 + size + 4 {
            break;
        }
        pos += 15 + size;
        end = pos;
    }
    data.get(..end)
        .and_then(flv::parse)
        .map(|(_, t)| t)
        .unwrap_or_default()
}

fn only_flv(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "flv"))
        .collect();
    v.sort();
    v
}

#[test]
fn live_on_loopback_equals_nginx_recording() {
    lab_ready(&PEERS);
    let mut g = Guard::default();
    let dir = temp_dir("live-lo");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let (nginx, rec) = start_nginx(&mut g, &dir.join("nginx"), &listen, None);
    let out = dir.join("out");
    let saved = dir.join("saved.pcap");
    let port_s = port.to_string();
    let live = start_live(
        &mut g,
        &dir,
        None,
        &[
            "-i",
            "lo",
            "--port",
            &port_s,
            "-o",
            out.to_str().unwrap(),
            "--write-pcap",
            saved.to_str().unwrap(),
        ],
        std::fs::File::create(dir.join("live.out")).unwrap().into(),
    );
    let ff = g.spawn(&mut publish(None, &format!("rtmp://{listen}/live/cam1"), 5));

    // While the stream runs, its file is there and grows, whole keyframes in it.
    std::thread::sleep(Duration::from_millis(2500));
    let files = only_flv(&out);
    assert_eq!(files.len(), 1, "{files:?}");
    let early = whole_tags(&files[0]);
    assert!(
        early.iter().any(|t| t.kind == 9 && t.body[0] >> 4 == 1),
        "no keyframe in the file while the stream runs ({} tags)",
        early.len()
    );
    std::thread::sleep(Duration::from_millis(1200));
    let later = whole_tags(&files[0]);
    assert!(later.len() > early.len(), "the file does not grow");

    let st = g.wait(ff, Duration::from_secs(30), "ffmpeg publisher");
    assert!(st.success(), "ffmpeg publisher: {st}");
    // The stream ended with the publisher's deleteStream: closed and reported at once.
    wait_until(
        Duration::from_secs(5),
        "the stream to be reported ended",
        || {
            std::fs::read_to_string(dir.join("live.out"))
                .unwrap()
                .contains("ended publish \"cam1\"")
        },
    );
    std::thread::sleep(Duration::from_millis(700));
    g.signal(live, libc::SIGINT);
    let st = g.wait(live, Duration::from_secs(15), "rtmpsniff after SIGINT");
    assert_eq!(
        st.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(dir.join("live.err")).unwrap()
    );
    stop_nginx(&mut g, nginx);

    let got = &only_flv(&out)[0];
    assert_same_media(&rec.join("cam1.flv"), got);
    let data = std::fs::read(got).unwrap();
    assert_eq!(data[4], 0x05, "header flags: audio and video");

    let report = read_json(&out.join("report.json"));
    let input = &report["inputs"][0];
    assert_eq!(input["path"], "live:lo");
    assert!(input["kernel"]["received"].as_u64().unwrap() > 0);
    assert!(input["kernel"]["dropped"].is_u64());
    // The capture filter in force, built from --port.
    assert_eq!(
        report["packet_selection"]["filter"],
        format!("tcp and (port {port})")
    );
    let stream = &report["connections"][0]["streams"][0];
    assert_eq!(stream["name"], "cam1");
    assert_eq!(report["connections"][0]["server"].as_str().unwrap(), listen);

    // The packets saved with --write-pcap give the same stream when read back.
    let again = dir.join("again");
    let o = rtmpsniff(&[
        "read",
        saved.to_str().unwrap(),
        "--port",
        &port_s,
        "-o",
        again.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_same_media(&rec.join("cam1.flv"), &only_flv(&again)[0]);
}

/// `live --workers 2`: two captures in one fanout group, a pipeline each, together recover
/// every stream of four publishers bit for bit against nginx's recordings, in one report
/// whose connections have numbers of their own and whose queue and CPU figures are there.
#[test]
fn live_workers_together_recover_every_stream_of_many_publishers() {
    lab_ready(&PEERS);
    let mut g = Guard::default();
    let dir = temp_dir("live-workers");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let (nginx, rec) = start_nginx(&mut g, &dir.join("nginx"), &listen, None);
    let out = dir.join("out");
    let port_s = port.to_string();
    let live = start_live(
        &mut g,
        &dir,
        None,
        &[
            "-i",
            "lo",
            "--port",
            &port_s,
            "--workers",
            "2",
            "-o",
            out.to_str().unwrap(),
        ],
        std::fs::File::create(dir.join("live.out")).unwrap().into(),
    );
    let names = ["cam1", "cam2", "cam3", "cam4"];
    let pubs: Vec<u32> = names
        .iter()
        .map(|n| g.spawn(&mut publish(None, &format!("rtmp://{listen}/live/{n}"), 4)))
        .collect();
    for ff in pubs {
        let st = g.wait(ff, Duration::from_secs(30), "ffmpeg publisher");
        assert!(st.success(), "ffmpeg publisher: {st}");
    }
    wait_until(Duration::from_secs(5), "every stream to end", || {
        let text = std::fs::read_to_string(dir.join("live.out")).unwrap();
        text.matches("ended publish").count() == names.len()
    });
    g.signal(live, libc::SIGINT);
    let st = g.wait(live, Duration::from_secs(15), "rtmpsniff after SIGINT");
    let err = std::fs::read_to_string(dir.join("live.err")).unwrap();
    assert_eq!(st.code(), Some(0), "{err}");
    assert!(err.contains("2 workers"), "{err}");
    stop_nginx(&mut g, nginx);

    let files = only_flv(&out);
    assert_eq!(files.len(), names.len(), "{files:?}");
    for n in names {
        let got = files
            .iter()
            .find(|f| {
                f.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("live_{n}_"))
            })
            .unwrap_or_else(|| panic!("no file for {n}: {files:?}"));
        assert_same_media(&rec.join(format!("{n}.flv")), got);
    }
    let report = read_json(&out.join("report.json"));
    let conns = report["connections"].as_array().unwrap();
    assert_eq!(conns.len(), names.len());
    let mut ids: Vec<u64> = conns.iter().map(|c| c["id"].as_u64().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), names.len(), "two connections with one number");
    let input = &report["inputs"][0];
    assert!(input["kernel"]["received"].as_u64().unwrap() > 0);
    assert_eq!(input["dropped_by_rtmpsniff"]["queue_full"], 0);
    assert_eq!(
        input["queue"]["limit_bytes"].as_u64().unwrap(),
        2 * (256u64 << 20),
        "two workers' queues"
    );
    assert!(input["cpu"]["cpu_seconds"].as_f64().unwrap() > 0.0);
    assert!(input["cpu"]["cpu_seconds_per_gbit"].as_f64().unwrap() > 0.0);
    let summary = std::fs::read_to_string(dir.join("live.out")).unwrap();
    assert!(
        summary.contains("0 packets dropped by rtmpsniff"),
        "{summary}"
    );
    assert!(summary.contains(" per Gbit"), "{summary}");
}

/// RTMPS: ffmpeg publishes through TLS with SSLKEYLOGFILE; `live --tls-keylog` reads the key
/// log as ffmpeg writes it (it is empty when the capture starts) and decrypts the stream.
#[test]
fn live_rtmps_decrypted_with_a_growing_key_log() {
    lab_ready(&PEERS);
    lab_ready(&[("openssl", "version")]);
    let mut g = Guard::default();
    let dir = temp_dir("live-rtmps");
    let listen = format!("127.0.0.1:{}", free_port());
    let tls_port = free_port();
    let tls = format!("127.0.0.1:{tls_port}");
    let (nginx, rec) = start_nginx_with(&mut g, &dir.join("nginx"), &listen, None, Some(&tls));
    wait_until(Duration::from_secs(10), "nginx to listen for TLS", || {
        let o = Command::new("ss").arg("-Hltn").output().unwrap();
        String::from_utf8_lossy(&o.stdout).contains(&format!("{tls} "))
    });
    let keylog = dir.join("keys.log");
    std::fs::write(&keylog, b"").unwrap();
    let out = dir.join("out");
    let port_s = tls_port.to_string();
    let live = start_live(
        &mut g,
        &dir,
        None,
        &[
            "-i",
            "lo",
            "--port",
            &port_s,
            "--tls-keylog",
            keylog.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        std::fs::File::create(dir.join("live.out")).unwrap().into(),
    );
    let ff =
        g.spawn(publish(None, &format!("rtmps://{tls}/live/sec"), 4).env("SSLKEYLOGFILE", &keylog));
    let st = g.wait(ff, Duration::from_secs(30), "ffmpeg publisher");
    assert!(st.success(), "ffmpeg publisher: {st}");
    assert!(
        !std::fs::read(&keylog).unwrap().is_empty(),
        "ffmpeg wrote no key log"
    );
    std::thread::sleep(Duration::from_millis(1500));
    g.signal(live, libc::SIGINT);
    let st = g.wait(live, Duration::from_secs(15), "rtmpsniff after SIGINT");
    assert_eq!(
        st.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(dir.join("live.err")).unwrap()
    );
    stop_nginx(&mut g, nginx);
    let files = only_flv(&out);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_same_media(&rec.join("sec.flv"), &files[0]);
    let report = read_json(&out.join("report.json"));
    let tls = &report["connections"][0]["tls"];
    assert_eq!(tls["decrypted"], true, "{tls}");
    assert_eq!(tls["keys_from"], "keylog");
    assert_eq!(tls["failed_records"], 0);
}

#[test]
fn live_stdout_piped_into_ffmpeg() {
    lab_ready(&PEERS);
    let mut g = Guard::default();
    let dir = temp_dir("live-stdout");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let (nginx, rec) = start_nginx(&mut g, &dir.join("nginx"), &listen, None);
    let out = dir.join("out");
    let port_s = port.to_string();
    let live = start_live(
        &mut g,
        &dir,
        None,
        &[
            "-i",
            "lo",
            "--port",
            &port_s,
            "-o",
            out.to_str().unwrap(),
            "--stdout",
            "--stream",
            "live/cam2",
        ],
        Stdio::piped(),
    );
    let decoder = g.spawn(
        Command::new("ffmpeg")
            .args([
                "-nostdin", "-v", "error", "-f", "flv", "-i", "-", "-f", "null", "-",
            ])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    // What rtmpsniff writes goes to the decoder and, for the comparison, to a file.
    let mut from = g.child(live).stdout.take().unwrap();
    let mut to = g.child(decoder).stdin.take().unwrap();
    let copy = dir.join("stdout.flv");
    let copy_path = copy.clone();
    let tee = std::thread::spawn(move || {
        let mut file = std::fs::File::create(copy_path).unwrap();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = from.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n]).unwrap();
            to.write_all(&buf[..n]).unwrap();
        }
    });
    // Another stream first: it goes to a file, not to standard output.
    let other = g.spawn(&mut publish(
        None,
        &format!("rtmp://{listen}/live/other"),
        2,
    ));
    let ff = g.spawn(&mut publish(None, &format!("rtmp://{listen}/live/cam2"), 4));
    assert!(
        g.wait(other, Duration::from_secs(30), "publisher")
            .success()
    );
    assert!(g.wait(ff, Duration::from_secs(30), "publisher").success());
    // The run ends by itself with the stream it pipes.
    let st = g.wait(
        live,
        Duration::from_secs(10),
        "rtmpsniff after its stream ended",
    );
    assert_eq!(
        st.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(dir.join("live.err")).unwrap()
    );
    tee.join().unwrap();
    let st = g.wait(decoder, Duration::from_secs(10), "ffmpeg reading the pipe");
    let mut err = String::new();
    g.child(decoder)
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(st.success() && err.trim().is_empty(), "ffmpeg: {err}");
    stop_nginx(&mut g, nginx);

    assert_same_media(&rec.join("cam2.flv"), &copy);
    let report = read_json(&out.join("report.json"));
    let streams: Vec<&serde_json::Value> = report["connections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["streams"].as_array().unwrap())
        .collect();
    let piped = streams.iter().find(|s| s["name"] == "cam2").unwrap();
    assert_eq!(piped["file"], "-");
    let other = streams.iter().find(|s| s["name"] == "other").unwrap();
    assert_same_media(
        &rec.join("other.flv"),
        &out.join(other["file"].as_str().unwrap()),
    );
}

#[test]
fn live_on_a_veth_pair_between_namespaces() {
    lab_ready(&PEERS);
    lab_ready(&[("ip", "-V")]);
    let mut g = Guard::default();
    let dir = temp_dir("live-veth");
    // Unique names: namespaces are global, and interface names have at most 15 characters.
    let tag = format!("{:05}", std::process::id() % 100_000);
    let (srv, cli) = (format!("rsl-{tag}-srv"), format!("rsl-{tag}-cli"));
    let (veth_srv, veth_cli) = (format!("rsl{tag}s"), format!("rsl{tag}c"));
    g.netns(&srv);
    g.netns(&cli);
    run_ok(Command::new("ip").args([
        "link", "add", &veth_srv, "netns", &srv, "type", "veth", "peer", "name", &veth_cli,
        "netns", &cli,
    ]));
    for (ns, dev, addr) in [
        (&srv, &veth_srv, "10.231.0.1/24"),
        (&cli, &veth_cli, "10.231.0.2/24"),
    ] {
        run_ok(Command::new("ip").args(["-n", ns, "link", "set", "lo", "up"]));
        run_ok(Command::new("ip").args(["-n", ns, "addr", "add", addr, "dev", dev]));
        run_ok(Command::new("ip").args(["-n", ns, "link", "set", dev, "up"]));
    }
    let (nginx, rec) = start_nginx(&mut g, &dir.join("nginx"), "10.231.0.1:1935", Some(&srv));
    let out = dir.join("out");
    // Default port 1935, capture on the server's end of the pair (offloads left on: segments
    // bigger than the MTU come whole).
    let live = start_live(
        &mut g,
        &dir,
        Some(&srv),
        &["-i", &veth_srv, "-o", out.to_str().unwrap()],
        Stdio::null(),
    );
    let url = "rtmp://10.231.0.1:1935/live/a";
    let played = dir.join("play.flv");
    let player = g.spawn(
        in_ns(Some(&cli), "ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-i", url])
            .args(["-map", "0", "-c", "copy", "-f", "flv"])
            .arg(&played)
            .stdin(Stdio::null()),
    );
    std::thread::sleep(Duration::from_millis(1000));
    let ff = g.spawn(&mut publish(Some(&cli), url, 4));
    assert!(g.wait(ff, Duration::from_secs(30), "publisher").success());
    assert!(g.wait(player, Duration::from_secs(15), "player").success());
    std::thread::sleep(Duration::from_millis(700));
    g.signal(live, libc::SIGTERM);
    let st = g.wait(live, Duration::from_secs(15), "rtmpsniff after SIGTERM");
    assert_eq!(
        st.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(dir.join("live.err")).unwrap()
    );
    stop_nginx(&mut g, nginx);

    let report = read_json(&out.join("report.json"));
    let mut checked = 0;
    for c in report["connections"].as_array().unwrap() {
        for s in c["streams"].as_array().unwrap() {
            let file = out.join(s["file"].as_str().unwrap());
            match s["direction"].as_str().unwrap() {
                "publish" => assert_same_media(&rec.join("a.flv"), &file),
                _ => assert_same_media(&played, &file),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 2, "one publish and one play: {report}");
}

#[test]
fn live_errors_exit_2_with_one_clear_line() {
    // setpriv is in util-linux, which every Debian system has.
    lab_ready(&[]);
    let dir = temp_dir("live-errors");
    let o = dir.join("o");
    let out = o.to_str().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (
            &["live", "-i", "rsl-nosuch0", "-o", out],
            "no such interface: rsl-nosuch0",
        ),
        (
            &["live", "-i", "lo", "-f", "tcp port", "-o", out],
            "bad filter expression \"tcp port\": can't parse filter expression: syntax error",
        ),
        (
            &["live", "-i", "lo", "-f", "tcp port 99999", "-o", out],
            "port 99999",
        ),
    ];
    for (args, want) in cases {
        let r = rtmpsniff(args);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // Root without CAP_NET_RAW is refused by the kernel like any user.
    let r = Command::new("setpriv")
        .args(["--bounding-set=-net_raw", "--"])
        .arg(env!("CARGO_BIN_EXE_rtmpsniff"))
        .args(["live", "-i", "lo", "-o", out])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("root or the CAP_NET_RAW capability"), "{err}");
    assert!(
        !o.exists(),
        "nothing is written when the capture cannot start"
    );
}

#[test]
fn interfaces_are_listed() {
    let r = rtmpsniff(&["interfaces"]);
    assert_eq!(r.status.code(), Some(0));
    let text = String::from_utf8_lossy(&r.stdout);
    // Numbered from 1, in libpcap's order (tcpdump -D's).
    for (n, l) in text.lines().enumerate() {
        assert!(l.starts_with(&format!("{}.", n + 1)), "{text}");
        assert_eq!(l, l.trim_end());
    }
    assert!(
        text.lines().any(|l| l
            .split_whitespace()
            .next()
            .is_some_and(|w| w.ends_with(".lo"))
            && l.contains("loopback")),
        "{text}"
    );
    for same in [
        &["live", "--list"][..],
        &["live", "-D"],
        &["live", "--list-interfaces"],
    ] {
        assert_eq!(rtmpsniff(same).stdout, r.stdout, "{same:?}");
    }
    let tcpdump = Command::new("tcpdump").arg("-D").output();
    require("tcpdump is not installed", tcpdump.is_ok());
    let tcpdump = tcpdump.unwrap();
    // The same numbers as tcpdump's ("N.NAME" first on each line).
    let numbered = |t: &str| -> Vec<String> {
        t.lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        numbered(&text),
        numbered(&String::from_utf8_lossy(&tcpdump.stdout))
    );
}

/// `-i N` takes the number `live -D` gives an interface; a number no interface has is
/// refused; a capture that saw no RTMP exits 1 as `read` does, its report written.
#[test]
fn live_takes_an_interface_number_and_exits_1_without_rtmp() {
    lab_ready(&[]);
    let list = rtmpsniff(&["live", "-D"]);
    let list = String::from_utf8_lossy(&list.stdout);
    let lo = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .find_map(|w| w.strip_suffix(".lo"))
        .expect("lo is listed")
        .to_string();
    let dir = temp_dir("live-number");
    let out = dir.join("o");
    // A port nothing uses: nothing is captured.
    let port = free_port().to_string();
    let r = rtmpsniff(&[
        "live",
        "-i",
        &lo,
        "--port",
        &port,
        "--duration",
        "1",
        "-o",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{err}");
    assert!(err.contains("listening on lo "), "{err}");
    assert!(
        err.contains(&format!("no RTMP found in live:lo (ports [{port}];")),
        "{err}"
    );
    let report = read_json(&out.join("report.json"));
    assert_eq!(report["inputs"][0]["path"], "live:lo");
    assert_eq!(report["connections"].as_array().unwrap().len(), 0);

    let n = list.lines().count() + 1;
    let r = rtmpsniff(&[
        "live",
        "-i",
        &n.to_string(),
        "-o",
        dir.join("p").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert_eq!(
        err.trim(),
        format!(
            "rtmpsniff: no interface number {n}: there are {} (`rtmpsniff live -D` lists them)",
            n - 1
        )
    );
    assert!(!dir.join("p").exists());
}

/// Tests that replay a sample onto `lo` (port 1935, which no other test captures) take turns:
/// each would see the other's packets.
static REPLAYING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Replay a sample capture onto `lo` as fast as it goes (the packets' addresses are not local,
/// so nothing on the machine answers them).
fn replay_on_lo(sample: &str) {
    let cap = root().join("samples").join(sample).join("capture.pcap");
    run_ok(
        Command::new("tcpreplay")
            .args(["-q", "-i", "lo", "--topspeed"])
            .arg(&cap),
    );
}

/// Whether process `pid` has a packet socket open (libpcap's, on Linux): it is capturing.
fn capturing(pid: u32) -> bool {
    let packet = std::fs::read_to_string("/proc/net/packet").unwrap_or_default();
    let inodes: Vec<&str> = packet
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(8))
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|l| {
            let l = l.to_string_lossy();
            l.strip_prefix("socket:[")
                .and_then(|r| r.strip_suffix(']'))
                .is_some_and(|i| inodes.contains(&i))
        })
    })
}

/// `rtmpsniff live -i lo ARGS` (default port 1935), its standard output to `stdout` and its
/// standard error to the file `stderr`, once its capture filter is in place. A packet socket
/// is open before libpcap attaches the filter, and libpcap drops what arrived in between, so
/// the socket alone is not enough: the "listening on" line comes after the filter. A quiet
/// run prints nothing, so then the wait is for the socket and a second more.
fn start_replay_live(g: &mut Guard, args: &[&str], stdout: Stdio, stderr: &Path) -> u32 {
    let pid = g.spawn(
        Command::new(env!("CARGO_BIN_EXE_rtmpsniff"))
            .args(["live", "-i", "lo"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(std::fs::File::create(stderr).unwrap()),
    );
    wait_until(Duration::from_secs(20), "rtmpsniff to capture", || {
        capturing(pid)
    });
    if args.contains(&"-q") {
        std::thread::sleep(Duration::from_secs(1));
    } else {
        wait_until(Duration::from_secs(20), "rtmpsniff's filter", || {
            std::fs::read_to_string(stderr).is_ok_and(|t| t.contains("listening on"))
        });
    }
    pid
}

/// `live -v` adds each connection's lock-ons and warnings to its summary as `read -v` does;
/// `live -q` says nothing at all; `-q -v` is refused.
#[test]
fn live_quiet_and_verbose_mean_what_they_mean_for_read() {
    lab_ready(&[("tcpreplay", "-V")]);
    let _turn = REPLAYING.lock().unwrap_or_else(|e| e.into_inner());
    let mut g = Guard::default();
    let dir = temp_dir("live-talk");
    let sample = root().join("samples/netns-midstream/capture.pcap");
    let read = rtmpsniff(
        &["read", sample.to_str().unwrap(), "-v", "-o"]
            .iter()
            .copied()
            .chain([dir.join("read").to_str().unwrap()])
            .collect::<Vec<_>>(),
    );
    assert_eq!(read.status.code(), Some(0));
    let details = |text: &str| -> Vec<String> {
        let mut d: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("    lock-on: ") || l.starts_with("    warning: "))
            .map(|l| l.split(" (frame").next().unwrap().to_string())
            .collect();
        d.sort();
        d
    };
    let want = details(&String::from_utf8_lossy(&read.stdout));
    assert!(!want.is_empty());

    let out = dir.join("v");
    let live = start_replay_live(
        &mut g,
        &["-v", "--duration", "6", "-o", out.to_str().unwrap()],
        std::fs::File::create(dir.join("v.out")).unwrap().into(),
        &dir.join("v.err"),
    );
    replay_on_lo("netns-midstream");
    let st = g.wait(live, Duration::from_secs(20), "rtmpsniff live -v");
    assert_eq!(st.code(), Some(0));
    let text = std::fs::read_to_string(dir.join("v.out")).unwrap();
    // Frame numbers differ (the live capture is numbered from its own start).
    assert_eq!(details(&text), want, "{text}");

    let out = dir.join("q");
    let live = start_replay_live(
        &mut g,
        &["-q", "--duration", "6", "-o", out.to_str().unwrap()],
        std::fs::File::create(dir.join("q.out")).unwrap().into(),
        &dir.join("q.err"),
    );
    replay_on_lo("netns-midstream");
    let st = g.wait(live, Duration::from_secs(20), "rtmpsniff live -q");
    assert_eq!(st.code(), Some(0));
    assert_eq!(std::fs::read_to_string(dir.join("q.out")).unwrap(), "");
    assert_eq!(std::fs::read_to_string(dir.join("q.err")).unwrap(), "");
    let report = read_json(&out.join("report.json"));
    assert_eq!(report["connections"].as_array().unwrap().len(), 4);

    let r = rtmpsniff(&["live", "-i", "lo", "-q", "-v"]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("cannot be used with"));
}

/// Standard output's reader going away stops a live run as Ctrl-C does (files finished,
/// report written), and it then ends by SIGPIPE like any filter, without a panic.
#[test]
fn live_with_standard_output_gone_stops_cleanly() {
    lab_ready(&[("tcpreplay", "-V")]);
    let _turn = REPLAYING.lock().unwrap_or_else(|e| e.into_inner());
    let mut g = Guard::default();
    let dir = temp_dir("live-epipe");
    let out = dir.join("o");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let live = start_replay_live(
        &mut g,
        &["--duration", "30", "-o", out.to_str().unwrap()],
        writer.into(),
        &dir.join("err"),
    );
    replay_on_lo("netns-midstream");
    // It stops at its first line for standard output, long before --duration.
    let st = g.wait(live, Duration::from_secs(15), "rtmpsniff live, stdout gone");
    let err = std::fs::read_to_string(dir.join("err")).unwrap();
    assert_eq!(st.signal(), Some(libc::SIGPIPE), "{st:?}: {err}");
    assert!(
        err.contains("listening on") && !err.contains("panick"),
        "{err}"
    );
    let report = read_json(&out.join("report.json"));
    let conns = report["connections"].as_array().unwrap();
    assert!(!conns.is_empty());
    for f in only_flv(&out) {
        assert!(flv::parse(&std::fs::read(&f).unwrap()).is_some(), "{f:?}");
    }
}

/// SIGTERM while the kernel still holds captured packets: they are read before the end (the
/// capture is stopped with SIGSTOP while a sample is replayed, then SIGTERM and SIGCONT), and
/// the report says how many.
#[test]
fn sigterm_reads_what_the_kernel_still_holds() {
    lab_ready(&[("tcpreplay", "-V")]);
    let _turn = REPLAYING.lock().unwrap_or_else(|e| e.into_inner());
    let mut g = Guard::default();
    let dir = temp_dir("live-drain");
    let out = dir.join("o");
    let live = start_replay_live(
        &mut g,
        &["--duration", "60", "-o", out.to_str().unwrap()],
        std::fs::File::create(dir.join("out")).unwrap().into(),
        &dir.join("err"),
    );
    g.signal(live, libc::SIGSTOP);
    replay_on_lo("netns-midstream");
    g.signal(live, libc::SIGTERM);
    g.signal(live, libc::SIGCONT);
    let st = g.wait(
        live,
        Duration::from_secs(20),
        "rtmpsniff live after SIGTERM",
    );
    let err = std::fs::read_to_string(dir.join("err")).unwrap();
    assert_eq!(st.code(), Some(0), "{st:?}: {err}");
    let report = read_json(&out.join("report.json"));
    let input = &report["inputs"][0];
    assert!(
        input["queue"]["drained_at_stop"].as_u64().unwrap() > 0,
        "{input}"
    );
    assert_eq!(
        report["connections"].as_array().unwrap().len(),
        4,
        "{input}"
    );
    let text = std::fs::read_to_string(dir.join("out")).unwrap();
    assert!(
        text.contains("read from the kernel's buffer after the stop"),
        "{text}"
    );
}

/// An interface set down and up again while it is captured: each is said when it happens and
/// kept in the report.
#[test]
fn an_interface_going_down_and_up_is_said_and_reported() {
    lab_ready(&[]);
    let mut g = Guard::default();
    let ns = format!("rs-down-{}", std::process::id());
    g.netns(&ns);
    run_ok(
        in_ns(Some(&ns), "ip").args(["link", "add", "d0", "type", "veth", "peer", "name", "d1"]),
    );
    run_ok(in_ns(Some(&ns), "ip").args(["link", "set", "d1", "up"]));
    run_ok(in_ns(Some(&ns), "ip").args(["link", "set", "d0", "up"]));
    let dir = temp_dir("live-down");
    let out = dir.join("o");
    let live = start_live(
        &mut g,
        &dir,
        Some(&ns),
        &["-i", "d0", "--duration", "6", "-o", out.to_str().unwrap()],
        std::fs::File::create(dir.join("out")).unwrap().into(),
    );
    std::thread::sleep(Duration::from_millis(1500));
    run_ok(in_ns(Some(&ns), "ip").args(["link", "set", "d0", "down"]));
    std::thread::sleep(Duration::from_millis(2500));
    run_ok(in_ns(Some(&ns), "ip").args(["link", "set", "d0", "up"]));
    let st = g.wait(live, Duration::from_secs(20), "rtmpsniff live");
    let err = std::fs::read_to_string(dir.join("live.err")).unwrap();
    let text = std::fs::read_to_string(dir.join("out")).unwrap();
    assert!(st.code().is_some_and(|c| c <= 1), "{st:?}: {err}");
    let all = format!("{text}{err}");
    assert!(all.contains("rtmpsniff: d0 went down at "), "{all}");
    assert!(all.contains("rtmpsniff: d0 is up again at "), "{all}");
    let report = read_json(&out.join("report.json"));
    let events: Vec<&str> = report["inputs"][0]["link_events"]
        .as_array()
        .unwrap_or_else(|| panic!("{report}"))
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["down", "up"]);
}

/// A GET on `addr` (HTTP/1.1, `Connection: close`) with extra header lines: the status,
/// the head and the body (read to the end).
fn http_get(addr: &str, path: &str, extra: &str) -> (u16, String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}\r\n"
    )
    .unwrap();
    let mut data = Vec::new();
    let read = s.read_to_end(&mut data);
    let at = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head from {addr}{path}: {read:?}"));
    let head = String::from_utf8_lossy(&data[..at]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head, data[at + 4..].to_vec())
}

fn state_of(http: &str, query: &str) -> serde_json::Value {
    serde_json::from_slice(&http_get(http, &format!("/report.json{query}"), "").2).unwrap()
}

/// nginx on a free loopback port and `rtmpsniff live -i lo --port PORT -o DIR/out --http
/// 127.0.0.1:PORT2 EXTRA...`, started and listening, for the `--http` tests.
struct HttpRun {
    dir: PathBuf,
    /// nginx's RTMP address, and its process and recordings.
    listen: String,
    nginx: u32,
    rec: PathBuf,
    out: PathBuf,
    /// The page's address.
    http: String,
    live: u32,
}

fn start_http_live(g: &mut Guard, tag: &str, extra: &[&str]) -> HttpRun {
    let dir = temp_dir(tag);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let (nginx, rec) = start_nginx(g, &dir.join("nginx"), &listen, None);
    let out = dir.join("out");
    let port_s = port.to_string();
    let http = format!("127.0.0.1:{}", free_port());
    let mut args = vec![
        "-i",
        "lo",
        "--port",
        &port_s,
        "-o",
        out.to_str().unwrap(),
        "--http",
        &http,
    ];
    args.extend_from_slice(extra);
    let live = start_live(g, &dir, None, &args, Stdio::null());
    HttpRun {
        dir,
        listen,
        nginx,
        rec,
        out,
        http,
        live,
    }
}

/// `live --http` on loopback with a token, a publish through nginx-rtmp: the row appears
/// through Server-Sent Events, ffmpeg decodes `/streams/ID.flv` while the publish runs, and
/// what that gives is nginx's recording bit for bit from its first keyframe on; no token,
/// no answer; `/report.json` parses.
#[test]
fn live_http_shows_the_stream_and_serves_it_as_http_flv() {
    lab_ready(&PEERS);
    let mut g = Guard::default();
    let HttpRun {
        dir,
        listen,
        nginx,
        rec,
        http,
        live,
        ..
    } = start_http_live(&mut g, "live-http", &["--http-token", "s3cr3t"]);
    let t = "?token=s3cr3t";
    // No token (or a wrong one): refused, whatever is asked.
    for path in [
        "/",
        "/report.json",
        "/events",
        "/streams/1-0.flv",
        "/?token=s3cr3",
    ] {
        let (status, _, _) = http_get(&http, path, "");
        assert_eq!(status, 401, "{path}");
    }
    let (status, head, page) = http_get(&http, &format!("/{t}"), "");
    assert_eq!(status, 200);
    for h in [
        "X-Frame-Options: DENY",
        "X-Content-Type-Options: nosniff",
        "Content-Security-Policy: default-src 'self'",
    ] {
        assert!(head.contains(h), "{h} not in {head}");
    }
    assert!(
        !head.to_ascii_lowercase().contains("access-control"),
        "{head}"
    );
    let page = String::from_utf8(page).unwrap();
    // Its own script, asked for with the token.
    assert!(
        page.contains("<script src=\"app.js?token=s3cr3t\"></script>"),
        "{page}"
    );
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "{page}"
    );
    let (status, _, _) = http_get(&http, "/app.js", "Authorization: Bearer s3cr3t\r\n");
    assert_eq!(status, 200);
    let (status, _, _) = http_get(&http, &format!("/../etc/passwd{t}"), "");
    assert_eq!(status, 404);

    // The events, read on a thread: when the stream's row first appears, and its id.
    let events_addr = http.clone();
    let events = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(&events_addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "GET /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cr3t\r\n\r\n"
        )
        .unwrap();
        let mut r = std::io::BufReader::new(s);
        let mut line = String::new();
        loop {
            line.clear();
            if std::io::BufRead::read_line(&mut r, &mut line).unwrap() == 0 {
                panic!("the events ended before the stream appeared");
            }
            let Some(data) = line.strip_prefix("data: ") else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_str(data).unwrap();
            if let Some(s) = v["streams"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == "cam")
            {
                return (Instant::now(), s["id"].as_str().unwrap().to_string());
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let ff = g.spawn(&mut publish(None, &format!("rtmp://{listen}/live/cam"), 8));
    let (seen, id) = events.join().unwrap();
    eprintln!(
        "publish start to its row in the events: {} ms",
        seen.duration_since(started).as_millis()
    );
    let report: serde_json::Value =
        serde_json::from_slice(&http_get(&http, &format!("/report.json{t}"), "").2).unwrap();
    assert!(
        report["streams"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == id.as_str() && s["app"] == "live"),
        "{report}"
    );
    // ffmpeg decodes the stream as it passes, joined mid-stream (the second keyframe on);
    // the test's own reader keeps the bytes.
    std::thread::sleep(Duration::from_millis(1500));
    let url = format!("http://{http}/streams/{id}.flv{t}");
    let frames = dir.join("frames.txt");
    let decoder = g.spawn(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i", &url, "-f", "framecrc"])
            .arg(&frames)
            .stderr(Stdio::piped()),
    );
    let flv_addr = http.clone();
    let flv_path = format!("/streams/{id}.flv{t}");
    let copy = std::thread::spawn(move || http_get(&flv_addr, &flv_path, ""));
    assert!(g.wait(ff, Duration::from_secs(30), "publisher").success());
    let kernel = state_of(&http, t)["kernel"].clone();
    eprintln!("kernel with one viewer reading: {kernel}");
    let (status, head, body) = copy.join().unwrap();
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("video/x-flv"), "{head}");
    let st = g.wait(decoder, Duration::from_secs(15), "ffmpeg reading HTTP-FLV");
    let mut err = String::new();
    g.child(decoder)
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(st.success(), "ffmpeg: {err}");
    let decoded = std::fs::read_to_string(&frames).unwrap();
    let video_frames = decoded.lines().filter(|l| l.starts_with("0,")).count();
    assert!(video_frames > 100, "{video_frames} frames decoded: {err}");
    g.signal(live, libc::SIGTERM);
    g.wait(live, Duration::from_secs(20), "rtmpsniff after SIGTERM");
    stop_nginx(&mut g, nginx);

    // From the first keyframe on, the bodies are nginx's, kind by kind, in order.
    let got_path = dir.join("http.flv");
    std::fs::write(&got_path, &body).unwrap();
    let truth = media_of(&rec.join("cam.flv"));
    let got = media_of(&got_path);
    assert_eq!(got.frame_before_config, None);
    assert_eq!(got.configs, truth.configs);
    for kind in [8u8, 9] {
        let t: Vec<&Vec<u8>> = truth
            .packets
            .iter()
            .filter(|p| p.0 == kind)
            .map(|p| &p.2)
            .collect();
        let m: Vec<&Vec<u8>> = got
            .packets
            .iter()
            .filter(|p| p.0 == kind)
            .map(|p| &p.2)
            .collect();
        assert!(m.len() > 50, "kind {kind}: {} packets", m.len());
        let from = t
            .iter()
            .position(|b| *b == m[0])
            .unwrap_or_else(|| panic!("kind {kind}: the first packet is not nginx's"));
        assert_eq!(
            &t[from..],
            &m[..],
            "kind {kind}: not nginx's from {from} on"
        );
        eprintln!(
            "kind {kind}: {} packets bit-exact from nginx's {from}",
            m.len()
        );
    }
    ffmpeg_decodes_cleanly(&got_path).unwrap();
}

/// A TCP connection to `addr` (IPv4) whose receive buffer was made small before it
/// connected, so that its window stays small: a reader that does not read fills at once.
fn small_window_connect(addr: &str) -> std::net::TcpStream {
    use std::os::fd::FromRawFd;
    let a: std::net::SocketAddrV4 = addr.parse().unwrap();
    // SAFETY: a new socket of ours, options and an address of the sizes given; the fd is
    // handed to the TcpStream, which owns and closes it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let small: libc::c_int = 2048;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&small as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: a.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*a.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let r = libc::connect(
            fd,
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(r, 0, "connect {addr}");
        std::net::TcpStream::from_raw_fd(fd)
    }
}

/// Ten viewers of `/streams/ID.flv` that read nothing (a 4 KiB receive buffer each): each is
/// dropped when its queue reaches `http_viewer_bytes`, what is queued for them stays within
/// that bound, the kernel drops nothing, and the stream's file is nginx's recording.
#[test]
fn live_http_viewers_that_read_nothing_are_dropped_and_cost_the_capture_nothing() {
    lab_ready(&PEERS);
    let mut g = Guard::default();
    let HttpRun {
        listen,
        nginx,
        rec,
        out,
        http,
        live,
        ..
    } = start_http_live(
        &mut g,
        "live-http-stalled",
        &["--limit", "http_viewer_bytes=64K"],
    );
    let limit = 64u64 << 10;
    let ff = g.spawn(&mut publish(None, &format!("rtmp://{listen}/live/slow"), 8));
    let state = || -> serde_json::Value {
        serde_json::from_slice(&http_get(&http, "/report.json", "").2).unwrap()
    };
    let mut id = String::new();
    wait_until(
        Duration::from_secs(10),
        "the stream in /report.json",
        || {
            let s = state();
            match s["streams"].as_array().unwrap().first() {
                Some(s) => {
                    id = s["id"].as_str().unwrap().to_string();
                    true
                }
                None => false,
            }
        },
    );
    let stalled: Vec<std::net::TcpStream> = (0..10)
        .map(|_| {
            let mut s = small_window_connect(&http);
            write!(s, "GET /streams/{id}.flv HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            s
        })
        .collect();
    let mut peak = 0;
    let mut dropped = 0;
    while g.child(ff).try_wait().unwrap().is_none() {
        let s = state();
        peak = s["http"]["retained_peak_bytes"].as_u64().unwrap();
        dropped = s["http"]["viewers_dropped"].as_u64().unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(g.wait(ff, Duration::from_secs(30), "publisher").success());
    eprintln!("10 stalled viewers: {dropped} dropped, peak queued {peak} bytes");
    assert!(dropped >= 1, "no stalled viewer was dropped");
    // Each viewer's queue holds at most the limit and one tag more (a tag is < 64 KiB here).
    assert!(peak <= 10 * 2 * limit, "{peak} bytes queued at once");
    g.signal(live, libc::SIGTERM);
    g.wait(live, Duration::from_secs(20), "rtmpsniff after SIGTERM");
    drop(stalled);
    stop_nginx(&mut g, nginx);
    let report = read_json(&out.join("report.json"));
    let kernel = &report["inputs"][0]["kernel"];
    eprintln!("kernel with 10 stalled viewers: {kernel}");
    assert_eq!(kernel["dropped"], 0, "{kernel}");
    let hit = report["limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "http_viewer_bytes")
        .unwrap();
    assert_eq!(hit["hits"], dropped, "{hit}");
    let file = only_flv(&out);
    assert_eq!(file.len(), 1, "{file:?}");
    assert_same_media(&rec.join("slow.flv"), &file[0]);
}

/// `--http` on an address that is not loopback without `--http-token`: one line, exit 2,
/// before anything is captured.
#[test]
fn live_http_off_loopback_needs_a_token() {
    let o = rtmpsniff(&["live", "-i", "lo", "--http", "0.0.0.0:8080"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--http-token"), "{err}");
}

/// Headless Chromium opens the `--http` page (with its token), sees the stream listed through
/// the events, starts its player (mpegts.js, served by rtmpsniff) and the video's
/// currentTime passes 1 s; the page asks nothing of any other host.
#[test]
fn live_http_page_plays_the_stream_in_chromium() {
    lab_ready(&PEERS);
    require_tool("chromium");
    require_tool("node");
    require(
        "tests/browser/node_modules/puppeteer-core is not installed (npm ci --prefix tests/browser)",
        root()
            .join("tests/browser/node_modules/puppeteer-core")
            .exists(),
    );
    let mut g = Guard::default();
    let HttpRun {
        dir,
        listen,
        nginx,
        http,
        live,
        ..
    } = start_http_live(&mut g, "live-http-page", &["--http-token", "t0k"]);
    let ff = g.spawn(&mut publish(
        None,
        &format!("rtmp://{listen}/live/<cam>"),
        20,
    ));
    let shot = dir.join("page.png");
    let o = Command::new("node")
        .arg(root().join("tests/browser/live.js"))
        .arg(format!("http://{http}/?token=t0k"))
        .arg("<cam>")
        .arg(&shot)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "live.js: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    eprintln!(
        "page: listed after {} ms, playable after {} ms, keyframe {} ms after play, its picture {} ms after it came, currentTime {} after {} ms ({})",
        seen["listed_ms"],
        seen["playable_ms"],
        seen["keyframe_wait_ms"],
        seen["keyframe_to_picture_ms"],
        seen["current_time"],
        seen["playing_ms"],
        shot.display()
    );
    assert_eq!(seen["listed"], true, "{seen}");
    assert!(seen["current_time"].as_f64().unwrap() > 1.0, "{seen}");
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    // Its own host only (data: URLs are the browser's own, its video controls' icons).
    for r in seen["requests"].as_array().unwrap() {
        let r = r.as_str().unwrap();
        assert!(
            r.starts_with(&format!("http://{http}/")) || r.starts_with("data:"),
            "{r}"
        );
    }
    g.signal(ff, libc::SIGTERM);
    g.signal(live, libc::SIGTERM);
    g.wait(live, Duration::from_secs(20), "rtmpsniff after SIGTERM");
    stop_nginx(&mut g, nginx);
}
