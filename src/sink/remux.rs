//! `read --remux mp4|mkv`: each stream's FLV, once the run is over, also remuxed by ffmpeg
//! into MP4 or Matroska (`ffmpeg -nostdin -v error -i X.flv -c copy -map 0 Y.mp4`): the same
//! packets, nothing re-encoded. MP4 is asked for but cannot hold every codec FLV can (Sorenson
//! Spark, VP6, Nellymoser, Speex, ADPCM, PCM): those streams go into Matroska, with a note.
//! The new file is made under a free name beside the FLV, as every file of the run is (never
//! replacing anything), and handed to ffmpeg already open, so that ffmpeg writes that file and
//! no other; the FLV is opened without following a link.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

/// How long one ffmpeg may take (a copy of a stream takes a fraction of a second per minute
/// of it); past it, it is stopped and the stream gets a note.
pub const FFMPEG_TIME_LIMIT: Duration = Duration::from_secs(600);
/// Bytes kept of what ffmpeg says on standard error.
const STDERR_KEPT: usize = 2000;

/// The container a remux makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Container {
    Mp4,
    Mkv,
}

impl Container {
    pub fn ext(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4",
            Container::Mkv => "mkv",
        }
    }

    /// ffmpeg's muxer name.
    fn muxer(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4",
            Container::Mkv => "matroska",
        }
    }
}

/// Codecs (ffprobe's names) that ffmpeg's MP4 muxer takes.
const MP4_VIDEO: &[&str] = &["h264", "hevc", "av1", "vp9"];
const MP4_AUDIO: &[&str] = &["aac", "mp3", "opus", "flac", "ac3", "eac3"];

/// The container for a stream whose codecs are these, when `asked` was asked for, and why
/// it is another one (MP4 cannot hold a codec: Matroska instead).
pub fn container_for(
    asked: Container,
    video: Option<&str>,
    audio: Option<&str>,
) -> (Container, Option<String>) {
    if asked == Container::Mkv {
        return (Container::Mkv, None);
    }
    let refused: Vec<&str> = [(video, MP4_VIDEO), (audio, MP4_AUDIO)]
        .into_iter()
        .filter_map(|(c, ok)| c.filter(|c| !ok.contains(c)))
        .collect();
    match refused.is_empty() {
        true => (Container::Mp4, None),
        false => (
            Container::Mkv,
            Some(format!(
                "mkv, not mp4: mp4 cannot hold {}",
                refused.join(" or ")
            )),
        ),
    }
}

/// What a stream's remux made (`remuxed` beside `file` in the report).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RemuxReport {
    /// The new file, relative to the folder (null when none was made).
    pub file: Option<String>,
    pub container: Container,
    pub bytes: u64,
    /// Why the container is not the one asked for, or why nothing was made.
    pub note: Option<String>,
    /// What went wrong (ffmpeg's own words), if it did.
    pub error: Option<String>,
}

/// Whether ffmpeg can be run (`ffmpeg -version`), or the line that says it cannot.
pub fn ffmpeg_available() -> Result<(), String> {
    match Command::new("ffmpeg")
        .arg("-version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!(
            "--remux needs ffmpeg, and `ffmpeg -version` failed ({s})"
        )),
        Err(e) => Err(format!(
            "--remux needs ffmpeg, which cannot be run ({e}); install it (apt-get install ffmpeg) or leave out --remux"
        )),
    }
}

/// Remux `flv` (a file of the run, relative to `dir`) into `container`, into a new file named
/// like it (`stem.mp4`, `stem-2.mp4`, ...).
pub fn remux(dir: &Path, flv: &str, container: Container, note: Option<String>) -> RemuxReport {
    let mut report = RemuxReport {
        file: None,
        container,
        bytes: 0,
        note,
        error: None,
    };
    match run(dir, flv, container) {
        Ok((name, bytes)) => {
            report.file = Some(name);
            report.bytes = bytes;
        }
        Err(e) => report.error = Some(e),
    }
    report
}

/// A file of the run, opened to read without following a link.
pub(super) fn open_ours(dir: &Path, name: &str) -> Result<File, String> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join(name))
        .map_err(|e| format!("{name}: {e}"))?;
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return Err(format!("{name}: not a regular file"));
    }
    Ok(f)
}

fn run(dir: &Path, flv: &str, container: Container) -> Result<(String, u64), String> {
    let input = open_ours(dir, flv)?;
    let stem = flv.strip_suffix(".flv").unwrap_or(flv);
    let ext = container.ext();
    let (out, name) = super::fs::create_unique_named(dir, &mut |n| match n {
        1 => format!("{stem}.{ext}"),
        n => format!("{stem}-{n}.{ext}"),
    })
    .map_err(|e| format!("creating the {ext} file: {e}"))?;
    let before: &[&str] = &[];
    let after = ["-c", "copy", "-map", "0", "-f", container.muxer()];
    match run_ffmpeg(before, &input, &after, &out) {
        Ok(()) => {
            let bytes = out.metadata().map(|m| m.len()).unwrap_or(0);
            Ok((name, bytes))
        }
        Err(e) => {
            // Nothing half-made stays, and only the file this run made is removed.
            remove_if_ours(dir, &name, &out);
            Err(e)
        }
    }
}

/// Remove `name` in `dir` if it is still the file `ours` (a failed output).
pub(super) fn remove_if_ours(dir: &Path, name: &str, ours: &File) {
    let ours = ours.metadata().ok().map(|m| (m.dev(), m.ino()));
    let there = std::fs::symlink_metadata(dir.join(name))
        .ok()
        .map(|m| (m.dev(), m.ino()));
    if ours.is_some() && ours == there {
        let _ = std::fs::remove_file(dir.join(name));
    }
}

/// `ffmpeg -nostdin -v error BEFORE -i INPUT AFTER -y OUTPUT`, with `input` and `output`
/// already open (fds 4 and 3 in the child, named `/proc/self/fd/N` on its command line),
/// within [`FFMPEG_TIME_LIMIT`]; ffmpeg's own words when it fails.
pub(super) fn run_ffmpeg(
    before: &[&str],
    input: &File,
    after: &[&str],
    output: &File,
) -> Result<(), String> {
    let (in_fd, out_fd) = (input.as_raw_fd(), output.as_raw_fd());
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-v", "error"])
        .args(before)
        .args(["-i", "/proc/self/fd/4"])
        .args(after)
        .args(["-y", "/proc/self/fd/3"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec only fcntl and dup2 are called, which are
    // async-signal-safe; dup2 also clears close-on-exec on the new descriptors.
    unsafe {
        cmd.pre_exec(move || {
            // Out of the way of 3 and 4 first, should either already be one of them.
            let (i, o) = (
                libc::fcntl(in_fd, libc::F_DUPFD, 10),
                libc::fcntl(out_fd, libc::F_DUPFD, 10),
            );
            if i < 0 || o < 0 || libc::dup2(o, 3) < 0 || libc::dup2(i, 4) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| format!("running ffmpeg: {e}"))?;
    // What ffmpeg says, its first bytes kept, the rest read and dropped (it must not block).
    let mut stderr = child.stderr.take().expect("piped");
    let said = std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            let room = STDERR_KEPT.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        kept
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Ok(s),
            Ok(None) if started.elapsed() > FFMPEG_TIME_LIMIT => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!(
                    "ffmpeg took longer than {} s and was stopped",
                    FFMPEG_TIME_LIMIT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => break Err(format!("waiting for ffmpeg: {e}")),
        }
    };
    let said = said.join().unwrap_or_default();
    let said = String::from_utf8_lossy(&said);
    let said = said.split_whitespace().collect::<Vec<_>>().join(" ");
    match status? {
        s if s.success() => Ok(()),
        s => Err(match said.is_empty() {
            true => format!("ffmpeg failed ({s})"),
            false => format!("ffmpeg failed ({s}): {said}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mp4_where_it_holds_the_codecs_else_mkv_with_the_reason() {
        let mp4 = Container::Mp4;
        assert_eq!(container_for(mp4, Some("h264"), Some("aac")), (mp4, None));
        assert_eq!(container_for(mp4, Some("h264"), Some("mp3")), (mp4, None));
        assert_eq!(container_for(mp4, None, Some("opus")), (mp4, None));
        let (c, note) = container_for(mp4, Some("flv1"), Some("mp3"));
        assert_eq!(c, Container::Mkv);
        assert_eq!(note.unwrap(), "mkv, not mp4: mp4 cannot hold flv1");
        let (c, note) = container_for(mp4, Some("vp6f"), Some("nellymoser"));
        assert_eq!(c, Container::Mkv);
        assert_eq!(
            note.unwrap(),
            "mkv, not mp4: mp4 cannot hold vp6f or nellymoser"
        );
        for audio in ["speex", "adpcm_swf", "pcm_s16le", "pcm_alaw"] {
            assert_eq!(
                container_for(mp4, Some("h264"), Some(audio)).0,
                Container::Mkv
            );
        }
        assert_eq!(
            container_for(Container::Mkv, Some("h264"), Some("aac")),
            (Container::Mkv, None)
        );
    }
}
