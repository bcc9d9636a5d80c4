//! The floors: the least a shared-memory board can do, on one file in /dev/shm that both
//! processes map.
//!
//! The file holds a sequence word (or an index) in its first cache line and the value, or
//! its copies, from byte 64 on.
//! - [`SeqlockBoard`]: the writer makes the sequence odd, copies the value in, makes it even
//!   again; a reader copies the value out between two loads of the sequence and retries
//!   while it was odd or changed. A reader never writes shared memory; a writer never waits.
//! - [`LatchBoard`]: a bare latch with [`LATCH_COPIES`] copies, the design class of shmbus's
//!   board and iceoryx2's: the writer fills the copy after the newest and publishes its
//!   version in the index word; a reader loads the index, copies that copy out and loads
//!   the index again, retrying only when the writer published `copies - 1` newer versions
//!   meanwhile. Nothing else: no lengths, no lock, no checks, no waking. The reader's copy
//!   address depends on the index it just loaded (two dependent transfers per update seen,
//!   where the seqlock's fixed address lets the CPU overlap them).
//! - [`PlainBoard`]: the value is copied in and out with no synchronisation at all: the upper
//!   bound for a reader alone (and, under a writer, a check that the torn-value count works).
//!
//! Copies are `memcpy` of the mapping. The other process changes those bytes while they are
//! copied; Rust's memory model has no word for a race with another process, and the copy is
//! of plain integers, so a racy copy yields some mix of bytes, which the seqlock discards and
//! the plain copy reports as torn.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU64, Ordering};

use anyhow::ensure;
use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};

use super::{Board, BoardReader, BoardWriter, Place};

/// Byte offset of the value in the file (the sequence word has the cache line before it).
const VALUE_OFFSET: usize = 64;
/// Copies of the latch floor (as shmbus's default).
pub const LATCH_COPIES: usize = 4;

/// A file in /dev/shm, mapped shared; the creator unlinks it when dropped.
struct SharedFile {
    base: NonNull<u8>,
    len: usize,
    words: usize,
    /// Bytes from one copy of the value to the next: whole cache lines.
    stride: usize,
    /// `Some` for the creator, which unlinks the file.
    owned: Option<PathBuf>,
}

impl SharedFile {
    /// The file's length for `copies` copies of a value of `words` words.
    fn len(words: usize, copies: usize) -> usize {
        VALUE_OFFSET + copies * (words * 8).div_ceil(64) * 64
    }

    /// Creates (exclusively) and maps a zeroed file for `copies` copies of a value of
    /// `words` words.
    fn create(path: PathBuf, words: usize, copies: usize) -> anyhow::Result<SharedFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        let len = SharedFile::len(words, copies);
        file.set_len(len as u64)?;
        let mut map = SharedFile::map(&file, len, words)?;
        map.owned = Some(path);
        Ok(map)
    }

    /// Maps the file another process created.
    fn open(path: PathBuf, words: usize, copies: usize) -> anyhow::Result<SharedFile> {
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let len = SharedFile::len(words, copies);
        ensure!(file.metadata()?.len() == len as u64, "{path:?}: wrong size");
        SharedFile::map(&file, len, words)
    }

    fn map(file: &std::fs::File, len: usize, words: usize) -> anyhow::Result<SharedFile> {
        // SAFETY: a fresh shared mapping of `len` bytes of an open file at an address the
        // kernel chooses; it aliases no Rust object, and the file is exactly `len` long.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                file,
                0,
            )?
        };
        let base = NonNull::new(ptr.cast::<u8>()).expect("mmap returned a non-null address");
        Ok(SharedFile {
            base,
            len,
            words,
            stride: (words * 8).div_ceil(64) * 64,
            owned: None,
        })
    }

    /// The sequence word.
    fn seq(&self) -> &AtomicU64 {
        // SAFETY: the mapping starts page-aligned with 8 bytes that are only ever accessed
        // atomically, by both processes, and lives as long as `self`.
        unsafe { self.base.cast::<AtomicU64>().as_ref() }
    }

    /// The first word of copy `c` of the value.
    fn value(&self, c: usize) -> *mut u64 {
        assert!(VALUE_OFFSET + (c + 1) * self.stride <= self.len);
        // SAFETY: checked just above: copy `c`, `words * 8 <= stride` bytes, lies inside
        // the mapping.
        unsafe {
            self.base
                .as_ptr()
                .add(VALUE_OFFSET + c * self.stride)
                .cast()
        }
    }

    /// Copies `src` (exactly `words` words) into copy `c` of the mapped value.
    fn copy_in(&self, c: usize, src: &[u64]) {
        assert_eq!(src.len(), self.words);
        // SAFETY: the destination is the mapped value, `words` words long and 8-aligned; the
        // source is a distinct local slice of the same length. Only this process writes the
        // value; a concurrent reader in the other process is tolerated as described in the
        // module doc.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.value(c), self.words) }
    }

    /// Copies copy `c` of the mapped value into `dst` (exactly `words` words).
    fn copy_out(&self, c: usize, dst: &mut [u64]) {
        assert_eq!(dst.len(), self.words);
        // SAFETY: as `copy_in`, the other way: the destination is a local slice, every bit
        // pattern of the racy source bytes is a valid u64.
        unsafe { std::ptr::copy_nonoverlapping(self.value(c), dst.as_mut_ptr(), self.words) }
    }
}

impl Drop for SharedFile {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are the mapping made in `map`; nothing borrowed from it
        // outlives `self`.
        let _ = unsafe { munmap(self.base.as_ptr().cast(), self.len) };
        if let Some(path) = &self.owned {
            let _ = std::fs::remove_file(path);
        }
    }
}

// SAFETY: the mapping is plain shared memory owned by this handle; moving the handle to
// another thread moves that ownership.
unsafe impl Send for SharedFile {}

/// The seqlock floor.
pub struct SeqlockBoard;

/// Seqlock writer (creator of the file).
pub struct SeqlockWriter {
    map: SharedFile,
}

/// Seqlock reader, with its private copy.
pub struct SeqlockReader {
    map: SharedFile,
    buf: Vec<u64>,
}

impl Board for SeqlockBoard {
    type Writer = SeqlockWriter;
    type Reader = SeqlockReader;

    fn create(place: &Place, words: usize) -> anyhow::Result<SeqlockWriter> {
        let map = SharedFile::create(place.shm_path("seqlock"), words, 1)?;
        Ok(SeqlockWriter { map })
    }

    fn open(place: &Place, words: usize) -> anyhow::Result<SeqlockReader> {
        let map = SharedFile::open(place.shm_path("seqlock"), words, 1)?;
        Ok(SeqlockReader {
            map,
            buf: vec![0; words],
        })
    }
}

impl BoardWriter for SeqlockWriter {
    fn write(&mut self, value: &[u64]) -> anyhow::Result<()> {
        let seq = self.map.seq();
        let s = seq.load(Ordering::Relaxed);
        seq.store(s.wrapping_add(1), Ordering::Relaxed);
        // The odd sequence becomes visible before any byte of the value changes.
        fence(Ordering::Release);
        self.map.copy_in(0, value);
        seq.store(s.wrapping_add(2), Ordering::Release);
        Ok(())
    }
}

impl BoardReader for SeqlockReader {
    fn read<T>(&mut self, look: impl FnOnce(&[u64]) -> T) -> anyhow::Result<T> {
        let seq = self.map.seq();
        loop {
            let before = seq.load(Ordering::Acquire);
            if before & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            self.map.copy_out(0, &mut self.buf);
            // The copy's loads complete before the sequence is loaded again.
            fence(Ordering::Acquire);
            if seq.load(Ordering::Relaxed) == before {
                return Ok(look(&self.buf));
            }
        }
    }
}

/// The latch floor.
pub struct LatchBoard;

/// Latch writer (creator of the file); the only writer, so it keeps the version itself.
pub struct LatchWriter {
    map: SharedFile,
    version: u64,
}

/// Latch reader, with its private copy.
pub struct LatchReader {
    map: SharedFile,
    buf: Vec<u64>,
}

impl Board for LatchBoard {
    type Writer = LatchWriter;
    type Reader = LatchReader;

    fn create(place: &Place, words: usize) -> anyhow::Result<LatchWriter> {
        let map = SharedFile::create(place.shm_path("latch"), words, LATCH_COPIES)?;
        Ok(LatchWriter { map, version: 0 })
    }

    fn open(place: &Place, words: usize) -> anyhow::Result<LatchReader> {
        let map = SharedFile::open(place.shm_path("latch"), words, LATCH_COPIES)?;
        Ok(LatchReader {
            map,
            buf: vec![0; words],
        })
    }
}

impl BoardWriter for LatchWriter {
    fn write(&mut self, value: &[u64]) -> anyhow::Result<()> {
        self.version = self.version.wrapping_add(1);
        // Readers are directed to copy `version - 1`; this one was last published
        // `LATCH_COPIES` versions ago.
        self.map
            .copy_in(self.version as usize % LATCH_COPIES, value);
        self.map.seq().store(self.version, Ordering::Release);
        Ok(())
    }
}

impl BoardReader for LatchReader {
    fn read<T>(&mut self, look: impl FnOnce(&[u64]) -> T) -> anyhow::Result<T> {
        let index = self.map.seq();
        loop {
            let v = index.load(Ordering::Acquire);
            self.map.copy_out(v as usize % LATCH_COPIES, &mut self.buf);
            // The copy's loads complete before the index is loaded again.
            fence(Ordering::Acquire);
            // Whole unless the writer has started on this copy again, which it does only
            // after publishing `v + copies - 1`.
            if index.load(Ordering::Relaxed).wrapping_sub(v) < LATCH_COPIES as u64 - 1 {
                return Ok(look(&self.buf));
            }
        }
    }
}

/// The plain-copy floor.
pub struct PlainBoard;

/// Plain writer (creator of the file).
pub struct PlainWriter {
    map: SharedFile,
}

/// Plain reader, with its private copy.
pub struct PlainReader {
    map: SharedFile,
    buf: Vec<u64>,
}

impl Board for PlainBoard {
    type Writer = PlainWriter;
    type Reader = PlainReader;

    fn create(place: &Place, words: usize) -> anyhow::Result<PlainWriter> {
        let map = SharedFile::create(place.shm_path("plain"), words, 1)?;
        Ok(PlainWriter { map })
    }

    fn open(place: &Place, words: usize) -> anyhow::Result<PlainReader> {
        let map = SharedFile::open(place.shm_path("plain"), words, 1)?;
        Ok(PlainReader {
            map,
            buf: vec![0; words],
        })
    }
}

impl BoardWriter for PlainWriter {
    fn write(&mut self, value: &[u64]) -> anyhow::Result<()> {
        self.map.copy_in(0, value);
        Ok(())
    }
}

impl BoardReader for PlainReader {
    fn read<T>(&mut self, look: impl FnOnce(&[u64]) -> T) -> anyhow::Result<T> {
        self.map.copy_out(0, &mut self.buf);
        Ok(look(&self.buf))
    }
}
