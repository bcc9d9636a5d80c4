//! Compile-time checks that LAYOUT.md stays true.
//!
//! LAYOUT.md is the wire format of every shmbus object, written for implementations in
//! other languages. Each fact it states about offsets, sizes and constant values is checked
//! here (or next to the type, in `header`, `event_state`, `latch` and `ring`), so a change to the
//! layout fails to compile until the document (and `LAYOUT_VERSION`, see its rules) follows.
//! Nothing here runs: these are `const` assertions only.
//!
//! Facts that cannot be checked from here because the item is private to `ring`, `channel`
//! or `duplex` (record kinds, the channel's slot offset and limits, the mode flags, the duplex
//! reply bit) are listed in LAYOUT.md's last section.
// Under loom the atomics are the model's, whose size differs from the shared layout.
#![cfg(not(loom))]

use std::mem::{align_of, offset_of, size_of};

use crate::objects::blackboard;
use crate::objects::channel::{LIVENESS_PERIOD, PUBLISHER_BYTE, SUBSCRIBER_BYTES};
use crate::os::sys::SHM_DIR;
use crate::protocol::event_state::{EventMode, EventState};
use crate::protocol::latch::{BoardControl, LatchWords, LockWords, MAX_COPIES, MIN_COPIES};
use crate::protocol::layout::MAX_CAPACITY;
use crate::protocol::layout::{
    board_stride, copies_start, key_table_size, BOARD_CONTROL, BOARD_COPIES, HEADER_BYTES,
    KEY_ENTRY, MAX_BOARD_CAPACITY, MAX_BOARD_KEYS, PAGE, PAGE_COPIES_ABOVE,
};
use crate::protocol::padded::Padded;
use crate::protocol::ring::{
    PubWait, PubWords, RingControl, SubSlot, CLOSED, OPEN, RECORD_HEADER, SLOT_ACTIVE,
};
use crate::segment::header::{
    HeaderFields, Kind, RawHeader, HEADER_SIZE, LAYOUT_VERSION, MAGIC, PERSISTENT, READY,
};
use crate::segment::liveness::{WRITER_SLOTS, WRITER_SLOTS_BASE};
use crate::segment::name::{NAMESPACE_ENV, PREFIX};
use crate::sync::{AtomicU32, AtomicU64};

/// `a == b` for string constants (`str` equality is not `const`).
const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

// Conventions: shared words are plain little-endian integers of their natural size and
// alignment; padding puts a word alone on a 128-byte block.
const _: () = {
    assert!(size_of::<AtomicU32>() == 4 && align_of::<AtomicU32>() == 4);
    assert!(size_of::<AtomicU64>() == 8 && align_of::<AtomicU64>() == 8);
    assert!(size_of::<Padded<AtomicU32>>() == 128);
    assert!(align_of::<Padded<AtomicU32>>() == 128);
};

// Naming.
const _: () = {
    assert!(same(SHM_DIR, "/dev/shm"));
    assert!(same(PREFIX, "shmbus"));
    assert!(same(NAMESPACE_ENV, "SHMBUS_NAMESPACE"));
};

// The common header (LAYOUT.md, "The common header").
const _: () = {
    assert!(MAGIC == 0x0100_5355_424D_4853);
    assert!(MAGIC == u64::from_le_bytes(*b"SHMBUS\0\x01"));
    assert!(LAYOUT_VERSION == 2);
    assert!(READY == 0x5245_4459);
    assert!(HEADER_SIZE == 128);
    assert!(PERSISTENT == 0x8000_0000);
    assert!(MAX_CAPACITY == 1 << 40);

    assert!(offset_of!(HeaderFields, magic) == 0);
    assert!(offset_of!(HeaderFields, layout_version) == 8);
    assert!(offset_of!(HeaderFields, kind) == 12);
    assert!(offset_of!(HeaderFields, total_size) == 16);
    assert!(offset_of!(HeaderFields, creator_pid) == 24);
    assert!(offset_of!(HeaderFields, flags) == 28);
    assert!(offset_of!(HeaderFields, creator_start) == 32);
    assert!(offset_of!(HeaderFields, created_unix_ns) == 40);
    assert!(offset_of!(HeaderFields, capacity) == 48);
    assert!(offset_of!(HeaderFields, max_message) == 56);
    assert!(offset_of!(HeaderFields, max_slots) == 60);
    assert!(size_of::<HeaderFields>() == 64);
    assert!(offset_of!(RawHeader, fields) == 0);
    assert!(offset_of!(RawHeader, init) == 64);
    assert!(size_of::<RawHeader>() == 128 && align_of::<RawHeader>() == 128);

    assert!(Kind::Segment.to_raw() == 1);
    assert!(Kind::Event.to_raw() == 2);
    assert!(Kind::Blackboard.to_raw() == 3);
    assert!(Kind::Channel.to_raw() == 4);
};

// Event (LAYOUT.md, "Event").
const _: () = {
    assert!(offset_of!(EventState, state) == 0);
    assert!(offset_of!(EventState, waiters) == 128);
    assert!(size_of::<EventState>() == 256);
    assert!(crate::protocol::layout::EVENT_SIZE == 256);
    assert!(EventMode::ManualReset.to_flags() == 0);
    assert!(EventMode::AutoReset.to_flags() == 1);
};

// Blackboard (LAYOUT.md, "Blackboard").
const _: () = {
    assert!(blackboard::CONTROL == 128);
    assert!(blackboard::DATA == 384);
    assert!(offset_of!(BoardControl, w) == 0);
    assert!(offset_of!(LatchWords, latest) == 0);
    assert!(offset_of!(LatchWords, reserved) == 8);
    assert!(offset_of!(LatchWords, tick) == 16);
    assert!(offset_of!(LatchWords, reserved2) == 20);
    assert!(offset_of!(LatchWords, len) == 24);
    assert!(size_of::<LatchWords>() == 56);
    assert!(offset_of!(BoardControl, lock) == 128);
    assert!(offset_of!(LockWords, writer) == 0);
    assert!(offset_of!(LockWords, waiters) == 4);
    assert!(offset_of!(LockWords, writing) == 8);
    assert!(size_of::<BoardControl>() == 256);
    assert!(blackboard::CONTROL + size_of::<BoardControl>() == blackboard::DATA);
    // 256 bytes of control words, then `copies` copies, each rounded up to 64 bytes.
    assert!(MIN_COPIES == 2 && MAX_COPIES == 8 && BOARD_COPIES == 4);
    assert!(MAX_BOARD_CAPACITY == u32::MAX as u64);
    assert!(board_stride(0) == 0);
    assert!(board_stride(1) == 64);
    assert!(board_stride(64) == 64);
    assert!(board_stride(65) == 128);
    assert!(board_stride(2048) == 2048);
    assert!(board_stride(2049) == 4096);
    assert!(board_stride(4096) == 4096);
    assert!(board_stride(4097) == 8192);
    assert!(PAGE == 4096 && PAGE_COPIES_ABOVE == 2048);
    assert!(HEADER_BYTES as usize == HEADER_SIZE);
    assert!(copies_start(384, 2048) == 384 && copies_start(384, 2049) == 4096);
    assert!(copies_start(4096, 4096) == 4096);
    // Keyed blackboards (LAYOUT.md 6.1).
    assert!(Kind::KeyedBlackboard.to_raw() == 5);
    assert!(KEY_ENTRY == 64 && MAX_BOARD_KEYS == 4096 && BOARD_CONTROL == 256);
    assert!(BOARD_CONTROL as usize == size_of::<BoardControl>());
    assert!(key_table_size(1) == 128);
    assert!(key_table_size(2) == 128);
    assert!(key_table_size(3) == 256);
    // Writer lock bytes.
    assert!(WRITER_SLOTS_BASE == 1 << 40);
    assert!(WRITER_SLOTS == 4096);
};

// Channel (LAYOUT.md, "Channel").
const _: () = {
    assert!(offset_of!(PubWords, tail_intent) == 0);
    assert!(offset_of!(PubWords, tail) == 8);
    assert!(offset_of!(PubWords, head) == 16);
    assert!(offset_of!(PubWords, published) == 24);
    assert!(offset_of!(PubWords, notify) == 32);
    assert!(offset_of!(PubWords, state) == 36);
    assert!(offset_of!(PubWords, asym) == 40);
    assert!(size_of::<PubWords>() <= 128);
    assert!(offset_of!(RingControl, publisher) == 0);
    assert!(offset_of!(RingControl, sub_waiters) == 128);
    assert!(offset_of!(RingControl, pub_wait) == 256);
    assert!(size_of::<RingControl>() == 384);
    assert!(offset_of!(PubWait, waiting) == 0);
    assert!(offset_of!(PubWait, space) == 4);
    // Subscriber slots follow the control block, 128 bytes each.
    assert!(HEADER_SIZE + size_of::<RingControl>() == 512);
    assert!(offset_of!(SubSlot, cursor) == 0);
    assert!(offset_of!(SubSlot, state) == 8);
    assert!(size_of::<SubSlot>() == 128 && align_of::<SubSlot>() == 128);

    assert!(RECORD_HEADER == 16);
    assert!(OPEN == 1);
    assert!(CLOSED == 2);
    assert!(SLOT_ACTIVE == 1);

    // Lock bytes: the publisher, then one per subscriber slot (at most 1024).
    assert!(PUBLISHER_BYTE == 1 << 41);
    assert!(SUBSCRIBER_BYTES == (1 << 41) + 1);
    // The three lock ranges never overlap, and a channel's lie beyond its largest size.
    assert!(WRITER_SLOTS_BASE + (WRITER_SLOTS as u64) < PUBLISHER_BYTE);
    assert!(HEADER_SIZE as u64 + 384 + 128 * 1024 + MAX_CAPACITY < PUBLISHER_BYTE);
    assert!(LIVENESS_PERIOD.as_millis() == 20);

    // Ring records and positions (protocol/ring), the channel's blocks and limits
    // (objects/channel), the duplex reply bit (objects/duplex).
    assert!(crate::protocol::ring::KIND_DATA == 1 && crate::protocol::ring::KIND_PAD == 2);
    assert!(crate::protocol::ring::MAX_POSITION == 1 << 62);
    assert!(crate::protocol::ring::MAX_JUMPS == 1 << 16);
    assert!(crate::objects::channel::CONTROL == 128 && crate::objects::channel::SLOTS == 512);
    assert!(
        crate::protocol::layout::MAX_SLOTS == 1024 && crate::protocol::layout::MIN_CAPACITY == 64
    );
    assert!(crate::objects::duplex::REPLY == 1 << 63);
};
