//! Safe, readable, unique file names from names chosen by whoever was on the wire.

/// Longest sanitised part kept in a file name.
const MAX_PART: usize = 48;

/// Escape bytes for display: UTF-8 text stays as it is except control characters, which become
/// `\xNN`, as do bytes that are not UTF-8. Nothing is hidden, nothing is dropped.
pub fn escape(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        for ch in chunk.valid().chars() {
            if ch.is_control() || ch == '\\' || hides_text(ch) {
                if ch == '\\' {
                    out.push_str("\\\\");
                } else {
                    for byte in ch.to_string().bytes() {
                        out.push_str(&format!("\\x{byte:02x}"));
                    }
                }
            } else {
                out.push(ch);
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// A name between double quotes for a line people read: an escaped name (see [`escape`])
/// whose own `"` are written `\"`, so that where it ends is never in doubt.
pub fn quoted(escaped: &str) -> String {
    format!("\"{}\"", escaped.replace('"', "\\\""))
}

/// Characters that change how the text around them is shown without being seen themselves:
/// bidirectional overrides and isolates, zero-width characters, the soft hyphen, the BOM.
/// A name like `cam\u{202e}gpj.exe` must not read as something else.
fn hides_text(ch: char) -> bool {
    matches!(
        ch,
        '\u{00ad}'
            | '\u{061c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}'
    )
}

/// One part of a file name: only ASCII letters, digits, `.`, `-` and `_`; anything else becomes
/// `_`; no leading dot (so never `.` or `..`); at most [`MAX_PART`] characters; never empty.
pub fn sanitize(part: &[u8]) -> String {
    let mut s = String::new();
    let mut last_sub = false;
    for &b in part {
        let ok = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.';
        if ok {
            s.push(b as char);
            last_sub = false;
        } else if !last_sub {
            s.push('_');
            last_sub = true;
        }
        if s.len() >= MAX_PART {
            break;
        }
    }
    let s = s.trim_start_matches('.').to_string();
    // Reserved device names on Windows, should the files ever be copied there.
    let upper = s.split('.').next().unwrap_or("").to_ascii_uppercase();
    let reserved = matches!(upper.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((upper.starts_with("COM") || upper.starts_with("LPT"))
            && upper.len() == 4
            && upper.as_bytes()[3].is_ascii_digit());
    if s.is_empty() {
        "_".to_string()
    } else if reserved {
        format!("_{s}")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_names_end_where_they_end() {
        assert_eq!(quoted(&escape(b"cam1")), "\"cam1\"");
        assert_eq!(quoted(&escape(b"a\" x \"b")), "\"a\\\" x \\\"b\"");
        assert_eq!(quoted(&escape(b"a\\\"")), "\"a\\\\\\\"\"");
    }

    #[test]
    fn hostile_names_stay_inside() {
        for raw in [
            &b"../../../tmp/x"[..],
            b"a/b\\c",
            b"nul\0byte",
            b"\x1b[31mred",
            b"..",
            b".",
            b"",
            b"CON:",
            b"com1",
        ] {
            let s = sanitize(raw);
            assert!(!s.is_empty());
            assert!(!s.contains('/') && !s.contains('\\') && !s.contains('\0'));
            assert!(!s.starts_with('.'), "{s}");
            assert!(s.bytes().all(|b| b.is_ascii_graphic()));
        }
        assert_eq!(sanitize(b"CON:"), "CON_");
        assert_eq!(sanitize(b"con"), "_con");
        assert_eq!(sanitize(b"LPT1.flv"), "_LPT1.flv");
        assert_eq!(sanitize(b"cam1"), "cam1");
        assert_eq!(sanitize(&[b'a'; 1000]).len(), MAX_PART);
    }

    #[test]
    fn escape_keeps_everything_visible() {
        assert_eq!(escape(b"cam1"), "cam1");
        assert_eq!(escape(b"a\0b\xffc"), "a\\x00b\\xffc");
        assert_eq!(escape("caméra".as_bytes()), "caméra");
        assert_eq!(
            escape("cam\u{202e}4pm.exe".as_bytes()),
            "cam\\xe2\\x80\\xae4pm.exe"
        );
        assert_eq!(escape(b"a\\b\n"), "a\\\\b\\x0a");
    }
}
