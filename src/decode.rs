//! From a captured frame to a TCP segment: link layers, tunnels, IPv4/IPv6, TCP.
//!
//! Link and tunnel headers etherparse does not know (Linux cooked v2, BSD null, GTP-U) are
//! peeled here; IP and TCP are sliced by etherparse's lax path, so a frame cut short by the
//! snap length still yields what it holds.

use std::net::{IpAddr, SocketAddr};

use crate::capture::linktype;

use etherparse::{
    EtherType, Ethernet2Slice, IpNumber, LaxIpSlice, LaxMacsecPayloadSlice, LaxMacsecSlice,
    SingleVlanSlice, TcpSlice, UdpSlice,
};

/// TCP flags the reassembler cares about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
}

/// A TCP segment borrowed from its frame.
#[derive(Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub flags: Flags,
    /// The payload bytes present in the frame.
    pub payload: &'a [u8],
    /// True when the frame was cut before the end of the TCP payload.
    pub truncated: bool,
    /// The whole TCP segment (header and payload), for the checksum.
    pub tcp: &'a [u8],
}

/// What a segment's TCP checksum says about its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksum {
    /// It verifies.
    Right,
    /// The field holds the sum of the pseudo-header alone: the sender left the checksum to
    /// its network card (offloading: Linux, the BSDs and Windows seed the field so) and the
    /// capture saw the segment before the card. It says nothing about the bytes.
    Offloaded,
    /// Neither: the segment was corrupted after its checksum was made, or its sender put
    /// something else there (a capture whose every checksum is wrong).
    Wrong,
    /// The frame was cut short: the checksum cannot be checked.
    Unknown,
}

impl Segment<'_> {
    /// Whether the TCP checksum is right; `None` when the frame was cut short.
    pub fn checksum_ok(&self) -> Option<bool> {
        match self.checksum() {
            Checksum::Right => Some(true),
            Checksum::Offloaded | Checksum::Wrong => Some(false),
            Checksum::Unknown => None,
        }
    }

    /// What the TCP checksum says: right, left to offloading, wrong, or not checkable.
    pub fn checksum(&self) -> Checksum {
        if self.truncated || self.tcp.len() < 20 {
            return Checksum::Unknown;
        }
        let mut pseudo: u64 = match (self.src.ip(), self.dst.ip()) {
            (IpAddr::V4(a), IpAddr::V4(b)) => add_bytes(&a.octets()) + add_bytes(&b.octets()),
            (IpAddr::V6(a), IpAddr::V6(b)) => add_bytes(&a.octets()) + add_bytes(&b.octets()),
            _ => return Checksum::Unknown,
        };
        pseudo += 6 + self.tcp.len() as u64;
        if fold(pseudo + add_bytes(self.tcp)) == 0xffff {
            return Checksum::Right;
        }
        let field = u16::from_be_bytes([self.tcp[16], self.tcp[17]]) as u64;
        if field == fold(pseudo) {
            Checksum::Offloaded
        } else {
            Checksum::Wrong
        }
    }
}

/// Ones'-complement sum of big-endian 16-bit words (odd tail padded with zero), folded to 16
/// bits. Every payload byte goes through here, so it is written for speed: little-endian
/// 32-bit words are added in 64-bit lanes (which the compiler vectorises: four lanes with
/// SSE2, eight with AVX2 where the processor has it), and the folded sum is byte-swapped at
/// the end, which gives the big-endian sum (RFC 1071, 2(B)).
fn add_bytes(b: &[u8]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor has AVX2 (checked just above).
        return unsafe { add_bytes_avx2(b) };
    }
    sum_in_lanes::<4>(b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn add_bytes_avx2(b: &[u8]) -> u64 {
    sum_in_lanes::<8>(b)
}

#[inline(always)]
fn sum_in_lanes<const LANES: usize>(b: &[u8]) -> u64 {
    let mut lanes = [0u64; LANES];
    let mut blocks = b.chunks_exact(4 * LANES);
    for block in &mut blocks {
        for (i, lane) in lanes.iter_mut().enumerate() {
            let w = [
                block[4 * i],
                block[4 * i + 1],
                block[4 * i + 2],
                block[4 * i + 3],
            ];
            *lane += u32::from_le_bytes(w) as u64;
        }
    }
    // Each lane grows by less than 2^32 per block: no overflow for any slice.
    let mut sum: u64 = lanes.iter().map(|&l| fold(l)).sum();
    let mut words = blocks.remainder().chunks_exact(2);
    for w in &mut words {
        sum += u16::from_le_bytes([w[0], w[1]]) as u64;
    }
    if let [last] = words.remainder() {
        sum += *last as u64;
    }
    (fold(sum) as u16).swap_bytes() as u64
}

/// A ones'-complement sum folded to 16 bits (end-around carries added back in).
fn fold(mut sum: u64) -> u64 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

/// Why a frame gave no segment (only counted, never fatal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    NotIp,
    NotTcp,
    Fragment,
    Malformed,
}

const GTP_U_PORT: u16 = 2152;
const VXLAN_PORT: u16 = 4789;
const MAX_TUNNEL_DEPTH: usize = 4;

/// Decode one captured frame of link type `linktype`.
pub fn decode(linktype: i32, frame: &[u8]) -> Result<Segment<'_>, Skip> {
    use linktype::*;
    match linktype {
        ETHERNET => from_ethernet(frame, 0),
        NULL | LOOP => {
            let fam = frame.get(..4).ok_or(Skip::Malformed)?;
            // The family is in the writer's byte order (NULL) or big-endian (LOOP); IPv4 is 2
            // everywhere, IPv6 is 10 (Linux), 24, 28 or 30 (BSDs, macOS).
            let le = u32::from_le_bytes([fam[0], fam[1], fam[2], fam[3]]);
            let be = u32::from_be_bytes([fam[0], fam[1], fam[2], fam[3]]);
            let fam = if le < 256 { le } else { be };
            match fam {
                2 | 10 | 24 | 28 | 30 => from_ip(&frame[4..], 0),
                _ => Err(Skip::NotIp),
            }
        }
        RAW | RAW_OPENBSD | RAW_BSDOS | IPV4 | IPV6 => from_ip(frame, 0),
        LINUX_SLL => {
            let proto = frame.get(14..16).ok_or(Skip::Malformed)?;
            from_ether_type(u16::from_be_bytes([proto[0], proto[1]]), &frame[16..], 0)
        }
        LINUX_SLL2 => {
            let proto = frame.get(0..2).ok_or(Skip::Malformed)?;
            let rest = frame.get(20..).ok_or(Skip::Malformed)?;
            from_ether_type(u16::from_be_bytes([proto[0], proto[1]]), rest, 0)
        }
        _ => Err(Skip::NotIp),
    }
}

fn from_ethernet(frame: &[u8], depth: usize) -> Result<Segment<'_>, Skip> {
    let eth = Ethernet2Slice::from_slice_without_fcs(frame).map_err(|_| Skip::Malformed)?;
    let p = eth.payload();
    from_link_payload(p.ether_type, p.payload, depth)
}

fn from_ether_type(ether_type: u16, payload: &[u8], depth: usize) -> Result<Segment<'_>, Skip> {
    from_link_payload(EtherType(ether_type), payload, depth)
}

/// Tags etherparse's lax slicing goes through at most (`LaxSlicedPacket::LINK_EXTS_CAP`).
const MAX_LINK_TAGS: usize = 3;

/// What follows a link header: VLAN and MACsec tags are peeled, as etherparse's lax slicing
/// does, and the IP packet inside decoded. Taking the slices one by one instead of building a
/// whole `LaxSlicedPacket` (link extensions, transport) was a tenth of the run less.
fn from_link_payload(
    mut ether_type: EtherType,
    mut payload: &[u8],
    depth: usize,
) -> Result<Segment<'_>, Skip> {
    for _ in 0..=MAX_LINK_TAGS {
        match ether_type {
            EtherType::IPV4 | EtherType::IPV6 => {
                // As etherparse's lax slicing: an IP header that cannot be read after a link
                // header leaves a frame without an IP layer.
                let ip = LaxIpSlice::from_slice(payload).map_err(|_| Skip::NotIp)?.0;
                return from_lax_ip(ip, depth);
            }
            EtherType::VLAN_TAGGED_FRAME
            | EtherType::PROVIDER_BRIDGING
            | EtherType::VLAN_DOUBLE_TAGGED_FRAME => {
                let v = SingleVlanSlice::from_slice(payload).map_err(|_| Skip::NotIp)?;
                let inner = v.payload();
                (ether_type, payload) = (inner.ether_type, inner.payload);
            }
            EtherType::MACSEC => {
                let m = LaxMacsecSlice::from_slice(payload).map_err(|_| Skip::NotIp)?;
                match m.payload {
                    LaxMacsecPayloadSlice::Unmodified(inner) => {
                        (ether_type, payload) = (inner.ether_type, inner.payload);
                    }
                    // Encrypted or modified: nothing to read.
                    _ => return Err(Skip::NotIp),
                }
            }
            _ => return Err(Skip::NotIp),
        }
    }
    Err(Skip::NotIp)
}

fn from_ip(payload: &[u8], depth: usize) -> Result<Segment<'_>, Skip> {
    let ip = LaxIpSlice::from_slice(payload)
        .map_err(|_| Skip::Malformed)?
        .0;
    from_lax_ip(ip, depth)
}

fn from_lax_ip(ip: LaxIpSlice<'_>, depth: usize) -> Result<Segment<'_>, Skip> {
    let (src, dst, ip_payload) = match ip {
        LaxIpSlice::Ipv4(v4) => {
            let h = v4.header();
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                v4.payload().clone(),
            )
        }
        LaxIpSlice::Ipv6(v6) => {
            let h = v6.header();
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                v6.payload().clone(),
            )
        }
    };
    if ip_payload.fragmented {
        return Err(Skip::Fragment);
    }
    match ip_payload.ip_number {
        IpNumber::TCP => tcp(src, dst, ip_payload.payload, ip_payload.incomplete),
        IpNumber::UDP if depth < MAX_TUNNEL_DEPTH => {
            let udp = UdpSlice::from_slice_lax(ip_payload.payload).map_err(|_| Skip::NotTcp)?;
            let (sp, dp) = (udp.source_port(), udp.destination_port());
            if sp == GTP_U_PORT || dp == GTP_U_PORT {
                let inner = gtp_u_payload(udp.payload()).ok_or(Skip::Malformed)?;
                from_ip(inner, depth + 1)
            } else if sp == VXLAN_PORT || dp == VXLAN_PORT {
                let inner = udp.payload().get(8..).ok_or(Skip::Malformed)?;
                from_ethernet(inner, depth + 1)
            } else {
                Err(Skip::NotTcp)
            }
        }
        IpNumber::GRE if depth < MAX_TUNNEL_DEPTH => {
            let (ether_type, inner) = gre_payload(ip_payload.payload).ok_or(Skip::Malformed)?;
            from_ether_type(ether_type, inner, depth + 1)
        }
        _ => Err(Skip::NotTcp),
    }
}

fn tcp<'a>(
    src: IpAddr,
    dst: IpAddr,
    bytes: &'a [u8],
    ip_incomplete: bool,
) -> Result<Segment<'a>, Skip> {
    let t = TcpSlice::from_slice(bytes).map_err(|_| Skip::Malformed)?;
    Ok(Segment {
        src: SocketAddr::new(src, t.source_port()),
        dst: SocketAddr::new(dst, t.destination_port()),
        seq: t.sequence_number(),
        ack: t.acknowledgment_number(),
        flags: Flags {
            syn: t.syn(),
            ack: t.ack(),
            fin: t.fin(),
            rst: t.rst(),
        },
        payload: t.payload(),
        truncated: ip_incomplete,
        tcp: t.slice(),
    })
}

/// The T-PDU inside a GTP-U (version 1) G-PDU message.
fn gtp_u_payload(b: &[u8]) -> Option<&[u8]> {
    let flags = *b.first()?;
    let msg_type = *b.get(1)?;
    if flags >> 5 != 1 || msg_type != 0xff {
        return None;
    }
    let mut off = 8;
    if flags & 0x07 != 0 {
        // Sequence number, N-PDU number and next-extension-header type.
        off += 4;
        let mut next_ext = *b.get(off - 1)?;
        while next_ext != 0 {
            let len = *b.get(off)? as usize * 4;
            if len == 0 {
                return None;
            }
            next_ext = *b.get(off + len - 1)?;
            off += len;
        }
    }
    b.get(off..)
}

/// The protocol type and payload of a GRE packet (RFC 2784/2890).
fn gre_payload(b: &[u8]) -> Option<(u16, &[u8])> {
    let flags = u16::from_be_bytes([*b.first()?, *b.get(1)?]);
    let proto = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
    if flags & 0x0007 != 0 {
        return None; // only version 0
    }
    let mut off = 4;
    if flags & 0x8000 != 0 {
        off += 4;
    }
    if flags & 0x2000 != 0 {
        off += 4;
    }
    if flags & 0x1000 != 0 {
        off += 4;
    }
    // Transparent Ethernet bridging carries a whole Ethernet frame.
    if proto == 0x6558 {
        let inner = b.get(off..)?;
        let eth = inner.get(12..14)?;
        return Some((u16::from_be_bytes([eth[0], eth[1]]), inner.get(14..)?));
    }
    Some((proto, b.get(off..)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn tcp_packet(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 1935, 1000, 65535)
            .ack(77);
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    #[test]
    fn ethernet_ipv4_tcp() {
        let f = tcp_packet(b"hello");
        let s = decode(linktype::ETHERNET, &f).unwrap();
        assert_eq!(s.src, "10.0.0.1:40000".parse().unwrap());
        assert_eq!(s.dst, "10.0.0.2:1935".parse().unwrap());
        assert_eq!(s.seq, 1000);
        assert_eq!(s.ack, 77);
        assert!(s.flags.ack);
        assert_eq!(s.payload, b"hello");
        assert!(!s.truncated);
        assert_eq!(s.checksum_ok(), Some(true));
        let mut bad = f.clone();
        let n = bad.len();
        bad[n - 1] ^= 0x40;
        assert_eq!(
            decode(linktype::ETHERNET, &bad).unwrap().checksum_ok(),
            Some(false)
        );
        let odd = tcp_packet(b"odd");
        assert_eq!(
            decode(linktype::ETHERNET, &odd).unwrap().checksum_ok(),
            Some(true)
        );
    }

    #[test]
    fn offloaded_checksums_are_told_from_wrong_ones() {
        let f = tcp_packet(b"payload");
        let tcp_at = 14 + 20;
        assert_eq!(
            decode(linktype::ETHERNET, &f).unwrap().checksum(),
            Checksum::Right
        );
        // What a sender that leaves the checksum to its card puts in the field (and a
        // capture on that host sees): the pseudo-header's sum, 10.0.0.1 + 10.0.0.2 + 6 + 27.
        let mut off = f.clone();
        let pseudo: u32 = 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 6 + 20 + 7;
        off[tcp_at + 16..tcp_at + 18].copy_from_slice(&(pseudo as u16).to_be_bytes());
        assert_eq!(
            decode(linktype::ETHERNET, &off).unwrap().checksum(),
            Checksum::Offloaded
        );
        assert_eq!(
            decode(linktype::ETHERNET, &off).unwrap().checksum_ok(),
            Some(false)
        );
        // A bit flipped in the sequence number, the flags or the payload: wrong.
        for at in [tcp_at + 4, tcp_at + 13, f.len() - 1] {
            let mut bad = f.clone();
            bad[at] ^= 0x04;
            assert_eq!(
                decode(linktype::ETHERNET, &bad).unwrap().checksum(),
                Checksum::Wrong
            );
        }
        // Cut short by the snap length: not checkable.
        let cut = &f[..f.len() - 2];
        assert_eq!(
            decode(linktype::ETHERNET, cut).unwrap().checksum(),
            Checksum::Unknown
        );
    }

    proptest::proptest! {
        #[test]
        fn fast_sum_equals_the_textbook_one(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        ) {
            let mut naive: u64 = 0;
            for w in data.chunks(2) {
                naive += (w[0] as u64) << 8 | w.get(1).map_or(0, |&b| b as u64);
            }
            proptest::prop_assert_eq!(add_bytes(&data), fold(naive));
            // Both widths, whichever this processor takes in add_bytes.
            proptest::prop_assert_eq!(sum_in_lanes::<4>(&data), fold(naive));
            proptest::prop_assert_eq!(sum_in_lanes::<8>(&data), fold(naive));
        }
    }

    #[test]
    fn checksums_of_large_segments() {
        // Full and partial 16-byte blocks, odd lengths, a payload of all ones.
        for len in [0, 1, 15, 16, 17, 1460, 1461, 65000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let f = tcp_packet(&payload);
            assert_eq!(
                decode(linktype::ETHERNET, &f).unwrap().checksum_ok(),
                Some(true)
            );
            let f = tcp_packet(&vec![0xff; len]);
            assert_eq!(
                decode(linktype::ETHERNET, &f).unwrap().checksum_ok(),
                Some(true)
            );
        }
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let mut f = tcp_packet(b"");
        f.extend_from_slice(&[0u8; 6]);
        assert_eq!(decode(linktype::ETHERNET, &f).unwrap().payload, b"");
    }

    #[test]
    fn vlan_tags_and_cooked_and_null_and_raw() {
        let f = tcp_packet(b"xy");
        let ip = &f[14..];
        // 802.1ad outer + 802.1Q inner.
        let mut q = f[..12].to_vec();
        q.extend_from_slice(&[0x88, 0xa8, 0, 5, 0x81, 0x00, 0, 7, 0x08, 0x00]);
        q.extend_from_slice(ip);
        assert_eq!(decode(linktype::ETHERNET, &q).unwrap().payload, b"xy");
        // Linux cooked v1.
        let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(ip);
        assert_eq!(decode(linktype::LINUX_SLL, &sll).unwrap().payload, b"xy");
        // Linux cooked v2.
        let mut sll2 = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
        ];
        sll2.extend_from_slice(ip);
        assert_eq!(decode(linktype::LINUX_SLL2, &sll2).unwrap().payload, b"xy");
        // BSD null, little-endian family.
        let mut null = vec![2, 0, 0, 0];
        null.extend_from_slice(ip);
        assert_eq!(decode(linktype::NULL, &null).unwrap().payload, b"xy");
        // BSD loop, big-endian family.
        let mut lo = vec![0, 0, 0, 2];
        lo.extend_from_slice(ip);
        assert_eq!(decode(linktype::LOOP, &lo).unwrap().payload, b"xy");
        assert_eq!(decode(linktype::RAW, ip).unwrap().payload, b"xy");
    }

    #[test]
    fn ipv6() {
        let b = PacketBuilder::ipv6([1; 16], [2; 16], 64).tcp(1935, 5555, 9, 100);
        let mut out = Vec::new();
        b.write(&mut out, b"v6").unwrap();
        let s = decode(linktype::RAW, &out).unwrap();
        assert_eq!(s.payload, b"v6");
        assert_eq!(s.src.port(), 1935);
    }

    #[test]
    fn snaplen_cut_frame_is_marked_truncated() {
        let f = tcp_packet(b"0123456789");
        let s = decode(linktype::ETHERNET, &f[..f.len() - 4]).unwrap();
        assert_eq!(s.payload, b"012345");
        assert!(s.truncated);
    }

    #[test]
    fn gtp_u_tunnel() {
        let inner = tcp_packet(b"in");
        let ip = &inner[14..];
        let mut gtp = vec![0x30, 0xff];
        gtp.extend_from_slice(&(ip.len() as u16).to_be_bytes());
        gtp.extend_from_slice(&[0, 0, 0, 1]);
        gtp.extend_from_slice(ip);
        let b = PacketBuilder::ipv4([1, 1, 1, 1], [2, 2, 2, 2], 64).udp(2152, 2152);
        let mut out = Vec::new();
        b.write(&mut out, &gtp).unwrap();
        assert_eq!(decode(linktype::RAW, &out).unwrap().payload, b"in");
    }

    #[test]
    fn garbage_never_panics() {
        for lt in [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 999] {
            for n in 0..80 {
                let junk: Vec<u8> = (0..n).map(|i| (i * 37 + n) as u8).collect();
                let _ = decode(lt, &junk);
            }
        }
    }
}
