//! Where one stream's FLV goes: a file the writer thread writes, or a pipe.

use std::io::{self, Seek, SeekFrom, Write};

use bytes::Bytes;

use super::flv::TagOut;
use super::queue::QueuedFile;
use super::select::Pattern;
use crate::flow::StreamKey;

/// Where one stream's FLV goes.
pub(super) enum Target {
    /// A file in the folder, written by the writer thread (see [`queue`](super::queue)).
    File(QueuedFile),
    /// Standard output or another pipe: written as it comes, the header never revisited.
    Pipe(Box<dyn Write + Send>),
}

impl Write for Target {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Target::File(f) => f.write(buf),
            Target::Pipe(p) => p.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Target::File(f) => f.flush(),
            Target::Pipe(p) => p.flush(),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Target::File(f) => f.write_vectored(bufs),
            Target::Pipe(p) => p.write_vectored(bufs),
        }
    }
}

impl TagOut for Target {
    // To a file, the batch goes to the writer thread as it is: large bodies are not copied.
    fn write_parts(&mut self, parts: Vec<Bytes>) -> io::Result<()> {
        match self {
            Target::File(f) => f.write_parts(parts),
            Target::Pipe(p) => p.write_parts(parts),
        }
    }

    fn hurry(&mut self) {
        if let Target::File(f) = self {
            f.hurry();
        }
    }
}

impl TagOut for Box<dyn Write + Send> {}

impl Seek for Target {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match self {
            Target::File(f) => f.seek(pos),
            Target::Pipe(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a pipe cannot seek",
            )),
        }
    }
}

/// The one stream that goes to a pipe instead of a file (`--stdout --stream NAME`).
pub(super) struct Pipe {
    selector: Pattern,
    /// Taken by the stream once it is chosen.
    pub(super) out: Option<Box<dyn Write + Send>>,
    chosen: Option<StreamKey>,
    /// The piped stream ended, or the pipe's reader went away.
    pub(super) done: bool,
}

impl Pipe {
    pub(super) fn new(selector: &Pattern, out: Box<dyn Write + Send>) -> Self {
        Pipe {
            selector: selector.clone(),
            out: Some(out),
            chosen: None,
            done: false,
        }
    }

    /// Whether the stream `key`, starting, goes to the pipe: the first one the selector names.
    pub(super) fn choose(
        &mut self,
        key: StreamKey,
        app: Option<&[u8]>,
        name: Option<&[u8]>,
    ) -> bool {
        let take = self.chosen.is_none() && self.selector.selects(app, name);
        if take {
            self.chosen = Some(key);
        }
        take
    }
}
