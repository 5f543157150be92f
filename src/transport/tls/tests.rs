//! Tests of the TLS layer: the RFC 8448 trace, feeding patterns, tampering, loss, missing
//! keys, hostile input, and the real RTMPS captures of samples/.

use super::*;
use crate::capture::dsb::secrets_from_pcapng;
use crate::flow::{Dir, StreamEvent};

pub(crate) fn hex(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
    s.chunks(2)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
        .collect()
}

// RFC 8448 section 3 ("Simple 1-RTT Handshake"), the records as the RFC prints them
// ("complete record").
const R3_CH: &str = "16030100c4010000c00303cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7000006130113031302010000910000000b0009000006736572766572ff01000100000a00140012001d0017001800190100010101020103010400230000003300260024001d002099381de560e4bd43d23d8e435a7dbafeb3c06e51c13cae4d5413691e529aaf2c002b0003020304000d0020001e040305030603020308040805080604010501060102010402050206020202002d00020101001c00024001";
const R3_SH: &str = "160303005a020000560303a6af06a4121860dc5e6e60249cd34c95930c8ac5cb1434dac155772ed3e2692800130100002e00330024001d0020c9828876112095fe66762bdbf7c672e156d6cc253b833df1dd69b1b04e751f0f002b00020304";
const R3_SERVER_FLIGHT: &str = "17030302a2d1ff334a56f5bff6594a07cc87b580233f500f45e489e7f33af35edf7869fcf40aa40aa2b8ea73f848a7ca07612ef9f945cb960b4068905123ea78b111b429ba9191cd05d2a389280f526134aadc7fc78c4b729df828b5ecf7b13bd9aefb0e57f271585b8ea9bb355c7c79020716cfb9b1183ef3ab20e37d57a6b9d7477609aee6e122a4cf51427325250c7d0e509289444c9b3a648f1d71035d2ed65b0e3cdd0cbae8bf2d0b227812cbb360987255cc744110c453baa4fcd610928d809810e4b7ed1a8fd991f06aa6248204797e36a6a73b70a2559c09ead686945ba246ab66e5edd8044b4c6de3fcf2a89441ac66272fd8fb330ef8190579b3684596c960bd596eea520a56a8d650f563aad27409960dca63d3e688611ea5e22f4415cf9538d51a200c27034272968a264ed6540c84838d89f72c24461aad6d26f59ecaba9acbbb317b66d902f4f292a36ac1b639c637ce343117b659622245317b49eeda0c6258f100d7d961ffb138647e92ea330faeea6dfa31c7a84dc3bd7e1b7a6c7178af36879018e3f252107f243d243dc7339d5684c8b0378bf30244da8c87c843f5e56eb4c5e8280a2b48052cf93b16499a66db7cca71e4599426f7d461e66f99882bd89fc50800becca62d6c74116dbd2972fda1fa80f85df881edbe5a37668936b335583b599186dc5c6918a396fa48a181d6b6fa4f9d62d513afbb992f2b992f67f8afe67f76913fa388cb5630c8ca01e0c65d11c66a1e2ac4c85977b7c7a6999bbf10dc35ae69f5515614636c0b9b68c19ed2e31c0b3b66763038ebba42f3b38edc0399f3a9f23faa63978c317fc9fa66a73f60f0504de93b5b845e275592c12335ee340bbc4fddd502784016e4b3be7ef04dda49f4b440a30cb5d2af939828fd4ae3794e44f94df5a631ede42c1719bfdabf0253fe5175be898e750edc53370d2b";
const R3_CLIENT_FINISHED: &str = "170303003575ec4dc238cce60b298044a71e219c56cc77b0517fe9b93c7a4bfc44d87f38f80338ac98fc46deb384bd1caeacab6867d726c40546";
const R3_SERVER_TICKET: &str = "17030300de3a6b8f90414a97d6959c3487680de5134a2b240e6cffac116e95d41d6af8f6b580dcf3d11d63c758db289a015940252f55713e061dc13e078891a38efbcf5753ad8ef170ad3c7353d16d9da773b9ca7f2b9fa1b6c0d4a3d03f75e09c30ba1e62972ac46f75f7b981be63439b2999ce13064615139891d5e4c5b406f16e3fc181a77ca475840025db2f0a77f81b5ab05b94c01346755f69232c86519d86cbeeac87aac347d143f9605d64f650db4d023e70e952ca49fe5137121c74bc2697687e248746d6df353005f3bce18696129c8153556b3b6c6779b37bf15985684f";
const R3_CLIENT_DATA: &str = "1703030043a23f7054b62c94d0affafe8228ba55cbefacea42f914aa66bcab3f2b9819a8a5b46b395bd54a9a20441e2b62974e1f5a6292a2977014bd1e3deae63aeebb21694915e4";
const R3_SERVER_DATA: &str = "17030300432e937e11ef4ac740e538ad36005fc4a46932fc3225d05f82aa1b36e30efaf97d90e6dffc602dcb501a59a8fcc49c4bf2e5f0a21c0047c2abf332540dd032e167c2955d";
const R3_CLIENT_ALERT: &str = "1703030013c9872760655666b74d7ff1153efd6db6d0b0e3";
const R3_SERVER_ALERT: &str = "1703030013b58fd67166ebf599d24720cfbe7efa7a8864a9";

const R3_CLIENT_RANDOM: &str = "cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7";
const R3_C_HS: &str = "b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21";
const R3_S_HS: &str = "b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38";
const R3_C_AP: &str = "9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5";
const R3_S_AP: &str = "a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643";

pub(crate) fn rfc8448_client_hello() -> Vec<u8> {
    hex(R3_CH)
}
pub(crate) fn rfc8448_server_hello() -> Vec<u8> {
    hex(R3_SH)
}

fn rfc8448_keylog() -> KeyLog {
    let text = format!(
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET {R3_CLIENT_RANDOM} {R3_C_HS}\n\
         SERVER_HANDSHAKE_TRAFFIC_SECRET {R3_CLIENT_RANDOM} {R3_S_HS}\n\
         CLIENT_TRAFFIC_SECRET_0 {R3_CLIENT_RANDOM} {R3_C_AP}\n\
         SERVER_TRAFFIC_SECRET_0 {R3_CLIENT_RANDOM} {R3_S_AP}\n"
    );
    KeyLog::parse(text.as_bytes(), KeysFrom::KeyLogFile)
}

fn client_stream() -> Vec<u8> {
    [R3_CH, R3_CLIENT_FINISHED, R3_CLIENT_DATA, R3_CLIENT_ALERT]
        .iter()
        .flat_map(|h| hex(h))
        .collect()
}

fn server_stream(extra: &[Vec<u8>]) -> Vec<u8> {
    let mut v: Vec<u8> = [R3_SH, R3_SERVER_FLIGHT, R3_SERVER_TICKET, R3_SERVER_DATA]
        .iter()
        .flat_map(|h| hex(h))
        .collect();
    for e in extra {
        v.extend_from_slice(e);
    }
    if extra.is_empty() {
        // (its sequence number is 2: only valid right after the RFC's records)
        v.extend(hex(R3_SERVER_ALERT));
    }
    v
}

/// What came up, per direction: plaintext bytes with gaps as (offset, len).
#[derive(Default, Debug, PartialEq, Eq)]
struct Out {
    data: [Vec<u8>; 2],
    gaps: [Vec<(u64, u64)>; 2],
    /// offsets were contiguous
    bad_offsets: bool,
    next: [u64; 2],
    /// The direction of each run of plaintext, in the order it came up.
    order: Vec<usize>,
}

impl Out {
    fn take(&mut self, d: Dir, ev: StreamEvent<'_>) {
        let i = d.index();
        match ev {
            StreamEvent::Data { offset, bytes } => {
                if offset != self.next[i] {
                    self.bad_offsets = true;
                }
                self.next[i] = offset.saturating_add(bytes.len() as u64);
                self.data[i].extend_from_slice(bytes);
                if self.order.last() != Some(&i) {
                    self.order.push(i);
                }
            }
            StreamEvent::Gap { offset, len } => {
                if offset != self.next[i] {
                    self.bad_offsets = true;
                }
                self.next[i] = offset.saturating_add(len);
                self.gaps[i].push((offset, len));
            }
        }
    }
}

/// Feeds both directions in `chunk`-byte pieces, alternating (client first).
fn run(conn: &mut TlsConnection, c: &[u8], s: &[u8], chunk: usize, keys: &KeyLog, out: &mut Out) {
    // the client's hello, then the server's flight, then the rest alternating
    let ch = hex(R3_CH).len().min(c.len());
    let mut up = |d: Dir, ev: StreamEvent<'_>| out.take(d, ev);
    let feed = |conn: &mut TlsConnection, d: Dir, data: &[u8], base: usize, up: Up<'_>| {
        for (k, piece) in data.chunks(chunk.max(1)).enumerate() {
            let offset = (base + k * chunk.max(1)) as u64;
            conn.stream_event(
                d,
                StreamEvent::Data {
                    offset,
                    bytes: piece,
                },
                1,
                keys,
                up,
            );
        }
    };
    feed(conn, Dir::ClientToServer, &c[..ch], 0, &mut up);
    feed(conn, Dir::ServerToClient, s, 0, &mut up);
    feed(conn, Dir::ClientToServer, &c[ch..], ch, &mut up);
    conn.finish(keys, &mut up);
}

#[test]
fn rfc8448_simple_1rtt_both_directions() {
    let keys = rfc8448_keylog();
    let mut conn = TlsConnection::new();
    let mut out = Out::default();
    run(
        &mut conn,
        &client_stream(),
        &server_stream(&[]),
        100_000,
        &keys,
        &mut out,
    );
    let want: Vec<u8> = (0u8..50).collect();
    assert_eq!(out.data[0], want, "client application data");
    assert_eq!(out.data[1], want, "server application data");
    assert!(out.gaps[0].is_empty() && out.gaps[1].is_empty());
    assert!(!out.bad_offsets);
    let i = conn.info();
    assert_eq!(i.version, Some(0x0304));
    assert_eq!(i.cipher_suite, Some(0x1301));
    assert_eq!(suite_name(0x1301), Some("TLS_AES_128_GCM_SHA256"));
    assert_eq!(i.sni.as_deref(), Some(&b"server"[..]));
    assert!(i.decrypted);
    assert_eq!(i.keys_from, KeysFrom::KeyLogFile);
    // server: flight, ticket, data, alert; client: finished, data, alert
    assert_eq!(i.records, 7);
    assert_eq!(i.failed_records, 0);
    assert_eq!(i.records_seen, 9);
    assert_eq!(i.server_cert_cn.as_deref(), Some(&b"rsa"[..]));
    assert_eq!(i.alpn, None);
    assert_eq!(i.client_random.unwrap().to_vec(), hex(R3_CLIENT_RANDOM));
}

#[test]
fn byte_at_a_time_gives_the_same_plaintext() {
    let keys = rfc8448_keylog();
    let mut whole = Out::default();
    run(
        &mut TlsConnection::new(),
        &client_stream(),
        &server_stream(&[]),
        1 << 20,
        &keys,
        &mut whole,
    );
    for chunk in [1, 2, 3, 5, 7, 64, 333] {
        let mut out = Out::default();
        let mut conn = TlsConnection::new();
        run(
            &mut conn,
            &client_stream(),
            &server_stream(&[]),
            chunk,
            &keys,
            &mut out,
        );
        assert_eq!(out, whole, "chunk {chunk}");
        assert_eq!(conn.info().records, 7);
        assert!(conn.buffered_bytes() < 4 * (RECORD_HEADER + MAX_CIPHERTEXT) + 1024);
    }
}

#[test]
fn a_tampered_record_is_a_gap_and_counted() {
    let keys = rfc8448_keylog();
    let mut s = server_stream(&[]);
    // flip a byte inside the server's application data record (the last but one)
    let at = s.len() - hex(R3_SERVER_ALERT).len() - 10;
    s[at] ^= 1;
    let mut conn = TlsConnection::new();
    let mut out = Out::default();
    run(&mut conn, &client_stream(), &s, 4096, &keys, &mut out);
    assert!(out.data[1].is_empty(), "no bytes of a failed record");
    assert_eq!(out.gaps[1], vec![(0, 50)]);
    assert_eq!(conn.info().failed_records, 1);
    assert_eq!(out.data[0], (0u8..50).collect::<Vec<u8>>());
}

fn server_app_keys() -> RecordKeys {
    let suite = crypto::suite(0x1301).unwrap();
    RecordKeys::from_traffic_secret(suite, &hex(R3_S_AP)).unwrap()
}

/// Server application records after the RFC's ticket (seq 0) and data (seq 1).
fn more_server_records(n: usize) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let k = server_app_keys();
    let mut recs = Vec::new();
    let mut plains = Vec::new();
    for j in 0..n {
        let len = 100 + (j * 37) % 400;
        let p: Vec<u8> = (0..len).map(|x| (x + j) as u8).collect();
        recs.push(k.seal13(2 + j as u64, &p, 23));
        plains.push(p);
    }
    (recs, plains)
}

#[test]
fn a_gap_mid_stream_resynchronises() {
    // Over 80 lines: one scenario (hello, a gap, the rest) at four chunk sizes, and its checks.
    let keys = rfc8448_keylog();
    let (recs, plains) = more_server_records(30);
    let s = server_stream(&recs);
    // lose from the middle of extra record 9 to the middle of record 13
    let head: usize = [R3_SH, R3_SERVER_FLIGHT, R3_SERVER_TICKET, R3_SERVER_DATA]
        .iter()
        .map(|h| hex(h).len())
        .sum();
    let start_of = |j: usize| head + recs[..j].iter().map(|r| r.len()).sum::<usize>();
    let gap_from = start_of(9) + 20;
    let gap_to = start_of(13) + 30;
    for chunk in [1, 17, 1000, 1 << 20] {
        let mut conn = TlsConnection::new();
        let mut out = Out::default();
        let mut up = |d: Dir, ev: StreamEvent<'_>| out.take(d, ev);
        let c = client_stream();
        let ch = hex(R3_CH).len();
        conn.stream_event(
            Dir::ClientToServer,
            StreamEvent::Data {
                offset: 0,
                bytes: &c[..ch],
            },
            1,
            &keys,
            &mut up,
        );
        let feed = |conn: &mut TlsConnection, from: usize, to: usize, up: Up<'_>| {
            let mut o = from;
            while o < to {
                let e = (o + chunk).min(to);
                conn.stream_event(
                    Dir::ServerToClient,
                    StreamEvent::Data {
                        offset: o as u64,
                        bytes: &s[o..e],
                    },
                    2,
                    &keys,
                    up,
                );
                o = e;
            }
        };
        feed(&mut conn, 0, gap_from, &mut up);
        conn.stream_event(
            Dir::ServerToClient,
            StreamEvent::Gap {
                offset: gap_from as u64,
                len: (gap_to - gap_from) as u64,
            },
            3,
            &keys,
            &mut up,
        );
        feed(&mut conn, gap_to, s.len(), &mut up);
        conn.finish(&keys, &mut up);
        let mut want: Vec<u8> = (0u8..50).collect();
        for p in &plains[..9] {
            want.extend_from_slice(p);
        }
        let mut after = Vec::new();
        for p in &plains[14..] {
            after.extend_from_slice(p);
        }
        let got = &out.data[1];
        assert!(got.starts_with(&want), "chunk {chunk}");
        assert_eq!(&got[want.len()..], &after[..], "chunk {chunk}");
        assert_eq!(
            out.gaps[1].len(),
            1,
            "chunk {chunk}: {:?} {:?}",
            out.gaps,
            conn.info().losses
        );
        let (go, gl) = out.gaps[1][0];
        assert_eq!(go, want.len() as u64);
        let truth: usize = plains[9..14].iter().map(|p| p.len()).sum();
        assert_eq!(
            gl, truth as u64,
            "lost plaintext estimate (one byte a record off at most)"
        );
        let i = conn.info();
        assert_eq!(i.lost_records, 5);
        assert_eq!(i.losses.len(), 1);
        assert!(i.losses[0].resynchronised);
        assert_eq!(i.failed_records, 0);
        assert!(!out.bad_offsets);
    }
}

#[test]
fn keys_arriving_later_decrypt_the_backlog() {
    let keys = rfc8448_keylog();
    let none = KeyLog::new(KeysFrom::KeyLogFile);
    let mut conn = TlsConnection::new();
    let mut out = Out::default();
    run(
        &mut conn,
        &client_stream(),
        &server_stream(&[]),
        500,
        &none,
        &mut out,
    );
    assert!(out.data[0].is_empty() && out.data[1].is_empty());
    assert!(out.gaps[0].is_empty() && out.gaps[1].is_empty());
    assert!(!conn.info().decrypted);
    assert!(conn.buffered_bytes() > 1000);
    let mut up = |d: Dir, ev: StreamEvent<'_>| out.take(d, ev);
    conn.retry_with(&keys, &mut up);
    let want: Vec<u8> = (0u8..50).collect();
    assert_eq!(out.data[0], want);
    assert_eq!(out.data[1], want);
    assert_eq!(conn.info().records, 7);
    // Both directions held, released together: in the order they arrived in (the server's
    // data was captured before the client's), as when the keys were there from the start.
    let mut known = Out::default();
    let mut c2 = TlsConnection::new();
    run(
        &mut c2,
        &client_stream(),
        &server_stream(&[]),
        500,
        &keys,
        &mut known,
    );
    assert_eq!(known.order, vec![1, 0]);
    assert_eq!(out.order, known.order);
}

#[test]
fn the_backlog_is_bounded() {
    let none = KeyLog::new(KeysFrom::KeyLogFile);
    let (recs, _) = more_server_records(200);
    let s = server_stream(&recs);
    let mut conn = TlsConnection::with_limits(TlsLimits {
        backlog_bytes: 8192,
        resync_attempts: 100,
    });
    let mut out = Out::default();
    run(&mut conn, &client_stream(), &s, 1000, &none, &mut out);
    assert!(conn.buffered_bytes() < 8192 + 4 * (RECORD_HEADER + MAX_CIPHERTEXT) + 200_000);
    assert!(conn.info().backlog_dropped_bytes > 0);
    // late keys: what was held decrypts, what was dropped is a gap
    let mut up = |d: Dir, ev: StreamEvent<'_>| out.take(d, ev);
    conn.retry_with(&rfc8448_keylog(), &mut up);
    assert!(out.data[0] == (0u8..50).collect::<Vec<u8>>());
    assert!(!out.data[1].is_empty());
}

#[test]
fn looks_like_tls_checks_the_client_hello_header() {
    assert!(looks_like_tls(&hex(R3_CH)));
    assert!(!looks_like_tls(&[3, 0, 0, 0, 0, 0]));
    assert!(!looks_like_tls(&[0x16, 3, 1]));
    assert!(!looks_like_tls(&hex(R3_SH)));
}

#[test]
fn truncated_and_garbled_inputs_never_panic() {
    let keys = rfc8448_keylog();
    let c = client_stream();
    let s = server_stream(&[]);
    for cut in (0..s.len()).step_by(7) {
        let mut conn = TlsConnection::new();
        let mut out = Out::default();
        run(
            &mut conn,
            &c[..cut.min(c.len())],
            &s[..cut],
            13,
            &keys,
            &mut out,
        );
    }
    // flip each byte of the server stream once
    for at in (0..s.len()).step_by(3) {
        let mut g = s.clone();
        g[at] ^= 0x80;
        let mut conn = TlsConnection::new();
        let mut out = Out::default();
        run(&mut conn, &c, &g, 200, &keys, &mut out);
        assert!(!out.bad_offsets);
    }
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn random_events_never_panic(
            evs in proptest::collection::vec(
                (any::<bool>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..300),
                 prop_oneof![0u64..5000, Just(u64::MAX / 2), any::<u64>()]),
                0..40),
            prefix in any::<bool>(),
        ) {
            let keys = rfc8448_keylog();
            let mut conn = TlsConnection::with_limits(TlsLimits { backlog_bytes: 4096, resync_attempts: 64 });
            let mut out = Out::default();
            let mut up = |d: Dir, ev: StreamEvent<'_>| out.take(d, ev);
            let mut off = [0u64; 2];
            if prefix {
                let c = hex(R3_CH);
                conn.stream_event(Dir::ClientToServer, StreamEvent::Data { offset: 0, bytes: &c }, 0, &keys, &mut up);
                off[0] = c.len() as u64;
                let s = hex(R3_SH);
                conn.stream_event(Dir::ServerToClient, StreamEvent::Data { offset: 0, bytes: &s }, 0, &keys, &mut up);
                off[1] = s.len() as u64;
            }
            for (server, gap, bytes, glen) in evs {
                let d = if server { Dir::ServerToClient } else { Dir::ClientToServer };
                let i = d.index();
                let mut b = bytes;
                if b.len() > 5 && b[0] % 2 == 0 {
                    // make record headers likely
                    b[0] = 23; b[1] = 3; b[2] = 3;
                }
                if gap {
                    conn.stream_event(d, StreamEvent::Gap { offset: off[i], len: glen }, 0, &keys, &mut up);
                    off[i] = off[i].saturating_add(glen);
                } else {
                    conn.stream_event(d, StreamEvent::Data { offset: off[i], bytes: &b }, 0, &keys, &mut up);
                    off[i] = off[i].saturating_add(b.len() as u64);
                }
                prop_assert!(conn.buffered_bytes() < 4096 + 4 * (RECORD_HEADER + MAX_CIPHERTEXT) + 70_000 + 1024 * 1024);
            }
            conn.finish(&keys, &mut up);
        }
    }
}

// ---- the real captures of samples/ (made by samples/make-rtmps-samples.sh) ----------------

/// Each TCP connection of a classic pcap (Ethernet, IPv4) taken in order: (client port, server
/// port, client bytes, server bytes). Enough for the loopback captures of the lab, which have
/// no loss: retransmitted bytes are skipped by their sequence numbers.
fn tcp_streams(pcap: &[u8]) -> Vec<(u16, u16, Vec<u8>, Vec<u8>)> {
    struct Conn {
        cport: u16,
        sport: u16,
        next: [Option<u32>; 2],
        data: [Vec<u8>; 2],
    }
    let mut conns: Vec<Conn> = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let incl = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        let p = &pcap[at + 16..at + 16 + incl];
        at += 16 + incl;
        if p.len() < 14 + 20 || p[12..14] != [8, 0] {
            continue;
        }
        let ip = &p[14..];
        let ihl = (ip[0] & 15) as usize * 4;
        let tot = u16::from_be_bytes([ip[2], ip[3]]) as usize;
        if ip[9] != 6 {
            continue;
        }
        let tcp = &ip[ihl..tot];
        let sp = u16::from_be_bytes([tcp[0], tcp[1]]);
        let dp = u16::from_be_bytes([tcp[2], tcp[3]]);
        let seq = u32::from_be_bytes(tcp[4..8].try_into().unwrap());
        let doff = (tcp[12] >> 4) as usize * 4;
        let syn = tcp[13] & 2 != 0;
        let payload = &tcp[doff..];
        let server_port = |p: u16| p == 443 || p == 8443;
        let (cport, sport, dir) = if server_port(dp) {
            (sp, dp, 0)
        } else {
            (dp, sp, 1)
        };
        let idx = match conns
            .iter()
            .position(|c| c.cport == cport && c.sport == sport)
        {
            Some(i) => i,
            None => {
                conns.push(Conn {
                    cport,
                    sport,
                    next: [None, None],
                    data: [Vec::new(), Vec::new()],
                });
                conns.len() - 1
            }
        };
        let c = &mut conns[idx];
        if syn {
            c.next[dir] = Some(seq.wrapping_add(1));
            continue;
        }
        let Some(n) = c.next[dir] else { continue };
        if payload.is_empty() {
            continue;
        }
        let skip = n.wrapping_sub(seq) as usize;
        if skip >= payload.len() || skip > 1 << 30 {
            continue; // old data
        }
        c.data[dir].extend_from_slice(&payload[skip..]);
        c.next[dir] = Some(seq.wrapping_add(payload.len() as u32));
    }
    conns
        .into_iter()
        .map(|c| {
            let [a, b] = c.data;
            (c.cport, c.sport, a, b)
        })
        .collect()
}

fn sample(path: &str) -> Vec<u8> {
    let p = format!("{}/samples/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p)
        .unwrap_or_else(|e| panic!("{p}: {e} (samples/make-rtmps-samples.sh makes it)"))
}

/// Decrypts one connection fed in TCP-segment-sized pieces, interleaved.
fn decrypt(c: &[u8], s: &[u8], keys: &KeyLog) -> (Out, TlsInfo) {
    let mut conn = TlsConnection::new();
    let mut out = Out::default();
    let mut up = |d: Dir, ev: StreamEvent<'_>| out.take(d, ev);
    let piece = 1448;
    let (mut ci, mut si) = (0usize, 0usize);
    while ci < c.len() || si < s.len() {
        if ci < c.len() {
            let e = (ci + piece).min(c.len());
            conn.stream_event(
                Dir::ClientToServer,
                StreamEvent::Data {
                    offset: ci as u64,
                    bytes: &c[ci..e],
                },
                0,
                keys,
                &mut up,
            );
            ci = e;
        }
        if si < s.len() {
            let e = (si + 3 * piece).min(s.len());
            conn.stream_event(
                Dir::ServerToClient,
                StreamEvent::Data {
                    offset: si as u64,
                    bytes: &s[si..e],
                },
                0,
                keys,
                &mut up,
            );
            si = e;
        }
    }
    conn.finish(keys, &mut up);
    let info = conn.info().clone();
    (out, info)
}

/// The manifest's tshark view: (server port, client->server bytes, server->client bytes, suite).
fn tshark_view(folder: &str) -> Vec<(u16, u64, u64, u16)> {
    let m: serde_json::Value =
        serde_json::from_slice(&sample(&format!("{folder}/manifest.json"))).unwrap();
    m["tshark"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let suite = c["cipher_suite"].as_str().unwrap();
            (
                c["server_port"].as_u64().unwrap() as u16,
                c["decrypted_bytes"]["client_to_server"].as_u64().unwrap(),
                c["decrypted_bytes"]["server_to_client"].as_u64().unwrap(),
                u16::from_str_radix(suite.trim_start_matches("0x"), 16).unwrap(),
            )
        })
        .collect()
}

fn check_sample(folder: &str, version: u16) {
    let pcap = sample(&format!("{folder}/capture.pcap"));
    let keys = KeyLog::parse(
        &sample(&format!("{folder}/keylog.txt")),
        KeysFrom::KeyLogFile,
    );
    let view = tshark_view(folder);
    let streams = tcp_streams(&pcap);
    assert_eq!(streams.len(), 2, "{folder}");
    for (cport, sport, c, s) in &streams {
        let (out, info) = decrypt(c, s, &keys);
        let what = format!("{folder} {cport}->{sport}");
        assert_eq!(info.version, Some(version), "{what}");
        assert_eq!(info.sni.as_deref(), Some(&b"localhost"[..]), "{what}");
        assert_eq!(info.failed_records, 0, "{what}");
        assert_eq!(info.lost_records, 0, "{what}");
        assert!(info.decrypted, "{what}");
        assert!(out.gaps[0].is_empty() && out.gaps[1].is_empty(), "{what}");
        // the RTMP handshake: C0 = 3 then C1 (1536 bytes); S0 S1 S2 the same way
        assert!(out.data[0].len() > 1537 && out.data[0][0] == 3, "{what}");
        assert!(
            out.data[1].len() > 1 + 2 * 1536 && out.data[1][0] == 3,
            "{what}"
        );
        if version == 0x0303 {
            assert_eq!(
                info.server_cert_cn.as_deref(),
                Some(&b"rtmpsniff.test"[..]),
                "{what}"
            );
        }
        // tshark's second opinion: the same plaintext sizes and suite
        let (_, vc, vs, suite) = view.iter().find(|v| v.0 == *sport).unwrap();
        assert_eq!(info.cipher_suite, Some(*suite), "{what}");
        assert_eq!(
            out.data[0].len() as u64,
            *vc,
            "{what} client bytes vs tshark"
        );
        assert_eq!(
            out.data[1].len() as u64,
            *vs,
            "{what} server bytes vs tshark"
        );
        // the publisher's connect/publish and the player's play are in the clear now
        let has = |d: &[u8], w: &[u8]| d.windows(w.len()).any(|x| x == w);
        assert!(has(&out.data[0], b"connect"), "{what}");
        if *sport == 443 {
            assert!(has(&out.data[0], b"publish"), "{what}");
        } else {
            assert!(has(&out.data[0], b"play"), "{what}");
        }
    }
}

#[test]
fn real_capture_tls12_gcm() {
    check_sample("rtmps-tls12-gcm", 0x0303);
}

#[test]
fn real_capture_tls12_chacha() {
    check_sample("rtmps-tls12-chacha", 0x0303);
}

#[test]
fn real_capture_tls13_gcm() {
    check_sample("rtmps-tls13", 0x0304);
}

#[test]
fn real_capture_tls13_chacha() {
    check_sample("rtmps-tls13-chacha", 0x0304);
}

#[test]
fn real_capture_with_one_connection_missing_its_keys() {
    let folder = "rtmps-tls12-missing-key";
    let pcap = sample(&format!("{folder}/capture.pcap"));
    let keys = KeyLog::parse(
        &sample(&format!("{folder}/keylog.txt")),
        KeysFrom::KeyLogFile,
    );
    for (_, sport, c, s) in tcp_streams(&pcap) {
        let (out, info) = decrypt(&c, &s, &keys);
        if sport == 8443 {
            assert!(!info.decrypted);
            assert!(out.data[0].is_empty() && out.data[1].is_empty());
            assert!(out.gaps[0].is_empty() && out.gaps[1].is_empty());
            assert_eq!(info.keys_from, KeysFrom::None);
        } else {
            assert!(info.decrypted);
            assert_eq!(out.data[0][0], 3);
        }
    }
}

#[test]
fn real_capture_keys_from_the_pcapng_secrets_block() {
    let data = sample("rtmps-tls13-dsb/capture.pcapng");
    let mut keys = KeyLog::new(KeysFrom::PcapngBlock);
    for s in secrets_from_pcapng(&data) {
        keys.extend_from(&s);
    }
    keys.finish_partial();
    assert_eq!(keys.len(), 2);
    // the same connections, from the pcap of the same run
    let pcap = sample("rtmps-tls13/capture.pcap");
    for (_, _, c, s) in tcp_streams(&pcap) {
        let (out, info) = decrypt(&c, &s, &keys);
        assert!(info.decrypted);
        assert_eq!(info.keys_from, KeysFrom::PcapngBlock);
        assert_eq!(out.data[0][0], 3);
    }
}

#[test]
fn real_capture_with_loss_resynchronises() {
    for folder in [
        "rtmps-tls13",
        "rtmps-tls13-chacha",
        "rtmps-tls12-gcm",
        "rtmps-tls12-chacha",
    ] {
        loss_in_sample(folder);
    }
}

/// Drops 3000 bytes in the middle of the bigger direction of each connection: the rest
/// decrypts again.
fn loss_in_sample(folder: &str) {
    // Over 80 lines: the six events of one lossy connection in order, then their checks.
    let pcap = sample(&format!("{folder}/capture.pcap"));
    let keys = KeyLog::parse(
        &sample(&format!("{folder}/keylog.txt")),
        KeysFrom::KeyLogFile,
    );
    for (_, sport, c, s) in tcp_streams(&pcap) {
        let (full, _) = decrypt(&c, &s, &keys);
        let (big, small) = if sport == 443 { (&c, 0) } else { (&s, 1) };
        let _ = small;
        let cut_from = big.len() / 2;
        let cut_to = cut_from + 3000;
        let mut conn = TlsConnection::new();
        let mut out = Out::default();
        let mut up = |d: Dir, ev: StreamEvent<'_>| out.take(d, ev);
        let bd = if sport == 443 {
            Dir::ClientToServer
        } else {
            Dir::ServerToClient
        };
        let other = if sport == 443 { &s } else { &c };
        // handshake first: the other side whole, then the big one with a hole
        let (first, second) = if bd == Dir::ClientToServer {
            (bd, bd.other())
        } else {
            (bd.other(), bd)
        };
        let _ = (first, second);
        let ch_len = 600.min(c.len());
        conn.stream_event(
            Dir::ClientToServer,
            StreamEvent::Data {
                offset: 0,
                bytes: &c[..ch_len],
            },
            0,
            &keys,
            &mut up,
        );
        let (od, ob) = (bd.other(), other);
        let ostart = if od == Dir::ClientToServer { ch_len } else { 0 };
        let bstart = if bd == Dir::ClientToServer { ch_len } else { 0 };
        conn.stream_event(
            od,
            StreamEvent::Data {
                offset: ostart as u64,
                bytes: &ob[ostart..],
            },
            0,
            &keys,
            &mut up,
        );
        conn.stream_event(
            bd,
            StreamEvent::Data {
                offset: bstart as u64,
                bytes: &big[bstart..cut_from],
            },
            0,
            &keys,
            &mut up,
        );
        conn.stream_event(
            bd,
            StreamEvent::Gap {
                offset: cut_from as u64,
                len: 3000,
            },
            0,
            &keys,
            &mut up,
        );
        conn.stream_event(
            bd,
            StreamEvent::Data {
                offset: cut_to as u64,
                bytes: &big[cut_to..],
            },
            0,
            &keys,
            &mut up,
        );
        conn.finish(&keys, &mut up);
        let i = bd.index();
        let info = conn.info();
        assert_eq!(info.failed_records, 0);
        assert!(info.lost_records >= 1, "{info:?}");
        assert_eq!(out.gaps[i].len(), 1);
        let (go, gl) = out.gaps[i][0];
        let tail = &out.data[i][go as usize..];
        // what came after the gap is the end of the full plaintext
        assert!(full.data[i].ends_with(tail));
        assert!(!tail.is_empty());
        // the gap's length is within a few records' overhead of the truth
        let truth = full.data[i].len() as u64 - go - tail.len() as u64;
        assert!(gl.abs_diff(truth) <= 22 * 4, "gap {gl} truth {truth}");
        assert!(!out.bad_offsets);
    }
}

#[test]
fn key_update_in_both_directions_is_followed() {
    let keys = rfc8448_keylog();
    let suite = crypto::suite(0x1301).unwrap();
    let next = |s: &[u8]| {
        let mut n = [0u8; 32];
        assert!(crypto::hkdf_expand_label(
            suite.hash,
            s,
            b"traffic upd",
            &mut n
        ));
        n
    };
    let key_update = [hs::KEY_UPDATE, 0, 0, 1, 0]; // update_not_requested
    // server: after the RFC's ticket (0) and data (1), a KeyUpdate at 2, then data under
    // the next secret from 0, then another KeyUpdate and data under the third secret
    let s0 = hex(R3_S_AP);
    let s1 = next(&s0);
    let s2 = next(&s1);
    let k0 = RecordKeys::from_traffic_secret(suite, &s0).unwrap();
    let k1 = RecordKeys::from_traffic_secret(suite, &s1).unwrap();
    let k2 = RecordKeys::from_traffic_secret(suite, &s2).unwrap();
    let extra = vec![
        k0.seal13(2, &key_update, 22),
        k1.seal13(0, b"after one update", 23),
        k1.seal13(1, &key_update, 22),
        k2.seal13(0, b", after two", 23),
    ];
    let srv = server_stream(&extra);
    // client: its data (0), then a KeyUpdate at 1, then data under its next secret
    let c0 = hex(R3_C_AP);
    let c1 = next(&c0);
    let ck0 = RecordKeys::from_traffic_secret(suite, &c0).unwrap();
    let ck1 = RecordKeys::from_traffic_secret(suite, &c1).unwrap();
    let mut cli: Vec<u8> = [R3_CH, R3_CLIENT_FINISHED, R3_CLIENT_DATA]
        .iter()
        .flat_map(|h| hex(h))
        .collect();
    cli.extend(ck0.seal13(1, &key_update, 22));
    cli.extend(ck1.seal13(0, b"client updated", 23));
    let mut conn = TlsConnection::new();
    let mut out = Out::default();
    run(&mut conn, &cli, &srv, 50, &keys, &mut out);
    let mut want: Vec<u8> = (0u8..50).collect();
    want.extend_from_slice(b"after one update, after two");
    assert_eq!(out.data[1], want);
    let mut want: Vec<u8> = (0u8..50).collect();
    want.extend_from_slice(b"client updated");
    assert_eq!(out.data[0], want);
    assert_eq!(conn.info().key_updates, 3);
    assert_eq!(conn.info().failed_records, 0);
}

#[test]
fn traffic_secrets_logged_after_the_handshake_ones() {
    // a live key log read while it grows: the handshake secrets first, the rest later
    let hs_only = KeyLog::parse(
        format!(
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET {R3_CLIENT_RANDOM} {R3_C_HS}\n\
             SERVER_HANDSHAKE_TRAFFIC_SECRET {R3_CLIENT_RANDOM} {R3_S_HS}\n"
        )
        .as_bytes(),
        KeysFrom::KeyLogFile,
    );
    let mut conn = TlsConnection::new();
    let mut out = Out::default();
    run(
        &mut conn,
        &client_stream(),
        &server_stream(&[]),
        100,
        &hs_only,
        &mut out,
    );
    assert!(out.data[0].is_empty() && out.data[1].is_empty());
    assert_eq!(conn.info().server_cert_cn.as_deref(), Some(&b"rsa"[..]));
    assert_eq!(
        conn.info().records,
        2,
        "the server's flight and the client's Finished"
    );
    let mut up = |d: Dir, ev: StreamEvent<'_>| out.take(d, ev);
    conn.retry_with(&rfc8448_keylog(), &mut up);
    assert_eq!(out.data[0], (0u8..50).collect::<Vec<u8>>());
    assert_eq!(out.data[1], (0u8..50).collect::<Vec<u8>>());
}

#[test]
fn a_stream_that_is_not_tls_is_left_alone() {
    let keys = rfc8448_keylog();
    let mut conn = TlsConnection::new();
    let mut out = Out::default();
    // an RTMP handshake (C0 = 3) on the TLS port
    let mut c = vec![3u8];
    c.extend(std::iter::repeat_n(0x41, 1536));
    run(
        &mut conn,
        &c,
        &[0x16, 0x03, 0x03, 0xff, 0xff, 0],
        64,
        &keys,
        &mut out,
    );
    assert!(conn.info().not_tls);
    assert!(out.data[0].is_empty() && out.data[1].is_empty());
    assert!(conn.buffered_bytes() < 4096);
}

#[test]
fn a_gap_over_the_server_finished_resynchronises_on_application_keys() {
    let keys = rfc8448_keylog();
    let (recs, plains) = more_server_records(5);
    let s = server_stream(&recs);
    let sh = hex(R3_SH).len();
    let flight = hex(R3_SERVER_FLIGHT).len();
    let ticket = hex(R3_SERVER_TICKET).len();
    // lose the end of the encrypted flight (its Finished) and the whole ticket
    let gap_from = sh + flight - 40;
    let gap_to = sh + flight + ticket;
    let mut conn = TlsConnection::new();
    let mut out = Out::default();
    let mut up = |d: Dir, ev: StreamEvent<'_>| out.take(d, ev);
    let c = client_stream();
    conn.stream_event(
        Dir::ClientToServer,
        StreamEvent::Data {
            offset: 0,
            bytes: &c,
        },
        1,
        &keys,
        &mut up,
    );
    conn.stream_event(
        Dir::ServerToClient,
        StreamEvent::Data {
            offset: 0,
            bytes: &s[..gap_from],
        },
        2,
        &keys,
        &mut up,
    );
    conn.stream_event(
        Dir::ServerToClient,
        StreamEvent::Gap {
            offset: gap_from as u64,
            len: (gap_to - gap_from) as u64,
        },
        3,
        &keys,
        &mut up,
    );
    conn.stream_event(
        Dir::ServerToClient,
        StreamEvent::Data {
            offset: gap_to as u64,
            bytes: &s[gap_to..],
        },
        4,
        &keys,
        &mut up,
    );
    conn.finish(&keys, &mut up);
    let mut want: Vec<u8> = (0u8..50).collect();
    for p in &plains {
        want.extend_from_slice(p);
    }
    assert_eq!(out.data[1], want);
    assert_eq!(out.gaps[1].len(), 1);
    assert_eq!(conn.info().lost_records, 2);
    assert_eq!(conn.info().failed_records, 0);
    assert_eq!(out.data[0], (0u8..50).collect::<Vec<u8>>());
}

/// Byte offsets of the records of a TLS stream.
fn record_starts(b: &[u8]) -> Vec<usize> {
    let mut v = Vec::new();
    let mut at = 0;
    while at + 5 <= b.len() {
        v.push(at);
        at += 5 + u16::from_be_bytes([b[at + 3], b[at + 4]]) as usize;
    }
    v
}

#[test]
fn real_capture_tls12_gap_over_the_change_cipher_spec() {
    let folder = "rtmps-tls12-gcm";
    let pcap = sample(&format!("{folder}/capture.pcap"));
    let keys = KeyLog::parse(
        &sample(&format!("{folder}/keylog.txt")),
        KeysFrom::KeyLogFile,
    );
    for (_, sport, c, s) in tcp_streams(&pcap) {
        let (full, _) = decrypt(&c, &s, &keys);
        // client records: ClientHello, ClientKeyExchange, CCS, Finished, data...
        let r = record_starts(&c);
        assert_eq!(c[r[2]], CT_CCS, "{sport}");
        let (gap_from, gap_to) = (r[1] + 3, r[4] + 2); // CKE, CCS, Finished and a data record
        let mut conn = TlsConnection::new();
        let mut out = Out::default();
        let mut up = |d: Dir, ev: StreamEvent<'_>| out.take(d, ev);
        let cd = Dir::ClientToServer;
        conn.stream_event(
            cd,
            StreamEvent::Data {
                offset: 0,
                bytes: &c[..gap_from],
            },
            0,
            &keys,
            &mut up,
        );
        conn.stream_event(
            Dir::ServerToClient,
            StreamEvent::Data {
                offset: 0,
                bytes: &s,
            },
            0,
            &keys,
            &mut up,
        );
        conn.stream_event(
            cd,
            StreamEvent::Gap {
                offset: gap_from as u64,
                len: (gap_to - gap_from) as u64,
            },
            0,
            &keys,
            &mut up,
        );
        conn.stream_event(
            cd,
            StreamEvent::Data {
                offset: gap_to as u64,
                bytes: &c[gap_to..],
            },
            0,
            &keys,
            &mut up,
        );
        conn.finish(&keys, &mut up);
        assert_eq!(
            out.data[1], full.data[1],
            "{sport}: the server side is untouched"
        );
        assert_eq!(out.gaps[0].len(), 1, "{sport}");
        let tail = &out.data[0][out.gaps[0][0].0 as usize..];
        assert!(!tail.is_empty() && full.data[0].ends_with(tail), "{sport}");
        assert_eq!(conn.info().failed_records, 0);
        // Finished and the first data record are lost
        assert_eq!(conn.info().lost_records, 2, "{sport}");
    }
}

/// Random losses in the real captures: whatever is passed up is the sender's plaintext (each
/// Data event is a piece of the full plaintext), no record fails its tag, and after a gap in
/// the application data the stream comes back.
#[test]
fn random_losses_in_real_captures_never_give_wrong_bytes() {
    // Over 80 lines: holes drawn, the streams fed around them, every piece checked: one loop.
    let mut rng = 0x5eed_u64;
    let mut next = move || {
        // splitmix64
        rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for folder in [
        "rtmps-tls12-gcm",
        "rtmps-tls12-chacha",
        "rtmps-tls13",
        "rtmps-tls13-chacha",
    ] {
        let pcap = sample(&format!("{folder}/capture.pcap"));
        let keys = KeyLog::parse(
            &sample(&format!("{folder}/keylog.txt")),
            KeysFrom::KeyLogFile,
        );
        for (_, sport, c, s) in tcp_streams(&pcap) {
            let (full, _) = decrypt(&c, &s, &keys);
            for round in 0..12 {
                // 1..3 gaps in each direction: in odd rounds anywhere (the handshake too), in
                // even rounds after the first 600 bytes (the hellos)
                let mut holes: [Vec<(usize, usize)>; 2] = [Vec::new(), Vec::new()];
                for (d, data) in [&c, &s].iter().enumerate() {
                    for _ in 0..1 + next() % 3 {
                        if data.len() < 2000 {
                            break;
                        }
                        let from = 600 * (round % 2) + (next() as usize) % (data.len() - 1200);
                        let len = 1 + (next() as usize) % 4000;
                        holes[d].push((from, (from + len).min(data.len())));
                    }
                    holes[d].sort();
                }
                let mut conn = TlsConnection::new();
                let mut out = Out::default();
                let mut pieces: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
                let mut up = |d: Dir, ev: StreamEvent<'_>| {
                    if let StreamEvent::Data { bytes, .. } = &ev {
                        pieces[d.index()].push(bytes.to_vec());
                    }
                    out.take(d, ev)
                };
                let piece = 1 + (next() as usize) % 3000;
                let mut pos = [0usize; 2];
                let data = [&c, &s];
                while pos[0] < c.len() || pos[1] < s.len() {
                    for d in 0..2 {
                        if pos[d] >= data[d].len() {
                            continue;
                        }
                        let dir = if d == 0 {
                            Dir::ClientToServer
                        } else {
                            Dir::ServerToClient
                        };
                        let mut e = (pos[d] + piece).min(data[d].len());
                        if let Some(&(hf, ht)) = holes[d].iter().find(|h| h.1 > pos[d]) {
                            if hf <= pos[d] {
                                let ht = ht.max(pos[d]);
                                conn.stream_event(
                                    dir,
                                    StreamEvent::Gap {
                                        offset: pos[d] as u64,
                                        len: (ht - pos[d]) as u64,
                                    },
                                    0,
                                    &keys,
                                    &mut up,
                                );
                                pos[d] = ht;
                                continue;
                            }
                            e = e.min(hf);
                        }
                        conn.stream_event(
                            dir,
                            StreamEvent::Data {
                                offset: pos[d] as u64,
                                bytes: &data[d][pos[d]..e],
                            },
                            0,
                            &keys,
                            &mut up,
                        );
                        pos[d] = e;
                    }
                }
                conn.finish(&keys, &mut up);
                let what = format!("{folder} {sport} round {round} holes {holes:?}");
                assert_eq!(conn.info().failed_records, 0, "{what}");
                assert!(!out.bad_offsets, "{what}");
                for d in 0..2 {
                    for p in &pieces[d] {
                        assert!(
                            full.data[d].windows(p.len()).any(|w| w == &p[..]),
                            "{what}: wrong bytes"
                        );
                    }
                    // the end of the stream is back after the last hole (unless the hole
                    // reached into the last records or the handshake)
                    if let Some(&(_, ht)) = holes[d].last()
                        && ht + 3000 < data[d].len()
                        && conn.info().decrypted
                    {
                        let tail = &full.data[d][full.data[d].len() - 100..];
                        assert!(
                            out.data[d].ends_with(tail),
                            "{what}: not resynchronised in {d}: {:?} len {}",
                            conn.info().losses,
                            data[d].len()
                        );
                    }
                }
            }
        }
    }
}
