//! The latest-value blackboard: the original design's shared buffer, without torn reads.
//!
//! # Layout (after the 128-byte header)
//!
//! | offset | what                                              | written by |
//! |-------:|---------------------------------------------------|------------|
//! |    128 | `latest`, `tick`, `len[8]`: what readers poll (one 128-byte line) | the writer |
//! |    256 | `writer` (the write lock), `waiters`, `writing` (own 128-byte line) | writers, sleeping readers |
//! |    384 | `copies` copies of the value, each `capacity` bytes rounded up to 64 (above 2 KiB: from 4096, each rounded up to whole pages) | the writer |
//!
//! The protocol is in [`crate::protocol::latch`]. `capacity` and `copies` (the header's kind
//! flags) are in the header and validated at open; `len` is checked against the capacity on
//! every read, so a hostile length is an error, never an out-of-bounds copy.

mod core;
pub(crate) use core::BoardWaitable;
mod keyed;

use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::objects::handler::{HandlerGuard, Update};
use crate::protocol::layout::{Spec, BOARD_COPIES};
use crate::segment::header::{Kind, HEADER_SIZE};
use crate::segment::options::Options;
use crate::segment::Segment;

use self::core::Core;
pub(crate) use keyed::live_state as keyed_live_state;
pub use keyed::{BoardKey, KeyedBlackboard};

pub(crate) const CONTROL: usize = HEADER_SIZE;
/// Where the copies of a value of up to 2 KiB start (larger ones: at the next page).
pub(crate) const DATA: usize = HEADER_SIZE + 256;

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
    core: Arc<Core>,
}

impl Blackboard {
    /// Creates a blackboard holding values of up to `capacity` bytes; removed when the last
    /// clone of this handle is dropped unless [`Options::persistent`].
    pub fn create(name: &str, capacity: usize) -> Result<Blackboard> {
        Self::create_with(name, capacity, &Options::default())
    }

    /// [`Blackboard::create`] with options.
    pub fn create_with(name: &str, capacity: usize, opts: &Options) -> Result<Blackboard> {
        let spec = board_spec(capacity, 0);
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
        let spec = board_spec(capacity, 0);
        let seg = Segment::create_or_open_kind(opts.name(name)?, Kind::Blackboard, spec, opts)?;
        Ok(Blackboard::from_segment(seg, opts))
    }

    fn from_segment(seg: Segment, opts: &Options) -> Blackboard {
        Blackboard {
            core: Arc::new(Core::new(seg, opts)),
        }
    }

    fn what(&self) -> String {
        self.name().describe()
    }

    /// The blackboard's name.
    pub fn name(&self) -> &crate::Name {
        self.core.seg.name()
    }

    /// The largest value it holds, in bytes.
    pub fn capacity(&self) -> usize {
        self.core.capacity
    }

    /// Replaces the value; returns its version (1 for the first write). Fails with
    /// [`Error::TooLarge`](crate::Error::TooLarge) when `data` exceeds the capacity,
    /// [`Error::Busy`](crate::Error::Busy) when another live writer holds the board for more
    /// than a second.
    pub fn write(&self, data: &[u8]) -> Result<u64> {
        self.core.write(0, data, || self.what())
    }

    /// The current value and its version (version 0 and no bytes before the first write).
    pub fn read(&self) -> Result<(u64, Vec<u8>)> {
        let mut buf = vec![0; self.core.capacity];
        let (version, len) = self.read_into(&mut buf)?;
        buf.truncate(len);
        Ok((version, buf))
    }

    /// Copies the current value into `buf`; returns `(version, length)`. A `buf` of
    /// [`capacity`](Self::capacity) bytes always suffices; a smaller one gives
    /// [`Error::BufferTooSmall`](crate::Error::BufferTooSmall) when the value does not fit.
    pub fn read_into(&self, buf: &mut [u8]) -> Result<(u64, usize)> {
        self.core.read_into(0, buf, || self.what())
    }

    /// The version of the current value (0 before the first write). Never waits: a write
    /// in progress becomes visible only once it is complete.
    pub fn version(&self) -> u64 {
        self.core.latch(0).version()
    }

    /// What a `WaitSet` keeps of the board.
    pub(crate) fn waitable(&self) -> core::BoardWaitable {
        core::BoardWaitable::new(self.core.clone(), 0)
    }

    /// Waits until the version is newer than `version`; returns the new version, or `None`
    /// when `timeout` passes first (`None` waits forever). Spins briefly, then sleeps on a
    /// futex: a writer wakes it, and pays no syscall when nobody sleeps.
    pub fn wait_newer(&self, version: u64, timeout: Option<Duration>) -> Result<Option<u64>> {
        Ok(self.core.wait_newer(0, version, timeout))
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
    pub fn on_update_from<F>(&self, version: u64, handler: F) -> Result<HandlerGuard>
    where
        F: FnMut(Update<'_>) + Send + 'static,
    {
        core::on_update_from(self.core.clone(), 0, version, self.what(), handler)
    }
}

/// The shape of a new board of `capacity` bytes with `keys` keys (0: a plain board).
fn board_spec(capacity: usize, keys: u32) -> Spec {
    Spec {
        flags: BOARD_COPIES,
        max_slots: keys,
        ..Spec::capacity(capacity as u64)
    }
}

/// One board's live state, for `info`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BoardState {
    pub version: u64,
    pub len: u64,
    pub writer: u32,
    pub waiters: u32,
    pub copies: u32,
    /// A write in progress (or a dead writer's unfinished one).
    pub writing: bool,
}

/// Live state for `info` of board `index` of a plain or keyed board.
pub(crate) fn board_state(seg: &Segment, index: usize) -> BoardState {
    let shape = core::Shape::of(seg);
    let latch = shape.latch(seg, index);
    let (latest, writing, writer, len) = latch.raw();
    BoardState {
        version: latest,
        len: u64::from(len),
        writer,
        waiters: latch.waiters(),
        copies: shape.copies,
        writing: writing != latest,
    }
}
