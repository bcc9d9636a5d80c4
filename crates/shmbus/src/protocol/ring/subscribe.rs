//! The ring's subscriber side: join, read (with lossy re-validation), release.

use super::*;

impl Ring<'_> {
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
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn try_read(
        &self,
        st: &mut SubState,
        sink: &mut dyn FnMut(&[AtomicU64], usize),
    ) -> Result<Next, String> {
        self.try_read_limited(st, u64::MAX, sink)
    }

    /// `try_read` for a reader with room for at most `limit` bytes: a
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

    /// What a subscriber at `position` would find now, for a waiter that does not receive
    /// (a `WaitSet`): a message (or a loss) to receive, the end of the stream, an open
    /// stream with nothing new, or no publisher attached yet.
    pub(crate) fn news_for(&self, position: u64) -> News {
        let p = &*self.ctl.publisher;
        // SYNC: Acquire pairs with the Release store of `state` (close, attach); the tail's
        // Acquire with `publish_words`.
        let state = p.state.load(Acquire);
        if p.tail.load(Acquire) != position {
            return News::Message;
        }
        match state {
            OPEN => News::Nothing,
            CLOSED => News::Ended,
            _ => News::NoPublisher,
        }
    }

    /// Tells a publisher waiting for subscribers (`Publisher::wait_for_subscribers`, or a
    /// back-pressure publisher sleeping for space, which re-checks and sleeps again) that
    /// one has just become active: called after the slot's Release store of its state.
    pub(crate) fn announce_subscriber(&self) {
        let space = &self.ctl.pub_wait.space;
        // SYNC: Release after the slot's state store: a publisher whose Acquire load of
        // `space` sees this value also sees the slot active.
        space.fetch_add(1, Release);
        futex_wake(space, u32::MAX);
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
        crate::protocol::shared_bytes::load_bytes_quiescent(&words[..len.div_ceil(8)], out);
    }
}

impl<'a> Ring<'a> {
    /// The word a subscriber sleeps on (`notify`), and the count of sleeping subscribers a
    /// sleeper joins (see 7.8 of LAYOUT.md: announce, then membarrier, then read the word).
    pub(crate) fn sleep_words(&self) -> (&'a AtomicU32, &'a AtomicU32) {
        (&self.ctl.publisher.notify, &self.ctl.sub_waiters)
    }
}
