//! What an audio or video message body says about itself (the FLV tag body header, legacy and
//! Enhanced RTMP).

/// The parts of a media body's header the tool acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaInfo {
    pub codec: &'static str,
    /// Decoder configuration (AVC/HEVC/AV1 sequence header, AAC AudioSpecificConfig, ...).
    pub config: bool,
    /// Whether the codec needs a configuration record before coded frames.
    pub needs_config: bool,
    pub keyframe: bool,
    /// A coded frame (not configuration, end of sequence, metadata or a command).
    pub frame: bool,
}

fn video_codec_name(id: u8) -> &'static str {
    match id {
        1 => "jpeg",
        2 => "flv1",
        3 => "flashsv",
        4 => "vp6f",
        5 => "vp6a",
        6 => "flashsv2",
        7 => "h264",
        12 => "hevc",
        13 => "av1",
        _ => "unknown",
    }
}

fn video_fourcc_name(f: &[u8]) -> &'static str {
    match f {
        b"avc1" => "h264",
        b"hvc1" => "hevc",
        b"av01" => "av1",
        b"vp09" => "vp9",
        b"vp08" => "vp8",
        _ => "unknown",
    }
}

fn audio_format_name(id: u8) -> &'static str {
    match id {
        0 => "pcm",
        1 => "adpcm_swf",
        2 => "mp3",
        3 => "pcm_s16le",
        4..=6 => "nellymoser",
        7 => "pcm_alaw",
        8 => "pcm_mulaw",
        10 => "aac",
        11 => "speex",
        14 => "mp3",
        15 => "device_specific",
        _ => "unknown",
    }
}

fn audio_fourcc_name(f: &[u8]) -> &'static str {
    match f {
        b"Opus" => "opus",
        b"fLaC" => "flac",
        b"ac-3" => "ac3",
        b"ec-3" => "eac3",
        b".mp3" => "mp3",
        b"mp4a" => "aac",
        _ => "unknown",
    }
}

/// Read a video body's header.
pub fn video(body: &[u8]) -> Option<MediaInfo> {
    let b0 = *body.first()?;
    if b0 & 0x80 != 0 {
        // Enhanced RTMP: frame type in bits 4..6, packet type in the low nibble.
        let frame_type = (b0 >> 4) & 0x07;
        let packet_type = b0 & 0x0f;
        if packet_type == 6 {
            // Multitrack: the FourCC follows the track-layout byte when all tracks share it.
            // Its frames are counted per track (the report's tracks[]), not with the
            // stream's own (track 0), as audio's are.
            let codec = body.get(2..6).map_or("unknown", video_fourcc_name);
            return Some(MediaInfo {
                codec,
                config: false,
                needs_config: false,
                keyframe: frame_type == 1,
                frame: false,
            });
        }
        let codec = body.get(1..5).map_or("unknown", video_fourcc_name);
        let command = frame_type == 5;
        return Some(MediaInfo {
            codec,
            config: packet_type == 0 || packet_type == 5,
            needs_config: true,
            keyframe: frame_type == 1 && !command,
            frame: !command && (packet_type == 1 || packet_type == 3),
        });
    }
    let frame_type = b0 >> 4;
    let codec_id = b0 & 0x0f;
    let command = frame_type == 5;
    let (config, frame, needs_config) = match codec_id {
        7 | 12 | 13 => {
            let pt = *body.get(1)?;
            (pt == 0, pt == 1 && !command, true)
        }
        _ => (false, !command, false),
    };
    Some(MediaInfo {
        codec: video_codec_name(codec_id),
        config,
        needs_config,
        keyframe: frame_type == 1 && !command,
        frame,
    })
}

/// Read an audio body's header.
pub fn audio(body: &[u8]) -> Option<MediaInfo> {
    let b0 = *body.first()?;
    let format = b0 >> 4;
    if format == 9 {
        let packet_type = b0 & 0x0f;
        let codec = body.get(1..5).map_or("unknown", audio_fourcc_name);
        return Some(MediaInfo {
            codec,
            config: packet_type == 0,
            needs_config: codec == "aac" || codec == "flac" || codec == "opus",
            keyframe: false,
            frame: packet_type == 1,
        });
    }
    let (config, frame) = if format == 10 {
        let pt = *body.get(1)?;
        (pt == 0, pt == 1)
    } else {
        (false, true)
    };
    Some(MediaInfo {
        codec: audio_format_name(format),
        config,
        needs_config: format == 10,
        keyframe: false,
        frame,
    })
}

/// Whether a video body looks like what encoders write: a known codec and frame type, and for
/// the common codecs the start of the coded data (AVC NAL unit length within the body,
/// Sorenson H.263 picture start code). Used to tell a right lock-on from a wrong one.
pub fn video_plausible(b: &[u8]) -> bool {
    let Some(i) = video(b) else {
        return false;
    };
    if i.codec == "unknown" {
        return false;
    }
    if b[0] & 0x80 != 0 {
        return true; // Enhanced RTMP: the FourCC was recognised
    }
    let frame_type = b[0] >> 4;
    if !(1..=5).contains(&frame_type) {
        return false;
    }
    match b[0] & 0x0f {
        7 | 12 => {
            let Some(&pt) = b.get(1) else {
                return false;
            };
            match pt {
                0 => b.len() >= 6 && b[2..5] == [0, 0, 0] && b[5] == 1,
                1 => match b.get(5..9) {
                    Some(n) => {
                        let nal = u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize;
                        nal > 0 && nal <= b.len() - 9
                    }
                    None => false,
                },
                2 => true,
                _ => false,
            }
        }
        2 => b.len() >= 4 && b[1] == 0 && b[2] == 0 && b[3] & 0x80 == 0x80,
        _ => true,
    }
}

/// The bytes of the MPEG audio frame (MP3, or layer I/II) whose 4-byte header starts `h`:
/// from its version, layer, bitrate, sample rate and padding bit (ISO 11172-3, 13818-3).
/// `None` for no valid header (or a free-format bitrate, whose frames have no fixed size).
pub fn mpeg_audio_frame_len(h: &[u8]) -> Option<usize> {
    let h = h.get(..4)?;
    if h[0] != 0xff || h[1] & 0xe0 != 0xe0 {
        return None;
    }
    // Version: 0 MPEG 2.5, 2 MPEG 2, 3 MPEG 1 (1 reserved); layer: 3 I, 2 II, 1 III.
    let (version, layer) = ((h[1] >> 3) & 3, (h[1] >> 1) & 3);
    let (bitrate, rate, padding) = (h[2] >> 4, (h[2] >> 2) & 3, ((h[2] >> 1) & 1) as usize);
    if version == 1 || layer == 0 || bitrate == 0 || bitrate == 15 || rate == 3 {
        return None;
    }
    const V1: [[u16; 14]; 3] = [
        [
            32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
        ],
        [
            32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
        ],
        [
            32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
        ],
    ];
    const V2: [[u16; 14]; 2] = [
        [
            32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
        ],
        [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
    ];
    let l = (3 - layer) as usize; // 0: layer I, 1: II, 2: III
    let kbps = if version == 3 {
        V1[l][bitrate as usize - 1]
    } else {
        V2[l.min(1)][bitrate as usize - 1]
    } as usize;
    let shift = match version {
        3 => 0,
        2 => 1,
        _ => 2,
    };
    let hz = [44100, 48000, 32000][rate as usize] >> shift;
    Some(match l {
        0 => (12 * kbps * 1000 / hz + padding) * 4,
        // MPEG 2 and 2.5 layer III frames hold half the samples.
        2 if version != 3 => 72 * kbps * 1000 / hz + padding,
        _ => 144 * kbps * 1000 / hz + padding,
    })
}

/// The length of an MP3 message whose length in force may be from before a gap (`stale`),
/// from its first bytes (`body`: the FLV audio byte and its first frame's header): a message
/// of one frame is that frame and the FLV byte. `None` when the body is no MP3, or `stale`
/// still fits (it is the frame's, or a number of frames of about that size); `stale` 0: no
/// length is known.
pub fn mp3_message_len(body: &[u8], stale: u32) -> Option<u32> {
    if body.first()? >> 4 != 2 {
        return None;
    }
    let frame = mpeg_audio_frame_len(body.get(1..5)?)? as u32;
    let one = frame + 1;
    let Some(rest) = stale.checked_sub(1) else {
        return Some(one);
    };
    // Several frames of this size, each with or without its padding (a 4-byte slot in
    // layer I, else a byte).
    let slot = if (body[2] >> 1) & 3 == 3 { 4 } else { 1 };
    let bare = frame - ((body[3] >> 1) & 1) as u32 * slot;
    let n = (rest + bare / 2) / bare.max(1);
    if one == stale || (n >= 2 && (n * bare..=n * (bare + slot)).contains(&rest)) {
        return None;
    }
    Some(one)
}

/// Whether an audio body looks like what encoders write (AAC packet type, MP3 frame sync).
pub fn audio_plausible(b: &[u8]) -> bool {
    let Some(i) = audio(b) else {
        return false;
    };
    if i.codec == "unknown" {
        return false;
    }
    match b[0] >> 4 {
        10 => matches!(b.get(1), Some(0 | 1)),
        2 | 14 => b.len() >= 3 && b[1] == 0xff && b[2] & 0xe0 == 0xe0,
        _ => true,
    }
}

/// Audio sample rate and channel count from the legacy header (AAC states 44.1 kHz stereo here
/// whatever it carries; its AudioSpecificConfig holds the truth and is read for AAC).
pub fn audio_params(body: &[u8]) -> Option<(u32, u8)> {
    let b0 = *body.first()?;
    let format = b0 >> 4;
    if format == 9 {
        // Enhanced RTMP: only a SequenceStart says, in its codec's own configuration.
        if b0 & 0x0f != 0 {
            return None;
        }
        let data = body.get(5..)?;
        return match body.get(1..5)? {
            b"Opus" => opus_head(data),
            b"fLaC" => flac_streaminfo(data),
            _ => None,
        };
    }
    if format == 10 && body.get(1) == Some(&0) {
        return aac_config(body.get(2..)?);
    }
    let rate = match (format, (b0 >> 2) & 3) {
        (4, _) => 16000,
        (5, _) => 8000,
        (14, _) => 8000,
        (7 | 8, _) => 8000,
        (_, 0) => 5512,
        (_, 1) => 11025,
        (_, 2) => 22050,
        _ => 44100,
    };
    Some((rate, if b0 & 1 == 1 { 2 } else { 1 }))
}

/// The AAC sampling frequencies an AudioSpecificConfig can name by index.
const AAC_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// The channel configuration a raw AAC frame (the `raw_data_block` after the FLV AAC header)
/// shows by its first syntax element: a single channel element is mono (1), a channel pair
/// element stereo (2). Any other first element (coupling, LFE, data, fill, program config)
/// says nothing certain: none.
pub fn aac_channels_of_frame(raw: &[u8]) -> Option<u8> {
    match raw.first()? >> 5 {
        0 => Some(1),
        1 => Some(2),
        _ => None,
    }
}

/// The AAC sample rate that frames of 1024 samples, sent at the RTMP timestamps `ts` (ms, in
/// order, of consecutive audio messages), were sampled at: the standard rate nearest to
/// 1024 / (mean frame duration), the mean taken over the steps no longer than 1.5 times the
/// median step (a lost frame is a step of two). Also that mean, in ms. None with fewer than
/// 8 steps, or when the nearest standard rate is more than 3% away (not 1024-sample frames).
pub fn aac_rate_of_times(ts: &[u32]) -> Option<(u32, f64)> {
    let mut steps: Vec<u32> = ts
        .windows(2)
        .map(|w| w[1].wrapping_sub(w[0]))
        .filter(|d| *d > 0 && *d < 1000)
        .collect();
    if steps.len() < 8 {
        return None;
    }
    let mut sorted = steps.clone();
    sorted.sort_unstable();
    let median = sorted[sorted.len() / 2];
    steps.retain(|d| *d * 2 <= median * 3);
    let mean = steps.iter().map(|d| *d as f64).sum::<f64>() / steps.len() as f64;
    let rate = 1024.0 * 1000.0 / mean;
    let best = AAC_RATES.iter().copied().min_by(|a, b| {
        ((*a as f64 - rate).abs())
            .partial_cmp(&(*b as f64 - rate).abs())
            .unwrap_or(std::cmp::Ordering::Equal)
    })?;
    ((best as f64 - rate).abs() <= best as f64 * 0.03).then_some((best, mean))
}

/// A two-byte AudioSpecificConfig: object type 2 (AAC LC), the rate's index, `channels`
/// (1..=7), 1024-sample frames, no extension. None for a rate with no index.
pub fn aac_lc_config(rate: u32, channels: u8) -> Option<[u8; 2]> {
    let idx = AAC_RATES.iter().position(|r| *r == rate)? as u16;
    if !(1..=7).contains(&channels) {
        return None;
    }
    let v: u16 = (2 << 11) | (idx << 7) | ((channels as u16) << 3);
    Some(v.to_be_bytes())
}

/// The NAL units of an AVC body's coded data (after the 5-byte FLV AVC header) in AVCC form,
/// if `len_size`-byte lengths divide it exactly (every unit non-empty).
pub fn avcc_nalus(data: &[u8], len_size: usize) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let (l, r) = rest.split_at_checked(len_size)?;
        let n = l.iter().fold(0usize, |a, b| (a << 8) | *b as usize);
        if n == 0 || n > r.len() || out.len() >= 1024 {
            return None;
        }
        out.push(&r[..n]);
        rest = &r[n..];
    }
    (!out.is_empty()).then_some(out)
}

/// An AVCDecoderConfigurationRecord built from the SPS and PPS an H.264 keyframe carries in
/// band (legacy FLV body, AVC NAL units), the NAL length size being the one of 4, 2 and 1
/// bytes that divides the frame exactly (4 first): the record, and that length size. None
/// when the frame holds no SPS or no PPS. Only the first SPS and PPS are taken.
pub fn avc_config_in_band(body: &[u8]) -> Option<(Vec<u8>, u8)> {
    if body.first()? & 0x0f != 7 || *body.get(1)? != 1 {
        return None;
    }
    let data = body.get(5..)?;
    let (nalus, len_size) = [4usize, 2, 1]
        .iter()
        .find_map(|&n| avcc_nalus(data, n).map(|v| (v, n)))?;
    let sps = nalus.iter().find(|n| n[0] & 0x1f == 7 && n.len() >= 4)?;
    let pps = nalus.iter().find(|n| n[0] & 0x1f == 8)?;
    if sps.len() > 0xffff || pps.len() > 0xffff {
        return None;
    }
    let mut rec = vec![1, sps[1], sps[2], sps[3], 0xfc | (len_size as u8 - 1), 0xe1];
    rec.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    rec.extend_from_slice(sps);
    rec.push(1);
    rec.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    rec.extend_from_slice(pps);
    Some((rec, len_size as u8))
}

/// An HEVC frame's coded data: an Enhanced RTMP `hvc1` body (CodedFrames, after its
/// composition time, or CodedFramesX) or a legacy codec-12 body (after AVCPacketType and
/// composition time).
fn hevc_frame_data(body: &[u8]) -> Option<&[u8]> {
    let b0 = *body.first()?;
    if b0 & 0x80 != 0 {
        if body.get(1..5)? != b"hvc1" {
            return None;
        }
        return match b0 & 0x0f {
            1 => body.get(8..),
            3 => body.get(5..),
            _ => None,
        };
    }
    (b0 & 0x0f == 12 && *body.get(1)? == 1).then(|| body.get(5..))?
}

/// A NAL unit's payload without its emulation prevention bytes (00 00 03 -> 00 00).
fn rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// What an HEVC SPS says for its configuration record: the 12 bytes of general profile,
/// tier and level, the sub-layers less one, the temporal id nesting flag, the chroma format
/// and the luma and chroma bit depths less 8.
struct HevcSps {
    ptl: [u8; 12],
    sub_layers_minus1: u8,
    nesting: u8,
    chroma: u32,
    depth_luma: u32,
    depth_chroma: u32,
}

fn hevc_sps(nal: &[u8]) -> Option<HevcSps> {
    let r = rbsp(nal.get(2..)?);
    let head = *r.first()?;
    let sub_layers_minus1 = (head >> 1) & 7;
    let ptl: [u8; 12] = r.get(1..13)?.try_into().ok()?;
    let mut b = Bits { b: &r, pos: 13 * 8 };
    let n = sub_layers_minus1 as usize;
    let mut present = Vec::with_capacity(n);
    for _ in 0..n {
        present.push((b.bit()?, b.bit()?));
    }
    if n > 0 {
        b.bits(2 * (8 - n as u32))?;
    }
    for (profile, level) in present {
        if profile == 1 {
            b.bits(32)?;
            b.bits(32)?;
            b.bits(24)?;
        }
        if level == 1 {
            b.bits(8)?;
        }
    }
    b.ue()?; // sps_seq_parameter_set_id
    let chroma = b.ue()?;
    if chroma == 3 {
        b.bit()?;
    }
    b.ue()?; // width
    b.ue()?; // height
    if b.bit()? == 1 {
        for _ in 0..4 {
            b.ue()?;
        }
    }
    let (depth_luma, depth_chroma) = (b.ue()?, b.ue()?);
    (chroma <= 3 && depth_luma <= 8 && depth_chroma <= 8).then_some(HevcSps {
        ptl,
        sub_layers_minus1,
        nesting: head & 1,
        chroma,
        depth_luma,
        depth_chroma,
    })
}

/// An HEVCDecoderConfigurationRecord built from the VPS, SPS and PPS an HEVC keyframe carries
/// in band (x265 `repeat-headers`), the NAL length size being the one of 4, 2 and 1 bytes that
/// divides the frame exactly: the record, that length size, and the SPS's general profile
/// and level. None when the frame lacks one of the three or its SPS cannot be read. Only the
/// first of each is taken; the fields the record repeats from the SPS (profile, tier, level,
/// chroma format, bit depths, sub-layers) are read from it; those it does not state
/// (segmentation, parallelism, frame rate) are 0, "unknown".
pub fn hevc_config_in_band(body: &[u8]) -> Option<(Vec<u8>, u8, u8, u8)> {
    let data = hevc_frame_data(body)?;
    let (nalus, len_size) = [4usize, 2, 1]
        .iter()
        .find_map(|&n| avcc_nalus(data, n).map(|v| (v, n)))?;
    let of = |t: u8| {
        nalus
            .iter()
            .find(|n| n.len() >= 3 && (n[0] >> 1) & 0x3f == t && n.len() <= 0xffff)
    };
    let (vps, sps, pps) = (of(32)?, of(33)?, of(34)?);
    let i = hevc_sps(sps)?;
    let mut rec = vec![1];
    rec.extend_from_slice(&i.ptl);
    rec.extend_from_slice(&[
        0xf0,
        0x00,
        0xfc,
        0xfc | i.chroma as u8,
        0xf8 | i.depth_luma as u8,
        0xf8 | i.depth_chroma as u8,
        0,
        0,
        ((i.sub_layers_minus1 + 1) << 3) | (i.nesting << 2) | (len_size as u8 - 1),
        3,
    ]);
    for (t, n) in [(32u8, vps), (33, sps), (34, pps)] {
        rec.push(t);
        rec.extend_from_slice(&1u16.to_be_bytes());
        rec.extend_from_slice(&(n.len() as u16).to_be_bytes());
        rec.extend_from_slice(n);
    }
    Some((rec, len_size as u8, i.ptl[0] & 0x1f, i.ptl[11]))
}

/// The FLV body of a sequence header carrying `rec` for a stream whose frames look like
/// `frame` (Enhanced RTMP `hvc1`, or legacy codec 12).
pub fn hevc_config_body(frame: &[u8], rec: &[u8]) -> Vec<u8> {
    let mut b = if frame.first().is_some_and(|b0| b0 & 0x80 != 0) {
        let mut v = vec![0x80 | 0x10];
        v.extend_from_slice(b"hvc1");
        v
    } else {
        vec![0x1c, 0, 0, 0, 0]
    };
    b.extend_from_slice(rec);
    b
}

/// NAL units borrowed from a record.
type Units<'a> = Vec<&'a [u8]>;

/// The SPS and PPS of an AVCDecoderConfigurationRecord, and its NAL length size.
fn avcc_parts(rec: &[u8]) -> Option<(u8, Units<'_>, Units<'_>)> {
    if *rec.first()? != 1 {
        return None;
    }
    let len_size = (rec.get(4)? & 3) + 1;
    let mut pos = 6;
    let take = |count: usize, pos: &mut usize| -> Option<Vec<&[u8]>> {
        let mut v = Vec::new();
        for _ in 0..count {
            let n = u16::from_be_bytes([*rec.get(*pos)?, *rec.get(*pos + 1)?]) as usize;
            v.push(rec.get(*pos + 2..*pos + 2 + n).filter(|u| !u.is_empty())?);
            *pos += 2 + n;
        }
        Some(v)
    };
    let sps = take((rec.get(5)? & 0x1f) as usize, &mut pos)?;
    let n_pps = *rec.get(pos)? as usize;
    pos += 1;
    let pps = take(n_pps, &mut pos)?;
    Some((len_size, sps, pps))
}

/// Whether an AVC decoder configuration record (`rec`) fits an H.264 keyframe of a stream
/// (its FLV body): the record's NAL length size divides the frame exactly, the frame's first
/// slice names a PPS of the record, and that PPS names the record's SPS. `Err` says what
/// does not fit.
pub fn avc_config_fits(rec: &[u8], keyframe: &[u8]) -> Result<(), String> {
    let (len_size, sps, pps) = avcc_parts(rec).ok_or("not an AVC decoder configuration record")?;
    let data = keyframe.get(5..).ok_or("keyframe too short")?;
    let nalus = avcc_nalus(data, len_size as usize).ok_or(format!(
        "its NAL unit length size ({len_size} bytes) does not divide the stream's keyframe"
    ))?;
    let sps_ids: Vec<u32> = sps
        .iter()
        .filter_map(|s| {
            Bits {
                b: s.get(4..)?,
                pos: 0,
            }
            .ue()
        })
        .collect();
    let pps_ids: Vec<(u32, u32)> = pps
        .iter()
        .filter_map(|p| {
            let mut b = Bits {
                b: p.get(1..)?,
                pos: 0,
            };
            Some((b.ue()?, b.ue()?))
        })
        .collect();
    let slice = nalus
        .iter()
        .find(|n| matches!(n[0] & 0x1f, 1 | 5))
        .ok_or("the stream's keyframe holds no slice")?;
    let mut b = Bits {
        b: &slice[1..],
        pos: 0,
    };
    let (_first_mb, _slice_type) = (b.ue(), b.ue());
    let want = b.ue().ok_or("the keyframe's slice header is cut")?;
    let Some((_, sps_id)) = pps_ids.iter().find(|(id, _)| *id == want) else {
        return Err(format!(
            "the stream's slices use PPS {want}, the record has {:?}",
            pps_ids.iter().map(|p| p.0).collect::<Vec<_>>()
        ));
    };
    if !sps_ids.contains(sps_id) {
        return Err(format!(
            "PPS {want} names SPS {sps_id}, the record has {sps_ids:?}"
        ));
    }
    Ok(())
}

/// Whether an AudioSpecificConfig fits what a stream's AAC frames show: the channels their
/// first syntax element says (`frame_channels`), and the sample rate their timing says
/// (`rate`).
pub fn aac_config_fits(
    asc: &[u8],
    frame_channels: Option<u8>,
    rate: Option<u32>,
) -> Result<(), String> {
    let (r, ch) = aac_config(asc).ok_or("not an AudioSpecificConfig")?;
    match frame_channels {
        Some(2) if ch != 2 => {
            return Err(format!(
                "it says {ch} channels, the frames begin with a channel pair element (2)"
            ));
        }
        Some(1) if ch == 2 => {
            return Err(
                "it says 2 channels, the frames begin with a single channel element".into(),
            );
        }
        _ => {}
    }
    if let Some(rate) = rate
        && rate != r
    {
        return Err(format!("it says {r} Hz, the frames' timing says {rate} Hz"));
    }
    Ok(())
}

/// Rate and channels from an Opus identification header (`OpusHead`): Opus always decodes
/// at 48 kHz (the header's input rate is only the source's, and ffprobe too says 48000).
fn opus_head(d: &[u8]) -> Option<(u32, u8)> {
    if !d.starts_with(b"OpusHead") {
        return None;
    }
    let ch = *d.get(9)?;
    (ch > 0).then_some((48000, ch))
}

/// Rate and channels from a FLAC STREAMINFO block, bare (as ffmpeg sends it) or after the
/// `fLaC` marker and a metadata block header.
fn flac_streaminfo(d: &[u8]) -> Option<(u32, u8)> {
    let info = if d.starts_with(b"fLaC") {
        d.get(8..)?
    } else {
        d
    };
    let v = u64::from_be_bytes(info.get(10..18)?.try_into().ok()?);
    let rate = (v >> 44) as u32;
    let ch = ((v >> 41) & 7) as u8 + 1;
    (rate > 0).then_some((rate, ch))
}

/// One track's part of an Enhanced RTMP multitrack message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackPart<'a> {
    pub id: u8,
    pub codec: &'static str,
    /// The track's packet type (video: 0 SequenceStart, 1 CodedFrames, 3 CodedFramesX;
    /// audio: 0 SequenceStart, 1 CodedFrames).
    pub packet_type: u8,
    pub data: &'a [u8],
}

impl TrackPart<'_> {
    /// A coded frame (not a configuration or anything else).
    pub fn frame(&self, video: bool) -> bool {
        self.packet_type == 1 || (video && self.packet_type == 3)
    }

    /// Picture size (video) or rate and channels (audio) from a SequenceStart.
    pub fn params(&self, video: bool) -> Option<(u32, u32)> {
        if self.packet_type != 0 {
            return None;
        }
        if video {
            return match self.codec {
                "h264" => avc_config_dimensions(self.data),
                _ => None,
            };
        }
        let p = match self.codec {
            "opus" => opus_head(self.data),
            "flac" => flac_streaminfo(self.data),
            "aac" => aac_config(self.data),
            _ => None,
        };
        p.map(|(r, c)| (r, c as u32))
    }
}

/// Tracks in one multitrack message, at most.
const MAX_TRACK_PARTS: usize = 256;

/// The tracks of an Enhanced RTMP v2 multitrack message (video packet type 6, audio packet
/// type 5): OneTrack, ManyTracks (each with its size) or ManyTracksManyCodecs (each with its
/// FourCC and size). None when the body is not one, or is cut.
pub fn multitrack(body: &[u8], video: bool) -> Option<Vec<TrackPart<'_>>> {
    let b0 = *body.first()?;
    let is = if video {
        b0 & 0x80 != 0 && b0 & 0x0f == 6
    } else {
        b0 >> 4 == 9 && b0 & 0x0f == 5
    };
    if !is {
        return None;
    }
    let b1 = *body.get(1)?;
    let (kind, packet_type) = (b1 >> 4, b1 & 0x0f);
    if kind > 2 {
        return None;
    }
    let name = |f: &[u8]| {
        if video {
            video_fourcc_name(f)
        } else {
            audio_fourcc_name(f)
        }
    };
    let mut pos = 2;
    let mut codec = "unknown";
    if kind != 2 {
        codec = name(body.get(2..6)?);
        pos = 6;
    }
    let mut parts = Vec::new();
    while pos < body.len() && parts.len() < MAX_TRACK_PARTS {
        if kind == 2 {
            codec = name(body.get(pos..pos + 4)?);
            pos += 4;
        }
        let id = *body.get(pos)?;
        pos += 1;
        let data = if kind == 0 {
            let d = body.get(pos..)?;
            pos = body.len();
            d
        } else {
            let s = body.get(pos..pos + 3)?;
            let n = u32::from_be_bytes([0, s[0], s[1], s[2]]) as usize;
            pos += 3;
            let d = body.get(pos..pos.checked_add(n)?)?;
            pos += n;
            d
        };
        parts.push(TrackPart {
            id,
            codec,
            packet_type,
            data,
        });
    }
    (!parts.is_empty()).then_some(parts)
}

/// Sample rate and channels from an AudioSpecificConfig.
fn aac_config(asc: &[u8]) -> Option<(u32, u8)> {
    let v = u16::from_be_bytes([*asc.first()?, *asc.get(1)?]);
    let idx = ((v >> 7) & 0x0f) as usize;
    let ch = ((v >> 3) & 0x0f) as u8;
    Some((*AAC_RATES.get(idx)?, ch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulation_prevention_bytes_are_taken_out() {
        assert_eq!(
            rbsp(&[0, 0, 3, 1, 0, 0, 3, 0, 0, 3]),
            vec![0, 0, 1, 0, 0, 0, 0]
        );
        assert_eq!(rbsp(&[0, 3, 0, 3, 1]), vec![0, 3, 0, 3, 1]);
    }

    #[test]
    fn an_hevc_keyframe_without_its_three_parameter_sets_builds_nothing() {
        // Enhanced RTMP hvc1 CodedFramesX, 4-byte lengths: an IDR slice alone.
        let mut body = vec![0x93, b'h', b'v', b'c', b'1', 0, 0, 0, 3, 0x26, 0x01, 0xaf];
        assert!(hevc_config_in_band(&body).is_none());
        // A frame of another codec is not looked at.
        body[1..5].copy_from_slice(b"av01");
        assert!(hevc_config_in_band(&body).is_none());
    }

    fn hex_bytes(h: &str) -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn legacy_video() {
        let i = video(&[0x17, 0, 0, 0, 0, 1]).unwrap();
        assert_eq!(i.codec, "h264");
        assert!(i.config && !i.frame && i.keyframe);
        let i = video(&[0x27, 1, 0, 0, 0]).unwrap();
        assert!(i.frame && !i.keyframe);
        let i = video(&[0x22, 0, 0]).unwrap();
        assert_eq!(i.codec, "flv1");
        assert!(i.frame && !i.needs_config);
        assert!(video(&[]).is_none());
    }

    #[test]
    fn enhanced_video() {
        let i = video(&[0x90, b'h', b'v', b'c', b'1', 1]).unwrap();
        assert_eq!(i.codec, "hevc");
        assert!(i.config && i.keyframe);
        let i = video(&[0xa3, b'a', b'v', b'0', b'1']).unwrap();
        assert_eq!(i.codec, "av1");
        assert!(i.frame && !i.keyframe);
    }

    #[test]
    fn mpeg_audio_frame_lengths() {
        // ffmpeg's 64 kbit/s MP3 at 44.1 kHz, with and without the padding byte.
        assert_eq!(mpeg_audio_frame_len(&[0xff, 0xfb, 0x52, 0xc4]), Some(209));
        assert_eq!(mpeg_audio_frame_len(&[0xff, 0xfb, 0x50, 0xc4]), Some(208));
        // MPEG 2 layer III, 32 kbit/s at 22.05 kHz; layer II 128 kbit/s at 48 kHz; layer I
        // 32 kbit/s at 32 kHz.
        assert_eq!(mpeg_audio_frame_len(&[0xff, 0xf3, 0x40, 0]), Some(104));
        assert_eq!(mpeg_audio_frame_len(&[0xff, 0xfd, 0x84, 0]), Some(384));
        assert_eq!(mpeg_audio_frame_len(&[0xff, 0xff, 0x18, 0]), Some(48));
        // Free format, a reserved rate or version, no sync.
        assert_eq!(mpeg_audio_frame_len(&[0xff, 0xfb, 0x00, 0]), None);
        assert_eq!(mpeg_audio_frame_len(&[0xff, 0xfb, 0x5c, 0]), None);
        assert_eq!(mpeg_audio_frame_len(&[0xff, 0xeb, 0x50, 0]), None);
        assert_eq!(mpeg_audio_frame_len(&[0x7f, 0xfb, 0x50, 0]), None);
        // A message's length from before a gap: a frame's other padding, or two messages'
        // worth, give way to the frame's; two frames' worth (a sender's several per
        // message) stands.
        let padded = [0x2e, 0xff, 0xfb, 0x52, 0xc4];
        assert_eq!(mp3_message_len(&padded, 209), Some(210));
        assert_eq!(mp3_message_len(&padded, 421), Some(210));
        assert_eq!(mp3_message_len(&padded, 210), None);
        assert_eq!(mp3_message_len(&padded, 418), None);
        assert_eq!(mp3_message_len(&padded, 0), Some(210));
        assert_eq!(mp3_message_len(&[0xaf, 1, 0x21, 0, 0], 209), None);
    }

    #[test]
    fn plausibility() {
        assert!(video_plausible(&[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41]));
        assert!(!video_plausible(&[0x27, 1, 0, 0, 0, 0, 0, 9, 1, 0x41]));
        assert!(video_plausible(&[0x22, 0, 0, 0x84, 6]));
        assert!(!video_plausible(&[0x22, 7, 0, 0x84, 6]));
        assert!(!video_plausible(&[0x07, 1]));
        assert!(audio_plausible(&[0x2e, 0xff, 0xfb, 0x30]));
        assert!(!audio_plausible(&[0x2e, 0x12, 0xfb, 0x30]));
        assert!(audio_plausible(&[0xaf, 1, 0x21]));
        assert!(!audio_plausible(&[0xaf, 2, 0x21]));
    }

    #[test]
    fn audio_headers() {
        let i = audio(&[0xaf, 0, 0x12, 0x10]).unwrap();
        assert_eq!(i.codec, "aac");
        assert!(i.config);
        assert_eq!(audio_params(&[0xaf, 0, 0x12, 0x10]), Some((44100, 2)));
        assert_eq!(audio_params(&[0xaf, 0, 0x11, 0x90]), Some((48000, 2)));
        let i = audio(&[0x2f, 0xff]).unwrap();
        assert_eq!(i.codec, "mp3");
        assert_eq!(audio_params(&[0x2e]), Some((44100, 1)));
        // Enhanced RTMP SequenceStart bodies as ffmpeg 9 sends them.
        let opus = hex_bytes("904f7075734f707573486561640102380180bb0000000000");
        assert_eq!(audio_params(&opus), Some((48000, 2)));
        let flac = hex_bytes(
            "90664c6143040004000000000010980bb802f00000000000000000000000000000000000000000",
        );
        assert_eq!(audio_params(&flac), Some((48000, 2)));
        assert_eq!(audio_params(&flac[..12]), None);
        assert_eq!(audio_params(&[0x91, b'O', b'p', b'u', b's', 0]), None);
        // ffmpeg 9's second tracks: Multitrack OneTrack, track 1.
        let v = hex_bytes("96006176633101014d400dffe100");
        let t = multitrack(&v, true).unwrap();
        assert_eq!(
            (t.len(), t[0].id, t[0].codec, t[0].packet_type),
            (1, 1, "h264", 0)
        );
        let a = hex_bytes("95004f70757301");
        let mut a = a.clone();
        a.extend_from_slice(&opus[5..]);
        let t = multitrack(&a, false).unwrap();
        assert_eq!(t[0].params(false), Some((48000, 2)));
        // ManyTracks: two tracks with sizes; a size past the end is no parse.
        let m = [
            0x95, 0x11, b'O', b'p', b'u', b's', 1, 0, 0, 1, 0xaa, 2, 0, 0, 2, 0xbb, 0xcc,
        ];
        let t = multitrack(&m, false).unwrap();
        assert_eq!(
            t.iter().map(|p| (p.id, p.data.len())).collect::<Vec<_>>(),
            [(1, 1), (2, 2)]
        );
        assert!(t[0].frame(false));
        assert_eq!(multitrack(&m[..m.len() - 1], false), None);
        assert_eq!(multitrack(&[0x96, 0x30], true), None);
        let i = audio(&[0x91, b'O', b'p', b'u', b's']).unwrap();
        assert_eq!(i.codec, "opus");
        assert!(i.frame);
    }
}

/// Reads bits most-significant first, as H.264 and H.263 headers are written.
struct Bits<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Option<u32> {
        let byte = *self.b.get(self.pos / 8)?;
        let v = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(v as u32)
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Some(v)
    }

    /// Unsigned Exp-Golomb.
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1u32 << zeros) - 1 + self.bits(zeros)?)
    }

    fn se(&mut self) -> Option<i32> {
        let v = self.ue()?;
        Some(if v & 1 == 1 {
            v.div_ceil(2) as i32
        } else {
            -((v / 2) as i32)
        })
    }
}

/// Picture size from a video body that carries it: an AVC sequence header (the SPS, with its
/// cropping) or a Sorenson H.263 frame header.
pub fn video_dimensions(body: &[u8]) -> Option<(u32, u32)> {
    let b0 = *body.first()?;
    if b0 & 0x80 != 0 {
        // Enhanced RTMP: SequenceStart of avc1 carries the same record.
        if b0 & 0x0f == 0 && body.get(1..5)? == b"avc1" {
            return avc_config_dimensions(body.get(5..)?);
        }
        return None;
    }
    match b0 & 0x0f {
        7 if body.get(1) == Some(&0) => avc_config_dimensions(body.get(5..)?),
        2 => h263_dimensions(body.get(1..)?),
        _ => None,
    }
}

/// AVCDecoderConfigurationRecord -> first SPS -> size.
fn avc_config_dimensions(rec: &[u8]) -> Option<(u32, u32)> {
    if *rec.first()? != 1 || rec.get(5)? & 0x1f == 0 {
        return None;
    }
    let len = u16::from_be_bytes([*rec.get(6)?, *rec.get(7)?]) as usize;
    let nal = rec.get(8..8 + len)?;
    sps_dimensions(nal.get(1..)?)
}

/// An H.264 sequence parameter set (after the NAL header byte) -> the picture's size.
fn sps_dimensions(ebsp: &[u8]) -> Option<(u32, u32)> {
    let rbsp = unescape(ebsp);
    let mut r = Bits { b: &rbsp, pos: 0 };
    let profile = r.bits(8)?;
    r.bits(16)?; // constraint flags, level
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format = 1;
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format = skip_high_profile_fields(&mut r)?;
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?;
        }
        1 => {
            r.bit()?;
            r.se()?;
            r.se()?;
            let n = r.ue()?;
            if n > 255 {
                return None;
            }
            for _ in 0..n {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?;
    let w_mbs = r.ue()?.checked_add(1)?;
    let h_units = r.ue()?.checked_add(1)?;
    let frame_mbs_only = r.bit()?;
    if frame_mbs_only == 0 {
        r.bit()?;
    }
    r.bit()?;
    let mut width = w_mbs.checked_mul(16)?;
    let mut height = (2 - frame_mbs_only).checked_mul(h_units)?.checked_mul(16)?;
    if r.bit()? == 1 {
        let (cx, cy) = match chroma_format {
            0 | 3 => (1, 2 - frame_mbs_only),
            2 => (2, 2 - frame_mbs_only),
            _ => (2, 2 * (2 - frame_mbs_only)),
        };
        let (l, rr, t, b) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        width = width.checked_sub(cx * (l.checked_add(rr)?))?;
        height = height.checked_sub(cy * (t.checked_add(b)?))?;
    }
    (width > 0 && height > 0).then_some((width, height))
}

/// The bytes of a NAL unit without its emulation prevention bytes (the 03 of 00 00 03).
fn unescape(ebsp: &[u8]) -> Vec<u8> {
    let mut rbsp = Vec::with_capacity(ebsp.len());
    let mut zeros = 0;
    for &x in ebsp {
        if zeros >= 2 && x == 3 {
            zeros = 0;
            continue;
        }
        zeros = if x == 0 { zeros + 1 } else { 0 };
        rbsp.push(x);
    }
    rbsp
}

/// The fields a high profile's SPS adds (chroma format, bit depths, scaling lists), read
/// past; the chroma format, which the cropping depends on.
fn skip_high_profile_fields(r: &mut Bits<'_>) -> Option<u32> {
    let chroma_format = r.ue()?;
    if chroma_format == 3 {
        r.bit()?;
    }
    r.ue()?;
    r.ue()?;
    r.bit()?;
    if r.bit()? == 1 {
        let lists = if chroma_format == 3 { 12 } else { 8 };
        for i in 0..lists {
            if r.bit()? == 1 {
                skip_scaling_list(r, if i < 6 { 16 } else { 64 })?;
            }
        }
    }
    Some(chroma_format)
}

/// One scaling list of `size` entries, read past.
fn skip_scaling_list(r: &mut Bits<'_>, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            next = (last + r.se()? + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

/// Sorenson H.263: picture start code, version, temporal reference, then the size.
fn h263_dimensions(b: &[u8]) -> Option<(u32, u32)> {
    let mut r = Bits { b, pos: 0 };
    if r.bits(17)? != 1 {
        return None;
    }
    r.bits(5 + 8)?;
    Some(match r.bits(3)? {
        0 => (r.bits(8)?, r.bits(8)?),
        1 => (r.bits(16)?, r.bits(16)?),
        2 => (352, 288),
        3 => (176, 144),
        4 => (128, 96),
        5 => (320, 240),
        6 => (160, 120),
        _ => return None,
    })
    .filter(|&(w, h)| w > 0 && h > 0)
}

#[cfg(test)]
mod dimension_tests {
    use super::*;

    #[test]
    fn avc_sps_and_h263() {
        // x264 High profile 1280x720 SPS inside an AVC sequence header.
        let sps = [
            0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00,
            0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
        ];
        let mut body = vec![0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1];
        body.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        body.extend_from_slice(&sps);
        assert_eq!(video_dimensions(&body), Some((1280, 720)));
        // Sorenson H.263 320x240 (size code 5), as in the samples.
        assert_eq!(
            video_dimensions(&[0x12, 0x00, 0x00, 0x84, 0x02, 0x92, 0x1e]),
            Some((320, 240))
        );
        assert_eq!(video_dimensions(&[0x27, 1, 0, 0, 0]), None);
        for n in 0..40 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 91) as u8).collect();
            let _ = video_dimensions(&[&[0x17, 0][..], &junk].concat());
        }
    }

    #[test]
    fn aac_configuration_from_the_frames() {
        // 44.1 kHz: 23.22 ms a frame, timestamps rounded to the ms; one frame lost.
        let mut ts: Vec<u32> = (0..40)
            .map(|i| (i as f64 * 1024000.0 / 44100.0) as u32)
            .collect();
        ts.remove(20);
        assert_eq!(aac_rate_of_times(&ts).map(|r| r.0), Some(44100));
        let ts: Vec<u32> = (0..40)
            .map(|i| (i as f64 * 1024000.0 / 48000.0) as u32)
            .collect();
        assert_eq!(aac_rate_of_times(&ts).map(|r| r.0), Some(48000));
        assert_eq!(aac_rate_of_times(&ts[..5]), None);
        // MP3-like 26 ms steps at 44.1 kHz are 39385 Hz for 1024 samples: no AAC rate.
        let ts: Vec<u32> = (0..40).map(|i| i * 26).collect();
        assert_eq!(aac_rate_of_times(&ts), None);
        assert_eq!(aac_lc_config(44100, 2), Some([0x12, 0x10]));
        assert_eq!(aac_lc_config(48000, 1), Some([0x11, 0x88]));
        assert_eq!(
            aac_config(&aac_lc_config(22050, 1).unwrap()),
            Some((22050, 1))
        );
        assert_eq!(aac_channels_of_frame(&[0x21, 0x00]), Some(2));
        assert_eq!(aac_channels_of_frame(&[0x01, 0x00]), Some(1));
        assert_eq!(aac_channels_of_frame(&[0xc0]), None);
        assert_eq!(aac_channels_of_frame(&[]), None);
    }

    #[test]
    fn avc_configuration_from_parameter_sets_in_band() {
        let sps = [0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02];
        let pps = [0x68, 0xce, 0x3c, 0x80];
        let idr = [0x65, 0x88, 0x84];
        let mut body = vec![0x17, 1, 0, 0, 0];
        for n in [&sps[..], &pps, &idr] {
            body.extend_from_slice(&(n.len() as u32).to_be_bytes());
            body.extend_from_slice(n);
        }
        let (rec, len) = avc_config_in_band(&body).unwrap();
        assert_eq!(len, 4);
        assert_eq!(&rec[..6], &[1, 0x42, 0xc0, 0x1e, 0xff, 0xe1]);
        assert_eq!(&rec[8..14], &sps);
        assert!(rec.ends_with(&pps));
        // Without a PPS, or cut, nothing.
        assert_eq!(avc_config_in_band(&body[..5 + 4 + 6]), None);
        assert_eq!(avc_config_in_band(&body[..body.len() - 1]), None);
    }

    #[test]
    fn a_configuration_from_a_file_is_checked_against_the_frames() {
        // SPS id 0; PPS id 0 naming SPS 0 (ue 0 = bit 1); an IDR slice: first_mb 0,
        // slice_type 7 (ue: 0001000), pps 0.
        let sps = [0x67, 0x42, 0xc0, 0x1e, 0x80];
        let pps = [0x68, 0xc0];
        let idr = [0x65, 0b1000_1000, 0b1000_0000];
        let mut body = vec![0x17, 1, 0, 0, 0];
        for n in [&sps[..], &pps, &idr] {
            body.extend_from_slice(&(n.len() as u32).to_be_bytes());
            body.extend_from_slice(n);
        }
        let (rec, _) = avc_config_in_band(&body).unwrap();
        assert_eq!(avc_config_fits(&rec, &body), Ok(()));
        // A record whose NAL lengths are 2 bytes does not divide 4-byte-length frames.
        let mut two = rec.clone();
        two[4] = 0xfd;
        assert!(
            avc_config_fits(&two, &body)
                .unwrap_err()
                .contains("length size")
        );
        // A slice that uses PPS 1 (ue 1 = 010).
        let mut other = body.clone();
        let at = other.len() - 1;
        other[at] = 0b0100_0000;
        assert!(avc_config_fits(&rec, &other).unwrap_err().contains("PPS 1"));
        assert!(avc_config_fits(&[0, 1, 2], &body).is_err());
        let asc = aac_lc_config(44100, 2).unwrap();
        assert_eq!(aac_config_fits(&asc, Some(2), Some(44100)), Ok(()));
        assert!(aac_config_fits(&asc, Some(1), None).is_err());
        assert!(aac_config_fits(&asc, None, Some(48000)).is_err());
    }

    #[test]
    fn the_new_readers_take_any_bytes() {
        // Untrusted bodies: every reader added for decoder configurations and tracks answers
        // without a panic, whatever the bytes (deterministic pseudo-random, all lengths to
        // 64, with the headers that lead into each reader).
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        };
        let heads: [&[u8]; 8] = [
            &[0x17, 1, 0, 0, 0],
            &[0x96, 0x00, b'a', b'v', b'c', b'1'],
            &[0x96, 0x20],
            &[0x95, 0x10, b'O', b'p', b'u', b's'],
            &[0x90, b'f', b'L', b'a', b'C'],
            &[0x90, b'O', b'p', b'u', b's'],
            &[0xaf, 1],
            &[],
        ];
        for round in 0..4000 {
            let head = heads[round % heads.len()];
            let len = round % 64;
            let mut body = head.to_vec();
            body.extend((0..len).map(|_| next()));
            let _ = avc_config_in_band(&body);
            let _ = audio_params(&body);
            for video in [true, false] {
                if let Some(parts) = multitrack(&body, video) {
                    for p in parts {
                        let _ = (p.params(video), p.frame(video));
                    }
                }
            }
            let _ = aac_channels_of_frame(&body);
            let _ = avc_config_fits(&body, &body);
            let _ = avc_config_fits(
                &body[body.len().min(5)..],
                &[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65],
            );
            let _ = aac_config_fits(&body, Some(2), Some(44100));
            let ts: Vec<u32> = body.iter().map(|b| *b as u32 * 1000).collect();
            let _ = aac_rate_of_times(&ts);
        }
    }
}
