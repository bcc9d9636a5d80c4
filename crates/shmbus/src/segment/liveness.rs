//! Tying participants to their processes with open-file-description locks.
//!
//! A participant (today: a blackboard writer) claims a *slot*: an exclusive OFD lock on one
//! byte of the object's file, at `base + slot`. The byte lies far past the end of the data
//! (locks may cover bytes beyond EOF), so it never touches the mapping. The kernel releases
//! the lock when the last descriptor of the open file description closes, which includes the
//! process dying by `kill -9`, so "slot locked" is exactly "participant alive", with no
//! heartbeat and no confusion from reused pids.

use crate::error::Result;
use crate::os::sys;
use crate::segment::{os_error, Segment};

/// Where the blackboard writers' slots start in the lock space of the file.
pub(crate) const WRITER_SLOTS_BASE: u64 = 1 << 40;
/// How many writer slots exist.
pub(crate) const WRITER_SLOTS: u32 = 4096;

/// Claims the first free slot in `1..=count`; `Ok(None)` when all are taken.
pub(crate) fn claim_slot(seg: &Segment, base: u64, count: u32) -> Result<Option<u32>> {
    for slot in 1..=count {
        let got = sys::ofd_try_lock(sys::borrow(seg.lock_fd()?), base + u64::from(slot))
            .map_err(|e| os_error(seg.name(), "lock a slot of", e))?;
        if got {
            return Ok(Some(slot));
        }
    }
    Ok(None)
}

/// Whether the participant in `slot` lives, seen from `seg`'s open file description (which
/// must not be the one holding the slot). When the kernel cannot answer, says alive: a wrong
/// "alive" only makes us wait, a wrong "dead" would break someone's write.
pub(crate) fn slot_alive(seg: &Segment, base: u64, slot: u32) -> bool {
    sys::ofd_is_locked(sys::borrow(seg.fd()), base + u64::from(slot)).unwrap_or(true)
}
