//! The OS layer: the only code that makes system calls.
//!
//! It holds the calls themselves ([`sys`]: shared-memory files, mappings, futexes, OFD
//! locks, processes), what keeps descriptors harmless across `fork()` ([`fork`]), and the
//! blocking wait on a futex word with its stop flag ([`wait`]), and the wait for a file of
//! the shared-memory directory to be created or written ([`watch`]), and the one thread
//! per process that turns such events into futex wake-ups ([`watcher`]).
//!
//! May import: `std`, `rustix`, `libc`, the atomics facade (`protocol::sync`, which only
//! re-exports `std`'s or loom's atomics) and the crate-root vocabulary (`error`, `kind`).
//! Must never touch: shared-memory layouts, object names or any type of the layers above;
//! errors leave it as `std::io::Error` and the caller adds the object's name.

pub(crate) mod fork;
pub(crate) mod sys;
pub(crate) mod wait;
pub(crate) mod watch;
pub(crate) mod watcher;
