//! Saved captures (classic pcap read here, pcapng and standard input through libpcap),
//! several read as one timeline.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use pcap::{Capture, Offline, Precision};

use super::classic::{FileHeader, PcapReader};

use super::{Frame, InputReport, linktype};

/// A capture file that cannot be read at all.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct OpenError {
    pub path: String,
    pub message: String,
}

/// Where an input's frames come from.
enum Source {
    /// Classic pcap, read here: frames are handed out of a large read buffer without a copy.
    Pcap(PcapReader<File>),
    /// pcapng and standard input, through libpcap. Each frame is copied out of libpcap's buffer
    /// so that the next one can be read ahead (to merge several inputs by time).
    Libpcap {
        cap: Capture<Offline>,
        buf: Vec<u8>,
        /// Classic pcap (whose records are a 16-byte header and the data).
        classic: bool,
        /// Bytes of the file read as whole records so far (classic pcap only).
        good_end: u64,
    },
}

struct Input {
    source: Source,
    linktype: i32,
    /// Time and length on the wire of the frame read ahead, if there is one.
    next: Option<(f64, u32)>,
    report: InputReport,
}

impl Input {
    /// Read the next frame ahead (the one read before is no longer needed).
    fn advance(&mut self) {
        self.next = None;
        let (ts, data_len, orig_len) = match &mut self.source {
            Source::Pcap(r) => {
                let good_end = r.offset();
                match r.advance() {
                    Ok(Some(h)) => (h.ts, h.caplen, h.orig_len),
                    Ok(None) => return,
                    Err(e) => return self.failed(&e, Some(good_end)),
                }
            }
            Source::Libpcap {
                cap,
                buf,
                classic,
                good_end,
            } => match cap.next_packet() {
                Ok(p) => {
                    // Opened with Precision::Nano: the microseconds field holds nanoseconds.
                    let ts = p.header.ts.tv_sec as f64 + p.header.ts.tv_usec as f64 * 1e-9;
                    buf.clear();
                    buf.extend_from_slice(p.data);
                    *good_end += 16 + p.header.caplen as u64;
                    (ts, p.data.len(), p.header.len)
                }
                Err(pcap::Error::NoMorePackets) => return,
                Err(e) => {
                    let offset = if *classic {
                        Some(*good_end)
                    } else if self.report.path != "-" {
                        pcapng_packets_end(&self.report.path, self.report.packets)
                    } else {
                        None
                    };
                    return self.failed(&e, offset);
                }
            },
        };
        self.next = Some((ts, orig_len));
        let r = &mut self.report;
        r.packets += 1;
        r.bytes += data_len as u64;
        if data_len < orig_len as usize {
            r.truncated_packets += 1;
        }
        r.first_time.get_or_insert(ts);
        r.last_time = Some(ts);
    }

    /// The input cannot be read past `offset` (where the last whole record ends, when known).
    fn failed(&mut self, e: &dyn std::fmt::Display, offset: Option<u64>) {
        let r = &mut self.report;
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

    /// The bytes of the frame read ahead.
    fn data(&self) -> &[u8] {
        match &self.source {
            Source::Pcap(r) => r.data(),
            Source::Libpcap { buf, .. } => buf,
        }
    }
}

/// Capture files merged by packet time (ties go to the file named first).
pub struct FileSet {
    inputs: Vec<Input>,
    /// TLS key logs carried in the inputs (pcapng Decryption Secrets Blocks), in input order.
    secrets: Vec<Vec<u8>>,
    number: u64,
    /// The input whose frame was handed out last: it reads ahead on the next call.
    current: Option<usize>,
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

/// A classic pcap file opened for [`PcapReader`], or `None` when it is something else (left
/// to libpcap, which also says what is wrong with it).
fn open_classic(path: &str) -> Option<(File, FileHeader)> {
    let mut f = File::open(path).ok()?;
    let mut h = [0u8; 24];
    f.read_exact(&mut h).ok()?;
    let header = FileHeader::parse(&h)?;
    Some((f, header))
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
        let mut secrets = Vec::new();
        let mut stdin_used = false;
        for path in paths {
            match Self::open_one(path, &mut stdin_used) {
                Ok(input) => {
                    if input.report.format == "pcapng" {
                        // Unreadable secrets are no reason not to read the packets.
                        secrets
                            .extend(super::dsb::secrets_of_file(path.as_ref()).unwrap_or_default());
                    }
                    inputs.push(input)
                }
                Err(e) => errors.push(e),
            }
        }
        let set = FileSet {
            inputs,
            secrets,
            number: 0,
            current: None,
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
        let classic = match path {
            "-" => None,
            _ => open_classic(path),
        };
        let (source, lt) = match classic {
            Some((f, header)) => (Source::Pcap(PcapReader::new(f, header)), header.linktype),
            None => {
                let cap = if path == "-" {
                    // SAFETY: descriptor 0 is ours for the life of the process and nothing
                    // else reads it.
                    unsafe { Capture::from_raw_fd_with_precision(0, Precision::Nano) }
                } else {
                    Capture::from_file_with_precision(path, Precision::Nano)
                }
                .map_err(|e| err(format!("not a readable pcap or pcapng capture ({e})")))?;
                let lt = cap.get_datalink().0;
                let source = Source::Libpcap {
                    classic: cap.major_version() == 2,
                    cap,
                    buf: Vec::with_capacity(65536),
                    good_end: 24,
                };
                (source, lt)
            }
        };
        if !linktype::supported(lt) {
            return Err(err(format!("link type {lt} is not supported")));
        }
        let mut input = Input {
            source,
            linktype: lt,
            next: None,
            report: InputReport::new(
                path.to_string(),
                file_format(path),
                linktype::name(lt).into(),
            ),
        };
        input.advance();
        Ok(input)
    }

    /// The next frame in time order, or `None` at the end of every input.
    pub fn next_frame(&mut self) -> Option<Frame<'_>> {
        if let Some(i) = self.current.take() {
            // The frame handed out last is done with: read ahead in its input.
            self.inputs[i].advance();
        }
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
        self.current = Some(i);
        let inp = &self.inputs[i];
        let (ts, orig_len) = inp.next.expect("chosen input has a frame");
        Some(Frame {
            ts,
            number: self.number,
            linktype: inp.linktype,
            data: inp.data(),
            orig_len,
        })
    }

    /// The TLS key logs the inputs carry (pcapng Decryption Secrets Blocks before their first
    /// packet; not read from standard input).
    pub fn decryption_secrets(&self) -> &[Vec<u8>] {
        &self.secrets
    }

    /// What was read from each input so far.
    pub fn reports(&self) -> Vec<InputReport> {
        self.inputs.iter().map(|i| i.report.clone()).collect()
    }
}
