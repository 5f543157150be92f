//! The `live` subcommand: capture on an interface until Ctrl-C, SIGTERM, `--duration` or the
//! end of the stream sent to standard output, writing each stream's file as it comes.
//!
//! Part of the binary, not the library: this is the one place that owns the wall clock, the
//! signals and the terminal. The protocol layers still see only packets and their timestamps.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use rtmpsniff::capture::KernelStats;
use rtmpsniff::capture::live::{self, LiveCapture, LiveOptions};
use rtmpsniff::sink::report::{Report, StreamReport, TextKind};
use rtmpsniff::sink::{self, FlvSink};
use rtmpsniff::{Config, Driver, Output, OutputSink, Pipeline};

use crate::term::{Part, StatusLine};

/// How often files (and the `--write-pcap` file) are flushed and the status line redrawn.
const TICK: Duration = Duration::from_secs(1);

pub struct LiveArgs {
    pub capture: LiveOptions,
    pub output: PathBuf,
    pub config: Config,
    /// `--tls-keylog` files, read again as they grow.
    pub keylogs: Vec<PathBuf>,
    pub duration: Option<Duration>,
    /// `--stdout --stream NAME`: the stream written to standard output.
    pub stdout_stream: Option<rtmpsniff::sink::Pattern>,
    /// Which streams are kept at all (`--app`, `--client`, `--direction`).
    pub selection: rtmpsniff::sink::Selection,
    pub quiet: bool,
    /// The summary with each connection's warnings, gaps and lock-ons.
    pub verbose: bool,
    /// SHA-256 of each finished file in the report.
    pub sha256: bool,
}

/// Print the devices libpcap can capture on, numbered from 1 in libpcap's order as
/// `tcpdump -D` numbers them (`live -i N` takes the number).
pub fn list_interfaces() -> Result<u8> {
    let list = match live::interfaces() {
        Ok(l) => l,
        Err(e) => {
            say!("rtmpsniff: {e}");
            return Ok(super::EXIT_BAD_INPUT);
        }
    };
    let mut out = std::io::stdout().lock();
    for (n, i) in list.into_iter().enumerate() {
        let mut flags = Vec::new();
        if i.up {
            flags.push("up");
        }
        if i.running {
            flags.push("running");
        }
        if i.loopback {
            flags.push("loopback");
        }
        let mut line = format!(
            "{:<20} {:<22}",
            format!("{}.{}", n + 1, i.name),
            flags.join(",")
        );
        if !i.addresses.is_empty() {
            line.push_str(&format!(" {}", i.addresses.join(" ")));
        }
        if let Some(d) = i.description {
            line.push_str(&format!("  ({d})"));
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    out.flush()?;
    Ok(super::EXIT_OK)
}

/// The interface `-i` names: itself, or, when it is a number and no interface has that name,
/// the interface `live -D` lists with that number (as tcpdump's `-i` takes `-D`'s numbers).
fn interface_named(given: &str) -> Result<String, String> {
    let Ok(n) = given.parse::<usize>() else {
        return Ok(given.to_string());
    };
    let list = live::interfaces().map_err(|e| e.to_string())?;
    if list.iter().any(|i| i.name == given) {
        return Ok(given.to_string());
    }
    match n.checked_sub(1).and_then(|k| list.get(k)) {
        Some(i) => Ok(i.name.clone()),
        None => Err(format!(
            "no interface number {n}: there are {} (`rtmpsniff live -D` lists them)",
            list.len()
        )),
    }
}

/// Lines for the user: on standard output, or standard error when standard output carries the
/// FLV, printed above the status line when it shows. Standard error that cannot be written
/// loses its lines; standard output whose reader went away stops the run (cleanly, as
/// Ctrl-C does).
struct Console {
    to_stderr: bool,
    quiet: bool,
    verbose: bool,
    /// The status line, on a terminal's standard error unless quiet.
    status: Option<StatusLine>,
    /// Standard output's reader went away.
    stdout_gone: bool,
}

impl Console {
    fn line(&mut self, s: &str) {
        if self.quiet {
            return;
        }
        self.text(&format!("{s}\n"));
    }

    /// Text where the console's lines go, above the status line.
    fn text(&mut self, s: &str) {
        match self.status.take() {
            Some(status) => {
                status.suspend(|| self.write(s));
                self.status = Some(status);
            }
            None => self.write(s),
        }
    }

    fn write(&mut self, s: &str) {
        if self.to_stderr {
            let _ = std::io::stderr().lock().write_all(s.as_bytes());
        } else if !self.stdout_gone {
            let mut out = std::io::stdout().lock();
            if out
                .write_all(s.as_bytes())
                .and_then(|_| out.flush())
                .is_err()
            {
                self.stdout_gone = true;
            }
        }
    }

    /// Take the status line away for good.
    fn clear_status(&mut self) {
        if let Some(s) = self.status.take() {
            s.clear();
        }
    }
}

/// The status line's parts: the time running, what is open and seen, the capture rate over
/// the last tick, and the kernel's drop counters (a drop is a gap in some stream), each with
/// shorter forms for a narrow terminal; the time and the drops are never left out.
fn status_parts(
    elapsed: Duration,
    conns: (u64, u64),
    streams: (usize, u64),
    bits_per_second: f64,
    packets: u64,
    kernel: Option<KernelStats>,
) -> Vec<Part> {
    let secs = elapsed.as_secs();
    let time = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    let (drops, short) = match kernel {
        Some(k) => (
            format!("kernel drops {} (interface {})", k.dropped, k.if_dropped),
            format!("drops {}+{}", k.dropped, k.if_dropped),
        ),
        None => ("kernel drops ?".into(), "drops ?".into()),
    };
    let rate = format!("{:.2} Mbit/s", bits_per_second / 1e6);
    vec![
        Part::new(0, &[&time]),
        Part::new(
            3,
            &[
                &format!("connections {} open/{} seen", conns.0, conns.1),
                &format!("conns {}/{}", conns.0, conns.1),
                "",
            ],
        ),
        Part::new(
            2,
            &[
                &format!("streams {} open/{} seen", streams.0, streams.1),
                &format!("streams {}/{}", streams.0, streams.1),
                "",
            ],
        ),
        Part::new(4, &[&rate, &rate, ""]),
        Part::new(
            5,
            &[
                &format!("{packets} packets"),
                &format!("{packets} pkts"),
                "",
            ],
        ),
        Part::new(1, &[&drops, &short]),
    ]
}

fn describe_start(o: &Output) -> Option<String> {
    let Output::StreamStarted {
        client,
        app,
        role,
        name,
        msid,
        ..
    } = o
    else {
        return None;
    };
    let name = name.as_deref().map_or(format!("<msid {msid}>"), |n| {
        sink::naming::quoted(&sink::naming::escape(n))
    });
    let app = app.as_deref().map_or("?".into(), sink::naming::escape);
    Some(format!(
        "{} {name} app={app} client {client}",
        role.as_str()
    ))
}

/// The live run's sink: every output to the FLV sink, and the starts and ends of streams
/// announced on the console.
struct LiveSink {
    flv: FlvSink,
    console: Console,
    start: Instant,
    ended_conns: u64,
    streams_seen: u64,
    output: PathBuf,
}

impl OutputSink for LiveSink {
    type Error = anyhow::Error;

    fn output(&mut self, o: Output) -> Result<()> {
        let started = describe_start(&o);
        if started.is_some() {
            self.streams_seen += 1;
        }
        let ended = match &o {
            Output::StreamEnded { conn, stream } => Some((*conn, *stream)),
            Output::ConnectionEnded(_) => {
                self.ended_conns += 1;
                None
            }
            _ => None,
        };
        let output = &self.output;
        self.flv.handle(o).map_err(|e| write_err(output, e))?;
        let at = self.start.elapsed().as_secs_f64();
        if let Some(d) = started {
            self.console.line(&format!("[{at:8.1}s] started {d}"));
        }
        if let Some((conn, stream)) = ended
            && let Some(r) = self.flv.stream_report(conn, stream)
        {
            let line = describe_end(r);
            self.console.line(&format!("[{at:8.1}s] ended {line}"));
        }
        Ok(())
    }
}

fn write_err(output: &Path, e: std::io::Error) -> anyhow::Error {
    anyhow::Error::new(e).context(format!("writing into {}", output.display()))
}

/// A stream that ended, for the console.
fn describe_end(r: &StreamReport) -> String {
    format!(
        "{} {}: {} video, {} audio frames, {:.1} s -> {}",
        r.direction,
        r.name
            .as_deref()
            .map_or(format!("<msid {}>", r.message_stream_id), |n| format!(
                "\"{n}\""
            )),
        r.video_frames,
        r.audio_frames,
        r.duration_ms as f64 / 1000.0,
        match r.file.as_deref() {
            Some("-") => "standard output",
            Some(f) => f,
            None => "(no media, no file)",
        }
    )
}

/// The `--tls-keylog` files of a live run, read again as they grow: an encoder appends a line
/// for each connection it opens.
struct KeyLogs {
    files: Vec<(PathBuf, std::fs::File, u64)>,
}

impl KeyLogs {
    /// Open every file, or the one line that says which could not be.
    fn open(paths: &[PathBuf]) -> Result<Self, String> {
        let mut files = Vec::new();
        for p in paths {
            let f = std::fs::File::open(p)
                .map_err(|e| format!("{}: cannot read the TLS key log: {e}", p.display()))?;
            files.push((p.clone(), f, 0));
        }
        Ok(KeyLogs { files })
    }

    /// What the files gained since the last look, into the pipeline's keys. A file that got
    /// shorter (rewritten) is read again from its start.
    fn poll(&mut self, pipeline: &mut Pipeline) {
        use std::io::{Read, Seek, SeekFrom};
        let mut buf = vec![0u8; 64 << 10];
        for (_, f, at) in &mut self.files {
            if f.metadata().is_ok_and(|m| m.len() < *at) {
                *at = 0;
            }
            if f.seek(SeekFrom::Start(*at)).is_err() {
                continue;
            }
            while let Ok(n) = f.read(&mut buf) {
                if n == 0 {
                    break;
                }
                *at += n as u64;
                pipeline.extend_keys(&buf[..n]);
            }
        }
    }
}

/// The FLV sink of a live run, with its spool, ready to write into the output folder.
fn live_flv_sink(args: &LiveArgs) -> Result<FlvSink> {
    let output = &args.output;
    let cannot = || format!("cannot use output folder {}", output.display());
    let mut sink = FlvSink::new(output)
        .with_context(cannot)?
        .with_limits(&args.config.limits)
        .flush_on_keyframes(true)
        // As much again as the kernel buffer for tags waiting to be written: a burst the
        // kernel buffer holds is not stopped by the disk.
        .with_write_budget(args.capture.buffer_bytes.unwrap_or(0).max(0) as usize)
        .with_sha256(args.sha256)
        .with_selection(args.selection.clone());
    if let Some(sel) = &args.stdout_stream {
        sink = sink.with_pipe(sel, Box::new(std::io::stdout()));
    }
    // Ended connections' reports wait in a file, not in memory, however long the run.
    sink.spool_in(
        output,
        TextKind::Summary {
            verbose: args.verbose,
        },
    )
    .with_context(cannot)?;
    Ok(sink)
}

/// The flag SIGINT and SIGTERM set. First signal: stop cleanly. A second one while
/// stopping: quit at once (exit 130), for a shutdown that hangs on a stuck disk.
fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&stop))?;
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    Ok(stop)
}

pub fn run(mut args: LiveArgs) -> Result<u8> {
    let stop = stop_on_signals()?;
    if let Some(note) = rtmpsniff::sink::fit_open_files(&mut args.config.limits) {
        say!("rtmpsniff: {note}");
    }
    let piping = args.stdout_stream.is_some();
    if piping && std::io::stdout().is_terminal() {
        say!(
            "rtmpsniff: --stdout writes binary FLV: send it to a pipe or a file (e.g. `| ffplay -`)"
        );
        return Ok(super::EXIT_BAD_INPUT);
    }
    let mut keylogs = match KeyLogs::open(&args.keylogs) {
        Ok(k) => k,
        Err(e) => {
            say!("rtmpsniff: {e}");
            return Ok(super::EXIT_BAD_INPUT);
        }
    };
    let mut args = args;
    match interface_named(&args.capture.interface) {
        Ok(name) => args.capture.interface = name,
        Err(e) => {
            say!("rtmpsniff: {e}");
            return Ok(super::EXIT_BAD_INPUT);
        }
    }
    let mut cap = match LiveCapture::open(&args.capture) {
        Ok(c) => c,
        Err(e) => {
            say!("rtmpsniff: {e}");
            return Ok(super::EXIT_BAD_INPUT);
        }
    };
    // The folder is made (and a link to it resolved) once the capture could start.
    if !super::use_output_dir(&mut args.output) {
        return Ok(super::EXIT_BAD_INPUT);
    }
    let sink = LiveSink {
        flv: live_flv_sink(&args)?,
        console: Console {
            to_stderr: piping,
            quiet: args.quiet,
            verbose: args.verbose,
            status: None,
            stdout_gone: false,
        },
        start: Instant::now(),
        ended_conns: 0,
        streams_seen: 0,
        output: args.output.clone(),
    };
    if !args.quiet {
        say!(
            "rtmpsniff: listening on {} ({}), filter \"{}\", {}promiscuous; Ctrl-C stops",
            args.capture.interface,
            cap.link_type_name(),
            cap.filter(),
            if args.capture.promiscuous { "" } else { "not " },
        );
    }
    let capture_filter = cap.filter().to_string();
    let mut driver = Driver::new(Pipeline::new(args.config.clone()), sink);
    if !args.quiet {
        driver.sink.console.status = StatusLine::text();
    }
    keylogs.poll(&mut driver.pipeline);
    let capture_error = capture_loop(&mut cap, &mut driver, &mut keylogs, &stop, args.duration)?;
    // Stop: every connection is flushed and closed, every file finalised, then the report.
    let input = cap.report();
    drop(cap);
    driver.finish()?;
    let Driver { pipeline, sink } = driver;
    let LiveSink {
        flv: mut sink,
        mut console,
        ..
    } = sink;
    console.clear_status();
    let kernel = input.kernel;
    let output = &args.output;
    sink.finish().map_err(|e| write_err(output, e))?;
    let mut hits = pipeline.stats().limit_hits;
    hits.add(&sink.limit_hits);
    let (selecting, seen) = (!args.selection.is_empty(), sink.seen());
    let output_errors = sink.output_errors();
    for e in &output_errors {
        say!("rtmpsniff: {e}");
    }
    let mut report = Report {
        run: super::run_info(),
        inputs: vec![input],
        selection: rtmpsniff::capture::SelectionReport {
            filter: Some(capture_filter),
            ..Default::default()
        },
        input_errors: Vec::new(),
        output_errors,
        stats: pipeline.stats(),
        limits: hits.report(&args.config.limits),
        connections: sink.into_report_connections(),
        remuxed: Default::default(),
    };
    let path = sink::write_report(output, &mut |w| report.write_json(w))
        .map_err(|e| write_err(output, e))?;
    if !args.quiet {
        print_summary(&mut console, &mut report, kernel, &path);
    }
    if let Some(e) = capture_error {
        say!("rtmpsniff: capture stopped: {e}; the files and the report hold what came before");
        return Ok(super::EXIT_BAD_INPUT);
    }
    if console.stdout_gone {
        return Err(super::stdout_gone());
    }
    if report.connections.is_empty() {
        let input = format!("live:{}", args.capture.interface);
        let ports = &args.config.ports;
        say!(
            "rtmpsniff: {}",
            super::nothing_found(selecting, seen, &[input], ports)
        );
        return Ok(super::EXIT_NO_RTMP);
    }
    Ok(super::EXIT_OK)
}

/// The run's summary, the kernel's counters and where the report is: on standard output,
/// or on standard error when standard output is the pipe.
fn print_summary(
    console: &mut Console,
    report: &mut Report,
    kernel: Option<KernelStats>,
    path: &Path,
) {
    let mut text = report.summary(console.verbose);
    if let Some(k) = kernel {
        text.push_str(&format!(
            "kernel: {} packets received by filter, {} dropped by kernel, {} dropped by interface\n",
            k.received, k.dropped, k.if_dropped
        ));
    }
    text.push_str(&format!("report: {}\n", path.display()));
    console.text(&text);
}

/// Capture until a signal, the `--duration`, the end of the piped stream, or an error of the
/// capture (returned: the run still finishes what it has). Once a second, the key logs are
/// read again, the files are handed to the writer, the `--write-pcap` file flushed and the
/// status line redrawn.
fn capture_loop(
    cap: &mut LiveCapture,
    driver: &mut Driver<LiveSink>,
    keylogs: &mut KeyLogs,
    stop: &AtomicBool,
    duration: Option<Duration>,
) -> Result<Option<rtmpsniff::capture::LiveError>> {
    let start = driver.sink.start;
    let deadline = duration.map(|d| start + d);
    let mut next_tick = start + TICK;
    let mut last_tick = (start, 0u64);
    loop {
        if stop.load(Ordering::SeqCst)
            || deadline.is_some_and(|d| Instant::now() >= d)
            || driver.sink.flv.pipe_done()
            || driver.sink.console.stdout_gone
        {
            return Ok(None);
        }
        match cap.next_frame() {
            Ok(Some(frame)) => driver.frame(&frame)?,
            Ok(None) => {}
            Err(e) => return Ok(Some(e)),
        }
        let now = Instant::now();
        if now < next_tick {
            continue;
        }
        next_tick = now + TICK;
        keylogs.poll(&mut driver.pipeline);
        driver.take()?;
        let output = &driver.sink.output;
        driver
            .sink
            .flv
            .hand_over()
            .map_err(|e| write_err(output, e))?;
        cap.flush()?;
        if driver.sink.console.status.is_some() {
            let stats = driver.pipeline.stats();
            let secs = now.duration_since(last_tick.0).as_secs_f64();
            let bytes = stats.bytes - last_tick.1;
            last_tick = (now, stats.bytes);
            let s = &driver.sink;
            let parts = status_parts(
                now - start,
                (stats.connections - s.ended_conns, stats.connections),
                (s.flv.open_streams(), s.streams_seen),
                bytes as f64 * 8.0 / secs.max(1e-3),
                stats.frames,
                cap.kernel_stats(),
            );
            if let Some(status) = &driver.sink.console.status {
                status.set(&parts);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term::fit;

    fn parts() -> Vec<Part> {
        status_parts(
            Duration::from_secs(3725),
            (2, 5),
            (1, 3),
            2_500_000.0,
            1234,
            Some(KernelStats {
                received: 1300,
                dropped: 7,
                if_dropped: 0,
            }),
        )
    }

    #[test]
    fn status_line_shows_drops() {
        assert_eq!(
            fit(&parts(), 200),
            "01:02:05  connections 2 open/5 seen  streams 1 open/3 seen  2.50 Mbit/s  1234 packets  kernel drops 7 (interface 0)"
        );
    }

    #[test]
    fn status_line_fits_80_columns_with_everything_in_it() {
        let line = fit(&parts(), 80);
        assert_eq!(
            line,
            "01:02:05  conns 2/5  streams 1/3  2.50 Mbit/s  1234 pkts  drops 7+0"
        );
        for width in 0..200 {
            assert!(
                fit(&parts(), width).chars().count() < width.max(1),
                "{width}"
            );
        }
    }
}
