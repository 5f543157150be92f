//! How RTMPS and RTMPT connections are shown in the report: what TLS showed and decrypted,
//! and the RTMPT session with the TCP connections and requests that carried it.

use serde::Serialize;

use super::dir_name;
use super::escape;
use crate::pipeline::TunnelFacts;
use crate::transport::tls::{KeysFrom, TlsInfo, suite_name};

/// A TLS connection as the report shows it.
#[derive(Clone, Debug, Serialize)]
pub struct TlsReport {
    /// `TLS 1.2`, `TLS 1.3` (from the ServerHello), or null when it was not captured.
    pub version: Option<String>,
    /// The IANA name (`TLS_AES_128_GCM_SHA256`), or its number as `0xNNNN`.
    pub cipher_suite: Option<String>,
    /// The server name the client asked for (SNI), escaped.
    pub sni: Option<String>,
    /// The application protocol chosen (ALPN), escaped.
    pub alpn: Option<String>,
    /// The subject common name of the server's certificate (TLS 1.2 in the clear; TLS 1.3
    /// once decrypted).
    pub server_certificate: Option<String>,
    /// Records were decrypted (the key log had this connection's keys).
    pub decrypted: bool,
    /// Records framed, decrypted with a valid tag, failed their tag (passed on as gaps, never
    /// as bytes), lost in capture gaps.
    pub records_seen: u64,
    pub records: u64,
    pub failed_records: u64,
    pub lost_records: u64,
    /// Where the keys came from: `keylog` (a file) or `pcapng` (the capture's secrets block).
    pub keys_from: Option<&'static str>,
    pub key_updates: u64,
    /// Protected records of a suite that cannot be decrypted here (CBC, TLS before 1.2).
    pub undecryptable_records: u64,
}

impl TlsReport {
    pub(super) fn new(t: &TlsInfo) -> Self {
        let text = |b: &Option<Vec<u8>>| b.as_deref().map(escape);
        TlsReport {
            version: t.version.map(|v| match v {
                0x0304 => "TLS 1.3".to_string(),
                0x0303 => "TLS 1.2".to_string(),
                0x0302 => "TLS 1.1".to_string(),
                0x0301 => "TLS 1.0".to_string(),
                v => format!("0x{v:04x}"),
            }),
            cipher_suite: t
                .cipher_suite
                .map(|s| suite_name(s).map_or_else(|| format!("0x{s:04x}"), str::to_string)),
            sni: text(&t.sni),
            alpn: text(&t.alpn),
            server_certificate: text(&t.server_cert_cn),
            decrypted: t.decrypted,
            records_seen: t.records_seen,
            records: t.records,
            failed_records: t.failed_records,
            lost_records: t.lost_records,
            keys_from: match t.keys_from {
                KeysFrom::None => None,
                KeysFrom::KeyLogFile => Some("keylog"),
                KeysFrom::PcapngBlock => Some("pcapng"),
            },
            key_updates: t.key_updates,
            undecryptable_records: t.undecryptable_records,
        }
    }
}

/// An RTMPT session as the report shows it.
#[derive(Clone, Debug, Serialize)]
pub struct RtmptReport {
    /// The session id (escaped).
    pub session: String,
    /// Its `/open` was captured; else it was first seen in its middle.
    pub start_seen: bool,
    pub closed: bool,
    pub connections: Vec<TunnelConnReport>,
    pub connections_dropped: u64,
    pub requests: RequestCounts,
    /// Requests whose bytes were never captured: in which RTMP direction, where in it, how
    /// many bytes at least (`exact` when known), and their SEQs (`first_seq..end_seq`).
    pub gaps: Vec<TunnelGapReport>,
    pub gap_count: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct TunnelConnReport {
    pub client: String,
    pub server: String,
    pub first_frame: u64,
    pub last_frame: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RequestCounts {
    pub open: u64,
    pub send: u64,
    pub idle: u64,
    pub close: u64,
    pub ident: u64,
    pub other: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct TunnelGapReport {
    pub direction: &'static str,
    pub offset: u64,
    pub len: u64,
    pub exact: bool,
    pub first_seq: u64,
    pub end_seq: u64,
}

impl RtmptReport {
    pub(super) fn new(t: &TunnelFacts) -> Self {
        let r = &t.requests;
        RtmptReport {
            session: escape(&t.session),
            start_seen: t.start_seen,
            closed: t.closed,
            connections: t
                .connections
                .iter()
                .map(|c| TunnelConnReport {
                    client: c.client.to_string(),
                    server: c.server.to_string(),
                    first_frame: c.first_frame,
                    last_frame: c.last_frame,
                })
                .collect(),
            connections_dropped: t.connections_dropped,
            requests: RequestCounts {
                open: r.open,
                send: r.send,
                idle: r.idle,
                close: r.close,
                ident: r.ident,
                other: r.other,
            },
            gaps: t
                .gaps
                .iter()
                .map(|g| TunnelGapReport {
                    direction: dir_name(g.dir),
                    offset: g.offset,
                    len: g.len,
                    exact: g.exact,
                    first_seq: g.seqs.0,
                    end_seq: g.seqs.1,
                })
                .collect(),
            gap_count: t.gap_count,
        }
    }
}
