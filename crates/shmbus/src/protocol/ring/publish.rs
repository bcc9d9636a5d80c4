//! The ring's publisher side: reserve, write, commit, close.

use super::*;

impl Ring<'_> {
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
        p.state.store(OPEN, Release);
        // A new even value, after `state`: a subscriber waiting for a publisher to attach
        // (it loaded `notify`, then found no live publisher) is woken or finds it changed.
        let notify = (p.notify.load(Relaxed) & !1).wrapping_add(2);
        // SYNC: Release pairs with the Acquire load of `notify` in `wait_for_news`.
        p.notify.store(notify, Release);
        futex_wake(&p.notify, u32::MAX);
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
}
