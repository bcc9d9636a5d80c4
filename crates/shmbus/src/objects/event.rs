//! Cross-process events: manual- and auto-reset, on a futex word in the segment.
//!
//! The object: a named [`Segment`] whose state after the header is an
//! [`EventState`] (the futex-word protocol, in `protocol::event_state`).

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::os::wait::Deadline;
pub use crate::protocol::event_state::EventMode;
use crate::protocol::event_state::EventState;
use crate::protocol::layout::Spec;
use crate::segment::header::{Kind, HEADER_SIZE};
use crate::segment::options::Options;
use crate::segment::Segment;

/// A named cross-process event, like a Win32 named event but with no lost wake-ups.
///
/// ```
/// # shmbus::doctest_namespace();
/// use shmbus::{Event, EventMode};
/// use std::time::Duration;
///
/// let ready = Event::create("doc.event.ready", EventMode::ManualReset)?;
/// let waiter = Event::open("doc.event.ready")?; // in another process, typically
/// let t = std::thread::spawn(move || waiter.wait_timeout(Duration::from_secs(5)));
/// ready.set();
/// assert!(t.join().unwrap());
/// assert!(ready.is_set()); // manual reset: stays set
/// ready.reset();
/// assert!(!ready.wait_timeout(Duration::from_millis(1)));
/// # Ok::<(), shmbus::Error>(())
/// ```
#[derive(Debug)]
pub struct Event {
    /// Shared with the `WaitSet`s it is attached to (which keep it mapped).
    seg: Arc<Segment>,
    mode: EventMode,
    spin: Duration,
}

impl Event {
    /// Creates an event (unset); [`Error::AlreadyExists`] if the name is taken.
    pub fn create(name: &str, mode: EventMode) -> Result<Event> {
        Self::create_with(name, mode, &Options::default())
    }

    /// [`Event::create`] with options.
    pub fn create_with(name: &str, mode: EventMode, opts: &Options) -> Result<Event> {
        let spec = Spec {
            flags: mode.to_flags(),
            ..Spec::default()
        };
        let seg = Segment::create_kind(opts.name(name)?, Kind::Event, spec, opts)?;
        Event::from_segment(seg, opts)
    }

    /// Opens an existing event.
    pub fn open(name: &str) -> Result<Event> {
        Self::open_with(name, &Options::default())
    }

    /// [`Event::open`] with options.
    pub fn open_with(name: &str, opts: &Options) -> Result<Event> {
        let seg = Segment::open_kind(opts.name(name)?, Some(Kind::Event), opts, true)?;
        Event::from_segment(seg, opts)
    }

    /// Opens the event, or creates it; race-free. [`Error::ConfigMismatch`] if it exists
    /// with the other mode.
    pub fn create_or_open(name: &str, mode: EventMode) -> Result<Event> {
        Self::create_or_open_with(name, mode, &Options::default())
    }

    /// [`Event::create_or_open`] with options.
    pub fn create_or_open_with(name: &str, mode: EventMode, opts: &Options) -> Result<Event> {
        let spec = Spec {
            flags: mode.to_flags(),
            ..Spec::default()
        };
        let seg = Segment::create_or_open_kind(opts.name(name)?, Kind::Event, spec, opts)?;
        let event = Event::from_segment(seg, opts)?;
        if event.mode != mode {
            return Err(Error::ConfigMismatch {
                name: event.seg.name().describe(),
                requested: mode.to_string(),
                found: event.mode.to_string(),
            });
        }
        Ok(event)
    }

    fn from_segment(seg: Segment, opts: &Options) -> Result<Event> {
        let flags = seg.header().fields.kind_flags();
        let mode = EventMode::from_flags(flags).ok_or_else(|| Error::Corrupt {
            name: seg.name().describe(),
            reason: format!("unknown event mode {flags}"),
        })?;
        Ok(Event {
            seg: Arc::new(seg),
            mode,
            spin: opts.spin,
        })
    }

    fn state(&self) -> &EventState {
        self.seg.at(HEADER_SIZE)
    }

    /// What a `WaitSet` keeps of the event.
    pub(crate) fn waitable(&self) -> EventWaitable {
        EventWaitable {
            seg: self.seg.clone(),
            mode: self.mode,
            seen: self.state().raw_state(),
        }
    }

    /// The event's name.
    pub fn name(&self) -> &crate::Name {
        self.seg.name()
    }

    /// Manual or auto reset, as fixed at creation.
    pub fn mode(&self) -> EventMode {
        self.mode
    }

    /// Sets the event: releases every waiter (manual reset) or exactly one (auto reset).
    /// Costs no syscall when nobody waits.
    pub fn set(&self) {
        self.state().set(self.mode)
    }

    /// Unsets the event. Waiters already released stay released.
    pub fn reset(&self) {
        self.state().reset(self.mode)
    }

    /// Whether the event is set now.
    pub fn is_set(&self) -> bool {
        self.state().is_set(self.mode)
    }

    /// Waits until the event is set (and, in auto-reset mode, takes the release).
    pub fn wait(&self) {
        self.state()
            .wait(self.mode, self.spin, Deadline::after(None));
    }

    /// Waits at most `timeout`; `true` when released, `false` on timeout.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.state()
            .wait(self.mode, self.spin, Deadline::after(Some(timeout)))
    }
}

pub(crate) fn live_state(seg: &Segment) -> Option<(EventMode, bool, u32, u32)> {
    let mode = EventMode::from_flags(seg.header().fields.kind_flags())?;
    let st: &EventState = seg.at(HEADER_SIZE);
    Some((mode, st.is_set(mode), st.waiters(), st.raw_state()))
}

/// An event attached to a `WaitSet`: ready while set (manual reset), or when it took a
/// release on the owner's behalf (auto reset, as `WaitForMultipleObjects` does).
#[derive(Debug)]
pub(crate) struct EventWaitable {
    seg: Arc<Segment>,
    mode: EventMode,
    /// The state when last looked at (a manual-reset pulse in between is a release).
    seen: u32,
}

impl EventWaitable {
    fn state(&self) -> &EventState {
        self.seg.at(HEADER_SIZE)
    }

    /// The word a waiter sleeps on and the count of waiters it joins.
    pub(crate) fn sleep_words(&self) -> (&crate::sync::AtomicU32, &crate::sync::AtomicU32) {
        let st = self.state();
        (&st.state, &st.waiters)
    }

    /// Whether a waiter would be released now (manual reset: set, or pulsed since the
    /// last look; auto reset: takes the release).
    pub(crate) fn ready(&mut self) -> bool {
        let mut seen = self.seen;
        let released = self.state().released_since(self.mode, &mut seen);
        self.seen = seen;
        released
    }
}
