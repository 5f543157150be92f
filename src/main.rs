//! The `rtmpsniff` command line.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use rtmpsniff::capture::FileSet;
use rtmpsniff::sink::{self, FlvSink, report::Report};
use rtmpsniff::{Config, Pipeline};

/// Exit statuses.
const EXIT_OK: u8 = 0;
const EXIT_NO_RTMP: u8 = 1;
const EXIT_BAD_INPUT: u8 = 2;

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
        /// Print nothing but errors.
        #[arg(short, long)]
        quiet: bool,
    },
}

fn main() -> ExitCode {
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
            quiet,
        } => {
            let config = Config {
                ports,
                any_port,
                ..Config::default()
            };
            read(&captures, &output, config, quiet)
        }
    }
}

/// Frames between two flushes of the FLV files, so what is on disk keeps up with the input
/// (a live `tcpdump -w - | rtmpsniff read -`, or a run that is killed).
const FLUSH_EVERY: u64 = 4096;

fn read(captures: &[String], output: &std::path::Path, config: Config, quiet: bool) -> Result<u8> {
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
    let mut sink = FlvSink::new(output)
        .with_context(|| format!("cannot use output folder {}", output.display()))?
        .with_open_files(limits.open_files);
    let mut pipeline = Pipeline::new(config);
    let write_err = |e: std::io::Error| {
        anyhow::Error::new(e).context(format!("writing into {}", output.display()))
    };
    let mut frames = 0u64;
    while let Some(frame) = files.next_frame() {
        pipeline.frame(&frame);
        for o in pipeline.drain() {
            sink.handle(o).map_err(write_err)?;
        }
        frames += 1;
        if frames.is_multiple_of(FLUSH_EVERY) {
            sink.flush().map_err(write_err)?;
        }
    }
    pipeline.finish();
    for o in pipeline.drain() {
        sink.handle(o).map_err(write_err)?;
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
    let mut hits = pipeline.stats.limit_hits.clone();
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
    let report = Report {
        tool: format!("rtmpsniff {}", env!("CARGO_PKG_VERSION")),
        inputs,
        input_errors: open_errors.iter().map(|e| e.to_string()).collect(),
        stats: pipeline.stats.clone(),
        limits: limits_report,
        connections: sink.into_connections(),
    };
    let json = serde_json::to_vec_pretty(&report)?;
    let path = sink::write_report(output, &json).map_err(write_err)?;
    if !quiet {
        let mut out = std::io::stdout().lock();
        out.write_all(report.summary().as_bytes())?;
        writeln!(out, "report: {}", path.display())?;
    }
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
