//! Making a stream's file play when its decoder configuration was not captured: the one lent
//! from another connection, else one built from the frames (`Pending`), written at the start
//! of the file; and, when the video still cannot be decoded, the audio alone in a file beside
//! it, which players open. The report's `decodable` says what was done.

use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::Path;

use bytes::Bytes;

use super::flv;
use super::fs::{create_unique_named, reopen};
use super::lend::{Lender, insert_configs, lent_note};
use super::report::{ConfigSource, Pending, StreamReport};
use crate::rtmp::media;

/// Sequence headers from a file the analyst has (`--config-from`: an earlier recording of
/// the same encoder): the first video and audio decoder configurations in it, as FLV tag
/// bodies. Each is used for a stream only once checked against the stream's frames.
#[derive(Clone, Debug, Default)]
pub struct FileConfigs {
    /// The file's name, for the report.
    pub name: String,
    pub video: Option<Bytes>,
    pub audio: Option<Bytes>,
}

impl FileConfigs {
    /// The first video and audio configurations among the whole tags of an FLV file's start
    /// (`data`, which may end in a cut tag); an error when it is not FLV or holds neither.
    pub fn from_flv(name: &str, data: &[u8]) -> Result<Self, String> {
        let (_, tags, _) = flv::parse_prefix(data).ok_or("not an FLV file")?;
        let mut c = FileConfigs {
            name: name.to_string(),
            ..Default::default()
        };
        for t in tags {
            match t.kind {
                9 if c.video.is_none() && media::video(&t.body).is_some_and(|i| i.config) => {
                    c.video = Some(Bytes::from(t.body))
                }
                8 if c.audio.is_none() && media::audio(&t.body).is_some_and(|i| i.config) => {
                    c.audio = Some(Bytes::from(t.body))
                }
                _ => {}
            }
        }
        if c.video.is_none() && c.audio.is_none() {
            return Err("it holds no video or audio sequence header".into());
        }
        Ok(c)
    }

    /// The file's video configuration if it fits the stream (codec, and for H.264 the NAL
    /// length size and the PPS/SPS ids its keyframe uses), else why not.
    fn video_for(&self, r: &StreamReport, p: &Pending) -> Option<Result<Bytes, String>> {
        let b = self.video.as_ref()?;
        let codec = media::video(b).map_or("unknown", |i| i.codec);
        if Some(codec) != r.video_codec {
            return Some(Err(format!(
                "its video is {codec}, the stream's {}",
                r.video_codec.unwrap_or("unknown")
            )));
        }
        if codec == "h264" && b[0] & 0x80 == 0 {
            let Some(key) = &p.keyframe else {
                return Some(Err("no keyframe of the stream to check it against".into()));
            };
            if let Err(e) = media::avc_config_fits(b.get(5..).unwrap_or_default(), key) {
                return Some(Err(e));
            }
            // The profile must allow what the frames do: Baseline (66) has no B-frames.
            let profile = b.get(6).copied().unwrap_or(0);
            if profile == 66 && r.reordered {
                return Some(Err(
                    "its SPS is Baseline profile, which has no B-frames; the stream's pictures are reordered"
                        .into(),
                ));
            }
            // A picture size the stream states (onMetaData) must be the SPS's.
            if let (Some(dim), Some(w), Some(h)) = (media::video_dimensions(b), r.width, r.height)
                && dim != (w, h)
            {
                return Some(Err(format!(
                    "its SPS says {}x{}, the stream {w}x{h}",
                    dim.0, dim.1
                )));
            }
        }
        Some(Ok(b.clone()))
    }

    /// The file's audio configuration if it fits the stream (codec, and for AAC the channels
    /// and rate its frames show), else why not.
    fn audio_for(&self, r: &StreamReport, p: &Pending) -> Option<Result<Bytes, String>> {
        let b = self.audio.as_ref()?;
        let codec = media::audio(b).map_or("unknown", |i| i.codec);
        if Some(codec) != r.audio_codec {
            return Some(Err(format!(
                "its audio is {codec}, the stream's {}",
                r.audio_codec.unwrap_or("unknown")
            )));
        }
        if codec == "aac" && b[0] >> 4 == 10 {
            if let Err(e) =
                media::aac_config_fits(b.get(2..).unwrap_or_default(), p.aac_channels, p.aac_rate)
            {
                return Some(Err(e));
            }
            // The stream's own FLV audio header byte, as its frames have it.
            if let Some(h) = p.audio_header {
                let mut v = b.to_vec();
                v[0] = h;
                return Some(Ok(Bytes::from(v)));
            }
        }
        Some(Ok(b.clone()))
    }
}

/// Settle what the stream `r` lacks, at the end of the stream or (when a configuration might
/// be lent) of the input: `lender`'s configurations first, else the ones built.
pub(super) fn complete(
    dir: &Path,
    r: &mut StreamReport,
    lender: Option<&Lender>,
    from_file: Option<&FileConfigs>,
    sha256: bool,
) -> io::Result<()> {
    let pending = r.pending.take().map(|p| *p).unwrap_or_default();
    let mut file_video = None;
    let mut file_audio = None;
    if let Some(f) = from_file {
        let kinds = [
            (
                "video",
                r.decodable.video,
                f.video_for(r, &pending),
                &mut file_video,
            ),
            (
                "audio",
                r.decodable.audio,
                f.audio_for(r, &pending),
                &mut file_audio,
            ),
        ];
        for (kind, source, fit, slot) in kinds {
            if source != Some(ConfigSource::Missing) {
                continue;
            }
            match fit {
                Some(Ok(b)) => *slot = Some(b),
                Some(Err(why)) => r.notes.push(format!(
                    "--config-from {}: its {kind} configuration does not fit the stream ({why}): not used",
                    f.name
                )),
                None => {}
            }
        }
    }
    let missing = |s: Option<ConfigSource>| s == Some(ConfigSource::Missing);
    let mut video = None;
    let mut audio = None;
    if missing(r.decodable.video) {
        if let Some(b) = lender.and_then(|l| l.video.clone()) {
            video = Some((b, ConfigSource::Lent, None));
        } else if let Some(b) = file_video {
            video = Some((b, ConfigSource::FromFile, None));
        } else if let Some((b, syn)) = pending.video {
            video = Some((b, ConfigSource::Synthesised, Some(syn)));
        }
    }
    if missing(r.decodable.audio) {
        if let Some(b) = lender.and_then(|l| l.audio.clone()) {
            audio = Some((b, ConfigSource::Lent, None));
        } else if let Some(b) = file_audio {
            audio = Some((b, ConfigSource::FromFile, None));
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
                if source == ConfigSource::FromFile
                    && let Some(f) = from_file
                {
                    r.notes.push(format!(
                        "{} decoder configuration taken from {} (--config-from), checked against the stream's frames",
                        if slot == 0 { "video" } else { "audio" },
                        f.name
                    ));
                }
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
