//! Sleeping on a 32-bit word in shared memory, and the deadlines around it.
//!
//! `futex_wait` / `futex_wake` are the only blocking primitives of the crate. Outside loom they
//! are the shared (not `FUTEX_PRIVATE_FLAG`) futex calls made by [`crate::os::sys`]; under loom
//! they are modelled with a mutex and a condition variable, which has exactly the futex
//! contract: the value check and the sleep are atomic with respect to a wake.

use crate::sync::AtomicU32;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

/// When a blocking call gives up. `None` waits forever.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline(Option<Instant>);

impl Deadline {
    /// A deadline `timeout` from now (`None`: never).
    pub(crate) fn after(timeout: Option<Duration>) -> Self {
        // A timeout too large to represent is the same as no timeout.
        Deadline(timeout.and_then(|t| Instant::now().checked_add(t)))
    }

    /// A deadline at `when` (`None`: never).
    pub(crate) fn at(when: Option<Instant>) -> Self {
        Deadline(when)
    }

    /// Time left, `Some(ZERO)` once passed, `None` for no deadline.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        self.0.map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// `spin`, cut short so that spinning never outlasts the deadline.
    pub(crate) fn cap(&self, spin: Duration) -> Duration {
        self.remaining().map_or(spin, |left| left.min(spin))
    }

    /// Whether the deadline has passed.
    pub(crate) fn expired(&self) -> bool {
        self.remaining() == Some(Duration::ZERO)
    }
}

/// Sleeps while `*word == expected`, until woken, `timeout` passes, or a signal arrives.
/// Spurious returns are allowed: callers always re-check their condition.
#[cfg(not(loom))]
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    crate::os::sys::futex_wait(word, expected, timeout);
}

/// Wakes up to `n` threads (in any process) sleeping on `word`.
#[cfg(not(loom))]
pub(crate) fn futex_wake(word: &AtomicU32, n: u32) {
    crate::os::sys::futex_wake(word, n);
}

/// Sleeps while every `*word == expected` of `words`, until one is woken, `deadline` passes
/// or a signal arrives (spurious returns allowed, as for [`futex_wait`]): one
/// `futex_waitv`. `Err(Unsupported)` when the kernel has none (before Linux 5.16), or when
/// `SHMBUS_TEST_NO_WAITV=1` asks to behave so (to test the callers' fallback).
#[cfg(not(loom))]
pub(crate) fn futex_wait_any(
    words: &[(&AtomicU32, u32)],
    deadline: Deadline,
) -> Result<(), Unsupported> {
    use std::sync::atomic::Ordering::Relaxed;
    static PROBED: std::sync::Once = std::sync::Once::new();
    static MISSING: AtomicBool = AtomicBool::new(false);
    PROBED.call_once(|| {
        // A real call on a word that does not hold the expected value must say EAGAIN
        // (mapped to Ok); ENOSYS (old kernel) or EPERM (a seccomp filter) say no.
        let probe = AtomicU32::new(0);
        let works = crate::os::sys::futex_waitv(&[(&probe, 1)], Some(Instant::now())).is_ok();
        let forced = std::env::var_os("SHMBUS_TEST_NO_WAITV").is_some_and(|v| v == "1");
        MISSING.store(forced || !works, Relaxed);
    });
    if MISSING.load(Relaxed) {
        return Err(Unsupported);
    }
    match crate::os::sys::futex_waitv(words, deadline.0) {
        Ok(()) => Ok(()),
        // Anything else (a filter that refuses some calls, say) would make every caller
        // spin: stop using the call in this process.
        Err(_) => {
            MISSING.store(true, Relaxed);
            Err(Unsupported)
        }
    }
}

/// Loom model of `futex_waitv`: as [`futex_wait`]'s, over several words.
#[cfg(loom)]
pub(crate) fn futex_wait_any(
    words: &[(&AtomicU32, u32)],
    _deadline: Deadline,
) -> Result<(), Unsupported> {
    use crate::sync::Ordering;
    let (lock, cv) = &*model::PARK;
    let guard = lock.lock().unwrap();
    if words.iter().all(|(w, e)| w.load(Ordering::SeqCst) == *e) {
        drop(cv.wait(guard).unwrap());
    }
    Ok(())
}

/// The kernel has no `futex_waitv` (Linux before 5.16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unsupported;

#[cfg(loom)]
mod model {
    use loom::sync::{Condvar, Mutex};
    loom::lazy_static! {
        pub(super) static ref PARK: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());
    }
}

/// Loom model of `FUTEX_WAIT`: the check happens under the same lock a wake takes, so a wake
/// that follows a store can never slip between the check and the sleep. Timeouts are not
/// modelled (a model that needed one to finish reports a deadlock, which is the point).
#[cfg(loom)]
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, _timeout: Option<Duration>) {
    use crate::sync::Ordering;
    let (lock, cv) = &*model::PARK;
    let guard = lock.lock().unwrap();
    if word.load(Ordering::SeqCst) == expected {
        drop(cv.wait(guard).unwrap());
    }
}

/// Loom model of `FUTEX_WAKE` (wakes everyone: futex allows spurious wake-ups).
#[cfg(loom)]
pub(crate) fn futex_wake(_word: &AtomicU32, _n: u32) {
    let (lock, cv) = &*model::PARK;
    let _guard = lock.lock().unwrap();
    cv.notify_all();
}

/// Spins (with the CPU's spin hint) for at most `budget`, returning as soon as `ready()`.
/// The clock is read every 128 iterations only: on a VM it can cost more than a poll.
#[cfg(not(loom))]
pub(crate) fn spin_until(budget: Duration, mut ready: impl FnMut() -> bool) -> bool {
    if budget.is_zero() {
        return ready();
    }
    let start = Instant::now();
    loop {
        for _ in 0..128 {
            if ready() {
                return true;
            }
            crate::sync::spin_hint();
        }
        if start.elapsed() >= budget {
            return ready();
        }
    }
}

/// Under loom spinning only multiplies the states to explore: check once.
#[cfg(loom)]
pub(crate) fn spin_until(_budget: Duration, mut ready: impl FnMut() -> bool) -> bool {
    ready()
}

/// How the guard tells the handler thread to stop, without a lost wake-up.
///
/// The thread sets `waiting` before it checks `stop` and sleeps; the guard sets `stop`, then
/// looks at `waiting`. Both with `SeqCst`: if the guard sees `waiting == false`, the thread
/// will see `stop` before its next sleep, so a plain `join` suffices; if it sees `true`, it
/// wakes the sleep until the thread has left it.
#[derive(Debug, Default)]
pub(crate) struct Stopper {
    stop: AtomicBool,
    waiting: AtomicBool,
}

impl Stopper {
    /// Called by the thread just before it sleeps; `true` means stop instead.
    pub(crate) fn enter_wait(&self) -> bool {
        self.waiting.store(true, SeqCst);
        if self.stop.load(SeqCst) {
            self.waiting.store(false, SeqCst);
            return true;
        }
        false
    }

    /// Called by the thread after its sleep.
    pub(crate) fn leave_wait(&self) {
        self.waiting.store(false, SeqCst);
    }

    /// Called by the guard: the thread stops at its next wait (or leaves the current one
    /// once woken).
    pub(crate) fn request_stop(&self) {
        self.stop.store(true, SeqCst);
    }

    /// Whether the thread is inside (or entering) a sleep.
    pub(crate) fn waiting(&self) -> bool {
        self.waiting.load(SeqCst)
    }
}
