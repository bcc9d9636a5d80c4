//! Loom models of the ring protocol.

use super::test_ring::{send, Owned};
use super::*;
use loom::sync::Arc;
use loom::thread;

/// A 64-byte ring (two 32-byte records: 16-byte messages), one slot used.
fn owned(backpressure: bool) -> Arc<Owned> {
    Arc::new(Owned::new(64, backpressure))
}

/// Lossy, small ring with wrap-around and lapping: a subscriber never returns torn data,
/// and received + lost == sent.
#[test]
fn lossy_never_torn_and_counts_losses() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        let o = owned(false);
        let mut sub = o.ring().join(false);
        let mut pubst = o.ring().attach_publisher(false).unwrap();
        let publisher = {
            let o = o.clone();
            thread::spawn(move || {
                for i in 1..=3u8 {
                    assert!(send(&o.ring(), &mut pubst, &[i; 16]));
                }
            })
        };
        let (mut received, mut lost) = (0, 0);
        for _ in 0..4 {
            let mut got = Vec::new();
            match o
                .ring()
                .try_read(&mut sub, &mut |w, len| Ring::copy_payload(w, len, &mut got))
            {
                Ok(Next::Message) => {
                    assert!(
                        got.len() == 16 && got.iter().all(|&b| b == got[0]),
                        "torn: {got:?}"
                    );
                    received += 1;
                }
                Ok(Next::Lagged(n)) => lost += n,
                Ok(Next::Empty) => {}
                Ok(Next::TooLong(n)) => panic!("no limit, yet too long: {n}"),
                Err(e) => panic!("{e}"),
            }
        }
        publisher.join().unwrap();
        loop {
            match o.ring().try_read(&mut sub, &mut |_, _| {}) {
                Ok(Next::Message) => received += 1,
                Ok(Next::Lagged(n)) => lost += n,
                Ok(Next::Empty) => break,
                Ok(Next::TooLong(n)) => panic!("no limit, yet too long: {n}"),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(received + lost, 3);
    });
}

/// Back-pressure: the publisher never overwrites what the subscriber has not consumed:
/// every message arrives, in order, nothing lost.
#[test]
fn backpressure_loses_nothing() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        let o = owned(true);
        let mut sub = o.ring().join(false);
        o.slots[0].cursor.store(sub.cursor, Relaxed);
        o.slots[0].state.store(SLOT_ACTIVE, Relaxed);
        let mut pubst = o.ring().attach_publisher(false).unwrap();
        let publisher = {
            let o = o.clone();
            thread::spawn(move || {
                for i in 1..=3u8 {
                    while !send(&o.ring(), &mut pubst, &[i; 16]) {
                        thread::yield_now();
                    }
                }
            })
        };
        let mut next = 1u8;
        while next <= 3 {
            let mut got = Vec::new();
            match o
                .ring()
                .try_read(&mut sub, &mut |w, len| Ring::copy_payload(w, len, &mut got))
            {
                Ok(Next::Message) => {
                    assert_eq!(got, vec![next; 16]);
                    next += 1;
                    o.ring().release(&o.slots[0], sub.cursor);
                }
                Ok(Next::Empty) => thread::yield_now(),
                other => panic!("{other:?}"),
            }
        }
        publisher.join().unwrap();
    });
}
