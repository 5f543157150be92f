//! SHA-256 of the finished files (`--sha256`), worked out on other threads.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use super::fs::{FileId, reopen};
use super::report::ConnectionReport;

/// SHA-256 of the finished files, worked out on other threads. Reading a file back and hashing
/// it costs about as much as all the rest of the work on its bytes (so it is asked for, not
/// done by default), and nothing needs the sum before the report is written: the capture (a
/// live one above all) does not wait for it. At most one file per core is hashed at a time.
pub(super) struct Hashing {
    /// File name (relative to the folder) and the thread working on it, oldest first.
    running: VecDeque<(String, JoinHandle<io::Result<Option<String>>>)>,
    done: HashMap<String, io::Result<Option<String>>>,
    limit: usize,
}

impl Hashing {
    pub(super) fn new() -> Self {
        Hashing {
            running: VecDeque::new(),
            done: HashMap::new(),
            limit: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    pub(super) fn start(&mut self, name: String, path: PathBuf, id: FileId) {
        while self.running.len() >= self.limit {
            self.join_oldest();
        }
        let job = path.clone();
        let spawned = std::thread::Builder::new()
            .name("sha256".into())
            .spawn(move || sha256_of(&job, id));
        match spawned {
            Ok(h) => self.running.push_back((name, h)),
            // No thread to be had: hash here.
            Err(_) => {
                let sum = sha256_of(&path, id);
                self.done.insert(name, sum);
            }
        }
    }

    fn join_oldest(&mut self) {
        if let Some((name, h)) = self.running.pop_front() {
            let sum = h
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the hashing thread panicked")));
            self.done.insert(name, sum);
        }
    }

    /// Take the sums worked out so far, without waiting.
    pub(super) fn poll(&mut self) {
        while self.running.front().is_some_and(|(_, h)| h.is_finished()) {
            self.join_oldest();
        }
    }

    /// Wait for every sum.
    pub(super) fn wait_all(&mut self) {
        while !self.running.is_empty() {
            self.join_oldest();
        }
    }

    /// Whether the sum of one of a connection's files is still being worked out.
    pub(super) fn waited_for(&self, c: &ConnectionReport) -> bool {
        c.streams.iter().any(|r| {
            r.file
                .as_deref()
                .is_some_and(|f| self.running.iter().any(|(n, _)| n == f))
        })
    }

    /// Put the sums of a connection's files into its report.
    pub(super) fn apply(&mut self, c: &mut ConnectionReport) {
        for r in &mut c.streams {
            // A file rewritten by `finish` was hashed again there: that sum stands.
            if r.sha256.is_some() {
                continue;
            }
            match r.file.as_ref().and_then(|f| self.done.remove(f)) {
                Some(Ok(sum)) => r.sha256 = sum,
                Some(Err(e)) => r.notes.push(format!("SHA-256 not worked out: {e}")),
                None => {}
            }
        }
    }
}

/// SHA-256 of a finished file, read back (without following a link) if it is still ours.
pub(super) fn sha256_of(path: &Path, id: FileId) -> io::Result<Option<String>> {
    use sha2::{Digest, Sha256};
    let Some(mut f) = reopen(path, id)? else {
        return Ok(None);
    };
    f.seek(SeekFrom::Start(0))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = io::Read::read(&mut f, &mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(Some(
        h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
    ))
}
