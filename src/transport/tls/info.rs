//! The public facts and limits of one TLS connection.

use super::{DEFAULT_BACKLOG, DEFAULT_RESYNC_ATTEMPTS, KeysFrom};
use crate::flow::Dir;

/// Limits of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsLimits {
    /// Ciphertext bytes held (both directions) while keys are missing.
    pub backlog_bytes: usize,
    /// AEAD attempts per gap to find the sequence number of the record after it.
    pub resync_attempts: u32,
}

impl Default for TlsLimits {
    fn default() -> TlsLimits {
        TlsLimits {
            backlog_bytes: DEFAULT_BACKLOG,
            resync_attempts: DEFAULT_RESYNC_ATTEMPTS,
        }
    }
}

/// Records lost in one direction: a gap in the ciphertext, resynchronised or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsLoss {
    pub dir: Dir,
    /// Frame at which the loss was resolved (resynchronised, or the end).
    pub frame: u64,
    /// Records lost (found from the sequence number, or estimated at the end).
    pub records: u64,
    /// The plaintext gap passed up.
    pub plaintext_offset: u64,
    pub plaintext_len: u64,
    /// Whether a later record was decrypted again.
    pub resynchronised: bool,
}

/// What is known of a TLS connection, as typed facts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// Negotiated protocol version (0x0303 TLS 1.2, 0x0304 TLS 1.3), from the ServerHello.
    pub version: Option<u16>,
    /// Negotiated cipher suite (see [`suite_name`](super::suite_name)).
    pub cipher_suite: Option<u16>,
    /// Server name from the ClientHello (raw bytes, at most 255).
    pub sni: Option<Vec<u8>>,
    /// ALPN protocol selected (ServerHello for TLS 1.2, EncryptedExtensions for 1.3).
    pub alpn: Option<Vec<u8>>,
    /// ALPN protocols offered in the ClientHello (at most 8).
    pub alpn_offered: Vec<Vec<u8>>,
    /// Subject commonName of the server's first certificate (TLS 1.2 in the clear; TLS 1.3
    /// once decrypted).
    pub server_cert_cn: Option<Vec<u8>>,
    pub client_random: Option<[u8; 32]>,
    pub server_random: Option<[u8; 32]>,
    /// The server asked for a second ClientHello (HelloRetryRequest).
    pub hello_retry: bool,
    /// At least one record decrypted.
    pub decrypted: bool,
    /// Where the keys used came from.
    pub keys_from: KeysFrom,
    /// Records framed (both directions).
    pub records_seen: u64,
    /// Records decrypted with a valid tag.
    pub records: u64,
    /// Records whose tag failed (passed up as gaps).
    pub failed_records: u64,
    /// Records lost in ciphertext gaps.
    pub lost_records: u64,
    /// Losses, the first [`MAX_LOSSES`](super::MAX_LOSSES).
    pub losses: Vec<TlsLoss>,
    /// Gaps after which no record could be decrypted again (the direction stayed lost).
    pub resync_failures: u64,
    /// Protected records of a version or suite this module cannot decrypt (CBC, TLS < 1.2).
    pub undecryptable_records: u64,
    /// Ciphertext bytes dropped because the backlog held while keys were missing was full.
    pub backlog_dropped_bytes: u64,
    /// TLS 1.3 KeyUpdates followed.
    pub key_updates: u64,
    /// A record header that cannot be TLS was seen: the connection is not decoded further.
    pub not_tls: bool,
}
