use super::*;
use crate::decode::Flags;

/// Nothing above TCP.
#[derive(Debug, Default)]
struct Nothing;

impl Held for Nothing {
    fn held_bytes(&self) -> usize {
        0
    }
}

const CLIENT: &str = "10.0.0.1:40000";
const SERVER: &str = "10.0.0.2:1935";

fn seg<'a>(from_client: bool, seq: u32, flags: &str, payload: &'a [u8]) -> Segment<'a> {
    let (c, s) = (CLIENT.parse().unwrap(), SERVER.parse().unwrap());
    let (src, dst) = if from_client { (c, s) } else { (s, c) };
    Segment {
        src,
        dst,
        seq,
        ack: 0,
        flags: Flags {
            syn: flags.contains('S'),
            ack: flags.contains('A'),
            fin: flags.contains('F'),
            rst: flags.contains('R'),
        },
        payload,
        truncated: false,
        tcp: &[],
    }
}

fn key() -> ConnKey {
    ConnKey::new(CLIENT.parse().unwrap(), SERVER.parse().unwrap())
}

/// A segment through the table as the pipeline puts it: restart, admission, its flags. What
/// the table closed (`true` for the connection itself when the segment ended it), or `None`
/// when the segment was not admitted.
fn put(t: &mut Table<Nothing>, s: &Segment<'_>, ck: Checksum, frame: u64) -> Option<Vec<u64>> {
    let mut closed: Vec<u64> = t
        .restarted(key(), s, ck)
        .into_iter()
        .map(|c| c.id.0)
        .collect();
    let roles = || Some((CLIENT.parse().unwrap(), SERVER.parse().unwrap()));
    let a = t.admit(key(), s, ck, roles, frame as f64, frame)?;
    let id = a.conn.id.0;
    a.conn
        .ensure_streams(s, a.dir, &Limits::default(), || Nothing);
    if let Some(st) = a.conn.streams.as_mut() {
        let r = &mut st.reasm[a.dir.index()];
        if s.flags.syn {
            r.syn(s.seq);
        }
        r.segment(s.seq, s.payload, s.flags.fin, frame, &mut |_| {});
    }
    let over = a.touched(s);
    let after = t.after_touch(key(), over);
    closed.extend(after.iter().map(|c| c.id.0));
    assert!(!over || closed.contains(&id));
    Some(closed)
}

/// A connection opened with `ck` checksums on every segment and carrying a few segments of
/// data each way.
fn opened(ck: Checksum) -> Table<Nothing> {
    let mut t = Table::new(Limits::default(), 120.0);
    assert_eq!(put(&mut t, &seg(true, 100, "S", b""), ck, 1), Some(vec![]));
    assert_eq!(
        put(&mut t, &seg(false, 500, "SA", b""), ck, 2),
        Some(vec![])
    );
    for i in 0..10 {
        let p = [i as u8; 10];
        assert!(
            put(
                &mut t,
                &seg(true, 101 + 10 * i, "A", &p),
                ck,
                3 + 2 * i as u64
            )
            .is_some()
        );
        assert!(
            put(
                &mut t,
                &seg(false, 501 + 10 * i, "A", &p),
                ck,
                4 + 2 * i as u64
            )
            .is_some()
        );
    }
    assert_eq!(t.len(), 1);
    t
}

#[test]
fn the_rule_for_a_wrong_checksum() {
    let c = |good, wrong| Checksums { good, wrong };
    let none = Checksums::default();
    // Only a wrong checksum can be corruption.
    for ck in [Checksum::Right, Checksum::Offloaded, Checksum::Unknown] {
        assert!(!corrupted(ck, c(100, 0), c(100, 0), c(100, 0)));
    }
    // No evidence anywhere: believed (a capture whose every checksum is wrong starts so).
    assert!(!corrupted(Checksum::Wrong, none, none, none));
    // Checkable where good ones are the majority, even at one in three corrupted.
    assert!(corrupted(Checksum::Wrong, c(20, 10), none, none));
    assert!(!corrupted(Checksum::Wrong, c(10, 20), none, none));
    // The direction's own tally, once it has enough, wins over the sender's and the run's.
    assert!(!corrupted(Checksum::Wrong, c(0, 8), c(1000, 0), c(1000, 0)));
    assert!(corrupted(Checksum::Wrong, c(8, 0), c(0, 1000), c(0, 1000)));
    // A new direction is judged by its sender's, then by the run's.
    assert!(corrupted(Checksum::Wrong, none, c(9, 0), c(0, 1000)));
    assert!(!corrupted(Checksum::Wrong, none, c(0, 9), c(1000, 0)));
    assert!(corrupted(Checksum::Wrong, c(1, 0), c(1, 0), c(30, 1)));
    // Little evidence: what there is, all together.
    assert!(corrupted(Checksum::Wrong, none, none, c(1, 0)));
    assert!(!corrupted(Checksum::Wrong, c(1, 1), none, none));
}

#[test]
fn a_corrupted_segment_neither_ends_nor_restarts_a_connection() {
    for good in [Checksum::Right, Checksum::Offloaded] {
        let mut t = opened(good);
        // A corrupted RST, FIN, and SYN (a new ISN on the 4-tuple would restart it).
        for (i, flags) in ["AR", "R", "AF", "S"].iter().enumerate() {
            let s = seg(true, 7, flags, b"");
            assert_eq!(
                put(&mut t, &s, Checksum::Wrong, 100 + i as u64),
                None,
                "{flags}"
            );
            assert_eq!(t.len(), 1, "{good:?} {flags}");
        }
        let c = t.conns_mut().next().unwrap();
        assert_eq!(c.bad_checksums, 4);
        assert!(!c.rst && c.fin == [false; 2]);
        assert_eq!(c.last_frame, 22, "a corrupted segment is not activity");
        assert_eq!(t.stats.bad_checksums, 4);
        // The same RST with a believable checksum ends it.
        assert_eq!(
            put(&mut t, &seg(true, 201, "AR", b""), good, 200),
            Some(vec![0])
        );
        assert!(t.is_empty());
    }
}

#[test]
fn a_corrupted_segment_does_not_move_the_sequence_space() {
    let mut t = opened(Checksum::Right);
    // A bit flipped in the sequence number: ahead of the stream by 2^29.
    let s = seg(true, 201 + (1 << 29), "A", b"xxxx");
    assert_eq!(put(&mut t, &s, Checksum::Wrong, 50), None);
    let c = t.conns_mut().next().unwrap();
    let r = &c.streams.as_ref().unwrap().reasm[0];
    assert_eq!(r.buffered_bytes(), 0, "nothing held beyond a hole");
    assert_eq!(r.stats.segments, 10);
}

#[test]
fn a_corrupted_segment_opens_no_connection() {
    let mut t = opened(Checksum::Right);
    // A flipped port makes another 4-tuple: not a connection, not counted as one.
    let mut s = seg(true, 300, "S", b"");
    s.src = "10.0.0.1:40001".parse().unwrap();
    let k = ConnKey::new(s.src, s.dst);
    let roles = || Some((s.src, s.dst));
    assert!(t.admit(k, &s, Checksum::Wrong, roles, 60.0, 60).is_none());
    assert!(t.corrupted_new(&s, Checksum::Wrong));
    assert_eq!((t.len(), t.stats.connections), (1, 1));
    // The first segment of the first connection of a run has nothing to be judged by: a
    // SYN-ACK corrupted right after a good SYN is dropped (the run's evidence), its
    // retransmission opens the server's side.
    let mut t = Table::<Nothing>::new(Limits::default(), 120.0);
    assert!(put(&mut t, &seg(true, 100, "S", b""), Checksum::Offloaded, 1).is_some());
    assert_eq!(
        put(&mut t, &seg(false, 501, "SA", b""), Checksum::Wrong, 2),
        None
    );
    assert!(put(&mut t, &seg(false, 500, "SA", b""), Checksum::Right, 3).is_some());
    assert!(t.conns_mut().next().unwrap().synack);
}

#[test]
fn where_every_checksum_is_wrong_nothing_is_dropped() {
    // Offloading that leaves something else than the pseudo-header's sum (or a tool that
    // writes no checksum): every segment counts, and a RST ends the connection as before.
    let mut t = opened(Checksum::Wrong);
    assert_eq!(t.stats.bad_checksums, 0);
    let c = t.conns_mut().next().unwrap();
    assert_eq!(
        c.streams.as_ref().unwrap().reasm[0].stats.delivered_bytes,
        100
    );
    assert_eq!(
        put(&mut t, &seg(true, 201, "AR", b""), Checksum::Wrong, 200),
        Some(vec![0])
    );
    // One side offloaded, the other right (a capture on one of the hosts): each direction
    // by its own sender.
    let mut t = Table::<Nothing>::new(Limits::default(), 120.0);
    assert!(put(&mut t, &seg(true, 100, "S", b""), Checksum::Wrong, 1).is_some());
    assert!(put(&mut t, &seg(false, 500, "SA", b""), Checksum::Right, 2).is_some());
    for i in 0..20u32 {
        let p = [1u8; 10];
        let f = 3 + 2 * i as u64;
        assert!(
            put(
                &mut t,
                &seg(true, 101 + 10 * i, "A", &p),
                Checksum::Wrong,
                f
            )
            .is_some()
        );
        assert!(
            put(
                &mut t,
                &seg(false, 501 + 10 * i, "A", &p),
                Checksum::Right,
                f + 1
            )
            .is_some()
        );
    }
    assert_eq!(t.stats.bad_checksums, 0);
    // A second connection from the same client: its SYN is judged by the client's tally.
    let mut s = seg(true, 9000, "S", b"");
    s.src = "10.0.0.1:40002".parse().unwrap();
    assert!(!t.corrupted_new(&s, Checksum::Wrong));
}
