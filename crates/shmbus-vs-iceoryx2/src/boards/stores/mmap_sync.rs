//! Cloudflare's `mmap-sync`: a state file and two data files per board, in /dev/shm.
//!
//! The value is a `[u64; N]`, whose rkyv archive is its own bytes, so the writer hands
//! them to `write_raw` (no serialisation step; shmbus is handed bytes too). Reads use
//! `read(check_bytes = false)` and copy the archived words out of the mapping while the
//! read guard is held. The writer waits, before reusing a data file, until no reader holds
//! it; `mmap-sync`'s default is to sleep 1 s between checks, here the `SD` const parameter
//! is 0 so it spins instead (`thread::sleep(ZERO)` makes no system call).

use std::path::PathBuf;
use std::time::Duration;

use mmap_sync::locks::LockDisabled;
use mmap_sync::synchronizer::Synchronizer;
use wyhash::WyHash;

use super::{as_bytes, Board, BoardReader, BoardWriter, Place};

/// `mmap-sync`'s defaults, except the writer's sleep between reader checks (0 ns: spin).
type Sync = Synchronizer<WyHash, LockDisabled, 1024, 0>;

/// How long the writer waits for readers of the copy it is about to overwrite before it
/// resets their count and overwrites it anyway (the crate's examples use 1 s).
const GRACE: Duration = Duration::from_secs(1);

/// The `mmap-sync` store for values of `N` words.
pub struct MmapSyncBoard<const N: usize>;

/// The writer; removes the board's three files when dropped.
pub struct MmapSyncWriter<const N: usize> {
    sync: Sync,
    prefix: PathBuf,
}

/// A reader and its private copy of the value.
pub struct MmapSyncReader<const N: usize> {
    sync: Sync,
    buf: [u64; N],
}

impl<const N: usize> Board for MmapSyncBoard<N> {
    type Writer = MmapSyncWriter<N>;
    type Reader = MmapSyncReader<N>;

    fn create(place: &Place, words: usize) -> anyhow::Result<MmapSyncWriter<N>> {
        anyhow::ensure!(words == N, "mmap-sync board of {N} words asked for {words}");
        let prefix = place.shm_path("mmapsync");
        let mut writer = MmapSyncWriter {
            sync: Sync::with_params(prefix.as_os_str()),
            prefix,
        };
        writer.write(&[0; N])?;
        Ok(writer)
    }

    fn open(place: &Place, words: usize) -> anyhow::Result<MmapSyncReader<N>> {
        anyhow::ensure!(words == N, "mmap-sync board of {N} words asked for {words}");
        Ok(MmapSyncReader {
            sync: Sync::with_params(place.shm_path("mmapsync").as_os_str()),
            buf: [0; N],
        })
    }
}

impl<const N: usize> BoardWriter for MmapSyncWriter<N> {
    fn write(&mut self, value: &[u64]) -> anyhow::Result<()> {
        anyhow::ensure!(
            value.len() == N,
            "value of {} words, board of {N}",
            value.len()
        );
        self.sync.write_raw::<[u64; N]>(as_bytes(value), GRACE)?;
        Ok(())
    }
}

impl<const N: usize> Drop for MmapSyncWriter<N> {
    fn drop(&mut self) {
        for suffix in ["_state", "_data_0", "_data_1"] {
            let mut path = self.prefix.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

impl<const N: usize> BoardReader for MmapSyncReader<N> {
    fn read<T>(&mut self, look: impl FnOnce(&[u64]) -> T) -> anyhow::Result<T> {
        // SAFETY: the data files hold archives of `[u64; N]` written by `MmapSyncWriter`
        // (its bytes are the archive); `read` without validation requires exactly that.
        let guard = unsafe { self.sync.read::<[u64; N]>(false) }?;
        self.buf.copy_from_slice(&guard[..]);
        drop(guard);
        Ok(look(&self.buf))
    }
}
