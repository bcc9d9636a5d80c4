//! # shmbus
//!
//! Inter-process communication through shared memory on Linux.
//!
//! shmbus gives processes on one machine named objects that live in POSIX shared
//! memory (`/dev/shm/shmbus.<name>`). Every kind has an example on its type:
//!
//! - **Segments** — [`Segment`]: a named block of bytes with a [`Read`](std::io::Read) +
//!   [`Write`](std::io::Write) + [`Seek`](std::io::Seek) stream view ([`SegmentStream`]).
//! - **Events** — [`Event`]: a cross-process event, manual- or auto-reset
//!   ([`EventMode`]), that never loses a wake-up.
//! - **Blackboards** — [`Blackboard`]: the latest value of something, written by one writer
//!   at a time and read torn-read free by any number of readers, with `wait_newer` and a
//!   receive handler on a background thread ([`Blackboard::on_update`]). Example below.
//!   [`KeyedBlackboard`]: a fixed set of named keys, each its own board ([`BoardKey`]).
//! - **Channels** — [`Publisher`] and [`Subscriber`]: a broadcast stream of messages from
//!   one publisher to many subscribers, shaped by [`ChannelConfig`]: lossy with exact loss
//!   counts, or back-pressure ([`Mode`]); zero-copy both ways ([`Loan`], [`Sample`]); a
//!   receive handler per subscriber ([`Subscriber::on_message`], [`HandlerGuard`]).
//! - **Duplex links** — [`Duplex`]: two channels, one per direction, between a listener
//!   and a connector, with request/reply ids ([`Received`]).
//! - **Catalog and cleanup** — [`list`], [`inspect`] and [`gc`]: what exists, what state
//!   it is in, and removal of objects whose participants all died (the CLI's `ls`, `info`
//!   and `gc`).
//!
//! Names are checked by [`Name`]; [`Options`] sets the namespace, permissions, owners and
//! timeouts of any of them; every failure is an [`Error`] that says what to do.
//!
//! Inside, the crate is four layers, each a folder: `os` (system calls), `protocol` (the
//! shared-memory protocols, pure), `segment` (named mappings and their header) and
//! `objects` (the types above). ARCHITECTURE.md has the map and the rules, which
//! `tests/architecture.rs` enforces.
//!
//! Every byte read from a mapping is treated as untrusted: a corrupt or hostile segment
//! gives an [`Error`], never a panic or undefined behaviour. Objects owned by another user
//! are refused unless allowed ([`Options::allow_owner`]); SECURITY.md has the trust model.
//!
//! # `fork()`
//!
//! Open handles in the process that uses them. A `fork()` child inherits copies of its
//! parent's handles, but they are inert there: every operation of a [`Publisher`],
//! [`Subscriber`], [`Duplex`], [`Loan::commit`], [`HandlerGuard::stop`] and
//! [`Blackboard::write`] returns [`Error::ForeignProcess`] (a loan's bytes can still be
//! written through its `DerefMut`, which cannot fail: they are the parent's uncommitted
//! record, so do not touch a loan taken before the fork), and dropping them in the child changes nothing shared
//! (the parent's stream stays open, its slots stay taken, its objects stay). The parent's
//! liveness stays its own: when it dies, its peers learn it at once, whatever children it
//! left. What is harmless to share keeps working in the child: [`Event`] (wait, set,
//! reset), [`Blackboard`] reads and waits, and a [`Segment`]'s stream. A child that wants to
//! take part opens its own handles after the fork (or is started with `spawn`, e.g.
//! Python's `multiprocessing` `spawn`/`forkserver` start methods).
//!
//! ```
//! # shmbus::doctest_namespace();
//! use shmbus::Blackboard;
//! use std::time::Duration;
//!
//! let board = Blackboard::create("doc.lib.temperature", 64)?;
//! let reader = Blackboard::open("doc.lib.temperature")?;
//! board.write(b"21.5 C")?;
//! let (version, bytes) = reader.read()?;
//! assert_eq!((version, bytes.as_slice()), (1, &b"21.5 C"[..]));
//! // Wait for something newer than what we hold (times out here: nobody writes).
//! assert_eq!(reader.wait_newer(version, Some(Duration::from_millis(10)))?, None);
//! # Ok::<(), shmbus::Error>(())
//! ```
#![deny(unsafe_code, unsafe_op_in_unsafe_fn, missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod error;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod kind;
mod layout_check;
mod objects;
mod os;
mod protocol;
mod segment;
mod sync;

pub use error::{Error, Result};
pub use kind::Kind;
pub use objects::blackboard::{Blackboard, BoardKey, KeyedBlackboard};
pub use objects::catalog::{gc, inspect, list, HeaderInfo, KeyState, LiveState, ObjectInfo};
pub use objects::channel::{
    ChannelConfig, Iter, Loan, Message, Mode, Publisher, Sample, Subscriber,
};
pub use objects::duplex::{Duplex, Received};
pub use objects::event::{Event, EventMode};
pub use objects::handler::{HandlerGuard, HandlerStats, Update};
#[cfg(not(loom))]
pub use objects::waitset::{WaitKey, WaitSet};
pub use segment::header::LAYOUT_VERSION;
pub use segment::name::Name;
pub use segment::options::Options;
pub use segment::{Segment, SegmentStream};

/// Puts this process in a namespace of its own, so that doc examples running in parallel
/// (and objects they leave if they fail) never collide with real objects.
#[doc(hidden)]
pub fn doctest_namespace() {
    std::env::set_var(
        segment::name::NAMESPACE_ENV,
        format!("doctest-{}", std::process::id()),
    );
}

/// The README's examples, run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
