//! The report in words: a connection's lines in the summary `read` prints and in the
//! inventory `list` prints.

use super::time::iso8601;
use super::{ConnectionReport, ConnectionSummary, StreamReport};

/// A packet time for a table: ISO 8601 in UTC to the millisecond, or `?`.
fn utc(t: f64) -> String {
    iso8601(t, 3).unwrap_or_else(|| "?".into())
}

fn codecs(st: &StreamReport) -> String {
    let c = [st.video_codec, st.audio_codec]
        .iter()
        .flatten()
        .copied()
        .collect::<Vec<_>>()
        .join("+");
    if c.is_empty() { "no media".into() } else { c }
}

/// A bit rate for people: `1.25 Mbit/s`, `497 kbit/s`, `64.0 kbit/s`, `900 bit/s`.
pub(crate) fn rate(bps: u64) -> String {
    match bps {
        0..1_000 => format!("{bps} bit/s"),
        1_000..100_000 => format!("{:.1} kbit/s", bps as f64 / 1e3),
        100_000..1_000_000 => format!("{:.0} kbit/s", bps as f64 / 1e3),
        _ => format!("{:.2} Mbit/s", bps as f64 / 1e6),
    }
}

/// `, video 497 kbit/s, audio 128 kbit/s` (the kinds that have a bit rate), for the summary.
fn rates(st: &StreamReport) -> String {
    let mut s = String::new();
    for (kind, r) in [("video", st.video_bitrate), ("audio", st.audio_bitrate)] {
        if let Some(r) = r {
            s.push_str(&format!(", {kind} {}", rate(r)));
        }
    }
    s
}

/// `  rtmpt session=ID (N TCP connections)` for an RTMPT session.
fn tunnel(m: &ConnectionSummary) -> String {
    match &m.rtmpt {
        Some(t) => format!(
            "  rtmpt session={} ({} TCP connection{})",
            t.session,
            t.connections.len() as u64 + t.connections_dropped,
            if t.connections.len() as u64 + t.connections_dropped == 1 {
                ""
            } else {
                "s"
            }
        ),
        None => String::new(),
    }
}

fn encryption(m: &ConnectionSummary) -> String {
    if let Some(t) = &m.tls {
        let v = t.version.as_deref().unwrap_or("TLS");
        let sni = t
            .sni
            .as_deref()
            .map_or(String::new(), |s| format!(" sni={s}"));
        return match t.decrypted {
            true => format!("  {v} decrypted{sni}"),
            false => format!("  ENCRYPTED ({v}, no keys){sni}"),
        };
    }
    match m.encryption {
        Some("tls") => "  ENCRYPTED (TLS)",
        Some(_) => "  ENCRYPTED (RTMPE)",
        None => "",
    }
    .to_string()
}

/// A connection's gaps, lock-ons and warnings, a line each (what `-v` adds).
fn details(m: &ConnectionSummary) -> String {
    let mut s = String::new();
    for g in &m.gaps {
        s.push_str(&format!(
            "    gap: {} bytes {} at stream offset {} (frame {}): {}\n",
            g.len, g.direction, g.offset, g.frame, g.reason
        ));
    }
    for l in &m.locks {
        s.push_str(&format!(
            "    lock-on: {} at stream offset {} (frame {}), {} bytes skipped, chunk size {}\n",
            l.direction, l.offset, l.frame, l.skipped_bytes, l.chunk_size
        ));
    }
    for g in &m.gave_up {
        s.push_str(&format!(
            "    gave up: {} at stream offset {} (frame {}): {}; the rest passed over\n",
            g.direction, g.offset, g.frame, g.reason
        ));
    }
    for w in &m.warnings {
        s.push_str(&format!("    warning: {w}\n"));
    }
    s
}

/// A connection's lines in the summary `read` prints; `verbose` adds its warnings, gaps and
/// lock-ons.
pub(super) fn summary_of(c: &ConnectionReport, verbose: bool) -> String {
    let mut s = String::new();
    let m = &c.summary;
    s.push_str(&format!(
        "connection #{} {} -> {}  app={}  handshake={}{}{}\n",
        m.id,
        m.client,
        m.server,
        m.app.as_deref().unwrap_or("?"),
        m.handshake,
        encryption(m),
        tunnel(m)
    ));
    if !m.gaps.is_empty() {
        let lost: u64 = m.gaps.iter().map(|g| g.len).sum();
        s.push_str(&format!(
            "  {} gaps, {} bytes not captured\n",
            m.gaps.len(),
            lost
        ));
    }
    if verbose {
        s.push_str(&details(m));
    }
    for st in &c.streams {
        s.push_str(&format!(
            "  {} {} (msid {}): {} video, {} audio frames, {:.1} s, {}{} -> {}\n",
            st.direction,
            st.name
                .as_deref()
                .map_or("<unnamed>".to_string(), crate::sink::naming::quoted),
            st.message_stream_id,
            st.video_frames,
            st.audio_frames,
            st.duration_ms as f64 / 1000.0,
            codecs(st),
            rates(st),
            st.file.as_deref().unwrap_or("(no file)"),
        ));
        if st.video_frames + st.audio_frames > 0 {
            s.push_str(&format!("    {}\n", st.decodable.words()));
        }
        if let Some(r) = &st.repair {
            let from: Vec<String> = r
                .from
                .iter()
                .map(|f| format!("#{} stream {}", f.connection, f.stream))
                .collect();
            s.push_str(&format!(
                "    repaired: {} video, {} audio frames put in, times after {} gaps corrected (at most {} ms), from {}\n",
                r.video_frames,
                r.audio_frames,
                r.times_corrected,
                r.largest_correction_ms,
                from.join(", ")
            ));
        }
        for n in &st.notes {
            s.push_str(&format!("    note: {n}\n"));
        }
    }
    s
}

/// A connection's lines in the inventory `list` prints, the first with its number; `verbose`
/// adds its warnings, gaps and lock-ons after that line.
pub(super) fn table_of(c: &ConnectionReport, verbose: bool) -> String {
    let mut s = String::new();
    let m = &c.summary;
    s.push_str(&format!(
        "#{} {} -> {}  {} .. {} ({:.1} s)  app={}  tcUrl={}  handshake={}{}{}{}\n",
        m.id,
        m.client,
        m.server,
        utc(m.first_time),
        utc(m.last_time),
        (m.last_time - m.first_time).max(0.0),
        m.app.as_deref().unwrap_or("?"),
        m.tc_url.as_deref().unwrap_or("?"),
        m.handshake,
        encryption(m),
        tunnel(m),
        if m.gaps.is_empty() {
            String::new()
        } else {
            format!(
                "  gaps={} ({} bytes)",
                m.gaps.len(),
                m.gaps.iter().map(|g| g.len).sum::<u64>()
            )
        },
    ));
    if verbose {
        s.push_str(&details(m));
    }
    if c.streams.is_empty() {
        return s;
    }
    let mut rows = vec![[
        "DIRECTION".to_string(),
        "NAME".into(),
        "CODECS".into(),
        "SIZE".into(),
        "DURATION".into(),
        "VIDEO".into(),
        "AUDIO".into(),
        "KEYFRAMES".into(),
        "VIDEO RATE".into(),
        "AUDIO RATE".into(),
    ]];
    for st in &c.streams {
        rows.push([
            st.direction.to_string(),
            st.name.clone().unwrap_or_else(|| "<unnamed>".into()),
            codecs(st),
            match (st.width, st.height) {
                (Some(w), Some(h)) => format!("{w}x{h}"),
                _ => "-".into(),
            },
            format!("{:.1} s", st.duration_ms as f64 / 1000.0),
            st.video_frames.to_string(),
            st.audio_frames.to_string(),
            st.keyframes.to_string(),
            st.video_bitrate.map_or("-".into(), rate),
            st.audio_bitrate.map_or("-".into(), rate),
        ]);
    }
    let widths: Vec<usize> = (0..10)
        .map(|k| rows.iter().map(|r| r[k].chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        s.push_str(&format!("   {}\n", line.join("  ").trim_end()));
    }
    s
}
