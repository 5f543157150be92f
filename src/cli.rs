//! The command line: clap's definition, lowered once into a validated [`Mode`] and one
//! [`Config`]. Nothing past [`Cli::lower`] sees a raw flag.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use rtmpsniff::Config;
use rtmpsniff::capture::{LiveOptions, PacketSelection, live};
use rtmpsniff::rtmp::Role;
use rtmpsniff::sink::{Endpoint, Pattern, Selection};

use crate::live_cmd::LiveArgs;

#[derive(Parser)]
#[command(
    name = "rtmpsniff",
    version,
    about = "Recover RTMP audio/video from network captures as FLV files, without joining the session",
    after_help = crate::man::after_help("")
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Which streams to keep (the others are neither written nor reported).
#[derive(clap::Args, Clone, Debug, Default)]
struct SelectArgs {
    /// Only streams whose name matches this glob (`*`, `?`, `[ab]`, `[!0-9]`, `{a,b}`, `\`
    /// escapes; also tried on the name without its query string, and on APP/NAME).
    #[arg(long = "stream", value_name = "GLOB")]
    stream: Option<String>,
    /// Only streams of an application matching this glob.
    #[arg(long, value_name = "GLOB")]
    app: Option<String>,
    /// Only streams of this client (IP, IP:PORT or [IPv6]:PORT).
    #[arg(long, value_name = "ADDR")]
    client: Option<String>,
    /// Only streams of this server (IP, IP:PORT or [IPv6]:PORT).
    #[arg(long, value_name = "ADDR")]
    server: Option<String>,
    /// Only published or only played streams.
    #[arg(long, value_enum)]
    direction: Option<RoleArg>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum RemuxArg {
    Mp4,
    Mkv,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum RoleArg {
    Publish,
    Play,
}

impl SelectArgs {
    /// What a live run keeps: with `--stdout`, the stream `--stream` names goes to the pipe
    /// and every stream the other options keep to files.
    fn live_selection(&self, stdout: bool) -> Result<Selection, String> {
        SelectArgs {
            stream: if stdout { None } else { self.stream.clone() },
            ..self.clone()
        }
        .selection()
    }

    /// The selection, or the one line that says which option is wrong and why.
    fn selection(&self) -> Result<Selection, String> {
        let endpoint = |flag: &str, text: &Option<String>| {
            text.as_deref()
                .map(|t| Endpoint::parse(t).map_err(|e| format!("{flag} {t}: {e}")))
                .transpose()
        };
        Ok(Selection {
            stream: pattern("--stream", &self.stream)?,
            app: pattern("--app", &self.app)?,
            client: endpoint("--client", &self.client)?,
            server: endpoint("--server", &self.server)?,
            direction: self.direction.map(|d| match d {
                RoleArg::Publish => Role::Publish,
                RoleArg::Play => Role::Play,
            }),
        })
    }
}

/// The limits every byte retained is counted against.
#[derive(clap::Args, Clone, Debug, Default)]
struct LimitArgs {
    /// Set one limit (repeatable), e.g. `--limit buffered_bytes_total=256M --limit
    /// open_files=64`; names and defaults as in README's Limits table (suffixes K, M, G).
    #[arg(long = "limit", value_name = "NAME=VALUE")]
    set: Vec<String>,
}

/// A glob option, compiled, or the line that says why it is not a glob.
fn pattern(flag: &str, text: &Option<String>) -> Result<Option<Pattern>, String> {
    text.as_deref()
        .map(|t| Pattern::new(t).map_err(|e| format!("{flag} {t}: {e}")))
        .transpose()
}

/// How much a run says: the same two options, with the same meaning, for read, list and live.
#[derive(clap::Args, Clone, Copy, Debug, Default)]
struct TalkArgs {
    /// Print nothing but errors and warnings (no summary, table or JSON, no progress or
    /// status line): the exit status and the files say what was found.
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,
    /// Also print each connection's warnings, gaps and lock-ons.
    #[arg(short, long)]
    verbose: bool,
}

/// Which packets of the captures are read at all, as tcpdump, tshark and editcap choose them.
#[derive(clap::Args, Clone, Debug, Default)]
struct PacketArgs {
    /// Only packets this BPF capture filter passes (tcpdump's syntax, e.g. 'host 192.0.2.7
    /// and tcp port 1935'), run by libpcap on each file's packets as `tcpdump -r` runs it.
    #[arg(short = 'f', long = "filter", value_name = "EXPR")]
    filter: Option<String>,
    /// Only packets from this time on (inclusive, as editcap -A): ISO 8601 with Z or an
    /// offset (2026-11-25T04:34:03Z, 2026-11-25T05:34:03.5+01:00) or seconds since the epoch.
    #[arg(long, value_name = "TIME")]
    start: Option<String>,
    /// Only packets before this time (exclusive, as editcap -B); the same forms as --start.
    #[arg(long, value_name = "TIME")]
    end: Option<String>,
    /// Stop after this many packets (of those --filter, --start and --end keep, as tcpdump
    /// -c counts them).
    #[arg(short = 'c', long, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
}

impl PacketArgs {
    /// The selection, or the one line that says which option is wrong and why.
    fn selection(&self) -> Result<PacketSelection, String> {
        let time = |flag: &str, t: &Option<String>| {
            t.as_deref()
                .map(|t| rtmpsniff::sink::report::parse_time(t).map_err(|e| format!("{flag} {e}")))
                .transpose()
        };
        let (start, end) = (time("--start", &self.start)?, time("--end", &self.end)?);
        if let (Some(s), Some(e)) = (start, end)
            && s >= e
        {
            return Err("--start must be before --end".into());
        }
        Ok(PacketSelection {
            filter: self.filter.clone(),
            start,
            end,
            count: self.count,
        })
    }
}

/// Keys for RTMPS.
#[derive(clap::Args, Clone, Debug, Default)]
struct TlsArgs {
    /// A TLS key log (NSS format, as SSLKEYLOGFILE writes it) with the keys of RTMPS
    /// connections (repeatable). Keys in a pcapng capture's Decryption Secrets Block are used
    /// without it. `live` reads the file again as it grows.
    #[arg(long = "tls-keylog", value_name = "FILE")]
    keylogs: Vec<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Read saved captures (pcap, pcapng; gzip, zstd or xz compressed too) and write every RTMP
    /// stream found as an FLV file.
    #[command(
        after_help = crate::man::after_help("read")
    )]
    Read {
        /// Capture files, read as one timeline; `-` reads standard input.
        #[arg(required = true)]
        captures: Vec<String>,
        /// Folder for the FLV files and report.json (created if missing; nothing in it is
        /// ever replaced).
        #[arg(short, long, default_value = "rtmpsniff-out")]
        output: PathBuf,
        /// TCP port RTMP servers listen on (repeatable).
        #[arg(short, long = "port", default_values_t = [1935u16])]
        ports: Vec<u16>,
        /// Also recognise RTMP on any TCP port by its handshake.
        #[arg(long)]
        any_port: bool,
        #[command(flatten)]
        packets: PacketArgs,
        #[command(flatten)]
        select: SelectArgs,
        #[command(flatten)]
        tls: TlsArgs,
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        talk: TalkArgs,
        /// Put each file's SHA-256 in the report (reads every file back once it is finished:
        /// about as much work again as the rest of the run).
        #[arg(long)]
        sha256: bool,
        /// Take the decoder configurations (sequence headers) a stream lacks from FILE, an
        /// FLV recorded earlier from the same encoder; each is used only where it fits the
        /// stream's frames (codec; for H.264 the NAL length size and the PPS/SPS its slices
        /// use; for AAC the channels and rate its frames show).
        #[arg(long, value_name = "FILE.flv")]
        config_from: Option<PathBuf>,
        /// Do not repair: by default a message lost to a gap in one connection is taken from
        /// another connection of the input that carries the same stream (a publisher and its
        /// players), between neighbours identical in both, and times after a gap are taken
        /// from such a copy; the report counts what was put in and from where.
        #[arg(long)]
        no_repair: bool,
        /// After the run, also remux each stream's FLV with ffmpeg (`-c copy`: nothing
        /// re-encoded) into MP4, or Matroska where MP4 cannot hold its codecs (Sorenson Spark,
        /// VP6, Nellymoser, Speex, ADPCM, PCM), or always into Matroska.
        #[arg(long, value_enum, value_name = "CONTAINER")]
        remux: Option<RemuxArg>,
        /// Write report.html beside report.json: one page with the inputs, a timeline of the
        /// connections, the streams and their keyframes (drawn by ffmpeg). The default.
        #[arg(long, overrides_with = "no_html")]
        html: bool,
        /// Do not write report.html.
        #[arg(long, overrides_with = "html")]
        no_html: bool,
        /// Pipelines on threads of their own, the connections shared among them by their
        /// two IP addresses: the same files and report as one (for captures of many
        /// connections; one connection is always one thread's).
        #[arg(long, value_name = "N", default_value_t = 1,
              value_parser = clap::value_parser!(u16).range(1..=64))]
        threads: u16,
    },
    /// Say what is in captures (connections, streams, codecs, sizes, gaps) without writing
    /// anything.
    #[command(
        after_help = crate::man::after_help("list")
    )]
    List {
        /// Capture files, read as one timeline; `-` reads standard input.
        #[arg(required = true)]
        captures: Vec<String>,
        /// TCP port RTMP servers listen on (repeatable).
        #[arg(short, long = "port", default_values_t = [1935u16])]
        ports: Vec<u16>,
        /// Also recognise RTMP on any TCP port by its handshake.
        #[arg(long)]
        any_port: bool,
        #[command(flatten)]
        packets: PacketArgs,
        #[command(flatten)]
        select: SelectArgs,
        #[command(flatten)]
        tls: TlsArgs,
        #[command(flatten)]
        limits: LimitArgs,
        /// Print the inventory as JSON (the report's format) instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        talk: TalkArgs,
    },
    /// Print a manual page (roff) generated from this command line, or write them all.
    #[command(after_help = crate::man::after_help("man"))]
    Man {
        /// The subcommand whose page to print (read, list, live, interfaces, man,
        /// completions); without it, rtmpsniff(1).
        #[arg(value_name = "SUBCOMMAND")]
        page: Option<String>,
        /// Write every page (rtmpsniff.1, rtmpsniff-read.1, ...) into this folder instead.
        #[arg(long, value_name = "DIR", conflicts_with = "page")]
        dir: Option<PathBuf>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = crate::man::after_help("completions"))]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Capture on a network interface and write every RTMP stream as an FLV file while it runs.
    #[command(
        after_help = crate::man::after_help("live")
    )]
    Live {
        /// Interface to capture on, by name or by the number `live -D` gives it (`any` is
        /// all of them).
        #[arg(short, long, required_unless_present = "list")]
        interface: Option<String>,
        /// List the interfaces, numbered as tcpdump -D numbers them, and exit.
        #[arg(short = 'D', long = "list-interfaces", visible_alias = "list")]
        list: bool,
        /// Folder for the FLV files and report.json (created if missing; nothing in it is
        /// ever replaced).
        #[arg(short, long, default_value = "rtmpsniff-out")]
        output: PathBuf,
        /// TCP port RTMP servers listen on (repeatable).
        #[arg(short, long = "port", default_values_t = [1935u16])]
        ports: Vec<u16>,
        /// Also recognise RTMP on any TCP port by its handshake (captures all TCP).
        #[arg(long)]
        any_port: bool,
        /// BPF filter expression for the capture, instead of the one built from the ports.
        #[arg(short, long, value_name = "EXPR")]
        filter: Option<String>,
        /// Do not put the interface into promiscuous mode.
        #[arg(long)]
        no_promisc: bool,
        /// Kernel capture buffer of each capture thread, in MiB (tcpdump's -B is in KiB;
        /// libpcap's default is 2 MiB). Default 32, or 8 each with --workers.
        #[arg(short = 'B', long, value_name = "MIB",
              value_parser = clap::value_parser!(u32).range(1..=2047))]
        buffer_size: Option<u32>,
        /// Capture threads, each with its own pipeline, sharing the interface's packets by
        /// flow (a PACKET_FANOUT group; both directions of a connection on one worker).
        #[arg(long, value_name = "N", default_value_t = 1,
              value_parser = clap::value_parser!(u16).range(1..=64))]
        workers: u16,
        /// Stop by itself after this many seconds.
        #[arg(long, value_name = "SECS")]
        duration: Option<f64>,
        /// Write the stream chosen with --stream to standard output (the run ends with it).
        #[arg(long, requires = "stream")]
        stdout: bool,
        /// --stream picks the stream for --stdout (the first it names); without --stdout it
        /// selects, like --app, --client and --direction.
        #[command(flatten)]
        select: SelectArgs,
        #[command(flatten)]
        tls: TlsArgs,
        #[command(flatten)]
        limits: LimitArgs,
        /// Also save every captured packet to this pcap file (never replaces a file).
        #[arg(long, value_name = "FILE")]
        write_pcap: Option<PathBuf>,
        /// Put each file's SHA-256 in the report (worked out once the file is finished).
        #[arg(long)]
        sha256: bool,
        /// Do not repair, at the end, messages lost in one connection from another that
        /// carries the same stream (see `read --no-repair`).
        #[arg(long)]
        no_repair: bool,
        /// Serve a page of the streams being sniffed, their state (/events, /report.json)
        /// and each stream as HTTP-FLV (/streams/ID.flv) on this address (loopback unless
        /// --http-token is given).
        #[arg(long, value_name = "ADDR:PORT")]
        http: Option<std::net::SocketAddr>,
        /// The token every request to --http must carry (`?token=` or `Authorization:
        /// Bearer`); needed for an address that is not loopback.
        #[arg(long, value_name = "TOKEN", requires = "http")]
        http_token: Option<String>,
        #[command(flatten)]
        talk: TalkArgs,
    },
    /// List the network interfaces `live` can capture on, numbered (as `live -D`).
    #[command(after_help = crate::man::after_help("interfaces"))]
    Interfaces,
}

/// What the command line asks for, checked.
pub enum Mode {
    /// `read` and `list`.
    Read(ReadArgs),
    Live(LiveArgs),
    /// A manual page on standard output ("" the top one), or every page into a folder.
    Man {
        page: String,
        dir: Option<PathBuf>,
    },
    Completions(clap_complete::Shell),
    Interfaces,
}

/// What `read` and `list` were asked.
pub struct ReadArgs {
    pub captures: Vec<String>,
    /// Which packets of the captures are read (`--filter`, `--start`, `--end`, `--count`).
    pub packets: PacketSelection,
    pub config: Config,
    pub selection: Selection,
    /// `--tls-keylog` files.
    pub keylogs: Vec<PathBuf>,
    pub out: ReadOut,
    /// `read --threads N`: pipelines on N threads.
    pub threads: usize,
}

/// Where `read` and `list` put what they found.
pub enum ReadOut {
    /// `read`: FLV files and report.json in a folder, a summary on standard output.
    Folder {
        dir: PathBuf,
        /// Print nothing but errors.
        quiet: bool,
        /// The summary with each connection's warnings, gaps and lock-ons.
        verbose: bool,
        sha256: bool,
        /// `--remux`: the container asked for.
        remux: Option<rtmpsniff::sink::remux::Container>,
        /// Write report.html too.
        html: bool,
        /// `--config-from`: a file whose sequence headers streams without theirs may take.
        config_from: Option<PathBuf>,
        /// `--no-repair`.
        repair: bool,
    },
    /// `list`: nothing written; the inventory on standard output, as a table or JSON.
    Inventory {
        json: bool,
        /// Print nothing but errors.
        quiet: bool,
        /// The table with each connection's warnings, gaps and lock-ons.
        verbose: bool,
    },
}

/// The one place a [`Config`] is made from the command line.
fn config(ports: Vec<u16>, any_port: bool, limits: &LimitArgs) -> Result<Config, String> {
    let mut config = Config {
        ports,
        any_port,
        ..Config::default()
    };
    config.limits.set_all(&limits.set)?;
    Ok(config)
}

/// `--duration`, checked: a positive number of seconds.
fn run_time(duration: Option<f64>) -> Result<Option<std::time::Duration>, String> {
    match duration {
        Some(d) if !(d.is_finite() && d > 0.0) => {
            Err("--duration must be a positive number of seconds".into())
        }
        d => Ok(d.map(std::time::Duration::from_secs_f64)),
    }
}

impl Cli {
    /// The validated mode, or the one line that says what is wrong with the command line.
    pub fn lower(self) -> Result<Mode, String> {
        Ok(match self.command {
            Command::Read {
                captures,
                output,
                ports,
                any_port,
                packets,
                select,
                tls,
                limits,
                talk: TalkArgs { quiet, verbose },
                sha256,
                config_from,
                no_repair,
                remux,
                html: _,
                no_html,
                threads,
            } => Mode::Read(ReadArgs {
                threads: threads as usize,
                captures,
                packets: packets.selection()?,
                config: config(ports, any_port, &limits)?,
                selection: select.selection()?,
                keylogs: tls.keylogs,
                out: ReadOut::Folder {
                    dir: output,
                    quiet,
                    verbose,
                    sha256,
                    remux: remux.map(|r| match r {
                        RemuxArg::Mp4 => rtmpsniff::sink::remux::Container::Mp4,
                        RemuxArg::Mkv => rtmpsniff::sink::remux::Container::Mkv,
                    }),
                    html: !no_html,
                    config_from,
                    repair: !no_repair,
                },
            }),
            Command::List {
                captures,
                ports,
                any_port,
                packets,
                select,
                tls,
                limits,
                json,
                talk: TalkArgs { quiet, verbose },
            } => Mode::Read(ReadArgs {
                threads: 1,
                captures,
                packets: packets.selection()?,
                config: config(ports, any_port, &limits)?,
                selection: select.selection()?,
                keylogs: tls.keylogs,
                out: ReadOut::Inventory {
                    json,
                    quiet,
                    verbose,
                },
            }),
            Command::Man { page, dir } => Mode::Man {
                page: page.unwrap_or_default(),
                dir,
            },
            Command::Completions { shell } => Mode::Completions(shell),
            Command::Interfaces | Command::Live { list: true, .. } => Mode::Interfaces,
            Command::Live {
                interface,
                list: false,
                output,
                ports,
                any_port,
                filter,
                no_promisc,
                workers,
                buffer_size,
                duration,
                stdout,
                select,
                tls,
                limits,
                write_pcap,
                talk: TalkArgs { quiet, verbose },
                sha256,
                no_repair,
                http,
                http_token,
            } => {
                let duration = run_time(duration)?;
                let http_token = http_token.filter(|t| !t.is_empty());
                if let Some(t) = &http_token
                    && !crate::web::token_is_safe(t)
                {
                    return Err(
                        "--http-token: use letters, digits and - . _ ~ only (at most 256)".into(),
                    );
                }
                let http = match http {
                    Some(addr) if crate::web::needs_token(&addr) && http_token.is_none() => {
                        return Err(format!(
                            "--http {addr} is not a loopback address: it shows sniffed media to \
                             anyone who can reach it, so give --http-token TOKEN too"
                        ));
                    }
                    Some(addr) => Some(crate::web::WebArgs {
                        addr,
                        token: http_token,
                    }),
                    None => None,
                };
                if workers > 1 && write_pcap.is_some() {
                    return Err(
                        "--write-pcap takes one capture thread: leave out --workers or \
                         --write-pcap (tcpdump can save the same packets beside it)"
                            .into(),
                    );
                }
                let buffer_size = buffer_size.unwrap_or(if workers > 1 { 8 } else { 32 });
                let Some(interface) = interface else {
                    return Err("live needs -i IFACE (or --list)".into());
                };
                let capture = LiveOptions {
                    interface,
                    filter,
                    ports: ports.clone(),
                    any_port,
                    promiscuous: !no_promisc,
                    snaplen: live::SNAPLEN,
                    buffer_bytes: Some((buffer_size as i32) << 20),
                    write_pcap,
                    fanout: None,
                };
                Mode::Live(LiveArgs {
                    capture,
                    output,
                    config: Config {
                        // Encoders log their keys as they connect: records wait for them.
                        tls_backlog: rtmpsniff::transport::tls::DEFAULT_BACKLOG,
                        ..config(ports, any_port, &limits)?
                    },
                    keylogs: tls.keylogs,
                    duration,
                    selection: select.live_selection(stdout)?,
                    stdout_stream: if stdout {
                        pattern("--stream", &select.stream)?
                    } else {
                        None
                    },
                    quiet,
                    verbose,
                    sha256,
                    repair: !no_repair,
                    workers: workers as usize,
                    http,
                })
            }
        })
    }
}
