//! One thread per process that turns inotify events on the shared-memory directory into
//! wake-ups of futex words: how a waiter that sleeps on futexes (a `WaitSet`, in one
//! `futex_waitv`) also learns that an object appeared, or that a process closed an object's
//! file (a process that dies closes every file it had open, so this is how a dead publisher
//! is noticed without probing it periodically).
//!
//! A [`Registration`] names a file, what happens to it that matters ([`Interest`]) and a
//! process-local word: every matching event adds 1 to the word (Release) and wakes its
//! sleepers. The kernel reports a close a moment before it releases the closer's locks, so
//! after a close the word is bumped again [`FOLLOW_UPS`] later: a waiter that probed the
//! lock too early probes again then. These are a few wake-ups after an event, not a period.
//!
//! The thread starts with the first registration and then stays (idle in `poll` while
//! nothing is registered: the directory is watched only while something is). A `fork()`
//! child, which has no such thread, starts its own at its first registration. Where
//! inotify is unavailable [`register`] fails and the caller falls back to timed re-checks.

use std::collections::HashMap;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::io::Errno;

use crate::os::sys::{self, SHM_DIR};
use crate::os::wait::Deadline;

/// Which events of a file bump a registration's word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Interest {
    /// Created, resized or written (its creator finishing it): it may be openable now.
    Creation,
    /// Closed by some process (maybe a lock holder leaving, or dying), or removed.
    Close,
}

impl Interest {
    /// The inotify events of the interest (a creation interest leaves out closes, which a
    /// waiting opener's own looks cause).
    pub(crate) fn events(self) -> WatchFlags {
        match self {
            Interest::Creation => {
                WatchFlags::CREATE | WatchFlags::MOVED_TO | WatchFlags::MODIFY | WatchFlags::ATTRIB
            }
            Interest::Close => {
                WatchFlags::CLOSE_WRITE
                    | WatchFlags::CLOSE_NOWRITE
                    | WatchFlags::DELETE
                    | WatchFlags::MOVED_FROM
            }
        }
    }

    fn matches(self, mask: ReadFlags) -> bool {
        // A reported event's bits are those of the watch flag that asked for it.
        mask.intersects(ReadFlags::from_bits_retain(self.events().bits()))
    }
}

/// After a close, how long after the event the word is bumped again.
pub(crate) const FOLLOW_UPS: [Duration; 3] = [
    Duration::from_millis(1),
    Duration::from_millis(5),
    Duration::from_millis(25),
];

/// How long the directory stays watched after the last registration ends.
const IDLE: Duration = Duration::from_secs(1);

/// A registered interest; dropping it ends it.
#[derive(Debug)]
pub(crate) struct Registration {
    shared: &'static Shared,
    id: u64,
}

impl Registration {
    /// Whether the watcher still serves this registration (it may have stopped on an
    /// error; then wake-ups come no more, and the waiter must nap).
    pub(crate) fn active(&self) -> bool {
        self.shared.alive.load(Ordering::Acquire)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if self.shared.pid != std::process::id() {
            // A fork child's copy: the parent's state, whose lock a thread that does not
            // exist here may hold. Leave it alone.
            return;
        }
        let mut regs = self.shared.lock();
        regs.entries.retain(|_, list| {
            list.retain(|e| e.id != self.id);
            !list.is_empty()
        });
        if regs.entries.is_empty() {
            // The thread removes the directory's watch after [`IDLE`] with nothing
            // registered: a waiter that registers for every sleep adds no system call.
            regs.idle_since = Some(Instant::now());
            // Wake the thread to start the countdown, unless it already has one running (a
            // waiter that registers for every sleep then costs it no wake-up per sleep).
            if !regs.countdown {
                regs.countdown = true;
                let _ = rustix::io::write(&self.shared.kick, &1u64.to_ne_bytes());
            }
        }
    }
}

/// Adds 1 to `word` (Release) and wakes its sleepers whenever an event of `interest`
/// happens to `os_name` (`/shmbus.x`) of the shared-memory directory, until the
/// registration is dropped. Events before this returns are not seen.
pub(crate) fn register(
    os_name: &str,
    interest: Interest,
    word: Arc<AtomicU32>,
) -> io::Result<Registration> {
    let shared = Shared::get()?;
    if !shared.alive.load(Ordering::Acquire) {
        return Err(io::Error::other("the shmbus watcher thread is not running"));
    }
    let mut regs = shared.lock();
    if regs.wd.is_none() {
        let all = Interest::Creation.events() | Interest::Close.events() | WatchFlags::ONLYDIR;
        regs.wd = Some(inotify::add_watch(&shared.fd, SHM_DIR, all)?);
    }
    regs.idle_since = None;
    regs.next_id += 1;
    let id = regs.next_id;
    regs.entries
        .entry(os_name.trim_start_matches('/').as_bytes().to_vec())
        .or_default()
        .push(Entry { id, interest, word });
    Ok(Registration { shared, id })
}

#[derive(Debug)]
struct Entry {
    id: u64,
    interest: Interest,
    word: Arc<AtomicU32>,
}

#[derive(Debug, Default)]
struct Registrations {
    /// File name in the directory → what to bump.
    entries: HashMap<Vec<u8>, Vec<Entry>>,
    /// The directory's watch, while anything is registered (and [`IDLE`] after).
    wd: Option<i32>,
    /// Since when nothing is registered.
    idle_since: Option<Instant>,
    /// Whether the thread sleeps with the [`IDLE`] countdown as its timeout (or has been
    /// kicked to start it).
    countdown: bool,
    next_id: u64,
}

/// The thread's state: one per process (a fork child makes its own).
#[derive(Debug)]
struct Shared {
    pid: u32,
    fd: OwnedFd,
    /// Written when the last registration ends, so the thread's `poll` wakes and starts
    /// the [`IDLE`] countdown.
    kick: OwnedFd,
    regs: Mutex<Registrations>,
    /// Whether the thread runs: registrations fail once it does not (it could not be
    /// started, or stopped on an error), and waiters fall back to naps.
    alive: AtomicBool,
}

/// This process's [`Shared`]; null until the first registration.
static SHARED: AtomicPtr<Shared> = AtomicPtr::new(std::ptr::null_mut());

impl Shared {
    /// This process's state, starting the thread if this is the first use in this process.
    #[allow(unsafe_code)]
    fn get() -> io::Result<&'static Shared> {
        // The pid from the kernel, not the fork handler's copy: a child made by a raw
        // `clone` must not take its parent's state (whose lock it could never get).
        let me = std::process::id();
        let ptr = SHARED.load(Ordering::Acquire);
        // SAFETY: a non-null pointer was made by `Box::leak` below and is never freed.
        if let Some(shared) = unsafe { ptr.as_ref() } {
            if shared.pid == me {
                return Ok(shared);
            }
        }
        // First use in this process (a fork child leaks its parent's copy: its mutex may
        // have been held by a thread that does not exist here).
        if testing_fallback() {
            return Err(io::Error::other(
                "inotify disabled by SHMBUS_TEST_NO_INOTIFY",
            ));
        }
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
        let kick = rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        )?;
        let fresh = Box::into_raw(Box::new(Shared {
            pid: me,
            fd,
            kick,
            regs: Mutex::new(Registrations::default()),
            alive: AtomicBool::new(true),
        }));
        match SHARED.compare_exchange(ptr, fresh, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                // SAFETY: published above and never freed from now on.
                let shared: &'static Shared = unsafe { &*fresh };
                let started = std::thread::Builder::new()
                    .name("shmbus-watcher".into())
                    .spawn(move || shared.run());
                if let Err(e) = started {
                    shared.alive.store(false, Ordering::Release);
                    return Err(e);
                }
                Ok(shared)
            }
            // Another thread won the race: use its state and free ours, which nobody saw.
            Err(winner) => {
                // SAFETY: `fresh` came from `Box::into_raw` above and was never published.
                drop(unsafe { Box::from_raw(fresh) });
                // SAFETY: a published pointer is never freed.
                Ok(unsafe { &*winner })
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Registrations> {
        self.regs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The thread: waits for events (and for pending follow-ups), bumps words.
    fn run(&self) {
        let mut follow_ups: Vec<(Instant, Arc<AtomicU32>)> = Vec::new();
        let mut countdown_end: Option<Instant> = None;
        let mut buf = [MaybeUninit::<u8>::uninit(); 8192];
        loop {
            let now = Instant::now();
            follow_ups.retain(|(at, word)| {
                if *at <= now {
                    bump(word);
                    false
                } else {
                    true
                }
            });
            let idle_end = {
                let mut regs = self.lock();
                let now = Instant::now();
                let end = match (regs.idle_since, regs.wd) {
                    (Some(since), Some(wd)) if now.duration_since(since) >= IDLE => {
                        let _ = inotify::remove_watch(&self.fd, wd);
                        regs.wd = None;
                        regs.idle_since = None;
                        None
                    }
                    (Some(since), Some(_)) => Some(since + IDLE),
                    // Busy again after a kick: keep a countdown running for a while, so
                    // that waiters that register for every sleep do not kick us for each
                    // one; when it ends with registrations present, stop.
                    (None, Some(_)) if regs.countdown => match countdown_end {
                        Some(t) if now < t => Some(t),
                        Some(_) => None,
                        None => Some(now + IDLE),
                    },
                    _ => None,
                };
                regs.countdown = end.is_some();
                end
            };
            countdown_end = idle_end;
            let timeout = follow_ups
                .iter()
                .map(|(at, _)| *at)
                .chain(idle_end)
                .min()
                .map(|at| {
                    let d = at.saturating_duration_since(Instant::now());
                    Timespec {
                        tv_sec: d.as_secs() as i64,
                        tv_nsec: i64::from(d.subsec_nanos()),
                    }
                });
            let mut fds = [
                PollFd::new(&self.fd, PollFlags::IN),
                PollFd::new(&self.kick, PollFlags::IN),
            ];
            match poll(&mut fds, timeout.as_ref()) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(_) => {
                    // Stop serving: registrations fail from now on, and everyone waiting
                    // on a registered word wakes to find the watcher gone (and naps).
                    self.alive.store(false, Ordering::Release);
                    for entry in self.lock().entries.values().flatten() {
                        bump(&entry.word);
                    }
                    return;
                }
            }
            let mut drained = [0u8; 8];
            let _ = rustix::io::read(&self.kick, &mut drained);
            let mut reader = inotify::Reader::new(&self.fd, &mut buf);
            loop {
                let event = match reader.next() {
                    Ok(event) => event,
                    Err(Errno::INTR) => continue,
                    Err(_) => break, // EAGAIN: drained
                };
                let mask = event.events();
                let regs = self.lock();
                if mask.contains(ReadFlags::QUEUE_OVERFLOW) {
                    // Events were lost, closes among them maybe: everyone looks again, now
                    // and at the follow-ups.
                    let at = Instant::now();
                    for entry in regs.entries.values().flatten() {
                        bump(&entry.word);
                        follow_ups.extend(FOLLOW_UPS.iter().map(|d| (at + *d, entry.word.clone())));
                    }
                    continue;
                }
                let Some(name) = event.file_name() else {
                    continue;
                };
                let Some(list) = regs.entries.get(name.to_bytes()) else {
                    continue;
                };
                for entry in list.iter().filter(|e| e.interest.matches(mask)) {
                    bump(&entry.word);
                    if entry.interest == Interest::Close {
                        let at = Instant::now();
                        follow_ups.extend(FOLLOW_UPS.iter().map(|d| (at + *d, entry.word.clone())));
                    }
                }
            }
        }
    }
}

/// For a waiter that sleeps on one futex word and must also notice a process closing an
/// object's file (a dead publisher, a dead subscriber): it sleeps on that word and on a
/// word of its own, which the watcher bumps on a close, in one `futex_waitv`. Where that
/// cannot be (no inotify, no `futex_waitv`, or loom), it naps instead, as waits did before.
#[derive(Debug)]
pub(crate) struct CloseWatch {
    word: Arc<AtomicU32>,
    seen: u32,
    reg: Option<Registration>,
    /// After a close, until when the waiter naps and probes instead of trusting the next
    /// event: the closer's locks go a moment after the close is reported, and a closer
    /// that the scheduler stops right then may outlast every follow-up.
    suspect_until: Option<Instant>,
}

/// How long a waiter keeps probing after a close (see `CloseWatch::suspect_until`).
pub(crate) const SUSPICION: Duration = Duration::from_secs(1);

impl CloseWatch {
    /// Watches `os_name` (`/shmbus.x`) for closes from now on.
    pub(crate) fn new(os_name: &str) -> CloseWatch {
        let word = Arc::new(AtomicU32::new(0));
        let reg = if cfg!(loom) {
            None
        } else {
            register(os_name, Interest::Close, word.clone()).ok()
        };
        CloseWatch {
            word,
            seen: 0,
            reg,
            suspect_until: None,
        }
    }

    /// A watch that watches nothing: its sleeps are naps (for a sleeper that cannot
    /// trust its wake-up to come, as when `membarrier` failed).
    pub(crate) fn blind() -> CloseWatch {
        CloseWatch {
            word: Arc::new(AtomicU32::new(0)),
            seen: 0,
            reg: None,
            suspect_until: None,
        }
    }

    /// Whether a close (or a follow-up after one) came since the last call.
    pub(crate) fn closed_since(&mut self) -> bool {
        // SYNC: Acquire pairs with the watcher's Release bump.
        let now = self.word.load(Ordering::Acquire);
        let changed = now != self.seen;
        self.seen = now;
        if changed {
            self.suspect_until = Some(Instant::now() + SUSPICION);
        }
        changed
    }

    /// Sleeps while `*word == expected`, until a wake, a close, or `deadline`. Returns
    /// `true` when it could not watch for closes (no watcher, no `futex_waitv`, or within
    /// [`SUSPICION`] of a close) and napped at most `nap` instead: the caller then probes
    /// liveness after a nap with no news.
    pub(crate) fn sleep(
        &self,
        word: &crate::sync::AtomicU32,
        expected: u32,
        deadline: Deadline,
        nap: Duration,
    ) -> bool {
        let watching = self.reg.as_ref().is_some_and(Registration::active);
        let suspect = self.suspect_until.is_some_and(|t| Instant::now() < t);
        #[cfg(not(loom))]
        if watching && !suspect {
            let pair = [(word, expected), (&*self.word, self.seen)];
            if crate::os::wait::futex_wait_any(&pair, deadline).is_ok() {
                return false;
            }
        }
        let nap = deadline.remaining().map_or(nap, |d| d.min(nap));
        crate::os::wait::futex_wait(word, expected, Some(nap));
        true
    }
}

/// Adds 1 to `word` and wakes whoever sleeps on it.
fn bump(word: &AtomicU32) {
    word.fetch_add(1, Ordering::Release);
    sys::futex_wake(word, u32::MAX);
}

/// Whether tests asked for the fallback (`SHMBUS_TEST_NO_INOTIFY=1`).
fn testing_fallback() -> bool {
    std::env::var_os("SHMBUS_TEST_NO_INOTIFY").is_some_and(|v| v == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_for_bump(word: &AtomicU32, from: u32) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while word.load(Ordering::Acquire) == from {
            assert!(Instant::now() < deadline, "no bump within 10 s");
            sys::futex_wait(word, from, Some(Duration::from_millis(100)));
        }
    }

    #[test]
    fn creation_and_close_bump_their_words() {
        let name = format!("/shmbus-watcher-test.{}", std::process::id());
        let path = format!("{SHM_DIR}{name}");
        let created = Arc::new(AtomicU32::new(0));
        let closed = Arc::new(AtomicU32::new(0));
        let a = register(&name, Interest::Creation, created.clone()).unwrap();
        let b = register(&name, Interest::Close, closed.clone()).unwrap();
        let file = std::fs::File::create(&path).unwrap();
        wait_for_bump(&created, 0);
        let before = closed.load(Ordering::Acquire);
        drop(file);
        wait_for_bump(&closed, before);
        // The follow-ups come too.
        let after = closed.load(Ordering::Acquire);
        wait_for_bump(&closed, after);
        drop((a, b));
        std::fs::remove_file(path).unwrap();
    }
}
