//! Lending a decoder configuration to a stream that joined mid-stream without it, from
//! another stream of the input that carries the same pictures (a publisher and the players of
//! its stream): its keyframes are recognised by hash, and the configuration is written at the
//! start of the borrower's file at the end of the input.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::Seek;
use std::io::{self, Write};
use std::path::Path;

use bytes::Bytes;

use super::flv;
use super::fs::{FileId, create_unique_tmp, reopen};
use super::hash::sha256_of;
use super::report::{ConnectionReport, StreamReport};
use super::stream::StreamOut;
use crate::flow::{ConnId, StreamKey};
use crate::rtmp::{TagKind, media};

/// Keyframes remembered to lend a configuration, at most.
const MAX_KEYFRAMES: usize = 16384;
/// Streams that can wait for a configuration to be lent, at most (counting each keyframe a
/// stream waits with).
const MAX_FIXES: usize = 1024;
/// Keyframes of one stream looked for in the others: its first may be one no other copy
/// holds whole (each copy loses its own).
const MAX_KEYS_SOUGHT: u8 = 8;

/// A keyframe's content hash: the same pictures in two streams hash alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FrameHash(u64);

impl FrameHash {
    fn of(body: &Bytes) -> Self {
        FrameHash(super::repair::body_hash(body))
    }
}

/// What lending needs to know of one stream.
#[derive(Default)]
pub(super) struct Carried {
    /// The decoder configurations last seen (to lend to a stream that missed them).
    video: Option<Bytes>,
    audio: Option<Bytes>,
    /// Joined mid-stream (or after a gap) without a video configuration: how many of its
    /// keyframes are looked for in the other connections of the input (the same pictures,
    /// and so their configuration), at most [`MAX_KEYS_SOUGHT`].
    keys_sought: u8,
}

/// A stream whose decoder configuration another stream with the same pictures can borrow.
#[derive(Clone)]
pub(super) struct Lender {
    pub(super) from: StreamKey,
    pub(super) video: Option<Bytes>,
    pub(super) audio: Option<Bytes>,
}

/// The keyframes that can be lent a configuration for, and the streams waiting for one.
#[derive(Default)]
pub(super) struct Lending {
    /// Recent keyframes of streams whose decoder configuration is known, by content hash,
    /// with that configuration; oldest first in `keyframe_order` (at most [`MAX_KEYFRAMES`]).
    keyframes: HashMap<FrameHash, Lender>,
    keyframe_order: VecDeque<FrameHash>,
    /// Streams that joined mid-stream without their configuration, by the hash of their first
    /// keyframe, until a stream with the same keyframe and a configuration turns up.
    needs: HashMap<FrameHash, Vec<StreamKey>>,
    /// Streams a configuration was found for, to write at the start of their files at the end
    /// (with `needs`, at most [`MAX_FIXES`]).
    fixes: HashMap<StreamKey, Lender>,
    /// Connections with a stream in `needs` or `fixes`.
    conns: HashSet<ConnId>,
}

impl Lending {
    /// Whether the stream `key` may be lent a configuration at the end of the input (what it
    /// lacks is settled then, not when it ends).
    pub(super) fn waits_for(&self, key: StreamKey) -> bool {
        self.conns.contains(&key.conn)
            && (self.fixes.contains_key(&key) || self.needs.values().any(|v| v.contains(&key)))
    }

    /// Whether a stream of connection `conn` may be lent a configuration at the end of the
    /// input (its report waits for it).
    pub(super) fn waits(&self, conn: ConnId) -> bool {
        self.conns.contains(&conn)
    }

    /// The stream `key` has a configuration found: it looks for its keyframes no more.
    fn unneed(&mut self, key: StreamKey) {
        for v in self.needs.values_mut() {
            v.retain(|k| *k != key);
        }
        self.needs.retain(|_, v| !v.is_empty());
    }

    /// A connection that is not reported: its streams wait for nothing.
    pub(super) fn forget(&mut self, conn: ConnId) {
        if self.conns.remove(&conn) {
            self.fixes.retain(|k, _| k.conn != conn);
            for v in self.needs.values_mut() {
                v.retain(|k| k.conn != conn);
            }
            self.needs.retain(|_, v| !v.is_empty());
        }
    }

    /// Remember the decoder configurations and keyframes of the stream `key` (`s`), to lend
    /// a configuration to a stream that joined mid-stream and carries the same pictures.
    pub(super) fn note_configuration(
        &mut self,
        key: StreamKey,
        s: &mut StreamOut,
        kind: TagKind,
        body: &Bytes,
    ) {
        match kind {
            TagKind::Video => {
                let Some(i) = media::video(body) else { return };
                if i.config {
                    s.carried.video = Some(body.clone());
                } else if i.keyframe && i.frame && i.needs_config {
                    self.note_keyframe(key, s, body);
                }
            }
            TagKind::Audio => {
                if media::audio(body).is_some_and(|i| i.config) {
                    s.carried.audio = Some(body.clone());
                }
            }
            TagKind::Script => {}
        }
    }

    /// A keyframe that needs a configuration: lent from, if the stream has one, else maybe
    /// waited for a configuration to be lent to.
    fn note_keyframe(&mut self, key: StreamKey, s: &mut StreamOut, body: &Bytes) {
        let h = FrameHash::of(body);
        if s.carried.video.is_some() {
            let lender = Lender {
                from: key,
                video: s.carried.video.clone(),
                audio: s.carried.audio.clone(),
            };
            // Streams that were waiting for these pictures get this configuration (and wait
            // for their other keyframes no more).
            for k in self.needs.remove(&h).unwrap_or_default() {
                self.fixes.entry(k).or_insert_with(|| lender.clone());
                self.unneed(k);
            }
            if self.keyframes.insert(h, lender).is_none() {
                self.keyframe_order.push_back(h);
            }
            while self.keyframe_order.len() > MAX_KEYFRAMES {
                if let Some(old) = self.keyframe_order.pop_front() {
                    self.keyframes.remove(&old);
                }
            }
        } else if s.may_lack_config()
            && s.carried.keys_sought < MAX_KEYS_SOUGHT
            && !self.fixes.contains_key(&key)
        {
            s.carried.keys_sought += 1;
            let waiting = self.fixes.len() + self.needs.values().map(Vec::len).sum::<usize>();
            if waiting >= MAX_FIXES {
                if s.carried.keys_sought == 1 {
                    s.report.notes.push(format!(
                        "sequence headers not captured, and not looked for in other connections (more than {MAX_FIXES} streams needed them)"
                    ));
                }
                s.carried.keys_sought = MAX_KEYS_SOUGHT;
            } else {
                match self.keyframes.get(&h) {
                    Some(l) => {
                        self.fixes.insert(key, l.clone());
                        self.unneed(key);
                    }
                    None => self.needs.entry(h).or_default().push(key),
                }
                self.conns.insert(key.conn);
            }
        }
    }

    /// End of the input: each stream a configuration was found for, whose report is in
    /// `reports`, gets it written at the start of its file in `dir` (hashed again if
    /// `sha256`), and its report says so. Nothing waits any more.
    pub(super) fn finish(
        &mut self,
        dir: &Path,
        reports: &mut BTreeMap<ConnId, ConnectionReport>,
        from_file: Option<&super::playable::FileConfigs>,
        sha256: bool,
    ) -> io::Result<()> {
        let mut fixes: Vec<(StreamKey, Option<Lender>)> = self
            .fixes
            .drain()
            .map(|(k, l)| (k, Some(l)))
            .chain(self.needs.drain().flat_map(|(_, v)| v).map(|k| (k, None)))
            .collect();
        // (A stream waiting with several keyframes is settled once.)
        fixes.sort_by_key(|(k, _)| *k);
        fixes.dedup_by_key(|(k, _)| *k);
        for (key, lender) in fixes {
            let Some(report) = reports
                .get_mut(&key.conn)
                .and_then(|c| c.streams.iter_mut().find(|s| s.key == key))
            else {
                continue;
            };
            // Lent where another connection had it, else built from the frames if it can be.
            super::playable::complete(dir, report, lender.as_ref(), from_file, sha256)?;
        }
        self.conns.clear();
        Ok(())
    }
}

/// Write `lender`'s decoder configuration at the start of the stream's file (after the FLV
/// header), through a new file renamed over it, and say so in the report.
#[cfg(test)]
fn lend(dir: &Path, report: &mut StreamReport, lender: &Lender, sha256: bool) -> io::Result<()> {
    if insert_configs(
        dir,
        report,
        lender.video.as_ref(),
        lender.audio.as_ref(),
        sha256,
    )? {
        report.notes.push(lent_note(lender));
    }
    Ok(())
}

/// What the report says of a configuration lent.
pub(super) fn lent_note(lender: &Lender) -> String {
    format!(
        "decoder configuration taken from connection {} stream {}, which carries the same pictures",
        lender.from.conn, lender.from.stream
    )
}

/// Write the configuration tags `video` and `audio` (FLV bodies, at time 0) at the start of
/// the stream's file (after the FLV header), through a new file renamed over it: whether it
/// was done (not for a file replaced by something else).
pub(super) fn insert_configs(
    dir: &Path,
    report: &mut StreamReport,
    video: Option<&Bytes>,
    audio: Option<&Bytes>,
    sha256: bool,
) -> io::Result<bool> {
    let (Some(name), Some(id)) = (report.file.clone(), report.file_id) else {
        return Ok(false);
    };
    let path = dir.join(&name);
    // Only the file this run made under that name, never through a link (something put in
    // its place since is left alone, and the stream keeps its own configuration state).
    let mut old = match reopen(&path, id) {
        Ok(Some(mut f)) => {
            f.seek(io::SeekFrom::Start(0))?;
            f
        }
        _ => {
            report
                .notes
                .push("file replaced by something else before the end: not patched".into());
            return Ok(false);
        }
    };
    let mut head = [0u8; flv::HEADER.len()];
    if io::Read::read_exact(&mut old, &mut head).is_err() {
        return Ok(false);
    }
    // Our own file of this run, replaced whole through a new file renamed over it; copied a
    // block at a time, not read into memory.
    let stem = name.strip_suffix(".flv").unwrap_or(&name);
    let (tmp, f) = create_unique_tmp(dir, stem, ".flv.tmp")?;
    let new_id = FileId::of(&f.metadata()?);
    let mut f = io::BufWriter::new(f);
    let mut cfg = Vec::new();
    for (k, b) in [(TagKind::Video, video), (TagKind::Audio, audio)] {
        if let Some(b) = b {
            let s = (b.len() as u32).to_be_bytes();
            cfg.extend_from_slice(&[k as u8, s[1], s[2], s[3], 0, 0, 0, 0, 0, 0, 0]);
            cfg.extend_from_slice(b);
            cfg.extend_from_slice(&(11 + b.len() as u32).to_be_bytes());
        }
    }
    f.write_all(&head)?;
    f.write_all(&cfg)?;
    let rest = io::copy(&mut old, &mut f)?;
    f.flush()?;
    drop(f);
    std::fs::rename(&tmp, &path)?;
    report.bytes = head.len() as u64 + cfg.len() as u64 + rest;
    report.file_id = Some(new_id);
    if sha256 {
        report.sha256 = sha256_of(&path, new_id)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn temp(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("rtmpsniff-lend-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn lender() -> Lender {
        Lender {
            from: StreamKey::default(),
            video: Some(Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 2, 3])),
            audio: None,
        }
    }

    fn report_of(dir: &Path, name: &str) -> StreamReport {
        let meta = std::fs::symlink_metadata(dir.join(name)).unwrap();
        StreamReport {
            file: Some(name.into()),
            file_id: Some(FileId::of(&meta)),
            ..Default::default()
        }
    }

    #[test]
    fn the_configuration_goes_in_after_the_header() {
        let dir = temp("ok");
        let tags = [9u8, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x27, 0, 0, 0, 12];
        std::fs::write(dir.join("a.flv"), [&flv::HEADER[..], &tags].concat()).unwrap();
        let mut r = report_of(&dir, "a.flv");
        lend(&dir, &mut r, &lender(), true).unwrap();
        let got = std::fs::read(dir.join("a.flv")).unwrap();
        assert_eq!(&got[..flv::HEADER.len()], &flv::HEADER[..]);
        assert_eq!(
            got[flv::HEADER.len()],
            9,
            "a video tag first: the configuration"
        );
        assert!(got.ends_with(&tags));
        assert_eq!(r.bytes, got.len() as u64);
        assert!(r.sha256.is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_link_put_in_place_of_the_file_is_not_followed() {
        // The file this run wrote is replaced, before the fix-up at the end, by a link to a
        // file someone else can read: the fix-up must not copy it into the output folder.
        let dir = temp("link");
        std::fs::write(dir.join("a.flv"), flv::HEADER).unwrap();
        let mut r = report_of(&dir, "a.flv");
        let secret = dir.join("secret");
        std::fs::write(&secret, [&flv::HEADER[..], b"root only"].concat()).unwrap();
        std::fs::remove_file(dir.join("a.flv")).unwrap();
        std::os::unix::fs::symlink(&secret, dir.join("a.flv")).unwrap();
        lend(&dir, &mut r, &lender(), false).unwrap();
        assert!(
            std::fs::symlink_metadata(dir.join("a.flv"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(
            r.notes.iter().any(|n| n.contains("not patched")),
            "{:?}",
            r.notes
        );
        // Nor is another file put under the name (same name, another inode; ours is kept
        // under another name, so that its inode number cannot be given to the newcomer).
        std::fs::write(dir.join("ours.flv"), flv::HEADER).unwrap();
        let mut r = report_of(&dir, "ours.flv");
        std::fs::rename(dir.join("ours.flv"), dir.join("kept.flv")).unwrap();
        std::fs::remove_file(dir.join("a.flv")).unwrap();
        std::fs::copy(&secret, dir.join("ours.flv")).unwrap();
        r.file = Some("ours.flv".into());
        let before = std::fs::metadata(dir.join("ours.flv")).unwrap().ino();
        lend(&dir, &mut r, &lender(), false).unwrap();
        assert_eq!(
            std::fs::metadata(dir.join("ours.flv")).unwrap().ino(),
            before
        );
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
