//! Inputs opened once: pipes, FIFOs, standard input and process substitution read as files
//! do, for pcap and pcapng; a pcapng whose interfaces have different link types.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::util::{flvs, pcap_records, read_json, require_tool, rtmpsniff, sample, temp_dir};

/// `read` of `capture` given as a path: what it wrote.
fn read_as_file(capture: &Path) -> (Vec<(String, Vec<u8>)>, serde_json::Value) {
    let out = temp_dir("inputs-file");
    let o = rtmpsniff(&[
        "read",
        "-q",
        "--any-port",
        capture.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    (flvs(&out), read_json(&out.join("report.json")))
}

/// `read ARG` with `bytes` written into its standard input through a pipe.
fn read_through_pipe(arg: &str, bytes: Vec<u8>) -> (Vec<(String, Vec<u8>)>, serde_json::Value) {
    let out = temp_dir("inputs-pipe");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rtmpsniff"))
        .args(["read", "-q", "--any-port", arg, "-o", out.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Written from another thread in small pieces, as a slow producer would.
    let writer = std::thread::spawn(move || {
        for c in bytes.chunks(1000) {
            if stdin.write_all(c).is_err() {
                break;
            }
        }
    });
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    (flvs(&out), read_json(&out.join("report.json")))
}

#[test]
fn pcap_and_pcapng_through_stdin_and_dev_stdin_as_from_the_file() {
    for (capture, format) in [
        (sample("lo-h264-aac/capture.pcap"), "pcap"),
        // pcapng with its TLS keys in a Decryption Secrets Block: the keys come through the
        // pipe too.
        (sample("rtmps-tls13-dsb/capture.pcapng"), "pcapng"),
    ] {
        let (want, want_report) = read_as_file(&capture);
        assert!(!want.is_empty(), "{}", capture.display());
        for arg in ["-", "/dev/stdin"] {
            let (got, report) = read_through_pipe(arg, std::fs::read(&capture).unwrap());
            assert_eq!(got, want, "{} as {arg}", capture.display());
            let input = &report["inputs"][0];
            assert_eq!(input["format"], format, "{arg}");
            assert_eq!(input["packets"], want_report["inputs"][0]["packets"]);
            assert_eq!(input["error"], serde_json::Value::Null);
        }
    }
}

#[test]
fn a_fifo_and_process_substitution_read_as_the_file() {
    require_tool("bash");
    let capture = sample("netns-multi/capture.pcap");
    let (want, _) = read_as_file(&capture);
    let dir = temp_dir("inputs-fifo");
    let fifo = dir.join("capture.fifo");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let (src, dst) = (capture.clone(), fifo.clone());
    let writer = std::thread::spawn(move || {
        let data = std::fs::read(src).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(dst)
            .unwrap()
            .write_all(&data)
            .unwrap();
    });
    let out = dir.join("out");
    let o = rtmpsniff(&[
        "read",
        "-q",
        fifo.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    writer.join().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(flvs(&out), want, "through a FIFO");

    let out = dir.join("out2");
    let script = format!(
        "exec '{}' read -q <(cat '{}') -o '{}'",
        env!("CARGO_BIN_EXE_rtmpsniff"),
        capture.display(),
        out.display()
    );
    let o = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(flvs(&out), want, "through process substitution");
}

#[test]
fn something_else_through_a_pipe_is_one_clear_line_and_status_2() {
    let out = temp_dir("inputs-bad");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rtmpsniff"))
        .args(["read", "-", "-o", out.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET / HTTP/1.1\r\n\r\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("rtmpsniff: -: not a readable pcap or pcapng capture"),
        "{err}"
    );
}

/// The frame as Linux cooked capture (SLL) would hold it: its Ethernet header replaced.
fn as_sll(frame: &[u8]) -> Vec<u8> {
    let mut f = vec![0, 0, 0, 1, 0, 6];
    f.extend_from_slice(&frame[6..12]);
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&frame[12..14]);
    f.extend_from_slice(&frame[14..]);
    f
}

fn pcapng_block(out: &mut Vec<u8>, ty: u32, body: &[u8]) {
    let mut body = body.to_vec();
    while !body.len().is_multiple_of(4) {
        body.push(0);
    }
    let len = (body.len() + 12) as u32;
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&len.to_le_bytes());
}

#[test]
fn a_pcapng_whose_interfaces_have_different_link_types() {
    // Every other frame of a real capture moved to a second interface, as Linux cooked
    // capture: the streams must come out as from the original.
    let capture = sample("netns-multi/capture.pcap");
    let (want, _) = read_as_file(&capture);
    let mut f = Vec::new();
    let mut shb = 0x1A2B_3C4Du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&[0xff; 8]);
    pcapng_block(&mut f, 0x0A0D_0D0A, &shb);
    for lt in [1u16, 113] {
        let mut idb = lt.to_le_bytes().to_vec();
        idb.extend_from_slice(&[0, 0]);
        idb.extend_from_slice(&262_144u32.to_le_bytes());
        pcapng_block(&mut f, 1, &idb);
    }
    let records = pcap_records(&std::fs::read(&capture).unwrap());
    for (i, (sec, usec, frame, orig)) in records.iter().enumerate() {
        let (iface, frame, orig) = match i % 2 {
            0 => (0u32, frame.clone(), *orig),
            _ => (1, as_sll(frame), orig + 2),
        };
        let t = u64::from(*sec) * 1_000_000 + u64::from(*usec);
        let mut epb = iface.to_le_bytes().to_vec();
        epb.extend_from_slice(&((t >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(t as u32).to_le_bytes());
        epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        epb.extend_from_slice(&orig.to_le_bytes());
        epb.extend_from_slice(&frame);
        pcapng_block(&mut f, 6, &epb);
    }
    let dir = temp_dir("inputs-two-links");
    let path = dir.join("two-links.pcapng");
    std::fs::write(&path, &f).unwrap();
    let (got, report) = read_as_file(&path);
    assert_eq!(got, want);
    let input = &report["inputs"][0];
    assert_eq!(input["link_type"], "ethernet,linux_sll");
    assert_eq!(input["packets"], records.len());
    assert_eq!(input["error"], serde_json::Value::Null);
}

#[test]
fn mergecap_of_an_ethernet_and_a_cooked_capture() {
    require_tool("mergecap");
    // The cooked capture: the same frames as SLL, written as classic pcap.
    let dir = temp_dir("inputs-mergecap");
    let capture = sample("lo-h264-aac/capture.pcap");
    let bytes = std::fs::read(&capture).unwrap();
    let mut sll = bytes[..24].to_vec();
    sll[20..24].copy_from_slice(&113u32.to_le_bytes());
    for (sec, usec, frame, orig) in pcap_records(&bytes) {
        let frame = as_sll(&frame);
        for v in [sec, usec, frame.len() as u32, orig + 2] {
            sll.extend_from_slice(&v.to_le_bytes());
        }
        sll.extend_from_slice(&frame);
    }
    let sll_path = dir.join("cooked.pcap");
    std::fs::write(&sll_path, &sll).unwrap();
    let (want_sll, _) = read_as_file(&sll_path);
    let (want_eth, _) = read_as_file(&capture);
    assert_eq!(
        want_sll.iter().map(|f| &f.1).collect::<Vec<_>>(),
        want_eth.iter().map(|f| &f.1).collect::<Vec<_>>(),
        "the cooked copy holds the same streams"
    );
    let merged = dir.join("merged.pcapng");
    let st = Command::new("mergecap")
        .arg("-w")
        .arg(&merged)
        .arg(&capture)
        .arg(&sll_path)
        .status()
        .unwrap();
    assert!(st.success());
    let out = dir.join("out");
    let o = rtmpsniff(&["list", "--json", merged.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = rtmpsniff(&[
        "read",
        "-q",
        merged.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report = read_json(&out.join("report.json"));
    let input = &report["inputs"][0];
    assert_eq!(input["link_type"], "ethernet,linux_sll");
    assert_eq!(input["error"], serde_json::Value::Null, "{input}");
    // Both copies are read (every packet counted); being the same packets at the same times,
    // each is the other's retransmission, and the streams come out once, as from either.
    let n = pcap_records(&bytes).len() * 2;
    assert_eq!(input["packets"], n);
    assert_eq!(flvs(&out), want_eth);
}

#[test]
fn keys_in_a_secrets_block_after_the_first_packets_apply_from_there() {
    // The sample's Decryption Secrets Block moved from before the first packet to after the
    // first connection's handshake and commands (frame 32; the second connection opens at
    // frame 33): the second is decrypted as before. `read` holds no ciphertext for keys to
    // come (only `live`, whose key log grows, does), so the first is decrypted from the block
    // on, as a connection joined mid-stream.
    let capture = sample("rtmps-tls13-dsb/capture.pcapng");
    let (want, want_report) = read_as_file(&capture);
    assert_eq!(want.len(), 2);
    let bytes = std::fs::read(&capture).unwrap();
    let mut blocks = Vec::new();
    let mut at = 0;
    while at + 12 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        blocks.push(bytes[at..at + len].to_vec());
        at += len;
    }
    let ty = |b: &[u8]| u32::from_le_bytes(b[..4].try_into().unwrap());
    let dsb = blocks
        .iter()
        .position(|b| ty(b) == 10)
        .expect("a secrets block");
    let moved = blocks.remove(dsb);
    let packet_32 = blocks
        .iter()
        .enumerate()
        .filter(|(_, b)| ty(b) == 6)
        .nth(31)
        .unwrap()
        .0;
    blocks.insert(packet_32 + 1, moved);
    let dir = temp_dir("inputs-late-dsb");
    let path = dir.join("late.pcapng");
    std::fs::write(&path, blocks.concat()).unwrap();
    let (got, report) = read_as_file(&path);
    let name = |f: &(String, Vec<u8>)| f.0.clone();
    let publish = want.iter().find(|f| f.0.contains("publish")).unwrap();
    assert!(
        got.iter().any(|f| f == publish),
        "{:?}",
        got.iter().map(name).collect::<Vec<_>>()
    );
    let conns = report["connections"].as_array().unwrap();
    let wants = want_report["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 2);
    for c in conns {
        let w = wants.iter().find(|w| w["client"] == c["client"]).unwrap();
        let tls = &c["tls"];
        assert_eq!(tls["keys_from"], "pcapng", "{c}");
        assert_eq!(tls["failed_records"], 0);
        if c["client"] == wants[0]["client"] {
            assert!(
                tls["records"].as_u64() < w["tls"]["records"].as_u64(),
                "{tls}"
            );
        } else {
            assert_eq!(tls["records"], w["tls"]["records"]);
        }
    }
}
