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
use crate::padded::Padded;
use crate::shared_bytes::SharedSafe;
use crate::shared_bytes::{load_bytes, store_bytes};
use crate::sync::{fence, AtomicU32, AtomicU64, Ordering::*};

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

    // ----- publisher -----

    /// Takes over the publisher's words (new channel, or a dead publisher's): validates them
    /// and drops a half-written record. `Err` says what is impossible.
    pub(crate) fn attach_publisher(&self, asym: bool) -> Result<PubState, String> {
        let p = &*self.ctl.publisher;
        let tail = p.tail.load(Acquire);
        let head = p.head.load(Relaxed);
        let published = p.published.load(Relaxed);
        if !tail.is_multiple_of(RECORD_HEADER) || !head.is_multiple_of(RECORD_HEADER) {
            return Err(format!(
                "ring positions {head}..{tail} are not record-aligned"
            ));
        }
        if head > tail || tail - head > self.capacity || tail > MAX_POSITION {
            return Err(format!("ring head {head} and tail {tail} are inconsistent"));
        }
        // A publisher that died between reserve and commit left `tail_intent` ahead: its
        // record was never committed, nobody read it, and we write over it.
        p.tail_intent.store(tail, Relaxed);
        p.asym.store(u32::from(asym), Relaxed);
        let notify = p.notify.load(Relaxed) & !1;
        p.notify.store(notify, Release);
        p.state.store(OPEN, Release);
        Ok(PubState {
            tail,
            head,
            published,
            notify,
            min_cursor: tail,
            asym,
        })
    }

    /// Reserves room for a `len`-byte payload; `None` when back-pressure forbids it.
    #[inline]
    pub(crate) fn reserve(&self, st: &mut PubState, len: u64) -> Option<Reserved> {
        debug_assert!(len <= self.max_message);
        let size = record_size(len);
        let t = st.tail;
        let room = self.capacity - (t & self.mask());
        let pad = if size > room { room } else { 0 };
        let end = t + pad + size;
        let low = end.saturating_sub(self.capacity); // everything before is overwritten
        if self.backpressure && low > st.min_cursor {
            st.min_cursor = self.min_cursor(t);
            if low > st.min_cursor {
                return None;
            }
        }
        self.advance_head(st, low, t);
        let p = &*self.ctl.publisher;
        p.tail_intent.store(end, Relaxed);
        // SYNC: pairs with the subscriber's fence(Acquire) before it loads `tail_intent`: a
        // subscriber that sees any of the stores below sees `tail_intent >= end`.
        fence(Release);
        p.head.store(st.head, Release);
        if pad > 0 {
            self.write_header(t, KIND_PAD, pad - RECORD_HEADER, 0);
        }
        self.write_header(t + pad, KIND_DATA, len, st.published);
        Some(Reserved { pos: t + pad, len })
    }

    /// Moves `head` to the first record at or after `low` (walking our own records).
    #[inline]
    fn advance_head(&self, st: &mut PubState, low: u64, tail: u64) {
        while st.head < low {
            let (kind, len, _) = self.header(st.head);
            match self.checked_size(st.head, tail, kind, len) {
                Some(size) => st.head += size,
                // Someone scribbled on our records: keep no history.
                None => st.head = tail.max(low),
            }
        }
    }

    /// Oldest cursor of an active subscriber that is still within the ring (back-pressure).
    fn min_cursor(&self, tail: u64) -> u64 {
        let mut min = tail;
        for slot in self.slots {
            // SYNC: Acquire pairs with the Release stores of the subscriber's slot: what it
            // read before moving its cursor is read before we overwrite it.
            if slot.state.load(Acquire) & SLOT_ACTIVE == 0 {
                continue;
            }
            let c = slot.cursor.load(Acquire);
            // A cursor past the tail or lapped already (a replay that raced us) cannot hold
            // the publisher back: the subscriber sees the loss and reports it.
            if c <= tail && tail - c <= self.capacity {
                min = min.min(c);
            }
        }
        min
    }

    /// Copies `payload` into a reserved record.
    #[inline]
    pub(crate) fn write_payload(&self, r: &Reserved, payload: &[u8]) {
        let start = r.payload_word(self.capacity);
        let words = (payload.len() as u64).div_ceil(8) as usize;
        store_bytes(&self.data[start..start + words], payload);
    }

    /// Publishes a reserved record.
    #[inline]
    pub(crate) fn commit(&self, st: &mut PubState, r: Reserved) {
        st.tail = r.pos + record_size(r.len);
        st.published = st.published.wrapping_add(1);
        self.publish_words(st);
    }

    #[inline]
    fn publish_words(&self, st: &mut PubState) {
        let p = &*self.ctl.publisher;
        p.notify.store(st.notify.wrapping_add(1), Relaxed);
        // SYNC: pairs with the fence(Acquire) in `snapshot`.
        fence(Release);
        p.published.store(st.published, Relaxed);
        // SYNC: Release pairs with the subscriber's Acquire load of `tail`: the record is
        // visible to whoever sees the new tail.
        p.tail.store(st.tail, Release);
        st.notify = st.notify.wrapping_add(2);
        p.notify.store(st.notify, Release);
        self.wake_subscribers(st.asym);
    }

    #[inline]
    fn wake_subscribers(&self, asym: bool) {
        let sleepers = if asym {
            // SYNC: the subscriber's membarrier supplies the CPU fence (module docs); the
            // compiler must not move this load above the stores.
            std::sync::atomic::compiler_fence(SeqCst);
            self.ctl.sub_waiters.load(Relaxed)
        } else {
            // SYNC: an RMW, paired with the subscribers' AcqRel fetch_add before they sleep
            // (same handshake as `event`).
            self.ctl.sub_waiters.fetch_add(0, AcqRel)
        };
        if sleepers > 0 {
            futex_wake(&self.ctl.publisher.notify, u32::MAX);
        }
    }

    /// Ends the stream: subscribers drain what is left, then see `Disconnected`.
    pub(crate) fn close(&self, st: &mut PubState) {
        self.ctl.publisher.state.store(CLOSED, Release);
        self.publish_words(st);
    }

    // ----- subscriber -----

    /// A consistent (`tail`, `published`) pair. A publisher that died inside
    /// `publish_words` leaves `notify` odd for good: after many tries the pair is taken as it
    /// stands (at worst one message off), never waited for forever.
    pub(crate) fn snapshot(&self) -> (u64, u64) {
        let p = &*self.ctl.publisher;
        for _ in 0..MAX_JUMPS {
            let s1 = p.notify.load(Acquire);
            if s1 & 1 == 0 {
                let tail = p.tail.load(Relaxed);
                let published = p.published.load(Relaxed);
                // SYNC: pairs with the fence(Release) in `publish_words`.
                fence(Acquire);
                if p.notify.load(Relaxed) == s1 {
                    return (tail, published);
                }
            }
            crate::sync::yield_now();
        }
        (p.tail.load(Acquire), p.published.load(Relaxed))
    }

    /// Where a new subscriber starts: at the next message, or at the oldest one in the ring.
    pub(crate) fn join(&self, from_oldest: bool) -> SubState {
        let (tail, published) = self.snapshot();
        if from_oldest {
            let head = self.ctl.publisher.head.load(Acquire);
            if head <= tail && tail - head <= self.capacity && head.is_multiple_of(RECORD_HEADER) {
                return SubState {
                    cursor: head,
                    expected: None,
                    known_tail: tail,
                    verify: true,
                    verify_until: if self.backpressure { tail } else { u64::MAX },
                };
            }
        }
        SubState {
            cursor: tail,
            expected: Some(published),
            known_tail: tail,
            verify: !self.backpressure,
            verify_until: if self.backpressure { tail } else { u64::MAX },
        }
    }

    /// Reads the next message into `sink(payload_words_start, len)`.
    #[inline]
    #[cfg(test)]
    pub(crate) fn try_read(
        &self,
        st: &mut SubState,
        sink: &mut dyn FnMut(&[AtomicU64], usize),
    ) -> Result<Next, String> {
        self.try_read_limited(st, u64::MAX, sink)
    }

    /// [`try_read`](Self::try_read) for a reader with room for at most `limit` bytes: a
    /// longer message is not handed to the sink and stays unread ([`Next::TooLong`], after
    /// the same checks as a read, so its length is believable and any loss before it is
    /// reported first).
    pub(crate) fn try_read_limited(
        &self,
        st: &mut SubState,
        limit: u64,
        sink: &mut dyn FnMut(&[AtomicU64], usize),
    ) -> Result<Next, String> {
        let p = &*self.ctl.publisher;
        let mut jumps = 0u32;
        loop {
            jumps += 1;
            if jumps > MAX_JUMPS {
                return Err(format!(
                    "lapped {MAX_JUMPS} times in one read: the publisher's words are not \
                     believable (or it overwrites faster than one message can be copied)"
                ));
            }
            let cur = st.cursor;
            if cur == st.known_tail {
                // SYNC: Acquire pairs with the Release store of `tail` in `publish_words`.
                let tail = p.tail.load(Acquire);
                if cur == tail {
                    return Ok(Next::Empty);
                }
                if !tail.is_multiple_of(RECORD_HEADER) || tail > MAX_POSITION {
                    return Err(format!("the ring's tail {tail} is not a possible position"));
                }
                st.known_tail = tail;
            }
            let tail = st.known_tail;
            if !cur.is_multiple_of(RECORD_HEADER) {
                return Err(format!("ring position {cur} is not record-aligned"));
            }
            if cur > tail {
                // The publisher's words went backwards: corrupt, or a new channel under an
                // old handle. Nothing we hold is meaningful any more.
                return Err(format!("the ring's tail {tail} is behind our cursor {cur}"));
            }
            if tail - cur > self.capacity {
                self.jump(st, tail);
                continue;
            }
            let (kind, len, seq) = self.header(cur);
            let size = self.checked_size(cur, tail, kind, len);
            if let (Some(_), KIND_DATA) = (size, kind) {
                if len <= limit {
                    sink(&self.data[self.word(cur) + 2..], len as usize);
                }
            }
            if st.verify {
                // SYNC: pairs with the publisher's fence(Release) after `tail_intent`.
                fence(Acquire);
                let intent = p.tail_intent.load(Relaxed);
                if intent < tail {
                    return Err(format!(
                        "the ring's tail {tail} is ahead of its intent {intent}"
                    ));
                }
                if intent - cur > self.capacity {
                    // Overwritten while we copied: what we read is garbage, we were lapped.
                    let fresh = p.tail.load(Acquire);
                    self.jump(st, fresh.max(tail));
                    continue;
                }
            }
            let Some(size) = size else {
                return Err(format!(
                    "record at {cur} claims kind {kind} and length {len}, which cannot be"
                ));
            };
            if kind == KIND_PAD {
                st.cursor = cur + size;
                st.verify &= st.cursor < st.verify_until;
                continue;
            }
            match st.expected {
                Some(e) if seq > e => {
                    // Stay on this record: the next read delivers it, if still there.
                    st.expected = Some(seq);
                    return Ok(Next::Lagged(seq - e));
                }
                Some(e) if seq < e => {
                    return Err(format!("message {seq} arrived after message {e}"));
                }
                _ => {}
            }
            if len > limit {
                return Ok(Next::TooLong(len));
            }
            st.expected = Some(seq.wrapping_add(1));
            st.cursor = cur + size;
            st.verify &= st.cursor < st.verify_until;
            return Ok(Next::Message);
        }
    }

    /// Lapped: continue at the oldest record still in the ring (the loss is counted when the
    /// next record's sequence number is read).
    fn jump(&self, st: &mut SubState, tail: u64) {
        // The publisher moves `head` just after `tail_intent`: give it a moment.
        crate::sync::backoff();
        st.known_tail = tail;
        let head = self.ctl.publisher.head.load(Acquire);
        st.cursor =
            if head <= tail && tail - head <= self.capacity && head.is_multiple_of(RECORD_HEADER) {
                head
            } else {
                tail
            };
    }

    /// Publishes a back-pressure subscriber's cursor, and wakes the publisher if it sleeps
    /// for space.
    pub(crate) fn release(&self, slot: &SubSlot, cursor: u64) {
        // SYNC: Release pairs with the publisher's Acquire load in `min_cursor`.
        slot.cursor.store(cursor, Release);
        // SYNC: Dekker with the publisher's store of `waiting` and re-check of cursors.
        fence(SeqCst);
        let wait = &self.ctl.pub_wait;
        if wait.waiting.load(Relaxed) != 0 {
            wait.space.fetch_add(1, Release);
            futex_wake(&wait.space, 1);
        }
    }

    /// Copies a payload out of the ring (for `sink`s).
    pub(crate) fn copy_payload(words: &[AtomicU64], len: usize, out: &mut Vec<u8>) {
        out.resize(len, 0);
        load_bytes(&words[..len.div_ceil(8)], out);
    }

    /// [`copy_payload`](Self::copy_payload) for a reader whose records nobody overwrites
    /// (`SubState::verify == false`): a plain `memcpy`.
    pub(crate) fn copy_payload_quiescent(words: &[AtomicU64], len: usize, out: &mut Vec<u8>) {
        out.resize(len, 0);
        crate::shared_bytes::load_bytes_quiescent(&words[..len.div_ceil(8)], out);
    }
}

/// Heap-backed rings for the unit tests and the loom models (same code under both).
#[cfg(test)]
mod test_ring {
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
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::test_ring::{send, Owned};
    use super::*;
    use proptest::prelude::*;

    fn read(ring: &Ring<'_>, st: &mut SubState) -> Result<(Next, Vec<u8>), String> {
        let mut out = Vec::new();
        let next = ring.try_read(st, &mut |w, len| Ring::copy_payload(w, len, &mut out))?;
        Ok((next, out))
    }

    proptest! {
        /// Framing: any sequence of sizes (zero and maximum included) read back in order by a
        /// subscriber that keeps up, across many wraps.
        #[test]
        fn messages_round_trip_across_wraps(sizes in proptest::collection::vec(0usize..=112, 1..200)) {
            let o = Owned::new(256, false);
            let ring = o.ring();
            let mut p = ring.attach_publisher(false).unwrap();
            let mut s = ring.join(false);
            for (i, &n) in sizes.iter().enumerate() {
                let msg: Vec<u8> = (0..n).map(|j| (i * 7 + j) as u8).collect();
                prop_assert!(send(&ring, &mut p, &msg));
                let (next, got) = read(&ring, &mut s).unwrap();
                prop_assert_eq!(next, Next::Message);
                prop_assert_eq!(got, msg);
            }
            prop_assert_eq!(read(&ring, &mut s).unwrap().0, Next::Empty);
        }

        /// Lossy: a subscriber that reads only now and then gets every message it can, in
        /// order, and received + lost == sent exactly.
        #[test]
        fn received_plus_lost_is_sent(sizes in proptest::collection::vec(0usize..=112, 1..300),
                                      every in 1usize..20) {
            let o = Owned::new(256, false);
            let ring = o.ring();
            let mut p = ring.attach_publisher(false).unwrap();
            let mut s = ring.join(false);
            let (mut received, mut lost, mut last) = (0u64, 0u64, None);
            let drain = |s: &mut SubState, received: &mut u64, lost: &mut u64, last: &mut Option<u8>| {
                loop {
                    match read(&ring, s).unwrap() {
                        (Next::Empty, _) => break,
                        (Next::TooLong(n), _) => panic!("no limit, yet too long: {n}"),
                        (Next::Lagged(n), _) => *lost += n,
                        (Next::Message, got) => {
                            *received += 1;
                            if let Some(&b) = got.first() { *last = Some(b); }
                        }
                    }
                }
            };
            for (i, &n) in sizes.iter().enumerate() {
                let msg = vec![i as u8; n];
                send(&ring, &mut p, &msg);
                if i % every == 0 {
                    drain(&mut s, &mut received, &mut lost, &mut last);
                }
            }
            drain(&mut s, &mut received, &mut lost, &mut last);
            prop_assert_eq!(received + lost, sizes.len() as u64);
        }

        /// Arbitrary bytes in the ring and control words: errors or messages, never a panic or
        /// an endless loop.
        #[test]
        fn garbage_never_panics(words in proptest::collection::vec(any::<u64>(), 32),
                                tail in 0u64..1024, intent in 0u64..2048, head in 0u64..1024,
                                cursor in 0u64..1024) {
            let o = Owned::new(256, false);
            for (w, v) in o.data.iter().zip(&words) { w.store(*v, Relaxed); }
            let p = &*o.ctl.publisher;
            p.tail.store(tail, Relaxed);
            p.tail_intent.store(intent, Relaxed);
            p.head.store(head, Relaxed);
            let ring = o.ring();
            let mut s = SubState {
                cursor,
                expected: Some(0),
                known_tail: cursor,
                verify: true,
                verify_until: u64::MAX,
            };
            for _ in 0..50 {
                match read(&ring, &mut s) {
                    Ok((Next::Empty, _)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            let _ = ring.attach_publisher(false);
        }
    }

    #[test]
    fn backpressure_refuses_to_overwrite_an_active_subscriber() {
        let o = Owned::new(256, true);
        let ring = o.ring();
        let mut p = ring.attach_publisher(false).unwrap();
        let mut s = ring.join(false);
        o.slots[0].cursor.store(s.cursor, Relaxed);
        o.slots[0].state.store(SLOT_ACTIVE, Relaxed);
        let mut sent = 0;
        while send(&ring, &mut p, &[sent as u8; 40]) {
            sent += 1;
        }
        assert_eq!(sent, 4, "four 64-byte records fill a 256-byte ring");
        // Consuming one frees room for one more.
        assert_eq!(read(&ring, &mut s).unwrap(), (Next::Message, vec![0; 40]));
        ring.release(&o.slots[0], s.cursor);
        assert!(send(&ring, &mut p, &[9; 40]));
        assert!(!send(&ring, &mut p, &[9; 40]));
        // Every message arrives, none lost.
        for i in 1..4u8 {
            assert_eq!(read(&ring, &mut s).unwrap(), (Next::Message, vec![i; 40]));
        }
        assert_eq!(read(&ring, &mut s).unwrap(), (Next::Message, vec![9; 40]));
    }

    #[test]
    fn zero_and_max_length_messages_across_the_wrap() {
        let o = Owned::new(256, false);
        let ring = o.ring();
        let mut p = ring.attach_publisher(false).unwrap();
        let mut s = ring.join(false);
        let max = max_message_for(256) as usize;
        for round in 0..10u8 {
            for msg in [vec![], vec![round; max], vec![round; 1], vec![]] {
                assert!(send(&ring, &mut p, &msg));
                assert_eq!(read(&ring, &mut s).unwrap(), (Next::Message, msg));
            }
        }
    }

    #[test]
    fn lapped_subscriber_hears_exact_loss_then_oldest() {
        let o = Owned::new(256, false);
        let ring = o.ring();
        let mut p = ring.attach_publisher(false).unwrap();
        let mut s = ring.join(false);
        for i in 0..10u8 {
            send(&ring, &mut p, &[i; 40]); // 64-byte records: the ring holds 4
        }
        assert_eq!(read(&ring, &mut s).unwrap().0, Next::Lagged(6));
        for i in 6..10u8 {
            assert_eq!(read(&ring, &mut s).unwrap(), (Next::Message, vec![i; 40]));
        }
        assert_eq!(read(&ring, &mut s).unwrap().0, Next::Empty);
    }

    #[test]
    fn too_long_for_the_reader_stays_unread_after_loss_is_reported() {
        let o = Owned::new(256, false);
        let ring = o.ring();
        let mut p = ring.attach_publisher(false).unwrap();
        let mut s = ring.join(false);
        for i in 0..10u8 {
            send(&ring, &mut p, &[i; 40]);
        }
        let limited = |s: &mut SubState, limit| {
            let mut out = Vec::new();
            let next = ring
                .try_read_limited(s, limit, &mut |w, len| Ring::copy_payload(w, len, &mut out))
                .unwrap();
            (next, out)
        };
        // The loss comes first; then the too-long message, as often as asked; then it is
        // read whole with room enough, and nothing was skipped.
        assert_eq!(limited(&mut s, 39).0, Next::Lagged(6));
        assert_eq!(limited(&mut s, 39), (Next::TooLong(40), vec![]));
        assert_eq!(limited(&mut s, 0), (Next::TooLong(40), vec![]));
        assert_eq!(limited(&mut s, 40), (Next::Message, vec![6; 40]));
        assert_eq!(limited(&mut s, 40), (Next::Message, vec![7; 40]));
    }

    #[test]
    fn replay_from_oldest() {
        let o = Owned::new(256, false);
        let ring = o.ring();
        let mut p = ring.attach_publisher(false).unwrap();
        for i in 0..6u8 {
            send(&ring, &mut p, &[i; 40]);
        }
        let mut s = ring.join(true);
        for i in 2..6u8 {
            assert_eq!(read(&ring, &mut s).unwrap(), (Next::Message, vec![i; 40]));
        }
    }

    #[test]
    fn a_publisher_dead_inside_its_commit_does_not_hang_joiners() {
        let o = Owned::new(256, false);
        let ring = o.ring();
        o.ctl.publisher.notify.store(7, Relaxed); // odd for good
        assert_eq!(ring.join(false).cursor, 0);
    }

    #[test]
    fn takeover_drops_a_half_written_record() {
        let o = Owned::new(256, false);
        let ring = o.ring();
        let mut p = ring.attach_publisher(false).unwrap();
        let mut s = ring.join(false);
        send(&ring, &mut p, b"one");
        let r = ring.reserve(&mut p, 3).unwrap(); // dies before commit
        ring.write_payload(&r, b"two");
        let mut p2 = ring.attach_publisher(false).unwrap();
        send(&ring, &mut p2, b"new");
        assert_eq!(
            read(&ring, &mut s).unwrap(),
            (Next::Message, b"one".to_vec())
        );
        assert_eq!(
            read(&ring, &mut s).unwrap(),
            (Next::Message, b"new".to_vec())
        );
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::test_ring::{send, Owned};
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// A 64-byte ring (two 32-byte records: 16-byte messages), one slot used.
    fn owned(backpressure: bool) -> Arc<Owned> {
        Arc::new(Owned::new(64, backpressure))
    }

    /// Lossy, small ring with wrap-around and lapping: a subscriber never returns torn data,
    /// and received + lost == sent.
    #[test]
    fn lossy_never_torn_and_counts_losses() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(|| {
            let o = owned(false);
            let mut sub = o.ring().join(false);
            let mut pubst = o.ring().attach_publisher(false).unwrap();
            let publisher = {
                let o = o.clone();
                thread::spawn(move || {
                    for i in 1..=3u8 {
                        assert!(send(&o.ring(), &mut pubst, &[i; 16]));
                    }
                })
            };
            let (mut received, mut lost) = (0, 0);
            for _ in 0..4 {
                let mut got = Vec::new();
                match o
                    .ring()
                    .try_read(&mut sub, &mut |w, len| Ring::copy_payload(w, len, &mut got))
                {
                    Ok(Next::Message) => {
                        assert!(
                            got.len() == 16 && got.iter().all(|&b| b == got[0]),
                            "torn: {got:?}"
                        );
                        received += 1;
                    }
                    Ok(Next::Lagged(n)) => lost += n,
                    Ok(Next::Empty) => {}
                    Ok(Next::TooLong(n)) => panic!("no limit, yet too long: {n}"),
                    Err(e) => panic!("{e}"),
                }
            }
            publisher.join().unwrap();
            loop {
                match o.ring().try_read(&mut sub, &mut |_, _| {}) {
                    Ok(Next::Message) => received += 1,
                    Ok(Next::Lagged(n)) => lost += n,
                    Ok(Next::Empty) => break,
                    Ok(Next::TooLong(n)) => panic!("no limit, yet too long: {n}"),
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(received + lost, 3);
        });
    }

    /// Back-pressure: the publisher never overwrites what the subscriber has not consumed:
    /// every message arrives, in order, nothing lost.
    #[test]
    fn backpressure_loses_nothing() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(|| {
            let o = owned(true);
            let mut sub = o.ring().join(false);
            o.slots[0].cursor.store(sub.cursor, Relaxed);
            o.slots[0].state.store(SLOT_ACTIVE, Relaxed);
            let mut pubst = o.ring().attach_publisher(false).unwrap();
            let publisher = {
                let o = o.clone();
                thread::spawn(move || {
                    for i in 1..=3u8 {
                        while !send(&o.ring(), &mut pubst, &[i; 16]) {
                            thread::yield_now();
                        }
                    }
                })
            };
            let mut next = 1u8;
            while next <= 3 {
                let mut got = Vec::new();
                match o
                    .ring()
                    .try_read(&mut sub, &mut |w, len| Ring::copy_payload(w, len, &mut got))
                {
                    Ok(Next::Message) => {
                        assert_eq!(got, vec![next; 16]);
                        next += 1;
                        o.ring().release(&o.slots[0], sub.cursor);
                    }
                    Ok(Next::Empty) => thread::yield_now(),
                    other => panic!("{other:?}"),
                }
            }
            publisher.join().unwrap();
        });
    }
}
