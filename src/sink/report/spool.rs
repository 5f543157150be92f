//! The spool: reports of finished connections kept in an unnamed file, not in memory.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use super::{ConnectionReport, TextKind};
use crate::flow::ConnId;

/// Reports of finished connections in an unnamed file (it disappears with the process):
/// memory holds 24 bytes a connection, whatever the report holds.
pub struct Spool {
    file: File,
    end: u64,
    /// Per connection, in the order they were added.
    entries: Vec<SpoolEntry>,
    sorted: bool,
    streams: u64,
    text: TextKind,
}

/// Where one connection's report is in the spool: its JSON at `at`, its text right after.
struct SpoolEntry {
    conn: ConnId,
    at: u64,
    json_len: u32,
    text_len: u32,
}

impl Spool {
    /// A spool in `dir` (the output folder, or the temporary folder for an inventory).
    pub fn new(dir: &Path, text: TextKind) -> io::Result<Self> {
        // An unnamed file where the system has them; else a hidden one, unlinked at once.
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE)
            .open(dir)
        {
            Ok(f) => f,
            Err(_) => {
                let (path, f) = super::super::fs::create_unique_tmp(dir, "rtmpsniff-spool", "")?;
                let _ = std::fs::remove_file(&path);
                f
            }
        };
        Ok(Spool {
            file,
            end: 0,
            entries: Vec::new(),
            sorted: true,
            streams: 0,
            text,
        })
    }

    /// Keep one finished connection's report.
    pub fn push(&mut self, c: &ConnectionReport) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(c).map_err(io::Error::other)?;
        let text = self.text.render(c);
        let too_big = || io::Error::other("a connection's report is larger than 4 GiB");
        let json_len = u32::try_from(json.len()).map_err(|_| too_big())?;
        let text_len = u32::try_from(text.len()).map_err(|_| too_big())?;
        self.file.write_all_at(&json, self.end)?;
        self.file
            .write_all_at(text.as_bytes(), self.end + json.len() as u64)?;
        if self.entries.last().is_some_and(|e| e.conn > c.summary.id) {
            self.sorted = false;
        }
        self.entries.push(SpoolEntry {
            conn: c.summary.id,
            at: self.end,
            json_len,
            text_len,
        });
        self.end += json.len() as u64 + text.len() as u64;
        self.streams += c.streams.len() as u64;
        Ok(())
    }

    /// In the order the connections began.
    fn sort(&mut self) {
        if !self.sorted {
            self.entries.sort_unstable_by_key(|e| e.conn);
            self.sorted = true;
        }
    }

    /// Connections kept.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Streams over all connections kept.
    pub(super) fn streams(&self) -> u64 {
        self.streams
    }

    /// The text kept besides each connection's JSON.
    pub(super) fn text(&self) -> TextKind {
        self.text
    }

    /// Each connection's JSON, in the order the connections began.
    pub(super) fn each_json(
        &mut self,
        each: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        self.each_at(|e| (e.at, e.json_len), each)
    }

    /// Each connection's text, in the order the connections began.
    pub(super) fn each_text(
        &mut self,
        each: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        self.each_at(|e| (e.at + e.json_len as u64, e.text_len), each)
    }

    /// Each connection's bytes where `place` says (offset, length), in the order the
    /// connections began.
    fn each_at(
        &mut self,
        place: impl Fn(&SpoolEntry) -> (u64, u32),
        mut each: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        self.sort();
        for e in &self.entries {
            let (at, len) = place(e);
            each(&self.read(at, len)?)?;
        }
        Ok(())
    }

    fn read(&self, at: u64, len: u32) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; len as usize];
        self.file.read_exact_at(&mut buf, at)?;
        Ok(buf)
    }
}
