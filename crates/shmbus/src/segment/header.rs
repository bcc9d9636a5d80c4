//! The header at the start of every segment, and its validation.
//!
//! # Layout (layout version 1)
//!
//! The header fills the first 128 bytes (two cache lines) of every object:
//!
//! | offset | field                | type  | meaning                                        |
//! |-------:|----------------------|-------|------------------------------------------------|
//! |      0 | `magic`              | u64   | [`MAGIC`], `"SHMBUS\0\x01"` in little endian   |
//! |      8 | `layout_version`     | u32   | [`LAYOUT_VERSION`]                             |
//! |     12 | `kind`               | u32   | [`Kind`] as a number                           |
//! |     16 | `total_size`         | u64   | size of the whole object in bytes              |
//! |     24 | `creator_pid`        | u32   | pid of the creating process                    |
//! |     28 | `flags`              | u32   | bits 0..16: the kind's mode; bit 31: persistent |
//! |     32 | `creator_start`      | u64   | creator's start time, clock ticks since boot   |
//! |     40 | `created_unix_ns`    | u64   | creation time, nanoseconds since the epoch     |
//! |     48 | `capacity`           | u64   | kind-specific size (data bytes)                |
//! |     56 | `max_message`        | u32   | channels: largest message; 0 otherwise         |
//! |     60 | `max_slots`          | u32   | channels: subscriber slots; 0 otherwise        |
//! |     64 | `init`               | u32   | 0 while initialising, [`READY`] when usable     |
//! |     68 | padding to 128       |       |                                                |
//!
//! The creator writes every field, then stores `init = READY` with `Release`; an opener loads
//! `init` with `Acquire` and only then reads the fields. The fields are read once, with a
//! volatile copy, into a private [`HeaderFields`], and validated there: the mapping is shared
//! with processes we do not control, so nothing in it is trusted.

pub use crate::kind::Kind;

use crate::error::{Error, Result};
use crate::sync::AtomicU32;

/// `b"SHMBUS\0\x01"` read as a little-endian u64.
// The layout is little endian (module docs), and objects are written in native order.
#[cfg(target_endian = "big")]
compile_error!("shmbus objects are little endian; big-endian targets are not supported");

pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SHMBUS\0\x01");
/// The memory layout this library reads and writes. Objects with another version are refused
/// with [`Error::VersionMismatch`].
pub const LAYOUT_VERSION: u32 = 2;
/// Value of the `init` word once the creator has finished.
pub(crate) const READY: u32 = 0x5245_4459; // "READ" "Y"
/// Size of the header; the kind's own state starts here.
pub(crate) const HEADER_SIZE: usize = 128;

/// The plain fields of the header (offsets 0..64), as written by the creator.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct HeaderFields {
    pub magic: u64,
    pub layout_version: u32,
    pub kind: u32,
    pub total_size: u64,
    pub creator_pid: u32,
    pub flags: u32,
    pub creator_start: u64,
    pub created_unix_ns: u64,
    pub capacity: u64,
    pub max_message: u32,
    pub max_slots: u32,
}

/// The header as it lies in the mapping.
#[repr(C, align(128))]
pub(crate) struct RawHeader {
    pub fields: HeaderFields,
    pub init: AtomicU32,
}

#[cfg(not(loom))]
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<HeaderFields>() == 64);
    assert!(offset_of!(HeaderFields, kind) == 12);
    assert!(offset_of!(HeaderFields, creator_pid) == 24);
    assert!(offset_of!(HeaderFields, capacity) == 48);
    assert!(offset_of!(RawHeader, init) == 64);
    assert!(size_of::<RawHeader>() == HEADER_SIZE);
};

/// Bit of `flags` set when the creator asked for the object to outlive it.
pub(crate) const PERSISTENT: u32 = 1 << 31;

impl HeaderFields {
    /// Decodes the 64 bytes of fields at the start of an object (little endian, as in the
    /// layout table above): the one parser of header bytes read with `pread`.
    pub(crate) fn from_bytes(raw: &[u8; 64]) -> HeaderFields {
        let u64_at = |i: usize| u64::from_le_bytes(raw[i..i + 8].try_into().expect("8 bytes"));
        let u32_at = |i: usize| u32::from_le_bytes(raw[i..i + 4].try_into().expect("4 bytes"));
        HeaderFields {
            magic: u64_at(0),
            layout_version: u32_at(8),
            kind: u32_at(12),
            total_size: u64_at(16),
            creator_pid: u32_at(24),
            flags: u32_at(28),
            creator_start: u64_at(32),
            created_unix_ns: u64_at(40),
            capacity: u64_at(48),
            max_message: u32_at(56),
            max_slots: u32_at(60),
        }
    }

    /// The kind-specific part of `flags` (event mode, channel mode).
    pub(crate) fn kind_flags(&self) -> u32 {
        self.flags & 0xffff
    }

    /// Whether the creator meant the object to outlive it.
    pub(crate) fn persistent(&self) -> bool {
        self.flags & PERSISTENT != 0
    }
}

/// A header that passed validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub kind: Kind,
    pub fields: HeaderFields,
}

impl HeaderFields {
    /// Checks magic, version, kind and size against the object's real size (`file_size`,
    /// from `fstat`). `layout_size` says how big an object of the claimed kind and capacity
    /// must be, or why that capacity is impossible.
    pub(crate) fn validate(
        &self,
        name: &str,
        file_size: u64,
        layout_size: impl Fn(Kind, &HeaderFields) -> std::result::Result<u64, String>,
    ) -> Result<Header> {
        if self.magic != MAGIC {
            return Err(Error::NotShmbus {
                name: name.to_owned(),
            });
        }
        if self.layout_version != LAYOUT_VERSION {
            return Err(Error::VersionMismatch {
                name: name.to_owned(),
                found: self.layout_version,
                expected: LAYOUT_VERSION,
            });
        }
        let corrupt = |reason: String| Error::Corrupt {
            name: name.to_owned(),
            reason,
        };
        let kind = Kind::from_raw(self.kind)
            .ok_or_else(|| corrupt(format!("unknown kind number {}", self.kind)))?;
        if self.total_size != file_size {
            return Err(corrupt(format!(
                "the header says {} bytes but the object has {}",
                self.total_size, file_size
            )));
        }
        let needed = layout_size(kind, self).map_err(corrupt)?;
        if needed != self.total_size {
            return Err(corrupt(format!(
                "a {kind} with capacity {} needs {needed} bytes, the header says {}",
                self.capacity, self.total_size
            )));
        }
        Ok(Header {
            kind,
            fields: *self,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(_: Kind, f: &HeaderFields) -> std::result::Result<u64, String> {
        (HEADER_SIZE as u64)
            .checked_add(f.capacity)
            .ok_or_else(|| "capacity overflows".to_owned())
    }

    fn good() -> HeaderFields {
        HeaderFields {
            magic: MAGIC,
            layout_version: LAYOUT_VERSION,
            kind: Kind::Segment.to_raw(),
            total_size: 228,
            capacity: 100,
            ..Default::default()
        }
    }

    #[test]
    fn accepts_a_good_header() {
        let h = good().validate("x", 228, layout).unwrap();
        assert_eq!(h.kind, Kind::Segment);
    }

    #[test]
    fn each_defect_has_its_error() {
        let mut h = good();
        h.magic = 7;
        assert!(matches!(
            h.validate("x", 228, layout),
            Err(Error::NotShmbus { .. })
        ));
        let mut h = good();
        h.layout_version = 99;
        assert!(matches!(
            h.validate("x", 228, layout),
            Err(Error::VersionMismatch { found: 99, .. })
        ));
        let mut h = good();
        h.kind = 42;
        assert!(matches!(
            h.validate("x", 228, layout),
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(
            good().validate("x", 4096, layout),
            Err(Error::Corrupt { .. })
        ));
        let mut h = good();
        h.capacity = u64::MAX;
        assert!(matches!(
            h.validate("x", 228, layout),
            Err(Error::Corrupt { .. })
        ));
    }
}
