//! Following the handshake: the messages read (in the clear or decrypted) and the record
//! keys they lead to, from the key log.

use super::crypto::{self, RecordKeys};
use super::handshake as hs;
use super::keylog::{KeyLog, KeysFrom, Secret};
use super::record::Phase;
use super::{MAX_HANDSHAKE_MESSAGE, TlsConnection};

impl TlsConnection {
    /// Makes the keys of side `i` if it is protected, has none, and the key log has them.
    pub(super) fn ensure_keys(&mut self, i: usize, keys: &KeyLog) {
        let Some(suite) = self.suite else {
            return;
        };
        let (Some(cr), Some(sr)) = (self.info.client_random, self.info.server_random) else {
            return;
        };
        let s = &self.sides[i];
        if s.keys.is_some() || !s.encrypted {
            return;
        }
        let Some(e) = keys.get(&cr) else {
            return;
        };
        if suite.tls13 {
            let secret = match (i, s.phase) {
                (0, Phase::Handshake) => &e.client_handshake,
                (1, Phase::Handshake) => &e.server_handshake,
                (0, Phase::Application) => &e.client_traffic_0,
                _ => &e.server_traffic_0,
            };
            let Some(secret) = secret.clone() else {
                return;
            };
            if secret.as_bytes().len() != suite.hash.output_len() {
                return;
            }
            let k = RecordKeys::from_traffic_secret(suite, secret.as_bytes());
            let s = &mut self.sides[i];
            s.keys = k;
            s.secret = Some(secret);
        } else {
            let Some(ms) = e.master_secret else {
                return;
            };
            let kl = suite.cipher.key_len();
            let ivl = if suite.cipher == crypto::CipherAlg::ChaCha20Poly1305 {
                12
            } else {
                4
            };
            let mut seed = [0u8; 64];
            seed[..32].copy_from_slice(&sr);
            seed[32..].copy_from_slice(&cr);
            let mut kb = [0u8; 2 * (32 + 12)];
            let kb = &mut kb[..2 * (kl + ivl)];
            crypto::prf12(suite.hash, &ms, b"key expansion", &seed, kb);
            let (key, iv) = if i == 0 {
                (&kb[..kl], &kb[2 * kl..2 * kl + ivl])
            } else {
                (&kb[kl..2 * kl], &kb[2 * kl + ivl..2 * kl + 2 * ivl])
            };
            self.sides[i].keys = RecordKeys::new(suite.cipher, key, iv, false);
        }
        if self.sides[i].keys.is_some() && self.info.keys_from == KeysFrom::None {
            self.info.keys_from = e.origin;
        }
    }

    pub(super) fn handshake_bytes(&mut self, i: usize, mut bytes: &[u8], keys: &KeyLog) {
        let s = &mut self.sides[i];
        if s.hs_skip > 0 {
            let n = s.hs_skip.min(bytes.len());
            s.hs_skip -= n;
            bytes = &bytes[n..];
        }
        s.hs_buf.extend_from_slice(bytes);
        loop {
            let s = &mut self.sides[i];
            if s.hs_buf.len() < 4 {
                return;
            }
            let ty = s.hs_buf[0];
            let len = ((s.hs_buf[1] as usize) << 16)
                | ((s.hs_buf[2] as usize) << 8)
                | s.hs_buf[3] as usize;
            if len > MAX_HANDSHAKE_MESSAGE {
                let have = s.hs_buf.len() - 4;
                if have >= len {
                    s.hs_buf.drain(..4 + len);
                    continue;
                }
                s.hs_skip = len - have;
                s.hs_buf.clear();
                return;
            }
            if s.hs_buf.len() < 4 + len {
                return;
            }
            let msg: Vec<u8> = s.hs_buf.drain(..4 + len).collect();
            self.handshake_message(i, ty, &msg[4..], keys);
        }
    }

    fn handshake_message(&mut self, i: usize, ty: u8, body: &[u8], keys: &KeyLog) {
        let tls13 = self.info.version == Some(0x0304);
        match (i, ty) {
            (0, hs::CLIENT_HELLO) => {
                if let Some(ch) = hs::parse_client_hello(body) {
                    self.info.client_random = Some(ch.random);
                    if ch.sni.is_some() {
                        self.info.sni = ch.sni;
                    }
                    if !ch.alpn.is_empty() {
                        self.info.alpn_offered = ch.alpn;
                    }
                }
            }
            (1, hs::SERVER_HELLO) => {
                let Some(sh) = hs::parse_server_hello(body) else {
                    return;
                };
                self.info.version = Some(sh.version());
                self.info.cipher_suite = Some(sh.cipher_suite);
                if sh.is_hello_retry() {
                    self.info.hello_retry = true;
                    return;
                }
                self.info.server_random = Some(sh.random);
                if sh.alpn.is_some() {
                    self.info.alpn = sh.alpn.clone();
                }
                let v = sh.version();
                self.suite = crypto::suite(sh.cipher_suite)
                    .filter(|s| (v == 0x0304) == s.tls13 && (v == 0x0303 || v == 0x0304));
                if v == 0x0304 {
                    for k in 0..2 {
                        let s = &mut self.sides[k];
                        s.encrypted = true;
                        s.phase = Phase::Handshake;
                        s.keys = None;
                        s.seq = 0;
                        self.ensure_keys(k, keys);
                    }
                }
            }
            (1, hs::ENCRYPTED_EXTENSIONS) => {
                if let Some(a) = hs::parse_encrypted_extensions_alpn(body) {
                    self.info.alpn = Some(a);
                }
            }
            (1, hs::CERTIFICATE) => {
                if self.info.server_cert_cn.is_none()
                    && let Some(c) = hs::first_certificate(body, tls13)
                {
                    self.info.server_cert_cn = hs::subject_cn(c);
                }
            }
            (_, hs::FINISHED) if tls13 && self.sides[i].phase == Phase::Handshake => {
                self.sides[i].switch_after_record = true;
            }
            (_, hs::KEY_UPDATE) if tls13 && self.sides[i].phase == Phase::Application => {
                self.sides[i].update_after_record = true;
            }
            _ => {}
        }
    }

    /// The application keys of side `i` while it is in its TLS 1.3 handshake phase.
    pub(super) fn app_keys13(&self, i: usize, keys: &KeyLog) -> Option<(RecordKeys, Secret)> {
        let suite = self.suite.filter(|s| s.tls13)?;
        if self.sides[i].phase != Phase::Handshake {
            return None;
        }
        let e = keys.get(self.info.client_random.as_ref()?)?;
        let sec = if i == 0 {
            e.client_traffic_0.clone()?
        } else {
            e.server_traffic_0.clone()?
        };
        if sec.as_bytes().len() != suite.hash.output_len() {
            return None;
        }
        Some((RecordKeys::from_traffic_secret(suite, sec.as_bytes())?, sec))
    }
}
