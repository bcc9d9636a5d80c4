//! Heap-backed rings for the unit tests and the loom models (same code under both).

use super::*;

pub(super) struct Owned {
    pub ctl: RingControl,
    pub slots: Vec<SubSlot>,
    pub data: Vec<AtomicU64>,
    pub capacity: u64,
    pub backpressure: bool,
}

impl Owned {
    pub(super) fn new(capacity: u64, backpressure: bool) -> Owned {
        Owned {
            ctl: RingControl::default(),
            slots: (0..2).map(|_| SubSlot::default()).collect(),
            data: (0..capacity / 8).map(|_| AtomicU64::new(0)).collect(),
            capacity,
            backpressure,
        }
    }

    pub(super) fn ring(&self) -> Ring<'_> {
        Ring {
            ctl: &self.ctl,
            slots: &self.slots,
            data: &self.data,
            capacity: self.capacity,
            max_message: max_message_for(self.capacity),
            backpressure: self.backpressure,
        }
    }
}

/// Publishes `msg`; `false` when back-pressure refuses.
pub(super) fn send(ring: &Ring<'_>, st: &mut PubState, msg: &[u8]) -> bool {
    match ring.reserve(st, msg.len() as u64) {
        Some(r) => {
            ring.write_payload(&r, msg);
            ring.commit(st, r);
            true
        }
        None => false,
    }
}
