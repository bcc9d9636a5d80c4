//! Keeping handles harmless across `fork()`.
//!
//! A forked child inherits every descriptor and every mapping, and with them the open file
//! descriptions that hold our liveness locks: an OFD lock lives until the last reference to
//! its description goes, and a mapping is such a reference too. Three rules keep that
//! harmless (ARCHITECTURE.md, "fork"):
//!
//! 1. Liveness locks are taken on a descriptor of their own ([`ObjectFd`], reopened through
//!    `/proc/self/fd`), which is never mapped.
//! 2. In the child, a `pthread_atfork` handler points every such lock descriptor at a
//!    placeholder (`dup3` of an eventfd over it): the child then holds no reference to the
//!    parent's locks, so the parent's death is seen at once whatever children live, and the
//!    child's later `close` of that number closes only the placeholder.
//! 3. Every handle records the pid that made it ([`HandleOwner`]); in another process its
//!    operations fail with `Error::ForeignProcess` and its `Drop` touches nothing shared.
//!
//! The handler only makes async-signal-safe calls (getpid, dup3) and atomic accesses.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::AtomicU32;

use super::sys::pid;

use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering as AtomicOrdering};

/// This process's pid, as of the last fork (0 until the first handle is made).
static PID: AtomicU32 = AtomicU32::new(0);
/// How many forks lie between the first process and this one: strictly increasing along
/// every chain of forks, so unlike a pid (which a grandchild may get again after the pid
/// space wraps) it tells a handle's own process from every descendant.
static EPOCH: AtomicU32 = AtomicU32::new(0);
/// Whether the fork handlers and the placeholder are in place.
static FORK_READY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Bit 31: a fork is being prepared; bits 0..31: descriptors being opened and registered.
static GATE: AtomicU32 = AtomicU32::new(0);
const FORKING: u32 = 1 << 31;
/// The descriptor the child's copies of object descriptors are pointed at.
static PLACEHOLDER: AtomicI32 = AtomicI32::new(-1);

/// Registered descriptors: a list of blocks that only grows (blocks are never freed, so the
/// child handler can walk it without locks); a free entry holds -1.
struct FdBlock {
    fds: [AtomicI32; 64],
    next: AtomicPtr<FdBlock>,
}

static FDS: FdBlock = FdBlock {
    fds: [const { AtomicI32::new(-1) }; 64],
    next: AtomicPtr::new(std::ptr::null_mut()),
};

/// Installs the fork handlers once per process; `false` if they could not be (no
/// descriptor left for the placeholder, or `pthread_atfork` failed), in which case no lock
/// descriptor may be opened (see [`ObjectFd::open`]).
fn fork_init() -> bool {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        PID.store(pid(), AtomicOrdering::SeqCst);
        let Ok(fd) = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC) else {
            return;
        };
        use std::os::fd::IntoRawFd;
        PLACEHOLDER.store(fd.into_raw_fd(), AtomicOrdering::SeqCst);
        // SAFETY: the three handlers are `extern "C"` functions that live forever and do
        // only what a fork handler may (atomics; getpid and dup3 in the child).
        let rc = unsafe {
            libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child))
        };
        FORK_READY.store(rc == 0, AtomicOrdering::SeqCst);
    });
    FORK_READY.load(AtomicOrdering::SeqCst)
}

/// Before `fork`: wait until no descriptor is between its `open` and its registration (a
/// child must not inherit an unregistered one), and hold new ones back.
extern "C" fn fork_prepare() {
    GATE.fetch_or(FORKING, AtomicOrdering::AcqRel);
    while GATE.load(AtomicOrdering::Acquire) & !FORKING != 0 {
        // Not a handler of the child: yielding is allowed, and lets an opener on our CPU
        // finish even if we run at a real-time priority.
        std::thread::yield_now();
    }
}

/// After `fork`, in the parent: opens may proceed.
extern "C" fn fork_parent() {
    GATE.fetch_and(!FORKING, AtomicOrdering::AcqRel);
}

/// After `fork`, in the child: a new pid, and every object descriptor inert.
extern "C" fn fork_child() {
    // SAFETY: getpid is async-signal-safe and cannot fail.
    PID.store(unsafe { libc::getpid() } as u32, AtomicOrdering::SeqCst);
    EPOCH.fetch_add(1, AtomicOrdering::SeqCst);
    let placeholder = PLACEHOLDER.load(AtomicOrdering::SeqCst);
    let mut block: *const FdBlock = &FDS;
    while !block.is_null() {
        // SAFETY: blocks are leaked `Box`es (or the static), never freed.
        let b = unsafe { &*block };
        for slot in &b.fds {
            let fd = slot.load(AtomicOrdering::SeqCst);
            if fd >= 0 {
                // SAFETY: dup3 is async-signal-safe; replacing `fd` drops our reference to
                // its open file description (and so to the locks on it). `placeholder` is
                // valid: no descriptor is registered without it (`ObjectFd::open`).
                unsafe { libc::dup3(placeholder, fd, libc::O_CLOEXEC) };
            }
        }
        block = b.next.load(AtomicOrdering::SeqCst);
    }
    GATE.store(0, AtomicOrdering::SeqCst);
}

/// Held from just before a descriptor is opened until it is registered
/// ([`register_fd`]), so that `fork` never splits the two.
pub(crate) struct OpenGate(());

impl OpenGate {
    /// Enters the gate (waiting while a fork is being prepared).
    pub(crate) fn enter() -> OpenGate {
        loop {
            let g = GATE.load(AtomicOrdering::Acquire);
            if g & FORKING == 0
                && GATE
                    .compare_exchange_weak(
                        g,
                        g + 1,
                        AtomicOrdering::AcqRel,
                        AtomicOrdering::Relaxed,
                    )
                    .is_ok()
            {
                return OpenGate(());
            }
            std::thread::yield_now();
        }
    }
}

impl Drop for OpenGate {
    fn drop(&mut self) {
        GATE.fetch_sub(1, AtomicOrdering::AcqRel);
    }
}

/// Adds an object's descriptor to those a fork child makes inert. Call inside an
/// [`OpenGate`], right after the open.
pub(crate) fn register_fd(fd: BorrowedFd<'_>, _gate: &OpenGate) {
    let fd = fd.as_raw_fd();
    let mut block: &FdBlock = &FDS;
    loop {
        for slot in &block.fds {
            if slot
                .compare_exchange(-1, fd, AtomicOrdering::SeqCst, AtomicOrdering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
        let next = block.next.load(AtomicOrdering::SeqCst);
        if next.is_null() {
            let fresh = Box::into_raw(Box::new(FdBlock {
                fds: [const { AtomicI32::new(-1) }; 64],
                next: AtomicPtr::new(std::ptr::null_mut()),
            }));
            match block.next.compare_exchange(
                std::ptr::null_mut(),
                fresh,
                AtomicOrdering::SeqCst,
                AtomicOrdering::SeqCst,
            ) {
                // SAFETY: we just leaked it; it is never freed.
                Ok(_) => block = unsafe { &*fresh },
                Err(other) => {
                    // SAFETY: `fresh` came from `Box::into_raw` above and was never shared.
                    drop(unsafe { Box::from_raw(fresh) });
                    // SAFETY: `other` is a block another thread leaked; never freed.
                    block = unsafe { &*other };
                }
            }
        } else {
            // SAFETY: blocks are leaked and never freed.
            block = unsafe { &*next };
        }
    }
}

/// Removes a descriptor from the registry (before it is closed).
pub(crate) fn unregister_fd(fd: BorrowedFd<'_>) {
    let fd = fd.as_raw_fd();
    let mut block: *const FdBlock = &FDS;
    while !block.is_null() {
        // SAFETY: blocks are leaked and never freed.
        let b = unsafe { &*block };
        for slot in &b.fds {
            if slot
                .compare_exchange(fd, -1, AtomicOrdering::SeqCst, AtomicOrdering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
        block = b.next.load(AtomicOrdering::SeqCst);
    }
}

/// The process a handle belongs to: the one that created or opened it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HandleOwner {
    pid: u32,
    epoch: u32,
}

impl HandleOwner {
    /// This process.
    pub(crate) fn current() -> HandleOwner {
        fork_init();
        HandleOwner {
            pid: pid(),
            epoch: EPOCH.load(AtomicOrdering::Relaxed),
        }
    }

    /// Whether we are that process, as far as `fork()` tells (one relaxed load: cheap
    /// enough for every operation).
    #[inline]
    pub(crate) fn is_current(self) -> bool {
        EPOCH.load(AtomicOrdering::Relaxed) == self.epoch
    }

    /// [`is_current`](Self::is_current), and the same pid now (`getpid`): also catches a
    /// child made without the fork handlers (a raw `clone`). For `Drop`, not hot paths.
    pub(crate) fn is_current_strict(self) -> bool {
        self.is_current() && pid() == self.pid
    }

    /// Its pid.
    pub(crate) fn pid(self) -> u32 {
        self.pid
    }
}

/// This process's pid as the fork handlers keep it.
pub(crate) fn current_pid() -> u32 {
    fork_init();
    PID.load(AtomicOrdering::Relaxed)
}

/// A descriptor that holds liveness locks: registered, so that a fork child makes its copy
/// inert (see above), from its open until it is closed. Never mapped.
#[derive(Debug)]
pub(crate) struct ObjectFd(Option<OwnedFd>);

impl ObjectFd {
    /// Runs `open` and registers the descriptor it returns, with no fork in between.
    pub(crate) fn open(open: impl FnOnce() -> io::Result<OwnedFd>) -> io::Result<ObjectFd> {
        if !fork_init() {
            return Err(io::Error::other(
                "cannot install the fork handlers (no descriptor left for the placeholder?)",
            ));
        }
        let gate = OpenGate::enter();
        let fd = open()?;
        register_fd(fd.as_fd(), &gate);
        Ok(ObjectFd(Some(fd)))
    }
}

impl AsFd for ObjectFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_ref().expect("present until dropped").as_fd()
    }
}

impl Drop for ObjectFd {
    fn drop(&mut self) {
        // Unregister and close with no fork in between.
        let _gate = OpenGate::enter();
        if let Some(fd) = self.0.take() {
            unregister_fd(fd.as_fd());
            drop(fd);
        }
    }
}
