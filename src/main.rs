//! The `rtmpsniff` command line.

mod live_cmd;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use rtmpsniff::capture::{FileSet, LiveOptions, live};
use std::io::IsTerminal;

use rtmpsniff::rtmp::Direction;
use rtmpsniff::sink::report::{Report, TextKind};
use rtmpsniff::sink::{self, FlvSink, Selection};
use rtmpsniff::{Config, Pipeline};

/// Exit statuses.
pub(crate) const EXIT_OK: u8 = 0;
const EXIT_NO_RTMP: u8 = 1;
pub(crate) const EXIT_BAD_INPUT: u8 = 2;

#[derive(Parser)]
#[command(
    name = "rtmpsniff",
    version,
    about = "Recover RTMP audio/video from network captures as FLV files, without joining the session"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Which streams to keep (the others are neither written nor reported).
#[derive(clap::Args, Clone, Debug, Default)]
struct SelectArgs {
    /// Only streams whose name matches this glob (also tried on the name without its query
    /// string, and on APP/NAME).
    #[arg(long = "stream", value_name = "GLOB")]
    stream: Option<String>,
    /// Only streams of an application matching this glob.
    #[arg(long, value_name = "GLOB")]
    app: Option<String>,
    /// Only streams of this client (IP or IP:PORT).
    #[arg(long, value_name = "ADDR")]
    client: Option<String>,
    /// Only published or only played streams.
    #[arg(long, value_enum)]
    direction: Option<DirectionArg>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum DirectionArg {
    Publish,
    Play,
}

impl SelectArgs {
    fn selection(&self) -> Selection {
        Selection {
            stream: self.stream.clone(),
            app: self.app.clone(),
            client: self.client.clone(),
            direction: self.direction.map(|d| match d {
                DirectionArg::Publish => Direction::Publish,
                DirectionArg::Play => Direction::Play,
            }),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Read saved captures (pcap, pcapng) and write every RTMP stream found as an FLV file.
    #[command(
        after_help = "Examples:\n  rtmpsniff read capture.pcap -o out\n  rtmpsniff read part1.pcapng part2.pcapng --port 1935 --port 19350 -o out\n  tcpdump -w - port 1935 | rtmpsniff read - -o out\n\nExit status: 0 streams found, 1 no RTMP in the input, 2 an input or the output could not be used\n(with several inputs, the readable ones are still read)."
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
        select: SelectArgs,
        /// Print nothing but errors (no summary, no progress bar).
        #[arg(short, long)]
        quiet: bool,
        /// Also print each connection's warnings, gaps and lock-ons.
        #[arg(short, long)]
        verbose: bool,
        /// Put each file's SHA-256 in the report (reads every file back once it is finished:
        /// about as much work again as the rest of the run).
        #[arg(long)]
        sha256: bool,
    },
    /// Say what is in captures (connections, streams, codecs, sizes, gaps) without writing
    /// anything.
    #[command(
        after_help = "Examples:\n  rtmpsniff list capture.pcap\n  rtmpsniff list --json capture.pcapng | jq '.connections[].streams[].name'\n  rtmpsniff list --direction publish --any-port big.pcap"
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
        select: SelectArgs,
        /// Print the inventory as JSON (the report's format) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the manual page (roff) generated from this command line.
    Man,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Capture on a network interface and write every RTMP stream as an FLV file while it runs.
    #[command(
        after_help = "Examples:\n  rtmpsniff live -i eth0 -o out\n  rtmpsniff live -i any --port 1935 --port 19350 --duration 600 --write-pcap out.pcap\n  rtmpsniff live -i eth0 -f 'host 192.0.2.7 and tcp port 1935' -o out\n  rtmpsniff live -i eth0 --stdout --stream cam1 | ffplay -\n\nFiles are flushed every second and on each keyframe; a stream that ends is closed at once.\nCtrl-C or SIGTERM stops cleanly: files finalised, report.json written, exit 0.\nExit status 2: the interface, the filter, the privileges or the output could not be used."
    )]
    Live {
        /// Interface to capture on (`rtmpsniff interfaces` lists them; `any` is all of them).
        #[arg(short, long, required_unless_present = "list")]
        interface: Option<String>,
        /// List the interfaces and exit.
        #[arg(long)]
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
        /// Kernel capture buffer, in MiB (tcpdump's -B is in KiB; libpcap's default is 2 MiB).
        #[arg(short = 'B', long, value_name = "MIB", default_value_t = 32,
              value_parser = clap::value_parser!(u32).range(1..=2047))]
        buffer_size: u32,
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
        /// Also save every captured packet to this pcap file (never replaces a file).
        #[arg(long, value_name = "FILE")]
        write_pcap: Option<PathBuf>,
        /// Put each file's SHA-256 in the report (worked out once the file is finished).
        #[arg(long)]
        sha256: bool,
        /// Print nothing but errors.
        #[arg(short, long)]
        quiet: bool,
    },
    /// List the network interfaces `live` can capture on.
    Interfaces,
}

/// Keep freed memory for the next allocations instead of handing it back to the system.
///
/// The buffers that carry media (partial messages, write batches) are allocated on the
/// reading thread and freed on the writer thread once written, a few hundred kilobytes at a
/// time. glibc served them with fresh mappings, or trimmed its heap after each, so every one
/// came back as new zero-filled pages: a quarter of the reading thread in a live capture
/// (enough to drop packets) and a fifth of the run reading a file. Blocks below 8 MiB now come
/// from the heap, which keeps up to 64 MiB free before trimming; memory in use stays bounded
/// by the limits as before.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets glibc's allocation thresholds; called before any thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 8 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

fn main() -> ExitCode {
    tune_allocator();
    match run() {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::from(EXIT_OK);
            }
            eprintln!("rtmpsniff: {e:#}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

/// A progress bar over the bytes of the inputs (a spinner when one is standard input).
fn progress_bar(captures: &[String]) -> indicatif::ProgressBar {
    let total: Option<u64> = captures
        .iter()
        .map(|c| {
            (c != "-")
                .then(|| std::fs::metadata(c).map(|m| m.len()).ok())
                .flatten()
        })
        .sum();
    let bar = match total {
        Some(t) => indicatif::ProgressBar::new(t).with_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}  {msg}",
            )
            .expect("a valid template"),
        ),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(4));
    bar
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run() -> Result<u8> {
    let cli = Cli::parse();
    match cli.command {
        Command::Read {
            captures,
            output,
            ports,
            any_port,
            select,
            quiet,
            verbose,
            sha256,
        } => read(ReadArgs {
            captures: &captures,
            output: Some(&output),
            config: Config {
                ports,
                any_port,
                ..Config::default()
            },
            selection: select.selection(),
            quiet,
            verbose,
            json: false,
            sha256,
        }),
        Command::List {
            captures,
            ports,
            any_port,
            select,
            json,
        } => read(ReadArgs {
            captures: &captures,
            output: None,
            config: Config {
                ports,
                any_port,
                ..Config::default()
            },
            selection: select.selection(),
            quiet: true,
            verbose: false,
            json,
            sha256: false,
        }),
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout().lock())?;
            Ok(EXIT_OK)
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "rtmpsniff", &mut std::io::stdout().lock());
            Ok(EXIT_OK)
        }
        Command::Interfaces => live_cmd::list_interfaces(),
        Command::Live { list: true, .. } => live_cmd::list_interfaces(),
        Command::Live {
            interface,
            list: false,
            output,
            ports,
            any_port,
            filter,
            no_promisc,
            buffer_size,
            duration,
            stdout,
            select,
            write_pcap,
            quiet,
            sha256,
        } => {
            let duration = match duration {
                Some(d) if !(d.is_finite() && d > 0.0) => {
                    eprintln!("rtmpsniff: --duration must be a positive number of seconds");
                    return Ok(EXIT_BAD_INPUT);
                }
                d => d.map(std::time::Duration::from_secs_f64),
            };
            let capture = LiveOptions {
                interface: interface.expect("clap requires it without --list"),
                filter,
                ports: ports.clone(),
                any_port,
                promiscuous: !no_promisc,
                snaplen: live::SNAPLEN,
                buffer_bytes: Some((buffer_size as i32) << 20),
                write_pcap,
            };
            live_cmd::run(live_cmd::LiveArgs {
                capture,
                output,
                config: Config {
                    ports,
                    any_port,
                    ..Config::default()
                },
                duration,
                selection: SelectArgs {
                    stream: if stdout { None } else { select.stream.clone() },
                    ..select.clone()
                }
                .selection(),
                stdout_stream: if stdout { select.stream } else { None },
                quiet,
                sha256,
            })
        }
    }
}

/// Frames between two flushes of the FLV files, so what is on disk keeps up with the input
/// (a live `tcpdump -w - | rtmpsniff read -`, or a run that is killed).
const FLUSH_EVERY: u64 = 4096;

/// What `read` and `list` were asked.
struct ReadArgs<'a> {
    captures: &'a [String],
    /// The output folder (`read`); `None` for `list`.
    output: Option<&'a std::path::Path>,
    config: Config,
    selection: Selection,
    quiet: bool,
    verbose: bool,
    json: bool,
    sha256: bool,
}

/// `read` (with an output folder) or `list` (without: nothing is written, the inventory goes to
/// standard output as a table or as JSON).
fn read(args: ReadArgs<'_>) -> Result<u8> {
    let ReadArgs {
        captures,
        output,
        config,
        selection,
        quiet,
        verbose,
        json,
        sha256,
    } = args;
    // Every input that cannot be used gets one line; the others are read all the same.
    let (mut files, open_errors) = FileSet::open_each(captures);
    for e in &open_errors {
        eprintln!("rtmpsniff: {e}");
    }
    if open_errors.len() == captures.len() {
        return Ok(EXIT_BAD_INPUT);
    }
    let limits = config.limits.clone();
    let ports = config.ports.clone();
    let shown = output.map_or_else(|| "the inventory".to_string(), |o| o.display().to_string());
    let mut sink = match output {
        Some(o) => FlvSink::new(o)
            .with_context(|| format!("cannot use output folder {}", o.display()))?
            .with_open_files(limits.open_files)
            .with_sha256(sha256),
        None => FlvSink::inventory(),
    }
    .with_selection(selection);
    // The reports of ended connections wait in a file, not in memory: in the output folder,
    // or for an inventory in the temporary folder (kept in memory if that cannot be used).
    match output {
        Some(o) => sink
            .spool_in(o, TextKind::Summary { verbose })
            .with_context(|| format!("cannot use output folder {}", o.display()))?,
        None => {
            let _ = sink.spool_in(&std::env::temp_dir(), TextKind::Table);
        }
    }
    let mut pipeline = Pipeline::new(config);
    let write_err =
        |e: std::io::Error| anyhow::Error::new(e).context(format!("writing into {shown}"));
    let progress = (!quiet && output.is_some() && std::io::stderr().is_terminal())
        .then(|| progress_bar(captures));
    let mut frames = 0u64;
    let mut bytes = 0u64;
    while let Some(frame) = files.next_frame() {
        // A record's header and its data: close enough to the file offset for a progress bar.
        bytes += 16 + frame.data.len() as u64;
        pipeline.frame(&frame);
        for o in pipeline.drain() {
            sink.handle(o).map_err(write_err)?;
        }
        frames += 1;
        if frames.is_multiple_of(FLUSH_EVERY) {
            sink.write_pending().map_err(write_err)?;
            if let Some(p) = &progress {
                p.set_position(bytes);
                p.set_message(format!("{} connections", pipeline.stats().connections));
            }
        }
    }
    if let Some(p) = &progress {
        p.finish_and_clear();
    }
    loop {
        let more = pipeline.finish_some();
        for o in pipeline.drain() {
            sink.handle(o).map_err(write_err)?;
        }
        if !more {
            break;
        }
    }
    let inputs = files.reports();
    for i in &inputs {
        if let Some(e) = &i.error {
            eprintln!(
                "rtmpsniff: warning: {}: {e}; the packets before it were used",
                i.path
            );
        }
    }
    sink.finish().map_err(write_err)?;
    let mut hits = pipeline.stats().limit_hits.clone();
    hits.add(&sink.limit_hits);
    let limits_report = hits.report(&limits);
    let reached: Vec<String> = limits_report
        .iter()
        .filter(|l| l.hits > 0)
        .map(|l| format!("{} ({}) {} times", l.name, l.value, l.hits))
        .collect();
    if !reached.is_empty() {
        eprintln!(
            "rtmpsniff: warning: limits reached: {}; see the report",
            reached.join(", ")
        );
    }
    let mut report = Report {
        tool: format!("rtmpsniff {}", env!("CARGO_PKG_VERSION")),
        inputs,
        input_errors: open_errors.iter().map(|e| e.to_string()).collect(),
        stats: pipeline.stats(),
        limits: limits_report,
        connections: sink.into_report_connections(),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match output {
        Some(o) => {
            let path = sink::write_report(o, &mut |w| report.write_json(w)).map_err(write_err)?;
            if !quiet {
                report.write_summary(&mut out, verbose)?;
                writeln!(out, "report: {}", path.display())?;
            }
        }
        None if json => {
            report.write_json(&mut out)?;
            out.write_all(b"\n")?;
        }
        None => report.write_table(&mut out)?,
    }
    out.flush()?;
    if !open_errors.is_empty() {
        return Ok(EXIT_BAD_INPUT);
    }
    if report.connections.is_empty() {
        eprintln!(
            "rtmpsniff: no RTMP found in {} (ports {ports:?}; try --port or --any-port)",
            captures.join(", "),
        );
        return Ok(EXIT_NO_RTMP);
    }
    Ok(EXIT_OK)
}
