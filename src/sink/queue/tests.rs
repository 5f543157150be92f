use super::*;
use std::io::{Seek, SeekFrom, Write as _};

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("rtmpsniff-queue-{}-{name}", std::process::id()))
}

#[test]
fn writes_land_in_order_at_their_offsets_across_reopens() {
    let path = temp("order");
    let _ = std::fs::remove_file(&path);
    let mut q = WriteQueue::new().unwrap();
    let mut f = q.open(File::create(&path).unwrap(), 0).unwrap();
    let mut expect = Vec::new();
    for i in 0..2000u32 {
        let head = Bytes::from(vec![(i % 251) as u8; (i % 97) as usize]);
        let body = Bytes::from(vec![(i % 13) as u8; (i * 31 % 5000) as usize]);
        let tail = Bytes::copy_from_slice(&i.to_be_bytes());
        for p in [&head, &body, &tail] {
            expect.extend_from_slice(p);
        }
        f.write_parts(vec![head, body, tail]).unwrap();
        if i == 1000 {
            // Closed for the open-file limit and opened again: another descriptor, whose
            // own position is not where the writes go.
            let len = f.seek(SeekFrom::End(0)).unwrap();
            drop(f);
            let again = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f = q.open(again, len).unwrap();
        }
    }
    // A patch near the start, as `FlvWriter::finish` makes.
    f.seek(SeekFrom::Start(3)).unwrap();
    f.write_all(b"PATCH").unwrap();
    expect[3..8].copy_from_slice(b"PATCH");
    f.flush().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), expect);
    drop(f);
    q.finish().unwrap();
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_failed_write_is_reported_and_stops_the_writes_after_it() {
    // A descriptor opened read-only: every write to it fails.
    let path = temp("ro");
    std::fs::write(&path, b"x").unwrap();
    let mut q = WriteQueue::new().unwrap();
    let mut f = q.open(File::open(&path).unwrap(), 1).unwrap();
    f.write_parts(vec![Bytes::from_static(b"abc")]).unwrap();
    assert!(f.flush().is_err());
    assert!(f.write_parts(vec![Bytes::from_static(b"def")]).is_err());
    drop(f);
    assert!(q.finish().is_err());
    assert_eq!(std::fs::read(&path).unwrap(), b"x");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn the_bytes_in_flight_stay_within_the_budget() {
    let path = temp("budget");
    let _ = std::fs::remove_file(&path);
    let mut q = WriteQueue::new().unwrap();
    let mut f = q.open(File::create(&path).unwrap(), 0).unwrap();
    let body = Bytes::from(vec![7u8; 3 << 20]);
    let mut peak = 0;
    for _ in 0..20 {
        f.write_parts(vec![body.clone()]).unwrap();
        peak = peak.max(q.shared.lock().in_flight);
    }
    assert!(peak <= WriteQueue::BUDGET, "{peak} bytes in flight");
    // One write larger than the budget still goes (alone).
    let big = Bytes::from(vec![1u8; WriteQueue::BUDGET + 1]);
    f.write_parts(vec![big]).unwrap();
    f.flush().unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        20 * (3 << 20) + WriteQueue::BUDGET as u64 + 1
    );
    drop(f);
    q.finish().unwrap();
    let _ = std::fs::remove_file(&path);
}
