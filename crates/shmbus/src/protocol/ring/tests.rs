//! Unit and property tests of the ring on heap memory.

use super::test_ring::{send, Owned};
use super::*;
use proptest::prelude::*;

fn read(ring: &Ring<'_>, st: &mut SubState) -> Result<(Next, Vec<u8>), String> {
    let mut out = Vec::new();
    let next = ring.try_read(st, &mut |w, len| Ring::copy_payload(w, len, &mut out))?;
    Ok((next, out))
}

proptest! {
    /// Framing: any sequence of sizes (zero and maximum included) read back in order by a
    /// subscriber that keeps up, across many wraps.
    #[test]
    fn messages_round_trip_across_wraps(sizes in proptest::collection::vec(0usize..=112, 1..200)) {
        let o = Owned::new(256, false);
        let ring = o.ring();
        let mut p = ring.attach_publisher(false).unwrap();
        let mut s = ring.join(false);
        for (i, &n) in sizes.iter().enumerate() {
            let msg: Vec<u8> = (0..n).map(|j| (i * 7 + j) as u8).collect();
            prop_assert!(send(&ring, &mut p, &msg));
            let (next, got) = read(&ring, &mut s).unwrap();
            prop_assert_eq!(next, Next::Message);
            prop_assert_eq!(got, msg);
        }
        prop_assert_eq!(read(&ring, &mut s).unwrap().0, Next::Empty);
    }

    /// Lossy: a subscriber that reads only now and then gets every message it can, in
    /// order, and received + lost == sent exactly.
    #[test]
    fn received_plus_lost_is_sent(sizes in proptest::collection::vec(0usize..=112, 1..300),
                                  every in 1usize..20) {
        let o = Owned::new(256, false);
        let ring = o.ring();
        let mut p = ring.attach_publisher(false).unwrap();
        let mut s = ring.join(false);
        let (mut received, mut lost, mut last) = (0u64, 0u64, None);
        let drain = |s: &mut SubState, received: &mut u64, lost: &mut u64, last: &mut Option<u8>| {
            loop {
                match read(&ring, s).unwrap() {
                    (Next::Empty, _) => break,
                    (Next::TooLong(n), _) => panic!("no limit, yet too long: {n}"),
                    (Next::Lagged(n), _) => *lost += n,
                    (Next::Message, got) => {
                        *received += 1;
                        if let Some(&b) = got.first() { *last = Some(b); }
                    }
                }
            }
        };
        for (i, &n) in sizes.iter().enumerate() {
            let msg = vec![i as u8; n];
            send(&ring, &mut p, &msg);
            if i % every == 0 {
                drain(&mut s, &mut received, &mut lost, &mut last);
            }
        }
        drain(&mut s, &mut received, &mut lost, &mut last);
        prop_assert_eq!(received + lost, sizes.len() as u64);
    }

    /// Arbitrary bytes in the ring and control words: errors or messages, never a panic or
    /// an endless loop.
    #[test]
    fn garbage_never_panics(words in proptest::collection::vec(any::<u64>(), 32),
                            tail in 0u64..1024, intent in 0u64..2048, head in 0u64..1024,
                            cursor in 0u64..1024) {
        let o = Owned::new(256, false);
        for (w, v) in o.data.iter().zip(&words) { w.store(*v, Relaxed); }
        let p = &*o.ctl.publisher;
        p.tail.store(tail, Relaxed);
        p.tail_intent.store(intent, Relaxed);
        p.head.store(head, Relaxed);
        let ring = o.ring();
        let mut s = SubState {
            cursor,
            expected: Some(0),
            known_tail: cursor,
            verify: true,
            verify_until: u64::MAX,
        };
        for _ in 0..50 {
            match read(&ring, &mut s) {
                Ok((Next::Empty, _)) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = ring.attach_publisher(false);
    }
}

#[test]
fn backpressure_refuses_to_overwrite_an_active_subscriber() {
    let o = Owned::new(256, true);
    let ring = o.ring();
    let mut p = ring.attach_publisher(false).unwrap();
    let mut s = ring.join(false);
    o.slots[0].cursor.store(s.cursor, Relaxed);
    o.slots[0].state.store(SLOT_ACTIVE, Relaxed);
    let mut sent = 0;
    while send(&ring, &mut p, &[sent as u8; 40]) {
        sent += 1;
    }
    assert_eq!(sent, 4, "four 64-byte records fill a 256-byte ring");
    // Consuming one frees room for one more.
    assert_eq!(read(&ring, &mut s).unwrap(), (Next::Message, vec![0; 40]));
    ring.release(&o.slots[0], s.cursor);
    assert!(send(&ring, &mut p, &[9; 40]));
    assert!(!send(&ring, &mut p, &[9; 40]));
    // Every message arrives, none lost.
    for i in 1..4u8 {
        assert_eq!(read(&ring, &mut s).unwrap(), (Next::Message, vec![i; 40]));
    }
    assert_eq!(read(&ring, &mut s).unwrap(), (Next::Message, vec![9; 40]));
}

#[test]
fn zero_and_max_length_messages_across_the_wrap() {
    let o = Owned::new(256, false);
    let ring = o.ring();
    let mut p = ring.attach_publisher(false).unwrap();
    let mut s = ring.join(false);
    let max = max_message_for(256) as usize;
    for round in 0..10u8 {
        for msg in [vec![], vec![round; max], vec![round; 1], vec![]] {
            assert!(send(&ring, &mut p, &msg));
            assert_eq!(read(&ring, &mut s).unwrap(), (Next::Message, msg));
        }
    }
}

#[test]
fn lapped_subscriber_hears_exact_loss_then_oldest() {
    let o = Owned::new(256, false);
    let ring = o.ring();
    let mut p = ring.attach_publisher(false).unwrap();
    let mut s = ring.join(false);
    for i in 0..10u8 {
        send(&ring, &mut p, &[i; 40]); // 64-byte records: the ring holds 4
    }
    assert_eq!(read(&ring, &mut s).unwrap().0, Next::Lagged(6));
    for i in 6..10u8 {
        assert_eq!(read(&ring, &mut s).unwrap(), (Next::Message, vec![i; 40]));
    }
    assert_eq!(read(&ring, &mut s).unwrap().0, Next::Empty);
}

#[test]
fn too_long_for_the_reader_stays_unread_after_loss_is_reported() {
    let o = Owned::new(256, false);
    let ring = o.ring();
    let mut p = ring.attach_publisher(false).unwrap();
    let mut s = ring.join(false);
    for i in 0..10u8 {
        send(&ring, &mut p, &[i; 40]);
    }
    let limited = |s: &mut SubState, limit| {
        let mut out = Vec::new();
        let next = ring
            .try_read_limited(s, limit, &mut |w, len| Ring::copy_payload(w, len, &mut out))
            .unwrap();
        (next, out)
    };
    // The loss comes first; then the too-long message, as often as asked; then it is
    // read whole with room enough, and nothing was skipped.
    assert_eq!(limited(&mut s, 39).0, Next::Lagged(6));
    assert_eq!(limited(&mut s, 39), (Next::TooLong(40), vec![]));
    assert_eq!(limited(&mut s, 0), (Next::TooLong(40), vec![]));
    assert_eq!(limited(&mut s, 40), (Next::Message, vec![6; 40]));
    assert_eq!(limited(&mut s, 40), (Next::Message, vec![7; 40]));
}

#[test]
fn replay_from_oldest() {
    let o = Owned::new(256, false);
    let ring = o.ring();
    let mut p = ring.attach_publisher(false).unwrap();
    for i in 0..6u8 {
        send(&ring, &mut p, &[i; 40]);
    }
    let mut s = ring.join(true);
    for i in 2..6u8 {
        assert_eq!(read(&ring, &mut s).unwrap(), (Next::Message, vec![i; 40]));
    }
}

#[test]
fn a_publisher_dead_inside_its_commit_does_not_hang_joiners() {
    let o = Owned::new(256, false);
    let ring = o.ring();
    o.ctl.publisher.notify.store(7, Relaxed); // odd for good
    assert_eq!(ring.join(false).cursor, 0);
}

#[test]
fn takeover_drops_a_half_written_record() {
    let o = Owned::new(256, false);
    let ring = o.ring();
    let mut p = ring.attach_publisher(false).unwrap();
    let mut s = ring.join(false);
    send(&ring, &mut p, b"one");
    let r = ring.reserve(&mut p, 3).unwrap(); // dies before commit
    ring.write_payload(&r, b"two");
    let mut p2 = ring.attach_publisher(false).unwrap();
    send(&ring, &mut p2, b"new");
    assert_eq!(
        read(&ring, &mut s).unwrap(),
        (Next::Message, b"one".to_vec())
    );
    assert_eq!(
        read(&ring, &mut s).unwrap(),
        (Next::Message, b"new".to_vec())
    );
}
