//! Handshake messages read in passing: ClientHello, ServerHello, EncryptedExtensions and the
//! server's Certificate (subject CN by a small DER walk). Every parser takes a message body
//! and returns `None` on anything malformed; none panics.

/// Handshake message types used here.
pub const CLIENT_HELLO: u8 = 1;
pub const SERVER_HELLO: u8 = 2;
pub const NEW_SESSION_TICKET: u8 = 4;
pub const ENCRYPTED_EXTENSIONS: u8 = 8;
pub const CERTIFICATE: u8 = 11;
pub const FINISHED: u8 = 20;
pub const KEY_UPDATE: u8 = 24;

/// Most bytes of SNI / one ALPN name kept, and most ALPN names kept from a ClientHello.
pub const MAX_NAME: usize = 255;
pub const MAX_ALPN_OFFERS: usize = 8;

/// The random of a HelloRetryRequest (RFC 8446 4.1.3): SHA-256("HelloRetryRequest").
pub const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// A cursor over a byte slice; every read checks the length.
pub struct Rd<'a> {
    b: &'a [u8],
}

impl<'a> Rd<'a> {
    pub fn new(b: &'a [u8]) -> Rd<'a> {
        Rd { b }
    }
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.b.len() {
            return None;
        }
        let (a, r) = self.b.split_at(n);
        self.b = r;
        Some(a)
    }
    pub fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Option<u16> {
        let s = self.take(2)?;
        Some(u16::from_be_bytes([s[0], s[1]]))
    }
    pub fn u24(&mut self) -> Option<usize> {
        let s = self.take(3)?;
        Some(((s[0] as usize) << 16) | ((s[1] as usize) << 8) | s[2] as usize)
    }
    pub fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()? as usize;
        self.take(n)
    }
    pub fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()? as usize;
        self.take(n)
    }
    pub fn vec24(&mut self) -> Option<&'a [u8]> {
        let n = self.u24()?;
        self.take(n)
    }
    pub fn is_empty(&self) -> bool {
        self.b.is_empty()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientHello {
    pub legacy_version: u16,
    pub random: [u8; 32],
    pub sni: Option<Vec<u8>>,
    pub alpn: Vec<Vec<u8>>,
    pub supported_versions: Vec<u16>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerHello {
    pub legacy_version: u16,
    pub random: [u8; 32],
    pub cipher_suite: u16,
    /// From the supported_versions extension (TLS 1.3), if present.
    pub selected_version: Option<u16>,
    pub alpn: Option<Vec<u8>>,
}

impl ServerHello {
    pub fn version(&self) -> u16 {
        self.selected_version.unwrap_or(self.legacy_version)
    }
    pub fn is_hello_retry(&self) -> bool {
        self.random == HRR_RANDOM
    }
}

fn extensions(r: &mut Rd<'_>, mut f: impl FnMut(u16, &[u8])) -> Option<()> {
    if r.is_empty() {
        return Some(());
    }
    let mut e = Rd::new(r.vec16()?);
    while !e.is_empty() {
        let ty = e.u16()?;
        let data = e.vec16()?;
        f(ty, data);
    }
    Some(())
}

fn parse_sni(data: &[u8]) -> Option<Vec<u8>> {
    let mut r = Rd::new(data);
    let mut l = Rd::new(r.vec16()?);
    while !l.is_empty() {
        let ty = l.u8()?;
        let name = l.vec16()?;
        if ty == 0 {
            return Some(name[..name.len().min(MAX_NAME)].to_vec());
        }
    }
    None
}

fn parse_alpn(data: &[u8], out: &mut Vec<Vec<u8>>) -> Option<()> {
    let mut r = Rd::new(data);
    let mut l = Rd::new(r.vec16()?);
    while !l.is_empty() {
        let n = l.vec8()?;
        if out.len() < MAX_ALPN_OFFERS {
            out.push(n.to_vec());
        }
    }
    Some(())
}

/// A ClientHello body (after the 4-byte handshake header).
pub fn parse_client_hello(body: &[u8]) -> Option<ClientHello> {
    let mut r = Rd::new(body);
    let mut ch = ClientHello {
        legacy_version: r.u16()?,
        ..ClientHello::default()
    };
    ch.random.copy_from_slice(r.take(32)?);
    r.vec8()?; // session id
    r.vec16()?; // cipher suites
    r.vec8()?; // compression methods
    extensions(&mut r, |ty, data| match ty {
        0 => ch.sni = parse_sni(data),
        16 => {
            let _ = parse_alpn(data, &mut ch.alpn);
        }
        43 => {
            let mut v = Rd::new(data);
            if let Some(l) = v.vec8() {
                ch.supported_versions = l
                    .chunks_exact(2)
                    .take(16)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect();
            }
        }
        _ => {}
    });
    Some(ch)
}

/// A ServerHello body.
pub fn parse_server_hello(body: &[u8]) -> Option<ServerHello> {
    let mut r = Rd::new(body);
    let mut sh = ServerHello {
        legacy_version: r.u16()?,
        ..ServerHello::default()
    };
    sh.random.copy_from_slice(r.take(32)?);
    r.vec8()?;
    sh.cipher_suite = r.u16()?;
    r.u8()?;
    extensions(&mut r, |ty, data| match ty {
        16 => {
            let mut v = Vec::new();
            if parse_alpn(data, &mut v).is_some() {
                sh.alpn = v.into_iter().next();
            }
        }
        43 if data.len() == 2 => sh.selected_version = Some(u16::from_be_bytes([data[0], data[1]])),
        _ => {}
    });
    Some(sh)
}

/// The ALPN protocol selected in an EncryptedExtensions body (TLS 1.3).
pub fn parse_encrypted_extensions_alpn(body: &[u8]) -> Option<Vec<u8>> {
    let mut r = Rd::new(body);
    let mut alpn = None;
    extensions(&mut r, |ty, data| {
        if ty == 16 {
            let mut v = Vec::new();
            if parse_alpn(data, &mut v).is_some() {
                alpn = v.into_iter().next();
            }
        }
    })?;
    alpn
}

/// The first certificate of a Certificate body (`tls13`: with the request context and the
/// per-entry extensions of RFC 8446 4.4.2).
pub fn first_certificate(body: &[u8], tls13: bool) -> Option<&[u8]> {
    let mut r = Rd::new(body);
    if tls13 {
        r.vec8()?;
    }
    let mut list = Rd::new(r.vec24()?);
    list.vec24()
}

/// One DER TLV: (tag, contents, rest).
fn der(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let mut r = Rd::new(b);
    let tag = r.u8()?;
    let l0 = r.u8()?;
    let len = if l0 < 0x80 {
        l0 as usize
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut v = 0usize;
        for &x in r.take(n)? {
            v = (v << 8) | x as usize;
        }
        v
    };
    let c = r.take(len)?;
    Some((tag, c, r.b))
}

/// The subject commonName of a DER X.509 certificate, as its raw string bytes.
pub fn subject_cn(cert: &[u8]) -> Option<Vec<u8>> {
    let (t, c, _) = der(cert)?;
    if t != 0x30 {
        return None;
    }
    let (t, mut tbs, _) = der(c)?;
    if t != 0x30 {
        return None;
    }
    // [0] version (optional), serial, signature, issuer, validity, subject
    let (t, _, rest) = der(tbs)?;
    if t == 0xa0 {
        tbs = rest;
        let (_, _, rest) = der(tbs)?; // serial
        tbs = rest;
    } else {
        tbs = rest; // that was the serial
    }
    for _ in 0..3 {
        let (_, _, rest) = der(tbs)?; // signature, issuer, validity
        tbs = rest;
    }
    let (t, mut name, _) = der(tbs)?;
    if t != 0x30 {
        return None;
    }
    while !name.is_empty() {
        let (_, set, rest) = der(name)?;
        name = rest;
        let mut set = set;
        while !set.is_empty() {
            let (_, atv, rest) = der(set)?;
            set = rest;
            let (t, oid, val) = der(atv)?;
            if t == 0x06 && oid == [0x55, 0x04, 0x03] {
                let (_, v, _) = der(val)?;
                return Some(v[..v.len().min(MAX_NAME)].to_vec());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8448_hellos() {
        let ch = super::super::tests::rfc8448_client_hello();
        let c = parse_client_hello(&ch[9..]).unwrap();
        assert_eq!(c.random[0], 0xcb);
        assert_eq!(c.sni.as_deref(), Some(&b"server"[..]));
        assert_eq!(c.supported_versions, vec![0x0304]);
        let sh = super::super::tests::rfc8448_server_hello();
        let s = parse_server_hello(&sh[9..]).unwrap();
        assert_eq!(s.version(), 0x0304);
        assert_eq!(s.cipher_suite, 0x1301);
        assert!(!s.is_hello_retry());
    }

    #[test]
    fn truncations_never_panic() {
        let ch = super::super::tests::rfc8448_client_hello();
        for i in 0..ch.len() {
            let _ = parse_client_hello(&ch[9..][..i.min(ch.len() - 9)]);
            let _ = parse_server_hello(&ch[..i]);
            let _ = subject_cn(&ch[..i]);
            let _ = first_certificate(&ch[..i], i % 2 == 0);
            let _ = parse_encrypted_extensions_alpn(&ch[..i]);
        }
    }
}
