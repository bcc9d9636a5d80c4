//! The subscriber side of a channel: `Subscriber`, its receives, handlers and liveness checks.

use std::sync::Arc;
use std::time::Duration;

use super::waitable::Mirror;
use super::{
    Channel, ChannelConfig, Iter, Message, Mode, Sample, CONTROL, LIVENESS_PERIOD, SUBSCRIBER_BYTES,
};
use crate::error::{Error, Result};
use crate::objects::handler::{call_handler, HandlerGuard, HandlerStats};
use crate::os::sys;
use crate::os::wait::Stopper;
use crate::os::wait::{spin_until, Deadline};
use crate::os::watcher::CloseWatch;
use crate::protocol::ring::{self, Next, Ring, RingControl, SubState};
use crate::segment::liveness::claim_slot;
use crate::segment::options::Options;
use crate::sync::{AtomicU64, Ordering::*};

/// A receiver of every message of a channel, in order.
///
/// ```
/// # shmbus::doctest_namespace();
/// use shmbus::{ChannelConfig, Publisher, Subscriber};
/// use std::time::Duration;
///
/// let mut publisher = Publisher::create("doc.channel.sub", ChannelConfig::default())?;
/// let mut subscriber = Subscriber::open("doc.channel.sub")?;
/// assert!(matches!(subscriber.try_recv(), Err(shmbus::Error::Empty)));
/// publisher.send(b"one")?;
/// let mut buf = Vec::new();
/// subscriber.recv_timeout_into(&mut buf, Duration::from_secs(1))?;
/// assert_eq!(buf, b"one");
/// # Ok::<(), shmbus::Error>(())
/// ```
#[derive(Debug)]
pub struct Subscriber {
    pub(super) ch: Arc<Channel>,
    st: SubState,
    slot: usize,
    /// The cursor last published in our slot (back-pressure).
    released: u64,
    /// Messages lost so far (lossy), as reported by `Error::Lagged`.
    lost: u64,
    /// What we share with the `WaitSet`s we are attached to (they cannot borrow us).
    pub(super) mirror: Arc<Mirror>,
}

impl Subscriber {
    /// Subscribes to an existing channel, starting with the next message published.
    pub fn open(name: &str) -> Result<Subscriber> {
        Self::open_with(name, &Options::default())
    }

    /// [`Subscriber::open`] with options.
    pub fn open_with(name: &str, opts: &Options) -> Result<Subscriber> {
        Subscriber::attach(Channel::open(name, opts)?, false)
    }

    /// Subscribes starting with the oldest message still in the ring (a replay of what a
    /// late joiner missed, as far as the ring remembers).
    pub fn open_from_oldest(name: &str, opts: &Options) -> Result<Subscriber> {
        Subscriber::attach(Channel::open(name, opts)?, true)
    }

    fn attach(ch: Channel, from_oldest: bool) -> Result<Subscriber> {
        let slots = ch.config.max_subscribers as u32;
        // Slots are numbered from 1 in `claim_slot`; ours are from 0.
        let slot = claim_slot(&ch.seg, SUBSCRIBER_BYTES - 1, slots)?.ok_or_else(|| {
            Error::TooManySubscribers {
                name: ch.name(),
                slots,
            }
        })? as usize
            - 1;
        let ring = ch.ring();
        let st = ring.join(from_oldest);
        let s = &ring.slots[slot];
        s.cursor.store(st.cursor, Relaxed);
        let state = s.state.load(Relaxed);
        // SYNC: Release pairs with the publisher's Acquire load of `state` in `min_cursor`:
        // it sees our cursor once it sees us active.
        s.state
            .store((state | ring::SLOT_ACTIVE).wrapping_add(2), Release);
        ring.announce_subscriber();
        Ok(Subscriber {
            ch: Arc::new(ch),
            released: st.cursor,
            mirror: Arc::new(Mirror {
                position: AtomicU64::new(st.cursor),
                gone: std::sync::atomic::AtomicBool::new(false),
                closed: std::sync::atomic::AtomicBool::new(false),
            }),
            st,
            slot,
            lost: 0,
        })
    }

    /// The channel's name.
    pub fn name(&self) -> &crate::Name {
        self.ch.seg.name()
    }

    /// The channel's configuration.
    pub fn config(&self) -> &ChannelConfig {
        &self.ch.config
    }

    /// Whether the channel's publisher lives now.
    pub fn publisher_alive(&self) -> bool {
        self.ch.publisher_alive()
    }

    /// Receives the next message, waiting as long as it takes; [`Error::Disconnected`] at
    /// the end of the stream, [`Error::PublisherGone`] when the publisher died.
    pub fn recv(&mut self) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.recv_into(&mut buf)?;
        Ok(buf)
    }

    /// [`recv`](Self::recv) into a buffer you reuse (no allocation once it is big enough).
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        self.wait_recv(buf, Deadline::after(None), None)
    }

    /// Receives the next message if one is waiting: [`Error::Empty`] otherwise, or
    /// [`Error::Disconnected`] once the stream is closed and drained.
    pub fn try_recv(&mut self) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.try_recv_into(&mut buf)?;
        Ok(buf)
    }

    /// [`try_recv`](Self::try_recv) into a reused buffer.
    pub fn try_recv_into(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        if self.st.verify {
            let sink = &mut |w: &[AtomicU64], len| Ring::copy_payload(w, len, buf);
            self.receive(Wait::No, usize::MAX, sink, true)
        } else {
            let sink = &mut |w: &[AtomicU64], len| Ring::copy_payload_quiescent(w, len, buf);
            self.receive(Wait::No, usize::MAX, sink, true)
        }
    }

    /// Receives the next message, waiting at most `timeout` ([`Error::Timeout`]).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.recv_timeout_into(&mut buf, timeout)?;
        Ok(buf)
    }

    /// [`recv_timeout`](Self::recv_timeout) into a reused buffer.
    pub fn recv_timeout_into(&mut self, buf: &mut Vec<u8>, timeout: Duration) -> Result<()> {
        self.wait_recv(buf, Deadline::after(Some(timeout)), None)
    }

    /// Messages as they come, until the stream ends; an iterator item is an error only for
    /// [`Error::Lagged`] (after which it continues) or a dead publisher (after which it ends).
    pub fn iter(&mut self) -> Iter<'_> {
        Iter {
            sub: self,
            done: false,
        }
    }

    /// Receives the next message without copying it (back-pressure channels only): the
    /// publisher does not overwrite it until the returned [`Sample`] is dropped.
    ///
    /// A subscriber that joined with [`open_from_oldest`](Self::open_from_oldest) gets
    /// [`Error::WrongMode`] until it has read the messages published before it joined: the
    /// publisher did not keep those for it, so they are only ever copied.
    pub fn recv_ref(&mut self) -> Result<Sample<'_>> {
        self.recv_ref_with(Wait::Forever)
    }

    /// [`recv_ref`](Self::recv_ref) if a message is waiting: [`Error::Empty`] otherwise, or
    /// [`Error::Disconnected`] once the stream is closed and drained.
    pub fn try_recv_ref(&mut self) -> Result<Sample<'_>> {
        self.recv_ref_with(Wait::No)
    }

    /// [`recv_ref`](Self::recv_ref), waiting at most `timeout` ([`Error::Timeout`]).
    pub fn recv_ref_timeout(&mut self, timeout: Duration) -> Result<Sample<'_>> {
        self.recv_ref_with(Wait::For(timeout))
    }

    fn recv_ref_with(&mut self, wait: Wait) -> Result<Sample<'_>> {
        if self.ch.config.mode != Mode::Backpressure {
            return Err(Error::WrongMode {
                name: self.ch.name(),
                mode: "lossy",
                what: "zero-copy receive needs a back-pressure channel",
            });
        }
        if self.st.verify {
            return Err(Error::WrongMode {
                name: self.ch.name(),
                mode: "back-pressure",
                what: "a replaying subscriber must read the replayed messages with a copy \
                       (recv) before it can borrow (recv_ref)",
            });
        }
        let mut range = (0, 0);
        self.receive(
            wait,
            usize::MAX,
            &mut |words: &[AtomicU64], len| {
                range = (words.as_ptr() as usize, len);
            },
            false,
        )?;
        Ok(Sample {
            sub: self,
            ptr: range.0 as *const u8,
            len: range.1,
        })
    }

    /// Receives the next message into `buf` and returns its length, waiting as long as it
    /// takes: no allocation, for callers with a fixed buffer. A message longer than `buf`
    /// stays unread: [`Error::BufferTooSmall`] says how long it is, and the next receive
    /// with a large enough buffer gets it. Other errors as [`recv`](Self::recv).
    ///
    /// ```
    /// # shmbus::doctest_namespace();
    /// use shmbus::{ChannelConfig, Error, Publisher, Subscriber};
    ///
    /// let mut publisher = Publisher::create("doc.channel.slice", ChannelConfig::default())?;
    /// let mut subscriber = Subscriber::open("doc.channel.slice")?;
    /// publisher.send(b"twelve bytes")?;
    /// let mut small = [0u8; 4];
    /// match subscriber.try_recv_slice(&mut small) {
    ///     Err(Error::BufferTooSmall { needed, .. }) => assert_eq!(needed, 12),
    ///     other => panic!("{other:?}"),
    /// }
    /// let mut buf = [0u8; 64];
    /// let n = subscriber.recv_slice(&mut buf)?; // the same message, still unread
    /// assert_eq!(&buf[..n], b"twelve bytes");
    /// # Ok::<(), shmbus::Error>(())
    /// ```
    pub fn recv_slice(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_slice_with(buf, Wait::Forever)
    }

    /// [`recv_slice`](Self::recv_slice) if a message is waiting: [`Error::Empty`]
    /// otherwise, or [`Error::Disconnected`] once the stream is closed and drained.
    pub fn try_recv_slice(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_slice_with(buf, Wait::No)
    }

    /// [`recv_slice`](Self::recv_slice), waiting at most `timeout` ([`Error::Timeout`]).
    pub fn recv_slice_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.recv_slice_with(buf, Wait::For(timeout))
    }

    fn recv_slice_with(&mut self, buf: &mut [u8], wait: Wait) -> Result<usize> {
        let verify = self.st.verify;
        let limit = buf.len();
        let mut n = 0;
        self.receive(
            wait,
            limit,
            &mut |words: &[AtomicU64], len| {
                // `try_read_limited` hands over only messages of at most `limit` bytes.
                let dst = &mut buf[..len];
                let src = &words[..len.div_ceil(8)];
                if verify {
                    crate::protocol::shared_bytes::load_bytes(src, dst);
                } else {
                    crate::protocol::shared_bytes::load_bytes_quiescent(src, dst);
                }
                n = len;
            },
            true,
        )?;
        Ok(n)
    }

    /// Publishes this subscriber's progress to a back-pressure publisher at once. Receives
    /// publish it in batches of an eighth of the ring (and all of it before they wait), so
    /// a subscriber that stops receiving for a while can call this to free at once the room
    /// of what it has read. Nothing to do in lossy mode.
    ///
    /// ```
    /// # shmbus::doctest_namespace();
    /// use shmbus::{ChannelConfig, Error, Mode, Publisher, Subscriber};
    ///
    /// let config = ChannelConfig { mode: Mode::Backpressure, ..ChannelConfig::with_capacity(1024) };
    /// let mut publisher = Publisher::create("doc.channel.flush", config)?;
    /// let mut subscriber = Subscriber::open("doc.channel.flush")?;
    /// while publisher.try_send(&[0; 100]).is_ok() {}
    /// subscriber.recv()?;
    /// subscriber.flush();
    /// publisher.try_send(&[0; 100])?; // the room of the message read
    /// # Ok::<(), shmbus::Error>(())
    /// ```
    pub fn flush(&mut self) {
        if self.ch.seg.owned_here() {
            self.release(true);
        }
    }

    /// Messages lost so far: the sum of every [`Error::Lagged`] this subscriber has
    /// returned (on a lossy channel, or while a back-pressure subscriber opened with
    /// [`open_from_oldest`](Self::open_from_oldest) replays).
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// One receive into `sink` (which takes at most `limit` bytes), waiting as `wait` says.
    fn receive(
        &mut self,
        wait: Wait,
        limit: usize,
        sink: &mut dyn FnMut(&[AtomicU64], usize),
        release: bool,
    ) -> Result<()> {
        let timeout = match wait {
            Wait::Forever => None,
            Wait::For(t) => Some(t),
            Wait::No => {
                if self.poll_limited(limit, sink, release)? {
                    return Ok(());
                }
                let closed = self.ch.ring().ctl.publisher.state.load(Acquire) == ring::CLOSED;
                // Closed: one more poll, for a message committed just before the close.
                if closed && self.poll_limited(limit, sink, release)? {
                    return Ok(());
                }
                if !closed && self.set_found_publisher_dead() {
                    if self.poll_limited(limit, sink, release)? {
                        return Ok(());
                    }
                    return Err(Error::PublisherGone {
                        name: self.ch.name(),
                    });
                }
                return Err(if closed {
                    Error::Disconnected {
                        name: self.ch.name(),
                    }
                } else {
                    Error::Empty
                });
            }
        };
        self.wait_limited(Deadline::after(timeout), None, limit, sink, release)
    }

    /// One non-blocking attempt with a sink that has room for `limit` bytes: `Ok(true)`
    /// when a message went to the sink, `Ok(false)` if none is waiting; a longer message
    /// stays unread ([`Error::BufferTooSmall`]). `release` publishes our progress (not for
    /// a borrowed sample, whose bytes must stay).
    fn poll_limited(
        &mut self,
        limit: usize,
        sink: &mut dyn FnMut(&[AtomicU64], usize),
        release: bool,
    ) -> Result<bool> {
        self.check_here()?;
        let ring = self.ch.ring();
        let next = ring.try_read_limited(&mut self.st, limit as u64, sink);
        self.mirror.position.store(self.st.cursor, Relaxed);
        match next {
            Ok(Next::Message) => {
                if release {
                    self.release(false);
                }
                Ok(true)
            }
            Ok(Next::Empty) => {
                // About to wait or return: the publisher must see all our progress.
                self.release(true);
                Ok(false)
            }
            Ok(Next::Lagged(lost)) => {
                self.lost = self.lost.wrapping_add(lost);
                Err(Error::Lagged { lost })
            }
            Ok(Next::TooLong(needed)) => Err(Error::BufferTooSmall {
                name: self.ch.name(),
                needed: usize::try_from(needed).unwrap_or(usize::MAX),
                len: limit,
            }),
            Err(reason) => Err(self.ch.corrupt(reason)),
        }
    }

    /// [`Error::ForeignProcess`] in a fork child: one process moves a subscriber's cursor.
    #[inline]
    fn check_here(&self) -> Result<()> {
        self.ch
            .seg
            .check_here(|| format!("a subscriber of {}", self.ch.name()))
    }

    /// Publishes our cursor to the publisher (back-pressure), in batches of an eighth of the
    /// ring, or at once with `all` (before waiting). A blocked publisher is woken by the
    /// batch that frees its room: the slowest subscriber, being a ring behind, always has an
    /// eighth of a ring to read, or runs dry and publishes everything.
    pub(super) fn release(&mut self, all: bool) {
        if self.ch.config.mode != Mode::Backpressure {
            return;
        }
        let pending = self.st.cursor - self.released;
        if pending > 0 && (all || pending >= self.ch.config.capacity as u64 / 8) {
            let ring = self.ch.ring();
            ring.release(&ring.slots[self.slot], self.st.cursor);
            self.released = self.st.cursor;
        }
    }

    fn wait_recv(
        &mut self,
        buf: &mut Vec<u8>,
        deadline: Deadline,
        stop: Option<&Stopper>,
    ) -> Result<()> {
        if self.st.verify {
            self.wait_with(
                deadline,
                stop,
                &mut |w, len| Ring::copy_payload(w, len, buf),
                true,
            )
        } else {
            let sink = &mut |w: &[AtomicU64], len| Ring::copy_payload_quiescent(w, len, buf);
            self.wait_with(deadline, stop, sink, true)
        }
    }

    /// Waits for a message: poll, spin, then sleep on the publisher's `notify` futex, with
    /// the publisher's liveness checked every LIVENESS_PERIOD.
    fn wait_with(
        &mut self,
        deadline: Deadline,
        stop: Option<&Stopper>,
        sink: &mut dyn FnMut(&[AtomicU64], usize),
        release: bool,
    ) -> Result<()> {
        self.wait_limited(deadline, stop, usize::MAX, sink, release)
    }

    /// [`wait_with`](Self::wait_with) for a sink with room for `limit` bytes.
    fn wait_limited(
        &mut self,
        deadline: Deadline,
        stop: Option<&Stopper>,
        limit: usize,
        sink: &mut dyn FnMut(&[AtomicU64], usize),
        release: bool,
    ) -> Result<()> {
        if self.poll_limited(limit, sink, release)? {
            return Ok(());
        }
        let ch = self.ch.clone();
        let ctl = ch.seg.at::<RingControl>(CONTROL);
        let mut got = None;
        // Spin until a message, an error, the end of the stream, or the deadline.
        if spin_until(deadline.cap(ch.spin), || {
            got = Some(self.poll_limited(limit, sink, release));
            !matches!(got, Some(Ok(false))) || ctl.publisher.state.load(Acquire) == ring::CLOSED
        }) && !matches!(got, Some(Ok(false)))
        {
            return got.expect("spin_until checked").map(|_| ());
        }
        // SYNC: AcqRel RMW, paired with the publisher's RMW on `sub_waiters`; for a publisher
        // that only loads it, the membarrier below is its fence (see `ring`).
        ctl.sub_waiters.fetch_add(1, AcqRel);
        // Always, not only when `asym` is set: a publisher attaching right now may have set
        // it without our seeing it yet. Costs a syscall per sleep, never per message.
        let fenced = sys::membarrier_global();
        // A publisher that dies closes the channel's file: the watch wakes us for that, and
        // we probe its liveness (a syscall) then, and once now (it may have died before the
        // watch began). Without the watch, after each nap with no news, as before; and
        // without the fence, naps too (a publisher that relies on it may not wake us).
        let mut closes = if fenced {
            CloseWatch::new(ch.seg.name().os_name())
        } else {
            CloseWatch::blind()
        };
        let mut probe = true;
        let result = loop {
            let notify = ctl.publisher.notify.load(Acquire);
            match self.poll_limited(limit, sink, release) {
                Ok(true) => break Ok(()),
                Ok(false) => {}
                Err(e) => break Err(e),
            }
            match ctl.publisher.state.load(Acquire) {
                ring::CLOSED => {
                    // One more poll: a message committed between our poll and the close
                    // (the Acquire load above makes it visible) is still delivered.
                    match self.poll_limited(limit, sink, release) {
                        Ok(true) => break Ok(()),
                        Ok(false) => break Err(Error::Disconnected { name: ch.name() }),
                        Err(e) => break Err(e),
                    }
                }
                ring::OPEN if probe && !ch.publisher_alive() => {
                    // Dead: drain first (a final poll after the liveness check), then say so.
                    match self.poll_limited(limit, sink, release) {
                        Ok(true) => break Ok(()),
                        Ok(false) => break Err(Error::PublisherGone { name: ch.name() }),
                        Err(e) => break Err(e),
                    }
                }
                _ => {}
            }
            if deadline.expired() {
                break Err(Error::Timeout);
            }
            if stop.is_some_and(Stopper::enter_wait) {
                break Err(Error::Timeout);
            }
            let blind = closes.sleep(&ctl.publisher.notify, notify, deadline, LIVENESS_PERIOD);
            if let Some(stop) = stop {
                stop.leave_wait();
            }
            probe =
                closes.closed_since() || (blind && ctl.publisher.notify.load(Acquire) == notify);
        };
        ctl.sub_waiters.fetch_sub(1, AcqRel);
        result
    }

    /// Runs `handler` on a background thread for each message, until the stream ends, the
    /// guard is dropped, or the handler panics. [`Message::lost`] says how many messages
    /// were lost just before this one (lossy channels).
    pub fn on_message<F>(mut self, mut handler: F) -> Result<HandlerGuard>
    where
        F: FnMut(Message<'_>) + Send + 'static,
    {
        self.check_here()?;
        let name = self.ch.name();
        let waker = self.ch.clone();
        let thread_name = name.clone();
        HandlerGuard::spawn(
            name,
            Box::new(move || {
                let ctl = waker.seg.at::<RingControl>(CONTROL);
                crate::os::wait::futex_wake(&ctl.publisher.notify, u32::MAX);
            }),
            move |stopper| {
                let mut stats = HandlerStats::default();
                let mut buf = Vec::new();
                let mut lost = 0;
                loop {
                    match self.wait_recv(&mut buf, Deadline::after(None), Some(stopper)) {
                        Ok(()) => {
                            let msg = Message { data: &buf, lost };
                            call_handler(&thread_name, || handler(msg))?;
                            stats.delivered += 1;
                            stats.skipped += lost;
                            lost = 0;
                        }
                        Err(Error::Lagged { lost: n, .. }) => lost += n,
                        // Stopped by the guard, or the stream ended cleanly.
                        Err(Error::Timeout | Error::Disconnected { .. }) => return Ok(stats),
                        Err(e) => return Err(e),
                    }
                }
            },
        )
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        // Sets we are attached to stop reporting us (nobody can receive any more).
        self.mirror.closed.store(true, Relaxed);
        // A fork child's copy must not free its parent's slot.
        if !self.ch.seg.dropping_here() {
            return;
        }
        let ring = self.ch.ring();
        let slot = &ring.slots[self.slot];
        slot.state.fetch_and(!ring::SLOT_ACTIVE, Release);
        if ring.backpressure {
            // We no longer hold the publisher back: wake it if it waits for us.
            ring.release(slot, self.st.cursor);
        }
    }
}

/// How long a receive waits.
#[derive(Clone, Copy, Debug)]
enum Wait {
    /// As long as it takes.
    Forever,
    /// Not at all.
    No,
    /// At most this long.
    For(Duration),
}
