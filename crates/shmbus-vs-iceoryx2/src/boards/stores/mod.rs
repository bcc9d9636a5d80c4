//! The stores under test, behind one small interface.
//!
//! A board holds one value of `words` u64 words (8 for 64 B, 512 for 4 KiB). The process
//! that writes a board creates it (holding zeros) and removes it when its handle drops; the
//! process that reads it opens it once the writer said it is ready. A read puts the whole
//! value in memory private to the reader and lets the caller look at it there: shmbus and
//! the floors copy into the reader's buffer, iceoryx2's `get` returns a copy on the stack,
//! and `mmap-sync`'s zero-copy view is copied out while its read guard is held. So every
//! store ends a read with a value the reader can keep.

pub mod floor;
pub mod iceoryx2;
pub mod mmap_sync;
pub mod shmbus;

use anyhow::bail;

/// Where a board lives: the run's tag (unique per row attempt) and the board's name
/// (`x`: parent to peer, `y`: peer to parent).
#[derive(Clone, Debug)]
pub struct Place {
    /// Unique per row attempt: keeps the objects of different attempts apart.
    pub tag: String,
    /// `x` or `y`.
    pub board: &'static str,
}

impl Place {
    /// A path in /dev/shm for stores that name their own files.
    pub fn shm_path(&self, store: &str) -> std::path::PathBuf {
        format!("/dev/shm/shmbus-vs-{}-{}-{store}", self.tag, self.board).into()
    }
}

/// One kind of store: how to create a board (its writing end) and open it (its reading end).
pub trait Board {
    /// The writing end; it created the board and removes it when dropped.
    type Writer: BoardWriter;
    /// The reading end.
    type Reader: BoardReader;
    /// Creates the board holding `words` zero words.
    fn create(place: &Place, words: usize) -> anyhow::Result<Self::Writer>;
    /// Opens a board that [`Board::create`] made (in another process).
    fn open(place: &Place, words: usize) -> anyhow::Result<Self::Reader>;
}

/// Writes whole values.
pub trait BoardWriter {
    /// Replaces the value with `value` (exactly the board's `words` words).
    fn write(&mut self, value: &[u64]) -> anyhow::Result<()>;
}

/// Reads whole values.
pub trait BoardReader {
    /// Reads the current value into memory private to this reader and returns what `look`
    /// makes of it.
    fn read<T>(&mut self, look: impl FnOnce(&[u64]) -> T) -> anyhow::Result<T>;
    /// Waits until the value is newer than the last one read. Only shmbus waits; the
    /// default returns at once (busy polling).
    fn wait(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// The stores compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// `shmbus::Blackboard`.
    Shmbus,
    /// iceoryx2 0.10 blackboard service, one key.
    Iceoryx2,
    /// Cloudflare's `mmap-sync` `Synchronizer`.
    MmapSync,
    /// Floor: one sequence word and the value, in a shared mapping.
    Seqlock,
    /// Floor: an index word and four copies of the value, a bare latch.
    Latch,
    /// Floor: the value in a shared mapping, copied with no synchronisation at all.
    PlainCopy,
}

impl StoreKind {
    /// Every store, in table order.
    pub const ALL: [StoreKind; 6] = [
        StoreKind::Shmbus,
        StoreKind::Iceoryx2,
        StoreKind::MmapSync,
        StoreKind::Seqlock,
        StoreKind::Latch,
        StoreKind::PlainCopy,
    ];

    /// The name shown in the table and JSON, and passed to the peer.
    pub fn label(self) -> &'static str {
        match self {
            StoreKind::Shmbus => "shmbus",
            StoreKind::Iceoryx2 => "iceoryx2",
            StoreKind::MmapSync => "mmap-sync",
            StoreKind::Seqlock => "floor:seqlock",
            StoreKind::Latch => "floor:latch",
            StoreKind::PlainCopy => "floor:plain-copy",
        }
    }

    /// The inverse of [`StoreKind::label`].
    pub fn parse(s: &str) -> anyhow::Result<StoreKind> {
        match StoreKind::ALL.into_iter().find(|k| k.label() == s) {
            Some(k) => Ok(k),
            None => bail!("unknown store {s}"),
        }
    }
}

/// The bytes of `words`.
pub fn as_bytes(words: &[u64]) -> &[u8] {
    // SAFETY: the pointer and length cover exactly the memory of `words`, which stays
    // borrowed for the returned lifetime; u8 has alignment 1 and every u64 byte is
    // initialised.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast(), size_of_val(words)) }
}

/// The bytes of `words`, writable.
pub fn as_bytes_mut(words: &mut [u64]) -> &mut [u8] {
    // SAFETY: as in `as_bytes`, and the exclusive borrow of `words` makes this the only
    // access; any byte pattern is a valid u64.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast(), size_of_val(words)) }
}
