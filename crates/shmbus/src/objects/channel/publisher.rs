//! The publisher side of a channel: `Publisher` and its zero-copy `Loan`.

use std::time::{Duration, Instant};

use super::{active_subscribers, Channel, ChannelConfig, CONTROL, LIVENESS_PERIOD, PUBLISHER_BYTE};
use crate::error::{Error, Result};
use crate::os::sys;
use crate::os::wait::{futex_wait, spin_until, Deadline};
use crate::os::watcher::CloseWatch;
use crate::protocol::ring::{self, PubState, Reserved, RingControl};
use crate::segment::options::Options;
use crate::sync::{fence, AtomicU64, Ordering::*};

/// The one sender of a channel.
///
/// ```
/// # shmbus::doctest_namespace();
/// use shmbus::{ChannelConfig, Publisher, Subscriber};
///
/// let mut publisher = Publisher::create("doc.channel.pub", ChannelConfig::default())?;
/// let mut subscriber = Subscriber::open("doc.channel.pub")?;
/// publisher.send(b"hello")?;
/// let mut loan = publisher.loan(5)?; // zero-copy: write straight into the ring
/// loan.copy_from_slice(b"world");
/// loan.commit()?;
/// assert_eq!(subscriber.recv()?, b"hello");
/// assert_eq!(subscriber.recv()?, b"world");
/// drop(publisher); // end of stream
/// assert!(matches!(subscriber.recv(), Err(shmbus::Error::Disconnected { .. })));
/// # Ok::<(), shmbus::Error>(())
/// ```
#[derive(Debug)]
pub struct Publisher {
    ch: Channel,
    st: PubState,
    last_reclaim: Instant,
    /// The loan taken by [`Publisher::hold_loan`], until committed or discarded.
    held: Option<Reserved>,
}

impl Publisher {
    /// Creates a channel and becomes its publisher. The channel is removed when this
    /// publisher is dropped, unless [`Options::persistent`].
    pub fn create(name: &str, config: ChannelConfig) -> Result<Publisher> {
        Self::create_with(name, config, &Options::default())
    }

    /// [`Publisher::create`] with options.
    pub fn create_with(name: &str, config: ChannelConfig, opts: &Options) -> Result<Publisher> {
        Publisher::attach(Channel::create(name, &config, opts)?)
    }

    /// Becomes the publisher of an existing channel.
    pub fn open(name: &str) -> Result<Publisher> {
        Self::open_with(name, &Options::default())
    }

    /// [`Publisher::open`] with options.
    pub fn open_with(name: &str, opts: &Options) -> Result<Publisher> {
        Publisher::attach(Channel::open(name, opts)?)
    }

    /// Opens the channel or creates it (race-free); [`Error::ConfigMismatch`] if it exists
    /// with another configuration. A dead publisher's channel is taken over.
    pub fn create_or_open_with(
        name: &str,
        config: ChannelConfig,
        opts: &Options,
    ) -> Result<Publisher> {
        Publisher::attach(Channel::create_or_open(name, &config, opts)?)
    }

    fn attach(ch: Channel) -> Result<Publisher> {
        match Publisher::try_attach(ch)? {
            Ok(publisher) => Ok(publisher),
            Err(ch) => Err(Error::PublisherExists { name: ch.name() }),
        }
    }

    /// [`Publisher::attach`], giving the channel back (still open) when another publisher
    /// holds it.
    fn try_attach(ch: Channel) -> Result<std::result::Result<Publisher, Channel>> {
        let got = sys::ofd_try_lock(sys::borrow(ch.seg.lock_fd()?), PUBLISHER_BYTE)
            .map_err(|e| crate::segment::os_error(ch.seg.name(), "lock the publisher of", e))?;
        if !got {
            return Ok(Err(ch));
        }
        // Skip the fence on every send when sleeping subscribers can fence for us.
        let asym = !cfg!(loom) && sys::membarrier_register();
        let st = ch
            .ring()
            .attach_publisher(asym)
            .map_err(|r| ch.corrupt(r))?;
        Ok(Ok(Publisher {
            ch,
            st,
            last_reclaim: Instant::now(),
            held: None,
        }))
    }

    /// The channel's configuration.
    pub fn config(&self) -> &ChannelConfig {
        &self.ch.config
    }

    /// The channel's name.
    pub fn name(&self) -> &crate::Name {
        self.ch.seg.name()
    }

    /// Messages published on this channel so far (by any publisher).
    pub fn published(&self) -> u64 {
        self.st.published
    }

    /// Subscribers attached now (dead ones are not counted).
    pub fn subscriber_count(&self) -> usize {
        active_subscribers(&self.ch.seg, &self.ch.ring())
    }

    /// Waits until at least `n` subscribers are attached, at most `timeout` (`None`:
    /// forever); whether they are. Sleeps on a futex that every subscriber's attach wakes:
    /// no polling.
    ///
    /// ```
    /// # shmbus::doctest_namespace();
    /// use shmbus::{ChannelConfig, Publisher, Subscriber};
    /// use std::time::Duration;
    ///
    /// let publisher = Publisher::create("doc.channel.wait-subs", ChannelConfig::default())?;
    /// let t = std::thread::spawn(|| Subscriber::open("doc.channel.wait-subs"));
    /// assert!(publisher.wait_for_subscribers(1, Some(Duration::from_secs(10)))?);
    /// let _subscriber = t.join().unwrap()?;
    /// assert!(!publisher.wait_for_subscribers(2, Some(Duration::from_millis(10)))?);
    /// # Ok::<(), shmbus::Error>(())
    /// ```
    pub fn wait_for_subscribers(&self, n: usize, timeout: Option<Duration>) -> Result<bool> {
        self.check_here()?;
        let deadline = Deadline::after(timeout);
        let space = &self.ch.seg.at::<RingControl>(CONTROL).pub_wait.space;
        loop {
            // SYNC: Acquire pairs with the Release RMW in `announce_subscriber`; loaded
            // before counting, so an attach after the count changes it.
            let seen = space.load(Acquire);
            if self.subscriber_count() >= n {
                return Ok(true);
            }
            if deadline.expired() {
                return Ok(false);
            }
            futex_wait(space, seen, deadline.remaining());
        }
    }

    /// Publishes `msg`. Lossy: never waits. Back-pressure: waits until every live subscriber
    /// has made room (dead ones are dropped within a few tens of milliseconds).
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        let r = self.reserve(msg.len(), Deadline::after(None), true)?;
        self.ch.ring().write_payload(&r, msg);
        self.ch.ring().commit(&mut self.st, r);
        Ok(())
    }

    /// Publishes `msg` or returns [`Error::Full`] at once (back-pressure).
    pub fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        let r = self.reserve(msg.len(), Deadline::after(Some(Duration::ZERO)), false)?;
        self.ch.ring().write_payload(&r, msg);
        self.ch.ring().commit(&mut self.st, r);
        Ok(())
    }

    /// Publishes `msg`, waiting at most `timeout` for room ([`Error::Timeout`]).
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        let r = self.reserve(msg.len(), Deadline::after(Some(timeout)), true)?;
        self.ch.ring().write_payload(&r, msg);
        self.ch.ring().commit(&mut self.st, r);
        Ok(())
    }

    /// Reserves `len` bytes inside the ring for a zero-copy send: fill the loan, then
    /// [`Loan::commit`]; dropping it publishes nothing. Waits for room like `send`.
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>> {
        let r = self.reserve(len, Deadline::after(None), true)?;
        Ok(Loan { publisher: self, r })
    }

    /// [`loan`](Self::loan), waiting at most `timeout` for room ([`Error::Timeout`]).
    pub fn loan_timeout(&mut self, len: usize, timeout: Duration) -> Result<Loan<'_>> {
        let r = self.reserve(len, Deadline::after(Some(timeout)), true)?;
        Ok(Loan { publisher: self, r })
    }

    /// Reserves `len` bytes for a zero-copy send like [`loan`](Self::loan), but the
    /// publisher keeps the reservation instead of lending it out: for bindings to languages
    /// whose objects cannot hold a Rust borrow (the C and Python APIs). Fill the returned
    /// bytes (or later [`held_loan`](Self::held_loan)), then
    /// [`commit_held`](Self::commit_held); [`discard_held`](Self::discard_held), any other
    /// send or loan, or dropping the publisher publishes nothing.
    ///
    /// `timeout`: `None` waits for room as long as it takes, `Some(Duration::ZERO)` does not
    /// wait ([`Error::Full`]), otherwise [`Error::Timeout`].
    ///
    /// ```
    /// # shmbus::doctest_namespace();
    /// use shmbus::{ChannelConfig, Publisher, Subscriber};
    ///
    /// let mut publisher = Publisher::create("doc.channel.held", ChannelConfig::default())?;
    /// let mut subscriber = Subscriber::open("doc.channel.held")?;
    /// publisher.hold_loan(5, None)?.copy_from_slice(b"hello");
    /// publisher.commit_held()?;
    /// assert_eq!(subscriber.recv()?, b"hello");
    /// # Ok::<(), shmbus::Error>(())
    /// ```
    pub fn hold_loan(&mut self, len: usize, timeout: Option<Duration>) -> Result<&mut [u8]> {
        let wait = timeout != Some(Duration::ZERO);
        let r = self.reserve(len, Deadline::after(timeout), wait)?;
        self.held = Some(r);
        Ok(self.held_loan().expect("just reserved"))
    }

    /// The bytes of the loan [`hold_loan`](Self::hold_loan) took, if it is still held.
    pub fn held_loan(&mut self) -> Option<&mut [u8]> {
        let r = self.held?;
        let start = r.payload_word(self.ch.config.capacity as u64) * 8;
        let bytes = loan_bytes(self.ch.ring().data, start, r.len as usize);
        // SAFETY: see `loan_bytes`; the reservation is ours until committed or discarded,
        // and `&mut self` is borrowed for as long as the slice lives.
        #[allow(unsafe_code)]
        Some(unsafe { &mut *bytes })
    }

    /// Publishes the loan [`hold_loan`](Self::hold_loan) took. [`Error::NoLoan`] when none
    /// is held (never taken, already committed, or discarded by another send).
    pub fn commit_held(&mut self) -> Result<()> {
        self.check_here()?;
        let r = self.held.take().ok_or_else(|| Error::NoLoan {
            name: self.ch.name(),
        })?;
        self.ch.ring().commit(&mut self.st, r);
        Ok(())
    }

    /// Gives up the loan [`hold_loan`](Self::hold_loan) took, if any: nothing is published.
    pub fn discard_held(&mut self) {
        self.held = None;
    }

    fn reserve(&mut self, len: usize, deadline: Deadline, wait: bool) -> Result<Reserved> {
        self.check_here()?;
        // Any new reservation overwrites a held one's room.
        self.held = None;
        if len > self.ch.config.max_message {
            return Err(Error::TooLarge {
                name: self.ch.name(),
                len,
                capacity: self.ch.config.max_message,
            });
        }
        let len = len as u64;
        if let Some(r) = self.ch.ring().reserve(&mut self.st, len) {
            return Ok(r);
        }
        // Only back-pressure gets here.
        self.reclaim_dead();
        if !wait || deadline.expired() {
            return Err(self.full_or_timeout(wait));
        }
        let mut reserved = None;
        if spin_until(deadline.cap(self.ch.spin), || {
            reserved = self.ch.ring().reserve(&mut self.st, len);
            reserved.is_some()
        }) {
            return Ok(reserved.expect("spin_until saw it"));
        }
        // A subscriber that dies closes the channel's file: the watch wakes us for that, and
        // only then are dead subscribers' slots freed (without the watch, after every nap).
        let mut closes = CloseWatch::new(self.ch.seg.name().os_name());
        // Once now: a subscriber may have died before the watch began.
        let mut force = true;
        loop {
            if force {
                self.last_reclaim = Instant::now()
                    .checked_sub(LIVENESS_PERIOD)
                    .unwrap_or(self.last_reclaim);
                self.reclaim_dead();
                if let Some(r) = self.ch.ring().reserve(&mut self.st, len) {
                    return Ok(r);
                }
            }
            let blind = {
                let ctl = self.ch.seg.at::<RingControl>(CONTROL);
                ctl.pub_wait.waiting.store(1, Relaxed);
                // SYNC: Dekker with `Ring::release` (cursor store, fence, load of `waiting`).
                fence(SeqCst);
                let space = ctl.pub_wait.space.load(Acquire);
                if let Some(r) = self.ch.ring().reserve(&mut self.st, len) {
                    ctl.pub_wait.waiting.store(0, Relaxed);
                    return Ok(r);
                }
                let blind = closes.sleep(&ctl.pub_wait.space, space, deadline, LIVENESS_PERIOD);
                ctl.pub_wait.waiting.store(0, Relaxed);
                blind
            };
            // A subscriber may have just died: look now, not at the next period.
            force = closes.closed_since();
            if blind && !force {
                self.reclaim_dead();
            }
            if let Some(r) = self.ch.ring().reserve(&mut self.st, len) {
                return Ok(r);
            }
            if deadline.expired() {
                return Err(self.full_or_timeout(true));
            }
        }
    }

    /// [`Error::ForeignProcess`] in a fork child: one process drives a publisher.
    #[inline]
    fn check_here(&self) -> Result<()> {
        self.ch
            .seg
            .check_here(|| format!("the publisher of {}", self.ch.name()))
    }

    fn full_or_timeout(&self, waited: bool) -> Error {
        if waited {
            Error::Timeout
        } else {
            Error::Full
        }
    }

    /// Frees the slots of subscribers whose process died (at most every LIVENESS_PERIOD).
    fn reclaim_dead(&mut self) {
        if self.last_reclaim.elapsed() < LIVENESS_PERIOD {
            return;
        }
        self.last_reclaim = Instant::now();
        let ring = self.ch.ring();
        for (i, slot) in ring.slots.iter().enumerate() {
            let state = slot.state.load(Acquire);
            if state & ring::SLOT_ACTIVE != 0 && !self.ch.subscriber_alive(i) {
                // The activation count in `state` keeps us from freeing a new owner's slot.
                let _ =
                    slot.state
                        .compare_exchange(state, state & !ring::SLOT_ACTIVE, AcqRel, Relaxed);
            }
        }
        // Our cached lower bound may have been a dead subscriber's cursor.
        self.st.min_cursor = 0;
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        // A fork child's copy must not end its parent's stream.
        if self.ch.seg.dropping_here() {
            self.ch.ring().close(&mut self.st);
        }
    }
}

/// Room for one message inside the ring, written in place (zero-copy).
///
/// Dereferences to `&mut [u8]` of exactly the loaned length. [`commit`](Loan::commit)
/// publishes it; dropping the loan publishes nothing.
#[derive(Debug)]
pub struct Loan<'a> {
    publisher: &'a mut Publisher,
    r: Reserved,
}

impl Loan<'_> {
    /// Publishes the loaned bytes. Fails only in a fork child of the process that took the
    /// loan ([`Error::ForeignProcess`]), where nothing is published.
    pub fn commit(self) -> Result<()> {
        let Loan { publisher, r } = self;
        publisher.check_here()?;
        publisher.ch.ring().commit(&mut publisher.st, r);
        Ok(())
    }
}

impl std::ops::Deref for Loan<'_> {
    type Target = [u8];
    #[allow(unsafe_code)]
    fn deref(&self) -> &[u8] {
        let start = self
            .r
            .payload_word(self.publisher.ch.config.capacity as u64)
            * 8;
        let words = self.publisher.ch.ring().data;
        let bytes = loan_bytes(words, start, self.r.len as usize);
        // SAFETY: see `loan_bytes`; a shared view of our own exclusive bytes.
        unsafe { &*bytes }
    }
}

impl std::ops::DerefMut for Loan<'_> {
    #[allow(unsafe_code)]
    fn deref_mut(&mut self) -> &mut [u8] {
        let start = self
            .r
            .payload_word(self.publisher.ch.config.capacity as u64)
            * 8;
        let words = self.publisher.ch.ring().data;
        let bytes = loan_bytes(words, start, self.r.len as usize);
        // SAFETY: see `loan_bytes`.
        unsafe { &mut *bytes }
    }
}

/// The loaned bytes `start..start + len` of the ring as a raw slice.
///
/// Dereferencing it is sound while the loan lives: the range lies inside the ring (the
/// reservation checked `len <= max_message`, and a record never wraps), only this publisher
/// writes the ring (it holds the publisher lock, and `&mut Publisher` is borrowed by the
/// loan), and no subscriber reads a record before it is committed (they stop at `tail`); a
/// lapped subscriber that still copies older bytes there uses atomic loads and discards them.
#[allow(unsafe_code)]
fn loan_bytes(words: &[AtomicU64], start: usize, len: usize) -> *mut [u8] {
    assert!(start + len <= words.len() * 8, "loan outside the ring");
    let base = words.as_ptr().cast::<u8>().cast_mut();
    // SAFETY: in bounds (asserted), so the offset stays inside the ring's allocation.
    std::ptr::slice_from_raw_parts_mut(unsafe { base.add(start) }, len)
}

/// A channel opened by a would-be publisher that may have to wait for the current one to
/// go (a duplex client waiting for the link): it stays open between tries, so that the
/// tries themselves open and close nothing.
#[derive(Debug)]
pub(crate) struct PendingPublisher(Channel);

impl PendingPublisher {
    /// Opens channel `name`.
    pub(crate) fn open(name: &str, opts: &Options) -> Result<PendingPublisher> {
        Ok(PendingPublisher(Channel::open(name, opts)?))
    }

    /// Becomes the publisher, or gives itself back while another publisher holds the
    /// channel.
    pub(crate) fn try_attach(self) -> Result<std::result::Result<Publisher, PendingPublisher>> {
        Ok(Publisher::try_attach(self.0)?.map_err(PendingPublisher))
    }

    /// The channel's name.
    pub(crate) fn name(&self) -> &crate::Name {
        self.0.seg.name()
    }

    /// [`Error::PublisherExists`] for this channel.
    pub(crate) fn exists_error(&self) -> Error {
        Error::PublisherExists {
            name: self.0.name(),
        }
    }
}
