//! The only module that calls the operating system.
//!
//! Every function here names the call it makes first. Errors come back as
//! [`std::io::Error`]; callers turn them into [`crate::Error`] with the object's name.
//!
//! # References
//! - shm_open(3), shm_unlink(3), ftruncate(2), fchmod(2), fstat(2), mmap(2), munmap(2)
//! - futex(2): the futexes here are *shared* (no `FUTEX_PRIVATE_FLAG`), because the words
//!   live in memory mapped by several processes.
//! - fcntl(2), "Open file description locks (non-POSIX)": `F_OFD_SETLK`, `F_OFD_GETLK`.
//! - membarrier(2): `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`, `..._GLOBAL_EXPEDITED`.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use rustix::fs::Mode;
use rustix::shm;

/// The directory where Linux shows POSIX shared-memory objects.
pub(crate) const SHM_DIR: &str = "/dev/shm";

/// `shm_open(path, O_CREAT | O_EXCL | O_RDWR, mode)` then `fchmod(mode)`, so the mode is
/// exactly `mode` whatever the process umask.
pub(crate) fn shm_create(path: &str, mode: u32) -> io::Result<OwnedFd> {
    let mode = Mode::from_raw_mode(mode);
    let fd = shm::open(
        path,
        shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR,
        mode,
    )?;
    rustix::fs::fchmod(&fd, mode)?;
    Ok(fd)
}

/// `shm_open(path, O_RDWR or O_RDONLY)`.
pub(crate) fn shm_open(path: &str, writable: bool) -> io::Result<OwnedFd> {
    let flags = if writable {
        shm::OFlags::RDWR
    } else {
        shm::OFlags::RDONLY
    };
    Ok(shm::open(path, flags, Mode::empty())?)
}

/// `shm_unlink(path)`.
pub(crate) fn shm_unlink(path: &str) -> io::Result<()> {
    Ok(shm::unlink(path)?)
}

/// `ftruncate(fd, len)`: sizes a new object (the new bytes read as zero).
pub(crate) fn ftruncate(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    Ok(rustix::fs::ftruncate(fd, len)?)
}

/// What `fstat` says about an object.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FileStat {
    pub size: u64,
    pub uid: u32,
    /// Permission bits only (`0o7777`).
    pub mode: u32,
    pub is_regular: bool,
    /// Device and inode: the identity of the object behind a name.
    pub dev: u64,
    pub ino: u64,
}

/// `fstat(fd)`.
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<FileStat> {
    let st = rustix::fs::fstat(fd)?;
    let file_type = rustix::fs::FileType::from_raw_mode(st.st_mode);
    Ok(FileStat {
        size: u64::try_from(st.st_size).unwrap_or(0),
        uid: st.st_uid,
        mode: st.st_mode & 0o7777,
        is_regular: file_type == rustix::fs::FileType::RegularFile,
        dev: st.st_dev,
        ino: st.st_ino,
    })
}

/// `stat(/dev/shm/<file>)`: owner and mode of an object we may not be allowed to open.
pub(crate) fn stat_shm(os_name: &str) -> io::Result<FileStat> {
    let path = format!("{SHM_DIR}{os_name}");
    let fd = rustix::fs::open(
        path.as_str(),
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    fstat(fd.as_fd())
}

/// A shared mapping of a whole object; `munmap` on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory; all access to it goes through atomics or volatile
// reads (see `segment`), so sharing the pointer between threads is sound.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// `mmap(NULL, len, PROT_READ [| PROT_WRITE], MAP_SHARED | MAP_POPULATE, fd, 0)`.
    ///
    /// `MAP_POPULATE` faults every page in up front, so the first pass of a ring does not
    /// take a page fault every few dozen messages (a multi-microsecond latency spike each).
    pub(crate) fn new(fd: BorrowedFd<'_>, len: usize, writable: bool) -> io::Result<Mapping> {
        use rustix::mm::{MapFlags, ProtFlags};
        if len == 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let prot = if writable {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        };
        // SAFETY: a fresh mapping at an address the kernel picks cannot alias any Rust
        // object. The memory may be changed by other processes at any time; `Mapping` only
        // hands out a raw pointer and every user reads it through atomics or volatile reads.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                MapFlags::SHARED | MapFlags::POPULATE,
                fd,
                0,
            )?
        };
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave NULL"))?;
        Ok(Mapping { ptr, len })
    }

    /// Start of the mapping (page aligned).
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what `mmap` returned, and no reference into the
        // mapping outlives the `Mapping` (they all borrow from it).
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[cfg_attr(loom, allow(dead_code))]
/// `futex(word, FUTEX_WAIT, expected, timeout)`: sleeps while `*word == expected`.
/// Returns on wake-up, value mismatch (`EAGAIN`), signal (`EINTR`) or timeout alike: callers
/// re-check their condition and deadline.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    use rustix::thread::futex;
    let ts = timeout.map(|t| futex::Timespec {
        tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(t.subsec_nanos()),
    });
    // Errors are the documented outcomes above; EFAULT/EINVAL cannot happen for a reference.
    let _ = futex::wait(word, futex::Flags::empty(), expected, ts.as_ref());
}

#[cfg_attr(loom, allow(dead_code))]
/// `futex(word, FUTEX_WAKE, n)`: wakes up to `n` sleepers on `word`, in any process.
pub(crate) fn futex_wake(word: &AtomicU32, n: u32) {
    use rustix::thread::futex;
    let n = n.min(i32::MAX as u32);
    // Cannot fail for a valid reference.
    let _ = futex::wake(word, futex::Flags::empty(), n);
}

/// `membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED)`, once per process: lets other
/// processes' `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` force a full memory barrier on
/// our threads. `false` when the kernel (or a seccomp filter) refuses.
pub(crate) fn membarrier_register() -> bool {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REGISTERED.get_or_init(|| {
        use rustix::thread::{membarrier, MembarrierCommand};
        membarrier(MembarrierCommand::RegisterGlobalExpedited).is_ok()
    })
}

/// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`: every running thread of every registered
/// process executes a full memory barrier before this returns.
pub(crate) fn membarrier_global() {
    use rustix::thread::{membarrier, MembarrierCommand};
    let _ = membarrier(MembarrierCommand::GlobalExpedited);
}

fn ofd_lock_struct(byte: u64, kind: libc::c_short) -> libc::flock {
    // SAFETY: `flock` is a plain C struct for which all-zero is a valid value (and `l_pid`
    // must be 0 for OFD locks).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte as libc::off_t;
    fl.l_len = 1;
    fl
}

/// `fcntl(fd, F_OFD_SETLK, {F_WRLCK, byte, 1})`: takes an exclusive open-file-description
/// lock on one byte without waiting. `Ok(false)` when another description holds it. The
/// kernel drops the lock when the last descriptor of this description closes, including
/// when the process dies: that makes it an exact, pid-reuse-proof liveness token.
pub(crate) fn ofd_try_lock(fd: BorrowedFd<'_>, byte: u64) -> io::Result<bool> {
    let fl = ofd_lock_struct(byte, libc::F_WRLCK as libc::c_short);
    // SAFETY: `fl` is a valid, initialised `flock` that lives across the call.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
        _ => Err(err),
    }
}

/// `fcntl(fd, F_OFD_GETLK, {F_WRLCK, byte, 1})`: whether some *other* open file description
/// holds a lock on `byte` (our own locks never conflict with us).
pub(crate) fn ofd_is_locked(fd: BorrowedFd<'_>, byte: u64) -> io::Result<bool> {
    let mut fl = ofd_lock_struct(byte, libc::F_WRLCK as libc::c_short);
    // SAFETY: `fl` is a valid `flock` the kernel fills in; it lives across the call.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// `getpid()`.
pub(crate) fn pid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

/// The start time of this process in clock ticks since boot (field 22 of `/proc/self/stat`),
/// recorded next to the pid so that a reused pid can be told apart. 0 when unreadable.
pub(crate) fn process_start_ticks() -> u64 {
    start_ticks("/proc/self/stat").unwrap_or(0)
}

/// Whether process `pid` lives and started at `start` (clock ticks since boot), from
/// `/proc/<pid>/stat`. With `start == 0` (unknown), any process with that pid counts.
pub(crate) fn process_alive(pid: u32, start: u64) -> bool {
    match start_ticks(&format!("/proc/{pid}/stat")) {
        Some(ticks) => start == 0 || ticks == start,
        None => false,
    }
}

fn start_ticks(path: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: skip past it.
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts at field 3; field 22 is the 20th from there.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Names of the entries of [`SHM_DIR`] (`readdir`).
pub(crate) fn list_shm_dir() -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(SHM_DIR)? {
        if let Ok(name) = entry?.file_name().into_string() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Borrows the descriptor (a helper so callers need not import `AsFd`).
pub(crate) fn borrow(fd: &OwnedFd) -> BorrowedFd<'_> {
    fd.as_fd()
}
