//! Broadcast channels: one [`Publisher`], many [`Subscriber`]s, built on [`crate::protocol::ring`].
//!
//! # Layout (after the 128-byte header)
//!
//! | offset            | what                                                  |
//! |------------------:|-------------------------------------------------------|
//! |               128 | publisher words (one 128-byte line)                   |
//! |               256 | `sub_waiters` (own line)                              |
//! |               384 | back-pressure wait words `waiting`, `space` (own line) |
//! |               512 | `max_slots` subscriber slots, 128 bytes each          |
//! | 512 + 128 × slots | the ring: `capacity` bytes (a power of two)           |
//!
//! The header records `capacity`, `max_message`, `max_slots` and the mode (`flags`: 0 lossy,
//! 1 back-pressure); every opener validates them before computing an offset.
//!
//! # Liveness
//!
//! The publisher holds an OFD lock on byte [`PUBLISHER_BYTE`] of the object, subscriber `i`
//! on byte `SUBSCRIBER_BYTES + i` (see [`crate::segment::liveness`]). A blocked subscriber checks the
//! publisher's byte every [`LIVENESS_PERIOD`]; a blocked back-pressure publisher frees the
//! slots of dead subscribers as often.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::handler::{call_handler, HandlerGuard, HandlerStats};
use crate::os::sys;
use crate::os::wait::Stopper;
use crate::os::wait::{futex_wait, spin_until, Deadline};
use crate::protocol::layout::Spec;
use crate::protocol::ring::{self, Next, PubState, Reserved, Ring, RingControl, SubSlot, SubState};
use crate::segment::header::{Kind, HEADER_SIZE};
use crate::segment::liveness::{claim_slot, slot_alive};
use crate::segment::options::Options;
use crate::segment::Segment;
use crate::sync::{fence, AtomicU64, Ordering::*};

pub(crate) const CONTROL: usize = HEADER_SIZE;
pub(crate) const SLOTS: usize = HEADER_SIZE + 384;
/// Lock byte of the publisher.
pub(crate) const PUBLISHER_BYTE: u64 = 1 << 41;
/// Lock bytes of subscriber slots start here (slot `i` at `SUBSCRIBER_BYTES + i`).
pub(crate) const SUBSCRIBER_BYTES: u64 = (1 << 41) + 1;
/// How often blocked parties check on each other's liveness.
pub(crate) const LIVENESS_PERIOD: Duration = Duration::from_millis(20);

/// Whether a slow subscriber loses messages or holds the publisher back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// The publisher never waits; a subscriber that falls a whole ring behind is told
    /// exactly how many messages it lost ([`Error::Lagged`]) and continues with the oldest
    /// still kept. For telemetry.
    #[default]
    Lossy,
    /// The publisher never overwrites what a live subscriber has not consumed: `send` waits,
    /// `try_send` returns [`Error::Full`]. For commands.
    Backpressure,
}

impl Mode {
    /// `lossy` or `backpressure`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Lossy => "lossy",
            Mode::Backpressure => "backpressure",
        }
    }
}

/// The shape of a channel, fixed at creation and checked by every opener.
///
/// ```
/// use shmbus::{ChannelConfig, Mode};
/// let config = ChannelConfig { mode: Mode::Backpressure, ..ChannelConfig::default() };
/// assert_eq!(config.capacity, 256 * 1024);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Ring size in bytes: a power of two, at least 64. Each message takes its length
    /// rounded up to 16, plus 16.
    pub capacity: usize,
    /// Largest message in bytes; at most `capacity / 2 - 16`.
    pub max_message: usize,
    /// Lossy or back-pressure.
    pub mode: Mode,
    /// How many subscribers may attach at once (1 to 1024).
    pub max_subscribers: usize,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            capacity: 256 * 1024,
            max_message: 16 * 1024,
            mode: Mode::Lossy,
            max_subscribers: 16,
        }
    }
}

impl ChannelConfig {
    /// The default configuration with a ring of `capacity` bytes, and a largest message
    /// that fits it: the default 16 KiB, or less when the ring is too small for that.
    ///
    /// ```
    /// use shmbus::ChannelConfig;
    /// assert_eq!(ChannelConfig::with_capacity(4096).max_message, 2032);
    /// assert_eq!(ChannelConfig::with_capacity(1 << 20).max_message, 16 * 1024);
    /// ```
    pub fn with_capacity(capacity: usize) -> ChannelConfig {
        let fits = ring::max_message_for(capacity as u64);
        ChannelConfig {
            capacity,
            max_message: ChannelConfig::default()
                .max_message
                .min(usize::try_from(fits).unwrap_or(usize::MAX)),
            ..ChannelConfig::default()
        }
    }

    fn spec(&self) -> Result<Spec> {
        let spec = Spec {
            capacity: self.capacity as u64,
            flags: match self.mode {
                Mode::Lossy => 0,
                Mode::Backpressure => 1,
            },
            max_message: u32::try_from(self.max_message).unwrap_or(u32::MAX),
            max_slots: u32::try_from(self.max_subscribers).unwrap_or(u32::MAX),
        };
        crate::protocol::layout::check_channel(&spec)
            .map_err(|reason| Error::InvalidConfig { reason })?;
        Ok(spec)
    }
}

/// A mapped channel and its validated shape.
#[derive(Debug)]
struct Channel {
    seg: Segment,
    config: ChannelConfig,
    spin: Duration,
}

/// The configuration in a validated channel header.
fn config_of(seg: &Segment) -> ChannelConfig {
    let f = seg.header().fields;
    // Validated by `layout_size` when the segment was opened or created.
    ChannelConfig {
        capacity: f.capacity as usize,
        max_message: f.max_message as usize,
        mode: if f.kind_flags() == 1 {
            Mode::Backpressure
        } else {
            Mode::Lossy
        },
        max_subscribers: f.max_slots as usize,
    }
}

/// The ring of a channel segment with configuration `config` (from `config_of`).
fn ring_of<'a>(seg: &'a Segment, config: &ChannelConfig) -> Ring<'a> {
    let slots = config.max_subscribers;
    Ring {
        ctl: seg.at::<RingControl>(CONTROL),
        slots: seg.slice::<SubSlot>(SLOTS, slots),
        data: seg.slice::<AtomicU64>(SLOTS + 128 * slots, config.capacity / 8),
        capacity: config.capacity as u64,
        max_message: config.max_message as u64,
        backpressure: config.mode == Mode::Backpressure,
    }
}

fn publisher_alive(seg: &Segment) -> bool {
    sys::ofd_is_locked(sys::borrow(seg.fd()), PUBLISHER_BYTE).unwrap_or(true)
}

fn active_subscribers(seg: &Segment, ring: &Ring<'_>) -> usize {
    (0..ring.slots.len())
        .filter(|&i| {
            ring.slots[i].state.load(Acquire) & ring::SLOT_ACTIVE != 0
                && slot_alive(seg, SUBSCRIBER_BYTES, i as u32)
        })
        .count()
}

impl Channel {
    fn new(seg: Segment, opts: &Options) -> Channel {
        Channel {
            config: config_of(&seg),
            seg,
            spin: opts.spin,
        }
    }

    fn create(name: &str, config: &ChannelConfig, opts: &Options) -> Result<Channel> {
        let seg = Segment::create_kind(opts.name(name)?, Kind::Channel, config.spec()?, opts)?;
        Ok(Channel::new(seg, opts))
    }

    fn open(name: &str, opts: &Options) -> Result<Channel> {
        let seg = Segment::open_kind(opts.name(name)?, Some(Kind::Channel), opts, true)?;
        Ok(Channel::new(seg, opts))
    }

    fn create_or_open(name: &str, config: &ChannelConfig, opts: &Options) -> Result<Channel> {
        let seg =
            Segment::create_or_open_kind(opts.name(name)?, Kind::Channel, config.spec()?, opts)?;
        let ch = Channel::new(seg, opts);
        if ch.config != *config {
            return Err(Error::ConfigMismatch {
                name: ch.name(),
                requested: format!("{config:?}"),
                found: format!("{:?}", ch.config),
            });
        }
        Ok(ch)
    }

    fn name(&self) -> String {
        self.seg.name().describe()
    }

    fn ring(&self) -> Ring<'_> {
        ring_of(&self.seg, &self.config)
    }

    fn publisher_alive(&self) -> bool {
        publisher_alive(&self.seg)
    }

    fn subscriber_alive(&self, slot: usize) -> bool {
        slot_alive(&self.seg, SUBSCRIBER_BYTES, slot as u32)
    }

    fn corrupt(&self, reason: String) -> Error {
        Error::Corrupt {
            name: self.name(),
            reason,
        }
    }
}

/// A channel created without a publisher, kept (and removed on drop) by its creator.
#[derive(Debug)]
pub(crate) struct ChannelKeeper(#[allow(dead_code)] Channel);

impl ChannelKeeper {
    pub(crate) fn create(name: &str, config: &ChannelConfig, opts: &Options) -> Result<Self> {
        Ok(ChannelKeeper(Channel::create(name, config, opts)?))
    }
}

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
        let got = sys::ofd_try_lock(sys::borrow(ch.seg.lock_fd()?), PUBLISHER_BYTE)
            .map_err(|e| crate::segment::os_error(ch.seg.name(), "lock the publisher of", e))?;
        if !got {
            return Err(Error::PublisherExists { name: ch.name() });
        }
        // Skip the fence on every send when sleeping subscribers can fence for us.
        let asym = !cfg!(loom) && sys::membarrier_register();
        let st = ch
            .ring()
            .attach_publisher(asym)
            .map_err(|r| ch.corrupt(r))?;
        Ok(Publisher {
            ch,
            st,
            last_reclaim: Instant::now(),
            held: None,
        })
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
        loop {
            {
                let ctl = self.ch.seg.at::<RingControl>(CONTROL);
                ctl.pub_wait.waiting.store(1, Relaxed);
                // SYNC: Dekker with `Ring::release` (cursor store, fence, load of `waiting`).
                fence(SeqCst);
                let space = ctl.pub_wait.space.load(Acquire);
                if let Some(r) = self.ch.ring().reserve(&mut self.st, len) {
                    ctl.pub_wait.waiting.store(0, Relaxed);
                    return Ok(r);
                }
                let nap = deadline
                    .remaining()
                    .map_or(LIVENESS_PERIOD, |d| d.min(LIVENESS_PERIOD));
                futex_wait(&ctl.pub_wait.space, space, Some(nap));
                ctl.pub_wait.waiting.store(0, Relaxed);
            }
            self.reclaim_dead();
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
    ch: Arc<Channel>,
    st: SubState,
    slot: usize,
    /// The cursor last published in our slot (back-pressure).
    released: u64,
    /// Messages lost so far (lossy), as reported by `Error::Lagged`.
    lost: u64,
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
        Ok(Subscriber {
            ch: Arc::new(ch),
            released: st.cursor,
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
        match ring.try_read_limited(&mut self.st, limit as u64, sink) {
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
    fn release(&mut self, all: bool) {
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
        sys::membarrier_global();
        // Probe the publisher's liveness (a syscall) only after a nap with no news.
        let mut probe = false;
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
            let nap = deadline
                .remaining()
                .map_or(LIVENESS_PERIOD, |d| d.min(LIVENESS_PERIOD));
            futex_wait(&ctl.publisher.notify, notify, Some(nap));
            if let Some(stop) = stop {
                stop.leave_wait();
            }
            probe = ctl.publisher.notify.load(Acquire) == notify;
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

/// A message handed to a receive handler.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// The payload.
    pub data: &'a [u8],
    /// Messages lost just before this one (lossy channels; 0 otherwise).
    pub lost: u64,
}

/// Iterator over a subscriber's messages ([`Subscriber::iter`]).
#[derive(Debug)]
pub struct Iter<'a> {
    sub: &'a mut Subscriber,
    done: bool,
}

impl Iterator for Iter<'_> {
    type Item = Result<Vec<u8>>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.sub.recv() {
            Ok(msg) => Some(Ok(msg)),
            Err(Error::Disconnected { .. }) => {
                self.done = true;
                None
            }
            Err(e @ Error::Lagged { .. }) => Some(Err(e)),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// A message borrowed in place from a back-pressure ring ([`Subscriber::recv_ref`]); the
/// publisher may reuse its bytes only after this is dropped.
#[derive(Debug)]
pub struct Sample<'a> {
    sub: &'a mut Subscriber,
    ptr: *const u8,
    len: usize,
}

// `Sample`'s Send and Sync below rest on these.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Subscriber>();
    send_sync::<Error>();
};

// SAFETY: a `Sample` is a `&mut Subscriber` (Send + Sync, asserted above) plus a pointer to bytes inside the
// mapping that subscriber keeps alive; those bytes are readable from any thread, and only
// read (`Deref` gives `&[u8]`), so moving or sharing a sample across threads is as safe as
// moving or sharing a `&[u8]` into the mapping.
#[allow(unsafe_code)]
unsafe impl Send for Sample<'_> {}
// SAFETY: as for `Send`: shared access only ever reads the borrowed bytes.
#[allow(unsafe_code)]
unsafe impl Sync for Sample<'_> {}

impl std::ops::Deref for Sample<'_> {
    type Target = [u8];
    #[allow(unsafe_code)]
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr..ptr + len` is a committed record's payload inside the mapping
        // (checked by `try_read` against the ring's bounds before the sink saw it), which
        // `self.sub` keeps mapped. In back-pressure mode the publisher does not overwrite it
        // while our slot's cursor (not yet advanced: that happens on drop) points before it.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Sample<'_> {
    fn drop(&mut self) {
        if self.sub.ch.seg.owned_here() {
            self.sub.release(false);
        }
    }
}

/// Live state for `info`.
pub(crate) fn live_state(seg: &Segment) -> ChannelState {
    let config = config_of(seg);
    let ring = ring_of(seg, &config);
    let (tail, published) = ring.snapshot();
    ChannelState {
        mode: config.mode,
        max_message: config.max_message as u64,
        max_subscribers: config.max_subscribers as u32,
        published,
        tail,
        subscribers: active_subscribers(seg, &ring) as u32,
        publisher_alive: publisher_alive(seg),
        closed: ring.ctl.publisher.state.load(Acquire) == ring::CLOSED,
    }
}

/// A channel's live state, as `info` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChannelState {
    pub mode: Mode,
    pub max_message: u64,
    pub max_subscribers: u32,
    pub published: u64,
    pub tail: u64,
    pub subscribers: u32,
    pub publisher_alive: bool,
    pub closed: bool,
}
