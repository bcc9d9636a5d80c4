//! How big an object is, from its header: the whole object (checked against the file at
//! every open) and the part a read-only inspection copies.

use crate::kind::Kind;
use crate::protocol::layout::Spec;
use crate::segment::header::{Header, HeaderFields, HEADER_SIZE};

/// The shape the header's fields describe.
fn spec_of(fields: &HeaderFields) -> Spec {
    Spec {
        capacity: fields.capacity,
        flags: fields.kind_flags(),
        max_message: fields.max_message,
        max_slots: fields.max_slots,
    }
}

/// How big an object of `kind` with the header's capacity must be, or why it cannot exist.
pub(crate) fn layout_size(kind: Kind, fields: &HeaderFields) -> std::result::Result<u64, String> {
    Ok(HEADER_SIZE as u64 + crate::protocol::layout::state_size(kind, &spec_of(fields))?)
}

/// How much of a validated object a read-only inspection copies: the header and the kind's
/// control words, never the bulk data.
pub(super) fn snapshot_prefix(header: &Header) -> usize {
    let control = crate::protocol::layout::control_size(header.kind, &spec_of(&header.fields));
    // Validated: at most the object's size, which fits in the address space.
    usize::try_from(HEADER_SIZE as u64 + control).unwrap_or(usize::MAX)
}
