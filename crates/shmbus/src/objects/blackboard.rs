//! The latest-value blackboard: the original design's shared buffer, without torn reads.
//!
//! # Layout (after the 128-byte header)
//!
//! | offset | what                                              | written by |
//! |-------:|---------------------------------------------------|------------|
//! |    128 | `latest`, `writing`, `tick`, `writer`, `len[8]` (one 128-byte line) | the writer |
//! |    256 | `waiters` (own 128-byte line)                     | readers    |
//! |    384 | `copies` copies of the value, each `capacity` bytes rounded up to 64 | the writer |
//!
//! The protocol is in [`crate::protocol::latch`]. `capacity` and `copies` (the header's kind
//! flags) are in the header and validated at open; `len` is checked against the capacity on
//! every read, so a hostile length is an error, never an out-of-bounds copy.

use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::objects::handler::{call_handler, HandlerGuard, HandlerStats, Update};
use crate::os::wait::Deadline;
use crate::protocol::latch::{BoardControl, Latch, ReadError, WriteError};
use crate::protocol::layout::{board_stride, Spec, BOARD_COPIES};
use crate::segment::header::{Kind, HEADER_SIZE};
use crate::segment::liveness::{claim_slot, slot_alive, WRITER_SLOTS, WRITER_SLOTS_BASE};
use crate::segment::options::Options;
use crate::segment::Segment;
use crate::sync::AtomicU64;

pub(crate) const CONTROL: usize = HEADER_SIZE;
pub(crate) const DATA: usize = HEADER_SIZE + 256;
/// How long `write` waits for another live writer before it reports [`Error::Busy`].
const WRITE_PATIENCE: Duration = Duration::from_secs(1);

/// A named latest-value buffer: writers replace the value, readers get the newest one whole.
///
/// This is the original design's shared buffer done right: the board keeps several copies of
/// the value and readers always copy a complete one, so they never see half of one write
/// and half of another, never wait for a writer and write nothing to shared memory; the
/// value carries its length, readers can sleep until something newer than what they hold
/// arrives, and a receive handler can run on a background thread. Writers are serialised
/// (one at a time) and never wait for readers; a writer that dies mid-write is invisible to
/// readers and the next write takes its place.
///
/// Cloning a `Blackboard` is cheap and shares the mapping.
///
/// ```
/// # shmbus::doctest_namespace();
/// use shmbus::Blackboard;
/// use std::sync::mpsc;
///
/// let board = Blackboard::create("doc.board.handler", 256)?;
/// let (tx, rx) = mpsc::channel();
/// let guard = Blackboard::open("doc.board.handler")?.on_update(move |update| {
///     tx.send(update.data.to_vec()).unwrap();
/// })?;
/// board.write(b"hello")?;
/// assert_eq!(rx.recv().unwrap(), b"hello");
/// let stats = guard.stop()?; // stops and joins the thread
/// assert_eq!(stats.delivered, 1);
/// # Ok::<(), shmbus::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Blackboard {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    seg: Segment,
    capacity: usize,
    copies: u32,
    spin: Duration,
    /// This handle's writer slot, claimed on first write.
    slot: OnceLock<u32>,
}

impl Blackboard {
    /// Creates a blackboard holding values of up to `capacity` bytes; removed when the last
    /// clone of this handle is dropped unless [`Options::persistent`].
    pub fn create(name: &str, capacity: usize) -> Result<Blackboard> {
        Self::create_with(name, capacity, &Options::default())
    }

    /// [`Blackboard::create`] with options.
    pub fn create_with(name: &str, capacity: usize, opts: &Options) -> Result<Blackboard> {
        let spec = board_spec(capacity);
        let seg = Segment::create_kind(opts.name(name)?, Kind::Blackboard, spec, opts)?;
        Ok(Blackboard::from_segment(seg, opts))
    }

    /// Opens an existing blackboard.
    pub fn open(name: &str) -> Result<Blackboard> {
        Self::open_with(name, &Options::default())
    }

    /// [`Blackboard::open`] with options.
    pub fn open_with(name: &str, opts: &Options) -> Result<Blackboard> {
        let seg = Segment::open_kind(opts.name(name)?, Some(Kind::Blackboard), opts, true)?;
        Ok(Blackboard::from_segment(seg, opts))
    }

    /// Opens the blackboard, or creates it with `capacity` (race-free). An existing board
    /// keeps its own capacity.
    pub fn create_or_open(name: &str, capacity: usize) -> Result<Blackboard> {
        Self::create_or_open_with(name, capacity, &Options::default())
    }

    /// [`Blackboard::create_or_open`] with options.
    pub fn create_or_open_with(name: &str, capacity: usize, opts: &Options) -> Result<Blackboard> {
        let spec = board_spec(capacity);
        let seg = Segment::create_or_open_kind(opts.name(name)?, Kind::Blackboard, spec, opts)?;
        Ok(Blackboard::from_segment(seg, opts))
    }

    fn from_segment(seg: Segment, opts: &Options) -> Blackboard {
        // Validated at open: capacity ≤ MAX_BOARD_CAPACITY, copies in 2..=8, and the mapping
        // covers every copy.
        let capacity = seg.header().fields.capacity as usize;
        let copies = seg.header().fields.kind_flags();
        Blackboard {
            inner: Arc::new(Inner {
                seg,
                capacity,
                copies,
                spin: opts.spin,
                slot: OnceLock::new(),
            }),
        }
    }

    /// The blackboard's name.
    pub fn name(&self) -> &crate::Name {
        self.inner.seg.name()
    }

    /// The largest value it holds, in bytes.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Replaces the value; returns its version (1 for the first write). Fails with
    /// [`Error::TooLarge`] when `data` exceeds the capacity, [`Error::Busy`] when another
    /// live writer holds the board for more than a second.
    pub fn write(&self, data: &[u8]) -> Result<u64> {
        let inner = &*self.inner;
        if data.len() > inner.capacity {
            return Err(Error::TooLarge {
                name: self.name().describe(),
                len: data.len(),
                capacity: inner.capacity,
            });
        }
        inner
            .seg
            .check_here(|| format!("the writer of {}", self.name().describe()))?;
        let me = inner.writer_slot()?;
        let alive = |slot| inner.alive(slot);
        inner
            .lock()
            .write(data, me, Deadline::after(Some(WRITE_PATIENCE)), &alive)
            .map_err(|WriteError::Busy(waited)| Error::Busy {
                name: self.name().describe(),
                waited,
            })
    }

    /// The current value and its version (version 0 and no bytes before the first write).
    pub fn read(&self) -> Result<(u64, Vec<u8>)> {
        let mut buf = vec![0; self.inner.capacity];
        let (version, len) = self.read_into(&mut buf)?;
        buf.truncate(len);
        Ok((version, buf))
    }

    /// Copies the current value into `buf`; returns `(version, length)`. A `buf` of
    /// [`capacity`](Self::capacity) bytes always suffices; a smaller one gives
    /// [`Error::BufferTooSmall`] when the value does not fit.
    pub fn read_into(&self, buf: &mut [u8]) -> Result<(u64, usize)> {
        self.inner.read_into(buf)
    }

    /// The version of the current value (0 before the first write). Never waits: a write
    /// in progress becomes visible only once it is complete.
    pub fn version(&self) -> u64 {
        self.inner.lock().version()
    }

    /// Waits until the version is newer than `version`; returns the new version, or `None`
    /// when `timeout` passes first (`None` waits forever). Spins briefly, then sleeps on a
    /// futex: a writer wakes it, and pays no syscall when nobody sleeps.
    pub fn wait_newer(&self, version: u64, timeout: Option<Duration>) -> Result<Option<u64>> {
        Ok(self
            .inner
            .lock()
            .wait_newer(version, self.inner.spin, Deadline::after(timeout), None))
    }

    /// Runs `handler` on a background thread for each version written from now on.
    ///
    /// A handler slower than the writer sees the newest value and
    /// [`Update::skipped`] says how many versions it missed. Dropping the guard stops and
    /// joins the thread promptly; a panic in the handler stops it and is reported by
    /// [`HandlerGuard::stop`].
    pub fn on_update<F>(&self, handler: F) -> Result<HandlerGuard>
    where
        F: FnMut(Update<'_>) + Send + 'static,
    {
        self.on_update_from(self.version(), handler)
    }

    /// Like [`on_update`](Self::on_update) but for every version after `version`: pass 0 to
    /// get the current value first, if there is one.
    pub fn on_update_from<F>(&self, version: u64, mut handler: F) -> Result<HandlerGuard>
    where
        F: FnMut(Update<'_>) + Send + 'static,
    {
        let inner = self.inner.clone();
        let waker = self.inner.clone();
        let name = self.name().describe();
        let thread_name = name.clone();
        HandlerGuard::spawn(
            name,
            Box::new(move || waker.lock().wake_all()),
            move |stopper| {
                let mut stats = HandlerStats::default();
                let mut last = version;
                let mut buf = vec![0; inner.capacity];
                let lock = inner.lock();
                while lock
                    .wait_newer(last, inner.spin, Deadline::after(None), Some(stopper))
                    .is_some()
                {
                    let (v, len) = match inner.read_into(&mut buf) {
                        Ok(got) => got,
                        // Only a reader stopped mid-copy for a second gets here; go on.
                        Err(Error::Busy { .. }) => continue,
                        Err(e) => return Err(e),
                    };
                    if v <= last {
                        continue;
                    }
                    let update = Update {
                        version: v,
                        skipped: v - last - 1,
                        data: &buf[..len],
                    };
                    call_handler(&thread_name, || handler(update))?;
                    stats.delivered += 1;
                    stats.skipped += update.skipped;
                    last = v;
                }
                Ok(stats)
            },
        )
    }
}

impl Inner {
    fn lock(&self) -> Latch<'_> {
        latch_of(&self.seg, self.capacity, self.copies)
    }

    fn writer_slot(&self) -> Result<u32> {
        if let Some(&slot) = self.slot.get() {
            return Ok(slot);
        }
        let slot =
            claim_slot(&self.seg, WRITER_SLOTS_BASE, WRITER_SLOTS)?.ok_or_else(|| Error::Busy {
                name: self.seg.name().describe(),
                waited: Duration::ZERO,
            })?;
        self.lock().release_stale(slot);
        // Two threads may race here; both hold locks through the same description, and the
        // loser's byte stays locked until this handle closes: harmless.
        Ok(*self.slot.get_or_init(|| slot))
    }

    /// Our own slot is alive by definition (the kernel would not report our own lock).
    fn alive(&self, slot: u32) -> bool {
        self.slot.get() == Some(&slot) || slot_alive(&self.seg, WRITER_SLOTS_BASE, slot)
    }

    fn read_into(&self, buf: &mut [u8]) -> Result<(u64, usize)> {
        let name = || self.seg.name().describe();
        let buf_len = buf.len();
        self.lock().read_into(buf).map_err(|e| match e {
            ReadError::Busy(waited) => Error::Busy {
                name: name(),
                waited,
            },
            ReadError::Corrupt(len) => Error::Corrupt {
                name: name(),
                reason: format!("value length {len} exceeds the capacity {}", self.capacity),
            },
            ReadError::BufferTooSmall(needed) => Error::BufferTooSmall {
                name: name(),
                needed,
                len: buf_len,
            },
        })
    }
}

/// The shape of a new board of `capacity` bytes.
fn board_spec(capacity: usize) -> Spec {
    Spec {
        flags: BOARD_COPIES,
        ..Spec::capacity(capacity as u64)
    }
}

/// The latch over a validated board's words.
fn latch_of(seg: &Segment, capacity: usize, copies: u32) -> Latch<'_> {
    let stride_words = (board_stride(capacity as u64) / 8) as usize;
    Latch::new(
        seg.at::<BoardControl>(CONTROL),
        seg.slice::<AtomicU64>(DATA, stride_words * copies as usize),
        capacity,
        copies,
        stride_words,
    )
}

/// Live state for `info`: (version, len, writer slot, waiters, copies, a write in
/// progress).
pub(crate) fn live_state(seg: &Segment) -> (u64, u64, u32, u32, u32, bool) {
    let capacity = seg.header().fields.capacity as usize;
    let copies = seg.header().fields.kind_flags();
    let latch = latch_of(seg, capacity, copies);
    let (latest, writing, writer, len) = latch.raw();
    (
        latest,
        u64::from(len),
        writer,
        latch.waiters(),
        copies,
        writing != latest,
    )
}
