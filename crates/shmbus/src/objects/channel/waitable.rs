//! A subscriber as a `WaitSet` sees it: the channel, and the subscriber's position.

use std::sync::Arc;

use super::{Channel, Subscriber};
use crate::os::wait::Deadline;
use crate::protocol::ring::News;
use crate::sync::{AtomicU32, AtomicU64, Ordering::Relaxed};

/// What a subscriber shares with the `WaitSet`s it is attached to.
#[derive(Debug)]
pub(crate) struct Mirror {
    /// The subscriber's cursor, which it stores after every receive.
    pub position: AtomicU64,
    /// Set by a set that found the publisher dead: the subscriber's next receive that
    /// does not wait probes the publisher (it otherwise never does, to stay cheap) and
    /// reports `PublisherGone`.
    pub gone: std::sync::atomic::AtomicBool,
    /// Set when the subscriber is dropped: the sets never report it again.
    pub closed: std::sync::atomic::AtomicBool,
}

/// A subscriber attached to a `WaitSet`: ready when it has something to receive (a
/// message, a loss to report, the end of the stream), or its publisher died.
#[derive(Debug)]
pub(crate) struct SubscriberWaitable {
    ch: Arc<Channel>,
    /// Shared with the subscriber.
    mirror: Arc<Mirror>,
    /// The publisher's liveness as last probed; `None`: probe at the next look.
    alive: Option<bool>,
}

impl SubscriberWaitable {
    pub(super) fn new(ch: Arc<Channel>, mirror: Arc<Mirror>) -> SubscriberWaitable {
        SubscriberWaitable {
            ch,
            mirror,
            alive: None,
        }
    }

    /// The word a sleeping subscriber waits on and the count of sleepers it joins; a
    /// joiner must then call `membarrier` (the publisher may read the count with a plain
    /// load).
    pub(crate) fn sleep_words(&self) -> (&AtomicU32, &AtomicU32) {
        self.ch.ring().sleep_words()
    }

    /// The channel's name as the operating system knows it (for a close watch).
    pub(crate) fn os_name(&self) -> &str {
        self.ch.seg.name().os_name()
    }

    /// Whether the subscriber has something to receive. `recheck`: the publisher may have
    /// died since the last look (a close of the channel's file), so probe its lock again.
    pub(crate) fn ready(&mut self, recheck: bool) -> bool {
        if self.mirror.closed.load(Relaxed) {
            return false;
        }
        match self.ch.ring().news_for(self.mirror.position.load(Relaxed)) {
            News::Message | News::Ended => true,
            News::NoPublisher => false,
            News::Nothing => {
                if recheck || self.alive.is_none() {
                    self.alive = Some(self.ch.publisher_alive());
                }
                let dead = self.alive == Some(false);
                if dead {
                    self.mirror.gone.store(true, Relaxed);
                }
                dead
            }
        }
    }
}

/// What the subscriber side offers to waiters that do not receive.
impl Subscriber {
    /// What a `WaitSet` keeps of the subscriber.
    pub(crate) fn waitable(&self) -> SubscriberWaitable {
        SubscriberWaitable::new(self.ch.clone(), self.mirror.clone())
    }

    /// A token that changes when a publisher attaches, commits or closes (for
    /// [`Self::wait_for_news`]: read it before a `recv` that may fail for want of a
    /// publisher).
    pub(crate) fn news(&self) -> u32 {
        self.ch.news()
    }

    /// Sleeps until the token differs from `seen` or the deadline passes; whether it did.
    pub(crate) fn wait_for_news(&self, seen: u32, deadline: Deadline) -> bool {
        self.ch.wait_for_news(seen, deadline)
    }

    /// Whether a `WaitSet` found the publisher dead since the last call and it still is:
    /// a receive that does not wait then reports `PublisherGone` (it otherwise never
    /// probes the publisher, to stay cheap), so a wait-then-try loop ends instead of
    /// spinning on `Empty`.
    pub(super) fn set_found_publisher_dead(&self) -> bool {
        // A plain load first: an empty try_recv in a polling loop must not pay an RMW.
        self.mirror.gone.load(Relaxed)
            && self.mirror.gone.swap(false, Relaxed)
            && !self.ch.publisher_alive()
    }
}
