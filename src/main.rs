//! The `rtmpsniff` command line.

/// A line on standard error (`eprintln!` without its panic): a closed or broken standard
/// error loses the line and stops nothing, as a tool's messages must not stop its work.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::say_line(format_args!($($arg)*))
    };
}

mod cli;
mod live_cmd;
mod man;
mod term;
mod web;

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use rtmpsniff::capture::{FileSet, InputReport};
use rtmpsniff::config::LimitReport;
use rtmpsniff::sink::remux::{self, Container, RemuxReport, container_for};
use rtmpsniff::sink::report::{Report, Run, TextKind};
use rtmpsniff::sink::{self, FlvSink, Seen};
use rtmpsniff::transport::tls::{KeyLog, KeysFrom};
use rtmpsniff::{Driver, Pipeline};

use cli::{Cli, Mode, ReadArgs, ReadOut};

/// Exit statuses.
pub(crate) const EXIT_OK: u8 = 0;
pub(crate) const EXIT_NO_RTMP: u8 = 1;
pub(crate) const EXIT_BAD_INPUT: u8 = 2;

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

/// When the run began (the wall clock), for the report.
static STARTED: std::sync::OnceLock<f64> = std::sync::OnceLock::new();

/// Seconds since the epoch now, by the wall clock (the clock live packets are stamped with).
fn wall_clock() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The run as the report says it: the command line, when it began and now.
pub(crate) fn run_info() -> Run {
    Run {
        command_line: std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        start_time: *STARTED.get_or_init(wall_clock),
        end_time: wall_clock(),
    }
}

fn main() -> ExitCode {
    STARTED.get_or_init(wall_clock);
    tune_allocator();
    match run() {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if is_broken_pipe(&e) {
                die_of_sigpipe();
            }
            say!("rtmpsniff: {e:#}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

pub(crate) fn say_line(line: std::fmt::Arguments) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Standard output's reader went away (`rtmpsniff list x.pcap | head -1`): end as `cat`,
/// `grep` and the other filters do, silently, by SIGPIPE (the shell says 141). Rust ignores
/// SIGPIPE so that a write fails instead; whatever the run had to write elsewhere (files,
/// report.json) is written by then.
fn die_of_sigpipe() -> ! {
    let _ = std::io::stderr().flush();
    // SAFETY: restoring a signal's default action and raising it have no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    // Not reached: SIGPIPE's default action ends the process.
    std::process::exit(128 + libc::SIGPIPE)
}

/// The error for standard output gone, which `main` ends the process with (see
/// [`die_of_sigpipe`]).
pub(crate) fn stdout_gone() -> anyhow::Error {
    std::io::Error::from(std::io::ErrorKind::BrokenPipe).into()
}

/// A progress bar over the bytes of the inputs (a spinner when one is standard input or
/// compressed: its size is not the capture's), for a `read` that is not quiet, when standard
/// error is a terminal.
fn progress_for(out: &ReadOut, inputs: &[InputReport]) -> Option<term::StatusLine> {
    if !matches!(out, ReadOut::Folder { quiet: false, .. }) {
        return None;
    }
    let total: Option<u64> = inputs
        .iter()
        .map(|i| {
            (i.path != "-" && i.compression.is_none())
                .then(|| std::fs::metadata(&i.path).map(|m| m.len()).ok())
                .flatten()
        })
        .sum();
    term::StatusLine::progress(total)
}

/// The text after read's progress bar, its parts shortened or left out on a narrow terminal:
/// bytes read (of how many), the rate, the time left, the connections so far.
fn progress_parts(
    bar: &term::StatusLine,
    bytes: u64,
    total: Option<u64>,
    conns: u64,
) -> Vec<term::Part> {
    use indicatif::{HumanBytes, HumanDuration};
    let read = match total {
        Some(t) => format!("{}/{}", HumanBytes(bytes), HumanBytes(t)),
        None => format!("{} read", HumanBytes(bytes)),
    };
    let rate = format!("{}/s", HumanBytes(bar.per_sec() as u64));
    let eta = match total {
        Some(_) => format!("eta {}", HumanDuration(bar.eta())),
        None => String::new(),
    };
    vec![
        term::Part::new(0, &[&read]),
        term::Part::new(2, &[&rate, ""]),
        term::Part::new(1, &[&eta, ""]),
        term::Part::new(
            3,
            &[
                &format!("{conns} connections"),
                &format!("{conns} conns"),
                "",
            ],
        ),
    ]
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run() -> Result<u8> {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help and --version go to standard output; a usage error to standard error.
            let to_stdout = !e.use_stderr();
            if e.print().is_err() && to_stdout {
                return Err(stdout_gone());
            }
            return Ok(e.exit_code().clamp(0, 255) as u8);
        }
    };
    let mode = match cli.lower() {
        Ok(m) => m,
        Err(e) => {
            say!("rtmpsniff: {e}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    match mode {
        Mode::Read(args) => read(args),
        Mode::Live(args) => live_cmd::run(args),
        Mode::Man { page, dir } => {
            let cmd = <Cli as clap::CommandFactory>::command();
            match dir {
                Some(dir) => match man::write_all(&cmd, &dir) {
                    Ok(paths) => {
                        let mut out = std::io::stdout().lock();
                        for p in paths {
                            writeln!(out, "{}", p.display())?;
                        }
                        Ok(EXIT_OK)
                    }
                    Err(e) => {
                        say!(
                            "rtmpsniff: writing the manual pages into {}: {e}",
                            dir.display()
                        );
                        Ok(EXIT_BAD_INPUT)
                    }
                },
                None => match man::page(&cmd, &page) {
                    Ok(roff) => {
                        std::io::stdout().lock().write_all(&roff)?;
                        Ok(EXIT_OK)
                    }
                    Err(e) => {
                        say!(
                            "rtmpsniff: {e} (pages: read, list, live, interfaces, man, completions)"
                        );
                        Ok(EXIT_BAD_INPUT)
                    }
                },
            }
        }
        Mode::Completions(shell) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            // Into memory first: clap_complete panics on a write that fails.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "rtmpsniff", &mut script);
            std::io::stdout().lock().write_all(&script)?;
            Ok(EXIT_OK)
        }
        Mode::Interfaces => live_cmd::list_interfaces(),
    }
}

/// Frames between two flushes of the FLV files, so what is on disk keeps up with the input
/// (a live `tcpdump -w - | rtmpsniff read -`, or a run that is killed).
const FLUSH_EVERY: u64 = 4096;

/// `read` (FLV files and a report in a folder) or `list` (nothing written: the inventory goes
/// to standard output as a table or as JSON).
fn read(args: ReadArgs) -> Result<u8> {
    let ReadArgs {
        captures,
        packets,
        config,
        selection,
        keylogs,
        mut out,
        threads,
    } = args;
    if let ReadOut::Folder { remux: Some(_), .. } = &out
        && let Err(e) = remux::ffmpeg_available()
    {
        say!("rtmpsniff: {e}");
        return Ok(EXIT_BAD_INPUT);
    }
    // Every input that cannot be used gets one line; the others are read all the same.
    let (mut files, open_errors) = FileSet::open_each_selecting(&captures, packets);
    for e in &open_errors {
        say!("rtmpsniff: {e}");
    }
    if open_errors.len() == captures.len() {
        return Ok(EXIT_BAD_INPUT);
    }
    if let ReadOut::Folder { dir, .. } = &mut out
        && !use_output_dir(dir)
    {
        return Ok(EXIT_BAD_INPUT);
    }
    let mut config = config;
    if let Some(note) = sink::fit_open_files(&mut config.limits) {
        say!("rtmpsniff: {note}");
    }
    let limits = config.limits.clone();
    let ports = config.ports.clone();
    let shown = match &out {
        ReadOut::Folder { dir, .. } => dir.display().to_string(),
        ReadOut::Inventory { .. } => "the inventory".to_string(),
    };
    let write_err =
        |e: std::io::Error| anyhow::Error::new(e).context(format!("writing into {shown}"));
    let mut keys = match read_keylogs(&keylogs) {
        Ok(k) => k,
        Err(e) => {
            say!("rtmpsniff: {e}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    for s in files.decryption_secrets() {
        keys.merge(&KeyLog::parse(s, KeysFrom::PcapngBlock));
    }
    let selecting = !selection.is_empty();
    let config_from = match &out {
        ReadOut::Folder {
            config_from: Some(path),
            ..
        } => match load_config_from(path) {
            Ok(c) => Some(c),
            Err(e) => {
                say!("rtmpsniff: --config-from {}: {e}", path.display());
                return Ok(EXIT_BAD_INPUT);
            }
        },
        _ => None,
    };
    let mut sink = read_sink(&out, &limits)?
        .with_selection(selection)
        .with_config_from(config_from);
    let progress = progress_for(&out, &files.reports());
    let mut frames = 0u64;
    let mut bytes = 0u64;
    let stats = if threads > 1 {
        let make = || {
            let mut p = Pipeline::new(config.clone());
            p.add_keys(&keys);
            p
        };
        rtmpsniff::run::run_sharded(threads, make, &mut files, &mut sink, |sink, len, st| {
            bytes += len as u64 + 16 * st.frames.saturating_sub(frames);
            frames = st.frames;
            sink.write_pending()?;
            if let Some(p) = &progress {
                p.set_position(bytes);
                p.set(&progress_parts(p, bytes, p.total(), st.connections));
            }
            Ok(())
        })
        .map_err(write_err)?
    } else {
        let mut driver = Driver::new(Pipeline::new(config), sink);
        driver.pipeline.add_keys(&keys);
        driver
            .run(&mut files, |d, len| {
                // A record's header and its data: close enough to the file offset for a
                // progress bar.
                bytes += 16 + len as u64;
                frames += 1;
                if frames.is_multiple_of(FLUSH_EVERY) {
                    d.sink.write_pending()?;
                    if let Some(p) = &progress {
                        p.set_position(bytes);
                        let conns = d.pipeline.stats().connections;
                        p.set(&progress_parts(p, bytes, p.total(), conns));
                    }
                }
                Ok(())
            })
            .map_err(write_err)?;
        let Driver { pipeline, sink: s } = driver;
        sink = s;
        pipeline.stats()
    };
    if let Some(p) = &progress {
        p.clear();
    }
    let inputs = files.reports();
    warn_of_read_errors(&inputs);
    sink.finish().map_err(write_err)?;
    // The sink's limits (open files) count with the pipeline's: `stats` and `limits` agree.
    let mut stats = stats;
    stats.limit_hits.add(&sink.limit_hits);
    let hits = stats.limit_hits.clone();
    let limits_report = hits.report(&limits);
    warn_of_limits(&limits_report);
    let seen = sink.seen();
    let output_errors = sink.output_errors();
    for e in &output_errors {
        say!("rtmpsniff: {e}");
    }
    let mut report = Report {
        run: run_info(),
        inputs,
        selection: files.selection_report(),
        input_errors: open_errors.iter().map(|e| e.to_string()).collect(),
        output_errors,
        stats,
        limits: limits_report,
        connections: sink.into_report_connections(),
        remuxed: Default::default(),
    };
    if let ReadOut::Folder {
        dir,
        remux: Some(asked),
        ..
    } = &out
    {
        remux_all(&mut report, dir, *asked)?;
    }
    print_report(&mut report, &out)?;
    if !open_errors.is_empty() || !report.output_errors.is_empty() {
        return Ok(EXIT_BAD_INPUT);
    }
    if report.connections.is_empty() {
        let skipped: u64 = report.inputs.iter().map(|i| i.skipped_packets).sum();
        if report.stats.frames == 0 && skipped > 0 {
            say!(
                "rtmpsniff: no packet of {} passes --filter, --start and --end ({skipped} read, \
                 all skipped)",
                captures.join(", ")
            );
        } else {
            say!(
                "rtmpsniff: {}",
                nothing_found(selecting, seen, &captures, &ports)
            );
        }
        return Ok(EXIT_NO_RTMP);
    }
    Ok(EXIT_OK)
}

/// `--remux`: every stream's FLV into MP4 (Matroska where MP4 cannot hold its codecs) with
/// ffmpeg, one after the other; what each made goes into the report beside the FLV, and a
/// failure is a warning.
fn remux_all(report: &mut Report, dir: &std::path::Path, asked: Container) -> Result<()> {
    let mut todo = Vec::new();
    report.each_stream(|s| {
        if let Some(file) = s.file.filter(|f| f != "-") {
            todo.push((
                file,
                s.video_codec,
                s.audio_codec,
                s.video_frames + s.audio_frames,
            ));
        }
    })?;
    for (file, video, audio, frames) in todo {
        let (container, note) = container_for(asked, video.as_deref(), audio.as_deref());
        let r = if frames == 0 {
            RemuxReport {
                file: None,
                container,
                bytes: 0,
                note: Some("no audio or video frames to remux".into()),
                error: None,
            }
        } else {
            remux::remux(dir, &file, container, note)
        };
        if let Some(e) = &r.error {
            say!("rtmpsniff: warning: remuxing {file}: {e}");
        }
        report.remuxed.insert(file, r);
    }
    Ok(())
}

/// Make the output folder and resolve it once (a link to it is said so): `dir` becomes the
/// path every file is made under. `false`, with the one line that says why, when it cannot
/// be used.
pub(crate) fn use_output_dir(dir: &mut std::path::PathBuf) -> bool {
    match sink::resolve_output_dir(dir) {
        Ok((real, note)) => {
            if let Some(n) = note {
                say!("rtmpsniff: {n}");
            }
            *dir = real;
            true
        }
        Err(e) => {
            say!("rtmpsniff: cannot use output folder {}: {e}", dir.display());
            false
        }
    }
}

/// Why a run found nothing to report: the selection matched nothing the input held, or the
/// input held no RTMP where it was looked for.
pub(crate) fn nothing_found(
    selecting: bool,
    seen: Seen,
    inputs: &[String],
    ports: &[u16],
) -> String {
    if selecting && seen.connections > 0 {
        format!(
            "no stream matches the selection ({} RTMP connection{}, {} stream{} in the input)",
            seen.connections,
            if seen.connections == 1 { "" } else { "s" },
            seen.streams,
            if seen.streams == 1 { "" } else { "s" },
        )
    } else {
        format!(
            "no RTMP found in {} (ports {ports:?}; try --port or --any-port)",
            inputs.join(", "),
        )
    }
}

/// The `--tls-keylog` files, read whole (a megabyte at a time: the key log bounds what it
/// keeps), or the one line that says which could not be read.
pub(crate) fn read_keylogs(paths: &[std::path::PathBuf]) -> Result<KeyLog, String> {
    let mut keys = KeyLog::new(KeysFrom::KeyLogFile);
    for p in paths {
        let cannot =
            |e: std::io::Error| format!("{}: cannot read the TLS key log: {e}", p.display());
        let mut f = std::fs::File::open(p).map_err(cannot)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = std::io::Read::read(&mut f, &mut buf).map_err(cannot)?;
            if n == 0 {
                break;
            }
            keys.extend_from(&buf[..n]);
        }
        keys.finish_partial();
    }
    Ok(keys)
}

/// One line for each input whose reading stopped at an error.
fn warn_of_read_errors(inputs: &[InputReport]) {
    for i in inputs {
        if let Some(e) = &i.error {
            say!(
                "rtmpsniff: warning: {}: {e}; the packets before it were used",
                i.path
            );
        }
    }
}

/// One line naming the limits the run reached, if it reached any.
fn warn_of_limits(limits: &[LimitReport]) {
    let reached: Vec<String> = limits
        .iter()
        .filter(|l| l.hits > 0)
        .map(|l| format!("{} ({}) {} times", l.name, l.value, l.hits))
        .collect();
    if !reached.is_empty() {
        say!(
            "rtmpsniff: warning: limits reached: {}; see the report",
            reached.join(", ")
        );
    }
}

/// The bytes of an FLV file's start read for `--config-from` (sequence headers come first).
const CONFIG_FROM_BYTES: u64 = 64 << 20;

/// The sequence headers of the analyst's FLV file (`--config-from`), read from its first
/// [`CONFIG_FROM_BYTES`].
fn load_config_from(path: &std::path::Path) -> Result<rtmpsniff::sink::FileConfigs, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut data = Vec::new();
    f.take(CONFIG_FROM_BYTES)
        .read_to_end(&mut data)
        .map_err(|e| e.to_string())?;
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    rtmpsniff::sink::FileConfigs::from_flv(&rtmpsniff::sink::naming::escape(name.as_bytes()), &data)
}

/// The sink `read` or `list` writes into. The reports of ended connections wait in a file,
/// not in memory: in the output folder, or for an inventory in the temporary folder (kept in
/// memory if that cannot be used).
fn read_sink(out: &ReadOut, limits: &rtmpsniff::Limits) -> Result<FlvSink> {
    Ok(match out {
        ReadOut::Folder {
            dir,
            verbose,
            sha256,
            repair,
            ..
        } => {
            let cannot = || format!("cannot use output folder {}", dir.display());
            let mut sink = FlvSink::new(dir)
                .with_context(cannot)?
                .with_limits(limits)
                .with_sha256(*sha256)
                .with_repair(*repair);
            sink.spool_in(dir, TextKind::Summary { verbose: *verbose })
                .with_context(cannot)?;
            sink
        }
        ReadOut::Inventory { verbose, .. } => {
            let mut sink = FlvSink::inventory();
            let _ = sink.spool_in(&std::env::temp_dir(), TextKind::Table { verbose: *verbose });
            sink
        }
    })
}

/// report.json into the folder and the summary, or the inventory, on standard output.
fn print_report(report: &mut Report, out: &ReadOut) -> Result<()> {
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    match out {
        ReadOut::Folder {
            dir,
            quiet,
            verbose,
            html,
            ..
        } => {
            let path = sink::write_report(dir, &mut |w| report.write_json(w)).map_err(|e| {
                anyhow::Error::new(e).context(format!("writing into {}", dir.display()))
            })?;
            let page = match html {
                true => Some(sink::html::write(report, dir, &path).map_err(|e| {
                    anyhow::Error::new(e)
                        .context(format!("writing the page into {}", dir.display()))
                })?),
                false => None,
            };
            if !quiet {
                report.write_summary(&mut stdout, *verbose)?;
                let mut remuxed: Vec<_> = report.remuxed.iter().collect();
                remuxed.sort_by(|a, b| a.0.cmp(b.0));
                for (flv, r) in remuxed {
                    if let Some(file) = &r.file {
                        let why = r.note.as_ref().map_or(String::new(), |n| format!(" ({n})"));
                        writeln!(stdout, "remuxed: {flv} -> {file}{why}")?;
                    }
                }
                writeln!(stdout, "report: {}", path.display())?;
                if let Some(page) = page {
                    writeln!(stdout, "page: {}", page.display())?;
                }
            }
        }
        ReadOut::Inventory { quiet: true, .. } => {}
        ReadOut::Inventory { json: true, .. } => {
            report.write_json(&mut stdout)?;
            stdout.write_all(b"\n")?;
        }
        ReadOut::Inventory { verbose, .. } => report.write_table(&mut stdout, *verbose)?,
    }
    stdout.flush()?;
    Ok(())
}
