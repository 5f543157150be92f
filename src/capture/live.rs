//! Live capture from a network interface through libpcap, optionally saving the raw packets.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::{Frame, InputReport, KernelStats, linktype};
use pcap::{Active, Capture, Device, Precision, Savefile};

/// libpcap's largest snap length: whole segments even where the NIC or a veth coalesces them
/// (GRO/TSO make "packets" of up to 64 KiB and more).
pub const SNAPLEN: i32 = 262_144;

/// How long one read waits when nothing arrives, so that the caller notices a signal or the
/// end of `--duration` even on a silent interface. (libpcap's own read timeout cannot do this
/// on Linux: with TPACKET_V3 it blocks in poll() until a packet comes, and a signal does not
/// end the wait; so the handle is non-blocking and the wait is ours.)
pub const READ_TIMEOUT_MS: i32 = 100;

/// How long a stopping capture goes on reading what the kernel still holds (packets that
/// arrived before the stop): enough for a full ring at line rate, short enough that Ctrl-C
/// still feels immediate.
pub const DRAIN_AT_STOP: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether interface `name` is up (IFF_UP in its flags), as Linux tells it; `None` when that
/// cannot be read (another system, an interface gone, a name that is not one).
pub fn interface_up(name: &str) -> Option<bool> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return None;
    }
    let flags =
        std::fs::read_to_string(Path::new("/sys/class/net").join(name).join("flags")).ok()?;
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).ok()?;
    Some(flags & 1 != 0)
}

/// What to capture and how.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    pub interface: String,
    /// A BPF expression; `None` uses [`default_filter`].
    pub filter: Option<String>,
    pub ports: Vec<u16>,
    pub any_port: bool,
    pub promiscuous: bool,
    pub snaplen: i32,
    /// Kernel buffer in bytes; `None` leaves libpcap's default (2 MiB on Linux).
    pub buffer_bytes: Option<i32>,
    /// Save every captured packet here (pcap, nanosecond timestamps).
    pub write_pcap: Option<PathBuf>,
    /// Join this PACKET_FANOUT group (Linux), so that several captures of one interface
    /// share its packets by flow: PACKET_FANOUT_HASH, a hash of the addresses and ports that
    /// is the same both ways, keeps both directions of a TCP connection in one capture.
    pub fanout: Option<u16>,
}

/// Why a live capture could not start or go on. Each message is one line a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("no such interface: {0} (`rtmpsniff interfaces` lists them)")]
    NoSuchInterface(String),
    #[error(
        "{interface}: permission denied: live capture needs root or the CAP_NET_RAW capability \
         (e.g. `sudo setcap cap_net_raw,cap_net_admin=eip $(which rtmpsniff)`); libpcap said: {message}"
    )]
    PermissionDenied { interface: String, message: String },
    #[error("bad filter expression \"{filter}\": {message}")]
    BadFilter { filter: String, message: String },
    #[error("{interface}: link type {linktype} is not supported")]
    LinkType { interface: String, linktype: i32 },
    #[error("cannot write the capture to {path}: {message}")]
    WritePcap { path: String, message: String },
    #[error("{interface}: {message}")]
    Capture { interface: String, message: String },
}

/// The BPF filter used when none is given: TCP on the RTMP ports, or all TCP with `--any-port`.
pub fn default_filter(ports: &[u16], any_port: bool) -> String {
    if any_port || ports.is_empty() {
        return "tcp".into();
    }
    let ports: Vec<String> = ports.iter().map(|p| format!("port {p}")).collect();
    format!("tcp and ({})", ports.join(" or "))
}

/// A running capture on one interface.
pub struct LiveCapture {
    cap: Capture<Active>,
    save: Option<Savefile>,
    linktype: i32,
    filter: String,
    number: u64,
    report: InputReport,
}

fn message(e: pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(m) => m,
        e => e.to_string(),
    }
}

fn is_permission_problem(m: &str) -> bool {
    let m = m.to_ascii_lowercase();
    m.contains("permission") || m.contains("operation not permitted")
}

impl LiveCapture {
    /// Open the interface: promiscuous as asked, the read timeout, the filter, and the save file.
    ///
    /// Not in immediate mode: libpcap then falls back to a ring of fixed slots of the snapshot
    /// length (256 KiB each, so a 32 MiB buffer held 128 packets and dropped half of a fast
    /// load that tcpdump took whole). Without it packets are packed into the kernel's blocks
    /// as tcpdump's are, and a block is handed over when full or after the read timeout, so
    /// packets still arrive within 100 ms on a quiet link.
    pub fn open(opts: &LiveOptions) -> Result<Self, LiveError> {
        let name = &opts.interface;
        let capture_err = |message: String| LiveError::Capture {
            interface: name.clone(),
            message,
        };
        // libpcap reports a missing device and missing privileges with the same kind of error
        // string depending on the order it checks them in; looking the name up first (which
        // needs no privileges) gives the user the right one.
        let known = Device::list()
            .map(|l| l.iter().any(|d| &d.name == name))
            .unwrap_or(true);
        if !known {
            return Err(LiveError::NoSuchInterface(name.clone()));
        }
        let mut inactive = Capture::from_device(name.as_str())
            .map_err(|e| capture_err(message(e)))?
            .promisc(opts.promiscuous)
            .immediate_mode(false)
            .snaplen(opts.snaplen)
            .timeout(READ_TIMEOUT_MS)
            .precision(Precision::Nano);
        if let Some(b) = opts.buffer_bytes {
            inactive = inactive.buffer_size(b);
        }
        let cap = inactive.open().map_err(|e| {
            let m = message(e);
            if is_permission_problem(&m) {
                LiveError::PermissionDenied {
                    interface: name.clone(),
                    message: m,
                }
            } else if m.contains("No such device") {
                LiveError::NoSuchInterface(name.clone())
            } else {
                capture_err(m)
            }
        })?;
        let mut cap = cap.setnonblock().map_err(|e| capture_err(message(e)))?;
        if let Some(group) = opts.fanout {
            join_fanout(&cap, group).map_err(|e| {
                capture_err(format!("cannot join packet fanout group {group}: {e}"))
            })?;
        }
        let filter = opts
            .filter
            .clone()
            .unwrap_or_else(|| default_filter(&opts.ports, opts.any_port));
        cap.filter(&filter, true)
            .map_err(|e| LiveError::BadFilter {
                filter: filter.clone(),
                message: message(e),
            })?;
        let lt = cap.get_datalink().0;
        if !linktype::supported(lt) {
            return Err(LiveError::LinkType {
                interface: name.clone(),
                linktype: lt,
            });
        }
        let save = match &opts.write_pcap {
            Some(p) => Some(open_savefile(&cap, p)?),
            None => None,
        };
        Ok(LiveCapture {
            cap,
            save,
            linktype: lt,
            filter,
            number: 0,
            report: InputReport::new(
                format!("live:{name}"),
                "live".into(),
                linktype::name(lt).into(),
            ),
        })
    }

    /// The filter in force.
    pub fn filter(&self) -> &str {
        &self.filter
    }

    pub fn link_type_name(&self) -> &'static str {
        linktype::name(self.linktype)
    }

    /// The next packet (also written to the save file), or `None` when nothing came within
    /// [`READ_TIMEOUT_MS`] or a signal interrupted the wait.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, LiveError> {
        self.frame_or_wait(READ_TIMEOUT_MS)
    }

    /// Wait up to `ms` for the descriptor to be readable (or a signal).
    pub fn wait(&self, ms: i32) {
        let mut fd = libc::pollfd {
            fd: self.cap.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, owned by this frame, for the duration of the call.
        unsafe { libc::poll(&mut fd, 1, ms) };
    }

    /// The next packet if one is there now, without waiting (non-blocking handle): `None`
    /// when the kernel has nothing more for now.
    pub fn try_frame(&mut self) -> Result<Option<Frame<'_>>, LiveError> {
        self.frame_or_wait(0)
    }

    /// The next packet; when there is none now, a wait of up to `wait_ms` (none for 0), then
    /// `None`.
    fn frame_or_wait(&mut self, wait_ms: i32) -> Result<Option<Frame<'_>>, LiveError> {
        let raw_fd = self.cap.as_raw_fd();
        let p = match self.cap.next_packet() {
            Ok(p) => p,
            Err(pcap::Error::TimeoutExpired) => {
                // Non-blocking: nothing is there now. Wait for the descriptor (or a signal, or
                // the timeout); the caller asks again.
                if wait_ms > 0 {
                    let mut fd = libc::pollfd {
                        fd: raw_fd,
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd, owned by this frame, for the call.
                    unsafe { libc::poll(&mut fd, 1, wait_ms) };
                }
                return Ok(None);
            }
            Err(e) => {
                let m = message(e);
                self.report.error = Some(m.clone());
                return Err(LiveError::Capture {
                    interface: self.report.path["live:".len()..].to_string(),
                    message: m,
                });
            }
        };
        if let Some(s) = &mut self.save {
            s.write(&p);
        }
        // Opened with Precision::Nano: the microseconds field holds nanoseconds.
        let ts = p.header.ts.tv_sec as f64 + p.header.ts.tv_usec as f64 * 1e-9;
        self.number += 1;
        let r = &mut self.report;
        r.packets += 1;
        r.bytes += p.data.len() as u64;
        if p.data.len() < p.header.len as usize {
            r.truncated_packets += 1;
        }
        r.first_time.get_or_insert(ts);
        r.last_time = Some(ts);
        Ok(Some(Frame {
            ts,
            number: self.number,
            linktype: self.linktype,
            data: p.data,
            orig_len: p.header.len,
        }))
    }

    /// libpcap's counters so far (`None` where the platform cannot say).
    pub fn kernel_stats(&mut self) -> Option<KernelStats> {
        self.cap.stats().ok().map(|s| KernelStats {
            received: s.received,
            dropped: s.dropped,
            if_dropped: s.if_dropped,
        })
    }

    /// Push the saved packets to disk, so the file is readable while the capture runs.
    pub fn flush(&mut self) -> Result<(), LiveError> {
        if let Some(s) = &mut self.save {
            s.flush().map_err(|e| LiveError::WritePcap {
                path: "the --write-pcap file".into(),
                message: message(e),
            })?;
        }
        Ok(())
    }

    /// What was captured, with the kernel's counters; the save file is flushed.
    pub fn report(&mut self) -> InputReport {
        let _ = self.flush();
        let mut r = self.report.clone();
        r.kernel = self.kernel_stats();
        r
    }
}

/// Put the capture's socket into fanout group `group` with the flow hash (and defragmenting,
/// so the fragments of a datagram share a socket). Set after activation, as libpcap has no
/// call for it; every member must ask for the same mode.
fn join_fanout(cap: &Capture<Active>, group: u16) -> std::io::Result<()> {
    let mode = libc::PACKET_FANOUT_HASH | libc::PACKET_FANOUT_FLAG_DEFRAG;
    let arg = (group as u32 | (mode << 16)) as libc::c_int;
    // SAFETY: an int option on the capture's own socket, the pointer valid for the call.
    let r = unsafe {
        libc::setsockopt(
            cap.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_FANOUT,
            (&arg as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn open_savefile(cap: &Capture<Active>, path: &Path) -> Result<Savefile, LiveError> {
    let err = |message: String| LiveError::WritePcap {
        path: path.display().to_string(),
        message,
    };
    // Like the FLV files, an existing file is never replaced.
    if path.exists() {
        return Err(err(
            "file exists (an existing file is never replaced)".into()
        ));
    }
    let p = path
        .to_str()
        .ok_or_else(|| err("path is not UTF-8".into()))?;
    cap.savefile(p).map_err(|e| err(message(e)))
}

/// One capture device as libpcap sees it.
#[derive(Clone, Debug)]
pub struct Interface {
    pub name: String,
    pub description: Option<String>,
    pub addresses: Vec<String>,
    pub up: bool,
    pub running: bool,
    pub loopback: bool,
}

/// The devices libpcap can capture on (no privileges needed to list them).
pub fn interfaces() -> Result<Vec<Interface>, LiveError> {
    let list = Device::list().map_err(|e| LiveError::Capture {
        interface: "(list)".into(),
        message: message(e),
    })?;
    Ok(list
        .into_iter()
        .map(|d| Interface {
            addresses: d.addresses.iter().map(|a| a.addr.to_string()).collect(),
            up: d.flags.is_up(),
            running: d.flags.is_running(),
            loopback: d.flags.is_loopback(),
            name: d.name,
            description: d.desc,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_filter_follows_ports() {
        assert_eq!(default_filter(&[1935], false), "tcp and (port 1935)");
        assert_eq!(
            default_filter(&[1935, 19350], false),
            "tcp and (port 1935 or port 19350)"
        );
        assert_eq!(default_filter(&[1935], true), "tcp");
    }

    #[test]
    fn default_filters_compile() {
        for f in [
            default_filter(&[1935, 80], false),
            default_filter(&[], true),
        ] {
            let dead = Capture::dead(pcap::Linktype::ETHERNET).unwrap();
            dead.compile(&f, true).unwrap();
        }
    }
}
