//! Loom models of the latch protocol.

use super::*;
use loom::sync::Arc;
use loom::thread;

/// Two copies of a 16-byte value (the fewest copies: the most lapping).
struct Board {
    ctl: BoardControl,
    data: Vec<AtomicU64>,
}

impl Board {
    fn new() -> Arc<Board> {
        Arc::new(Board {
            ctl: BoardControl::default(),
            data: (0..4).map(|_| AtomicU64::new(0)).collect(),
        })
    }
    fn latch(&self) -> Latch<'_> {
        Latch::new(&self.ctl, &self.data, 16, 2, 2)
    }
}

const ALIVE: &dyn Fn(u32) -> bool = &|_| true;

fn write(board: &Board, value: &[u8], me: u32) -> u64 {
    board
        .latch()
        .write(value, me, Duration::MAX, ALIVE)
        .unwrap()
}

/// What version `v` holds in these models: `v` repeated, 9 or 16 bytes.
fn check(v: u64, bytes: &[u8]) {
    match v {
        0 => assert!(bytes.is_empty()),
        1 => assert_eq!(bytes, &[1; 9]),
        _ => assert_eq!(bytes, &[v as u8; 16][..], "torn or wrong value for {v}"),
    }
}

fn value(v: u8) -> Vec<u8> {
    if v == 1 {
        vec![1; 9]
    } else {
        vec![v; 16]
    }
}

/// A writer and two readers: every read is a whole value, and one reader's second read
/// is never older than its first.
#[test]
fn writer_and_two_readers_never_tear() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        let board = Board::new();
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let board = board.clone();
                thread::spawn(move || {
                    let mut buf = [0u8; 16];
                    let (v1, n) = board.latch().read_into(&mut buf).unwrap();
                    check(v1, &buf[..n]);
                    let (v2, n) = board.latch().read_into(&mut buf).unwrap();
                    check(v2, &buf[..n]);
                    assert!(v2 >= v1);
                })
            })
            .collect();
        write(&board, &value(1), 1);
        write(&board, &value(2), 1);
        for r in readers {
            r.join().unwrap();
        }
    });
}

/// A reader lapped: with two copies, three writes reuse the reader's copy while it may be
/// copying it; it still returns one whole value.
#[test]
fn a_lapped_reader_retries_and_returns_a_whole_value() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        let board = Board::new();
        let reader = {
            let board = board.clone();
            thread::spawn(move || {
                let mut buf = [0u8; 16];
                let (v, n) = board.latch().read_into(&mut buf).unwrap();
                check(v, &buf[..n]);
            })
        };
        for v in 1..=3 {
            write(&board, &value(v), 1);
        }
        reader.join().unwrap();
    });
}

/// Two writers never interleave inside the section.
#[test]
fn writers_exclude_each_other() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        let board = Board::new();
        let other = {
            let board = board.clone();
            thread::spawn(move || {
                write(&board, &[7; 16], 2);
            })
        };
        write(&board, &[3; 16], 1);
        other.join().unwrap();
        let mut buf = [0u8; 16];
        let (v, n) = board.latch().read_into(&mut buf).unwrap();
        assert_eq!((v, n), (2, 16));
        assert!(buf == [7; 16] || buf == [3; 16]);
    });
}

/// A sleeper in `wait_newer` always wakes for a write (a lost wake-up is a deadlock).
#[test]
fn wait_newer_never_misses_a_write() {
    loom::model(|| {
        let board = Board::new();
        let r = {
            let board = board.clone();
            thread::spawn(move || {
                board
                    .latch()
                    .wait_newer(0, Duration::ZERO, Deadline::after(None), None)
            })
        };
        write(&board, b"x", 1);
        assert_eq!(r.join().unwrap(), Some(1));
    });
}
