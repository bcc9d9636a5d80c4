//! What plain and keyed blackboards share: the mapped object, this handle's writer slot,
//! one board's latch at an offset in the object, writes and reads with their errors, and
//! the update handler thread.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::objects::handler::{call_handler, HandlerGuard, HandlerStats, Update};
use crate::os::wait::Deadline;
use crate::protocol::latch::{BoardControl, Latch, ReadError, WriteError};
use crate::protocol::layout::{board_stride, copies_start, key_table_size};
use crate::segment::header::HEADER_SIZE;
use crate::segment::liveness::{claim_slot, slot_alive, WRITER_SLOTS, WRITER_SLOTS_BASE};
use crate::segment::options::Options;
use crate::segment::region::Region;
use crate::segment::Segment;
use crate::sync::AtomicU64;

/// How long `write` waits for another live writer before it reports [`Error::Busy`].
const WRITE_PATIENCE: Duration = Duration::from_secs(1);

/// Where the words of board `index` of an object are. A plain board is one board and no
/// key table (`keys == 0`); a keyed one has `keys` boards after a table of `keys` entries.
/// Then come every board's control block, then every board's copies, from the next page
/// for values above 2 KiB (LAYOUT.md, section 6).
/// The regions are worked out and checked against the mapping once, when the object is
/// opened, so that finding a board's latch on every read and write costs a multiplication
/// and two comparisons.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    pub keys: usize,
    pub capacity: usize,
    pub copies: u32,
    /// 8-byte words from one copy to the next.
    stride_words: usize,
    /// Every board's control block.
    controls: Region<BoardControl>,
    /// Every board's copies, board after board.
    data: Region<AtomicU64>,
}

impl Shape {
    /// The shape a validated header describes (`max_slots`: the keys of a keyed board).
    pub(crate) fn of(seg: &Segment) -> Shape {
        let f = seg.header().fields;
        let keys = if seg.header().kind == crate::kind::Kind::KeyedBlackboard {
            f.max_slots as usize
        } else {
            0
        };
        let capacity = f.capacity as usize;
        let copies = f.kind_flags();
        let stride_words = (board_stride(capacity as u64) / 8) as usize;
        let boards = keys.max(1);
        let controls = HEADER_SIZE + key_table_size(keys as u64) as usize;
        let controls_end = controls + boards * std::mem::size_of::<BoardControl>();
        let data = copies_start(controls_end as u64, capacity as u64) as usize;
        Shape {
            keys,
            capacity,
            copies,
            stride_words,
            controls: seg.region(controls, boards),
            data: seg.region(data, boards * stride_words * copies as usize),
        }
    }

    /// How many boards: one per key, or the one of a plain board.
    pub(crate) fn boards(&self) -> usize {
        self.keys.max(1)
    }

    /// The latch of board `index` (< `boards()`) of a validated object.
    #[inline]
    pub(crate) fn latch<'a>(&self, seg: &'a Segment, index: usize) -> Latch<'a> {
        let words = self.stride_words * self.copies as usize;
        Latch::new(
            &seg.get(self.controls)[index],
            &seg.get(self.data)[index * words..(index + 1) * words],
            self.capacity,
            self.copies,
            self.stride_words,
        )
    }
}

/// A mapped blackboard object, plain or keyed.
#[derive(Debug)]
pub(super) struct Core {
    pub(super) seg: Segment,
    pub(super) shape: Shape,
    pub(super) capacity: usize,
    spin: Duration,
    /// This handle's writer slot, claimed on first write (one slot serves every key).
    slot: OnceLock<u32>,
}

impl Core {
    /// Wraps a validated segment: capacity ≤ MAX_BOARD_CAPACITY, copies in 2..=8 and a
    /// size that covers every board, all checked at open.
    pub(super) fn new(seg: Segment, opts: &Options) -> Core {
        let shape = Shape::of(&seg);
        Core {
            seg,
            shape,
            capacity: shape.capacity,
            spin: opts.spin,
            slot: OnceLock::new(),
        }
    }

    /// The latch of board `index`.
    #[inline]
    pub(super) fn latch(&self, index: usize) -> Latch<'_> {
        self.shape.latch(&self.seg, index)
    }

    pub(super) fn write(
        &self,
        index: usize,
        data: &[u8],
        what: impl Fn() -> String,
    ) -> Result<u64> {
        if data.len() > self.capacity {
            return Err(Error::TooLarge {
                name: what(),
                len: data.len(),
                capacity: self.capacity,
            });
        }
        self.seg
            .check_here(|| format!("the writer of {}", what()))?;
        let me = self.writer_slot()?;
        let alive = |slot| self.alive(slot);
        self.latch(index)
            .write(data, me, WRITE_PATIENCE, &alive)
            .map_err(|WriteError::Busy(waited)| Error::Busy {
                name: what(),
                waited,
            })
    }

    #[inline]
    pub(super) fn read_into(
        &self,
        index: usize,
        buf: &mut [u8],
        what: impl Fn() -> String,
    ) -> Result<(u64, usize)> {
        // One attempt inline; anything else (lapped, an error) goes the slow way, which
        // reads again from the start: the fast path keeps nothing alive for it.
        match self.latch(index).attempt(buf) {
            Some(Ok(got)) => Ok(got),
            _ => self.read_slow(index, buf, &what),
        }
    }

    /// A read with its retries and errors, out of line.
    #[cold]
    #[inline(never)]
    fn read_slow(
        &self,
        index: usize,
        buf: &mut [u8],
        what: &dyn Fn() -> String,
    ) -> Result<(u64, usize)> {
        let buf_len = buf.len();
        self.latch(index)
            .read_into(buf)
            .map_err(|e| self.read_error(e, what(), buf_len))
    }

    /// The error of a failed read (out of line: the read path stays small).
    #[cold]
    fn read_error(&self, e: ReadError, name: String, buf_len: usize) -> Error {
        match e {
            ReadError::Busy(waited) => Error::Busy { name, waited },
            ReadError::Corrupt(len) => Error::Corrupt {
                name,
                reason: format!("value length {len} exceeds the capacity {}", self.capacity),
            },
            ReadError::BufferTooSmall(needed) => Error::BufferTooSmall {
                name,
                needed,
                len: buf_len,
            },
        }
    }

    pub(super) fn wait_newer(
        &self,
        index: usize,
        version: u64,
        timeout: Option<Duration>,
    ) -> Option<u64> {
        self.latch(index)
            .wait_newer(version, self.spin, Deadline::after(timeout), None)
    }

    /// This handle's writer slot, claimed on first use.
    fn writer_slot(&self) -> Result<u32> {
        if let Some(&slot) = self.slot.get() {
            return Ok(slot);
        }
        let slot =
            claim_slot(&self.seg, WRITER_SLOTS_BASE, WRITER_SLOTS)?.ok_or_else(|| Error::Busy {
                name: self.seg.name().describe(),
                waited: Duration::ZERO,
            })?;
        self.release_stale(slot);
        // Two threads may race here; both hold locks through the same description, and the
        // loser's byte stays locked until this handle closes: harmless.
        Ok(*self.slot.get_or_init(|| slot))
    }

    /// Releases every board's write lock that still names `slot`: its previous owner died
    /// holding it (we could not have claimed a live owner's slot).
    fn release_stale(&self, slot: u32) {
        for index in 0..self.shape.boards() {
            self.latch(index).release_stale(slot);
        }
    }

    /// Our own slot is alive by definition (the kernel would not report our own lock).
    fn alive(&self, slot: u32) -> bool {
        self.slot.get() == Some(&slot) || slot_alive(&self.seg, WRITER_SLOTS_BASE, slot)
    }
}

/// Runs `handler` on a background thread for each version of board `index` after
/// `version`; `what` names the board in errors and the thread.
pub(super) fn on_update_from<F>(
    core: Arc<Core>,
    index: usize,
    version: u64,
    what: String,
    mut handler: F,
) -> Result<HandlerGuard>
where
    F: FnMut(Update<'_>) + Send + 'static,
{
    let waker = core.clone();
    let thread_name = what.clone();
    HandlerGuard::spawn(
        what,
        Box::new(move || waker.latch(index).wake_all()),
        move |stopper| {
            let mut stats = HandlerStats::default();
            let mut last = version;
            let mut buf = vec![0; core.capacity];
            let latch = core.latch(index);
            while latch
                .wait_newer(last, core.spin, Deadline::after(None), Some(stopper))
                .is_some()
            {
                let (v, len) = match core.read_into(index, &mut buf, || thread_name.clone()) {
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

/// One board attached to a `WaitSet`: ready once per new version (the first one newer than
/// the version when it was attached, then each one newer than the last reported).
#[derive(Debug)]
pub(crate) struct BoardWaitable {
    core: Arc<Core>,
    index: usize,
    seen: u64,
}

impl BoardWaitable {
    pub(super) fn new(core: Arc<Core>, index: usize) -> BoardWaitable {
        let seen = core.latch(index).version();
        BoardWaitable { core, index, seen }
    }

    /// The word `wait_newer` sleeps on and the count of sleepers it joins.
    pub(crate) fn sleep_words(&self) -> (&crate::sync::AtomicU32, &crate::sync::AtomicU32) {
        self.core.latch(self.index).sleep_words()
    }

    /// Whether a version newer than the last reported one exists (it is then reported).
    pub(crate) fn ready(&mut self) -> bool {
        let v = self.core.latch(self.index).version();
        if v > self.seen {
            self.seen = v;
            true
        } else {
            false
        }
    }
}
