//! The `live` subcommand: capture on an interface until Ctrl-C, SIGTERM, `--duration` or the
//! end of the stream sent to standard output, writing each stream's file as it comes.
//!
//! Part of the binary, not the library: this is the one place that owns the wall clock, the
//! signals and the terminal. The protocol layers still see only packets and their timestamps.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use rtmpsniff::capture::live::{self, LiveCapture, LiveError, LiveOptions};
use rtmpsniff::capture::queue::{DropReason, FrameQueue, Producer, QueueReport};
use rtmpsniff::capture::{CpuStats, KernelStats, QueueStats};
use rtmpsniff::flow::{ConnId, ConnKey};
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
    /// Repair across connections at the end (not `--no-repair`).
    pub repair: bool,
    /// `--workers N`: capture threads in one fanout group, each with its own pipeline.
    pub workers: usize,
    /// `--http ADDR:PORT` (and its token): the page, the state and HTTP-FLV.
    pub http: Option<crate::web::WebArgs>,
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
    ours: u64,
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
    // rtmpsniff's own drops (its queue was full), only when there are some.
    let (drops, short) = if ours > 0 {
        (
            format!("{drops}, rtmpsniff drops {ours}"),
            format!("{short}+{ours}"),
        )
    } else {
        (drops, short)
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
    /// The selection, to tell the capture's queue which connections it leaves out.
    selection: rtmpsniff::sink::Selection,
    /// Open connections with a stream started, and whether the selection kept any of them
    /// (only with a selection).
    selected: HashMap<ConnId, (ConnKey, bool)>,
    /// `--http`: the state the page shows and the viewers' queues (never waited for).
    web: Option<crate::web::Publisher>,
}

impl LiveSink {
    /// Notes which connections the selection leaves out so far (every stream started on
    /// them refused), for the capture's queue.
    fn note_selection(&mut self, o: &Output) {
        if self.selection.is_empty() {
            return;
        }
        match o {
            Output::StreamStarted {
                conn,
                client,
                server,
                app,
                name,
                role,
                ..
            } => {
                let kept = self.selection.keeps(
                    app.as_deref(),
                    name.as_deref(),
                    (*client, *server),
                    *role,
                );
                let e = self
                    .selected
                    .entry(*conn)
                    .or_insert((ConnKey::new(*client, *server), false));
                e.1 |= kept;
            }
            Output::ConnectionEnded(f) => {
                self.selected.remove(&f.id);
            }
            _ => {}
        }
    }

    /// Connections whose every stream the selection left out.
    fn unselected(&self) -> impl Iterator<Item = ConnKey> + '_ {
        self.selected
            .values()
            .filter(|(_, kept)| !kept)
            .map(|(k, _)| *k)
    }
}

impl OutputSink for LiveSink {
    type Error = anyhow::Error;

    fn output(&mut self, o: Output) -> Result<()> {
        self.note_selection(&o);
        if let Some(w) = &mut self.web {
            w.output(&o);
        }
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
        .with_repair(args.repair)
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
    let workers = args.workers.max(1);
    let mut caps = Vec::new();
    for _ in 0..workers {
        let mut opts = args.capture.clone();
        if workers > 1 {
            // One group per process: its number from the process id, as tools sharing an
            // interface this way do (two runs on one interface must not share a group).
            opts.fanout = Some(std::process::id() as u16);
        }
        match LiveCapture::open(&opts) {
            Ok(c) => caps.push(c),
            Err(e) => {
                say!("rtmpsniff: {e}");
                return Ok(super::EXIT_BAD_INPUT);
            }
        }
    }
    // The folder is made (and a link to it resolved) once the capture could start.
    if !super::use_output_dir(&mut args.output) {
        return Ok(super::EXIT_BAD_INPUT);
    }
    let web = match &args.http {
        None => None,
        Some(h) => {
            let board = Arc::new(crate::web::Board::default());
            let publisher = crate::web::Publisher::new(
                Arc::clone(&board),
                args.config.limits.http_viewer_bytes,
            );
            match crate::web::start(h, board) {
                Ok(addr) => {
                    if !args.quiet {
                        let q = if h.token.is_some() { "?token=..." } else { "" };
                        say!("rtmpsniff: serving the live page on http://{addr}/{q}");
                    }
                    Some(publisher)
                }
                Err(e) => {
                    say!("rtmpsniff: {e}");
                    return Ok(super::EXIT_BAD_INPUT);
                }
            }
        }
    };
    let mut sink = LiveSink {
        web,
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
        selection: args.selection.clone(),
        selected: HashMap::new(),
    };
    if !args.quiet {
        say!(
            "rtmpsniff: listening on {} ({}), filter \"{}\", {}promiscuous{}; Ctrl-C stops",
            args.capture.interface,
            caps[0].link_type_name(),
            caps[0].filter(),
            if args.capture.promiscuous { "" } else { "not " },
            if workers > 1 {
                format!(", {workers} workers")
            } else {
                String::new()
            },
        );
        sink.console.status = StatusLine::text();
    }
    let capture_filter = caps[0].filter().to_string();
    let cpu_at_start = cpu_seconds();
    let ran = if workers == 1 {
        let cap = caps.pop().expect("one capture");
        run_one(cap, sink, &args, &mut keylogs, &stop)?
    } else {
        run_workers(caps, sink, &args, &stop)?
    };
    let Ran {
        mut input,
        stats,
        sink,
        capture_error,
        queue,
    } = ran;
    input.dropped_by_rtmpsniff = Some(queue.dropped);
    input.queue = Some(QueueStats {
        limit_bytes: queue.limit_bytes,
        peak_bytes: queue.peak_bytes,
        drained_at_stop: queue.drained_at_stop,
    });
    let LiveSink {
        flv: mut sink,
        mut console,
        web,
        ..
    } = sink;
    let viewers_dropped = web.map_or(0, |mut w| {
        w.stop();
        w.viewers_dropped()
    });
    console.clear_status();
    let output = &args.output;
    sink.finish().map_err(|e| write_err(output, e))?;
    let cpu = cpu_seconds() - cpu_at_start;
    let gbit = input.bytes as f64 * 8.0 / 1e9;
    input.cpu = Some(CpuStats {
        cpu_seconds: cpu,
        captured_gbit: gbit,
        cpu_seconds_per_gbit: (gbit > 0.0).then(|| cpu / gbit),
    });
    // The sink's, the queue's and the viewers' limits count with the pipeline's: `stats`
    // and `limits` agree.
    let mut stats = stats;
    stats.limit_hits.add(&sink.limit_hits);
    stats.limit_hits.queue_bytes += queue.dropped.total();
    stats.limit_hits.http_viewer_bytes += viewers_dropped;
    let hits = stats.limit_hits.clone();
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
        stats,
        limits: hits.report(&args.config.limits),
        connections: sink.into_report_connections(),
        remuxed: Default::default(),
    };
    let path = sink::write_report(output, &mut |w| report.write_json(w))
        .map_err(|e| write_err(output, e))?;
    if !args.quiet {
        print_summary(&mut console, &mut report, &path);
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

/// What the capture threads and pipelines of a run leave for its report.
struct Ran {
    input: rtmpsniff::capture::InputReport,
    stats: rtmpsniff::pipeline::Stats,
    sink: LiveSink,
    capture_error: Option<LiveError>,
    queue: QueueReport,
}

fn new_shared(args: &LiveArgs, stop: &Arc<AtomicBool>, unselected: &Arc<Unselected>) -> Shared {
    Shared {
        queue: FrameQueue::new(args.config.limits.queue_bytes),
        signal: Arc::clone(stop),
        halt: AtomicBool::new(false),
        kernel: Mutex::new(None),
        dropped: AtomicU64::new(0),
        unwanted: RwLock::new(HashMap::new()),
        unselected: Arc::clone(unselected),
        config: args.config.clone(),
        watch: None,
        link: Mutex::new(Vec::new()),
    }
}

/// One capture thread and the pipeline on this one, the sink behind it.
fn run_one(
    cap: LiveCapture,
    sink: LiveSink,
    args: &LiveArgs,
    keylogs: &mut KeyLogs,
    stop: &Arc<AtomicBool>,
) -> Result<Ran> {
    let mut driver = Driver::new(Pipeline::new(args.config.clone()), sink);
    keylogs.poll(&mut driver.pipeline);
    let mut shared = new_shared(args, stop, &Arc::default());
    shared.watch = Some(args.capture.interface.clone());
    let (mut cap, capture_error, queue, run) = std::thread::scope(|scope| {
        let capturing = std::thread::Builder::new()
            .name("capture".into())
            .spawn_scoped(scope, || capture_thread(cap, &shared))
            .expect("a thread for the capture");
        let run = pipeline_loop(&shared, &mut driver, keylogs, args.duration);
        // Whatever ended the run (an error too), the capture stops, and what it queued
        // before is read (a second Ctrl-C quits at once).
        shared.halt.store(true, Ordering::SeqCst);
        let run = run.and_then(|()| drain_queue(&shared, &mut driver));
        let (cap, err, queue) = capturing.join().expect("the capture thread");
        (cap, err, queue, run)
    });
    run?;
    // Stop: every connection is flushed and closed, every file finalised, then the report.
    let mut input = cap.report();
    input.link_events = shared.link.into_inner().unwrap_or_else(|e| e.into_inner());
    drop(cap);
    driver.finish()?;
    let Driver { pipeline, sink } = driver;
    Ok(Ran {
        input,
        stats: pipeline.stats(),
        sink,
        capture_error,
        queue,
    })
}

/// A worker's outputs, a batch of frames' worth at a time, to the one sink.
struct ToSink {
    tx: std::sync::mpsc::SyncSender<Vec<Output>>,
    batch: Vec<Output>,
}

impl OutputSink for ToSink {
    type Error = anyhow::Error;

    fn output(&mut self, o: Output) -> Result<()> {
        self.batch.push(o);
        if self.batch.len() >= 1024 {
            self.send()?;
        }
        Ok(())
    }
}

impl ToSink {
    fn send(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.tx
            .send(std::mem::take(&mut self.batch))
            .map_err(|_| anyhow::anyhow!("the sink stopped"))
    }
}

/// A worker's pipeline: batches from its queue until the queue is closed and empty, then
/// every connection closed; outputs to the sink, counters published each tick.
fn worker_pipeline(
    sh: &Shared,
    mut pipeline: Pipeline,
    keylog_paths: &[PathBuf],
    tx: std::sync::mpsc::SyncSender<Vec<Output>>,
    stats: &Mutex<rtmpsniff::pipeline::Stats>,
) -> Result<()> {
    let mut keylogs = KeyLogs::open(keylog_paths).unwrap_or(KeyLogs { files: Vec::new() });
    keylogs.poll(&mut pipeline);
    let mut driver = Driver::new(
        pipeline,
        ToSink {
            tx,
            batch: Vec::new(),
        },
    );
    let mut next_tick = Instant::now() + TICK;
    let publish = |d: &mut Driver<ToSink>| {
        *stats.lock().unwrap_or_else(|e| e.into_inner()) = d.pipeline.stats();
    };
    let result = (|| -> Result<()> {
        while !sh.queue.is_done() {
            if let Some(b) = sh.queue.pop(Duration::from_millis(100)) {
                for f in b.frames() {
                    driver.frame(&f)?;
                }
                sh.queue.give_back(b);
                driver.sink.send()?;
            }
            let now = Instant::now();
            if now >= next_tick {
                next_tick = now + TICK;
                keylogs.poll(&mut driver.pipeline);
                driver.take()?;
                driver.sink.send()?;
                let dead = driver.pipeline.dead_connections();
                *sh.unwanted.write().unwrap_or_else(|e| e.into_inner()) =
                    dead.into_iter().map(|k| (k, DropReason::NotRtmp)).collect();
                publish(&mut driver);
            }
        }
        driver.finish()?;
        driver.sink.send()
    })();
    publish(&mut driver);
    result
}

/// `--workers N`: N captures in one fanout group, each with a capture thread and a pipeline
/// thread; their outputs come to the one sink on this thread, which also decides when the
/// run stops. One report: inputs merged, counters summed.
fn run_workers(
    caps: Vec<LiveCapture>,
    mut sink: LiveSink,
    args: &LiveArgs,
    stop: &Arc<AtomicBool>,
) -> Result<Ran> {
    let n = caps.len();
    let unselected: Arc<Unselected> = Arc::default();
    let shared: Vec<Shared> = (0..n)
        .map(|w| {
            let mut sh = new_shared(args, stop, &unselected);
            // One thread watches the interface for the run.
            sh.watch = (w == 0).then(|| args.capture.interface.clone());
            sh
        })
        .collect();
    let stats: Vec<Mutex<rtmpsniff::pipeline::Stats>> = (0..n).map(|_| Mutex::default()).collect();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Output>>(256);
    let start = sink.start;
    let deadline = args.duration.map(|d| start + d);
    let (captures, results, run) = std::thread::scope(|scope| {
        let mut capturing = Vec::new();
        let mut piping = Vec::new();
        for (w, cap) in caps.into_iter().enumerate() {
            let sh = &shared[w];
            capturing.push(
                std::thread::Builder::new()
                    .name(format!("capture{w}"))
                    .spawn_scoped(scope, move || capture_thread(cap, sh))
                    .expect("a thread for the capture"),
            );
            let mut pipeline = Pipeline::new(args.config.clone());
            pipeline.number_from(w as u64, n as u64);
            let tx = tx.clone();
            let st = &stats[w];
            let paths = &args.keylogs;
            piping.push(
                std::thread::Builder::new()
                    .name(format!("pipeline{w}"))
                    .spawn_scoped(scope, move || worker_pipeline(sh, pipeline, paths, tx, st))
                    .expect("a thread for a pipeline"),
            );
        }
        drop(tx);
        let halt = || {
            for sh in &shared {
                sh.halt.store(true, Ordering::SeqCst);
            }
        };
        let mut next_tick = start + TICK;
        let mut last_tick = (start, 0u64);
        let mut link_said = 0;
        let run = (|| -> Result<()> {
            loop {
                if stop.load(Ordering::SeqCst)
                    || deadline.is_some_and(|d| Instant::now() >= d)
                    || sink.flv.pipe_done()
                    || sink.console.stdout_gone
                {
                    halt();
                }
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(batch) => {
                        for o in batch {
                            sink.output(o)?;
                        }
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    // Every worker finished: the run is over.
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
                }
                if let Some(w) = &mut sink.web {
                    w.take_viewers();
                }
                let now = Instant::now();
                if now < next_tick {
                    continue;
                }
                next_tick = now + TICK;
                if let Some(w) = &mut sink.web {
                    w.tick(sum_kernel(shared.iter().map(|sh| {
                        *sh.kernel.lock().unwrap_or_else(|e| e.into_inner())
                    })));
                }
                say_link_events(&shared[0], &mut link_said, &mut sink.console);
                let output = &sink.output;
                sink.flv.hand_over().map_err(|e| write_err(output, e))?;
                *unselected.write().unwrap_or_else(|e| e.into_inner()) =
                    sink.unselected().collect();
                if sink.console.status.is_some() {
                    let mut sum = rtmpsniff::pipeline::Stats::default();
                    for s in &stats {
                        sum.add(&s.lock().unwrap_or_else(|e| e.into_inner()));
                    }
                    let kernel = sum_kernel(
                        shared
                            .iter()
                            .map(|sh| *sh.kernel.lock().unwrap_or_else(|e| e.into_inner())),
                    );
                    let dropped = shared.iter().map(|sh| sh.dropped.load(Ordering::Relaxed));
                    let secs = now.duration_since(last_tick.0).as_secs_f64();
                    let bytes = sum.bytes.saturating_sub(last_tick.1);
                    last_tick = (now, sum.bytes);
                    let parts = status_parts(
                        now - start,
                        (
                            sum.connections.saturating_sub(sink.ended_conns),
                            sum.connections,
                        ),
                        (sink.flv.open_streams(), sink.streams_seen),
                        bytes as f64 * 8.0 / secs.max(1e-3),
                        sum.frames,
                        kernel,
                        dropped.sum(),
                    );
                    if let Some(status) = &sink.console.status {
                        status.set(&parts);
                    }
                }
            }
        })();
        halt();
        // Workers blocked on a full channel see it closed and stop.
        drop(rx);
        let captures: Vec<_> = capturing
            .into_iter()
            .map(|h| h.join().expect("a capture thread"))
            .collect();
        let results: Vec<_> = piping
            .into_iter()
            .map(|h| h.join().expect("a pipeline thread"))
            .collect();
        (captures, results, run)
    });
    run?;
    for r in results {
        r?;
    }
    let mut inputs = Vec::new();
    let mut capture_error = None;
    let mut queue = QueueReport::default();
    for (mut cap, err, q) in captures {
        inputs.push(cap.report());
        capture_error = capture_error.or(err);
        queue.limit_bytes += q.limit_bytes;
        queue.peak_bytes += q.peak_bytes;
        queue.dropped.add(&q.dropped);
        queue.drained_at_stop += q.drained_at_stop;
    }
    let mut total = rtmpsniff::pipeline::Stats::default();
    for s in &stats {
        total.add(&s.lock().unwrap_or_else(|e| e.into_inner()));
    }
    let mut input = merge_inputs(inputs);
    input.link_events = shared[0]
        .link
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Ok(Ran {
        input,
        stats: total,
        sink,
        capture_error,
        queue,
    })
}

fn sum_kernel(all: impl Iterator<Item = Option<KernelStats>>) -> Option<KernelStats> {
    let mut sum: Option<KernelStats> = None;
    for k in all.flatten() {
        let s = sum.get_or_insert_with(KernelStats::default);
        s.received = s.received.wrapping_add(k.received);
        s.dropped = s.dropped.wrapping_add(k.dropped);
        s.if_dropped = s.if_dropped.wrapping_add(k.if_dropped);
    }
    sum
}

/// The workers' captures of one interface as one input: counts and the kernel's counters
/// summed, the first and last packet times of all.
fn merge_inputs(inputs: Vec<rtmpsniff::capture::InputReport>) -> rtmpsniff::capture::InputReport {
    let mut it = inputs.into_iter();
    let mut m = it.next().expect("at least one capture");
    let mut kernels = vec![m.kernel];
    for i in it {
        m.packets += i.packets;
        m.bytes += i.bytes;
        m.truncated_packets += i.truncated_packets;
        m.first_time = match (m.first_time, i.first_time) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        m.last_time = match (m.last_time, i.last_time) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        m.error = m.error.or(i.error);
        kernels.push(i.kernel);
    }
    m.kernel = sum_kernel(kernels.into_iter());
    m
}

/// The run's summary, the kernel's counters, rtmpsniff's own drops and queue, what the run
/// cost and where the report is: on standard output, or on standard error when standard
/// output is the pipe.
fn print_summary(console: &mut Console, report: &mut Report, path: &Path) {
    let mut text = report.summary(console.verbose);
    text.push_str(&live_lines(&report.inputs[0]));
    text.push_str(&format!("report: {}\n", path.display()));
    console.text(&text);
}

/// The lines a live run ends its summary with.
fn live_lines(input: &rtmpsniff::capture::InputReport) -> String {
    let mut text = String::new();
    if let Some(k) = input.kernel {
        text.push_str(&format!(
            "kernel: {} packets received by filter, {} dropped by kernel, {} dropped by interface\n",
            k.received, k.dropped, k.if_dropped
        ));
    }
    if let (Some(d), Some(q)) = (input.dropped_by_rtmpsniff, input.queue) {
        text.push_str(&format!(
            "rtmpsniff: {} packets dropped by rtmpsniff (queue full {}, not TCP {}, not RTMP {}, unselected {}); queue peak {} of {}; {} read from the kernel's buffer after the stop\n",
            d.total(),
            d.queue_full,
            d.not_tcp,
            d.not_rtmp,
            d.unselected,
            mib(q.peak_bytes),
            mib(q.limit_bytes),
            q.drained_at_stop,
        ));
    }
    if let Some(c) = input.cpu {
        let per = c
            .cpu_seconds_per_gbit
            .map_or("-".into(), |p| format!("{p:.2} s"));
        text.push_str(&format!(
            "cpu: {:.2} s for {:.3} Gbit captured, {per} per Gbit\n",
            c.cpu_seconds, c.captured_gbit
        ));
    }
    text
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
}

/// CPU time of the process so far, every thread, user and system.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given, owned here.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0.0;
    }
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 * 1e-6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// What the capture thread and the pipeline thread share.
struct Shared {
    queue: FrameQueue,
    /// Set by SIGINT or SIGTERM.
    signal: Arc<AtomicBool>,
    /// Set by the pipeline thread: the run is over (duration, the pipe, an error).
    halt: AtomicBool,
    /// The kernel's counters, as the capture thread last read them.
    kernel: Mutex<Option<KernelStats>>,
    /// Frames the queue dropped so far.
    dropped: AtomicU64,
    /// The interface whose state this capture thread watches (one thread per run does), and
    /// the changes it saw.
    watch: Option<String>,
    link: Mutex<Vec<rtmpsniff::capture::LinkEvent>>,
    /// Connections the pipeline gave up on (not readable RTMP), refreshed each tick.
    unwanted: RwLock<HashMap<ConnKey, DropReason>>,
    /// Connections whose streams the selection leaves out (one set for every worker: the
    /// sink, which knows, is one).
    unselected: Arc<Unselected>,
    config: rtmpsniff::Config,
}

type Unselected = RwLock<std::collections::HashSet<ConnKey>>;

impl Shared {
    fn stopping(&self) -> bool {
        self.signal.load(Ordering::SeqCst) || self.halt.load(Ordering::SeqCst)
    }

    /// Why a frame may be dropped first, if it may: not TCP, not a followed port, or a
    /// connection the tool is not recovering.
    fn unwanted(&self, f: &rtmpsniff::Frame<'_>) -> Option<DropReason> {
        match rtmpsniff::pipeline::flow_of(&self.config, f.linktype, f.data) {
            None => Some(DropReason::NotTcp),
            Some((_, false)) => Some(DropReason::NotRtmp),
            Some((key, true)) => {
                let dead = self.unwanted.read().unwrap_or_else(|e| e.into_inner());
                if let Some(r) = dead.get(&key) {
                    return Some(*r);
                }
                drop(dead);
                let unselected = self.unselected.read().unwrap_or_else(|e| e.into_inner());
                unselected.contains(&key).then_some(DropReason::Unselected)
            }
        }
    }
}

/// Batches of about this much cross the queue (fewer handovers, one allocation each).
const BATCH_BYTES: usize = 256 << 10;
/// A batch waits no longer than this for more frames while the ring keeps giving them.
const BATCH_WAIT: Duration = Duration::from_millis(10);

/// The capture thread: it only drains the kernel's ring into the queue (and the
/// `--write-pcap` file), never waits for the pipeline, and stops when told. It runs at a
/// higher priority where that is allowed.
fn capture_thread(
    mut cap: LiveCapture,
    sh: &Shared,
) -> (LiveCapture, Option<LiveError>, QueueReport) {
    raise_priority();
    let mut p = Producer::new(&sh.queue, BATCH_BYTES);
    let mut batch_since = Instant::now();
    let mut next_tick = Instant::now() + TICK;
    let mut up = sh.watch.as_deref().and_then(live::interface_up);
    let err = loop {
        if sh.stopping() {
            break None;
        }
        match cap.try_frame() {
            Ok(Some(f)) => {
                if !p.pending() {
                    batch_since = Instant::now();
                }
                if p.push(&f, || sh.unwanted(&f)).is_some() {
                    sh.dropped.fetch_add(1, Ordering::Relaxed);
                }
                if p.pending() && batch_since.elapsed() >= BATCH_WAIT {
                    p.flush();
                }
            }
            Ok(None) => {
                p.flush();
                cap.wait(live::READ_TIMEOUT_MS);
            }
            Err(e) => break Some(e),
        }
        let now = Instant::now();
        if now >= next_tick {
            next_tick = now + TICK;
            p.flush();
            if let Err(e) = cap.flush() {
                break Some(e);
            }
            *sh.kernel.lock().unwrap_or_else(|e| e.into_inner()) = cap.kernel_stats();
            if let Some(name) = &sh.watch {
                let now_up = live::interface_up(name);
                if let (Some(was), Some(is)) = (up, now_up)
                    && was != is
                {
                    let t = super::wall_clock();
                    sh.link.lock().unwrap_or_else(|e| e.into_inner()).push(
                        rtmpsniff::capture::LinkEvent {
                            time: t,
                            time_utc: rtmpsniff::sink::report::iso8601_us(t).unwrap_or_default(),
                            state: if is { "up" } else { "down" },
                        },
                    );
                }
                up = now_up.or(up);
            }
        }
    };
    // Stopped by a signal, the duration or the reader going away: what the kernel still
    // holds arrived before the stop, and is read (for a short time at most, and only
    // packets stamped before the stop).
    let mut drained = 0;
    if err.is_none() {
        let stop_at = super::wall_clock();
        let until = Instant::now() + live::DRAIN_AT_STOP;
        while Instant::now() < until {
            match cap.try_frame() {
                Ok(Some(f)) if f.ts <= stop_at => {
                    if p.push(&f, || sh.unwanted(&f)).is_some() {
                        sh.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    drained += 1;
                }
                _ => break,
            }
        }
    }
    p.flush();
    sh.queue.close();
    let mut report = p.report();
    report.drained_at_stop = drained;
    (cap, err, report)
}

/// The interface's changes of state the capture thread saw since the last call, a line each.
fn say_link_events(sh: &Shared, said: &mut usize, console: &mut Console) {
    let Some(name) = &sh.watch else {
        return;
    };
    let events = sh.link.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for e in events.iter().skip(*said) {
        console.line(&if e.state == "down" {
            format!(
                "rtmpsniff: {name} went down at {}: nothing is captured until it is up again",
                e.time_utc
            )
        } else {
            format!("rtmpsniff: {name} is up again at {}", e.time_utc)
        });
    }
    *said = events.len();
}

/// nice -10 for the calling thread (Linux: a thread id is a process id to setpriority);
/// refused without CAP_SYS_NICE, which is fine.
fn raise_priority() {
    // SAFETY: plain system calls on the calling thread.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, -10);
    }
}

/// The pipeline thread: batches from the queue through the pipeline until a signal, the
/// `--duration`, the end of the piped stream or the end of the capture. Once a second, the
/// key logs are read again, the files handed to the writer, the queue told which connections
/// are not being recovered, and the status line redrawn.
fn pipeline_loop(
    sh: &Shared,
    driver: &mut Driver<LiveSink>,
    keylogs: &mut KeyLogs,
    duration: Option<Duration>,
) -> Result<()> {
    let start = driver.sink.start;
    let deadline = duration.map(|d| start + d);
    let mut next_tick = start + TICK;
    let mut last_tick = (start, 0u64);
    let mut link_said = 0;
    loop {
        if sh.signal.load(Ordering::SeqCst)
            || deadline.is_some_and(|d| Instant::now() >= d)
            || driver.sink.flv.pipe_done()
            || driver.sink.console.stdout_gone
        {
            return Ok(());
        }
        match sh.queue.pop(Duration::from_millis(100)) {
            Some(b) => {
                for f in b.frames() {
                    driver.frame(&f)?;
                }
                sh.queue.give_back(b);
            }
            None if sh.queue.is_done() => return Ok(()),
            None => {}
        }
        if let Some(w) = &mut driver.sink.web {
            w.take_viewers();
        }
        let now = Instant::now();
        if now < next_tick {
            continue;
        }
        next_tick = now + TICK;
        if let Some(w) = &mut driver.sink.web {
            w.tick(*sh.kernel.lock().unwrap_or_else(|e| e.into_inner()));
        }
        say_link_events(sh, &mut link_said, &mut driver.sink.console);
        keylogs.poll(&mut driver.pipeline);
        driver.take()?;
        let output = &driver.sink.output;
        driver
            .sink
            .flv
            .hand_over()
            .map_err(|e| write_err(output, e))?;
        let mut unwanted: HashMap<ConnKey, DropReason> = driver
            .pipeline
            .dead_connections()
            .into_iter()
            .map(|k| (k, DropReason::NotRtmp))
            .collect();
        unwanted.extend(
            driver
                .sink
                .unselected()
                .map(|k| (k, DropReason::Unselected)),
        );
        *sh.unwanted.write().unwrap_or_else(|e| e.into_inner()) = unwanted;
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
                *sh.kernel.lock().unwrap_or_else(|e| e.into_inner()),
                sh.dropped.load(Ordering::Relaxed),
            );
            if let Some(status) = &driver.sink.console.status {
                status.set(&parts);
            }
        }
    }
}

/// What the capture queued before it stopped, through the pipeline (a second Ctrl-C quits
/// at once, by the signal handler).
fn drain_queue(sh: &Shared, driver: &mut Driver<LiveSink>) -> Result<()> {
    while !sh.queue.is_done() {
        if let Some(b) = sh.queue.pop(Duration::from_millis(100)) {
            for f in b.frames() {
                driver.frame(&f)?;
            }
            sh.queue.give_back(b);
        }
    }
    Ok(())
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
            0,
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
    fn status_line_shows_rtmpsniffs_own_drops_only_when_there_are_some() {
        let mut p = parts();
        assert!(!fit(&p, 200).contains("rtmpsniff"));
        p = status_parts(
            Duration::from_secs(5),
            (1, 1),
            (1, 1),
            1e6,
            10,
            Some(KernelStats {
                received: 10,
                dropped: 7,
                if_dropped: 0,
            }),
            3,
        );
        assert!(
            fit(&p, 200).ends_with("kernel drops 7 (interface 0), rtmpsniff drops 3"),
            "{}",
            fit(&p, 200)
        );
        assert!(fit(&p, 40).ends_with("drops 7+0+3"), "{}", fit(&p, 40));
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
