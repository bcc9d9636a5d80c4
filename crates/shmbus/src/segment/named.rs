//! Named shared-memory objects: create, open, remove, map, and the plain byte view.
//!
//! Every kind of object ([`crate::Event`], [`crate::Blackboard`], the raw [`Segment`]) is a
//! `Segment` underneath: a POSIX shared-memory object that starts with the
//! [header](crate::segment::header) and continues with the kind's own state at offset 128.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::OwnedFd;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::os::fork::{self, HandleOwner, ObjectFd};
use crate::os::sys::{self, FileStat, FileType, Mapping};
use crate::os::wait::Deadline;
use crate::os::watch::FileWatch;
use crate::segment::header::{
    Header, HeaderFields, Kind, RawHeader, HEADER_SIZE, LAYOUT_VERSION, MAGIC, PERSISTENT, READY,
};
use crate::segment::name::Name;
use crate::segment::options::{Options, Owners};
use crate::sync::{AtomicU8, Ordering};

use super::os_errors::{check_owner, open_error, os_error, permission_error};
use super::region::Region;
use super::sizes::{layout_size, snapshot_prefix};
use super::stream::SegmentStream;
use crate::protocol::layout::Spec;
use crate::protocol::shared_bytes::SharedSafe;

/// A named shared-memory object holding a plain block of bytes.
///
/// The original design's "named memory-mapped file": any process that knows the name can
/// open it and read or write the bytes through [`Segment::stream`]. There is no
/// synchronisation between writers and readers here (that is what [`crate::Blackboard`] adds),
/// but every access is a (relaxed) atomic one, so a racing access gives stale or mixed bytes,
/// never undefined behaviour.
///
/// ```
/// # shmbus::doctest_namespace();
/// use shmbus::Segment;
/// use std::io::{Read, Seek, SeekFrom, Write};
///
/// let seg = Segment::create("doc.segment.bytes", 1024)?;
/// seg.stream().write_all(b"hello")?;
///
/// let other = Segment::open("doc.segment.bytes")?;
/// let mut buf = [0u8; 5];
/// let mut stream = other.stream();
/// stream.seek(SeekFrom::Start(0))?;
/// stream.read_exact(&mut buf)?;
/// assert_eq!(&buf, b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Segment {
    name: Name,
    /// The descriptor that is mapped: it holds no lock (see `lock_fd`).
    fd: OwnedFd,
    /// Where this handle's liveness locks live, opened at the first lock.
    locks: OnceLock<ObjectFd>,
    /// The process that created or opened it: in any other (a fork child) it is inert.
    owner: HandleOwner,
    map: Mapping,
    header: Header,
    stat: FileStat,
    remove_on_drop: bool,
}

impl Segment {
    /// Creates a segment with `size` bytes of data; fails with [`Error::AlreadyExists`] if the
    /// name is taken. Removed when dropped (see [`Options::persistent`]).
    pub fn create(name: &str, size: usize) -> Result<Segment> {
        Self::create_with(name, size, &Options::default())
    }

    /// [`Segment::create`] with options.
    pub fn create_with(name: &str, size: usize, opts: &Options) -> Result<Segment> {
        Segment::create_kind(
            opts.name(name)?,
            Kind::Segment,
            Spec::capacity(size as u64),
            opts,
        )
    }

    /// Opens an existing segment.
    pub fn open(name: &str) -> Result<Segment> {
        Self::open_with(name, &Options::default())
    }

    /// [`Segment::open`] with options.
    pub fn open_with(name: &str, opts: &Options) -> Result<Segment> {
        Segment::open_kind(opts.name(name)?, Some(Kind::Segment), opts, true)
    }

    /// Opens the segment, or creates it with `size` bytes if it does not exist. Safe when
    /// several processes race to do this: exactly one creates, the others open.
    pub fn create_or_open(name: &str, size: usize) -> Result<Segment> {
        Self::create_or_open_with(name, size, &Options::default())
    }

    /// [`Segment::create_or_open`] with options.
    pub fn create_or_open_with(name: &str, size: usize, opts: &Options) -> Result<Segment> {
        Segment::create_or_open_kind(
            opts.name(name)?,
            Kind::Segment,
            Spec::capacity(size as u64),
            opts,
        )
    }

    /// Removes the object called `name` (of any kind). Processes that have it open keep
    /// their mapping; new opens fail with [`Error::NotFound`].
    ///
    /// ```
    /// # shmbus::doctest_namespace();
    /// let seg = shmbus::Segment::create_with("doc.segment.rm", 8,
    ///     &shmbus::Options::new().persistent(true))?;
    /// drop(seg);
    /// shmbus::Segment::remove("doc.segment.rm")?;
    /// assert!(matches!(shmbus::Segment::remove("doc.segment.rm"),
    ///     Err(shmbus::Error::NotFound { .. })));
    /// # Ok::<(), shmbus::Error>(())
    /// ```
    pub fn remove(name: &str) -> Result<()> {
        Self::remove_with(name, &Options::default())
    }

    /// [`Segment::remove`] with options (for the namespace).
    pub fn remove_with(name: &str, opts: &Options) -> Result<()> {
        remove_name(&opts.name(name)?)
    }

    /// The object's name.
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// Size of the data region in bytes.
    pub fn size(&self) -> usize {
        self.header.fields.capacity as usize
    }

    /// A `Read + Write + Seek` cursor over the data region, starting at offset 0.
    pub fn stream(&self) -> SegmentStream<'_> {
        SegmentStream::new(self.slice::<AtomicU8>(HEADER_SIZE, self.size()))
    }

    // ----- crate-internal: shared by every kind -----

    pub(crate) fn create_kind(
        name: Name,
        kind: Kind,
        spec: Spec,
        opts: &Options,
    ) -> Result<Segment> {
        Segment::create_kind_init(name, kind, spec, opts, &|_| {})
    }

    /// [`create_kind`](Self::create_kind) for a kind whose initial state is not all zero:
    /// `init` writes it into the new object before it is marked ready (so no opener ever
    /// sees it unwritten).
    pub(crate) fn create_kind_init(
        name: Name,
        kind: Kind,
        spec: Spec,
        opts: &Options,
        init: &dyn Fn(&Segment),
    ) -> Result<Segment> {
        let mut fields = HeaderFields {
            magic: MAGIC,
            layout_version: LAYOUT_VERSION,
            kind: kind.to_raw(),
            total_size: 0,
            creator_pid: sys::pid(),
            flags: spec.flags | if opts.persistent { PERSISTENT } else { 0 },
            creator_start: sys::process_start_ticks(),
            created_unix_ns: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
            capacity: spec.capacity,
            max_message: spec.max_message,
            max_slots: spec.max_slots,
        };
        let total = layout_size(kind, &fields).map_err(|reason| Error::InvalidConfig {
            reason: format!("{} {}: {reason}", kind, name.describe()),
        })?;
        fields.total_size = total;
        let fd = sys::shm_create(name.os_name(), opts.mode).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => Error::AlreadyExists {
                name: name.describe(),
            },
            _ => os_error(&name, "create", e),
        })?;
        // Our object's identity, taken first so that cleaning up after a failure below
        // removes the name only while it is still ours (as `Drop` does).
        let stat = sys::fstat(sys::borrow(&fd)).map_err(|e| {
            let _ = sys::shm_unlink(name.os_name()); // just made with O_EXCL: ours
            os_error(&name, "stat", e)
        })?;
        // From here on, a failure must not leave a half-made object behind.
        let unlink_on_error = |err: Error| {
            unlink_if_ours(&name, &stat);
            err
        };
        let no_space = |e: io::Error| {
            if sys::is_no_space_error(&e) {
                Error::NoSpace {
                    name: name.describe(),
                    size: total,
                }
            } else {
                os_error(&name, "size", e)
            }
        };
        sys::ftruncate(sys::borrow(&fd), total).map_err(|e| unlink_on_error(no_space(e)))?;
        // Every page now: a full /dev/shm is an error here, never a SIGBUS at a later write.
        sys::fallocate(sys::borrow(&fd), total).map_err(|e| unlink_on_error(no_space(e)))?;
        let map = Mapping::new(sys::borrow(&fd), total as usize, true, true)
            .map_err(|e| unlink_on_error(os_error(&name, "map", e)))?;
        let raw = map.as_ptr().cast::<RawHeader>();
        // SAFETY: the mapping is at least HEADER_SIZE bytes (layout_size adds it) and page
        // aligned, so `raw` is valid and aligned for `HeaderFields`; nobody else uses the
        // fields before `init` says READY, and volatile keeps the store from being elided.
        unsafe { std::ptr::addr_of_mut!((*raw).fields).write_volatile(fields) };
        let header = Header { kind, fields };
        let seg = Segment {
            name,
            fd,
            locks: OnceLock::new(),
            owner: HandleOwner::current(),
            map,
            header,
            stat,
            remove_on_drop: !opts.persistent,
        };
        init(&seg);
        // SYNC: Release pairs with the Acquire load of `init` in `open_kind`: whoever sees
        // READY sees every field above, the zeroed state that ftruncate gave us and what
        // `init` wrote.
        seg.raw_header().init.store(READY, Ordering::Release);
        // The same word through the file: an inotify event for openers waiting for us
        // (`os::watch`); a write of the value just stored changes no byte. Best effort: an
        // opener that misses it finds READY at its next look, by its `open_timeout`.
        let _ = sys::pwrite_at(sys::borrow(&seg.fd), &READY.to_le_bytes(), 64);
        Ok(seg)
    }

    /// Opens the object, waiting up to `opts.wait_for_creation` for it to exist and up to
    /// `opts.open_timeout` (from when it is first seen) for its creator to finish it, on an
    /// inotify watch ([`FileWatch`]): no polling.
    pub(crate) fn open_kind(
        name: Name,
        expected: Option<Kind>,
        opts: &Options,
        writable: bool,
    ) -> Result<Segment> {
        let created_by = Deadline::after(Some(opts.wait_for_creation));
        let mut finished_by = None;
        let mut watch: Option<FileWatch> = None;
        loop {
            let deadline = match Segment::try_open(&name, writable, &opts.owners) {
                Ok(Opened::Ready(seg)) => {
                    if let Some(expected) = expected {
                        if seg.header.kind != expected {
                            return Err(Error::WrongKind {
                                name: name.describe(),
                                expected,
                                found: seg.header.kind,
                            });
                        }
                    }
                    return Ok(*seg);
                }
                Err(e @ Error::NotFound { .. }) => {
                    if created_by.expired() {
                        return Err(e);
                    }
                    created_by
                }
                Err(e) => return Err(e),
                Ok(Opened::Initialising { size }) => {
                    let (since, by) = *finished_by.get_or_insert_with(|| {
                        (Instant::now(), Deadline::after(Some(opts.open_timeout)))
                    });
                    if by.expired() {
                        return Err(if size < HEADER_SIZE as u64 && size > 0 {
                            Error::TooSmall {
                                name: name.describe(),
                                size,
                                needed: HEADER_SIZE as u64,
                            }
                        } else {
                            Error::NotReady {
                                name: name.describe(),
                                waited: since.elapsed(),
                            }
                        });
                    }
                    by
                }
            };
            match &mut watch {
                // Look once more first: the watch sees only what happens after it exists.
                None => watch = Some(FileWatch::for_creation(name.os_name())),
                Some(w) => {
                    // A creator that does not write READY through the file (another
                    // implementation) gives no event when it finishes: look every 10 ms
                    // while the object exists unfinished.
                    let cap = finished_by.is_some().then_some(Duration::from_millis(10));
                    w.wait(cap.map_or(deadline, |c| Deadline::after(Some(deadline.cap(c)))));
                }
            }
        }
    }

    pub(crate) fn create_or_open_kind(
        name: Name,
        kind: Kind,
        spec: Spec,
        opts: &Options,
    ) -> Result<Segment> {
        Segment::create_or_open_kind_init(name, kind, spec, opts, &|_| {})
    }

    /// [`create_or_open_kind`](Self::create_or_open_kind) with an `init` for the create
    /// (see [`create_kind_init`](Self::create_kind_init)).
    pub(crate) fn create_or_open_kind_init(
        name: Name,
        kind: Kind,
        spec: Spec,
        opts: &Options,
        init: &dyn Fn(&Segment),
    ) -> Result<Segment> {
        // Another process may remove the object between our failed create and our open; a
        // few rounds settle any such race.
        let mut last = None;
        // Our open only races our create: it never waits for a creation.
        let opts_now = Options {
            wait_for_creation: Duration::ZERO,
            ..opts.clone()
        };
        for _ in 0..16 {
            match Segment::create_kind_init(name.clone(), kind, spec, opts, init) {
                Err(Error::AlreadyExists { .. }) => {}
                other => return other,
            }
            match Segment::open_kind(name.clone(), Some(kind), &opts_now, true) {
                Err(e @ Error::NotFound { .. }) => last = Some(e),
                other => return other,
            }
        }
        Err(last.unwrap_or(Error::NotFound {
            name: name.describe(),
        }))
    }

    /// One attempt at opening: `Initialising` when the creator has not finished.
    ///
    /// Nothing under the name is trusted: it is opened without following links or blocking
    /// (`sys::shm_open`), must be a regular file owned by a uid `owners` accepts, and its
    /// header is read with `pread` and validated *before* anything is mapped; the mapping
    /// then covers exactly the size the header and `fstat` agree on, and is populated only
    /// when every page of it is allocated already (a sparse object is refused: its holes
    /// would be allocated by our accesses, or kill us with SIGBUS once /dev/shm is full).
    fn try_open(name: &Name, writable: bool, owners: &Owners) -> Result<Opened> {
        let fd = sys::shm_open(name.os_name(), writable).map_err(|e| open_error(name, e))?;
        let stat = sys::fstat(sys::borrow(&fd)).map_err(|e| os_error(name, "stat", e))?;
        if stat.file_type != FileType::Regular {
            return Err(Error::NotRegularFile {
                name: name.describe(),
                found: stat.file_type.describe(),
            });
        }
        check_owner(name, &stat, owners)?;
        if stat.size < HEADER_SIZE as u64 {
            // The creator may not have sized it yet.
            return Ok(Opened::Initialising { size: stat.size });
        }
        // The header through the file, not a mapping: no page of the object is touched.
        // `init` first: the creator stores READY after every field, so fields read after
        // READY are the final ones.
        let mut init = [0u8; 4];
        let mut raw = [0u8; 64];
        let read = |buf: &mut [u8], at| {
            sys::pread_at(sys::borrow(&fd), buf, at).map_err(|e| os_error(name, "read", e))
        };
        let got_init = read(&mut init, 64)?;
        let got_fields = read(&mut raw, 0)?;
        if got_init < 4 || got_fields < 64 {
            return Ok(Opened::Initialising { size: stat.size });
        }
        let fields = HeaderFields::from_bytes(&raw);
        if fields.magic != MAGIC && fields.magic != 0 {
            return Err(Error::NotShmbus {
                name: name.describe(),
            });
        }
        if u32::from_le_bytes(init) != READY {
            return Ok(Opened::Initialising { size: stat.size });
        }
        // Sizes as of READY: the creator sized and allocated everything before it.
        let stat = sys::fstat(sys::borrow(&fd)).map_err(|e| os_error(name, "stat", e))?;
        let header = fields.validate(&name.describe(), stat.size, layout_size)?;
        if stat.allocated < stat.size {
            return Err(Error::Sparse {
                name: name.describe(),
                size: stat.size,
                allocated: stat.allocated,
            });
        }
        // `validate` bounded the size by the layout of a capacity of at most 1 TiB.
        let len = usize::try_from(stat.size).map_err(|_| Error::Corrupt {
            name: name.describe(),
            reason: format!("{} bytes do not fit in the address space", stat.size),
        })?;
        let map = if writable {
            Mapping::new(sys::borrow(&fd), len, true, true)
        } else {
            // Looking (ls, info, gc): a private copy of the header and control words, read
            // through the file. Nothing of the object is mapped, so whoever may truncate it
            // cannot make us fault.
            Mapping::snapshot(sys::borrow(&fd), len, snapshot_prefix(&header))
        }
        .map_err(|e| os_error(name, "map", e))?;
        let raw = map.as_ptr().cast::<RawHeader>();
        // SAFETY: the mapping holds at least HEADER_SIZE bytes and is page aligned, so `raw`
        // points to a valid, aligned `RawHeader`; `init` is an atomic.
        let init = unsafe { &(*raw).init }.load(Ordering::Acquire);
        // SAFETY: as above for the fields; `HeaderFields` is plain integers, valid for every
        // bit pattern. The volatile copy is our one read of the mapped header; everything
        // after works on the private copy, validated again (the object may have changed
        // since the `pread`, and the Acquire load above orders the reads after READY).
        let mapped = unsafe { std::ptr::addr_of!((*raw).fields).read_volatile() };
        if init != READY || mapped != fields {
            return Err(Error::Corrupt {
                name: name.describe(),
                reason: "the header changed while it was being opened".to_owned(),
            });
        }
        let header = mapped.validate(&name.describe(), stat.size, layout_size)?;
        Ok(Opened::Ready(Box::new(Segment {
            name: name.clone(),
            fd,
            locks: OnceLock::new(),
            owner: HandleOwner::current(),
            map,
            header,
            stat,
            remove_on_drop: false,
        })))
    }

    pub(crate) fn header(&self) -> &Header {
        &self.header
    }

    /// The mapped descriptor: for `F_OFD_GETLK` queries (which see every lock but our own
    /// descriptor's, and it holds none).
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// The descriptor this handle takes its liveness locks on: a second open file
    /// description of the object, never mapped, so that a fork child can let go of it
    /// entirely (a mapping would keep the description, and so the locks, alive).
    pub(crate) fn lock_fd(&self) -> Result<&ObjectFd> {
        if let Some(fd) = self.locks.get() {
            return Ok(fd);
        }
        let fd = ObjectFd::open(|| sys::reopen(sys::borrow(&self.fd), self.name.os_name()))
            .map_err(|e| os_error(&self.name, "open a lock descriptor for", e))?;
        // Two threads may race here: the loser's descriptor is closed, unused.
        Ok(self.locks.get_or_init(|| fd))
    }

    /// Whether this process created or opened the segment (not a fork child of that one).
    #[inline]
    pub(crate) fn owned_here(&self) -> bool {
        self.owner.is_current()
    }

    /// [`owned_here`](Self::owned_here), also checking the pid: for `Drop`, which must never
    /// tear down a parent's participant from a child.
    pub(crate) fn dropping_here(&self) -> bool {
        self.owner.is_current_strict()
    }

    /// `Ok` in the process that made the handle; [`Error::ForeignProcess`] in a fork child,
    /// where every operation that changes shared state must refuse. `what` names the
    /// handle ("the publisher of `imu`").
    #[inline]
    pub(crate) fn check_here(&self, what: impl FnOnce() -> String) -> Result<()> {
        if self.owner.is_current() {
            return Ok(());
        }
        Err(Error::ForeignProcess {
            what: what(),
            owner: self.owner.pid(),
            pid: fork::current_pid(),
        })
    }

    fn raw_header(&self) -> &RawHeader {
        // SAFETY: every mapping is at least HEADER_SIZE bytes (checked at create and open)
        // and page aligned; `RawHeader` is plain integers plus an atomic.
        unsafe { &*self.map.as_ptr().cast::<RawHeader>() }
    }

    /// A shared-memory value of type `T` at byte `offset`.
    ///
    /// Panics if `offset` is misaligned or out of the mapping: offsets are constants of the
    /// kind's layout, and `layout_size` guaranteed at open that the mapping covers them, so a
    /// panic here is a bug in shmbus, never the result of what another process wrote.
    pub(crate) fn at<T: SharedSafe>(&self, offset: usize) -> &T {
        &self.slice::<T>(offset, 1)[0]
    }

    /// `count` consecutive shared values of type `T` starting at byte `offset` (see [`Self::at`]).
    pub(crate) fn slice<T: SharedSafe>(&self, offset: usize, count: usize) -> &[T] {
        self.get(self.region(offset, count))
    }

    /// Checks once that `count` values of `T` at byte `offset` lie in the mapping, aligned
    /// (panics otherwise, as [`Self::at`]), for [`Self::get`] to hand out at the cost of one
    /// comparison: the board lookups on every read and write use it.
    pub(crate) fn region<T: SharedSafe>(&self, offset: usize, count: usize) -> Region<T> {
        Region::checked(offset, count, self.map.len()).unwrap_or_else(|| {
            panic!("shmbus bug: {count} values at {offset}: outside the mapping or misaligned")
        })
    }

    /// The values of a [`Region`] of this mapping.
    #[inline]
    pub(crate) fn get<T: SharedSafe>(&self, r: Region<T>) -> &[T] {
        // A region of another, larger mapping would be a bug: refused, never read.
        assert!(
            r.end() <= self.map.len(),
            "shmbus bug: region outside the mapping"
        );
        // SAFETY: `Region::checked`, its only maker, ensured `offset + count *
        // size_of::<T>() == end` without overflow and the alignment (the mapping is page
        // aligned); `end` is within this mapping (just checked). `T: SharedSafe` is valid
        // for any bits and only mutated through atomics, so shared references are sound
        // while other processes write. The slice borrows `self`, which owns the mapping.
        unsafe {
            std::slice::from_raw_parts(self.map.as_ptr().add(r.offset()).cast::<T>(), r.count())
        }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // A fork child's copy never removes what its parent created.
        if !self.remove_on_drop || !self.dropping_here() {
            return;
        }
        unlink_if_ours(&self.name, &self.stat);
    }
}

/// Removes `name` only if it still refers to *our* object (`ours`, from `fstat`): someone
/// may have removed it and created a new one under the same name meanwhile. `lstat` needs no
/// new descriptor, so this works at the descriptor limit too.
fn unlink_if_ours(name: &Name, ours: &FileStat) {
    if let Ok(st) = sys::stat_shm(name.os_name()) {
        if (st.dev, st.ino) == (ours.dev, ours.ino) {
            let _ = sys::shm_unlink(name.os_name());
        }
    }
}

enum Opened {
    Ready(Box<Segment>),
    Initialising { size: u64 },
}

/// Removes the object `name` names, whoever made it (permissions allowing).
pub(crate) fn remove_name(name: &Name) -> Result<()> {
    sys::shm_unlink(name.os_name()).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::NotFound {
            name: name.describe(),
        },
        io::ErrorKind::PermissionDenied => permission_error(name, "remove"),
        _ => os_error(name, "remove", e),
    })
}
