//! Which packets of saved captures are read at all, as tcpdump and tshark choose them: a BPF
//! capture filter (`-f`, compiled by libpcap for each link type and run on each frame as
//! `tcpdump -r FILE EXPR` runs it), a time range (`--start`, `--end`, as editcap's `-A`/`-B`:
//! from the start, inclusive, to the end, exclusive) and a count (`-c`, packets kept, as
//! tcpdump's). Packets left out are skipped before decoding; they keep their frame numbers.

use std::ffi::{c_int, c_uint, c_void};

use pcap::{BpfProgram, Capture, Linktype};
use serde::Serialize;

/// What `--filter`, `--start`, `--end` and `--count` ask for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PacketSelection {
    /// A BPF expression (tcpdump's syntax).
    pub filter: Option<String>,
    /// Seconds since the epoch: packets before it are skipped.
    pub start: Option<f64>,
    /// Seconds since the epoch: packets at or after it are skipped.
    pub end: Option<f64>,
    /// Stop after this many packets kept.
    pub count: Option<u64>,
}

impl PacketSelection {
    /// Whether any packet may be left out.
    pub fn is_active(&self) -> bool {
        *self != PacketSelection::default()
    }

    /// Whether a packet's time is inside the range.
    pub fn in_time(&self, ts: f64) -> bool {
        self.start.is_none_or(|s| ts >= s) && self.end.is_none_or(|e| ts < e)
    }
}

/// The report's record of the selection (`packet_selection`; the sink adds the times in
/// words).
#[derive(Clone, Debug, Default, Serialize)]
pub struct SelectionReport {
    pub filter: Option<String>,
    pub start_time: Option<f64>,
    pub end_time: Option<f64>,
    pub count: Option<u64>,
    /// The run stopped because `count` packets were kept.
    pub count_reached: bool,
}

/// libpcap's `struct bpf_program`, which `pcap::BpfProgram` wraps (`repr(transparent)`).
#[repr(C)]
struct RawProgram {
    bf_len: c_uint,
    bf_insns: *const c_void,
}

/// libpcap's `struct pcap_pkthdr`.
#[repr(C)]
struct PacketHeader {
    ts: libc::timeval,
    caplen: u32,
    len: u32,
}

// The program is read through its C layout (the crate's `filter` gives the captured length as
// the length on the wire, which `len`, `greater` and `less` would then misjudge for frames cut
// by the snap length).
const _: () = assert!(std::mem::size_of::<BpfProgram>() == std::mem::size_of::<RawProgram>());

unsafe extern "C" {
    fn pcap_offline_filter(fp: *const RawProgram, h: *const PacketHeader, pkt: *const u8) -> c_int;
}

/// Whether `program` accepts a frame of `data` whose length on the wire is `orig_len`: what
/// libpcap's `pcap_offline_filter` says, as when reading a file with a filter.
fn accepts(program: &BpfProgram, data: &[u8], orig_len: u32) -> bool {
    let header = PacketHeader {
        ts: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        caplen: u32::try_from(data.len()).unwrap_or(u32::MAX),
        len: orig_len.max(u32::try_from(data.len()).unwrap_or(u32::MAX)),
    };
    let raw = (program as *const BpfProgram).cast::<RawProgram>();
    // SAFETY: BpfProgram is repr(transparent) over libpcap's bpf_program (its size is checked
    // above); the program, the header and the frame all live across the call, and libpcap
    // reads at most `caplen` bytes of the frame.
    unsafe { pcap_offline_filter(raw, &header, data.as_ptr()) > 0 }
}

/// A BPF expression compiled for each link type it meets.
pub struct Bpf {
    expression: String,
    /// Per link type, its program (`None`: it does not compile there, so nothing matches).
    programs: Vec<(i32, Option<BpfProgram>)>,
}

impl Bpf {
    pub fn new(expression: &str) -> Self {
        Bpf {
            expression: expression.to_string(),
            programs: Vec::new(),
        }
    }

    /// Compile the expression for `linktype` (libpcap's DLT), or libpcap's reason why not.
    pub fn compile(&mut self, linktype: i32) -> Result<(), String> {
        if let Some((_, p)) = self.programs.iter().find(|(l, _)| *l == linktype) {
            return match p {
                Some(_) => Ok(()),
                None => Err(self.why_not(linktype)),
            };
        }
        let made = Capture::dead(Linktype(linktype))
            .map_err(|e| e.to_string())
            .and_then(|dead| {
                dead.compile(&self.expression, true)
                    .map_err(|e| e.to_string())
            });
        let (program, result) = match made {
            Ok(p) => (Some(p), Ok(())),
            Err(e) => (None, Err(e)),
        };
        // A handful of link types at most in any capture; bounded all the same.
        if self.programs.len() < 256 {
            self.programs.push((linktype, program));
        }
        result
    }

    fn why_not(&self, linktype: i32) -> String {
        Capture::dead(Linktype(linktype))
            .and_then(|dead| dead.compile(&self.expression, true).map(|_| ()))
            .err()
            .map_or_else(|| "does not compile".to_string(), |e| e.to_string())
    }

    /// Whether a frame of `linktype` passes (a link type the expression does not compile for
    /// passes nothing).
    pub fn matches(&mut self, linktype: i32, data: &[u8], orig_len: u32) -> bool {
        if !self.programs.iter().any(|(l, _)| *l == linktype) {
            let _ = self.compile(linktype);
        }
        match self.programs.iter().find(|(l, _)| *l == linktype) {
            Some((_, Some(p))) => accepts(p, data, orig_len),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet frame of IPv4/TCP from port `sport` to 1935, `pad` bytes of payload.
    fn frame(sport: u16, pad: usize) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let total = (20 + 20 + pad) as u16;
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&ip);
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&sport.to_be_bytes());
        tcp[2..4].copy_from_slice(&1935u16.to_be_bytes());
        tcp[12] = 0x50;
        f.extend_from_slice(&tcp);
        f.extend(std::iter::repeat_n(0u8, pad));
        f
    }

    #[test]
    fn libpcap_decides_each_frame() {
        let mut bpf = Bpf::new("tcp src port 40000");
        bpf.compile(1).unwrap();
        let (a, b) = (frame(40000, 10), frame(40001, 10));
        assert!(bpf.matches(1, &a, a.len() as u32));
        assert!(!bpf.matches(1, &b, b.len() as u32));
        // Not Ethernet: the same bytes read as raw IP are not TCP from that port.
        assert!(!bpf.matches(12, &a, a.len() as u32));
    }

    #[test]
    fn the_length_on_the_wire_is_the_frames_not_what_was_captured() {
        let mut bpf = Bpf::new("greater 1000");
        let f = frame(40000, 100);
        assert!(!bpf.matches(1, &f, f.len() as u32));
        // Cut by the snap length: 1500 bytes on the wire, as tcpdump judges it.
        assert!(bpf.matches(1, &f, 1500));
    }

    #[test]
    fn an_expression_that_does_not_compile_says_why() {
        let mut bpf = Bpf::new("tcp prt 1935");
        let e = bpf.compile(1).unwrap_err();
        assert!(e.contains("syntax error"), "{e}");
        assert_eq!(bpf.compile(1).unwrap_err(), e);
        let f = frame(40000, 10);
        assert!(!bpf.matches(1, &f, f.len() as u32));
    }

    #[test]
    fn time_range_is_from_the_start_inclusive_to_the_end_exclusive() {
        let s = PacketSelection {
            start: Some(10.0),
            end: Some(20.0),
            ..Default::default()
        };
        assert!(s.is_active());
        assert!(!s.in_time(9.999) && s.in_time(10.0) && s.in_time(19.999) && !s.in_time(20.0));
        assert!(!PacketSelection::default().is_active());
    }
}
