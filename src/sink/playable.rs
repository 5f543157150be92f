//! Making a stream's file play when its decoder configuration was not captured: the one lent
//! from another connection, else one built from the frames (`Pending`), written at the start
//! of the file; and, when the video still cannot be decoded, the audio alone in a file beside
//! it, which players open. The report's `decodable` says what was done.

use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::Path;

use super::flv;
use super::fs::{create_unique_named, reopen};
use super::lend::{Lender, insert_configs, lent_note};
use super::report::{ConfigSource, StreamReport};

/// Settle what the stream `r` lacks, at the end of the stream or (when a configuration might
/// be lent) of the input: `lender`'s configurations first, else the ones built.
pub(super) fn complete(
    dir: &Path,
    r: &mut StreamReport,
    lender: Option<&Lender>,
    sha256: bool,
) -> io::Result<()> {
    let pending = r.pending.take().map(|p| *p).unwrap_or_default();
    let missing = |s: Option<ConfigSource>| s == Some(ConfigSource::Missing);
    let mut video = None;
    let mut audio = None;
    if missing(r.decodable.video) {
        if let Some(b) = lender.and_then(|l| l.video.clone()) {
            video = Some((b, ConfigSource::Lent, None));
        } else if let Some((b, syn)) = pending.video {
            video = Some((b, ConfigSource::Synthesised, Some(syn)));
        }
    }
    if missing(r.decodable.audio) {
        if let Some(b) = lender.and_then(|l| l.audio.clone()) {
            audio = Some((b, ConfigSource::Lent, None));
        } else if let Some((b, syn)) = pending.audio {
            audio = Some((b, ConfigSource::Synthesised, Some(syn)));
        }
    }
    if video.is_some() || audio.is_some() {
        // An inventory writes no file: it says what the file would have.
        let done = match r.file_id {
            Some(_) => insert_configs(
                dir,
                r,
                video.as_ref().map(|v| &v.0),
                audio.as_ref().map(|a| &a.0),
                sha256,
            )?,
            None => r.file.is_none(),
        };
        if done {
            let mut lent = false;
            for (slot, made) in [(0, video), (1, audio)] {
                let Some((_, source, syn)) = made else {
                    continue;
                };
                lent |= source == ConfigSource::Lent;
                if slot == 0 {
                    r.decodable.video = Some(source);
                } else {
                    r.decodable.audio = Some(source);
                }
                if let Some(syn) = syn {
                    r.notes.push(format!(
                        "{} decoder configuration ({}) built from the frames, an estimate: see decodable.synthesised",
                        syn.codec, syn.config
                    ));
                    r.decodable.synthesised.push(syn);
                }
            }
            if lent && let Some(l) = lender {
                r.notes.push(lent_note(l));
            }
        }
    }
    if missing(r.decodable.video)
        && r.audio_frames > 0
        && !missing(r.decodable.audio)
        && r.file_id.is_some()
    {
        audio_alone(dir, r)?;
    }
    r.decodable.settle();
    Ok(())
}

/// The largest tag body an FLV file can hold (a 24-bit size).
const MAX_TAG: usize = (1 << 24) - 1;

/// Write the audio and script tags of the stream's file into `STEM_audio.flv` beside it (a
/// free name), its header saying audio only: what ffmpeg and VLC open when the video has no
/// decoder configuration.
fn audio_alone(dir: &Path, r: &mut StreamReport) -> io::Result<()> {
    let (Some(name), Some(id)) = (r.file.clone(), r.file_id) else {
        return Ok(());
    };
    let Some(mut src) = reopen(&dir.join(&name), id)? else {
        return Ok(());
    };
    src.seek(io::SeekFrom::Start(0))?;
    let stem = name.strip_suffix(".flv").unwrap_or(&name).to_string();
    let (out, out_name) = create_unique_named(dir, &mut |n| {
        if n == 1 {
            format!("{stem}_audio.flv")
        } else {
            format!("{stem}_audio-{n}.flv")
        }
    })?;
    let mut src = BufReader::with_capacity(1 << 16, src);
    let mut out = BufWriter::with_capacity(1 << 16, out);
    let mut head = [0u8; flv::HEADER.len()];
    src.read_exact(&mut head)?;
    let mut new_head = flv::HEADER;
    new_head[4] = 0x04;
    out.write_all(&new_head)?;
    let mut body = Vec::new();
    let mut tags = 0u64;
    loop {
        let mut h = [0u8; 11];
        match src.read_exact(&mut h) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        if size > MAX_TAG {
            break;
        }
        body.resize(size + 4, 0);
        if src.read_exact(&mut body).is_err() {
            break; // a cut last tag: the whole ones are in
        }
        if h[0] == 8 || h[0] == 18 {
            out.write_all(&h)?;
            out.write_all(&body)?;
            tags += 1;
        }
    }
    out.flush()?;
    let _ = tags;
    r.decodable.audio_file = Some(out_name);
    Ok(())
}
