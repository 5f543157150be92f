//! The search for chunk headers (lock-on) against bytes made to look like them: its work per
//! byte is bounded, its buffer counted and capped, and a direction that shows no RTMP chunk
//! structure gives up and says so.

use rtmpsniff::flow::Dir;

use crate::synthetic::{self, Opts, Session};
use crate::util::*;

/// Hostile byte patterns, each `len` bytes long.
///
/// - `c4`: fmt-0 headers of 90,000-byte video messages on chunk stream 4 whose bodies are all
///   0xc4 (a continuation header of chunk stream 4 at every chunk size): every candidate
///   reads a whole message at every chunk size before its body proves implausible.
/// - `wait`: a believable audio message, then the header of a 500,000-byte video message
///   whose body is all 0xc4: a candidate that parses as far as the bytes go, waited on.
/// - `headers`: a plausible 12-byte fmt-0 header every 16 bytes, lengths that never add up.
/// - `messages`: three believable small messages, then a byte that breaks them, again and
///   again one byte further on: candidates that almost lock.
pub fn hostile_bytes(kind: &str, len: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(len + 100_000);
    let mut k: u32 = 0;
    while b.len() < len {
        k = k.wrapping_add(1);
        match kind {
            "c4" => {
                b.extend_from_slice(&[0x04, 0, 0, 40]);
                b.extend_from_slice(&90_000u32.to_be_bytes()[1..]);
                b.push(9);
                b.extend_from_slice(&1u32.to_le_bytes());
                b.resize(b.len() + 90_000, 0xc4);
            }
            "wait" => {
                b.extend_from_slice(&[0x04, 0, 0, 10, 0, 0, 6, 8, 1, 0, 0, 0]);
                b.extend_from_slice(&[0xaf, 0x01, 0x21, 0x10, 0x04, 0x60]);
                b.extend_from_slice(&[0x04, 0, 0, 20, 0x07, 0xa1, 0x20, 9, 1, 0, 0, 0]);
                b.resize(b.len() + 500_000, 0xc4);
            }
            "headers" => {
                let l = 200 + (k * 7919) % 60_000;
                b.extend_from_slice(&[0x06, 0, (k >> 8) as u8, k as u8]);
                b.extend_from_slice(&l.to_be_bytes()[1..]);
                b.push(if k.is_multiple_of(2) { 8 } else { 9 });
                b.extend_from_slice(&1u32.to_le_bytes());
                b.extend_from_slice(&[0xaf, 0x01, 0x21, 0x10]);
            }
            _ => {
                for m in 0..3u32 {
                    b.extend_from_slice(&[0x06, 0, 0, (k + m) as u8]);
                    b.extend_from_slice(&[0, 0, 6, 8]);
                    b.extend_from_slice(&1u32.to_le_bytes());
                    b.extend_from_slice(&[0xaf, 0x01, 0x21, 0x10, 0x04, 0x60]);
                }
                b.push(0x3f);
                b.extend(std::iter::repeat_n(0x46, (k % 5) as usize));
            }
        }
    }
    b.truncate(len);
    b
}

/// A capture of `conns` connections carrying `len` hostile bytes of `kind` each: after a real
/// handshake and publish (`after_handshake`), or joined mid-stream (no SYN, no handshake).
pub fn hostile_frames(kind: &str, len: usize, conns: u16, after_handshake: bool) -> Vec<u8> {
    let mut frames = Vec::new();
    for c in 0..conns {
        let mut s = Session::new(1935);
        s.client.set_port(30000 + c);
        let mut writes = if after_handshake {
            let o = Opts {
                frames: 4,
                ..Opts::default()
            };
            let mut w = synthetic::publish_session(&o);
            w.pop(); // deleteStream
            w
        } else {
            Vec::new()
        };
        let mut bytes = hostile_bytes(kind, len);
        if after_handshake {
            // A continuation header of a chunk stream never seen: the reader loses its place
            // and searches, knowing the publish's chunk streams.
            bytes.insert(0, 0xdf);
        }
        for piece in bytes.chunks(64 << 10) {
            writes.push((Dir::ClientToServer, piece.to_vec()));
        }
        let mut f = s.frames(&writes, 1400);
        if !after_handshake {
            f.drain(..3); // SYN, SYN-ACK, ACK: the flow is joined mid-stream
        }
        frames.extend(f);
    }
    frames.sort_by(|a, b| a.0.total_cmp(&b.0));
    synthetic::pcap_file(&frames)
}

/// Writes the captures `bench/hostile.sh` times. Run by hand (ignored):
/// `RTMPSNIFF_CAPTURE=/tmp/h.pcap RTMPSNIFF_KIND=c4 RTMPSNIFF_BYTES=16000000
/// RTMPSNIFF_AFTER_HANDSHAKE=1 cargo test --test it hostile_lockon_capture -- --ignored`.
#[test]
#[ignore]
fn hostile_lockon_capture() {
    let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let path = var("RTMPSNIFF_CAPTURE", "/tmp/hostile.pcap");
    let kind = var("RTMPSNIFF_KIND", "c4");
    let len: usize = var("RTMPSNIFF_BYTES", "16000000").parse().unwrap();
    let conns: u16 = var("RTMPSNIFF_CONNECTIONS", "1").parse().unwrap();
    let after = var("RTMPSNIFF_AFTER_HANDSHAKE", "0") == "1";
    std::fs::write(&path, hostile_frames(&kind, len, conns, after)).unwrap();
}

fn read_hostile(kind: &str, len: usize, after: bool, limits: &[&str]) -> serde_json::Value {
    let dir = temp_dir(&format!("lockon-{kind}-{after}"));
    let cap = dir.join("h.pcap");
    std::fs::write(&cap, hostile_frames(kind, len, 1, after)).unwrap();
    let mut args = vec!["read", cap.to_str().unwrap(), "-q"];
    for l in limits {
        args.extend(["--limit", l]);
    }
    let out = dir.join("o");
    args.extend(["-o", out.to_str().unwrap()]);
    let r = rtmpsniff(&args);
    assert!(r.status.code().is_some_and(|c| c <= 1), "{r:?}");
    read_json(&out.join("report.json"))
}

/// A direction that shows no chunk structure in `lockon_bytes` gives up, says so in its
/// connection (after a real publish) and in the limits, and passes the rest over.
#[test]
fn a_direction_that_never_locks_gives_up_and_says_so() {
    for kind in ["c4", "wait", "headers"] {
        let r = read_hostile(kind, 3 << 20, true, &["lockon_bytes=1M"]);
        let limit = r["limits"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == "lockon_bytes")
            .unwrap();
        assert_eq!(limit["value"], 1 << 20);
        assert_eq!(limit["hits"], 1, "{kind}");
        let c = &r["connections"][0];
        let g = &c["gave_up"][0];
        assert_eq!(g["direction"], "client_to_server", "{kind}");
        assert_eq!(g["after_lock"], true);
        let bytes = g["bytes"].as_u64().unwrap();
        assert!(
            (1 << 20..(1 << 20) + (64 << 10)).contains(&bytes),
            "{kind}: {bytes}"
        );
        assert_eq!(
            g["reason"],
            format!("no RTMP chunk structure after {bytes} bytes")
        );
        // The publish before the hostile bytes is still there.
        assert_eq!(c["streams"][0]["video_frames"], 4, "{kind}");
    }
    // Joined mid-stream, never locked: counted (a port given, so the connection is listed).
    let r = read_hostile("c4", 3 << 20, false, &["lockon_bytes=1M"]);
    let c = &r["connections"][0];
    assert_eq!(c["gave_up"][0]["after_lock"], false);
    assert_eq!(c["locks"].as_array().unwrap().len(), 0);
}
