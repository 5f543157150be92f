//! `report.html`: the report as one page for people, beside report.json. Self-contained (its
//! CSS inline, no script, nothing fetched: the only other files it names are the run's own,
//! in the same folder): the inputs, a timeline of every connection with its gaps and
//! lock-ons, the connections and their streams, and per stream a contact sheet of keyframe
//! thumbnails that ffmpeg renders (one PNG per stream, at most [`SHEET_FRAMES`] keyframes
//! spread over the stream), each linking to its file. Everything from the wire (names, apps,
//! URLs, warnings) is HTML-escaped. Bounded: at most [`MAX_CONNECTIONS`] connections and
//! [`MAX_SHEETS`] contact sheets; the page says what it left out.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::remux::{self, RemuxReport};
use super::report::{Report, iso8601};

/// Connections the page shows (report.json has them all).
pub const MAX_CONNECTIONS: usize = 1000;
/// Streams that get a contact sheet (each is an ffmpeg run).
pub const MAX_SHEETS: usize = 100;
/// Keyframes on one contact sheet.
pub const SHEET_FRAMES: u64 = 12;
/// Gaps and lock-ons drawn per connection on the timeline.
const MAX_MARKS: usize = 200;
/// Width of a thumbnail, in pixels.
const THUMB_WIDTH: u32 = 160;

/// Text for HTML, in an element or an attribute.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A file of the folder as a relative link: percent-encoded past the characters the run's
/// names are made of (so nothing can turn it into another kind of URL).
fn href(name: &str) -> String {
    let mut out = String::from("./");
    for b in name.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => out.push(b as char),
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

fn num(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

/// Bytes kept of why a contact sheet could not be drawn, on the page.
const WHY_KEPT: usize = 200;

/// `s` cut to about `n` bytes (on a character boundary), with an ellipsis if it was cut.
fn cut(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Render a contact sheet of `flv`'s keyframes (at most [`SHEET_FRAMES`], spread evenly over
/// the `keyframes` it has, four a row) into a new PNG named like it (`X.keyframes.png`, never
/// replacing a file): its name, or why not.
pub fn contact_sheet(dir: &Path, flv: &str, keyframes: u64) -> Result<String, String> {
    let input = remux::open_ours(dir, flv)?;
    let step = keyframes.div_ceil(SHEET_FRAMES).max(1);
    let n = keyframes.div_ceil(step).clamp(1, SHEET_FRAMES);
    let (cols, rows) = (n.min(4), n.div_ceil(4));
    let stem = flv.strip_suffix(".flv").unwrap_or(flv);
    let made = super::fs::create_unique_named(dir, &mut |k| match k {
        1 => format!("{stem}.keyframes.png"),
        k => format!("{stem}.keyframes-{k}.png"),
    });
    let (out, name) = made.map_err(|e| format!("creating the picture: {e}"))?;
    let filter = format!("select='not(mod(n\\,{step}))',scale={THUMB_WIDTH}:-2,tile={cols}x{rows}");
    let after = [
        "-vf",
        &filter,
        "-frames:v",
        "1",
        "-an",
        "-f",
        "image2pipe",
        "-c:v",
        "png",
    ];
    match remux::run_ffmpeg(&["-skip_frame", "nokey"], &input, &after, &out) {
        Ok(()) if out.metadata().is_ok_and(|m| m.len() > 0) => Ok(name),
        Ok(()) => {
            remux::remove_if_ours(dir, &name, &out);
            Err("ffmpeg decoded no keyframe".into())
        }
        Err(e) => {
            remux::remove_if_ours(dir, &name, &out);
            Err(e)
        }
    }
}

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.2em;margin:1.4em 0 .4em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.3em 0}td,th{border:1px solid #ddd;padding:.2em .5em;text-align:left;vertical-align:top}
th{background:#eee}.muted{color:#777}.warn{color:#a40}.conn{background:#fff;border:1px solid #ddd;border-radius:4px;padding:.6em 1em;margin:.8em 0}
.stream{border-top:1px dashed #ccc;padding:.5em 0}.stream h4{margin:.2em 0}.name{font-family:monospace;background:#f3f3f3;padding:0 .3em}
code{font-family:monospace}svg text{font:11px system-ui,sans-serif}.sheet img{border:1px solid #ccc;max-width:100%}
";

/// The page, from the report (which is read connection by connection) and what `--remux`
/// made; contact sheets are rendered into `dir` when `ffmpeg` can be run.
pub fn render(
    report: &mut Report,
    dir: &Path,
    json_name: &str,
    ffmpeg: bool,
) -> io::Result<String> {
    let mut conns: Vec<Value> = Vec::new();
    let mut total = 0usize;
    report.each_connection_json(|json| {
        total += 1;
        if conns.len() < MAX_CONNECTIONS {
            let mut c: Value = serde_json::from_slice(json).map_err(io::Error::other)?;
            // What the page does not show, so that what it keeps stays small.
            if let Some(streams) = c["streams"].as_array_mut() {
                for s in streams {
                    if let Some(o) = s.as_object_mut() {
                        o.remove("metadata");
                    }
                }
            }
            for key in ["gaps", "locks"] {
                if let Some(a) = c[key].as_array_mut() {
                    let n = a.len();
                    a.truncate(MAX_MARKS);
                    c[format!("{key}_count")] = n.into();
                }
            }
            conns.push(c);
        }
        Ok(())
    })?;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>rtmpsniff report</title><style>{STYLE}</style></head><body>\n"
    );
    let run = &report.run;
    let _ = writeln!(
        h,
        "<h1>rtmpsniff report</h1><p class=\"muted\">{} {} &middot; run {} &middot; \
         <code>{}</code> &middot; <a href=\"{}\">{}</a></p>",
        escape(env!("CARGO_PKG_NAME")),
        escape(env!("CARGO_PKG_VERSION")),
        escape(&iso8601(run.start_time, 0).unwrap_or_default()),
        escape(&run.command_line.join(" ")),
        href(json_name),
        escape(json_name),
    );
    // Inputs.
    h.push_str(
        "<h2>Inputs</h2><table><tr><th>path</th><th>format</th><th>link type</th>\
                <th>packets</th><th>skipped</th><th>first packet</th><th>last packet</th>\
                <th>error</th></tr>\n",
    );
    for i in &report.inputs {
        let format = match i.compression {
            Some(c) => format!("{} ({c})", i.format),
            None => i.format.clone(),
        };
        let t = |t: Option<f64>| t.and_then(|t| iso8601(t, 3)).unwrap_or_default();
        let _ = writeln!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td class=\"warn\">{}</td></tr>",
            escape(&i.path),
            escape(&format),
            escape(&i.link_type),
            i.packets,
            i.skipped_packets,
            t(i.first_time),
            t(i.last_time),
            escape(i.error.as_deref().unwrap_or("")),
        );
    }
    h.push_str("</table>\n");
    for e in &report.input_errors {
        let _ = writeln!(h, "<p class=\"warn\">{}</p>", escape(e));
    }
    let sel = &report.selection;
    if sel.filter.is_some()
        || sel.start_time.is_some()
        || sel.end_time.is_some()
        || sel.count.is_some()
    {
        let mut parts = Vec::new();
        if let Some(f) = &sel.filter {
            parts.push(format!("filter <code>{}</code>", escape(f)));
        }
        if let Some(t) = sel.start_time.and_then(|t| iso8601(t, 6)) {
            parts.push(format!("from {t}"));
        }
        if let Some(t) = sel.end_time.and_then(|t| iso8601(t, 6)) {
            parts.push(format!("until {t}"));
        }
        if let Some(c) = sel.count {
            parts.push(format!("at most {c} packets"));
        }
        let _ = writeln!(h, "<p>Packets read: {}.</p>", parts.join(", "));
    }
    let st = &report.stats;
    let _ = writeln!(
        h,
        "<p>{} packets, {} TCP segments, {} TCP connections followed; {} RTMP connections, \
         {} streams.</p>",
        st.frames,
        st.tcp_segments,
        st.connections,
        total,
        conns
            .iter()
            .map(|c| c["streams"].as_array().map_or(0, |s| s.len()))
            .sum::<usize>()
    );
    let reached: Vec<String> = report
        .limits
        .iter()
        .filter(|l| l.hits > 0)
        .map(|l| format!("{} ({}) {} times", l.name, l.value, l.hits))
        .collect();
    if !reached.is_empty() {
        let _ = writeln!(
            h,
            "<p class=\"warn\">Limits reached: {}.</p>",
            escape(&reached.join(", "))
        );
    }
    if total > conns.len() {
        let _ = writeln!(
            h,
            "<p class=\"warn\">This page shows the first {} of {total} connections; \
             report.json has them all.</p>",
            conns.len()
        );
    }
    timeline(&mut h, &conns);
    // Connections and streams.
    h.push_str("<h2>Connections and streams</h2>\n");
    if !ffmpeg {
        h.push_str(
            "<p class=\"warn\">No keyframe thumbnails: they are drawn by ffmpeg, which is \
             not installed (apt-get install ffmpeg).</p>\n",
        );
    }
    let mut sheets = 0usize;
    for c in &conns {
        connection(&mut h, c, &report.remuxed, dir, ffmpeg, &mut sheets);
    }
    if conns.is_empty() {
        h.push_str("<p>No RTMP connection was found.</p>\n");
    }
    if sheets >= MAX_SHEETS {
        let _ = writeln!(
            h,
            "<p class=\"muted\">Contact sheets were drawn for the first {MAX_SHEETS} streams \
             with video only.</p>"
        );
    }
    // write_whole ends the file with its newline.
    h.push_str("</body></html>");
    Ok(h)
}

/// Every connection on one time axis: a bar from its first packet to its last, gaps (red)
/// and lock-ons (blue) placed by their frame numbers between the connection's first and
/// last frames.
fn timeline(h: &mut String, conns: &[Value]) {
    if conns.is_empty() {
        return;
    }
    let t0 = conns
        .iter()
        .filter_map(|c| c["first_time"].as_f64())
        .fold(f64::INFINITY, f64::min);
    let t1 = conns
        .iter()
        .filter_map(|c| c["last_time"].as_f64())
        .fold(f64::NEG_INFINITY, f64::max);
    if !(t0.is_finite() && t1.is_finite()) {
        return;
    }
    let span = (t1 - t0).max(1e-3);
    let (left, width, row) = (70.0, 860.0, 22.0);
    let x = |t: f64| left + (t - t0) / span * width;
    let height = 30.0 + row * conns.len() as f64;
    let _ = write!(
        h,
        "<h2>Timeline</h2><p class=\"muted\">{} .. {} ({:.1} s). Red: gaps (bytes never \
         captured); blue: lock-ons (chunk headers found without a handshake); placed by frame \
         number.</p>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" \
         role=\"img\" aria-label=\"timeline of the connections\">\n",
        iso8601(t0, 3).unwrap_or_default(),
        iso8601(t1, 3).unwrap_or_default(),
        t1 - t0,
        left + width + 10.0,
    );
    for (k, c) in conns.iter().enumerate() {
        let y = 10.0 + row * k as f64;
        let (a, b) = (
            c["first_time"].as_f64().unwrap_or(t0),
            c["last_time"].as_f64().unwrap_or(t0),
        );
        let (f0, f1) = (num(c, "first_frame"), num(c, "last_frame"));
        // A frame's place: between the connection's first and last frames, in time.
        let at = |frame: u64| {
            let r = match f1 > f0 {
                true => (frame.clamp(f0, f1) - f0) as f64 / (f1 - f0) as f64,
                false => 0.0,
            };
            x(a + (b - a) * r)
        };
        let _ = writeln!(
            h,
            "<text x=\"0\" y=\"{}\">#{}</text><rect x=\"{:.1}\" y=\"{y}\" width=\"{:.1}\" \
             height=\"14\" fill=\"#8ab\"><title>#{} {} -&gt; {}</title></rect>",
            y + 11.0,
            num(c, "id"),
            x(a),
            (x(b) - x(a)).max(2.0),
            num(c, "id"),
            escape(text(c, "client")),
            escape(text(c, "server")),
        );
        for g in c["gaps"].as_array().into_iter().flatten() {
            let _ = writeln!(
                h,
                "<rect x=\"{:.1}\" y=\"{}\" width=\"3\" height=\"18\" fill=\"#d22\"><title>gap: \
                 {} bytes {} at frame {} ({})</title></rect>",
                at(num(g, "frame")) - 1.0,
                y - 2.0,
                num(g, "len"),
                escape(text(g, "direction")),
                num(g, "frame"),
                escape(text(g, "reason")),
            );
        }
        for l in c["locks"].as_array().into_iter().flatten() {
            let _ = writeln!(
                h,
                "<path d=\"M{:.1} {} l-5 -7 h10 z\" fill=\"#24c\"><title>lock-on {} at frame {}, \
                 {} bytes skipped</title></path>",
                at(num(l, "frame")),
                y + 14.0,
                escape(text(l, "direction")),
                num(l, "frame"),
                num(l, "skipped_bytes"),
            );
        }
    }
    h.push_str("</svg>\n");
}

fn rate(v: &Value) -> String {
    match v.as_u64() {
        Some(b) => super::report::rate_text(b),
        None => "-".into(),
    }
}

/// A connection's box: what it is, its warnings, and each stream.
fn connection(
    h: &mut String,
    c: &Value,
    remuxed: &std::collections::HashMap<String, RemuxReport>,
    dir: &Path,
    ffmpeg: bool,
    sheets: &mut usize,
) {
    let id = num(c, "id");
    let mut how = Vec::new();
    if let Some(t) = c["transport"].as_str() {
        how.push(t.to_string());
    }
    if let Some(tls) = c["tls"].as_object() {
        let decrypted = tls.get("decrypted").and_then(|d| d.as_bool()) == Some(true);
        how.push(format!(
            "TLS {} {}",
            tls.get("version").and_then(|v| v.as_str()).unwrap_or("?"),
            if decrypted {
                "decrypted"
            } else {
                "not decrypted"
            }
        ));
    }
    let _ = writeln!(
        h,
        "<div class=\"conn\" id=\"c{id}\"><h3>#{id} <code>{}</code> &rarr; <code>{}</code></h3>\
         <p>app <span class=\"name\">{}</span> &middot; tcUrl <span class=\"name\">{}</span> \
         &middot; handshake {} &middot; {} .. {}{}{}</p>",
        escape(text(c, "client")),
        escape(text(c, "server")),
        escape(c["app"].as_str().unwrap_or("?")),
        escape(c["tc_url"].as_str().unwrap_or("?")),
        escape(text(c, "handshake")),
        escape(text(c, "first_time_utc")),
        escape(text(c, "last_time_utc")),
        if how.is_empty() {
            String::new()
        } else {
            format!(" &middot; {}", escape(&how.join(", ")))
        },
        match (num(c, "gaps_count"), num(c, "locks_count")) {
            (0, 0) => String::new(),
            (g, l) => format!(" &middot; <span class=\"warn\">{g} gaps, {l} lock-ons</span>"),
        },
    );
    for w in c["warnings"].as_array().into_iter().flatten() {
        let _ = writeln!(
            h,
            "<p class=\"warn\">{}</p>",
            escape(w.as_str().unwrap_or(""))
        );
    }
    for s in c["streams"].as_array().into_iter().flatten() {
        stream(h, s, remuxed, dir, ffmpeg, sheets);
    }
    h.push_str("</div>\n");
}

fn stream(
    h: &mut String,
    s: &Value,
    remuxed: &std::collections::HashMap<String, RemuxReport>,
    dir: &Path,
    ffmpeg: bool,
    sheets: &mut usize,
) {
    let name = match s["name"].as_str() {
        Some(n) => format!("<span class=\"name\">{}</span>", escape(n)),
        None => "<span class=\"muted\">(unnamed: its command was not captured)</span>".into(),
    };
    let codecs: Vec<&str> = [s["video_codec"].as_str(), s["audio_codec"].as_str()]
        .into_iter()
        .flatten()
        .collect();
    let size = match (s["width"].as_u64(), s["height"].as_u64()) {
        (Some(w), Some(hh)) => format!("{w}x{hh}"),
        _ => "-".into(),
    };
    let _ = writeln!(
        h,
        "<div class=\"stream\"><h4>{} {name} <span class=\"muted\">(msid {})</span></h4>\
         <table><tr><th>codecs</th><th>size</th><th>duration</th><th>video frames</th>\
         <th>audio frames</th><th>keyframes</th><th>video rate</th><th>audio rate</th></tr>\
         <tr><td>{}</td><td>{size}</td><td>{:.1} s</td><td>{}</td><td>{}</td><td>{}</td>\
         <td>{}</td><td>{}</td></tr></table>",
        escape(text(s, "direction")),
        num(s, "message_stream_id"),
        escape(&codecs.join("+")),
        num(s, "duration_ms") as f64 / 1000.0,
        num(s, "video_frames"),
        num(s, "audio_frames"),
        num(s, "keyframes"),
        rate(&s["video_bitrate"]),
        rate(&s["audio_bitrate"]),
    );
    let file = s["file"].as_str().filter(|f| *f != "-");
    let mut links = Vec::new();
    if let Some(f) = file {
        links.push(format!(
            "<a href=\"{}\">{}</a> ({} bytes)",
            href(f),
            escape(f),
            num(s, "bytes")
        ));
        if let Some(r) = remuxed.get(f) {
            match &r.file {
                Some(m) => links.push(format!(
                    "<a href=\"{}\">{}</a>{}",
                    href(m),
                    escape(m),
                    r.note
                        .as_ref()
                        .map_or(String::new(), |n| format!(" ({})", escape(n)))
                )),
                None => links.push(format!(
                    "<span class=\"warn\">not remuxed: {}</span>",
                    escape(r.error.as_deref().or(r.note.as_deref()).unwrap_or("?"))
                )),
            }
        }
    } else {
        links.push("<span class=\"muted\">no file</span>".into());
    }
    let _ = writeln!(h, "<p>{}</p>", links.join(" &middot; "));
    for n in s["notes"].as_array().into_iter().flatten() {
        let _ = writeln!(
            h,
            "<p class=\"muted\">note: {}</p>",
            escape(n.as_str().unwrap_or(""))
        );
    }
    let keyframes = num(s, "keyframes");
    if let Some(f) = file
        && ffmpeg
        && keyframes > 0
        && *sheets < MAX_SHEETS
    {
        *sheets += 1;
        match contact_sheet(dir, f, keyframes) {
            Ok(png) => {
                let _ = writeln!(
                    h,
                    "<p class=\"sheet\"><a href=\"{}\"><img src=\"{}\" alt=\"keyframes of \
                         {}\"></a></p>",
                    href(f),
                    href(&png),
                    escape(f)
                );
            }
            Err(why) => {
                let _ = writeln!(
                    h,
                    "<p class=\"muted\">no keyframe thumbnails: {}</p>",
                    escape(&cut(&why, WHY_KEPT))
                );
            }
        }
    }
    h.push_str("</div>\n");
}

/// Write `report.html` (or `report-2.html`, ...) into `dir`, whole or not at all; it links
/// to the report it is made from (`json`).
pub fn write(report: &mut Report, dir: &Path, json: &Path) -> io::Result<PathBuf> {
    let ffmpeg = remux::ffmpeg_available().is_ok();
    let json_name = json.file_name().unwrap_or_default().to_string_lossy();
    let page = render(report, dir, &json_name, ffmpeg)?;
    super::fs::write_page(dir, &mut |w: &mut dyn Write| w.write_all(page.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_links_cannot_become_markup() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(
            href("live_cam1_1.2.3.4-5_publish.flv"),
            "./live_cam1_1.2.3.4-5_publish.flv"
        );
        assert_eq!(href("javascript:alert(1)"), "./javascript%3Aalert%281%29");
        assert_eq!(href("a b\"<"), "./a%20b%22%3C");
        assert_eq!(cut("abcdef", 3), "abc…");
        assert_eq!(cut("aéb", 2), "a…");
        assert_eq!(cut("ab", 3), "ab");
    }
}
