use super::*;
use proptest::prelude::*;

fn read_all(data: &[u8], pieces: &[usize]) -> Vec<Message> {
    let mut r = ChunkReader::new(0, DEFAULT_CHUNK_SIZE, Limits::default());
    let mut out = Vec::new();
    let mut at = 0;
    for &p in pieces {
        let end = (at + p).min(data.len());
        r.push(&data[at..end], 0, &mut out).unwrap();
        at = end;
    }
    r.push(&data[at..], 0, &mut out).unwrap();
    r.finish(0, &mut out).unwrap();
    out
}

fn simple(m: &[Message]) -> Vec<(u32, u32, u8, u32, Vec<u8>)> {
    m.iter()
        .map(|m| (m.csid, m.msid, m.type_id, m.timestamp, m.body.to_vec()))
        .collect()
}

#[test]
fn fmt0_single_chunk() {
    let mut w = ChunkWriter::new(128);
    let mut b = Vec::new();
    w.write(3, 1, 20, 1000, b"hello", &mut b);
    let m = read_all(&b, &[]);
    assert_eq!(simple(&m), vec![(3, 1, 20, 1000, b"hello".to_vec())]);
}

#[test]
fn deltas_and_fmt3_new_message_reapply_delta() {
    let mut w = ChunkWriter::new(128);
    let mut b = Vec::new();
    w.write(4, 1, 9, 0, b"a", &mut b); // fmt 0
    w.write(4, 1, 9, 40, b"b", &mut b); // fmt 2, delta 40
    w.write(4, 1, 9, 80, b"c", &mut b); // fmt 3, same delta
    w.write(4, 1, 9, 100, b"dd", &mut b); // fmt 1
    assert_eq!(b[b.len() - 2 - 8], 0x44); // fmt 1 on csid 4
    let ts: Vec<u32> = read_all(&b, &[]).iter().map(|m| m.timestamp).collect();
    assert_eq!(ts, vec![0, 40, 80, 100]);
}

#[test]
fn fmt3_after_fmt0_uses_its_timestamp_as_delta() {
    // As in the specification (and ffmpeg's writer): T, then a fmt-3 message at 2T.
    let b = [
        vec![0x04, 0, 0, 40, 0, 0, 1, 9, 1, 0, 0, 0, b'a'],
        vec![0xc4, b'b'],
    ]
    .concat();
    let ts: Vec<u32> = read_all(&b, &[]).iter().map(|m| m.timestamp).collect();
    assert_eq!(ts, vec![40, 80]);
}

#[test]
fn interleaved_chunk_streams() {
    let mut b = Vec::new();
    // Two 200-byte messages on csids 4 and 6, chunks interleaved at size 128.
    let a = vec![1u8; 200];
    let v = vec![2u8; 200];
    b.extend_from_slice(&[0x04, 0, 0, 0, 0, 0, 200, 8, 1, 0, 0, 0]);
    b.extend_from_slice(&a[..128]);
    b.extend_from_slice(&[0x06, 0, 0, 0, 0, 0, 200, 9, 1, 0, 0, 0]);
    b.extend_from_slice(&v[..128]);
    b.push(0xc4);
    b.extend_from_slice(&a[128..]);
    b.push(0xc6);
    b.extend_from_slice(&v[128..]);
    let m = read_all(&b, &[]);
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].body.to_vec(), a);
    assert_eq!(m[1].body.to_vec(), v);
}

#[test]
fn set_chunk_size_applies_to_following_chunks() {
    let mut w = ChunkWriter::new(128);
    let mut b = Vec::new();
    w.set_chunk_size(4096, &mut b);
    let body = vec![7u8; 3000];
    w.write(6, 1, 9, 0, &body, &mut b);
    let m = read_all(&b, &[]);
    assert_eq!(m.len(), 2);
    assert_eq!(m[1].body.len(), 3000);
}

#[test]
fn extended_timestamps_both_fmt3_conventions() {
    for fmt3_ext in [true, false] {
        let mut w = ChunkWriter::new(128);
        w.fmt3_ext = fmt3_ext;
        let mut b = Vec::new();
        let body: Vec<u8> = (0..300).map(|i| i as u8).collect();
        w.write(4, 1, 9, 0x0100_0000, &body, &mut b);
        w.write(4, 1, 9, 0x0100_0000 + 33, &body, &mut b);
        w.write(4, 1, 9, 0x0200_0000, &body, &mut b); // extended delta on fmt 2
        let m = read_all(&b, &[]);
        assert_eq!(m.len(), 3, "fmt3_ext={fmt3_ext}");
        assert!(m.iter().all(|m| m.body.to_vec() == body));
        let ts: Vec<u32> = m.iter().map(|m| m.timestamp).collect();
        assert_eq!(ts, vec![0x0100_0000, 0x0100_0021, 0x0200_0000]);
    }
}

#[test]
fn csid_ranges() {
    let mut w = ChunkWriter::new(128);
    let mut b = Vec::new();
    w.set_chunk_size(64, &mut b);
    for csid in [3, 63, 64, 319, 320, 65599] {
        w.write(csid, 1, 8, 5, &[csid as u8; 100], &mut b);
    }
    let m = read_all(&b, &[]);
    let ids: Vec<u32> = m.iter().skip(1).map(|m| m.csid).collect();
    assert_eq!(ids, vec![3, 63, 64, 319, 320, 65599]);
    assert!(m.iter().skip(1).all(|m| m.body.len() == 100));
}

#[test]
fn abort_drops_the_partial() {
    let mut b = vec![0x04, 0, 0, 0, 0, 1, 0, 9, 1, 0, 0, 0];
    b.extend_from_slice(&[0u8; 128]);
    // Abort csid 4 on csid 2.
    b.extend_from_slice(&[0x02, 0, 0, 0, 0, 0, 4, 2, 0, 0, 0, 0, 0, 0, 0, 4]);
    let mut w = ChunkWriter::new(128);
    w.write(4, 1, 8, 10, b"next", &mut b);
    let m = read_all(&b, &[]);
    assert_eq!(m.len(), 2);
    assert_eq!(m[1].body.as_ref(), b"next");
}

#[test]
fn hostile_headers_error_not_panic() {
    let mut r = ChunkReader::new(0, 128, Limits::default());
    let mut out = Vec::new();
    assert!(matches!(
        r.push(&[0x45, 0, 0, 0, 0, 0, 1, 9], 0, &mut out),
        Err(ChunkError::NoPreviousHeader { csid: 5, .. })
    ));
    let limits = Limits {
        message_bytes: 1000,
        ..Limits::default()
    };
    let mut r = ChunkReader::new(0, 128, limits);
    assert!(
        r.push(
            &[0x04, 0, 0, 0, 0xff, 0xff, 0xff, 9, 1, 0, 0, 0],
            0,
            &mut out
        )
        .is_err()
    );
}

#[test]
fn huge_chunk_size_does_not_allocate() {
    let mut w = ChunkWriter::new(128);
    let mut b = Vec::new();
    w.set_chunk_size(MAX_CHUNK_SIZE, &mut b);
    w.write(4, 1, 9, 0, &[1u8; 10], &mut b);
    let m = read_all(&b, &[]);
    assert_eq!(m[1].body.len(), 10);
}

proptest! {
    #[test]
    fn byte_by_byte_equals_whole(
        sizes in proptest::collection::vec(0usize..600, 1..12),
        chunk in prop_oneof![Just(1u32), Just(7), Just(128), Just(4096)],
        pieces in proptest::collection::vec(1usize..50, 0..200),
        fmt3_ext in any::<bool>(),
    ) {
        let mut w = ChunkWriter::new(128);
        w.fmt3_ext = fmt3_ext;
        let mut b = Vec::new();
        w.set_chunk_size(chunk, &mut b);
        for (i, s) in sizes.iter().enumerate() {
            let body: Vec<u8> = (0..*s).map(|k| (k + i) as u8).collect();
            let csid = 4 + (i as u32 % 3) * 100;
            w.write(csid, 1, if i % 2 == 0 { 8 } else { 9 }, 0x00ff_fff0 + 10 * i as u32, &body, &mut b);
        }
        let whole = read_all(&b, &[]);
        let ones = read_all(&b, &vec![1; b.len()]);
        let random = read_all(&b, &pieces);
        prop_assert_eq!(whole.len(), sizes.len() + 1);
        prop_assert_eq!(simple(&whole), simple(&ones));
        prop_assert_eq!(simple(&whole), simple(&random));
    }

    #[test]
    fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let mut r = ChunkReader::new(0, 128, Limits::default());
        let mut out = Vec::new();
        let _ = r.push(&data, 0, &mut out);
    }
}

#[test]
fn after_a_lock_on_mp3_under_fmt2_and_fmt3_headers_opens_its_chunk_stream() {
    // ffmpeg's MP3 of one length goes under fmt-2 and fmt-3 headers only: a reader resumed
    // after the chunk stream's fmt-0 or fmt-1 header takes the frame's length and the audio
    // type from the frame header. Other bodies under such headers are still errors.
    let frame = |fill: u8| {
        let mut a = vec![0x2e, 0xff, 0xfb, 0x52, 0xc4];
        a.resize(210, fill);
        a
    };
    let mut b = vec![0x84, 0, 0, 26];
    b.extend_from_slice(&frame(1));
    b.push(0xc4);
    b.extend_from_slice(&frame(2));
    let mut r = ChunkReader::resumed(0, 4096, Limits::default());
    let mut out = Vec::new();
    r.push(&b, 0, &mut out).unwrap();
    assert_eq!(out.len(), 2);
    for (m, fill) in out.iter().zip([1, 2]) {
        assert_eq!((m.csid, m.type_id), (4, types::AUDIO));
        assert_eq!(&m.body[..], &frame(fill)[..]);
        assert!(m.base != TimeBase::Exact);
    }
    // Not resumed, or not MP3: no previous header.
    let mut r = ChunkReader::new(0, 4096, Limits::default());
    assert!(r.push(&b, 0, &mut Vec::new()).is_err());
    let mut aac = vec![0x84, 0, 0, 26, 0xaf, 1];
    aac.resize(200, 0);
    let mut r = ChunkReader::resumed(0, 4096, Limits::default());
    assert!(r.push(&aac, 0, &mut Vec::new()).is_err());
}

#[test]
fn after_a_gap_aac_under_a_header_whose_length_the_gap_took_is_read_to_where_the_next_begins() {
    // AAC frames change length; a sender repeats a length under fmt-2 and fmt-3 headers. A
    // gap took the header that last set it (seed 5's publish at 4469 ms): the next frame's
    // length is where the next chunk header is, under a fmt-1 header or again a fmt-3 one.
    let aac = |len: usize, fill: u8| {
        let mut a = vec![0xaf, 1];
        a.resize(len, fill);
        a
    };
    let video = |len: usize, fill: u8| {
        let mut v = vec![0x27, 1, 0, 0, 0];
        v.resize(len, fill);
        v
    };
    // The frame after the gap at 47 ms comes under a fmt-2 header, at 46 ms under fmt 3.
    for after in [47u32, 46] {
        let mut w = ChunkWriter::new(4096);
        let mut b = Vec::new();
        w.write(4, 1, 8, 0, &aac(185, 1), &mut b);
        w.write(6, 1, 9, 0, &video(300, 2), &mut b);
        let lost_from = b.len();
        w.write(4, 1, 8, 23, &aac(187, 3), &mut b);
        let resume = b.len();
        let sent = [
            (6, 40, video(500, 4)),
            (4, after, aac(187, 5)),
            (4, after + 23, aac(187, 6)),
            (4, after + 46, aac(193, 7)),
            (6, 80, video(400, 8)),
        ];
        for (csid, ts, body) in &sent {
            let t = if *csid == 4 { 8 } else { 9 };
            w.write(*csid, 1, t, *ts, body, &mut b);
        }
        let fmt = b[resume + 8 + 500] >> 6;
        assert_eq!(fmt, if after == 47 { 2 } else { 3 });
        let mut r = ChunkReader::new(0, 4096, Limits::default());
        let mut out = Vec::new();
        r.push(&b[..lost_from], 0, &mut out).unwrap();
        let mut r = r.resume_at(resume as u64, 4096);
        out.clear();
        r.push(&b[resume..], 0, &mut out).unwrap();
        r.finish(0, &mut out).unwrap();
        let got: Vec<&[u8]> = out.iter().map(|m| &m.body[..]).collect();
        let want: Vec<&[u8]> = sent.iter().map(|s| &s.2[..]).collect();
        assert_eq!(got, want, "fmt {fmt}");
        assert_eq!(r.stats.aac_lengths_found, 1);
        // A gap right after it: the bytes here decide, and the frame is not lost with them.
        let next = resume + 8 + 500 + [4, 1][(after == 46) as usize] + 187;
        let mut r = ChunkReader::new(0, 4096, Limits::default());
        r.push(&b[..lost_from], 0, &mut Vec::new()).unwrap();
        let mut r = r.resume_at(resume as u64, 4096);
        out.clear();
        let next_header = [4, 1][(after == 46) as usize];
        r.push(&b[resume..next + next_header], 0, &mut out).unwrap();
        assert_eq!(out.len(), 1, "the frame waits for the bytes after it");
        r.before_gap(0, &mut out);
        let got: Vec<&[u8]> = out.iter().map(|m| &m.body[..]).collect();
        assert_eq!(got, want[..2].to_vec(), "fmt {fmt}");
    }
}
