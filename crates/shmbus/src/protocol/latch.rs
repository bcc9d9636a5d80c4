//! The blackboard's latch: one writer at a time, any number of readers that never wait for
//! it, never write to shared memory, and never see a torn value.
//!
//! Pure protocol: it works on a [`BoardControl`] and the data words of `copies` copies of
//! the value, wherever they live (a shared mapping, or the heap under loom).
//!
//! # Words
//!
//! | word      | line    | meaning                                                       |
//! |-----------|---------|---------------------------------------------------------------|
//! | `latest`  | readers | the version of the newest complete value; it lives in copy `latest % copies` |
//! | `tick`    | readers | the low 32 bits of `latest`: the futex word `wait_newer` sleeps on |
//! | `len[i]`  | readers | the length of the value in copy `i` (`i < copies ≤ 8`)       |
//! | `writer`  | writers | 0: free; otherwise the slot number of the writer holding the write lock |
//! | `waiters` | writers | threads, in any process, sleeping in `wait_newer`            |
//! | `writing` | writers | the version being written, or equal to `latest` between writes (for `info` and a dead writer's trace; readers never look at it) |
//!
//! Only the writer holding the lock writes the readers' line, once per write (its stores
//! of `len`, `latest` and `tick` at the end); everything else a writer touches is on the
//! writers' line, which readers touch only to sleep.
//!
//! # Protocol
//!
//! This is the Linux kernel's `seqcount_latch` idea with `copies` copies instead of two,
//! validated by `latest` itself rather than by a sequence word of its own.
//!
//! Writer (holding the lock, a CAS on `writer`): `v = latest + 1`, `c = v % copies`;
//! `writing = v` (Relaxed); fence(Release); store the data of copy `c` and `len[c]`
//! (Relaxed); `latest = v` (Release); `tick = v` (Release); `writer = 0` (Release); read
//! `waiters` with an RMW (AcqRel) and wake sleepers if it is non-zero. The writer never looks
//! at readers: a write is wait-free once the lock is held.
//!
//! Reader: `v = latest` (Acquire), `c = v % copies`; load `len[c]` and copy `c`'s data
//! (Relaxed); fence(Acquire); load `latest` again (Relaxed) as `l`. The copy is the whole
//! value `v` unless a writer has since started version `v + copies`, the next one to reuse
//! copy `c`, which it does only after publishing `v + copies - 1`: so the copy is accepted
//! iff `l - v < copies - 1`. If any data load saw a store of that later write, the Acquire
//! fence synchronises with that writer's Release fence, before which `latest = v + copies -
//! 1` was stored (by it, or by a writer whose unlock it acquired), so `l` is at least that
//! and the copy is thrown away (Boehm's seqlock argument, "Can seqlocks get along with
//! programming language memory models?", 2012). A reader never waits for a write in
//! progress: the previous value stays whole in its own copy.
//!
//! **The bound.** An attempt fails only when, between its two loads of `latest`, the writer
//! published `copies - 1` newer versions (at the first load, write `v + 1` may already be
//! under way, so at least `copies - 2` whole writes). With the default of 4 copies a reader
//! is lapped only by a writer that completes two writes of the same value size, and the
//! end of a third, during one copy of it; each retry starts again from the newest value.
//! Readers that the scheduler stops mid-copy can be lapped any number of times (no
//! protocol whose readers write nothing can prevent that), so a read that keeps failing
//! for [`READ_PATIENCE`] reports [`ReadError::Busy`]; against an honest writer that needs a
//! reader stopped again and again, which `BENCHMARKS.md` measures as never in practice.
//!
//! A writer killed inside its section leaves `writing = latest + 1` and `writer` naming its
//! slot. Readers do not notice: they keep reading `latest`'s copy. Slots are tied to the
//! process by the kernel, so the next writer can tell that the holder is dead, takes the
//! lock over and writes version `latest + 1` again.
//! (The taker's load of `latest` has no Release store of the dead writer to pair with:
//! that it sees everything the dead process stored rests on the kernel, which reports the
//! death only after the process's last store, through the lock call the taker made.)
//!
//! A hostile process can make readers accept garbage (it can write the copies too), but
//! never make them read out of bounds, panic or hang: lengths are judged against the
//! capacity, and a `latest` that never settles ends in `Busy`.

use std::time::{Duration, Instant};

use crate::os::wait::Stopper;
use crate::os::wait::{futex_wait, futex_wake, spin_until, Deadline};
use crate::protocol::padded::Padded;
use crate::protocol::shared_bytes::SharedSafe;
use crate::protocol::shared_bytes::{load_bytes, store_bytes};
use crate::sync::{backoff, fence, yield_now, AtomicU32, AtomicU64, Ordering::*};

/// Most copies a board may have (the lengths of all of them share the control line).
pub(crate) const MAX_COPIES: u32 = 8;
/// Fewest copies a board may have.
pub(crate) const MIN_COPIES: u32 = 2;

/// The words a reader needs, on one cache line (written by the writer holding the lock
/// only, so a reader polling them shares the line with nobody else).
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct LatchWords {
    pub latest: AtomicU64,
    /// Always 0 (layout 2 keeps `tick` and `len` where they are; readers ignore it).
    pub reserved: AtomicU64,
    pub tick: AtomicU32,
    /// Always 0, as `reserved`.
    pub reserved2: AtomicU32,
    pub len: [AtomicU32; MAX_COPIES as usize],
}

/// The words readers do not poll: the write lock, the count of sleeping readers and the
/// version being written. Apart from the readers' line, so that a write pulls that line
/// away from readers once (to publish), not three times more (lock, `writing`, unlock).
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct LockWords {
    pub writer: AtomicU32,
    pub waiters: AtomicU32,
    pub writing: AtomicU64,
}

/// Control block of a blackboard: the readers' line, then the writers' and sleepers' line.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct BoardControl {
    pub w: Padded<LatchWords>,
    pub lock: Padded<LockWords>,
}

// SAFETY: repr(C), atomics and alignment padding only.
#[allow(unsafe_code)]
unsafe impl SharedSafe for BoardControl {}

#[cfg(not(loom))]
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<LatchWords>() == 56);
    assert!(offset_of!(LatchWords, reserved) == 8);
    assert!(offset_of!(LatchWords, tick) == 16);
    assert!(offset_of!(LatchWords, reserved2) == 20);
    assert!(offset_of!(LatchWords, len) == 24);
    assert!(size_of::<BoardControl>() == 256);
    assert!(offset_of!(BoardControl, lock) == 128);
    assert!(offset_of!(LockWords, waiters) == 4);
    assert!(offset_of!(LockWords, writing) == 8);
};

/// How long a reader keeps retrying before it reports the board as busy, and how often
/// (in retries) it looks at the clock.
pub(crate) const READ_PATIENCE: Duration = Duration::from_secs(1);
const CHECK_EVERY: u32 = 256;

/// Why a read failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// Every attempt was lapped for [`READ_PATIENCE`] (a hostile process rewriting the
    /// control words, or a reader stopped mid-copy again and again).
    Busy(Duration),
    /// The value claims a length larger than the board.
    Corrupt(u64),
    /// The caller's buffer is too small for the value.
    BufferTooSmall(usize),
}

/// Why a write failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WriteError {
    /// Another live writer held the lock until the deadline.
    Busy(Duration),
}

/// The bytes of copy `i` start at word `i * stride_words`; `capacity ≤ stride_words * 8`.
pub(crate) struct Latch<'a> {
    ctl: &'a BoardControl,
    data: &'a [AtomicU64],
    capacity: usize,
    copies: u32,
    stride_words: usize,
}

impl<'a> Latch<'a> {
    /// A latch over `ctl` and `data` (all copies). The shape (copies in `2..=8`,
    /// `capacity ≤ stride_words * 8`, `data` long enough) was validated when the object
    /// was opened; a wrong one is a shmbus bug, which debug builds assert and release
    /// builds turn into a panic on the first out-of-range slice (never a wild access).
    #[inline]
    pub(crate) fn new(
        ctl: &'a BoardControl,
        data: &'a [AtomicU64],
        capacity: usize,
        copies: u32,
        stride_words: usize,
    ) -> Latch<'a> {
        debug_assert!((MIN_COPIES..=MAX_COPIES).contains(&copies));
        debug_assert!(capacity <= stride_words * 8 && capacity <= u32::MAX as usize);
        debug_assert!(data.len() >= stride_words * copies as usize);
        Latch {
            ctl,
            data,
            capacity,
            copies,
            stride_words,
        }
    }

    /// The words of copy `c` that can hold a value.
    #[inline]
    fn copy(&self, c: usize) -> &'a [AtomicU64] {
        let start = c * self.stride_words;
        &self.data[start..start + self.capacity.div_ceil(8)]
    }

    /// The copy that holds `version`: `version % copies`, a mask for the usual power of
    /// two (a division costs more than the rest of a small read).
    #[inline]
    fn copy_of(&self, version: u64) -> usize {
        let copies = u64::from(self.copies);
        if copies.is_power_of_two() {
            (version & (copies - 1)) as usize
        } else {
            (version % copies) as usize
        }
    }

    /// Writes `src` (caller checked `src.len() <= capacity`) as writer `me` (non-zero),
    /// waiting up to `patience` for another live writer. `alive(slot)` tells whether the
    /// writer in `slot` still lives. Returns the new version.
    #[inline]
    pub(crate) fn write(
        &self,
        src: &[u8],
        me: u32,
        patience: Duration,
        alive: &dyn Fn(u32) -> bool,
    ) -> Result<u64, WriteError> {
        debug_assert!(me != 0 && src.len() <= self.capacity);
        // SYNC: Acquire pairs with the Release store of 0 by the previous writer.
        if self
            .ctl
            .lock
            .writer
            .compare_exchange(0, me, Acquire, Relaxed)
            .is_err()
        {
            self.lock(me, patience, alive)?;
        }
        let w = &*self.ctl.w;
        let v = w.latest.load(Relaxed).wrapping_add(1);
        let c = self.copy_of(v);
        self.ctl.lock.writing.store(v, Relaxed);
        // SYNC: pairs with the readers' fence(Acquire): a reader whose copy saw any store
        // below also sees, on its check, `latest == v - 1` or later (stored before this
        // fence: by us, or by the writer whose Release unlock our lock acquired).
        fence(Release);
        store_bytes(self.copy(c), src);
        w.len[c].store(src.len() as u32, Relaxed);
        // SYNC: Release pairs with the readers' Acquire load of `latest`: the copy and its
        // length are complete for whoever reads `v` there.
        w.latest.store(v, Release);
        // SYNC: Release pairs with the Acquire load of `tick` in `wait_newer`.
        w.tick.store(v as u32, Release);
        // SYNC: Release pairs with the Acquire CAS in `lock` of the next writer.
        self.ctl.lock.writer.store(0, Release);
        // SYNC: an RMW, paired with the AcqRel fetch_add in `wait_newer` (see `event_state`
        // for why RMWs on `waiters` on both sides rule out a lost wake-up).
        if self.ctl.lock.waiters.fetch_add(0, AcqRel) > 0 {
            futex_wake(&w.tick, u32::MAX);
        }
        Ok(v)
    }

    /// The write lock's slow path, when the first try found it held: the clock is read only
    /// here, so an uncontended write never reads it.
    #[cold]
    fn lock(
        &self,
        me: u32,
        patience: Duration,
        alive: &dyn Fn(u32) -> bool,
    ) -> Result<(), WriteError> {
        let writer = &self.ctl.lock.writer;
        let start = Instant::now();
        let deadline = Deadline::after(Some(patience));
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
                    // Writers wait for writers only; a holder is mid-copy or descheduled.
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
        let _ = self
            .ctl
            .lock
            .writer
            .compare_exchange(slot, 0, AcqRel, Relaxed);
    }

    /// Copies the newest value into `dst`; returns `(version, len)`. Version 0 is the empty
    /// value of a board nobody wrote yet.
    #[inline]
    pub(crate) fn read_into(&self, dst: &mut [u8]) -> Result<(u64, usize), ReadError> {
        match self.attempt(dst) {
            Some(done) => done,
            None => self.read_lapped(dst),
        }
    }

    /// One attempt at a read: `None` when it was lapped (then [`Self::read_into`] does the
    /// retries). The fast path of callers that keep their slow path out of line.
    #[inline(always)]
    pub(crate) fn attempt(&self, dst: &mut [u8]) -> Option<Result<(u64, usize), ReadError>> {
        let w = &*self.ctl.w;
        // SYNC: Acquire pairs with the writer's Release store of `latest`.
        let v = w.latest.load(Acquire);
        let c = self.copy_of(v);
        let len = w.len[c].load(Relaxed) as usize;
        let fits = len <= self.capacity && len <= dst.len();
        if fits {
            load_bytes(self.copy(c), &mut dst[..len]);
        }
        // SYNC: pairs with the writer's fence(Release).
        fence(Acquire);
        // Lapped when `copies - 1` newer versions were published (see the module docs).
        if w.latest.load(Relaxed).wrapping_sub(v) >= u64::from(self.copies) - 1 {
            return None;
        }
        // A whole value: now its length is a claim we can judge.
        Some(if fits {
            Ok((v, len))
        } else if len > self.capacity {
            Err(ReadError::Corrupt(len as u64))
        } else {
            Err(ReadError::BufferTooSmall(len))
        })
    }

    /// The attempts after a first one that was lapped: each starts again from the newest
    /// value, at once; after [`READ_PATIENCE`] of failures, [`ReadError::Busy`].
    #[cold]
    #[inline(never)]
    fn read_lapped(&self, dst: &mut [u8]) -> Result<(u64, usize), ReadError> {
        let mut start = None;
        let mut tries = 0u32;
        loop {
            backoff();
            if let Some(done) = self.attempt(dst) {
                return done;
            }
            tries = tries.wrapping_add(1);
            if tries.is_multiple_of(CHECK_EVERY) {
                let started = *start.get_or_insert_with(Instant::now);
                if started.elapsed() >= READ_PATIENCE {
                    return Err(ReadError::Busy(started.elapsed()));
                }
            }
        }
    }

    /// The version of the newest complete value.
    pub(crate) fn version(&self) -> u64 {
        // SYNC: Acquire pairs with the writer's Release store of `latest`.
        self.ctl.w.latest.load(Acquire)
    }

    /// Waits until the version is newer than `seen`; returns it, or `None` on timeout or
    /// when `stop` asks to (whoever asks must then wake the `tick` futex).
    pub(crate) fn wait_newer(
        &self,
        seen: u64,
        spin: Duration,
        deadline: Deadline,
        stop: Option<&Stopper>,
    ) -> Option<u64> {
        let newer = || Some(self.version()).filter(|&v| v > seen);
        let tick = &self.ctl.w.tick;
        let mut found = None;
        if spin_until(deadline.cap(spin), || {
            found = newer();
            found.is_some()
        }) {
            return found;
        }
        // SYNC: AcqRel RMW, paired with the writer's RMW on `waiters`.
        self.ctl.lock.waiters.fetch_add(1, AcqRel);
        let result = loop {
            // SYNC: Acquire pairs with the writer's Release store of `tick`, which follows
            // its store of `latest`; the futex re-checks `tick` in the kernel.
            let t = tick.load(Acquire);
            if let Some(v) = newer() {
                break Some(v);
            }
            if deadline.expired() || stop.is_some_and(Stopper::enter_wait) {
                break None;
            }
            futex_wait(tick, t, deadline.remaining());
            if let Some(stop) = stop {
                stop.leave_wait();
            }
        };
        self.ctl.lock.waiters.fetch_sub(1, Relaxed);
        result
    }

    /// The word `wait_newer` sleeps on (`tick`) and the count of sleepers it joins first,
    /// for a waiter on many objects that follows the same steps.
    pub(crate) fn sleep_words(&self) -> (&'a AtomicU32, &'a AtomicU32) {
        (&self.ctl.w.tick, &self.ctl.lock.waiters)
    }

    /// Wakes every sleeper in `wait_newer` (used to stop a handler thread).
    pub(crate) fn wake_all(&self) {
        futex_wake(&self.ctl.w.tick, u32::MAX);
    }

    /// Sleepers now (for `info`).
    pub(crate) fn waiters(&self) -> u32 {
        self.ctl.lock.waiters.load(Relaxed)
    }

    /// Raw `(latest, writing, writer, len of latest's copy)` (for `info`).
    pub(crate) fn raw(&self) -> (u64, u64, u32, u32) {
        let w = &*self.ctl.w;
        let latest = w.latest.load(Relaxed);
        (
            latest,
            self.ctl.lock.writing.load(Relaxed),
            self.ctl.lock.writer.load(Relaxed),
            w.len[self.copy_of(latest)].load(Relaxed),
        )
    }
}

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(test, loom))]
mod loom_tests;
