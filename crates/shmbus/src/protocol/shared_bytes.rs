//! Copies between private buffers and memory that other processes may write concurrently.
//!
//! A plain `memcpy` from such memory is a data race, which Rust treats as undefined behaviour
//! even when the result is thrown away (as a seqlock reader does after a failed re-check).
//! These copies use relaxed atomic loads and stores instead: 8 bytes at a time on the
//! word-aligned regions the blackboard uses, 1 byte at a time for the raw segment stream.
//! On x86-64 and AArch64 a relaxed atomic load or store is an ordinary `mov`/`ldr`, so the
//! word copy costs about what a non-vectorised memcpy does. This is the "byte-wise atomic
//! memcpy" of the C++ proposal P1478 that the `atomic-memcpy` crate also implements; we do it
//! by hand because our regions are slices of atomics already, which that crate does not take.

use crate::sync::{AtomicU64, AtomicU8, Ordering::Relaxed};

/// Copies the first `dst.len()` bytes of the words `src` into `dst`.
///
/// Panics if `src` holds fewer than `dst.len()` bytes (callers check lengths first).
pub(crate) fn load_bytes(src: &[AtomicU64], dst: &mut [u8]) {
    assert!(dst.len() <= src.len() * 8, "shared copy out of bounds");
    let tail_word = dst.len() / 8;
    let mut chunks = dst.chunks_exact_mut(8);
    for (d, w) in (&mut chunks).zip(src) {
        d.copy_from_slice(&w.load(Relaxed).to_ne_bytes());
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let word = src[tail_word].load(Relaxed).to_ne_bytes();
        rest.copy_from_slice(&word[..rest.len()]);
    }
}

/// Copies `src` into the words `dst`; the bytes after `src.len()` in its last word are zeroed.
///
/// Panics if `dst` holds fewer than `src.len()` bytes (callers check lengths first).
pub(crate) fn store_bytes(dst: &[AtomicU64], src: &[u8]) {
    assert!(src.len() <= dst.len() * 8, "shared copy out of bounds");
    let mut chunks = src.chunks_exact(8);
    for (s, w) in (&mut chunks).zip(dst) {
        w.store(
            u64::from_ne_bytes(s.try_into().expect("8-byte chunk")),
            Relaxed,
        );
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        dst[src.len() / 8].store(u64::from_ne_bytes(word), Relaxed);
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
        fn word_copies_round_trip(data in proptest::collection::vec(any::<u8>(), 0..200)) {
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
