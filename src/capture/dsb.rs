//! pcapng Decryption Secrets Blocks (block type 0x0000000A): the TLS key logs a capture carries
//! inside it (`editcap --inject-secrets tls,KEYLOG`).
//!
//! Pure functions over the bytes of pcapng blocks: no I/O (the pcapng reader hands each block
//! here as it reads the file). Both byte orders are read, each
//! section's order taken from its Section Header Block's byte-order magic. Garbage never panics:
//! the walk stops at the first block whose length does not fit.

/// pcapng Section Header Block type (the same in both byte orders).
pub const SHB_TYPE: u32 = 0x0A0D_0D0A;
/// Decryption Secrets Block type.
pub const DSB_TYPE: u32 = 0x0000_000A;
/// Secrets type of a TLS key log (NSS format), "TLSK".
pub const SECRETS_TLS_KEYLOG: u32 = 0x544c_534b;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;

fn u32_at(b: &[u8], at: usize, big: bool) -> Option<u32> {
    let s: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if big {
        u32::from_be_bytes(s)
    } else {
        u32::from_le_bytes(s)
    })
}

/// The TLS key log payloads of every Decryption Secrets Block in `data` (a pcapng file, or a
/// run of whole blocks starting with a Section Header Block), in file order. Blocks after the
/// first malformed one are not read.
pub fn secrets_from_pcapng(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut big = false;
    let mut at = 0usize;
    while at < data.len() {
        let Some(ty) = u32_at(data, at, false) else {
            break;
        };
        if ty == SHB_TYPE {
            match u32_at(data, at + 8, false) {
                Some(BYTE_ORDER_MAGIC) => big = false,
                Some(m) if m.swap_bytes() == BYTE_ORDER_MAGIC => big = true,
                _ => break,
            }
        }
        let Some(len) = u32_at(data, at + 4, big) else {
            break;
        };
        let len = len as usize;
        if len < 12 || !len.is_multiple_of(4) || len > data.len() - at {
            break;
        }
        let block = &data[at..at + len];
        if let Some(s) = tls_secrets_of_block(block, big) {
            out.push(s.to_vec());
        }
        at += len;
    }
    out
}

/// The key log carried by one whole block (type, length, body, length), if it is a Decryption
/// Secrets Block of TLS secrets. `big_endian` is the section's byte order.
pub fn tls_secrets_of_block(block: &[u8], big_endian: bool) -> Option<&[u8]> {
    let ty = if u32_at(block, 0, false)? == SHB_TYPE {
        SHB_TYPE
    } else {
        u32_at(block, 0, big_endian)?
    };
    if ty != DSB_TYPE {
        return None;
    }
    let total = u32_at(block, 4, big_endian)? as usize;
    if total != block.len() || total < 20 {
        return None;
    }
    if u32_at(block, 8, big_endian)? != SECRETS_TLS_KEYLOG {
        return None;
    }
    let slen = u32_at(block, 12, big_endian)? as usize;
    // body ends 4 bytes before the block's end (the trailing length)
    let end = 16usize.checked_add(slen)?;
    if end > total - 4 {
        return None;
    }
    Some(&block[16..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(ty: u32, body: &[u8], big: bool) -> Vec<u8> {
        let mut b = body.to_vec();
        while !b.len().is_multiple_of(4) {
            b.push(0);
        }
        let len = (b.len() + 12) as u32;
        let w = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut out = Vec::new();
        out.extend_from_slice(&w(ty));
        out.extend_from_slice(&w(len));
        out.extend_from_slice(&b);
        out.extend_from_slice(&w(len));
        out
    }

    fn file(big: bool, secrets: &[&[u8]]) -> Vec<u8> {
        let w = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut shb = Vec::new();
        shb.extend_from_slice(&w(BYTE_ORDER_MAGIC));
        shb.extend_from_slice(&(if big { [0, 1, 0, 0] } else { [1, 0, 0, 0] }));
        shb.extend_from_slice(&[0xff; 8]);
        let mut out = block(SHB_TYPE, &shb, big);
        // an IDB
        out.extend(block(1, &[1, 0, 0, 0, 0, 0, 4, 0], big));
        for s in secrets {
            let mut body = Vec::new();
            body.extend_from_slice(&w(SECRETS_TLS_KEYLOG));
            body.extend_from_slice(&w(s.len() as u32));
            body.extend_from_slice(s);
            out.extend(block(DSB_TYPE, &body, big));
        }
        // another DSB of another secrets type
        let mut body = Vec::new();
        body.extend_from_slice(&w(0x5353_4844));
        body.extend_from_slice(&w(3));
        body.extend_from_slice(b"abc");
        out.extend(block(DSB_TYPE, &body, big));
        out
    }

    #[test]
    fn both_byte_orders() {
        for big in [false, true] {
            let f = file(big, &[b"CLIENT_RANDOM a b\n", b"x"]);
            let s = secrets_from_pcapng(&f);
            assert_eq!(s, vec![b"CLIENT_RANDOM a b\n".to_vec(), b"x".to_vec()]);
        }
    }

    #[test]
    fn garbage_and_truncation_never_panic() {
        let f = file(true, &[b"CLIENT_RANDOM a b\n"]);
        for cut in 0..f.len() {
            let s = secrets_from_pcapng(&f[..cut]);
            assert!(s.len() <= 1);
        }
        let mut g = f.clone();
        for i in 0..g.len() {
            g[i] ^= 0x5a;
            let _ = secrets_from_pcapng(&g);
            g[i] ^= 0x5a;
        }
        let _ = secrets_from_pcapng(&[0xff; 64]);
    }

    /// A file made by `editcap --inject-secrets tls,keylog.txt` (samples/rtmps-tls13-dsb).
    #[test]
    fn editcap_injected_file() {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/samples/rtmps-tls13-dsb/capture.pcapng"
        );
        let Ok(data) = std::fs::read(p) else {
            panic!("{p} missing: make it with samples/make-rtmps-samples.sh");
        };
        let s = secrets_from_pcapng(&data);
        assert_eq!(s.len(), 1);
        // The pcapng reader finds the same, before the first packet.
        let mut r = crate::capture::pcapng::PcapngReader::new(data.as_slice());
        assert!(r.advance().unwrap().is_some());
        assert_eq!(r.take_secrets(), s);
        let want = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/samples/rtmps-tls13/keylog.txt"
        ))
        .unwrap();
        assert_eq!(s[0], want);
    }
}
