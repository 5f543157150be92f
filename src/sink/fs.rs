//! File-system helpers: files made under a name nothing else has, opened again only if they
//! are still ours, and the report written whole.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// File stems whose next suffix is remembered, at most.
const MAX_STEMS: usize = 65536;

/// Which file a name led to (device and inode): a file found again under its name is the one
/// this run made only if its `FileId` is the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    pub(super) fn of(meta: &std::fs::Metadata) -> Self {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// Open a file this sink created, again, to write at its end: never through a symbolic link,
/// never truncating, and only if it is still the same file (`None` otherwise).
pub(super) fn reopen(path: &Path, id: FileId) -> io::Result<Option<File>> {
    let f = match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ELOOP) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let meta = f.metadata()?;
    if FileId::of(&meta) != id {
        return Ok(None);
    }
    let mut f = f;
    f.seek(SeekFrom::End(0))?;
    Ok(Some(f))
}

/// The output folder, created if missing, as the one path every file of the run is made
/// under: a folder given through a symbolic link is resolved here, once (what the link points
/// to later does not move the output), and the note says so.
pub fn resolve_output_dir(dir: &Path) -> io::Result<(PathBuf, Option<String>)> {
    std::fs::create_dir_all(dir)?;
    if !std::fs::symlink_metadata(dir)?.file_type().is_symlink() {
        return Ok((dir.to_path_buf(), None));
    }
    let real = std::fs::canonicalize(dir)?;
    let note = format!(
        "output folder {} is a symbolic link: writing into {}",
        dir.display(),
        real.display()
    );
    Ok((real, Some(note)))
}

/// `bytes` of space held in `dir` by an unnamed file (or a hidden one unlinked at once), given
/// back when it is dropped; `None` where the file system cannot hold space that way.
pub(super) fn ballast(dir: &Path, bytes: u64) -> Option<File> {
    use std::os::unix::io::AsRawFd;
    let f = match OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .open(dir)
    {
        Ok(f) => f,
        Err(_) => {
            let (path, f) = create_unique_tmp(dir, "rtmpsniff-reserve", "").ok()?;
            let _ = std::fs::remove_file(&path);
            f
        }
    };
    let len = libc::off_t::try_from(bytes).ok()?;
    // SAFETY: fallocate on a descriptor this function owns.
    (unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, len) } == 0).then_some(f)
}

/// Descriptors kept for everything but the FLV files (inputs, libpcap, the report, its spool,
/// key logs, the writer thread's, standard streams).
const OTHER_FDS: u64 = 32;

/// Make room for `limits.open_files` FLV files in the process's descriptor limit: the soft
/// limit is raised towards the hard one if it is too low, and if that is not enough the
/// limit is lowered to what fits (a note says so), instead of a run that fails on its 257th
/// stream with "Too many open files".
pub fn fit_open_files(limits: &mut crate::config::Limits) -> Option<String> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return None;
    }
    let want = limits.open_files as u64 + OTHER_FDS;
    if rl.rlim_cur >= want {
        return None;
    }
    if rl.rlim_max > rl.rlim_cur {
        let raised = libc::rlimit {
            rlim_cur: want.min(rl.rlim_max),
            rlim_max: rl.rlim_max,
        };
        // SAFETY: setrlimit reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            rl.rlim_cur = raised.rlim_cur;
        }
    }
    if rl.rlim_cur >= want {
        return None;
    }
    let fits = rl.rlim_cur.saturating_sub(OTHER_FDS).max(1) as usize;
    let note = format!(
        "open_files lowered from {} to {fits}: the descriptor limit (ulimit -n) is {}",
        limits.open_files, rl.rlim_cur
    );
    limits.open_files = fits;
    Some(note)
}

/// `attempt(n)` for `n` = `first`, `first + 1`, ... until it does not fail because the name
/// is taken: what it made, and the `n` it took.
fn first_free<T>(
    first: u32,
    mut attempt: impl FnMut(u32) -> io::Result<T>,
) -> io::Result<(T, u32)> {
    for n in first.. {
        match attempt(n) {
            Ok(made) => return Ok((made, n)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("u32 names run out")
}

/// Create a new file in `dir`, open to write (and to read if `read`), under the first of
/// `name(first)`, `name(first + 1)`, ... that is free, without ever replacing or following
/// anything that is already there (`create_new` is O_CREAT|O_EXCL: it fails on any existing
/// name, a symbolic link included, dangling or not). The file, its name and the `n` taken.
fn create_unique_name(
    dir: &Path,
    name: &mut dyn FnMut(u32) -> String,
    first: u32,
    read: bool,
) -> io::Result<(File, String, u32)> {
    let mut opts = OpenOptions::new();
    opts.read(read).write(true).create_new(true);
    let ((f, name), n) = first_free(first, |n| {
        let name = name(n);
        opts.open(dir.join(&name)).map(|f| (f, name))
    })?;
    Ok((f, name, n))
}

/// Create a new file in `dir`, open to write, under the first free name of `name(1)`,
/// `name(2)`, ... (see [`create_unique_name`]): the file and its name.
pub(super) fn create_unique_named(
    dir: &Path,
    name: &mut dyn FnMut(u32) -> String,
) -> io::Result<(File, String)> {
    let (f, name, _) = create_unique_name(dir, name, 1, false)?;
    Ok((f, name))
}

/// Create `stem.flv` (or `stem-2.flv`, ...) holding `head` from the moment it has a name: the
/// file is made unnamed in `dir` (O_TMPFILE), `head` written, then linked under the first
/// free name (linkat fails on a name that exists, as `create_new` does, and follows nothing
/// there), so a kill at any moment leaves no empty or half-headed file. Where the file
/// system has no unnamed files (or /proc is missing), it is made under its name and `head`
/// written at once, as before. `next_suffix` as for [`create_unique`].
pub(super) fn create_unique_with(
    dir: &Path,
    stem: &str,
    next_suffix: &mut HashMap<String, u32>,
    head: &[u8],
) -> io::Result<(File, String)> {
    use std::io::Write;
    if let Some(made) = create_linked(dir, stem, next_suffix, head)? {
        return Ok(made);
    }
    let (mut f, name) = create_unique(dir, stem, next_suffix)?;
    f.write_all(head)?;
    Ok((f, name))
}

/// [`create_unique_with`] through an unnamed file; `None` when unnamed files cannot be had.
fn create_linked(
    dir: &Path,
    stem: &str,
    next_suffix: &mut HashMap<String, u32>,
    head: &[u8],
) -> io::Result<Option<(File, String)>> {
    use std::ffi::CString;
    use std::io::Write;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::AsRawFd;
    let Ok(mut f) = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .open(dir)
    else {
        return Ok(None);
    };
    f.write_all(head)?;
    let Ok(from) = CString::new(format!("/proc/self/fd/{}", f.as_raw_fd())) else {
        return Ok(None);
    };
    let first = next_suffix.get(stem).copied().unwrap_or(1);
    let linked = first_free(first, |n| {
        let name = flv_name(stem, n);
        let to = CString::new(dir.join(&name).as_os_str().as_bytes())
            .map_err(|_| io::Error::other("a NUL byte in the output folder's path"))?;
        // SAFETY: both paths are NUL-terminated C strings that live across the call.
        let r = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                from.as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        if r == 0 {
            Ok(name)
        } else {
            Err(io::Error::last_os_error())
        }
    });
    match linked {
        Ok((name, n)) => {
            if n > 1 {
                if next_suffix.len() >= MAX_STEMS {
                    next_suffix.clear();
                }
                next_suffix.insert(stem.to_string(), n + 1);
            }
            Ok(Some((f, name)))
        }
        // No /proc, or a file system that cannot link an unnamed file: the plain way.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT | libc::EXDEV | libc::EPERM | libc::EOPNOTSUPP)
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Create `stem.flv` (or `stem-2.flv`, ...) under a name that is free (see
/// [`create_unique_name`]); `next_suffix` remembers where to start for stems used more than
/// once (at most [`MAX_STEMS`] of them).
pub(super) fn create_unique(
    dir: &Path,
    stem: &str,
    next_suffix: &mut HashMap<String, u32>,
) -> io::Result<(File, String)> {
    let first = next_suffix.get(stem).copied().unwrap_or(1);
    let (f, name, n) = create_unique_name(dir, &mut |n| flv_name(stem, n), first, false)?;
    if n > 1 {
        if next_suffix.len() >= MAX_STEMS {
            // Forget them all: a stem seen again then costs a look at the names it already
            // has, once.
            next_suffix.clear();
        }
        next_suffix.insert(stem.to_string(), n + 1);
    }
    Ok((f, name))
}

/// The `n`th name for a stream's file: `stem.flv`, `stem-2.flv`, ...
fn flv_name(stem: &str, n: u32) -> String {
    if n == 1 {
        format!("{stem}.flv")
    } else {
        format!("{stem}-{n}.flv")
    }
}

/// The `n`th name for the report: `report.EXT`, `report-2.EXT`, ...
fn report_name(n: u32, ext: &str) -> String {
    if n == 1 {
        format!("report.{ext}")
    } else {
        format!("report-{n}.{ext}")
    }
}

/// Write `report.json` (or `report-2.json`, ...) without replacing an earlier one. The report
/// appears whole or not at all: it is written under a temporary name, then linked to its
/// name (which, like `create_new`, fails rather than replace anything). Where the file system
/// has no hard links, it is written in place under its `create_new` name.
pub fn write_report(
    dir: &Path,
    json: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
) -> io::Result<PathBuf> {
    write_whole(dir, "json", json)
}

/// `report.html` (or `report-2.html`, ...), as [`write_report`] writes report.json.
pub fn write_page(
    dir: &Path,
    html: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
) -> io::Result<PathBuf> {
    write_whole(dir, "html", html)
}

/// `report.EXT` (or `report-2.EXT`, ...) written whole or not at all, never replacing a file.
fn write_whole(
    dir: &Path,
    ext: &str,
    json: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
) -> io::Result<PathBuf> {
    let mut write = |f: &mut File| {
        let mut w = io::BufWriter::with_capacity(1 << 16, &mut *f);
        json(&mut w)?;
        w.write_all(b"\n")?;
        w.flush()?;
        drop(w);
        f.sync_all()
    };
    let (tmp, mut f) = create_unique_tmp(dir, "report", &format!(".{ext}.tmp"))?;
    let linked = write(&mut f).map(|()| {
        first_free(1, |n| {
            std::fs::hard_link(&tmp, dir.join(report_name(n, ext)))
        })
        .ok()
        .map(|((), n)| dir.join(report_name(n, ext)))
    });
    drop(f);
    let _ = std::fs::remove_file(&tmp);
    if let Some(path) = linked? {
        return Ok(path);
    }
    let (mut f, name, _) = create_unique_name(dir, &mut |n| report_name(n, ext), 1, false)?;
    write(&mut f)?;
    Ok(dir.join(name))
}

/// A new hidden temporary file in `dir`, `.STEM-PID-K EXT`, open to read and write.
pub(super) fn create_unique_tmp(dir: &Path, stem: &str, ext: &str) -> io::Result<(PathBuf, File)> {
    let pid = std::process::id();
    let (f, name, _) =
        create_unique_name(dir, &mut |k| format!(".{stem}-{pid}-{k}{ext}"), 0, true)?;
    Ok((dir.join(name), f))
}
