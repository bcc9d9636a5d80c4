//! The blackboard's seqlock: one writer at a time, any number of readers, no torn reads.
//!
//! Pure protocol: it works on a [`BoardControl`] and a slice of data words wherever they
//! live (a shared mapping, or the heap under loom) and knows nothing of files.
//!
//! # Words
//!
//! | word      | meaning                                                                 |
//! |-----------|-------------------------------------------------------------------------|
//! | `seq`     | even: stable; odd: a write is in progress. Changes on every write; futex word for `wait_newer` |
//! | `writer`  | 0: free; otherwise the slot number of the writer holding the write lock  |
//! | `len`     | length of the value (written inside the write section)                  |
//! | `version` | number of completed writes (written inside the write section)           |
//! | `waiters` | threads, in any process, sleeping in `wait_newer`                       |
//!
//! # Protocol
//!
//! Writer: CAS `writer` 0 → slot (Acquire); `seq` → odd (Relaxed); fence(Release); store
//! data, `len`, `version` (Relaxed); `seq` → even (Release); `writer` → 0 (Release);
//! read `waiters` with an RMW (AcqRel) and wake sleepers if it is non-zero.
//!
//! Reader: load `seq` (Acquire), retry while odd; load `len`, `version`, data (Relaxed);
//! fence(Acquire); re-load `seq` (Relaxed): unchanged means the copy is a consistent value.
//! If any data load saw a store of a newer write, the Acquire fence synchronises with that
//! writer's Release fence, so the re-load sees its odd `seq` and the copy is thrown away
//! (Boehm, "Can seqlocks get along with programming language memory models?", 2012).
//!
//! A writer killed inside the section leaves `seq` odd and `writer` naming its slot. Slots
//! are tied to the process by the kernel (see [`crate::segment::liveness`]), so the next writer, or a
//! reader that waited too long, can tell that the holder is dead: the writer takes the lock
//! over and completes a fresh write; the reader reports [`ReadError::WriterDied`].

use std::time::{Duration, Instant};

use crate::os::wait::Stopper;
use crate::os::wait::{futex_wait, futex_wake, spin_until, Deadline};
use crate::protocol::padded::Padded;
use crate::protocol::shared_bytes::SharedSafe;
use crate::protocol::shared_bytes::{load_bytes, store_bytes};
use crate::sync::{fence, yield_now, AtomicU32, AtomicU64, Ordering::*};

/// The words written by the writer, on one line.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct WriterWords {
    pub seq: AtomicU32,
    pub writer: AtomicU32,
    pub len: AtomicU64,
    pub version: AtomicU64,
}

/// Control block of a blackboard: the writer's line, then the readers' line.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct BoardControl {
    pub w: Padded<WriterWords>,
    pub waiters: Padded<AtomicU32>,
}

// SAFETY: repr(C), atomics and alignment padding only.
#[allow(unsafe_code)]
unsafe impl SharedSafe for BoardControl {}

#[cfg(not(loom))]
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<BoardControl>() == 256);
    assert!(offset_of!(BoardControl, waiters) == 128);
    assert!(offset_of!(WriterWords, len) == 8);
    assert!(offset_of!(WriterWords, version) == 16);
};

/// How long a reader keeps retrying before it reports the board as busy, and how often
/// (in retries) it looks at the clock and the writer's liveness.
const READ_PATIENCE: Duration = Duration::from_secs(1);
const CHECK_EVERY: u32 = 256;

/// Why a read failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// The writer holding the lock is dead and left a half-written value.
    WriterDied,
    /// A live writer (or a hostile process) kept the value changing for [`READ_PATIENCE`].
    Busy(Duration),
    /// The stable value claims a length larger than the board.
    Corrupt(u64),
    /// The caller's buffer is too small for the stable value.
    BufferTooSmall(usize),
}

/// Why a write failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WriteError {
    /// Another live writer held the lock until the deadline.
    Busy(Duration),
}

/// A seqlock over `ctl` and `data`. `capacity` (≤ `data.len() * 8`) is the board's size.
pub(crate) struct Seqlock<'a> {
    pub ctl: &'a BoardControl,
    pub data: &'a [AtomicU64],
    pub capacity: usize,
}

impl Seqlock<'_> {
    /// Writes `src` (caller checked `src.len() <= capacity`) as writer `me` (non-zero).
    /// `alive(slot)` tells whether the writer in `slot` still lives. Returns the new version.
    pub(crate) fn write(
        &self,
        src: &[u8],
        me: u32,
        deadline: Deadline,
        alive: &dyn Fn(u32) -> bool,
    ) -> Result<u64, WriteError> {
        debug_assert!(me != 0 && src.len() <= self.capacity);
        self.lock(me, deadline, alive)?;
        let w = &*self.ctl.w;
        let s = w.seq.load(Relaxed);
        // Odd already means a writer died mid-write: stay odd, finish with a clean value.
        let odd = s | 1;
        w.seq.store(odd, Relaxed);
        // SYNC: pairs with the reader's fence(Acquire): a reader that sees any store below
        // also sees `seq == odd` on its re-check.
        fence(Release);
        store_bytes(self.data, src);
        w.len.store(src.len() as u64, Relaxed);
        let version = w.version.load(Relaxed).wrapping_add(1);
        w.version.store(version, Relaxed);
        // SYNC: Release pairs with the reader's Acquire load of `seq`.
        w.seq.store(odd.wrapping_add(1), Release);
        // SYNC: Release pairs with the Acquire CAS in `lock` of the next writer.
        w.writer.store(0, Release);
        // SYNC: an RMW, paired with the AcqRel fetch_add in `wait_newer` (see `event` for
        // why RMWs on `waiters` on both sides rule out a lost wake-up).
        if self.ctl.waiters.fetch_add(0, AcqRel) > 0 {
            futex_wake(&w.seq, u32::MAX);
        }
        Ok(version)
    }

    fn lock(
        &self,
        me: u32,
        deadline: Deadline,
        alive: &dyn Fn(u32) -> bool,
    ) -> Result<(), WriteError> {
        let writer = &self.ctl.w.writer;
        let start = Instant::now();
        let mut tries = 0u32;
        loop {
            // SYNC: Acquire pairs with the Release store of 0 by the previous writer.
            match writer.compare_exchange_weak(0, me, Acquire, Relaxed) {
                Ok(_) => return Ok(()),
                Err(0) => continue,
                Err(holder) => {
                    tries = tries.wrapping_add(1);
                    if tries.is_multiple_of(CHECK_EVERY) {
                        if holder != me && !alive(holder) {
                            // The holder died inside its section: take the lock over.
                            if writer
                                .compare_exchange(holder, me, Acquire, Relaxed)
                                .is_ok()
                            {
                                return Ok(());
                            }
                        } else if deadline.expired() {
                            return Err(WriteError::Busy(start.elapsed()));
                        }
                    }
                    yield_now();
                }
            }
        }
    }

    /// Called by a writer that just claimed `slot`: if the write lock still names `slot`, its
    /// previous owner died holding it (we could not have claimed a live owner's slot), so the
    /// lock is released. Without this, the new owner would take the stale holder for itself
    /// and wait on itself.
    pub(crate) fn release_stale(&self, slot: u32) {
        let _ = self.ctl.w.writer.compare_exchange(slot, 0, AcqRel, Relaxed);
    }

    /// Copies the current value into `dst`; returns `(version, len)`. Version 0 is the empty
    /// value of a board nobody wrote yet.
    pub(crate) fn read_into(
        &self,
        dst: &mut [u8],
        alive: &dyn Fn(u32) -> bool,
    ) -> Result<(u64, usize), ReadError> {
        let w = &*self.ctl.w;
        let mut start = None;
        let mut tries = 0u32;
        loop {
            // SYNC: Acquire pairs with the writer's final Release store of `seq`.
            let s1 = w.seq.load(Acquire);
            if s1 & 1 == 0 {
                let len = w.len.load(Relaxed);
                let version = w.version.load(Relaxed);
                let fits = usize::try_from(len).ok().filter(|&n| n <= self.capacity);
                if let Some(n) = fits.filter(|&n| n <= dst.len()) {
                    load_bytes(self.data, &mut dst[..n]);
                }
                // SYNC: pairs with the writer's fence(Release).
                fence(Acquire);
                if w.seq.load(Relaxed) == s1 {
                    // A consistent snapshot: now its length is a claim we can judge.
                    return match fits {
                        None => Err(ReadError::Corrupt(len)),
                        Some(n) if n > dst.len() => Err(ReadError::BufferTooSmall(n)),
                        Some(n) => Ok((version, n)),
                    };
                }
            }
            tries = tries.wrapping_add(1);
            if tries.is_multiple_of(CHECK_EVERY) {
                let started = *start.get_or_insert_with(Instant::now);
                let holder = w.writer.load(Relaxed);
                if w.seq.load(Relaxed) & 1 == 1 && holder != 0 && !alive(holder) {
                    return Err(ReadError::WriterDied);
                }
                if started.elapsed() >= READ_PATIENCE {
                    return Err(ReadError::Busy(started.elapsed()));
                }
            }
            yield_now();
        }
    }

    /// The version of the current value, or `None` while a write is in progress.
    pub(crate) fn version(&self) -> Option<u64> {
        self.version_at(self.ctl.w.seq.load(Acquire))
    }

    /// The version of the current value, waiting out a write in progress; when the writer
    /// died inside its section, or the wait exceeds [`READ_PATIENCE`], the version word as it
    /// stands (never a hang).
    pub(crate) fn settled_version(&self, alive: &dyn Fn(u32) -> bool) -> u64 {
        let w = &*self.ctl.w;
        let mut start = None;
        let mut tries = 0u32;
        loop {
            if let Some(v) = self.version() {
                return v;
            }
            tries = tries.wrapping_add(1);
            if tries.is_multiple_of(CHECK_EVERY) {
                let started = *start.get_or_insert_with(Instant::now);
                let holder = w.writer.load(Relaxed);
                if (holder != 0 && !alive(holder)) || started.elapsed() >= READ_PATIENCE {
                    return w.version.load(Relaxed);
                }
            }
            yield_now();
        }
    }

    fn version_at(&self, s1: u32) -> Option<u64> {
        if s1 & 1 == 1 {
            return None;
        }
        let w = &*self.ctl.w;
        let v = w.version.load(Relaxed);
        // SYNC: pairs with the writer's fence(Release), as in `read_into`.
        fence(Acquire);
        (w.seq.load(Relaxed) == s1).then_some(v)
    }

    /// Waits until the version is newer than `seen`; returns it, or `None` on timeout or
    /// when `stop` asks to (whoever asks must then wake the `seq` futex).
    pub(crate) fn wait_newer(
        &self,
        seen: u64,
        spin: Duration,
        deadline: Deadline,
        stop: Option<&Stopper>,
    ) -> Option<u64> {
        let newer = |s: u32| self.version_at(s).filter(|&v| v > seen);
        let seq = &self.ctl.w.seq;
        let mut found = None;
        if spin_until(deadline.cap(spin), || {
            found = newer(seq.load(Acquire));
            found.is_some()
        }) {
            return found;
        }
        // SYNC: AcqRel RMW, paired with the writer's RMW on `waiters`.
        self.ctl.waiters.fetch_add(1, AcqRel);
        let result = loop {
            let s = seq.load(Acquire);
            if let Some(v) = newer(s) {
                break Some(v);
            }
            if deadline.expired() || stop.is_some_and(Stopper::enter_wait) {
                break None;
            }
            futex_wait(seq, s, deadline.remaining());
            if let Some(stop) = stop {
                stop.leave_wait();
            }
        };
        self.ctl.waiters.fetch_sub(1, Relaxed);
        result
    }

    /// Wakes every sleeper in `wait_newer` (used to stop a handler thread).
    pub(crate) fn wake_all(&self) {
        futex_wake(&self.ctl.w.seq, u32::MAX);
    }

    /// Sleepers now (for `info`).
    pub(crate) fn waiters(&self) -> u32 {
        self.ctl.waiters.load(Relaxed)
    }

    /// Raw `(seq, writer, len)` (for `info`).
    pub(crate) fn raw(&self) -> (u32, u32, u64) {
        let w = &*self.ctl.w;
        (
            w.seq.load(Relaxed),
            w.writer.load(Relaxed),
            w.len.load(Relaxed),
        )
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn board(words: usize) -> (BoardControl, Vec<AtomicU64>) {
        (
            BoardControl::default(),
            (0..words).map(|_| AtomicU64::new(0)).collect(),
        )
    }

    const ALIVE: &dyn Fn(u32) -> bool = &|_| true;
    const DEAD: &dyn Fn(u32) -> bool = &|_| false;

    proptest! {
        /// Whatever sequence of writes, a read returns the last one exactly.
        #[test]
        fn read_returns_last_write(values in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..=40), 1..20)) {
            let (ctl, data) = board(5);
            let lock = Seqlock { ctl: &ctl, data: &data, capacity: 40 };
            for (i, v) in values.iter().enumerate() {
                let ver = lock.write(v, 1, Deadline::after(None), ALIVE).unwrap();
                prop_assert_eq!(ver, i as u64 + 1);
            }
            let mut buf = [0u8; 40];
            let (ver, n) = lock.read_into(&mut buf, ALIVE).unwrap();
            prop_assert_eq!(ver, values.len() as u64);
            prop_assert_eq!(&buf[..n], values.last().unwrap().as_slice());
        }

        /// Arbitrary control words never make a reader panic or read out of bounds.
        #[test]
        fn garbage_control_words_give_errors(seq in any::<u32>(), writer in any::<u32>(),
                                             len in any::<u64>(), version in any::<u64>()) {
            let (ctl, data) = board(2);
            ctl.w.seq.store(seq & !1, Relaxed);
            ctl.w.writer.store(writer, Relaxed);
            ctl.w.len.store(len, Relaxed);
            ctl.w.version.store(version, Relaxed);
            let lock = Seqlock { ctl: &ctl, data: &data, capacity: 16 };
            let mut buf = [0u8; 16];
            match lock.read_into(&mut buf, ALIVE) {
                Ok((v, n)) => { prop_assert_eq!(v, version); prop_assert!(n <= 16); }
                Err(e) => prop_assert_eq!(e, ReadError::Corrupt(len)),
            }
        }
    }

    #[test]
    fn small_buffer_is_reported() {
        let (ctl, data) = board(2);
        let lock = Seqlock {
            ctl: &ctl,
            data: &data,
            capacity: 16,
        };
        lock.write(b"0123456789", 1, Deadline::after(None), ALIVE)
            .unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(
            lock.read_into(&mut buf, ALIVE),
            Err(ReadError::BufferTooSmall(10))
        );
    }

    #[test]
    fn dead_writer_mid_write_is_detected_and_recovered() {
        let (ctl, data) = board(2);
        let lock = Seqlock {
            ctl: &ctl,
            data: &data,
            capacity: 16,
        };
        lock.write(b"before", 1, Deadline::after(None), ALIVE)
            .unwrap();
        // Writer 7 "dies" inside its section.
        ctl.w.writer.store(7, Relaxed);
        ctl.w.seq.fetch_add(1, Relaxed);
        let mut buf = [0u8; 16];
        assert_eq!(lock.read_into(&mut buf, DEAD), Err(ReadError::WriterDied));
        assert_eq!(
            lock.settled_version(DEAD),
            1,
            "no hang on a dead writer's odd seq"
        );
        // The next writer takes over and the board works again.
        let v = lock
            .write(
                b"after",
                2,
                Deadline::after(Some(Duration::from_secs(1))),
                DEAD,
            )
            .unwrap();
        assert_eq!(v, 2);
        assert_eq!(lock.read_into(&mut buf, ALIVE), Ok((2, 5)));
        assert_eq!(&buf[..5], b"after");
    }

    #[test]
    fn live_holder_makes_writers_busy() {
        let (ctl, data) = board(2);
        let lock = Seqlock {
            ctl: &ctl,
            data: &data,
            capacity: 16,
        };
        ctl.w.writer.store(7, Relaxed);
        let r = lock.write(
            b"x",
            2,
            Deadline::after(Some(Duration::from_millis(20))),
            ALIVE,
        );
        assert!(matches!(r, Err(WriteError::Busy(_))));
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    struct Board {
        ctl: BoardControl,
        data: Vec<AtomicU64>,
    }

    impl Board {
        fn new() -> Arc<Board> {
            Arc::new(Board {
                ctl: BoardControl::default(),
                data: (0..2).map(|_| AtomicU64::new(0)).collect(),
            })
        }
        fn lock(&self) -> Seqlock<'_> {
            Seqlock {
                ctl: &self.ctl,
                data: &self.data,
                capacity: 16,
            }
        }
    }

    const ALIVE: &dyn Fn(u32) -> bool = &|_| true;

    /// A reader racing two writes sees the empty value or one whole write, never a mix.
    #[test]
    fn no_torn_reads() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(|| {
            let board = Board::new();
            let w = {
                let board = board.clone();
                thread::spawn(move || {
                    board
                        .lock()
                        .write(&[1; 9], 1, Deadline::after(None), ALIVE)
                        .unwrap();
                    board
                        .lock()
                        .write(&[2; 16], 1, Deadline::after(None), ALIVE)
                        .unwrap();
                })
            };
            let mut buf = [0u8; 16];
            let (v, n) = board.lock().read_into(&mut buf, ALIVE).unwrap();
            match v {
                0 => assert_eq!(n, 0),
                1 => assert_eq!(&buf[..n], &[1; 9]),
                2 => assert_eq!(&buf[..n], &[2; 16]),
                _ => panic!("impossible version {v}"),
            }
            w.join().unwrap();
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
                    board
                        .lock()
                        .write(&[7; 16], 2, Deadline::after(None), ALIVE)
                        .unwrap();
                })
            };
            board
                .lock()
                .write(&[3; 16], 1, Deadline::after(None), ALIVE)
                .unwrap();
            other.join().unwrap();
            let mut buf = [0u8; 16];
            let (v, n) = board.lock().read_into(&mut buf, ALIVE).unwrap();
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
                        .lock()
                        .wait_newer(0, Duration::ZERO, Deadline::after(None), None)
                })
            };
            board
                .lock()
                .write(b"x", 1, Deadline::after(None), ALIVE)
                .unwrap();
            assert_eq!(r.join().unwrap(), Some(1));
        });
    }
}
