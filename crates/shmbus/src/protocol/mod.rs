//! The protocol layer: the shared-memory protocols, pure.
//!
//! It holds the broadcast ring ([`ring`]), the blackboard's latch ([`latch`]), the
//! event's futex-word protocol ([`event_state`]), the byte copies in and out of shared words
//! ([`shared_bytes`]), cache-line padding ([`padded`]) and each kind's layout after the
//! header: sizes, offsets, limits ([`layout`]). Every protocol works on memory it is handed
//! (`&` references to atomics), so the same code runs on a shared mapping and, under loom
//! and miri, on the heap.
//!
//! May import: the OS layer's waits (`os::wait`: futex wait and wake, deadlines, stop flags),
//! the atomics facade (`sync`) and the crate-root vocabulary (`error`, `kind`).
//! Must never touch: files, names, mappings, permissions or liveness locks (the segment
//! layer), the public objects, or a system call of its own.

pub(crate) mod event_state;
pub(crate) mod latch;
pub(crate) mod layout;
pub(crate) mod padded;
pub(crate) mod ring;
pub(crate) mod shared_bytes;
#[cfg(all(test, loom))]
mod waitset_loom;
