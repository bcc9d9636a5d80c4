//! The object layer: the public objects, on named segments and pure protocols.
//!
//! It holds events ([`event`]), blackboards ([`blackboard`]), broadcast channels
//! ([`channel`]: config and the shared handle, the publisher side, the subscriber side, the
//! samples a receive hands out), duplex links ([`duplex`], two channels), receive handlers on
//! background threads ([`handler`]), waiting on many of them at once ([`waitset`]), and the catalog of objects with `gc` ([`catalog`],
//! which reads every kind and so comes last).
//!
//! May import: every layer below (segment, protocol, OS), the atomics facade (`sync`) and the
//! crate-root vocabulary (`error`, `kind`); an object may use another object (a duplex is
//! two channels, the catalog reads every kind).
//! Must never touch: `rustix` or `libc` (system calls go through `os`), or a shared word
//! outside the protocol that owns it.

pub(crate) mod blackboard;
pub(crate) mod catalog;
pub(crate) mod channel;
pub(crate) mod duplex;
pub(crate) mod event;
pub(crate) mod handler;
#[cfg(not(loom))]
pub(crate) mod waitset;
