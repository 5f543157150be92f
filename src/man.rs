//! Manual pages, one for `rtmpsniff` and one for each subcommand (`rtmpsniff-read(1)`, ...),
//! generated from clap's definition (name, synopsis, description, options, subcommands) with
//! the sections clap does not know (exit status, files, examples, see also) from [`EXTRAS`],
//! which also give `--help` its closing text.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// What a page says besides what clap knows.
pub struct Extra {
    /// The subcommand, or "" for the top page.
    pub name: &'static str,
    /// (command line, what it does).
    pub examples: &'static [(&'static str, &'static str)],
    /// (status, when).
    pub exit_status: &'static [(&'static str, &'static str)],
    /// (path, what it is).
    pub files: &'static [(&'static str, &'static str)],
    /// Paragraphs of notes, after the options.
    pub notes: &'static [&'static str],
}

const READ_STATUS: &[(&str, &str)] = &[
    (
        "0",
        "Streams were found (RTMP connections the selection keeps).",
    ),
    (
        "1",
        "No RTMP in the input, or none the selection keeps; standard error says which.",
    ),
    (
        "2",
        "An input, an option or the output folder could not be used (one line on standard error names it). With several inputs the readable ones are still read and the report written.",
    ),
    (
        "141",
        "(killed by SIGPIPE) Standard output's reader went away, as for cat(1); everything else was written first.",
    ),
];

const REPORT_FILE: (&str, &str) = (
    "DIR/report.json",
    "What was found: inputs, connections, streams, codecs, gaps, limits, the command line and the run's times (report-2.json, ... when one exists). Its layout is schema/report.schema.json in rtmpsniff's sources (JSON Schema, schema_version 2).",
);
const PAGE_FILE: (&str, &str) = (
    "DIR/report.html",
    "The report as one self-contained page (read only, unless --no-html), with DIR/*.keyframes.png, the contact sheets ffmpeg draws of each stream's keyframes.",
);
const FLV_FILE: (&str, &str) = (
    "DIR/APP_STREAM_CLIENTIP-PORT_DIRECTION.flv",
    "One FLV per stream: the sender's audio and video, bit for bit. A name in use gets -2, -3, ...; nothing in DIR is ever replaced.",
);
const KEYLOG_FILE: (&str, &str) = (
    "--tls-keylog FILE",
    "A TLS key log in NSS format (what SSLKEYLOGFILE makes), for RTMPS.",
);

/// Every page: the top one first, then each subcommand's.
pub const EXTRAS: &[Extra] = &[
    Extra {
        name: "",
        examples: &[
            (
                "rtmpsniff list capture.pcap",
                "Say what a capture holds: connections, streams, codecs, sizes, gaps.",
            ),
            (
                "rtmpsniff read capture.pcap -o out",
                "Write every stream as an FLV file, and out/report.json.",
            ),
            (
                "sudo rtmpsniff live -i eth0 -o out",
                "Capture on an interface and write the streams while they run.",
            ),
            (
                "rtmpsniff man --dir /usr/local/share/man/man1",
                "Install these manual pages.",
            ),
        ],
        exit_status: &[
            ("0", "Success (see each subcommand's page)."),
            ("1", "Nothing found (read, list, live)."),
            (
                "2",
                "Bad usage, an input, an interface or the output could not be used.",
            ),
        ],
        files: &[],
        notes: &[],
    },
    Extra {
        name: "read",
        examples: &[
            (
                "rtmpsniff read capture.pcap -o out",
                "Every stream of a capture into out/, with out/report.json.",
            ),
            (
                "rtmpsniff read part1.pcapng part2.pcapng --port 1935 --port 19350 -o out",
                "Rotated files read as one timeline; RTMP on two ports.",
            ),
            (
                "rtmpsniff read big.pcap --stream 'cam[12]' --direction publish -o out",
                "Only the published streams cam1 and cam2.",
            ),
            (
                "rtmpsniff read rtmps.pcap --port 443 --tls-keylog keys.txt -o out",
                "RTMPS, decrypted with the sender's key log.",
            ),
            (
                "tcpdump -w - port 1935 | rtmpsniff read - -o out",
                "Standard input as the capture.",
            ),
            (
                "rtmpsniff read capture.pcap -o out && xdg-open out/report.html",
                "The page beside report.json: inputs, timeline, streams and their keyframes.",
            ),
            (
                "rtmpsniff read capture.pcap -o out --remux mp4",
                "Also an MP4 of each stream (Matroska where MP4 cannot hold its codecs), by ffmpeg, nothing re-encoded.",
            ),
            (
                "rtmpsniff read day.pcap.zst -f 'host 192.0.2.7' --start 2026-11-25T04:00:00Z --end 2026-11-25T05:00:00Z -o out",
                "A compressed capture, only one host's packets of one hour (as tcpdump -r with a filter, editcap -A/-B).",
            ),
        ],
        exit_status: READ_STATUS,
        files: &[REPORT_FILE, PAGE_FILE, FLV_FILE, KEYLOG_FILE],
        notes: &[
            "GLOB is a shell pattern: * any run (/ included), ? one character, [ab], [!0-9], {a,b}, and \\ before a special character. --stream is matched against the name as the report shows it, the name without its query string and APP/NAME.",
            "Times people read are ISO 8601 in UTC (2026-11-25T04:34:02.321Z); connections are numbered from 1 in the order they began, the same number in the summary, list and report.json.",
        ],
    },
    Extra {
        name: "list",
        examples: &[
            (
                "rtmpsniff list capture.pcap",
                "A line per connection and a row per stream.",
            ),
            (
                "rtmpsniff list --json capture.pcapng | jq '.connections[].streams[].name'",
                "The inventory as JSON (report.json's layout, without files).",
            ),
            (
                "rtmpsniff list --direction publish --any-port big.pcap",
                "Published streams, RTMP recognised on any port.",
            ),
            (
                "rtmpsniff list -c 10000 -f 'tcp port 1935' huge.pcap.gz",
                "What the first 10000 RTMP packets hold, without reading the rest.",
            ),
            (
                "rtmpsniff list -q capture.pcap && echo has RTMP",
                "Only the exit status.",
            ),
        ],
        exit_status: READ_STATUS,
        files: &[KEYLOG_FILE],
        notes: &["list writes no file. GLOB, times and connection numbers: see rtmpsniff-read(1)."],
    },
    Extra {
        name: "live",
        examples: &[
            ("rtmpsniff live -D", "The interfaces, numbered."),
            (
                "sudo rtmpsniff live -i 3 -o out",
                "Capture on the third of them.",
            ),
            (
                "sudo rtmpsniff live -i any --port 1935 --port 19350 --duration 600 --write-pcap out.pcap",
                "Ten minutes on every interface, the packets saved too.",
            ),
            (
                "sudo rtmpsniff live -i eth0 -f 'host 192.0.2.7 and tcp port 1935' -o out",
                "A BPF filter of your own.",
            ),
            (
                "sudo rtmpsniff live -i eth0 --stdout --stream cam1 | ffplay -",
                "Watch one stream while it is captured.",
            ),
            (
                "sudo rtmpsniff live -i eth0 --workers 4 -o out",
                "Spread a busy interface over four capture threads and pipelines.",
            ),
            (
                "sudo rtmpsniff live -i eth0 -o out --http 127.0.0.1:8080",
                "A page of the streams at http://127.0.0.1:8080/, each also at /streams/ID.flv (ffplay, VLC).",
            ),
        ],
        exit_status: &[
            (
                "0",
                "RTMP was seen; the run stopped on Ctrl-C, SIGTERM, --duration or the end of the --stdout stream.",
            ),
            (
                "1",
                "No RTMP was seen (or none the selection keeps); the report is written all the same.",
            ),
            (
                "2",
                "The interface (or its number), the filter, the privileges (root or CAP_NET_RAW) or the output could not be used, or the capture failed.",
            ),
            ("130", "A second Ctrl-C while stopping: quit at once."),
            (
                "141",
                "(killed by SIGPIPE) Standard output's reader went away; the run stopped as on Ctrl-C first.",
            ),
        ],
        files: &[
            REPORT_FILE,
            FLV_FILE,
            KEYLOG_FILE,
            (
                "--write-pcap FILE",
                "Every captured packet (pcap, nanosecond times); never replaces a file.",
            ),
        ],
        notes: &[
            "Files are handed to the disk every second and after each keyframe, and can be played while they grow; a stream that ends is closed at once. Ctrl-C or SIGTERM stops cleanly: files finalised, report.json written.",
            "On a terminal, standard error shows one status line (time, connections, streams, rate, packets, kernel drops), redrawn in place and fitted to the terminal's width.",
            "One thread only drains the kernel's ring into a queue of at most --limit queue_bytes (256 MiB); the pipeline runs behind it. When the queue fills it drops first the frames of flows not being recovered, then any; these drops (dropped_by_rtmpsniff, by reason), the queue's peak and the CPU seconds per Gbit captured are in the summary and report.json.",
            "--workers N: N capture threads in one PACKET_FANOUT group (a flow hash, both directions of a connection on one worker), each with its own pipeline; one set of files and one report.",
        ],
    },
    Extra {
        name: "interfaces",
        examples: &[(
            "rtmpsniff interfaces",
            "The same list as rtmpsniff live -D.",
        )],
        exit_status: &[
            ("0", "Listed."),
            ("2", "libpcap could not list the interfaces."),
        ],
        files: &[],
        notes: &[
            "Interfaces are numbered from 1 in libpcap's order, as tcpdump -D numbers them; rtmpsniff live -i N takes the number.",
        ],
    },
    Extra {
        name: "man",
        examples: &[
            (
                "rtmpsniff man | man -l -",
                "Read this page set's first page.",
            ),
            (
                "rtmpsniff man read > rtmpsniff-read.1",
                "One subcommand's page.",
            ),
            (
                "rtmpsniff man --dir /usr/local/share/man/man1",
                "Every page, written into a folder (made if missing; pages there are replaced).",
            ),
        ],
        exit_status: &[
            ("0", "Written."),
            (
                "2",
                "The folder could not be written, or there is no such page.",
            ),
        ],
        files: &[(
            "DIR/rtmpsniff.1, DIR/rtmpsniff-SUBCOMMAND.1",
            "The pages --dir writes.",
        )],
        notes: &[],
    },
    Extra {
        name: "completions",
        examples: &[
            (
                "rtmpsniff completions bash > /etc/bash_completion.d/rtmpsniff",
                "Completion for bash.",
            ),
            (
                "rtmpsniff completions zsh > ~/.zfunc/_rtmpsniff",
                "Completion for zsh.",
            ),
        ],
        exit_status: &[("0", "Written.")],
        files: &[],
        notes: &[],
    },
];

fn extra(name: &str) -> Option<&'static Extra> {
    EXTRAS.iter().find(|e| e.name == name)
}

/// The text `--help` ends with: the examples and the exit statuses of `name`'s page.
pub fn after_help(name: &str) -> String {
    let Some(e) = extra(name) else {
        return String::new();
    };
    let mut s = String::from("Examples:\n");
    for (cmd, _) in e.examples {
        s.push_str(&format!("  {cmd}\n"));
    }
    s.push_str("\nExit status:\n");
    for (code, when) in e.exit_status {
        s.push_str(&format!("  {code:<4}{when}\n"));
    }
    let page = match name {
        "" => "rtmpsniff".to_string(),
        n => format!("rtmpsniff-{n}"),
    };
    s.push_str(&format!(
        "\nMore in {page}(1) (rtmpsniff man --dir DIR writes the pages)."
    ));
    s
}

/// Text for a roff line: backslashes and minus signs escaped, a leading `.` or `'` kept as
/// text.
fn roff(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

/// The page's file name: `rtmpsniff.1`, `rtmpsniff-read.1`.
fn file_name(name: &str) -> String {
    match name {
        "" => "rtmpsniff.1".into(),
        n => format!("rtmpsniff-{n}.1"),
    }
}

/// One page: clap's sections, then the extra ones.
fn render(top: &clap::Command, e: &Extra) -> io::Result<Vec<u8>> {
    // Built, a subcommand knows its full name (`rtmpsniff-read`, `rtmpsniff read`).
    let mut top = top.clone().disable_help_subcommand(true);
    top.build();
    let cmd = match e.name {
        "" => top.clone(),
        n => top
            .find_subcommand(n)
            .cloned()
            .ok_or_else(|| io::Error::other(format!("no subcommand {n}")))?,
    };
    let has_args = cmd.get_arguments().any(|a| !a.is_hide_set());
    let has_subcommands = cmd.get_subcommands().next().is_some();
    let version = top.get_version().unwrap_or_default().to_string();
    let man = clap_mangen::Man::new(cmd)
        .manual("rtmpsniff manual")
        .source(format!("rtmpsniff {version}"));
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    if has_args {
        man.render_options_section(&mut out)?;
    }
    if has_subcommands {
        man.render_subcommands_section(&mut out)?;
    }
    if !e.notes.is_empty() {
        writeln!(out, ".SH NOTES")?;
        for n in e.notes {
            writeln!(out, ".PP\n{}", roff(n))?;
        }
    }
    writeln!(out, ".SH \"EXIT STATUS\"")?;
    for (code, when) in e.exit_status {
        writeln!(out, ".TP\n\\fB{code}\\fR\n{}", roff(when))?;
    }
    if !e.files.is_empty() {
        writeln!(out, ".SH FILES")?;
        for (path, what) in e.files {
            writeln!(out, ".TP\n\\fI{}\\fR\n{}", roff(path), roff(what))?;
        }
    }
    writeln!(out, ".SH EXAMPLES")?;
    for (cmd, what) in e.examples {
        writeln!(
            out,
            ".PP\n{}\n.PP\n.RS 4\n.nf\n{}\n.fi\n.RE",
            roff(what),
            roff(cmd)
        )?;
    }
    writeln!(out, ".SH \"SEE ALSO\"")?;
    let mut see: Vec<String> = EXTRAS
        .iter()
        .filter(|o| o.name != e.name)
        .map(|o| {
            let page = file_name(o.name);
            let page = page.trim_end_matches(".1");
            format!("\\fB{}\\fR(1)", roff(page))
        })
        .collect();
    see.extend(
        [
            "\\fBtcpdump\\fR(8)",
            "\\fBtshark\\fR(1)",
            "\\fBffmpeg\\fR(1)",
        ]
        .map(String::from),
    );
    writeln!(out, "{}", see.join(", "))?;
    // clap_mangen's own VERSION section wants a version on the subcommand itself.
    writeln!(out, ".SH VERSION\nrtmpsniff {}", roff(&version))?;
    Ok(out)
}

/// The page of `name` ("" for the top page).
pub fn page(top: &clap::Command, name: &str) -> io::Result<Vec<u8>> {
    let e = extra(name).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("no manual page for {name:?}"),
        )
    })?;
    render(top, e)
}

/// Every page into `dir` (made if missing), each written whole under a temporary name and
/// renamed into place; the paths written.
pub fn write_all(top: &clap::Command, dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for e in EXTRAS {
        let path = dir.join(file_name(e.name));
        let tmp = dir.join(format!(".{}.tmp{}", file_name(e.name), std::process::id()));
        std::fs::write(&tmp, render(top, e)?)?;
        std::fs::rename(&tmp, &path)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subcommand_has_a_page_and_every_page_a_subcommand() {
        let top = <crate::cli::Cli as clap::CommandFactory>::command();
        let mut subcommands: Vec<&str> = top.get_subcommands().map(|c| c.get_name()).collect();
        subcommands.push("");
        subcommands.sort();
        let mut pages: Vec<&str> = EXTRAS.iter().map(|e| e.name).collect();
        pages.sort();
        assert_eq!(pages, subcommands);
        for e in EXTRAS {
            assert!(
                !e.examples.is_empty() && !e.exit_status.is_empty(),
                "{}",
                e.name
            );
        }
    }

    #[test]
    fn roff_text_is_escaped() {
        assert_eq!(roff("a-b \\x"), "a\\-b \\ex");
        assert_eq!(roff(".dot"), "\\&.dot");
        assert_eq!(roff("'quote"), "\\&'quote");
    }

    #[test]
    fn help_ends_with_the_pages_examples_and_statuses() {
        let h = after_help("read");
        assert!(h.starts_with("Examples:\n  rtmpsniff read capture.pcap -o out\n"));
        assert!(h.contains("\nExit status:\n  0   Streams were found"));
        assert!(
            h.ends_with("More in rtmpsniff-read(1) (rtmpsniff man --dir DIR writes the pages).")
        );
        assert_eq!(after_help("nosuch"), "");
    }
}
