//! Copies between private buffers and memory that other processes may write concurrently.
//!
//! A plain `memcpy` from such memory is a data race, which Rust treats as undefined behaviour
//! even when the result is thrown away (as a blackboard reader does after a failed check).
//! These copies are the "byte-wise atomic memcpy" of the C++ proposal P1478 (which the
//! `atomic-memcpy` crate also implements), done word by word because our regions are slices
//! of `AtomicU64` already:
//!
//! - below [`BULK`] bytes, and under loom, miri or on other CPUs: a loop of relaxed atomic
//!   loads or stores, 8 bytes each (an ordinary `mov` on x86-64);
//! - from [`BULK`] bytes on x86-64: one `rep movsq`, the CPU's string move of 8-byte
//!   elements, in inline assembly. Each element it moves is an aligned 8-byte access, which
//!   x86-64 performs as one single-copy-atomic access, so the instruction does exactly what
//!   the loop of relaxed `AtomicU64` accesses does (a Rust-expressible operation, which is
//!   what the language asks of an `asm!` block), at `memcpy` speed on CPUs with fast string
//!   moves (ERMS/FSRM): a 4 KiB copy costs about a fifth of the loop's time.
//!
//! The bytes after a value's end in its last word are written as zeros, on either path.

use crate::sync::{AtomicU64, AtomicU8, Ordering::Relaxed};

/// Copies of at least this many bytes go through the CPU's string move (see the module docs).
pub(crate) const BULK: usize = 256;

/// Copies the first `dst.len()` bytes of the words `src` into `dst`.
///
/// Panics if `src` holds fewer than `dst.len()` bytes (callers check lengths first).
pub(crate) fn load_bytes(src: &[AtomicU64], dst: &mut [u8]) {
    assert!(dst.len() <= src.len() * 8, "shared copy out of bounds");
    let whole = dst.len() / 8;
    let done = if dst.len() >= BULK {
        bulk::load(&src[..whole], &mut dst[..whole * 8])
    } else {
        0
    };
    let mut chunks = dst[done * 8..].chunks_exact_mut(8);
    for (d, w) in (&mut chunks).zip(&src[done..]) {
        d.copy_from_slice(&w.load(Relaxed).to_ne_bytes());
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let word = src[whole].load(Relaxed).to_ne_bytes();
        rest.copy_from_slice(&word[..rest.len()]);
    }
}

/// Copies `src` into the words `dst`; the bytes after `src.len()` in its last word are zeroed.
///
/// Panics if `dst` holds fewer than `src.len()` bytes (callers check lengths first).
pub(crate) fn store_bytes(dst: &[AtomicU64], src: &[u8]) {
    assert!(src.len() <= dst.len() * 8, "shared copy out of bounds");
    let whole = src.len() / 8;
    let done = if src.len() >= BULK {
        bulk::store(&dst[..whole], &src[..whole * 8])
    } else {
        0
    };
    let mut chunks = src[done * 8..].chunks_exact(8);
    for (s, w) in (&mut chunks).zip(&dst[done..]) {
        w.store(
            u64::from_ne_bytes(s.try_into().expect("8-byte chunk")),
            Relaxed,
        );
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        dst[whole].store(u64::from_ne_bytes(word), Relaxed);
    }
}

/// The string-move path: copies all of `words` (`bytes.len() == words.len() * 8`) and
/// returns how many words it copied.
#[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
#[allow(unsafe_code)]
mod bulk {
    use crate::sync::AtomicU64;
    use std::arch::asm;

    pub(super) fn load(words: &[AtomicU64], bytes: &mut [u8]) -> usize {
        assert_eq!(words.len() * 8, bytes.len(), "bulk copy shape");
        // SAFETY: `rep movsq` moves `rcx` 8-byte elements from `rsi` to `rdi` upwards (Rust
        // guarantees the direction flag is clear on entry to `asm!`). The source is
        // `words.len()` aligned `AtomicU64`s, valid for reads, each read once as one
        // single-copy-atomic 8-byte access: what a loop of relaxed atomic loads does. The
        // destination is `bytes`, a unique borrow of exactly that many bytes, which cannot
        // overlap shared words. Registers it changes are declared; it touches no stack.
        unsafe {
            asm!(
                "rep movsq",
                inout("rcx") words.len() => _,
                inout("rsi") words.as_ptr() => _,
                inout("rdi") bytes.as_mut_ptr() => _,
                options(nostack, preserves_flags),
            );
        }
        words.len()
    }

    pub(super) fn store(words: &[AtomicU64], bytes: &[u8]) -> usize {
        assert_eq!(words.len() * 8, bytes.len(), "bulk copy shape");
        // SAFETY: as in `load`, the other way: each aligned destination word is written
        // once as one single-copy-atomic 8-byte store (a relaxed atomic store, which
        // `AtomicU64`'s interior mutability allows through `&`); the source is a shared
        // borrow of exactly `words.len() * 8` private bytes.
        unsafe {
            asm!(
                "rep movsq",
                inout("rcx") words.len() => _,
                inout("rsi") bytes.as_ptr() => _,
                inout("rdi") words.as_ptr() => _,
                options(nostack, preserves_flags),
            );
        }
        words.len()
    }
}

/// Elsewhere the word loop does it all.
#[cfg(not(all(target_arch = "x86_64", not(loom), not(miri))))]
mod bulk {
    use crate::sync::AtomicU64;

    pub(super) fn load(_: &[AtomicU64], _: &mut [u8]) -> usize {
        0
    }

    pub(super) fn store(_: &[AtomicU64], _: &[u8]) -> usize {
        0
    }
}

/// Copies like [`load_bytes`], from words that nobody writes during the copy: a
/// back-pressure record that the reader has not released yet (the publisher does not
/// overwrite it; its writes happen-before ours through the Acquire load of `tail`). With no
/// concurrent write there is no race, so this can be one vectorised `memcpy`.
#[cfg(not(loom))]
#[allow(unsafe_code)]
pub(crate) fn load_bytes_quiescent(src: &[AtomicU64], dst: &mut [u8]) {
    assert!(dst.len() <= src.len() * 8, "shared copy out of bounds");
    // SAFETY: `src` covers at least `dst.len()` bytes (asserted), `AtomicU64` has the size
    // and layout of `u64`, the regions cannot overlap (`dst` is a unique borrow), and by the
    // caller's protocol no write to these bytes is concurrent with the read.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr().cast::<u8>(), dst.as_mut_ptr(), dst.len()) }
}

/// Under loom every shared access must go through the model's atomics.
#[cfg(loom)]
pub(crate) fn load_bytes_quiescent(src: &[AtomicU64], dst: &mut [u8]) {
    load_bytes(src, dst)
}

/// Byte-wise atomic copy out of shared memory (`src.len() == dst.len()`).
pub(crate) fn load_bytes_u8(src: &[AtomicU8], dst: &mut [u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s.load(Relaxed);
    }
}

/// Byte-wise atomic copy into shared memory (`src.len() == dst.len()`).
pub(crate) fn store_bytes_u8(dst: &[AtomicU8], src: &[u8]) {
    for (d, s) in dst.iter().zip(src) {
        d.store(*s, Relaxed);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn words(n: usize) -> Vec<AtomicU64> {
        (0..n).map(|_| AtomicU64::new(u64::MAX)).collect()
    }

    proptest! {
        #[test]
        fn word_copies_round_trip(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let shared = words(data.len().div_ceil(8) + 1);
            store_bytes(&shared, &data);
            let mut out = vec![0xAA; data.len()];
            load_bytes(&shared, &mut out);
            prop_assert_eq!(&out, &data);
        }

        #[test]
        fn byte_copies_round_trip(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            let shared: Vec<AtomicU8> = (0..data.len()).map(|_| AtomicU8::new(0)).collect();
            store_bytes_u8(&shared, &data);
            let mut out = vec![0; data.len()];
            load_bytes_u8(&shared, &mut out);
            prop_assert_eq!(out, data);
        }
    }

    #[test]
    fn bulk_copies_zero_pad_and_stop_at_the_end() {
        for len in [BULK - 1, BULK, BULK + 1, BULK + 7, 4096, 4099] {
            let data: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x5a).collect();
            let shared = words(len.div_ceil(8) + 1);
            store_bytes(&shared, &data);
            // The word after the value is untouched, the tail of its last word zeroed.
            assert_eq!(shared[len.div_ceil(8)].load(Relaxed), u64::MAX);
            if len % 8 != 0 {
                let last = shared[len / 8].load(Relaxed).to_ne_bytes();
                assert!(last[len % 8..].iter().all(|&b| b == 0), "len {len}");
            }
            let mut out = vec![0xAA; len + 3];
            load_bytes(&shared, &mut out[..len]);
            assert_eq!(&out[..len], &data[..]);
            assert_eq!(&out[len..], &[0xAA; 3], "wrote past the destination");
        }
    }

    #[test]
    fn tail_word_is_zero_padded() {
        let shared = words(2);
        store_bytes(&shared, &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(
            shared[1].load(Relaxed).to_ne_bytes(),
            [9, 0, 0, 0, 0, 0, 0, 0]
        );
    }
}

/// Types that may be viewed in a shared mapping.
///
/// # Safety
/// Implementors are `#[repr(C)]` (or primitive), valid for every bit pattern (another process
/// may write anything), contain no pointers, and allow shared mutation only through atomics.
#[allow(unsafe_code)]
pub(crate) unsafe trait SharedSafe: Sync {}
// SAFETY: atomics are valid for any bit pattern and mutable through `&`.
#[allow(unsafe_code)]
unsafe impl SharedSafe for crate::sync::AtomicU8 {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl SharedSafe for crate::sync::AtomicU32 {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl SharedSafe for crate::sync::AtomicU64 {}
