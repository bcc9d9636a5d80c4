//! The floors shmbus is measured against: what two processes can do with bare shared memory
//! (two atomics spinning, a raw futex ping-pong, a memcpy SPSC ring), with no library.
//!
//! These deliberately skip what shmbus does for safety (validation of shared data, atomic
//! copies, liveness): they are the lower bound of the hardware and kernel, not alternatives.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};

use rustix::fs::Mode;
use rustix::mm::{MapFlags, ProtFlags};
use rustix::shm;
use rustix::thread::futex;

/// A bare shared mapping, unlinked by whoever created it.
pub(crate) struct RawShm {
    ptr: *mut u8,
    len: usize,
    name: String,
    owner: bool,
}

impl RawShm {
    /// Creates (`create`) or opens the object `name` of `len` bytes and maps it.
    pub(crate) fn new(name: &str, len: usize, create: bool) -> anyhow::Result<RawShm> {
        let flags = if create {
            shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR
        } else {
            shm::OFlags::RDWR
        };
        let fd = shm::open(name, flags, Mode::from_raw_mode(0o600))?;
        if create {
            rustix::fs::ftruncate(&fd, len as u64)?;
        }
        // SAFETY: a fresh shared mapping of an object of `len` bytes; we only access it
        // through atomics and through the SPSC protocol below.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &fd,
                0,
            )?
        };
        Ok(RawShm {
            ptr: ptr.cast(),
            len,
            name: name.to_owned(),
            owner: create,
        })
    }

    fn u64_at(&self, offset: usize) -> &AtomicU64 {
        assert!(offset + 8 <= self.len && offset.is_multiple_of(8));
        // SAFETY: in bounds and aligned (asserted); the mapping lives as long as `self`.
        unsafe { &*self.ptr.add(offset).cast::<AtomicU64>() }
    }

    fn u32_at(&self, offset: usize) -> &AtomicU32 {
        assert!(offset + 4 <= self.len && offset.is_multiple_of(4));
        // SAFETY: in bounds and aligned (asserted); the mapping lives as long as `self`.
        unsafe { &*self.ptr.add(offset).cast::<AtomicU32>() }
    }
}

impl Drop for RawShm {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping made in `new`; no reference into it outlives `self`.
        let _ = unsafe { rustix::mm::munmap(self.ptr.cast(), self.len) };
        if self.owner {
            let _ = shm::unlink(self.name.as_str());
        }
    }
}

/// Two atomics on separate cache lines: one side stores, the other spins on it.
pub(crate) struct AtomicPingPong(pub RawShm);

impl AtomicPingPong {
    pub(crate) const LEN: usize = 4096;

    /// Sends `i` on line `side` (0 or 1).
    pub(crate) fn send(&self, side: usize, i: u64) {
        self.0.u64_at(side * 128).store(i, Release);
    }

    /// Spins until line `side` holds `i`.
    pub(crate) fn wait(&self, side: usize, i: u64) {
        let word = self.0.u64_at(side * 128);
        while word.load(Acquire) != i {
            std::hint::spin_loop();
        }
    }
}

/// Two futex words: store, wake; wait until the other side's word changes. No spinning:
/// every round trip is two sleeps and two wakes, the floor of a blocking wait.
pub(crate) struct FutexPingPong(pub RawShm);

impl FutexPingPong {
    pub(crate) const LEN: usize = 4096;

    pub(crate) fn send(&self, side: usize, i: u32) {
        let word = self.0.u32_at(side * 128);
        word.store(i, Release);
        let _ = futex::wake(word, futex::Flags::empty(), 1);
    }

    pub(crate) fn wait(&self, side: usize, i: u32) {
        let word = self.0.u32_at(side * 128);
        loop {
            let now = word.load(Acquire);
            if now == i {
                return;
            }
            let _ = futex::wait(word, futex::Flags::empty(), now, None);
        }
    }
}

/// A single-producer single-consumer ring of `slots` fixed-size slots, copied in and out
/// with plain `memcpy`: the floor for copying messages through shared memory.
pub(crate) struct MemcpyRing {
    shm: RawShm,
    slot: usize,
    slots: u64,
}

impl MemcpyRing {
    const DATA: usize = 256;

    pub(crate) fn len(slot: usize, slots: u64) -> usize {
        Self::DATA + slot * slots as usize
    }

    pub(crate) fn new(shm: RawShm, slot: usize, slots: u64) -> MemcpyRing {
        MemcpyRing { shm, slot, slots }
    }

    fn slot_ptr(&self, i: u64) -> *mut u8 {
        let offset = Self::DATA + (i % self.slots) as usize * self.slot;
        assert!(offset + self.slot <= self.shm.len);
        // SAFETY: in bounds (asserted).
        unsafe { self.shm.ptr.add(offset) }
    }

    pub(crate) fn push(&self, msg: &[u8]) {
        let (head, tail) = (self.shm.u64_at(0), self.shm.u64_at(128));
        let h = head.load(Relaxed);
        while h - tail.load(Acquire) >= self.slots {
            std::hint::spin_loop();
        }
        assert!(msg.len() <= self.slot);
        // SAFETY: the slot is ours until `head` moves past it (SPSC protocol), in bounds.
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), self.slot_ptr(h), msg.len()) };
        head.store(h + 1, Release);
    }

    pub(crate) fn pop(&self, out: &mut [u8]) {
        let (head, tail) = (self.shm.u64_at(0), self.shm.u64_at(128));
        let t = tail.load(Relaxed);
        while head.load(Acquire) == t {
            std::hint::spin_loop();
        }
        assert!(out.len() <= self.slot);
        // SAFETY: the slot is ours until `tail` moves past it (SPSC protocol), in bounds.
        unsafe { std::ptr::copy_nonoverlapping(self.slot_ptr(t), out.as_mut_ptr(), out.len()) };
        tail.store(t + 1, Release);
    }
}
