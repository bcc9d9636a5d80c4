//! The segment layer: named shared-memory objects.
//!
//! It holds names and namespaces ([`name`]), the 128-byte header every object starts with
//! and its validation ([`header`]), the creation options and owner policy ([`options`]),
//! the named mapping itself with its permission and owner checks ([`named`], errors in
//! [`os_errors`], runs of shared values checked once in [`region`], an object's size from
//! its header in [`sizes`]), the plain byte stream over a segment ([`stream`]) and the participant
//! slots tied to processes by kernel locks ([`liveness`]).
//!
//! May import: the protocol layer (a kind's size after the header comes from
//! `protocol::layout`, handed over as a `Spec`), the OS layer, the atomics facade (`sync`)
//! and the crate-root vocabulary (`error`, `kind`).
//! Must never touch: an object type (`Event`, `Blackboard`, channels, `Duplex`, handlers,
//! the catalog). A kind is known here only as a [`Kind`](crate::Kind) value and a size.

pub(crate) mod header;
pub(crate) mod liveness;
pub(crate) mod name;
pub(crate) mod named;
pub(crate) mod options;
pub(crate) mod os_errors;
pub(crate) mod region;
pub(crate) mod sizes;
pub(crate) mod stream;

pub(crate) use named::remove_name;
pub use named::Segment;
pub(crate) use os_errors::os_error;
pub use stream::SegmentStream;
