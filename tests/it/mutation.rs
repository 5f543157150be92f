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

use rtmpsniff::flow::Dir;

use crate::fuzz::{Rng, mutate};
use crate::synthetic::Session;
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

/// Runs `total` variants made by `make(i)` (the variant's bytes and its file extension)
/// through the binary on a few threads, and fails with every variant that went wrong.
fn run_variants(tag: &str, total: usize, make: &(dyn Fn(usize) -> (Vec<u8>, &'static str) + Sync)) {
    let work = temp_dir(tag);
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
                    let (variant, ext) = make(i);
                    let dir = work.join(format!("v{i}"));
                    std::fs::create_dir_all(&dir).unwrap();
                    let cap = dir.join(format!("capture.{ext}"));
                    std::fs::write(&cap, &variant).unwrap();
                    match run_variant(&cap, &dir, i.is_multiple_of(HTML_EVERY)) {
                        Verdict::Ok(code) => {
                            codes.lock().unwrap()[code as usize] += 1;
                            let _ = std::fs::remove_dir_all(&dir);
                        }
                        // The variant stays in `dir` for a rerun.
                        Verdict::Bad(why) => failures
                            .lock()
                            .unwrap()
                            .push(format!("variant {i} ({}): {why}", cap.display())),
                    }
                }
            });
        }
    });
    let codes = codes.into_inner().unwrap();
    let failures = failures.into_inner().unwrap();
    eprintln!(
        "{tag}: {total} variants in {:.1} s: exit 0: {}, exit 1: {}, exit 2: {}, failures: {}",
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
    run_variants("mutation", total, &|i| {
        let (path, data) = &samples[i % samples.len()];
        let mut rng = Rng(0xda3a_9e00 ^ (i as u64).wrapping_mul(0x1000_0001));
        let ext = if path.extension().is_some_and(|e| e == "pcapng") {
            "pcapng"
        } else {
            "pcap"
        };
        (mutate(&mut rng, data), ext)
    });
}

/// A connection's two ends (client, server), and what each side sent, in order.
type Ends = (std::net::SocketAddrV4, std::net::SocketAddrV4);
type Writes = Vec<(Dir, Vec<u8>)>;

/// The TCP connections of a classic pcap (Ethernet, IPv4), each as the payloads each side
/// sent, in capture order (the samples are clean captures: no loss, no retransmission).
fn connections_of(pcap: &[u8]) -> Vec<Vec<(Dir, Vec<u8>)>> {
    use etherparse::{SlicedPacket, TransportSlice};
    let u = |at: usize| u32::from_le_bytes(pcap[at..at + 4].try_into().unwrap()) as usize;
    let mut conns: Vec<(Ends, Writes)> = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let len = u(at + 8);
        let frame = &pcap[at + 16..at + 16 + len];
        at += 16 + len;
        let Ok(p) = SlicedPacket::from_ethernet(frame) else {
            continue;
        };
        let (Some(etherparse::NetSlice::Ipv4(ip)), Some(TransportSlice::Tcp(t))) =
            (p.net, p.transport)
        else {
            continue;
        };
        let src = std::net::SocketAddrV4::new(ip.header().source_addr(), t.source_port());
        let dst = std::net::SocketAddrV4::new(ip.header().destination_addr(), t.destination_port());
        if t.syn() && !t.ack() {
            conns.push(((src, dst), Vec::new()));
            continue;
        }
        let payload = t.payload();
        if payload.is_empty() {
            continue;
        }
        if let Some((k, w)) = conns
            .iter_mut()
            .rev()
            .find(|(k, _)| *k == (src, dst) || *k == (dst, src))
        {
            let dir = if k.0 == src {
                Dir::ClientToServer
            } else {
                Dir::ServerToClient
            };
            w.push((dir, payload.to_vec()));
        }
    }
    conns
        .into_iter()
        .map(|(_, w)| w)
        .filter(|w| !w.is_empty())
        .collect()
}

/// One RTMP-aware change to a connection's writes: a chunk header made up at a random place,
/// a Set Chunk Size with a hostile size, a run of bytes spliced from another connection (of
/// any sample: message bodies, AMF commands), a run deleted or repeated, or an AMF0 length
/// changed. The connection is then rebuilt with consistent sequence numbers and ACKs, so the
/// damage reaches the RTMP reader instead of being a TCP gap.
fn mutate_rtmp(
    rng: &mut Rng,
    conn: &[(Dir, Vec<u8>)],
    donors: &[Vec<(Dir, Vec<u8>)>],
) -> Vec<(Dir, Vec<u8>)> {
    let mut w = conn.to_vec();
    for _ in 0..1 + rng.below(3) {
        let i = rng.below(w.len());
        let n = w[i].1.len();
        let at = rng.below(n + 1);
        match rng.below(6) {
            0 => {
                // A chunk header: any format, chunk stream, time, length, type, stream.
                let fmt = rng.below(4) as u8;
                let mut h = vec![(fmt << 6) | [2u8, 3, 4, 5, 6, 8, 0, 1][rng.below(8)]];
                if h[0] & 0x3f < 2 {
                    h.extend_from_slice(
                        &[rng.next() as u8, rng.next() as u8][..1 + (h[0] & 0x3f) as usize],
                    );
                }
                let ts = [0u32, 40, 0xff_ffff, rng.next() as u32 & 0xff_ffff][rng.below(4)];
                let len = [0u32, 1, 4096, 0xff_ffff, rng.next() as u32 & 0xff_ffff][rng.below(5)];
                let ty = [1u8, 2, 3, 4, 5, 6, 8, 9, 15, 17, 18, 20, 22, 0x7f][rng.below(14)];
                h.extend_from_slice(&ts.to_be_bytes()[1..]);
                if fmt < 2 {
                    h.extend_from_slice(&len.to_be_bytes()[1..]);
                    h.push(ty);
                }
                if fmt == 0 {
                    h.extend_from_slice(&(rng.below(4) as u32).to_le_bytes());
                }
                if ts == 0xff_ffff {
                    h.extend_from_slice(&(rng.next() as u32).to_be_bytes());
                }
                w[i].1.splice(at..at, h);
            }
            1 => {
                // Set Chunk Size, on chunk stream 2.
                let size = [1u32, 127, 128, 0x7fff_ffff, 0xffff_ffff, 65536][rng.below(6)];
                let mut m = vec![0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0];
                m.extend_from_slice(&size.to_be_bytes());
                w[i].1.splice(at..at, m);
            }
            2 => {
                let d = &donors[rng.below(donors.len())];
                let (_, src) = &d[rng.below(d.len())];
                let a = rng.below(src.len());
                let len = rng.below((src.len() - a).min(8192)) + 1;
                w[i].1.splice(at..at, src[a..a + len].iter().copied());
            }
            3 if n > 0 => {
                let len = rng.below((n - at).min(4096) + 1);
                w[i].1.drain(at..at + len);
            }
            4 if n > 0 => {
                let len = rng.below((n - at).min(4096) + 1);
                let run = w[i].1[at..at + len].to_vec();
                w[i].1.splice(at..at, run);
            }
            _ => {
                // An AMF0 string or long string length (0x02 LEN16 or 0x0c LEN32) changed.
                let b = &mut w[i].1;
                if let Some(p) = (0..b.len().saturating_sub(3))
                    .map(|k| (at + k) % b.len().max(1))
                    .find(|&k| b[k] == 0x02 || b[k] == 0x0c)
                {
                    let v = [0u8, 0xff, 0x7f, 0x80][rng.below(4)];
                    if p + 2 < b.len() {
                        b[p + 1] = v;
                        b[p + 2] = rng.next() as u8;
                    }
                }
            }
        }
    }
    w
}

#[test]
fn rtmp_aware_damage_never_crashes_or_hangs() {
    let total: usize = std::env::var("RTMPSNIFF_MUTATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(600, |n: usize| n / 4);
    let conns: Vec<Vec<(Dir, Vec<u8>)>> = [
        "samples/lo-h264-aac/capture.pcap",
        "samples/netns-multi/capture.pcap",
    ]
    .iter()
    .flat_map(|p| connections_of(&std::fs::read(root().join(p)).unwrap()))
    .collect();
    assert!(conns.len() >= 4, "{} connections", conns.len());
    run_variants("mutation-rtmp", total, &|i| {
        let mut rng = Rng(0x5eed_0000 ^ (i as u64).wrapping_mul(0x2000_0003));
        let conn = &conns[i % conns.len()];
        let writes = mutate_rtmp(&mut rng, conn, &conns);
        let mut s = Session::new(1935);
        s.client.set_port(40000 + (i % 1000) as u16);
        let mss = [536, 1400, 1448, 16384][rng.below(4)];
        (s.pcap(&writes, mss), "pcap")
    });
}
