//! Saved captures, several read as one timeline. Each input is opened once and its format
//! told from its first bytes, so pipes, FIFOs and standard input read like files: classic pcap
//! and pcapng are read here; anything else in a regular file (libpcap's rarer pcap variants)
//! is left to libpcap, which also says what is wrong with it.

use std::fs::File;
use std::io::{Cursor, Read};

use pcap::{Capture, Offline, Precision};

use super::classic::{FileHeader, PcapReader};
use super::compress::{Compression, Decompressed};
use super::filter::{Bpf, PacketSelection, SelectionReport};
use super::pcapng::PcapngReader;

use super::{Frame, InputReport, linktype};

/// A capture file that cannot be read at all.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct OpenError {
    pub path: String,
    pub message: String,
}

/// The one open stream of an input: a file, a pipe or standard input.
type Stream = Box<dyn Read + Send>;

/// Where an input's frames come from.
enum Source {
    /// Classic pcap, read here: frames are handed out of a large read buffer without a copy.
    Pcap(PcapReader<Stream>),
    /// pcapng, read here the same way; its interfaces may have different link types.
    Pcapng(PcapngReader<Stream>),
    /// Other formats of a regular file, through libpcap. Each frame is copied out of libpcap's
    /// buffer so that the next one can be read ahead (to merge several inputs by time).
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
    /// Time, length on the wire and link type of the frame read ahead, if there is one.
    next: Option<(f64, u32, i32)>,
    report: InputReport,
}

impl Input {
    /// Read the next frame ahead (the one read before is no longer needed).
    fn advance(&mut self) {
        self.next = None;
        let (ts, data_len, orig_len, linktype) = match &mut self.source {
            Source::Pcap(r) => {
                let good_end = r.offset();
                match r.advance() {
                    Ok(Some(h)) => (h.ts, h.caplen, h.orig_len, self.linktype),
                    Ok(None) => return,
                    Err(e) => return self.failed(&e, Some(good_end)),
                }
            }
            Source::Pcapng(r) => match r.advance() {
                Ok(Some(p)) => (p.ts, p.caplen, p.orig_len, p.linktype),
                Ok(None) => return,
                Err(e) => {
                    let good_end = r.offset();
                    return self.failed(&e, Some(good_end));
                }
            },
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
                    (ts, p.data.len(), p.header.len, self.linktype)
                }
                Err(pcap::Error::NoMorePackets) => return,
                Err(e) => {
                    let offset = classic.then_some(*good_end);
                    return self.failed(&e, offset);
                }
            },
        };
        self.next = Some((ts, orig_len, linktype));
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
        // The size of a regular file (a stat, not a second open; pipes have none).
        let size = match r.path.as_str() {
            "-" => None,
            p => std::fs::metadata(p)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len()),
        };
        r.error_offset = offset;
        r.error = Some(match (offset, size) {
            // A compressed file's size is not the capture's: the offset is in the capture.
            (Some(o), _) if r.compression.is_some() => format!(
                "{e}: cut or damaged after packet {} (byte {o} of the capture inside)",
                r.packets
            ),
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

    /// The TLS key logs of the pcapng Decryption Secrets Blocks read since the last call.
    fn take_secrets(&mut self) -> Vec<Vec<u8>> {
        match &mut self.source {
            Source::Pcapng(r) if r.has_secrets() => r.take_secrets(),
            _ => Vec::new(),
        }
    }

    /// The bytes of the frame read ahead.
    fn data(&self) -> &[u8] {
        match &self.source {
            Source::Pcap(r) => r.data(),
            Source::Pcapng(r) => r.data(),
            Source::Libpcap { buf, .. } => buf,
        }
    }
}

/// Capture files merged by packet time (ties go to the file named first).
pub struct FileSet {
    inputs: Vec<Input>,
    /// Which packets are read at all (`--filter`, `--start`, `--end`, `--count`).
    selection: PacketSelection,
    bpf: Option<Bpf>,
    /// Packets handed out (kept by the selection).
    kept: u64,
    count_reached: bool,
    /// TLS key logs carried in the inputs (pcapng Decryption Secrets Blocks), in input order.
    secrets: Vec<Vec<u8>>,
    number: u64,
    /// The input whose frame was handed out last: it reads ahead on the next call.
    current: Option<usize>,
}

/// What the first four bytes of an input say it is.
fn format_of(magic: [u8; 4]) -> &'static str {
    match magic {
        [0x0a, 0x0d, 0x0d, 0x0a] => "pcapng",
        [0xd4, 0xc3, 0xb2, 0xa1] | [0xa1, 0xb2, 0xc3, 0xd4] => "pcap",
        [0x4d, 0x3c, 0xb2, 0xa1] | [0xa1, 0xb2, 0x3c, 0x4d] => "pcap-ns",
        _ => "unknown",
    }
}

/// The report's name for the link types of a pcapng file's interfaces: `ethernet`, or
/// `ethernet,linux_sll` when they differ.
fn link_types_name(lts: &[i32]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for &lt in lts {
        let n = linktype::name(lt);
        if !names.contains(&n) {
            names.push(n);
        }
    }
    match names.is_empty() {
        true => linktype::name(-1).into(),
        false => names.join(","),
    }
}

/// Compile the filter for the link types an input has shown: an error if it compiles for
/// none of them (libpcap's message, as tcpdump gives it).
fn compile_for(bpf: &mut Bpf, input: &Input) -> Result<(), OpenError> {
    let lts = match &input.source {
        Source::Pcapng(r) if !r.linktypes().is_empty() => r.linktypes().to_vec(),
        _ => vec![input.linktype],
    };
    let mut first_err = None;
    for &lt in &lts {
        match bpf.compile(lt) {
            Ok(()) => return Ok(()),
            Err(e) => {
                first_err.get_or_insert((lt, e));
            }
        }
    }
    let (lt, e) = first_err.unwrap_or((input.linktype, "does not compile".into()));
    Err(OpenError {
        path: input.report.path.clone(),
        message: format!("--filter: {e} (link type {})", linktype::name(lt)),
    })
}

/// Reads up to `buf.len()` bytes, fewer only at the end of the stream.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
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
        Self::open_each_selecting(paths, PacketSelection::default())
    }

    /// [`open_each`](Self::open_each), reading only the packets `selection` keeps. An input
    /// for none of whose link types the filter compiles is an error (libpcap's message).
    pub fn open_each_selecting(
        paths: &[String],
        selection: PacketSelection,
    ) -> (Self, Vec<OpenError>) {
        let mut inputs = Vec::new();
        let mut errors = Vec::new();
        let mut secrets = Vec::new();
        let mut stdin_used = false;
        let mut bpf = selection.filter.as_deref().map(Bpf::new);
        for path in paths {
            let opened = Self::open_one(path, &mut stdin_used).and_then(|input| match &mut bpf {
                Some(bpf) => compile_for(bpf, &input).map(|()| input),
                None => Ok(input),
            });
            match opened {
                Ok(mut input) => {
                    // Key logs before the first packet (read ahead on opening).
                    secrets.extend(input.take_secrets());
                    inputs.push(input)
                }
                Err(e) => errors.push(e),
            }
        }
        let set = FileSet {
            inputs,
            selection,
            bpf,
            kept: 0,
            count_reached: false,
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
        let not_capture = |why: &dyn std::fmt::Display| {
            err(format!("not a readable pcap or pcapng capture ({why})"))
        };
        // The one open of the input: its format comes from the first bytes of this stream.
        let (mut stream, regular): (Stream, bool) = if path == "-" {
            (Box::new(std::io::stdin()), false)
        } else {
            let f = File::open(path).map_err(|e| err(e.to_string()))?;
            let regular = f.metadata().is_ok_and(|m| m.is_file());
            (Box::new(f), regular)
        };
        let mut magic = [0u8; 4];
        let got = read_full(&mut stream, &mut magic).map_err(|e| not_capture(&e))?;
        if got < 4 {
            return Err(not_capture(&format_args!(
                "{got} bytes, too short for a file header"
            )));
        }
        // A compressed capture: the same stream, decoded, and its first bytes read again.
        let compression = Compression::of_magic(magic);
        if let Some(kind) = compression {
            let raw: Stream = Box::new(Cursor::new(magic).chain(stream));
            stream = Box::new(Decompressed::new(kind, raw).map_err(|e| not_capture(&e))?);
            let inside = |why: &dyn std::fmt::Display| {
                err(format!(
                    "not a readable pcap or pcapng capture inside the {} compression ({why})",
                    kind.name()
                ))
            };
            let got = read_full(&mut stream, &mut magic).map_err(|e| inside(&e))?;
            if got < 4 {
                return Err(inside(&format_args!(
                    "{got} bytes, too short for a file header"
                )));
            }
            if !matches!(format_of(magic), "pcap" | "pcap-ns" | "pcapng") {
                return Err(inside(&format_args!(
                    "unknown file format, first bytes {:02x} {:02x} {:02x} {:02x}",
                    magic[0], magic[1], magic[2], magic[3]
                )));
            }
        }
        let format = format_of(magic);
        let classic = match format {
            "pcap" | "pcap-ns" => {
                let mut h = [0u8; 24];
                h[..4].copy_from_slice(&magic);
                let got = read_full(&mut stream, &mut h[4..]).map_err(|e| not_capture(&e))?;
                if got < 20 {
                    return Err(not_capture(&format_args!(
                        "truncated dump file; tried to read 24 file header bytes, only got {}",
                        got + 4
                    )));
                }
                FileHeader::parse(&h)
            }
            _ => None,
        };
        let (source, lt) = match classic {
            Some(header) => (
                Source::Pcap(PcapReader::new(stream, header)),
                header.linktype,
            ),
            None if format == "pcapng" => {
                let stream: Stream = Box::new(Cursor::new(magic).chain(stream));
                (Source::Pcapng(PcapngReader::new(stream)), -1)
            }
            None if regular && compression.is_none() => {
                // Not a format read here: libpcap opens the file by name (it reads the rarer
                // pcap variants, and says what is wrong with anything else).
                drop(stream);
                let cap = Capture::from_file_with_precision(path, Precision::Nano)
                    .map_err(|e| not_capture(&e))?;
                let lt = cap.get_datalink().0;
                let source = Source::Libpcap {
                    classic: cap.major_version() == 2,
                    cap,
                    buf: Vec::with_capacity(65536),
                    good_end: 24,
                };
                (source, lt)
            }
            None => {
                let inside = match compression {
                    Some(c) => format!(" inside the {} compression", c.name()),
                    None => String::new(),
                };
                return Err(not_capture(&format_args!(
                    "unknown file format{inside}, first bytes {:02x} {:02x} {:02x} {:02x}",
                    magic[0], magic[1], magic[2], magic[3]
                )));
            }
        };
        let mut report =
            InputReport::new(path.to_string(), format.into(), linktype::name(lt).into());
        report.compression = compression.map(Compression::name);
        let mut input = Input {
            source,
            linktype: lt,
            next: None,
            report,
        };
        input.advance();
        if let Source::Pcapng(r) = &input.source {
            if input.report.packets == 0
                && let Some(e) = &input.report.error
            {
                // Damaged before its first packet (libpcap too refuses such a file).
                return Err(not_capture(e));
            }
            // The interfaces described before the first packet say what the file holds.
            let lts = r.linktypes();
            if !lts.is_empty() && !lts.iter().any(|&l| linktype::supported(l)) {
                return Err(err(format!("link type {} is not supported", lts[0])));
            }
            input.report.link_type = link_types_name(lts);
            return Ok(input);
        }
        if !linktype::supported(lt) {
            return Err(err(format!("link type {lt} is not supported")));
        }
        Ok(input)
    }

    /// Read ahead in the input whose frame was handed out last (it is done with).
    fn read_ahead(&mut self) {
        if let Some(i) = self.current.take() {
            self.inputs[i].advance();
        }
    }

    /// TLS key logs of Decryption Secrets Blocks found after the first packet, in the input
    /// whose frame was handed out last, before the frame that follows them is handed out.
    pub fn take_new_secrets(&mut self) -> Vec<Vec<u8>> {
        self.read_ahead();
        let mut out = Vec::new();
        for inp in &mut self.inputs {
            out.extend(inp.take_secrets());
        }
        out
    }

    /// The next frame in time order that the selection keeps, or `None` at the end of every
    /// input (or once `--count` frames were handed out). Frames skipped keep their numbers.
    pub fn next_frame(&mut self) -> Option<Frame<'_>> {
        let i = loop {
            if self.selection.count.is_some_and(|c| self.kept >= c) {
                self.count_reached = true;
                return None;
            }
            self.read_ahead();
            let mut best: Option<(usize, f64)> = None;
            for (i, inp) in self.inputs.iter().enumerate() {
                if let Some((ts, _, _)) = inp.next
                    && best.is_none_or(|(_, b)| ts < b)
                {
                    best = Some((i, ts));
                }
            }
            let (i, ts) = best?;
            self.number += 1;
            self.current = Some(i);
            let inp = &mut self.inputs[i];
            let keep = self.selection.in_time(ts)
                && match &mut self.bpf {
                    Some(bpf) => {
                        let (_, orig_len, linktype) = inp.next.expect("chosen input has a frame");
                        bpf.matches(linktype, inp.data(), orig_len)
                    }
                    None => true,
                };
            if keep {
                break i;
            }
            inp.report.skipped_packets += 1;
        };
        self.kept += 1;
        let inp = &self.inputs[i];
        let (ts, orig_len, linktype) = inp.next.expect("chosen input has a frame");
        Some(Frame {
            ts,
            number: self.number,
            linktype,
            data: inp.data(),
            orig_len,
        })
    }

    /// The TLS key logs the inputs carry before their first packet (pcapng Decryption Secrets
    /// Blocks; later ones come from [`take_new_secrets`](Self::take_new_secrets)).
    pub fn decryption_secrets(&self) -> &[Vec<u8>] {
        &self.secrets
    }

    /// The selection as the report records it.
    pub fn selection_report(&self) -> SelectionReport {
        let s = &self.selection;
        SelectionReport {
            filter: s.filter.clone(),
            start_time: s.start,
            end_time: s.end,
            count: s.count,
            count_reached: self.count_reached,
        }
    }

    /// What was read from each input so far.
    pub fn reports(&self) -> Vec<InputReport> {
        let report = |i: &Input| {
            let mut r = i.report.clone();
            if let Source::Pcapng(p) = &i.source {
                // Interfaces described after the first packet count too.
                r.link_type = link_types_name(p.linktypes());
            }
            r
        };
        self.inputs.iter().map(report).collect()
    }
}
