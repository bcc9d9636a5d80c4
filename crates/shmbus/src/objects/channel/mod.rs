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

use std::time::Duration;

use crate::error::{Error, Result};
use crate::os::sys;
use crate::os::wait::{futex_wait, Deadline};
use crate::protocol::layout::Spec;
use crate::protocol::ring::{self, Ring, RingControl, SubSlot};
use crate::segment::header::{Kind, HEADER_SIZE};
use crate::segment::liveness::slot_alive;
use crate::segment::options::Options;
use crate::segment::Segment;
use crate::sync::{AtomicU64, Ordering::*};

mod publisher;
mod sample;
mod subscriber;
pub(crate) mod waitable;

pub(crate) use publisher::PendingPublisher;
pub use publisher::{Loan, Publisher};
pub use sample::{Iter, Message, Sample};
pub use subscriber::Subscriber;

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

    /// The publisher's `notify` word now: it changes whenever a publisher attaches,
    /// commits or closes.
    fn news(&self) -> u32 {
        // SYNC: Acquire pairs with the Release stores of `notify` in `attach_publisher`
        // and `publish_words`.
        self.seg
            .at::<RingControl>(CONTROL)
            .publisher
            .notify
            .load(Acquire)
    }

    /// Sleeps until `notify` differs from `seen` (a publisher attached, committed or
    /// closed since `seen` was read) or the deadline passes; whether it changed. Counted
    /// among the sleeping subscribers, so a commit wakes it as it wakes `recv`.
    fn wait_for_news(&self, seen: u32, deadline: Deadline) -> bool {
        let ctl = self.seg.at::<RingControl>(CONTROL);
        let notify = &ctl.publisher.notify;
        // SYNC: as in the subscriber's sleep: an AcqRel RMW, then the membarrier that fences
        // a publisher which reads `sub_waiters` with a plain load.
        ctl.sub_waiters.fetch_add(1, AcqRel);
        // Without the fence a publisher may not see us: then nap (`LIVENESS_PERIOD`).
        let cap = (!sys::membarrier_global()).then_some(LIVENESS_PERIOD);
        let changed = loop {
            let now = notify.load(Acquire);
            if now != seen {
                break true;
            }
            if deadline.expired() {
                break false;
            }
            let left = deadline.remaining();
            futex_wait(
                notify,
                now,
                cap.map_or(left, |c| Some(left.map_or(c, |l| l.min(c)))),
            );
        };
        ctl.sub_waiters.fetch_sub(1, AcqRel);
        changed
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
