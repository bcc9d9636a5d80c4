//! Waiting on many objects at once, in one system call: [`WaitSet`].
//!
//! Every object a thread can wait on sleeps on a 32-bit futex word in shared memory (a
//! channel's `notify`, an event's state, a blackboard's `tick`), after joining a count of
//! sleepers that the object's writer reads to decide whether to wake anyone. A wait set
//! joins the sleepers of every attached object, reads every word, checks every object, and
//! sleeps in one `futex_waitv` (Linux ≥ 5.16) on all the words as read: a writer that
//! changes its object after the check also changes its word and wakes the set, or the set's
//! sleep finds the word changed and returns at once. So no wake-up is lost between the
//! check and the sleep (the same argument as each object's own wait, word by word; the
//! loom model in `waitset_loom` checks it for two sources).
//!
//! Things without a shared word come in through one process-local word of the set's own,
//! which the process's watcher thread (`os::watcher`, inotify) bumps: an object appearing,
//! and a close of an attached channel's file, which is how a dead publisher is noticed (a
//! process that dies closes its files). Timers set the sleep's deadline.
//!
//! **Older kernels.** Without `futex_waitv` (Linux before 5.16, or a seccomp filter that
//! refuses it), a set sleeps on its words in turn, [`WaitSet::FALLBACK_SLICE`] at a time: every
//! wake-up still comes, up to a millisecond late per attached object, at the cost of the
//! set waking about a thousand times a second while it waits. Without inotify, a set with
//! subscribers or awaited objects looks at them again every [`LIVENESS_PERIOD`]
//! (`SHMBUS_TEST_NO_WAITV=1` and `SHMBUS_TEST_NO_INOTIFY=1` force each, for tests).

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::objects::blackboard::{Blackboard, BoardKey, BoardWaitable};
use crate::objects::channel::waitable::SubscriberWaitable;
use crate::objects::channel::{Subscriber, LIVENESS_PERIOD};
use crate::objects::event::{Event, EventWaitable};
use crate::os::sys;
use crate::os::wait::{futex_wait, futex_wait_any, Deadline, Unsupported};
use crate::os::watcher::{self, Interest, Registration};
use crate::segment::name::Name;
use crate::segment::options::Options;
use crate::segment::Segment;
use crate::sync::{AtomicU32, Ordering::*};

/// How soon a set looks again at an awaited object that exists but is not finished.
const INITIALISING_RECHECK: Duration = Duration::from_millis(10);

/// Names one attachment of a [`WaitSet`]; [`WaitSet::wait`] returns the ready ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WaitKey(usize);

impl WaitKey {
    /// The key as a number (for bindings and logs): unique among a set's attachments, and
    /// reused by a later attachment once detached.
    ///
    /// ```
    /// let mut set = shmbus::WaitSet::new();
    /// let a = set.attach_timer(std::time::Duration::from_secs(1))?;
    /// let b = set.attach_timer(std::time::Duration::from_secs(2))?;
    /// assert_ne!(a.index(), b.index());
    /// # Ok::<(), shmbus::Error>(())
    /// ```
    pub fn index(self) -> usize {
        self.0
    }
}

/// What is attached under a key.
#[derive(Debug)]
enum Source {
    Subscriber {
        sub: SubscriberWaitable,
        _close: Option<Registration>,
    },
    Event(EventWaitable),
    Board(BoardWaitable),
    Timer {
        period: Duration,
        next: Instant,
    },
    Appeared {
        name: Name,
        opts: Options,
        _created: Option<Registration>,
        /// Reported once: then never ready again.
        done: bool,
    },
}

impl Source {
    /// The futex word to sleep on and the sleepers' count to join, if the source has them.
    fn words(&self) -> Option<(&AtomicU32, &AtomicU32)> {
        match self {
            Source::Subscriber { sub, .. } => Some(sub.sleep_words()),
            Source::Event(e) => Some(e.sleep_words()),
            Source::Board(b) => Some(b.sleep_words()),
            Source::Timer { .. } | Source::Appeared { .. } => None,
        }
    }
}

/// Waits on many objects at once, in one thread and one system call: subscribers (a
/// message, a loss, the end of the stream, or a dead publisher to report), events (set),
/// blackboards and keys of keyed ones (a new version), timers, and objects that do not
/// exist yet (created).
///
/// [`wait`](WaitSet::wait) returns the keys of the ready attachments; the caller then
/// receives, reads or opens as usual. Subscribers and manual-reset events are ready for as
/// long as the condition holds; a blackboard is ready once per new version; an auto-reset
/// event is ready when the set took its release on the caller's behalf (as Windows'
/// `WaitForMultipleObjects` does, so no other waiter is woken for a release nobody takes);
/// a timer once per period; an awaited object once, when it can be opened.
///
/// The set keeps each attached object mapped (not its handle: receive, read and drop them
/// as usual; a dropped creator's object is removed once the set lets go of it too).
///
/// ```
/// # shmbus::doctest_namespace();
/// use shmbus::{Blackboard, ChannelConfig, Event, EventMode, Publisher, Subscriber, WaitSet};
/// use std::time::Duration;
///
/// let mut publisher = Publisher::create("doc.ws.ticks", ChannelConfig::default())?;
/// let mut ticks = Subscriber::open("doc.ws.ticks")?;
/// let board = Blackboard::create("doc.ws.board", 64)?;
/// let stop = Event::create("doc.ws.stop", EventMode::ManualReset)?;
///
/// let mut set = WaitSet::new();
/// let tick_key = set.attach_subscriber(&ticks)?;
/// let board_key = set.attach_blackboard(&board)?;
/// let stop_key = set.attach_event(&stop)?;
///
/// publisher.send(b"tick")?;
/// board.write(b"temperature=21.5")?;
/// let ready = set.wait(Some(Duration::from_secs(5)))?;
/// assert!(ready.contains(&tick_key) && ready.contains(&board_key));
/// assert_eq!(ticks.recv()?, b"tick");
///
/// stop.set();
/// assert_eq!(set.wait(Some(Duration::from_secs(5)))?, vec![stop_key]);
/// # Ok::<(), shmbus::Error>(())
/// ```
#[derive(Debug)]
pub struct WaitSet {
    sources: Vec<Option<Source>>,
    /// Bumped by the process's watcher thread for appearances and closes we registered.
    watch: Arc<std::sync::atomic::AtomicU32>,
    /// `watch` as of the last look.
    watch_seen: u32,
    /// Whether some registration with the watcher failed (no inotify): look again every
    /// [`LIVENESS_PERIOD`].
    unwatched: bool,
    /// Whether this wait's `membarrier` failed: look again every [`LIVENESS_PERIOD`].
    unfenced: bool,
    /// The process that made the set (its watcher registrations live there).
    owner: u32,
    /// After the watcher reported something, until when every look probes again (see
    /// `watcher::SUSPICION`).
    suspect_until: Option<Instant>,
}

impl Default for WaitSet {
    fn default() -> Self {
        WaitSet::new()
    }
}

impl WaitSet {
    /// Most objects with a futex word (subscribers, events, blackboards) one set waits on:
    /// the kernel's limit for one `futex_waitv`, less the set's own word. Timers and
    /// awaited objects do not count.
    pub const MAX_OBJECTS: usize = sys::FUTEX_WAITV_MAX - 1;

    /// The longest timer period (a hundred years: deadlines stay representable).
    pub const MAX_PERIOD: Duration = Duration::from_secs(100 * 365 * 86_400);

    /// How long a set sleeps on one word at a time without `futex_waitv`.
    pub const FALLBACK_SLICE: Duration = Duration::from_millis(1);

    /// An empty set.
    pub fn new() -> WaitSet {
        WaitSet {
            sources: Vec::new(),
            watch: Arc::new(std::sync::atomic::AtomicU32::new(0)),
            watch_seen: 0,
            unwatched: false,
            unfenced: false,
            owner: crate::os::fork::current_pid(),
            suspect_until: None,
        }
    }

    /// How many attachments the set has.
    pub fn len(&self) -> usize {
        self.sources.iter().flatten().count()
    }

    /// Whether nothing is attached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn add(&mut self, source: Source) -> Result<WaitKey> {
        if source.words().is_some()
            && self
                .sources
                .iter()
                .flatten()
                .filter(|s| s.words().is_some())
                .count()
                >= Self::MAX_OBJECTS
        {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "a WaitSet waits on at most {} subscribers, events and \
                     blackboards (one futex_waitv); use a second set on another thread",
                    Self::MAX_OBJECTS
                ),
            });
        }
        let key = match self.sources.iter().position(Option::is_none) {
            Some(free) => {
                self.sources[free] = Some(source);
                free
            }
            None => {
                self.sources.push(Some(source));
                self.sources.len() - 1
            }
        };
        Ok(WaitKey(key))
    }

    /// Registers interest in `os_name` with the process's watcher, bumping our word.
    fn register(&mut self, os_name: &str, interest: Interest) -> Option<Registration> {
        match watcher::register(os_name, interest, self.watch.clone()) {
            Ok(r) => Some(r),
            Err(_) => {
                self.unwatched = true;
                None
            }
        }
    }

    /// Attaches a subscriber: ready when it has a message (or a loss, or the end of the
    /// stream) to receive, or its publisher died (a receive then says `PublisherGone`). A
    /// subscriber dropped while attached is never ready again (detach it).
    pub fn attach_subscriber(&mut self, subscriber: &Subscriber) -> Result<WaitKey> {
        let sub = subscriber.waitable();
        let close = self.register(sub.os_name(), Interest::Close);
        self.add(Source::Subscriber { sub, _close: close })
    }

    /// Attaches an event: ready while set (manual reset), or once per release it took for
    /// the caller (auto reset).
    pub fn attach_event(&mut self, event: &Event) -> Result<WaitKey> {
        self.add(Source::Event(event.waitable()))
    }

    /// Attaches a blackboard: ready once per version newer than the last reported (the
    /// first: newer than the version when attached).
    pub fn attach_blackboard(&mut self, board: &Blackboard) -> Result<WaitKey> {
        self.add(Source::Board(board.waitable()))
    }

    /// Attaches one key of a keyed blackboard, as [`attach_blackboard`](Self::attach_blackboard).
    pub fn attach_board_key(&mut self, key: &BoardKey) -> Result<WaitKey> {
        self.add(Source::Board(key.waitable()))
    }

    /// Attaches a timer: ready every `period` from now (periods missed while nobody
    /// waited are skipped, not queued). `period` is above zero and at most
    /// [`MAX_PERIOD`](Self::MAX_PERIOD).
    pub fn attach_timer(&mut self, period: Duration) -> Result<WaitKey> {
        if period.is_zero() || period > Self::MAX_PERIOD {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "a WaitSet timer needs a period above zero and at most {} days, not {period:?}",
                    Self::MAX_PERIOD.as_secs() / 86_400
                ),
            });
        }
        let next = Instant::now() + period;
        self.add(Source::Timer { period, next })
    }

    /// Attaches the appearance of object `name` (in `opts`' namespace, owned by a user
    /// `opts` accepts): ready once, when it exists and its creator has finished it; open it
    /// then. An object that exists already is ready at the next wait. Something under the
    /// name that can never be opened with `opts` (another owner, not a shmbus object) is
    /// reported once too: the open then says why.
    pub fn attach_appearance(&mut self, name: &str, opts: &Options) -> Result<WaitKey> {
        let name = opts.name(name)?;
        let created = self.register(name.os_name(), Interest::Creation);
        let opts = opts
            .clone()
            .open_timeout(Duration::ZERO)
            .wait_for_creation(Duration::ZERO);
        self.add(Source::Appeared {
            name,
            opts,
            _created: created,
            done: false,
        })
    }

    /// Detaches `key`; whether it was attached.
    pub fn detach(&mut self, key: WaitKey) -> bool {
        self.sources.get_mut(key.0).and_then(Option::take).is_some()
    }

    /// Waits until at least one attachment is ready, or `timeout` passes (`None`: as long
    /// as it takes); returns the ready keys, in key order (empty after a timeout).
    ///
    /// In a `fork()` child the set is inert: [`Error::ForeignProcess`] (make a new set
    /// there).
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<Vec<WaitKey>> {
        if self.owner != crate::os::fork::current_pid() {
            return Err(Error::ForeignProcess {
                what: "a WaitSet".to_owned(),
                owner: self.owner,
                pid: crate::os::fork::current_pid(),
            });
        }
        let deadline = Deadline::after(timeout);
        // Join every object's sleepers for the whole wait (their writers then wake us).
        let mut fence = false;
        for source in self.sources.iter().flatten() {
            if let Some((_, sleepers)) = source.words() {
                // SYNC: AcqRel RMW, paired with each writer's RMW (or, for a channel whose
                // publisher reads the count with a plain load, with the membarrier below).
                sleepers.fetch_add(1, AcqRel);
                fence |= matches!(source, Source::Subscriber { .. });
            }
        }
        // Without the fence a publisher may not see us: then look again every
        // `LIVENESS_PERIOD` (as without inotify).
        self.unfenced = fence && !sys::membarrier_global();
        let result = self.wait_joined(deadline);
        for source in self.sources.iter().flatten() {
            if let Some((_, sleepers)) = source.words() {
                sleepers.fetch_sub(1, AcqRel);
            }
        }
        result
    }

    fn wait_joined(&mut self, deadline: Deadline) -> Result<Vec<WaitKey>> {
        let mut first = true;
        loop {
            // SYNC: Acquire pairs with the watcher's Release bump.
            let watch = self.watch.load(std::sync::atomic::Ordering::Acquire);
            if watch != self.watch_seen {
                // A close (or an appearance): the closer's locks go a moment after the
                // report, so probe again at every look for a while.
                self.suspect_until = Some(Instant::now() + watcher::SUSPICION);
            }
            let suspect = self.suspect_until.is_some_and(|t| Instant::now() < t);
            self.unwatched |= self.registrations_lost();
            let recheck =
                first || watch != self.watch_seen || suspect || self.unwatched || self.unfenced;
            self.watch_seen = watch;
            first = false;
            // Every word as it is before the looks: a change after them ends the sleep.
            // SYNC: Acquire pairs with the writers' Release stores of the words.
            let seen: Vec<Option<u32>> = self
                .sources
                .iter()
                .map(|s| {
                    s.as_ref()
                        .and_then(Source::words)
                        .map(|(w, _)| w.load(Acquire))
                })
                .collect();
            let now = Instant::now();
            let mut ready = Vec::new();
            let mut wake_at = None::<Instant>;
            for (key, source) in self.sources.iter_mut().enumerate() {
                let Some(source) = source else { continue };
                if look(source, recheck, now, &mut wake_at) {
                    ready.push(WaitKey(key));
                }
            }
            if !ready.is_empty() || deadline.expired() {
                return Ok(ready);
            }
            if (self.unwatched && self.needs_watch()) || self.unfenced || suspect {
                let recheck_at = now + LIVENESS_PERIOD;
                wake_at = Some(wake_at.map_or(recheck_at, |t| t.min(recheck_at)));
            }
            let until = match (deadline.remaining(), wake_at) {
                (None, at) => at,
                (Some(left), None) => Some(now + left),
                (Some(left), Some(at)) => Some(at.min(now + left)),
            };
            self.sleep(&seen, watch, until);
        }
    }

    /// Whether a registration with the watcher stopped being served (the thread failed).
    fn registrations_lost(&self) -> bool {
        self.sources.iter().flatten().any(|s| match s {
            Source::Subscriber { _close: r, .. } | Source::Appeared { _created: r, .. } => {
                r.as_ref().is_some_and(|r| !r.active())
            }
            _ => false,
        })
    }

    /// Whether anything attached needs the watcher (subscribers, awaited objects).
    fn needs_watch(&self) -> bool {
        self.sources
            .iter()
            .flatten()
            .any(|s| matches!(s, Source::Subscriber { .. } | Source::Appeared { .. }))
    }

    /// One sleep on every word as `seen` (and our own word as `watch`), until `until`.
    fn sleep(&self, seen: &[Option<u32>], watch: u32, until: Option<Instant>) {
        let mut words: Vec<(&AtomicU32, u32)> = self
            .sources
            .iter()
            .zip(seen)
            .filter_map(|(s, v)| Some((s.as_ref()?.words()?.0, (*v)?)))
            .collect();
        words.push((&*self.watch, watch));
        let deadline = Deadline::at(until);
        if futex_wait_any(&words, deadline) == Err(Unsupported) {
            // No futex_waitv: each word in turn, a slice at a time (module docs).
            for (word, value) in &words {
                let slice = deadline.cap(Self::FALLBACK_SLICE);
                if slice.is_zero() || word.load(Acquire) != *value {
                    return;
                }
                futex_wait(word, *value, Some(slice));
            }
        }
    }

    /// Calls `handler` with the ready keys after each wait, until it says
    /// [`ControlFlow::Break`]; waits as long as it takes each time.
    ///
    /// ```
    /// # shmbus::doctest_namespace();
    /// use shmbus::WaitSet;
    /// use std::ops::ControlFlow;
    /// use std::time::Duration;
    ///
    /// let mut set = WaitSet::new();
    /// let tick = set.attach_timer(Duration::from_millis(5))?;
    /// let mut ticks = 0;
    /// set.run(|ready| {
    ///     ticks += ready.iter().filter(|&&k| k == tick).count();
    ///     if ticks == 3 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    /// })?;
    /// # Ok::<(), shmbus::Error>(())
    /// ```
    pub fn run(&mut self, mut handler: impl FnMut(&[WaitKey]) -> ControlFlow<()>) -> Result<()> {
        if self.is_empty() {
            return Err(Error::InvalidConfig {
                reason: "WaitSet::run on an empty set would wait forever".to_owned(),
            });
        }
        loop {
            let ready = self.wait(None)?;
            if handler(&ready).is_break() {
                return Ok(());
            }
        }
    }
}

/// Looks at one source: whether it is ready; a timer also says when it will be.
fn look(source: &mut Source, recheck: bool, now: Instant, wake_at: &mut Option<Instant>) -> bool {
    match source {
        Source::Subscriber { sub, .. } => sub.ready(recheck),
        Source::Event(e) => e.ready(),
        Source::Board(b) => b.ready(),
        Source::Timer { period, next } => {
            let due = now >= *next;
            if due {
                // The next multiple of the period after now: periods nobody waited for are
                // skipped.
                let into = now.duration_since(*next).as_nanos() % period.as_nanos();
                *next = now + (*period - Duration::from_nanos(into as u64));
            }
            *wake_at = Some(wake_at.map_or(*next, |t| t.min(*next)));
            due
        }
        Source::Appeared {
            name, opts, done, ..
        } => {
            if *done || !recheck {
                return false;
            }
            match Segment::open_kind(name.clone(), None, opts, false) {
                // Not there yet: the watch says when it comes.
                Err(Error::NotFound { .. }) => false,
                // There but not finished: its creator's last write is an event too, but a
                // creator that does not make it (another implementation) would leave us
                // waiting; look again soon.
                Err(Error::NotReady { .. } | Error::TooSmall { .. }) => {
                    let soon = now + INITIALISING_RECHECK;
                    *wake_at = Some(wake_at.map_or(soon, |t| t.min(soon)));
                    false
                }
                // Openable, or never will be (another owner, corrupt): report it once, and
                // the caller's open says which.
                Ok(_) | Err(_) => {
                    *done = true;
                    true
                }
            }
        }
    }
}
