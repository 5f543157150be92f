//! Saved captures (pcap and pcapng, through libpcap), several read as one timeline.

use std::io::{Read, Seek, SeekFrom};

use pcap::{Capture, Offline, Precision};

use crate::decode::linktype;
use crate::pipeline::Frame;
use crate::sink::report::InputReport;

/// A capture file that cannot be read at all.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct OpenError {
    pub path: String,
    pub message: String,
}

struct Input {
    cap: Capture<Offline>,
    linktype: i32,
    /// The next frame, copied out of libpcap's buffer so several inputs can be merged.
    buf: Vec<u8>,
    next: Option<(f64, u32)>,
    /// Classic pcap (whose records are a 16-byte header and the data).
    classic: bool,
    /// Bytes of the file read as whole records so far (classic pcap only).
    good_end: u64,
    report: InputReport,
}

impl Input {
    fn advance(&mut self) {
        self.next = None;
        match self.cap.next_packet() {
            Ok(p) => {
                let ts = p.header.ts.tv_sec as f64 + p.header.ts.tv_usec as f64 * 1e-9 /* nanoseconds: opened with Precision::Nano */;
                self.buf.clear();
                self.buf.extend_from_slice(p.data);
                self.next = Some((ts, p.header.len));
                self.good_end += 16 + p.header.caplen as u64;
                let r = &mut self.report;
                r.packets += 1;
                r.bytes += p.data.len() as u64;
                if p.data.len() < p.header.len as usize {
                    r.truncated_packets += 1;
                }
                r.first_time.get_or_insert(ts);
                r.last_time = Some(ts);
            }
            Err(pcap::Error::NoMorePackets) => {}
            Err(e) => {
                let r = &mut self.report;
                let offset = if self.classic {
                    Some(self.good_end)
                } else if r.path != "-" {
                    pcapng_packets_end(&r.path, r.packets)
                } else {
                    None
                };
                let size = std::fs::metadata(&r.path).ok().map(|m| m.len());
                r.error_offset = offset;
                r.error = Some(match (offset, size) {
                    (Some(o), Some(n)) => format!(
                        "{e}: cut or damaged after packet {} (byte {o} of {n})",
                        r.packets
                    ),
                    (Some(o), None) => {
                        format!("{e}: cut or damaged after packet {} (byte {o})", r.packets)
                    }
                    _ => format!("{e}: cut or damaged after packet {}", r.packets),
                });
            }
        }
    }
}

/// Capture files merged by packet time (ties go to the file named first).
pub struct FileSet {
    inputs: Vec<Input>,
    number: u64,
    current: Vec<u8>,
}

fn file_format(path: &str) -> String {
    if path == "-" {
        return "stdin".into();
    }
    let mut magic = [0u8; 4];
    match std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)) {
        Ok(()) => match magic {
            [0x0a, 0x0d, 0x0d, 0x0a] => "pcapng".into(),
            [0xd4, 0xc3, 0xb2, 0xa1] | [0xa1, 0xb2, 0xc3, 0xd4] => "pcap".into(),
            [0x4d, 0x3c, 0xb2, 0xa1] | [0xa1, 0xb2, 0x3c, 0x4d] => "pcap-ns".into(),
            _ => "unknown".into(),
        },
        Err(_) => "unknown".into(),
    }
}

/// Where the whole blocks holding the first `packets` packets of a pcapng file end (the
/// data from there on was not used), found by walking the block headers.
fn pcapng_packets_end(path: &str, packets: u64) -> Option<u64> {
    let mut f = std::fs::File::open(path).ok()?;
    let size = f.metadata().ok()?.len();
    let (mut pos, mut seen, mut little) = (0u64, 0u64, true);
    while pos + 12 <= size {
        let mut h = [0u8; 12];
        f.seek(SeekFrom::Start(pos)).ok()?;
        f.read_exact(&mut h).ok()?;
        let kind = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        if kind == 0x0a0d_0d0a {
            // Section header: its byte-order magic says how this section's numbers read.
            little = h[8..12] == [0x4d, 0x3c, 0x2b, 0x1a];
        }
        let word = |b: [u8; 4]| {
            if little {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            }
        };
        let kind = word([h[0], h[1], h[2], h[3]]);
        let len = word([h[4], h[5], h[6], h[7]]) as u64;
        let is_packet = matches!(kind, 2 | 3 | 6);
        if len < 12 || pos + len > size || (is_packet && seen == packets) {
            break;
        }
        pos += len;
        seen += is_packet as u64;
    }
    Some(pos)
}

impl FileSet {
    /// Open every file (`-` is standard input). The first one that cannot be read as a capture
    /// of a supported link type is the error.
    pub fn open(paths: &[String]) -> Result<Self, OpenError> {
        let (set, mut errors) = Self::open_each(paths);
        match errors.is_empty() {
            true => Ok(set),
            false => Err(errors.remove(0)),
        }
    }

    /// Open every file that can be read; the others are returned as errors, one per file.
    pub fn open_each(paths: &[String]) -> (Self, Vec<OpenError>) {
        let mut inputs = Vec::new();
        let mut errors = Vec::new();
        let mut stdin_used = false;
        for path in paths {
            match Self::open_one(path, &mut stdin_used) {
                Ok(input) => inputs.push(input),
                Err(e) => errors.push(e),
            }
        }
        let set = FileSet {
            inputs,
            number: 0,
            current: Vec::with_capacity(65536),
        };
        (set, errors)
    }

    fn open_one(path: &str, stdin_used: &mut bool) -> Result<Input, OpenError> {
        let err = |message: String| OpenError {
            path: path.to_string(),
            message,
        };
        if path == "-" {
            if *stdin_used {
                return Err(err("standard input can be read only once".into()));
            }
            *stdin_used = true;
        } else {
            let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
            if meta.is_dir() {
                return Err(err("is a directory, not a capture file".into()));
            }
        }
        let cap = if path == "-" {
            // SAFETY: descriptor 0 is ours for the life of the process and nothing else
            // reads it.
            unsafe { Capture::from_raw_fd_with_precision(0, Precision::Nano) }
        } else {
            Capture::from_file_with_precision(path, Precision::Nano)
        }
        .map_err(|e| err(format!("not a readable pcap or pcapng capture ({e})")))?;
        let lt = cap.get_datalink().0;
        if !linktype::supported(lt) {
            return Err(err(format!("link type {lt} is not supported")));
        }
        let classic = cap.major_version() == 2;
        let mut input = Input {
            cap,
            linktype: lt,
            buf: Vec::with_capacity(65536),
            next: None,
            classic,
            good_end: 24,
            report: InputReport {
                path: path.to_string(),
                format: file_format(path),
                link_type: linktype::name(lt).into(),
                packets: 0,
                bytes: 0,
                truncated_packets: 0,
                first_time: None,
                last_time: None,
                error: None,
                error_offset: None,
                kernel: None,
            },
        };
        input.advance();
        Ok(input)
    }

    /// The next frame in time order, or `None` at the end of every input.
    pub fn next_frame(&mut self) -> Option<Frame<'_>> {
        let mut best: Option<(usize, f64)> = None;
        for (i, inp) in self.inputs.iter().enumerate() {
            if let Some((ts, _)) = inp.next
                && best.is_none_or(|(_, b)| ts < b)
            {
                best = Some((i, ts));
            }
        }
        let (i, _) = best?;
        self.number += 1;
        let inp = &mut self.inputs[i];
        let (ts, orig_len) = inp.next.take().expect("chosen input has a frame");
        // Hand the frame out of `current` while the input reads ahead into the other buffer.
        std::mem::swap(&mut inp.buf, &mut self.current);
        inp.advance();
        Some(Frame {
            ts,
            number: self.number,
            linktype: self.inputs[i].linktype,
            data: &self.current,
            orig_len,
        })
    }

    /// What was read from each input so far.
    pub fn reports(&self) -> Vec<InputReport> {
        self.inputs.iter().map(|i| i.report.clone()).collect()
    }
}
