//! The NSS key log format (`SSLKEYLOGFILE`), as written by GnuTLS, NSS, OpenSSL and browsers.
//!
//! One secret a line: `LABEL <client_random hex, 32 bytes> <secret hex>`. The labels used here:
//! `CLIENT_RANDOM` (TLS 1.2 master secret, 48 bytes), `CLIENT_HANDSHAKE_TRAFFIC_SECRET`,
//! `SERVER_HANDSHAKE_TRAFFIC_SECRET`, `CLIENT_TRAFFIC_SECRET_0`, `SERVER_TRAFFIC_SECRET_0`
//! (TLS 1.3, 32 or 48 bytes). Other known labels (`EXPORTER_SECRET`,
//! `CLIENT_EARLY_TRAFFIC_SECRET`, `EARLY_EXPORTER_SECRET`) are read and ignored; lines starting
//! with `#` and blank lines are skipped; anything else is counted in [`KeyLog::junk_lines`] and
//! never fatal.
//!
//! Bounds: at most [`MAX_ENTRIES`] client randoms (further new ones are counted in
//! [`KeyLog::dropped_entries`]), lines longer than [`MAX_LINE`] bytes are junk, and the partial
//! last line kept by [`KeyLog::extend_from`] is at most [`MAX_LINE`] bytes.

use std::collections::HashMap;

/// Most client randoms one key log holds.
pub const MAX_ENTRIES: usize = 65_536;
/// Longest line read (the longest valid one, a 48-byte TLS 1.3 secret, is 161 bytes).
pub const MAX_LINE: usize = 512;

/// Where a key log's secrets came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KeysFrom {
    /// No secrets were used.
    #[default]
    None,
    /// A key log file (`SSLKEYLOGFILE`, `--keylog`).
    KeyLogFile,
    /// A pcapng Decryption Secrets Block inside the capture.
    PcapngBlock,
}

/// A TLS 1.3 traffic secret (32 bytes for SHA-256 suites, 48 for SHA-384).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secret {
    len: u8,
    bytes: [u8; 48],
}

impl Secret {
    pub fn new(b: &[u8]) -> Option<Secret> {
        if b.len() != 32 && b.len() != 48 {
            return None;
        }
        let mut bytes = [0u8; 48];
        bytes[..b.len()].copy_from_slice(b);
        Some(Secret {
            len: b.len() as u8,
            bytes,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// The secrets logged for one client random.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyLogEntry {
    /// TLS 1.2 (and earlier) master secret.
    pub master_secret: Option<[u8; 48]>,
    pub client_handshake: Option<Secret>,
    pub server_handshake: Option<Secret>,
    pub client_traffic_0: Option<Secret>,
    pub server_traffic_0: Option<Secret>,
    /// Where this entry's secrets came from.
    pub origin: KeysFrom,
}

impl KeyLogEntry {
    fn merge_from(&mut self, o: &KeyLogEntry) {
        fn take<T: Clone>(a: &mut Option<T>, b: &Option<T>) {
            if a.is_none() {
                a.clone_from(b);
            }
        }
        take(&mut self.master_secret, &o.master_secret);
        take(&mut self.client_handshake, &o.client_handshake);
        take(&mut self.server_handshake, &o.server_handshake);
        take(&mut self.client_traffic_0, &o.client_traffic_0);
        take(&mut self.server_traffic_0, &o.server_traffic_0);
        if self.origin == KeysFrom::None {
            self.origin = o.origin;
        }
    }
}

/// Secrets by client random.
#[derive(Clone, Debug, Default)]
pub struct KeyLog {
    entries: HashMap<[u8; 32], KeyLogEntry>,
    origin: KeysFrom,
    /// Text after the last newline given to [`KeyLog::extend_from`], kept for the next call.
    partial: Vec<u8>,
    partial_too_long: bool,
    /// Lines that were neither secrets, comments nor blank.
    pub junk_lines: u64,
    /// Secret lines read (valid ones, known label or not).
    pub lines: u64,
    /// New client randoms refused because [`MAX_ENTRIES`] were held.
    pub dropped_entries: u64,
}

fn hex_nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes hex into `out` (whose length is the expected byte count).
fn hex_into(s: &[u8], out: &mut [u8]) -> bool {
    if s.len() != out.len() * 2 {
        return false;
    }
    for (i, o) in out.iter_mut().enumerate() {
        match (hex_nibble(s[2 * i]), hex_nibble(s[2 * i + 1])) {
            (Some(h), Some(l)) => *o = (h << 4) | l,
            _ => return false,
        }
    }
    true
}

impl KeyLog {
    /// An empty key log whose entries will be tagged with `origin`.
    pub fn new(origin: KeysFrom) -> KeyLog {
        KeyLog {
            origin,
            ..KeyLog::default()
        }
    }

    /// Parses a whole key log (a last line without newline is read too).
    pub fn parse(data: &[u8], origin: KeysFrom) -> KeyLog {
        let mut k = KeyLog::new(origin);
        k.extend_from(data);
        k.finish_partial();
        k
    }

    /// Reads appended text of a growing file: whole lines are read, a partial last line is kept
    /// (at most [`MAX_LINE`] bytes) until the rest of it arrives in a later call.
    pub fn extend_from(&mut self, data: &[u8]) {
        let mut rest = data;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let (line, after) = rest.split_at(nl);
            rest = &after[1..];
            if self.partial.is_empty() && !self.partial_too_long {
                self.parse_line(line);
            } else {
                let mut l = std::mem::take(&mut self.partial);
                let too_long = self.partial_too_long || l.len() + line.len() > MAX_LINE;
                if too_long {
                    self.junk_lines += 1;
                } else {
                    l.extend_from_slice(line);
                    self.parse_line(&l);
                }
                l.clear();
                self.partial = l;
                self.partial_too_long = false;
            }
        }
        if !rest.is_empty() {
            if self.partial_too_long || self.partial.len() + rest.len() > MAX_LINE {
                self.partial.clear();
                self.partial_too_long = true;
            } else {
                self.partial.extend_from_slice(rest);
            }
        }
    }

    /// Reads the kept partial line as if it had ended (end of the file).
    pub fn finish_partial(&mut self) {
        if self.partial_too_long {
            self.junk_lines += 1;
        } else if !self.partial.is_empty() {
            let l = std::mem::take(&mut self.partial);
            self.parse_line(&l);
        }
        self.partial.clear();
        self.partial_too_long = false;
    }

    fn parse_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = line.trim_ascii();
        if line.is_empty() || line[0] == b'#' {
            return;
        }
        if line.len() > MAX_LINE {
            self.junk_lines += 1;
            return;
        }
        let mut parts = line
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|p| !p.is_empty());
        let (Some(label), Some(cr), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            self.junk_lines += 1;
            return;
        };
        let mut random = [0u8; 32];
        if !hex_into(cr, &mut random) {
            self.junk_lines += 1;
            return;
        }
        let mut sbuf = [0u8; 48];
        let slen = secret.len() / 2;
        if slen > 48 || !hex_into(secret, &mut sbuf[..slen]) {
            self.junk_lines += 1;
            return;
        }
        let sb = &sbuf[..slen];
        let mut e = KeyLogEntry {
            origin: self.origin,
            ..KeyLogEntry::default()
        };
        let ok = match label {
            b"CLIENT_RANDOM" if slen == 48 => {
                e.master_secret = Some(sbuf);
                true
            }
            b"CLIENT_HANDSHAKE_TRAFFIC_SECRET" => {
                e.client_handshake = Secret::new(sb);
                e.client_handshake.is_some()
            }
            b"SERVER_HANDSHAKE_TRAFFIC_SECRET" => {
                e.server_handshake = Secret::new(sb);
                e.server_handshake.is_some()
            }
            b"CLIENT_TRAFFIC_SECRET_0" => {
                e.client_traffic_0 = Secret::new(sb);
                e.client_traffic_0.is_some()
            }
            b"SERVER_TRAFFIC_SECRET_0" => {
                e.server_traffic_0 = Secret::new(sb);
                e.server_traffic_0.is_some()
            }
            b"EXPORTER_SECRET"
            | b"EARLY_EXPORTER_SECRET"
            | b"CLIENT_EARLY_TRAFFIC_SECRET"
            | b"RSA" => {
                self.lines += 1;
                return;
            }
            _ => false,
        };
        if !ok {
            self.junk_lines += 1;
            return;
        }
        self.lines += 1;
        self.insert(random, &e);
    }

    fn insert(&mut self, random: [u8; 32], e: &KeyLogEntry) {
        if let Some(have) = self.entries.get_mut(&random) {
            have.merge_from(e);
        } else if self.entries.len() >= MAX_ENTRIES {
            self.dropped_entries += 1;
        } else {
            self.entries.insert(random, e.clone());
        }
    }

    /// Adds every entry of `other` (each keeps its own origin; secrets already held win).
    pub fn merge(&mut self, other: &KeyLog) {
        for (r, e) in &other.entries {
            self.insert(*r, e);
        }
        self.junk_lines += other.junk_lines;
        self.lines += other.lines;
        self.dropped_entries += other.dropped_entries;
    }

    pub fn get(&self, client_random: &[u8; 32]) -> Option<&KeyLogEntry> {
        self.entries.get(client_random)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes held for the partial last line.
    pub fn partial_len(&self) -> usize {
        self.partial.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CR: &str = "1555b640aeb4ec7d300f91bed8c947d82a7ac4971503030000000000000000ff";
    const MS: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const S32: &str = "a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643";

    fn cr() -> [u8; 32] {
        let mut r = [0u8; 32];
        assert!(hex_into(CR.as_bytes(), &mut r));
        r
    }

    #[test]
    fn parses_lines_comments_and_junk() {
        let text = format!(
            "# a comment\n\nCLIENT_RANDOM {CR} {MS}\r\nSERVER_TRAFFIC_SECRET_0 {CR} {S32}\n\
             EXPORTER_SECRET {CR} {S32}\nnonsense here\nCLIENT_RANDOM zz {MS}\nCLIENT_RANDOM {CR} 0011\n\
             CLIENT_HANDSHAKE_TRAFFIC_SECRET {CR} {S32}"
        );
        let k = KeyLog::parse(text.as_bytes(), KeysFrom::KeyLogFile);
        assert_eq!(k.len(), 1);
        assert_eq!(k.junk_lines, 3);
        assert_eq!(k.lines, 4);
        let e = k.get(&cr()).unwrap();
        assert_eq!(e.master_secret.unwrap()[0], 0);
        assert_eq!(e.master_secret.unwrap()[47], 0xff);
        assert_eq!(e.server_traffic_0.as_ref().unwrap().as_bytes()[0], 0xa1);
        assert!(e.client_handshake.is_some());
        assert!(e.client_traffic_0.is_none());
        assert_eq!(e.origin, KeysFrom::KeyLogFile);
    }

    #[test]
    fn incremental_reading_keeps_a_partial_line() {
        let text = format!("CLIENT_RANDOM {CR} {MS}\nSERVER_TRAFFIC_SECRET_0 {CR} {S32}\n");
        let mut whole = KeyLog::new(KeysFrom::KeyLogFile);
        whole.extend_from(text.as_bytes());
        for cut in 0..text.len() {
            let mut k = KeyLog::new(KeysFrom::KeyLogFile);
            k.extend_from(&text.as_bytes()[..cut]);
            assert!(k.partial_len() <= MAX_LINE);
            k.extend_from(&text.as_bytes()[cut..]);
            assert_eq!(k.get(&cr()), whole.get(&cr()), "cut at {cut}");
            assert_eq!(k.junk_lines, 0);
        }
        // byte at a time
        let mut k = KeyLog::new(KeysFrom::KeyLogFile);
        for b in text.as_bytes() {
            k.extend_from(std::slice::from_ref(b));
        }
        assert_eq!(k.get(&cr()), whole.get(&cr()));
    }

    #[test]
    fn an_overlong_line_is_junk_and_bounded() {
        let mut k = KeyLog::new(KeysFrom::KeyLogFile);
        for _ in 0..100 {
            k.extend_from(&[b'x'; 100]);
        }
        assert!(k.partial_len() <= MAX_LINE);
        k.extend_from(format!("\nCLIENT_RANDOM {CR} {MS}\n").as_bytes());
        assert_eq!(k.junk_lines, 1);
        assert_eq!(k.len(), 1);
    }

    #[test]
    fn merge_keeps_origins_and_fills_missing_secrets() {
        let a = KeyLog::parse(
            format!("CLIENT_RANDOM {CR} {MS}\n").as_bytes(),
            KeysFrom::PcapngBlock,
        );
        let b = KeyLog::parse(
            format!("SERVER_TRAFFIC_SECRET_0 {CR} {S32}\n").as_bytes(),
            KeysFrom::KeyLogFile,
        );
        let mut m = KeyLog::new(KeysFrom::KeyLogFile);
        m.merge(&a);
        m.merge(&b);
        let e = m.get(&cr()).unwrap();
        assert!(e.master_secret.is_some() && e.server_traffic_0.is_some());
        assert_eq!(e.origin, KeysFrom::PcapngBlock);
    }

    #[test]
    fn entry_count_is_bounded() {
        let mut k = KeyLog::new(KeysFrom::KeyLogFile);
        let mut text = String::new();
        for i in 0..(MAX_ENTRIES + 10) {
            text.push_str(&format!("CLIENT_RANDOM {:064x} {MS}\n", i));
        }
        k.extend_from(text.as_bytes());
        assert_eq!(k.len(), MAX_ENTRIES);
        assert_eq!(k.dropped_entries, 10);
    }
}
