//! FLV file writes done on a thread of their own.
//!
//! Writing a recovered stream costs the kernel as much as all the protocol work on its bytes
//! (a copy into the page cache, block reservation): done on the thread that reads the capture,
//! the two would take turns. Here the reading thread hands whole batches of tags to a writer
//! thread and goes on. Bodies travel as [`Bytes`] (shared, not copied). At most
//! [`WriteQueue::BUDGET`] bytes (or the budget given) are in flight: a reader faster than the
//! disk waits, so memory stays bounded whatever the capture.
//!
//! Every write goes to an explicit file offset (`pwritev`), so a file closed for the open-file
//! limit and opened again (another descriptor) continues exactly where its last queued write
//! ended, and the header patches at the end land where they belong. Jobs run in the order they
//! were queued; a batch of tags is one write, as before (a kill can cut at most the last one).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use bytes::Bytes;

/// The queue's name for a file it writes: numbered in the order they were opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FileNo(u64);

/// A write of `parts`, one after the other, at file offset `at`.
struct Write {
    file: FileNo,
    at: u64,
    parts: Vec<Bytes>,
}

enum Job {
    /// From now on, writes to `file` go to this descriptor.
    Open(FileNo, File),
    Write(Write),
    /// Let go of the descriptor (the writes queued before are done first).
    Close(FileNo),
}

impl Job {
    fn bytes(&self) -> usize {
        match self {
            Job::Write(w) => w.parts.iter().map(|p| p.len()).sum(),
            _ => 0,
        }
    }
}

#[derive(Default)]
struct State {
    /// Jobs not yet taken by the writer, and their bytes.
    jobs: VecDeque<Job>,
    queued_bytes: usize,
    /// Bytes queued or being written.
    in_flight: usize,
    /// Jobs queued, and jobs done.
    queued: u64,
    done: u64,
    /// The first write that failed: later ones are not attempted.
    error: Option<(io::ErrorKind, String)>,
    /// The file system ran out of space (or quota): what it said. From then on, writes that
    /// would make a file longer are left out (and counted); writes inside a file (header
    /// patches) are still made, so every file stays whole up to its last whole batch.
    full: Option<String>,
    /// Bytes of tags left out since.
    dropped_bytes: u64,
    /// Threads waiting for the writer's progress (only then is there anyone to wake).
    waiters: usize,
    /// The writer is asleep, waiting for work.
    writer_idle: bool,
    /// Someone waits for what is queued: the writer takes it however little it is.
    urgent: bool,
    /// No more jobs come: the writer ends once the queue is empty.
    closing: bool,
}

impl State {
    /// Whether the writer has enough to do to be worth waking (a wake-up costs both threads a
    /// few microseconds; a batch of a megabyte or more takes the writer hundreds).
    fn worth_taking(&self) -> bool {
        !self.jobs.is_empty()
            && (self.urgent
                || self.closing
                || self.queued_bytes >= WriteQueue::WAKE_AT
                || self.jobs.len() >= WriteQueue::WAKE_JOBS)
    }
}

struct Shared {
    state: Mutex<State>,
    /// Bytes queued or being written at most.
    budget: usize,
    /// Set once `State::full` is (read without the lock, after every output).
    full: std::sync::atomic::AtomicBool,
    /// Signalled when the writer has work.
    work: Condvar,
    /// Signalled when the writer has done jobs.
    progress: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic on the writer thread while it held the lock leaves the state as it was:
        // still usable, and the join reports the panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait for the writer thread to make progress (waking it for what is queued).
    fn wait<'a>(&self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        st.urgent = true;
        if st.writer_idle {
            self.work.notify_one();
        }
        st.waiters += 1;
        let mut st = self.progress.wait(st).unwrap_or_else(|p| p.into_inner());
        st.waiters -= 1;
        st
    }
}

/// The writer thread and what is queued for it.
pub struct WriteQueue {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    next_id: u64,
}

fn error_of(e: &(io::ErrorKind, String)) -> io::Error {
    io::Error::new(e.0, e.1.clone())
}

impl WriteQueue {
    /// Bytes queued or being written at most (a single larger write waits for the queue to
    /// empty, then goes).
    pub const BUDGET: usize = 8 << 20;
    /// The writer is woken when this many bytes are queued (or someone waits for them).
    const WAKE_AT: usize = 1 << 20;
    /// ... or this many jobs.
    const WAKE_JOBS: usize = 64;
    /// Jobs queued at most (opens, closes and patches carry few bytes; this bounds them).
    const MAX_JOBS: usize = 1024;

    pub fn new() -> io::Result<Self> {
        Self::with_budget(Self::BUDGET)
    }

    /// A queue that holds up to `budget` bytes in flight (at least [`Self::BUDGET`]).
    pub fn with_budget(budget: usize) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            budget: budget.max(Self::BUDGET),
            full: std::sync::atomic::AtomicBool::new(false),
            work: Condvar::new(),
            progress: Condvar::new(),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("flv-writer".into())
            .spawn(move || run(&s))?;
        Ok(WriteQueue {
            shared,
            thread: Some(thread),
            next_id: 0,
        })
    }

    /// Hand a file to the writer thread; its writes go through the returned handle.
    pub fn open(&mut self, file: File, len: u64) -> io::Result<QueuedFile> {
        let id = FileNo(self.next_id);
        self.next_id += 1;
        self.handle().send(Job::Open(id, file))?;
        Ok(QueuedFile {
            id,
            pos: len,
            len,
            queue: self.handle(),
        })
    }

    fn handle(&self) -> Handle {
        Handle {
            shared: self.shared.clone(),
        }
    }

    /// Wait until everything queued so far is on disk (in the page cache); the first error
    /// any write met, if one did.
    pub fn wait(&self) -> io::Result<()> {
        self.handle().wait()
    }

    /// Whether the disk became full: files are no longer made longer (see `State::full`).
    pub fn is_full(&self) -> bool {
        self.shared.full.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What the file system said when it became full, and the bytes of tags left out since.
    pub fn full(&self) -> Option<(String, u64)> {
        let st = self.shared.lock();
        st.full.clone().map(|m| (m, st.dropped_bytes))
    }

    /// The first write that failed, if one did (without waiting).
    pub fn error(&self) -> io::Result<()> {
        match &self.shared.lock().error {
            Some(e) => Err(error_of(e)),
            None => Ok(()),
        }
    }

    /// Wait for every write, stop the thread, and say whether all went well.
    pub fn finish(mut self) -> io::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> io::Result<()> {
        let res = self.wait();
        self.shared.lock().closing = true;
        self.shared.work.notify_one();
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            return Err(io::Error::other("the FLV writer thread panicked"));
        }
        res
    }
}

impl Drop for WriteQueue {
    fn drop(&mut self) {
        // Every queued write still reaches its file (an error has been or will be reported
        // through `wait` or `finish`; here there is no one left to tell).
        let _ = self.stop();
    }
}

/// What a [`QueuedFile`] needs of the queue.
#[derive(Clone)]
struct Handle {
    shared: Arc<Shared>,
}

impl Handle {
    /// Queue a job, once the budget has room for its bytes. After a failed write no more
    /// writes are taken (opens and closes still are, so descriptors are let go). Opens and
    /// closes wake the writer at once, so descriptors are not held longer than need be.
    fn send(&self, job: Job) -> io::Result<()> {
        let bytes = job.bytes();
        let is_write = matches!(job, Job::Write(_));
        let mut st = self.shared.lock();
        if st.closing {
            return Err(io::Error::other("the FLV writer thread is gone"));
        }
        while st.error.is_none()
            && ((st.in_flight > 0 && st.in_flight + bytes > self.shared.budget)
                || st.jobs.len() >= WriteQueue::MAX_JOBS)
        {
            st = self.shared.wait(st);
        }
        if let Some(e) = &st.error
            && is_write
        {
            return Err(error_of(e));
        }
        st.in_flight += bytes;
        st.queued_bytes += bytes;
        st.queued += 1;
        st.jobs.push_back(job);
        if !is_write {
            st.urgent = true;
        }
        if st.writer_idle && st.worth_taking() {
            self.shared.work.notify_one();
        }
        Ok(())
    }

    /// Have the writer take what is queued now, however little, without waiting for it.
    fn hurry(&self) {
        let mut st = self.shared.lock();
        st.urgent = true;
        if st.writer_idle && st.worth_taking() {
            self.shared.work.notify_one();
        }
    }

    fn wait(&self) -> io::Result<()> {
        let mut st = self.shared.lock();
        let target = st.queued;
        while st.done < target && st.error.is_none() {
            st = self.shared.wait(st);
        }
        match &st.error {
            Some(e) => Err(error_of(e)),
            None => Ok(()),
        }
    }
}

/// A file open on the writer thread.
struct Open {
    file: File,
    /// The end of what was written, and of the space reserved for the file beyond it.
    end: u64,
    reserved: u64,
    /// The file system reserves space (`fallocate`); false once it said it does not.
    can_reserve: bool,
}

impl Open {
    /// Reserve space ahead of a write that goes past what is reserved, once the file has a
    /// megabyte: in steps that grow with the file (1 MiB to 32 MiB), so the file system
    /// allocates its blocks in a few large extents instead of a page at a time. This takes
    /// about a third off the cost of a write.
    fn reserve(&mut self, end: u64) {
        // Small files are left alone: reserving and giving back costs more than it saves for
        // them (thousands of short sessions, each its own file).
        if !self.can_reserve || end <= self.reserved || end < 1 << 20 {
            return;
        }
        let from = self.reserved.max(self.end);
        let step = end.clamp(1 << 20, 32 << 20);
        let to = end.saturating_add(step);
        let (Ok(off), Ok(len)) = (
            libc::off_t::try_from(from),
            libc::off_t::try_from(to - from),
        ) else {
            return;
        };
        // SAFETY: fallocate on a descriptor this struct owns; KEEP_SIZE leaves the file's
        // length alone.
        let r =
            unsafe { libc::fallocate(self.file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, off, len) };
        if r == 0 {
            self.reserved = to;
        } else {
            // Not supported, or no space for all of the step: writes allocate as they go (and
            // a write that finds no space says so itself).
            self.can_reserve = false;
        }
    }

    /// Give back the space reserved past the end of the file: truncating a file to its own
    /// length frees the blocks past it (punching a hole past the end does not, on ext4).
    fn release(&mut self) {
        if self.reserved > self.end {
            let _ = self.file.set_len(self.end);
            self.reserved = self.end;
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.release();
    }
}

/// The writer thread: takes the queued jobs in batches and runs them in order, until the
/// queue is closed and empty.
fn run(shared: &Shared) {
    let mut files: HashMap<FileNo, Open> = HashMap::new();
    let mut failed = false;
    let mut full = false;
    loop {
        let batch = {
            let mut st = shared.lock();
            while !st.worth_taking() {
                if st.closing && st.jobs.is_empty() {
                    return;
                }
                st.writer_idle = true;
                st = shared.work.wait(st).unwrap_or_else(|p| p.into_inner());
                st.writer_idle = false;
            }
            st.queued_bytes = 0;
            st.urgent = false;
            std::mem::take(&mut st.jobs)
        };
        for job in batch {
            let bytes = job.bytes();
            let res = match job {
                Job::Open(id, file) => {
                    let end = file.metadata().map_or(0, |m| m.len());
                    files.insert(
                        id,
                        Open {
                            file,
                            end,
                            reserved: end,
                            can_reserve: true,
                        },
                    );
                    Ok(())
                }
                Job::Close(id) => {
                    files.remove(&id);
                    Ok(())
                }
                Job::Write(_) if failed => Ok(()),
                Job::Write(w) => match files.get_mut(&w.file) {
                    Some(f) if full && w.at + bytes as u64 > f.end => {
                        shared.lock().dropped_bytes += bytes as u64;
                        Ok(())
                    }
                    Some(f) => {
                        let end = w.at + bytes as u64;
                        f.reserve(end);
                        let res = write_at(&f.file, w.at, &w.parts);
                        match res {
                            Ok(()) => {
                                f.end = f.end.max(end);
                                Ok(())
                            }
                            Err(e) if is_no_space(&e) => {
                                // Back to where the batch began: no tag is left torn.
                                let keep = f.end.min(w.at);
                                let _ = f.file.set_len(keep);
                                f.end = keep;
                                f.reserved = keep;
                                full = true;
                                let mut st = shared.lock();
                                st.full.get_or_insert_with(|| e.to_string());
                                st.dropped_bytes += bytes as u64;
                                drop(st);
                                shared
                                    .full
                                    .store(true, std::sync::atomic::Ordering::Relaxed);
                                Ok(())
                            }
                            Err(e) => Err(e),
                        }
                    }
                    None => Err(io::Error::other("write to a file that is not open")),
                },
            };
            let mut st = shared.lock();
            if let Err(e) = res
                && st.error.is_none()
            {
                failed = true;
                st.error = Some((e.kind(), e.to_string()));
            }
            st.in_flight -= bytes;
            st.done += 1;
            let wake = st.waiters > 0;
            drop(st);
            if wake {
                shared.progress.notify_all();
            }
        }
    }
}

/// Whether `e` says the file system has no room left (space or quota).
pub(super) fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// `pwritev` of all of `parts` at `at`, through short writes and interruptions.
fn write_at(f: &File, mut at: u64, parts: &[Bytes]) -> io::Result<()> {
    let mut iov: Vec<libc::iovec> = parts
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| libc::iovec {
            iov_base: p.as_ptr() as *mut libc::c_void,
            iov_len: p.len(),
        })
        .collect();
    let mut first = 0;
    while first < iov.len() {
        let offset = libc::off_t::try_from(at).map_err(|_| io::Error::other("file too large"))?;
        let count = (iov.len() - first).min(1024) as libc::c_int;
        // SAFETY: every iovec points into a slice of `parts`, alive for this call, with the
        // length of what is left of it; the descriptor is open (owned by `f`).
        let n = unsafe { libc::pwritev(f.as_raw_fd(), iov[first..].as_ptr(), count, offset) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let mut n = n as usize;
        at += n as u64;
        while n > 0 && first < iov.len() {
            let v = &mut iov[first];
            if n >= v.iov_len {
                n -= v.iov_len;
                first += 1;
            } else {
                // SAFETY: n < iov_len, so the new base stays inside the same slice.
                v.iov_base = unsafe { (v.iov_base as *mut u8).add(n) } as *mut libc::c_void;
                v.iov_len -= n;
                n = 0;
            }
        }
    }
    Ok(())
}

/// A file written through the queue: `Write` and `Seek` as a file positioned at `pos`, where
/// each write is queued for the writer thread. `flush` waits until the writes queued so far
/// have been made. Dropping it lets the writer close the descriptor after its writes.
pub struct QueuedFile {
    id: FileNo,
    pos: u64,
    /// The file's length once every queued write is made.
    len: u64,
    queue: Handle,
}

impl QueuedFile {
    /// Queue `parts`, one after the other, as one write at the current position.
    pub fn write_parts(&mut self, parts: Vec<Bytes>) -> io::Result<()> {
        let n: usize = parts.iter().map(|p| p.len()).sum();
        if n == 0 {
            return Ok(());
        }
        let job = Job::Write(Write {
            file: self.id,
            at: self.pos,
            parts,
        });
        self.queue.send(job)?;
        self.pos += n as u64;
        self.len = self.len.max(self.pos);
        Ok(())
    }
}

impl QueuedFile {
    /// Have the writer take what is queued now, without waiting for it.
    pub fn hurry(&self) {
        self.queue.hurry();
    }
}

impl io::Write for QueuedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_parts(vec![Bytes::copy_from_slice(buf)])?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.queue.wait()
    }
}

impl io::Seek for QueuedFile {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        let to = match pos {
            io::SeekFrom::Start(n) => Some(n),
            io::SeekFrom::End(d) => self.len.checked_add_signed(d),
            io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = to.ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(self.pos)
    }
}

impl Drop for QueuedFile {
    fn drop(&mut self) {
        // Errors of the writes before it are reported through the queue.
        let _ = self.queue.send(Job::Close(self.id));
    }
}

#[cfg(test)]
mod tests;
