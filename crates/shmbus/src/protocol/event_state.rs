//! The event's futex-word protocol: manual- and auto-reset, with no lost wake-up.
//!
//! # Layout (after the 128-byte header)
//!
//! | offset | field     | type                  | written by                |
//! |-------:|-----------|-----------------------|---------------------------|
//! |    128 | `state`   | u32, own 128-byte line | `set` / `reset` / waiters that consume (auto) |
//! |    256 | `waiters` | u32, own 128-byte line | waiters                   |
//!
//! # The state word
//!
//! | mode          | bits                                             |
//! |---------------|--------------------------------------------------|
//! | manual reset  | bit 0: set; bits 1..32: generation, +1 per set that changed unset to set |
//! | auto reset    | number of pending releases, at most `waiters + 1` |
//!
//! A manual-reset waiter returns when the event is set *or the generation moved on*: a
//! waiter that slept through a `set` quickly followed by `reset` is still released (the
//! original design lost exactly that wake-up). An auto-reset `set` adds one release (unless
//! there are already more than waiters), and each released waiter takes one with a CAS, so a
//! set releases exactly one waiter, and stays set when nobody waits (Win32 semantics).
//!
//! `waiters` counts threads, in any process, that are about to sleep or sleeping. A `set`
//! makes the futex wake syscall only when it is non-zero. Both sides access `waiters` with
//! read-modify-writes (the setter adds 0), so the two RMWs are ordered in `waiters`'
//! modification order: either the setter's comes later and sees the waiter, or the waiter's
//! reads from the setter's and synchronises with it (AcqRel), so the waiter's next load of
//! `state` sees the set. The futex call re-checks `state` in the kernel, so a set between
//! that load and the sleep is not lost either. (A fence-based Dekker would do too, but loom
//! cannot check `SeqCst` fences; this variant it can, and on x86 a `lock xadd` on a line
//! the setter owns costs less than `mfence`.)

use std::fmt;
use std::time::Duration;

use crate::os::wait::{futex_wait, futex_wake, spin_until, Deadline};
use crate::protocol::padded::Padded;
use crate::protocol::shared_bytes::SharedSafe;
use crate::sync::{AtomicU32, Ordering::*};

/// How an [`Event`](crate::Event) behaves after it releases waiters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventMode {
    /// Stays set, releasing every waiter, until [`Event::reset`](crate::Event::reset).
    ManualReset,
    /// Each `set` releases exactly one waiter (or the next one to come), then the event
    /// is unset again.
    AutoReset,
}

impl EventMode {
    pub(crate) const fn to_flags(self) -> u32 {
        match self {
            EventMode::ManualReset => 0,
            EventMode::AutoReset => 1,
        }
    }

    pub(crate) fn from_flags(flags: u32) -> Option<EventMode> {
        match flags {
            0 => Some(EventMode::ManualReset),
            1 => Some(EventMode::AutoReset),
            _ => None,
        }
    }
}

impl fmt::Display for EventMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventMode::ManualReset => "manual-reset",
            EventMode::AutoReset => "auto-reset",
        })
    }
}

/// The shared state of an event (see the module docs for the protocol).
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct EventState {
    pub(crate) state: Padded<AtomicU32>,
    pub(crate) waiters: Padded<AtomicU32>,
}

// SAFETY: repr(C), two atomics and alignment padding: valid for any bits, mutated only
// through the atomics.
#[allow(unsafe_code)]
unsafe impl SharedSafe for EventState {}

#[cfg(not(loom))]
const _: () = {
    assert!(std::mem::size_of::<EventState>() == 256);
    assert!(std::mem::offset_of!(EventState, waiters) == 128);
};

impl EventState {
    pub(crate) fn set(&self, mode: EventMode) {
        match mode {
            EventMode::ManualReset => {
                let mut s = self.state.load(Relaxed);
                loop {
                    if s & 1 == 1 {
                        return; // already set: nothing changes, nobody new to wake
                    }
                    let next = (s | 1).wrapping_add(2);
                    // SYNC: Release pairs with the waiters' Acquire loads of `state`, so what
                    // the setter wrote before `set` is visible to whoever it releases.
                    match self.state.compare_exchange_weak(s, next, Release, Relaxed) {
                        Ok(_) => break,
                        Err(now) => s = now,
                    }
                }
                self.wake_if_waiters(u32::MAX);
            }
            EventMode::AutoReset => {
                let mut s = self.state.load(Relaxed);
                loop {
                    let waiters = self.waiters.load(Relaxed);
                    if s > waiters {
                        return; // every waiter has a release pending, plus one: stays set
                    }
                    match self.state.compare_exchange_weak(s, s + 1, Release, Relaxed) {
                        Ok(_) => break,
                        Err(now) => s = now,
                    }
                }
                self.wake_if_waiters(1);
            }
        }
    }

    fn wake_if_waiters(&self, n: u32) {
        // SYNC: an RMW, paired with the waiter's AcqRel fetch_add in `wait`: either we see
        // its count, or it reads from us and then sees our new state.
        if self.waiters.fetch_add(0, AcqRel) > 0 {
            futex_wake(&self.state, n);
        }
    }

    pub(crate) fn reset(&self, mode: EventMode) {
        match mode {
            EventMode::ManualReset => {
                self.state.fetch_and(!1, Relaxed);
            }
            EventMode::AutoReset => self.state.store(0, Relaxed),
        }
    }

    pub(crate) fn is_set(&self, mode: EventMode) -> bool {
        let s = self.state.load(Relaxed);
        match mode {
            EventMode::ManualReset => s & 1 == 1,
            EventMode::AutoReset => s > 0,
        }
    }

    pub(crate) fn waiters(&self) -> u32 {
        self.waiters.load(Relaxed)
    }

    pub(crate) fn raw_state(&self) -> u32 {
        self.state.load(Relaxed)
    }

    /// Whether a waiter that last looked when the state was `*seen` would be released now
    /// (manual reset: set now, or set since, even if reset again: a pulse); for auto
    /// reset, takes a release (as a wait would). Updates `*seen`. For a waiter on many
    /// objects, which sleeps on `state` after joining `waiters` (the steps of `wait`).
    pub(crate) fn released_since(&self, mode: EventMode, seen: &mut u32) -> bool {
        match mode {
            EventMode::ManualReset => {
                // SYNC: Acquire pairs with the Release CAS in `set`.
                let s = self.state.load(Acquire);
                let released = s & 1 == 1 || (s | 1) != (*seen | 1);
                *seen = s;
                released
            }
            EventMode::AutoReset => self.try_take(),
        }
    }

    /// Takes one pending release (auto reset).
    fn try_take(&self) -> bool {
        let mut s = self.state.load(Relaxed);
        while s > 0 {
            // SYNC: Acquire pairs with the Release CAS in `set`.
            match self.state.compare_exchange_weak(s, s - 1, Acquire, Relaxed) {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
        false
    }

    /// Waits until released or `deadline`; `true` when released.
    pub(crate) fn wait(&self, mode: EventMode, spin: Duration, deadline: Deadline) -> bool {
        // SYNC: Acquire pairs with the Release CAS in `set`.
        let start = self.state.load(Acquire);
        let released = |s: u32| s & 1 == 1 || (s | 1) != (start | 1);
        // Checks the condition; for auto reset, takes the release. Returns the state word
        // to sleep on when not released.
        let check = || -> Result<(), u32> {
            match mode {
                EventMode::ManualReset => {
                    let s = self.state.load(Acquire);
                    if released(s) {
                        Ok(())
                    } else {
                        Err(s)
                    }
                }
                EventMode::AutoReset => {
                    if self.try_take() {
                        Ok(())
                    } else {
                        Err(0)
                    }
                }
            }
        };
        if spin_until(deadline.cap(spin), || check().is_ok()) {
            return true;
        }
        // Counted as a waiter for the whole sleep phase, not per sleep: a setter that reads
        // `waiters` never sees a waiter vanish and come back while it still waits.
        // SYNC: AcqRel RMW, paired with the setter's RMW in `wake_if_waiters`.
        self.waiters.fetch_add(1, AcqRel);
        let released = loop {
            match check() {
                Ok(()) => break true,
                Err(_) if deadline.expired() => break false,
                Err(s) => futex_wait(&self.state, s, deadline.remaining()),
            }
        };
        self.waiters.fetch_sub(1, Relaxed);
        released
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn manual_reset_pulse_releases_sleepers() {
        let st = Arc::new(EventState::default());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let st = st.clone();
                std::thread::spawn(move || {
                    st.wait(
                        EventMode::ManualReset,
                        Duration::ZERO,
                        Deadline::after(Some(Duration::from_secs(10))),
                    )
                })
            })
            .collect();
        while st.waiters() < 3 {
            std::thread::yield_now();
        }
        // set then reset at once: every sleeper was present at the set and must go.
        st.set(EventMode::ManualReset);
        st.reset(EventMode::ManualReset);
        for w in waiters {
            assert!(w.join().unwrap());
        }
    }

    #[test]
    fn auto_reset_releases_one_per_set_and_stays_set_without_waiters() {
        let st = EventState::default();
        st.set(EventMode::AutoReset);
        st.set(EventMode::AutoReset); // no waiters: stays set once, not twice
        let d = || Deadline::after(Some(Duration::from_millis(20)));
        assert!(st.wait(EventMode::AutoReset, Duration::ZERO, d()));
        assert!(!st.wait(EventMode::AutoReset, Duration::ZERO, d()));
    }

    #[test]
    fn timeout_is_honoured() {
        let st = EventState::default();
        let t = Instant::now();
        assert!(!st.wait(
            EventMode::ManualReset,
            Duration::ZERO,
            Deadline::after(Some(Duration::from_millis(30)))
        ));
        assert!(t.elapsed() >= Duration::from_millis(30));
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    fn forever() -> Deadline {
        Deadline::after(None)
    }

    /// A waiter racing a set always wakes (a lost wake-up is a loom deadlock).
    #[test]
    fn manual_reset_never_loses_a_wakeup() {
        loom::model(|| {
            let st = Arc::new(EventState::default());
            let w = {
                let st = st.clone();
                thread::spawn(move || st.wait(EventMode::ManualReset, Duration::ZERO, forever()))
            };
            st.set(EventMode::ManualReset);
            assert!(w.join().unwrap());
        });
    }

    /// A waiter already waiting is released by a set even if a reset follows at once.
    #[test]
    fn manual_reset_pulse_releases_a_waiting_thread() {
        loom::model(|| {
            let st = Arc::new(EventState::default());
            let w = {
                let st = st.clone();
                thread::spawn(move || st.wait(EventMode::ManualReset, Duration::ZERO, forever()))
            };
            while st.waiters() == 0 {
                loom::thread::yield_now();
            }
            st.set(EventMode::ManualReset);
            st.reset(EventMode::ManualReset);
            assert!(w.join().unwrap());
        });
    }

    /// Two sets release two waiters; no release is lost or doubled.
    #[test]
    fn auto_reset_two_sets_two_waiters() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(|| {
            let st = Arc::new(EventState::default());
            let ws: Vec<_> = (0..2)
                .map(|_| {
                    let st = st.clone();
                    thread::spawn(move || st.wait(EventMode::AutoReset, Duration::ZERO, forever()))
                })
                .collect();
            // Wait until both announced themselves, so the second set is not capped away.
            while st.waiters() < 2 {
                loom::thread::yield_now();
            }
            st.set(EventMode::AutoReset);
            st.set(EventMode::AutoReset);
            for w in ws {
                assert!(w.join().unwrap());
            }
        });
    }
}
