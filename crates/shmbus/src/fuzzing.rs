//! Entry points for the fuzzers in `fuzz/` (feature `fuzzing`): each takes arbitrary bytes as
//! the contents of shared memory and runs the code that parses it. They must return (with an
//! error or a value), never panic, loop forever or read out of bounds.
#![allow(missing_docs)]

use crate::protocol::latch::{BoardControl, Latch};
use crate::protocol::ring::{Ring, RingControl, SubSlot, SubState};
use crate::segment::header::HeaderFields;
use crate::sync::{AtomicU64, Ordering::Relaxed};

fn words(bytes: &[u8], n: usize) -> Vec<AtomicU64> {
    (0..n)
        .map(|i| {
            let mut w = [0u8; 8];
            for (j, b) in w.iter_mut().enumerate() {
                *b = bytes.get(i * 8 + j).copied().unwrap_or(0);
            }
            AtomicU64::new(u64::from_le_bytes(w))
        })
        .collect()
}

fn word(bytes: &[u8], i: usize) -> u64 {
    words(&bytes[(i * 8).min(bytes.len())..], 1)[0].load(Relaxed)
}

/// The header parser: 64 bytes of fields, then the claimed file size.
pub fn header(bytes: &[u8]) {
    let mut raw = [0u8; 64];
    for (r, b) in raw.iter_mut().zip(bytes) {
        *r = *b;
    }
    let fields = HeaderFields::from_bytes(&raw);
    let _ = fields.validate("fuzz", word(bytes, 8), crate::segment::sizes::layout_size);
}

/// A subscriber reading a 256-byte ring whose publisher words (first 5 words), cursor
/// (6th word) and data (the rest) are `bytes`.
pub fn ring(bytes: &[u8]) {
    let ctl = RingControl::default();
    let p = &*ctl.publisher;
    p.tail_intent.store(word(bytes, 0), Relaxed);
    p.tail.store(word(bytes, 1), Relaxed);
    p.head.store(word(bytes, 2), Relaxed);
    p.published.store(word(bytes, 3), Relaxed);
    let mode = word(bytes, 4);
    let slots: Vec<SubSlot> = (0..2).map(|_| SubSlot::default()).collect();
    let data = words(bytes.get(48..).unwrap_or(&[]), 32);
    let ring = Ring {
        ctl: &ctl,
        slots: &slots,
        data: &data,
        capacity: 256,
        max_message: 112,
        backpressure: mode & 1 == 1,
    };
    let cursor = word(bytes, 5);
    let mut st = SubState {
        cursor,
        expected: (mode & 2 == 0).then_some(word(bytes, 3)),
        known_tail: cursor,
        verify: mode & 4 == 0,
        verify_until: word(bytes, 7),
    };
    let mut out = Vec::new();
    for _ in 0..64 {
        match ring.try_read(&mut st, &mut |w, len| Ring::copy_payload(w, len, &mut out)) {
            Ok(crate::protocol::ring::Next::Empty) | Err(_) => break,
            Ok(_) => assert!(out.len() <= 112),
        }
    }
    // A publisher taking over these words must refuse or cope, too.
    if let Ok(mut pubst) = ring.attach_publisher(false) {
        if let Some(r) = ring.reserve(&mut pubst, word(bytes, 6) % 113) {
            ring.commit(&mut pubst, r);
        }
    }
}

/// A reader of a 64-byte, 4-copy blackboard whose control words and data are `bytes`.
pub fn blackboard(bytes: &[u8]) {
    let ctl = BoardControl::default();
    let w = &*ctl.w;
    w.latest.store(word(bytes, 0), Relaxed);
    // The writers' words: readers must not care what they hold.
    ctl.lock.writing.store(word(bytes, 1), Relaxed);
    ctl.lock.writer.store(word(bytes, 2) as u32, Relaxed);
    for (i, len) in w.len.iter().enumerate() {
        len.store((word(bytes, 3 + i / 2) >> (32 * (i % 2))) as u32, Relaxed);
    }
    let data = words(bytes.get(56..).unwrap_or(&[]), 32);
    let latch = Latch::new(&ctl, &data, 64, 4, 8);
    let mut buf = [0u8; 64];
    // Nothing moves `latest` here, so every read passes its check: a value or `Corrupt`.
    if let Ok((_, n)) = latch.read_into(&mut buf) {
        assert!(n <= 64);
    }
    let _ = (latch.version(), latch.raw(), latch.waiters());
}

#[cfg(all(test, not(loom)))]
mod tests {
    use proptest::prelude::*;

    fn bytes(words: &[u64]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    /// Regressions found by `cargo fuzz run ring`: counters at the top of their range in
    /// the publisher's words or a record's sequence number overflowed `+ 1`.
    #[test]
    fn hostile_counters_do_not_overflow() {
        // published = u64::MAX; a publisher takes over and sends.
        super::ring(&bytes(&[0, 0, 0, u64::MAX, 0, 0, 40]));
        // A tail at an impossible position.
        super::ring(&bytes(&[1 << 63, 1 << 63, 1 << 63, 0, 0, 1 << 63, 40]));
        // A committed record whose sequence number is u64::MAX (kind data, length 8).
        let record = (1u64 << 32) | 8;
        super::ring(&bytes(&[32, 32, 0, u64::MAX, 2, 0, 0, record, u64::MAX, 7]));
    }

    proptest! {
        /// 64 arbitrary header bytes and an arbitrary file size: an error or a header,
        /// never a panic.
        #[test]
        fn arbitrary_headers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 72)) {
            super::header(&bytes);
        }

        #[test]
        fn fuzz_entry_points_survive_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            super::header(&bytes);
            super::ring(&bytes);
            super::blackboard(&bytes);
        }
    }
}
