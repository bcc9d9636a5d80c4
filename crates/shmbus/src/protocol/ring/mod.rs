//! The broadcast ring: one publisher, many subscribers, variable-size records.
//!
//! Pure protocol over a [`RingControl`], a table of [`SubSlot`]s and the ring's words,
//! wherever they live (a shared mapping, or the heap under loom). No files, no syscalls but
//! the futex calls of [`crate::os::wait`].
//!
//! # Positions and records
//!
//! Positions are byte counts since the channel was created (u64, never wrap in practice);
//! `pos & (capacity - 1)` is the offset in the ring. Records are 16-byte aligned:
//!
//! | bytes | field                                                  |
//! |------:|--------------------------------------------------------|
//! |  0..8 | `len` (low 32 bits) and `kind` (high 32: 1 data, 2 pad) |
//! | 8..16 | `seq`: the message number (0, 1, 2, ...); 0 for padding |
//! |  16.. | payload, `len` bytes, then zeros up to a multiple of 16 |
//!
//! A record never wraps: when it does not fit before the end of the ring, a padding record
//! fills the rest and the record starts at offset 0.
//!
//! # Publisher words (one cache line, written only by the publisher)
//!
//! | word          | meaning                                                            |
//! |---------------|--------------------------------------------------------------------|
//! | `tail_intent` | end of the record being written; equals `tail` between sends     |
//! | `tail`        | end of the last committed record (subscribers read up to here)   |
//! | `head`        | start of the oldest record still whole in the ring               |
//! | `published`   | number of committed messages                                      |
//! | `notify`      | futex word and seqlock over (`tail`, `published`): odd while they change |
//! | `state`       | 0 no publisher yet, 1 open, 2 closed cleanly (end of stream)      |
//! | `asym`        | 1: the publisher checks `sub_waiters` with a plain load (see below) |
//!
//! # Protocol
//!
//! Publisher `reserve`: compute where the record goes (after padding); in back-pressure mode
//! make sure no active subscriber's cursor is older than the bytes to be overwritten (else
//! `Full`); move `head` past every record that will be overwritten; store `tail_intent`,
//! fence(Release); write headers and payload. `commit`: `notify` odd, store `published` and
//! `tail` (Release), `notify` even (Release); RMW `sub_waiters` and wake sleepers if any.
//!
//! Subscriber `try_read`: load `tail` (Acquire); nothing new if the cursor equals it; read
//! the record header and payload (Relaxed atomic loads); fence(Acquire); load
//! `tail_intent`: if the publisher has begun writing within `capacity` bytes past the
//! record, it may have been overwritten mid-copy, so the copy is discarded and the subscriber
//! jumps to `head` (lapped). Only then are the header's claims trusted, and checked: a
//! record that is stable but impossible is `Corrupt`. The record's `seq` against the
//! expected one gives the exact number of messages lost.
//!
//! Waking sleepers: after `commit` the publisher must see a subscriber that is about to
//! sleep, or that subscriber must see the commit (Dekker). Two ways, chosen per publisher:
//! the portable one is a read-modify-write of `sub_waiters` on both sides (as in `event`);
//! the fast one, when the publisher could register for `membarrier(2)`, is an asymmetric
//! fence: the publisher reads `sub_waiters` with a plain load after a compiler fence (no
//! `lock` instruction per send), and a subscriber, after announcing itself and before it
//! re-checks and sleeps, calls `membarrier(GLOBAL_EXPEDITED)`, which makes the publisher's
//! CPU execute a full barrier: either the publisher's load comes after it and sees the
//! subscriber, or its earlier stores (the commit) are visible to the re-check.
//!
//! Back-pressure: a subscriber publishes its cursor in its slot (Release) after it is done
//! with a record; the publisher reads cursors (Acquire) before overwriting. A subscriber that
//! frees space while the publisher sleeps for it wakes it (fence(SeqCst) Dekker on
//! `pub_waiting`; the publisher also re-checks every few milliseconds, so even a wake-up lost
//! to a weaker memory model would cost latency, never a hang).

use crate::os::wait::futex_wake;
use crate::protocol::padded::Padded;
use crate::protocol::shared_bytes::SharedSafe;
use crate::protocol::shared_bytes::{load_bytes, store_bytes};
use crate::sync::{fence, AtomicU32, AtomicU64, Ordering::*};

#[cfg(all(test, loom))]
mod loom_tests;
mod publish;
mod subscribe;
#[cfg(test)]
mod test_ring;
#[cfg(all(test, not(loom)))]
mod tests;

/// Bytes of a record header.
pub(crate) const RECORD_HEADER: u64 = 16;
pub(crate) const KIND_DATA: u32 = 1;
pub(crate) const KIND_PAD: u32 = 2;
/// `state` values (0, the initial one, means no publisher has attached yet).
pub(crate) const OPEN: u32 = 1;
pub(crate) const CLOSED: u32 = 2;
/// Bit 0 of a slot's `state`: active. The other bits count activations, so a publisher that
/// frees a dead subscriber's slot with a CAS cannot free a new owner's by mistake.
pub(crate) const SLOT_ACTIVE: u32 = 1;
/// Positions beyond this are impossible (2^62 bytes: a century at 1 TB/s) and refused, so
/// that position arithmetic can never overflow whatever another process wrote.
pub(crate) const MAX_POSITION: u64 = 1 << 62;
/// How many consecutive laps one read tolerates before it calls the ring corrupt.
pub(crate) const MAX_JUMPS: u32 = 1 << 16;

/// Written only by the publisher.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct PubWords {
    pub tail_intent: AtomicU64,
    pub tail: AtomicU64,
    pub head: AtomicU64,
    pub published: AtomicU64,
    pub notify: AtomicU32,
    pub state: AtomicU32,
    /// 1 when the publisher skips the fence before reading `sub_waiters` (it registered for
    /// `membarrier`, and sleeping subscribers issue one); 0 when it uses the RMW.
    pub asym: AtomicU32,
}

/// A back-pressured publisher waiting for space.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct PubWait {
    /// Non-zero while the publisher sleeps for space.
    pub waiting: AtomicU32,
    /// Futex word the publisher sleeps on; subscribers bump it when they free space.
    pub space: AtomicU32,
}

/// Control block of a channel: 384 bytes, three lines written by different parties.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RingControl {
    pub publisher: Padded<PubWords>,
    pub sub_waiters: Padded<AtomicU32>,
    pub pub_wait: Padded<PubWait>,
}

/// One subscriber's slot (128 bytes).
#[repr(C, align(128))]
#[derive(Debug, Default)]
pub(crate) struct SubSlot {
    /// Next position the subscriber reads (back-pressure: the publisher keeps it intact).
    pub cursor: AtomicU64,
    /// Bit 0: [`SLOT_ACTIVE`]; bits 1..: activation count.
    pub state: AtomicU32,
}

// SAFETY: repr(C), atomics and alignment padding only.
#[allow(unsafe_code)]
unsafe impl SharedSafe for RingControl {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl SharedSafe for SubSlot {}

#[cfg(not(loom))]
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<RingControl>() == 384);
    assert!(offset_of!(RingControl, sub_waiters) == 128);
    assert!(offset_of!(RingControl, pub_wait) == 256);
    assert!(size_of::<SubSlot>() == 128);
    assert!(offset_of!(PubWords, notify) == 32);
};

/// Total bytes a record with `len` payload bytes takes.
pub(crate) fn record_size(len: u64) -> u64 {
    RECORD_HEADER + len.div_ceil(16) * 16
}

/// The largest payload a ring of `capacity` bytes accepts: a record plus the padding before
/// it must fit in half the ring.
pub(crate) fn max_message_for(capacity: u64) -> u64 {
    (capacity / 2).saturating_sub(RECORD_HEADER)
}

/// A view of a ring.
pub(crate) struct Ring<'a> {
    pub ctl: &'a RingControl,
    pub slots: &'a [SubSlot],
    /// `capacity / 8` words.
    pub data: &'a [AtomicU64],
    /// Power of two, ≥ 64.
    pub capacity: u64,
    pub max_message: u64,
    pub backpressure: bool,
}

/// The publisher's private copy of its words (it is their only writer).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PubState {
    pub tail: u64,
    pub head: u64,
    pub published: u64,
    pub notify: u32,
    /// Lower bound of every active subscriber's cursor (back-pressure), cached.
    pub min_cursor: u64,
    /// Whether subscribers fence for us (`membarrier`), so `wake_subscribers` need not.
    pub asym: bool,
}

/// Where a reserved record goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reserved {
    /// Position of the record header.
    pub pos: u64,
    /// Payload length.
    pub len: u64,
}

impl Reserved {
    /// Word index of the payload in the ring.
    pub(crate) fn payload_word(&self, capacity: u64) -> usize {
        (((self.pos & (capacity - 1)) + RECORD_HEADER) / 8) as usize
    }
}

/// The subscriber's private state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SubState {
    pub cursor: u64,
    /// Sequence number of the next message; `None` until known (replay from the oldest).
    pub expected: Option<u64>,
    /// The tail as last loaded (Acquire): records before it are committed and visible, so
    /// `tail` is reloaded only once the cursor reaches it.
    pub known_tail: u64,
    /// Whether reads must be checked against `tail_intent` (the publisher may overwrite
    /// what we read): always in lossy mode, and for a back-pressure subscriber that joined
    /// at the oldest record (which the publisher did not know to keep). A back-pressure
    /// subscriber that joined at the tail is never overwritten and skips the check, so it
    /// does not touch the publisher's cache line for every message.
    pub verify: bool,
    /// A back-pressure subscriber that replays from the oldest record stops verifying once
    /// its cursor reaches this position (the tail when it joined): the publisher keeps
    /// everything from there on for it. `u64::MAX` in lossy mode (always verify).
    pub verify_until: u64,
}

/// What a subscriber at some position would find (`Ring::news_for`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum News {
    /// Something to receive: a message, or a loss to report.
    Message,
    /// The stream is open and nothing is new.
    Nothing,
    /// The publisher closed the stream and everything was received.
    Ended,
    /// No publisher has attached yet.
    NoPublisher,
}

/// What `try_read` found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// A message was handed to the sink (payload word index and length) and consumed.
    Message,
    /// Nothing new.
    Empty,
    /// `n` messages were overwritten before we could read them; the next read continues with
    /// the oldest message still in the ring.
    Lagged(u64),
    /// The next message is longer than the reader's limit (its length): it was not handed
    /// to the sink and stays unread.
    TooLong(u64),
}

impl Ring<'_> {
    #[inline]
    fn mask(&self) -> u64 {
        self.capacity - 1
    }

    #[inline]
    fn word(&self, pos: u64) -> usize {
        ((pos & self.mask()) / 8) as usize
    }

    /// Reads a record header at `pos`: (kind, len, seq).
    #[inline]
    fn header(&self, pos: u64) -> (u32, u64, u64) {
        let i = self.word(pos);
        let w0 = self.data[i].load(Relaxed);
        let w1 = self.data[i + 1].load(Relaxed);
        ((w0 >> 32) as u32, w0 & 0xffff_ffff, w1)
    }

    fn write_header(&self, pos: u64, kind: u32, len: u64, seq: u64) {
        let i = self.word(pos);
        self.data[i].store(u64::from(kind) << 32 | len, Relaxed);
        self.data[i + 1].store(seq, Relaxed);
    }

    /// The size of a valid record at `pos` (given what is committed up to `tail`), or `None`
    /// when its header makes impossible claims.
    #[inline]
    fn checked_size(&self, pos: u64, tail: u64, kind: u32, len: u64) -> Option<u64> {
        let room = self.capacity - (pos & self.mask());
        let size = match kind {
            KIND_DATA if len <= self.max_message => record_size(len),
            KIND_PAD if len + RECORD_HEADER == room => room,
            _ => return None,
        };
        (size <= room && size <= tail.wrapping_sub(pos)).then_some(size)
    }
}
