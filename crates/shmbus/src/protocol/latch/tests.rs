//! Unit and property tests of the latch on heap memory.

use super::*;
use proptest::prelude::*;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// A board on the heap: `copies` copies of `capacity` bytes.
struct Board {
    ctl: BoardControl,
    data: Vec<AtomicU64>,
    capacity: usize,
    copies: u32,
}

impl Board {
    fn new(capacity: usize, copies: u32) -> Board {
        let stride = capacity.div_ceil(64) * 8;
        Board {
            ctl: BoardControl::default(),
            data: (0..stride * copies as usize)
                .map(|_| AtomicU64::new(0))
                .collect(),
            capacity,
            copies,
        }
    }

    fn latch(&self) -> Latch<'_> {
        Latch::new(
            &self.ctl,
            &self.data,
            self.capacity,
            self.copies,
            self.capacity.div_ceil(64) * 8,
        )
    }
}

const ALIVE: &dyn Fn(u32) -> bool = &|_| true;
const DEAD: &dyn Fn(u32) -> bool = &|_| false;

fn write(latch: &Latch<'_>, value: &[u8]) -> u64 {
    latch.write(value, 1, Duration::MAX, ALIVE).expect("write")
}

proptest! {
    /// Whatever sequence of writes and however many copies, a read returns the last one
    /// exactly, with the number of writes as its version.
    #[test]
    fn read_returns_last_write(
        copies in MIN_COPIES..=MAX_COPIES,
        values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..=300), 1..20),
    ) {
        let board = Board::new(300, copies);
        let latch = board.latch();
        for (i, v) in values.iter().enumerate() {
            prop_assert_eq!(write(&latch, v), i as u64 + 1);
        }
        let mut buf = [0u8; 300];
        let (ver, n) = latch.read_into(&mut buf).unwrap();
        prop_assert_eq!(ver, values.len() as u64);
        prop_assert_eq!(&buf[..n], values.last().unwrap().as_slice());
        prop_assert_eq!(latch.version(), ver);
    }

    /// Arbitrary control words never make a reader panic or read out of bounds: a value or
    /// `Corrupt`, judged by the length of `latest`'s copy (the writers' words, whatever they
    /// hold, do not matter to readers).
    #[test]
    fn garbage_control_words_give_errors(
        latest in any::<u64>(), writing in any::<u64>(), writer in any::<u32>(),
        lens in proptest::array::uniform8(any::<u32>()),
    ) {
        let board = Board::new(16, 4);
        let w = &*board.ctl.w;
        w.latest.store(latest, Relaxed);
        board.ctl.lock.writing.store(writing, Relaxed);
        board.ctl.lock.writer.store(writer, Relaxed);
        for (l, v) in w.len.iter().zip(lens) {
            l.store(v, Relaxed);
        }
        let latch = board.latch();
        let len = lens[(latest % 4) as usize];
        let mut buf = [0u8; 16];
        match latch.read_into(&mut buf) {
            Ok((v, n)) => { prop_assert_eq!(v, latest); prop_assert_eq!(n as u32, len); }
            Err(e) => prop_assert_eq!(e, ReadError::Corrupt(u64::from(len))),
        }
    }
}

/// A hostile process that keeps moving `latest` (so no copy passes its check while it
/// runs) cannot hang a reader: the read gives up with `Busy` after `READ_PATIENCE`, or, when
/// the mover is descheduled for the length of one copy (two threads may share a core),
/// returns the only value there is, whole.
#[test]
fn a_latest_that_keeps_moving_never_hangs_a_reader() {
    let board = Arc::new(Board::new(65536, 2));
    // Version 1, in copy 1: the mover keeps `latest` odd, so every read copies 64 KiB.
    write(&board.latch(), &[7; 65536]);
    let stop = Arc::new(AtomicBool::new(false));
    let mover = {
        let (board, stop) = (board.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Relaxed) {
                board.ctl.w.latest.fetch_add(2, Relaxed);
            }
        })
    };
    while board.ctl.w.latest.load(Relaxed) == 1 {
        std::hint::spin_loop();
    }
    let t = Instant::now();
    let got = board.latch().read_into(&mut vec![0; 65536]);
    let took = t.elapsed();
    stop.store(true, Relaxed);
    mover.join().unwrap();
    match got {
        Err(ReadError::Busy(_)) => assert!(took >= READ_PATIENCE),
        Ok((_, n)) => assert_eq!(n, 65536, "only version 1's value was ever there"),
        other => panic!("{other:?}"),
    }
    assert!(took < READ_PATIENCE * 3, "took {took:?}");
    // The next honest write repairs it.
    let v = board.latch().version();
    assert_eq!(write(&board.latch(), b"ok"), v + 1);
    assert_eq!(board.latch().read_into(&mut [0; 16]), Ok((v + 1, 2)));
}

#[test]
fn small_buffer_is_reported() {
    let board = Board::new(16, 2);
    write(&board.latch(), b"0123456789");
    let mut buf = [0u8; 4];
    assert_eq!(
        board.latch().read_into(&mut buf),
        Err(ReadError::BufferTooSmall(10))
    );
}

#[test]
fn empty_board_reads_version_zero() {
    let board = Board::new(16, 4);
    assert_eq!(board.latch().read_into(&mut [0; 16]), Ok((0, 0)));
    assert_eq!(board.latch().version(), 0);
}

#[test]
fn a_dead_writer_mid_write_is_invisible_to_readers_and_taken_over() {
    let board = Board::new(16, 2);
    let latch = board.latch();
    write(&latch, b"before");
    // Writer 7 "dies" inside its section: lock held, version 2 started in copy 0, half of
    // its bytes stored.
    board.ctl.lock.writer.store(7, Relaxed);
    board.ctl.lock.writing.store(2, Relaxed);
    board.data[0].store(u64::MAX, Relaxed);
    let mut buf = [0u8; 16];
    assert_eq!(latch.read_into(&mut buf), Ok((1, 6)));
    assert_eq!(&buf[..6], b"before");
    // The next writer takes the lock over and writes version 2 whole.
    let v = latch
        .write(b"after", 2, Duration::from_secs(1), DEAD)
        .unwrap();
    assert_eq!(v, 2);
    assert_eq!(latch.read_into(&mut buf), Ok((2, 5)));
    assert_eq!(&buf[..5], b"after");
}

#[test]
fn live_holder_makes_writers_busy() {
    let board = Board::new(16, 2);
    board.ctl.lock.writer.store(7, Relaxed);
    let r = board
        .latch()
        .write(b"x", 2, Duration::from_millis(20), ALIVE);
    assert!(matches!(r, Err(WriteError::Busy(_))));
}

/// A writer writing as fast as it can and a reader reading as fast as it can, for 200 ms:
/// every value read is whole (each value is its version repeated), versions never go back,
/// and the reader completes reads throughout (it is never starved into `Busy`).
#[test]
fn full_speed_writer_never_tears_or_starves_a_reader() {
    for (size, copies) in [(64, 2), (4096, 2), (4096, 4), (65536, 4)] {
        let board = Arc::new(Board::new(size, copies));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (board, stop) = (board.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut value = vec![0u8; size];
                let mut v = 0u64;
                while !stop.load(Relaxed) {
                    v += 1;
                    value.fill(v as u8);
                    value[..8].copy_from_slice(&v.to_le_bytes());
                    assert_eq!(write(&board.latch(), &value), v);
                }
            })
        };
        let mut buf = vec![0u8; size];
        let mut last = 0;
        let mut reads = 0u64;
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(200) {
            let (v, n) = board.latch().read_into(&mut buf).expect("no Busy");
            assert!(v >= last, "version went back: {v} after {last}");
            last = v;
            reads += 1;
            if v > 0 {
                assert_eq!(n, size);
                assert_eq!(u64::from_le_bytes(buf[..8].try_into().unwrap()), v);
                assert!(buf[8..].iter().all(|&b| b == v as u8), "torn value {v}");
            }
        }
        stop.store(true, Relaxed);
        writer.join().unwrap();
        assert!(reads > 0);
    }
}

#[test]
fn wait_newer_wakes_for_a_write_and_times_out_without_one() {
    let board = Arc::new(Board::new(16, 2));
    let d = Deadline::after(Some(Duration::from_millis(20)));
    assert_eq!(board.latch().wait_newer(0, Duration::ZERO, d, None), None);
    let waiter = {
        let board = board.clone();
        std::thread::spawn(move || {
            board.latch().wait_newer(
                0,
                Duration::ZERO,
                Deadline::after(Some(Duration::from_secs(10))),
                None,
            )
        })
    };
    while board.latch().waiters() == 0 {
        std::thread::yield_now();
    }
    write(&board.latch(), b"x");
    assert_eq!(waiter.join().unwrap(), Some(1));
}
