//! The only module that calls the operating system.
//!
//! Every function here names the call it makes first. Errors come back as
//! [`std::io::Error`]; callers turn them into [`crate::Error`] with the object's name.
//!
//! # References
//! - open(2) (`O_NOFOLLOW`, `O_NONBLOCK`), shm_open(3) (what it does, and why we do it
//!   ourselves), unlink(2), ftruncate(2), fallocate(2), pread(2), fchmod(2), fstat(2),
//!   lstat(2), mmap(2), munmap(2)
//! - futex(2): the futexes here are *shared* (no `FUTEX_PRIVATE_FLAG`), because the words
//!   live in memory mapped by several processes.
//! - fcntl(2), "Open file description locks (non-POSIX)": `F_OFD_SETLK`, `F_OFD_GETLK`.
//! - membarrier(2): `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`, `..._GLOBAL_EXPEDITED`.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use rustix::fs::Mode;

/// The directory where Linux shows POSIX shared-memory objects.
pub(crate) const SHM_DIR: &str = "/dev/shm";

/// The path under [`SHM_DIR`] of a POSIX shared-memory name (`/shmbus.x` → `/dev/shm/shmbus.x`).
fn shm_path(os_name: &str) -> String {
    format!("{SHM_DIR}{os_name}")
}

/// Flags every open of an object carries: never follow a symbolic link planted under the
/// name (`O_NOFOLLOW`: `ELOOP` instead), never block on a FIFO planted there (`O_NONBLOCK`),
/// never leak into an `exec`ed program (`O_CLOEXEC`).
///
/// glibc's `shm_open` is `open("/dev/shm/<name>")` with `O_NOFOLLOW | O_CLOEXEC`, but not
/// `O_NONBLOCK`, and other C libraries differ: we open the path ourselves.
fn safe_flags() -> rustix::fs::OFlags {
    use rustix::fs::OFlags;
    OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC
}

/// `open("/dev/shm/<name>", O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
/// mode)` then `fchmod(mode)`, so the mode is exactly `mode` whatever the process umask.
/// `O_EXCL` never follows or reuses anything already there.
pub(crate) fn shm_create(os_name: &str, mode: u32) -> io::Result<OwnedFd> {
    use rustix::fs::OFlags;
    let mode = Mode::from_raw_mode(mode);
    let fd = rustix::fs::open(
        shm_path(os_name).as_str(),
        OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | safe_flags(),
        mode,
    )?;
    rustix::fs::fchmod(&fd, mode)?;
    Ok(fd)
}

/// `open("/dev/shm/<name>", O_RDWR or O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)`.
///
/// A symbolic link gives `ELOOP` (see [`is_symlink_error`]); a FIFO opens without blocking
/// (and is then refused by the caller's `fstat` check); a socket gives `ENXIO`.
pub(crate) fn shm_open(os_name: &str, writable: bool) -> io::Result<OwnedFd> {
    use rustix::fs::OFlags;
    let access = if writable {
        OFlags::RDWR
    } else {
        OFlags::RDONLY
    };
    Ok(rustix::fs::open(
        shm_path(os_name).as_str(),
        access | safe_flags(),
        Mode::empty(),
    )?)
}

/// Whether an open failed because the name is a symbolic link (`ELOOP` under `O_NOFOLLOW`).
pub(crate) fn is_symlink_error(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

/// Whether a call failed for lack of room in the shared-memory filesystem (`ENOSPC`).
pub(crate) fn is_no_space_error(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOSPC)
}

/// Whether an open failed because the name is a socket, or a FIFO with no reader (`ENXIO`).
pub(crate) fn is_no_device_error(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENXIO)
}

/// `unlink("/dev/shm/<name>")` (what `shm_unlink` does; never follows a link).
pub(crate) fn shm_unlink(os_name: &str) -> io::Result<()> {
    Ok(rustix::fs::unlink(shm_path(os_name).as_str())?)
}

/// `ftruncate(fd, len)`: sizes a new object (the new bytes read as zero).
pub(crate) fn ftruncate(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    Ok(rustix::fs::ftruncate(fd, len)?)
}

/// `fallocate(fd, 0, 0, len)`: allocates every page of the object now, so that running out
/// of room in `/dev/shm` is `ENOSPC` here instead of `SIGBUS` at the first write to a page
/// that could not be allocated later. tmpfs refuses a request larger than the whole
/// filesystem at once, and undoes a partial allocation when it fails.
pub(crate) fn fallocate(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    Ok(rustix::fs::fallocate(
        fd,
        rustix::fs::FallocateFlags::empty(),
        0,
        len,
    )?)
}

/// `pwrite(fd, buf, offset)`, repeated until all of `buf` is written.
pub(crate) fn pwrite_at(fd: BorrowedFd<'_>, buf: &[u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match rustix::io::pwrite(fd, &buf[done..], offset + done as u64) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// `pread(fd, buf, offset)`, repeated until `buf` is full or the file ends. Reading through
/// the file, not a mapping, allocates no page of a sparse object (tmpfs returns zeros for
/// holes) and cannot fault if the file shrinks.
pub(crate) fn pread_at(fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match rustix::io::pread(fd, &mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(done)
}

/// What `fstat` (or `lstat`) says about an object.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FileStat {
    pub size: u64,
    /// Bytes of storage allocated to it (`st_blocks × 512`): less than `size` for a sparse
    /// object, whose holes would be allocated (or fail with `SIGBUS`) when first touched.
    pub allocated: u64,
    pub uid: u32,
    /// Permission bits only (`0o7777`).
    pub mode: u32,
    pub file_type: FileType,
    /// Device and inode: the identity of the object behind a name.
    pub dev: u64,
    pub ino: u64,
}

/// The type of a directory entry, as far as shmbus cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileType {
    Regular,
    Symlink,
    Fifo,
    Socket,
    Other,
}

impl FileType {
    /// `a FIFO`, `a symbolic link`, ... for error messages.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            FileType::Regular => "a regular file",
            FileType::Symlink => "a symbolic link",
            FileType::Fifo => "a FIFO",
            FileType::Socket => "a socket",
            FileType::Other => "a device or directory",
        }
    }
}

fn file_stat(st: &rustix::fs::Stat) -> FileStat {
    use rustix::fs::FileType as T;
    let file_type = match T::from_raw_mode(st.st_mode) {
        T::RegularFile => FileType::Regular,
        T::Symlink => FileType::Symlink,
        T::Fifo => FileType::Fifo,
        T::Socket => FileType::Socket,
        _ => FileType::Other,
    };
    FileStat {
        size: u64::try_from(st.st_size).unwrap_or(0),
        allocated: u64::try_from(st.st_blocks).unwrap_or(0).saturating_mul(512),
        uid: st.st_uid,
        mode: st.st_mode & 0o7777,
        file_type,
        dev: st.st_dev,
        ino: st.st_ino,
    }
}

/// `fstat(fd)`.
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<FileStat> {
    Ok(file_stat(&rustix::fs::fstat(fd)?))
}

/// `lstat("/dev/shm/<name>")`: the entry itself (a link is not followed), without opening
/// it, so it needs no descriptor and cannot block.
pub(crate) fn stat_shm(os_name: &str) -> io::Result<FileStat> {
    Ok(file_stat(&rustix::fs::lstat(shm_path(os_name).as_str())?))
}

/// `geteuid()`: the user whose objects we trust by default.
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
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
    /// `mmap(NULL, len, PROT_READ [| PROT_WRITE], MAP_SHARED [| MAP_POPULATE], fd, 0)`.
    ///
    /// `MAP_POPULATE` faults every page in up front, so the first pass of a ring does not
    /// take a page fault every few dozen messages (a multi-microsecond latency spike each).
    /// Callers populate only objects whose pages are all allocated already (see
    /// `Segment::try_open`): populating a sparse object would allocate its holes.
    pub(crate) fn new(
        fd: BorrowedFd<'_>,
        len: usize,
        writable: bool,
        populate: bool,
    ) -> io::Result<Mapping> {
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
                if populate {
                    MapFlags::SHARED | MapFlags::POPULATE
                } else {
                    MapFlags::SHARED
                },
                fd,
                0,
            )?
        };
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave NULL"))?;
        Ok(Mapping { ptr, len })
    }

    /// `mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)`,
    /// then `pread` of the object's first `prefix` bytes into it: a private snapshot with the
    /// object's layout. Untouched pages cost nothing (they read as zero), and nothing in it
    /// can change or fault when the object does.
    pub(crate) fn snapshot(fd: BorrowedFd<'_>, len: usize, prefix: usize) -> io::Result<Mapping> {
        use rustix::mm::{MapFlags, ProtFlags};
        if len == 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        // SAFETY: a fresh anonymous private mapping aliases nothing.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )?
        };
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave NULL"))?;
        let map = Mapping { ptr, len };
        let n = prefix.min(len);
        // SAFETY: the first `n` bytes of our own fresh private mapping; nobody else sees it
        // and no other reference into it exists yet.
        let buf = unsafe { std::slice::from_raw_parts_mut(map.ptr.as_ptr(), n) };
        pread_at(fd, buf, 0)?;
        Ok(map)
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

/// `futex_waitv` (Linux ≥ 5.16): sleeps while every `words[i].0 == words[i].1`, until one
/// of them is woken, `deadline` (on the monotonic clock) passes, or a signal arrives. All
/// are shared (not `FUTEX2_PRIVATE`) 32-bit futexes. `Err` with `ENOSYS` on an older kernel
/// (or one whose seccomp filter refuses the call); at most 128 words.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn futex_waitv(
    words: &[(&AtomicU32, u32)],
    deadline: Option<Instant>,
) -> io::Result<()> {
    use rustix::thread::futex::{self, WaitFlags, WaitvFlags};
    if words.len() > FUTEX_WAITV_MAX {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let waits: Vec<futex::Wait> = words
        .iter()
        .map(|&(word, expected)| {
            let mut w = futex::Wait::new();
            w.val = u64::from(expected);
            w.uaddr = futex::WaitPtr::new(word.as_ptr().cast());
            w.flags = WaitFlags::SIZE_U32;
            w
        })
        .collect();
    let ts = deadline.map(monotonic_timespec);
    match futex::waitv(
        &waits,
        WaitvFlags::empty(),
        ts.as_ref(),
        rustix::time::ClockId::Monotonic,
    ) {
        // Woken, a word differed (EAGAIN), timed out or interrupted: the caller re-checks.
        Ok(_)
        | Err(rustix::io::Errno::AGAIN | rustix::io::Errno::TIMEDOUT | rustix::io::Errno::INTR) => {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Most words one `futex_waitv` takes (the kernel's `FUTEX_WAITV_MAX`).
pub(crate) const FUTEX_WAITV_MAX: usize = 128;

/// `deadline` as an absolute `CLOCK_MONOTONIC` time. `Instant` is that clock on Linux, but
/// its value is opaque: the time left is added to the clock read now.
fn monotonic_timespec(deadline: Instant) -> rustix::time::Timespec {
    // glibc's clock_gettime, not rustix's: rustix reads the vDSO itself, which valgrind
    // (our C tests run under it) does not provide where rustix looks.
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let left = deadline.saturating_duration_since(Instant::now());
    let nanos = now.tv_nsec as u64 + u64::from(left.subsec_nanos());
    rustix::time::Timespec {
        tv_sec: now
            .tv_sec
            .saturating_add(i64::try_from(left.as_secs()).unwrap_or(i64::MAX))
            .saturating_add((nanos / 1_000_000_000) as i64),
        tv_nsec: (nanos % 1_000_000_000) as i64,
    }
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
/// process executes a full memory barrier before this returns. `false` when the kernel (or
/// a seccomp filter) refused: then a publisher that relies on it may miss this sleeper, so
/// the sleeper must not sleep unboundedly.
pub(crate) fn membarrier_global() -> bool {
    use rustix::thread::{membarrier, MembarrierCommand};
    membarrier(MembarrierCommand::GlobalExpedited).is_ok()
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

/// `open("/proc/self/fd/<fd>", O_RDWR | O_CLOEXEC)`: a new open file description of the
/// object behind `fd` (the same inode, checked with `fstat`), for locks of its own. Unlike
/// reopening the name, it works after the name was removed or replaced.
///
/// Without `/proc` (some chroots and sandboxes), the name `os_name` is opened again (safely,
/// see [`shm_open`]); the inode check then refuses an object that replaced ours.
pub(crate) fn reopen(fd: BorrowedFd<'_>, os_name: &str) -> io::Result<OwnedFd> {
    use rustix::fs::OFlags;
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let new = match rustix::fs::open(path.as_str(), OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()) {
        Ok(new) => new,
        Err(rustix::io::Errno::NOENT) => shm_open(os_name, true)?,
        Err(e) => return Err(e.into()),
    };
    let (a, b) = (fstat(fd)?, fstat(new.as_fd())?);
    if (a.dev, a.ino) != (b.dev, b.ino) {
        return Err(io::Error::other("/proc/self/fd gave another file"));
    }
    Ok(new)
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
pub(crate) fn borrow(fd: &impl AsFd) -> BorrowedFd<'_> {
    fd.as_fd()
}
