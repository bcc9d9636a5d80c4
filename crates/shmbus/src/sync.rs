//! The one place atomics come from.
//!
//! Under `cfg(loom)` these are loom's model-checked atomics, so the protocol cores
//! (`latch`, `event_state`, `ring`, `wait`) can be explored exhaustively on heap memory.
//! Everywhere else they are `std`'s, whose layout equals the plain integer's, so the same
//! types can be placed in a shared mapping.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicU8};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicU8};

pub(crate) use std::sync::atomic::Ordering;

/// Spin-loop hint.
#[cfg(not(loom))]
#[inline]
pub(crate) fn spin_hint() {
    std::hint::spin_loop();
}

/// Gives the CPU away (another process may need it to finish what we wait for).
#[inline]
pub(crate) fn yield_now() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::thread::yield_now();
}

/// Waits a moment for another party to finish a short step (a loom yield under loom).
#[inline]
pub(crate) fn backoff() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}
