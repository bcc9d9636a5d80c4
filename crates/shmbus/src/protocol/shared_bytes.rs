//! Copies between private buffers and memory that other processes may write concurrently.
//!
//! A plain `memcpy` from such memory is a data race, which Rust treats as undefined behaviour
//! even when the result is thrown away (as a blackboard reader does after a failed check).
//! These copies are the "byte-wise atomic memcpy" of the C++ proposal P1478 (which the
//! `atomic-memcpy` crate also implements): every byte is read (or written) exactly once by
//! an access that cannot tear it, in no particular order. The protocols that use them
//! (the blackboard's latch, the lossy ring) never rely on more: a reader validates its copy
//! afterwards through its own sequence words and an Acquire fence, so any byte that came
//! from a later write is caught whatever the width of the access that read it.
//!
//! - Under loom, miri or on other CPUs: a loop of relaxed `AtomicU64` loads or stores.
//! - On x86-64, in inline assembly: a loop of 16-byte SSE2 moves (`movdqu`, 64 bytes per
//!   turn; SSE2 is part of x86-64 itself) for short copies; from [`AVX_MIN`] bytes, on CPUs
//!   with AVX (detected at run time), a loop of 32-byte moves (`vmovdqu`, 128 bytes per
//!   turn); from [`REP_MIN`] bytes, one `rep movsq` (the CPU's string move, at `memcpy`
//!   speed for large copies on CPUs with fast string moves, ERMS/FSRM). Each access of any
//!   of them is a plain load or store of whole bytes, which x86-64 never tears within a
//!   byte, so each block does what a loop of relaxed `AtomicU8` accesses does (a
//!   Rust-expressible operation, as the language asks of an `asm!` block) at `memcpy`
//!   speed or better: a 64-byte copy costs about 3 ns and a 4 KiB one about 40 ns on the
//!   developers' machine, where the word loop took 4 and 5 times as long and `memcpy` 50.
//!
//! The bytes after a value's end in its last word are written as zeros, on either path.

use crate::sync::{AtomicU64, AtomicU8, Ordering::Relaxed};

/// Copies of at least this many bytes go through the AVX loop where the CPU has AVX (see
/// the module docs).
pub(crate) const AVX_MIN: usize = 256;
// The AVX loop moves 128 bytes per turn and runs at least once.
const _: () = assert!(AVX_MIN >= 128);
/// Copies of at least this many bytes go through the CPU's string move. Measured on AMD
/// EPYC (Zen 4) from a shared mapping: at 4 KiB the AVX loop takes 40 ns, `rep movsq` 55
/// and the SSE2 loop 72; from 64 KiB on all three run at the same speed; below 256 bytes
/// the SSE2 loop is fastest. Without AVX the string move wins from 1 KiB.
pub(crate) const REP_MIN: usize = 64 << 10;
/// [`REP_MIN`] on a CPU without AVX.
pub(crate) const REP_MIN_SSE: usize = 1024;

/// Copies the first `dst.len()` bytes of the words `src` into `dst`.
///
/// Panics if `src` holds fewer than `dst.len()` bytes (callers check lengths first).
#[inline]
pub(crate) fn load_bytes(src: &[AtomicU64], dst: &mut [u8]) {
    assert!(dst.len() <= src.len() * 8, "shared copy out of bounds");
    let whole = dst.len() / 8;
    let done = bulk::load(&src[..whole], &mut dst[..whole * 8]);
    let mut chunks = dst[done * 8..whole * 8].chunks_exact_mut(8);
    for (d, w) in (&mut chunks).zip(&src[done..]) {
        d.copy_from_slice(&w.load(Relaxed).to_ne_bytes());
    }
    let rest = &mut dst[whole * 8..];
    if !rest.is_empty() {
        let word = bulk::load_word(&src[whole]).to_ne_bytes();
        rest.copy_from_slice(&word[..rest.len()]);
    }
}

/// Copies `src` into the words `dst`; the bytes after `src.len()` in its last word are zeroed.
///
/// Panics if `dst` holds fewer than `src.len()` bytes (callers check lengths first).
#[inline]
pub(crate) fn store_bytes(dst: &[AtomicU64], src: &[u8]) {
    assert!(src.len() <= dst.len() * 8, "shared copy out of bounds");
    let whole = src.len() / 8;
    let done = bulk::store(&dst[..whole], &src[..whole * 8]);
    let mut chunks = src[done * 8..whole * 8].chunks_exact(8);
    for (s, w) in (&mut chunks).zip(&dst[done..]) {
        w.store(
            u64::from_ne_bytes(s.try_into().expect("8-byte chunk")),
            Relaxed,
        );
    }
    let rest = &src[whole * 8..];
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        bulk::store_word(&dst[whole], u64::from_ne_bytes(word));
    }
}

/// The assembly paths: copy all of `words` (`bytes.len() == words.len() * 8`) and return
/// how many words they copied.
#[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
#[allow(unsafe_code)]
mod bulk {
    use super::{AVX_MIN, REP_MIN, REP_MIN_SSE};
    use crate::sync::AtomicU64;

    #[inline(always)]
    pub(super) fn load(words: &[AtomicU64], bytes: &mut [u8]) -> usize {
        assert_eq!(words.len() * 8, bytes.len(), "bulk copy shape");
        // SAFETY: the source is `words.len()` aligned `AtomicU64`s, valid for reads, and
        // `copy` reads each of its bytes exactly once with plain loads (single-copy atomic
        // per byte: what relaxed `AtomicU8` loads do, see the module docs). The
        // destination is `bytes`, a unique borrow of exactly as many bytes, which cannot
        // overlap shared words.
        unsafe { copy(words.as_ptr().cast(), bytes.as_mut_ptr(), bytes.len()) };
        words.len()
    }

    #[inline(always)]
    pub(super) fn store(words: &[AtomicU64], bytes: &[u8]) -> usize {
        assert_eq!(words.len() * 8, bytes.len(), "bulk copy shape");
        // SAFETY: as in `load`, the other way: each byte of the aligned destination words
        // is written exactly once by a plain store (what relaxed `AtomicU8` stores do,
        // which `AtomicU64`'s interior mutability allows through `&`); the source is a
        // shared borrow of exactly `words.len() * 8` private bytes.
        unsafe {
            copy(
                bytes.as_ptr(),
                words.as_ptr().cast_mut().cast(),
                bytes.len(),
            )
        };
        words.len()
    }

    /// The last, partial word of a copy, read with a plain `mov` like the rest of the copy:
    /// every access to a copy's words is then the same kind (the assembly's byte-wise
    /// accesses), never an `AtomicU64` load racing with them.
    #[inline(always)]
    pub(super) fn load_word(word: &AtomicU64) -> u64 {
        let out: u64;
        // SAFETY: one aligned 8-byte load from a valid `AtomicU64` (what a relaxed load
        // does); it touches no stack and keeps the flags.
        unsafe {
            std::arch::asm!(
                "mov {out}, qword ptr [{p}]",
                p = in(reg) word.as_ptr(),
                out = lateout(reg) out,
                options(nostack, preserves_flags, readonly),
            );
        }
        out
    }

    /// The last, partial word of a copy, written with a plain `mov` (see [`load_word`]).
    #[inline(always)]
    pub(super) fn store_word(word: &AtomicU64, value: u64) {
        // SAFETY: one aligned 8-byte store into a valid `AtomicU64` (what a relaxed store
        // does, allowed through `&` by its interior mutability); no stack, flags kept.
        unsafe {
            std::arch::asm!(
                "mov qword ptr [{p}], {v}",
                p = in(reg) word.as_ptr(),
                v = in(reg) value,
                options(nostack, preserves_flags),
            );
        }
    }

    /// Copies `len` bytes (a multiple of 8) from `src` to `dst`, by the fastest of the
    /// three loops for `len` and this CPU.
    ///
    /// # Safety
    ///
    /// `src` is valid for reads and `dst` for writes of `len` bytes, the two do not
    /// overlap, and any of them in shared memory may be accessed byte-wise atomically
    /// (atomics, or memory nobody else accesses).
    #[inline(always)]
    unsafe fn copy(src: *const u8, dst: *mut u8, len: usize) {
        debug_assert!(len.is_multiple_of(8));
        if len < AVX_MIN {
            // SAFETY: forwarded contract.
            unsafe { sse(src, dst, len) }
        } else {
            // SAFETY: forwarded contract, and `len >= AVX_MIN` here.
            unsafe { copy_large(src, dst, len) }
        }
    }

    /// [`copy`] from [`AVX_MIN`] bytes, out of line: the short copies of small values stay
    /// a few instructions inline.
    ///
    /// # Safety
    ///
    /// As [`copy`], and `len >= AVX_MIN` (what the AVX loop needs).
    #[inline(never)]
    unsafe fn copy_large(src: *const u8, dst: *mut u8, len: usize) {
        let avx = std::arch::is_x86_feature_detected!("avx");
        if len >= REP_MIN || (!avx && len >= REP_MIN_SSE) {
            // SAFETY: forwarded contract.
            unsafe { rep_movsq(src, dst, len) }
        } else if avx {
            // SAFETY: forwarded contract (`len >= AVX_MIN >= 128`); the CPU has AVX
            // (detected just above).
            unsafe { avx_loop(src, dst, len) }
        } else {
            // SAFETY: forwarded contract.
            unsafe { sse(src, dst, len) }
        }
    }

    /// `rep movsq`: the CPU's string move.
    ///
    /// # Safety
    ///
    /// As [`copy`].
    #[inline]
    unsafe fn rep_movsq(src: *const u8, dst: *mut u8, len: usize) {
        // SAFETY: `rep movsq` moves `rcx` 8-byte elements from `rsi` to `rdi` upwards
        // (Rust guarantees the direction flag is clear on entry to `asm!`): exactly the
        // caller's `len` bytes. Registers it changes are declared; it touches no stack.
        unsafe {
            std::arch::asm!(
                "rep movsq",
                inout("rcx") len / 8 => _,
                inout("rsi") src => _,
                inout("rdi") dst => _,
                options(nostack, preserves_flags),
            );
        }
    }

    /// 128 bytes per turn in four 32-byte AVX moves, then the rest by [`sse`].
    ///
    /// # Safety
    ///
    /// As [`copy`], the CPU has AVX, and `len >= 128` (the loop runs at least once).
    #[target_feature(enable = "avx")]
    unsafe fn avx_loop(src: *const u8, dst: *mut u8, len: usize) {
        let blocks = len / 128 * 128;
        // SAFETY: `len >= AVX_MIN` (the caller) so `blocks >= 128`; the loop moves the
        // first `blocks` of the caller's `len` bytes, 128 per turn, each byte once and
        // nothing outside them. `vmovdqu` needs no alignment and the CPU has AVX (this
        // function's contract). `vzeroupper` avoids the penalty of SSE code after it; it
        // clears the upper halves of every ymm register, so all sixteen are declared
        // clobbered. Changed registers and flags are declared; it touches no stack.
        unsafe {
            std::arch::asm!(
                "2:",
                "vmovdqu ymm0, ymmword ptr [{s}]",
                "vmovdqu ymm1, ymmword ptr [{s} + 32]",
                "vmovdqu ymm2, ymmword ptr [{s} + 64]",
                "vmovdqu ymm3, ymmword ptr [{s} + 96]",
                "vmovdqu ymmword ptr [{d}], ymm0",
                "vmovdqu ymmword ptr [{d} + 32], ymm1",
                "vmovdqu ymmword ptr [{d} + 64], ymm2",
                "vmovdqu ymmword ptr [{d} + 96], ymm3",
                "add {s}, 128",
                "add {d}, 128",
                "sub {n}, 128",
                "jnz 2b",
                "vzeroupper",
                n = inout(reg) blocks => _,
                s = inout(reg) src => _,
                d = inout(reg) dst => _,
                out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
                out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
                out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
                out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
                options(nostack),
            );
        }
        // SAFETY: the caller's ranges, past the bytes copied above.
        unsafe { sse(src.add(blocks), dst.add(blocks), len - blocks) }
    }

    /// 64 bytes per turn in four 16-byte SSE2 moves, then 16 at a time, then the last 8.
    ///
    /// # Safety
    ///
    /// As [`copy`]: in particular `len` is a multiple of 8 (the last move is 8 bytes).
    #[inline]
    unsafe fn sse(src: *const u8, dst: *mut u8, len: usize) {
        // SAFETY: the loop moves 64 bytes per turn while at least 64 are left, then 16 at
        // a time, then the last 8 if any (`len` is a multiple of 8): each byte of the
        // caller's `len` bytes once, nothing outside them. `movdqu` needs no alignment;
        // SSE2 is part of the x86-64 baseline. Changed registers and flags are declared;
        // it touches no stack.
        unsafe {
            std::arch::asm!(
                "cmp {n}, 64",
                "jb 3f",
                "2:",
                "movdqu {a}, xmmword ptr [{s}]",
                "movdqu {b}, xmmword ptr [{s} + 16]",
                "movdqu {c}, xmmword ptr [{s} + 32]",
                "movdqu {e}, xmmword ptr [{s} + 48]",
                "movdqu xmmword ptr [{d}], {a}",
                "movdqu xmmword ptr [{d} + 16], {b}",
                "movdqu xmmword ptr [{d} + 32], {c}",
                "movdqu xmmword ptr [{d} + 48], {e}",
                "add {s}, 64",
                "add {d}, 64",
                "sub {n}, 64",
                "cmp {n}, 64",
                "jae 2b",
                "3:",
                "cmp {n}, 16",
                "jb 4f",
                "movdqu {a}, xmmword ptr [{s}]",
                "movdqu xmmword ptr [{d}], {a}",
                "add {s}, 16",
                "add {d}, 16",
                "sub {n}, 16",
                "jmp 3b",
                "4:",
                "test {n}, {n}",
                "jz 5f",
                "mov {t}, qword ptr [{s}]",
                "mov qword ptr [{d}], {t}",
                "5:",
                n = inout(reg) len => _,
                s = inout(reg) src => _,
                d = inout(reg) dst => _,
                t = out(reg) _,
                a = out(xmm_reg) _,
                b = out(xmm_reg) _,
                c = out(xmm_reg) _,
                e = out(xmm_reg) _,
                options(nostack),
            );
        }
    }

    /// Each path on its own, whatever this CPU would pick: every length that is a multiple
    /// of 8 up to 1 KiB and a few large ones, copied whole and nothing past the end.
    #[cfg(test)]
    #[test]
    fn every_path_copies_exactly_len_bytes() {
        let lens = (0..=1024).step_by(8).chain([4096, 4104, 65536]);
        for len in lens {
            let src: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            type Path = unsafe fn(*const u8, *mut u8, usize);
            let mut paths: Vec<(&str, Path)> =
                vec![("sse", sse), ("rep movsq", rep_movsq), ("copy", copy)];
            if len >= AVX_MIN {
                paths.push(("copy_large", copy_large));
            }
            if len >= 128 && std::arch::is_x86_feature_detected!("avx") {
                paths.push(("avx", avx_loop_checked));
            }
            for (name, path) in paths {
                let mut dst = vec![0xAAu8; len + 16];
                // SAFETY: `src` holds `len` bytes, `dst` more, they do not overlap, and
                // both are private; `len` is a multiple of 8 (and >= 128 for AVX, which
                // this CPU has).
                unsafe { path(src.as_ptr(), dst.as_mut_ptr(), len) };
                assert_eq!(&dst[..len], &src[..], "{name}, {len} bytes");
                assert!(
                    dst[len..].iter().all(|&b| b == 0xAA),
                    "{name} wrote past {len}"
                );
            }
        }
    }

    /// [`avx_loop`] as a plain `unsafe fn` pointer for the test (the caller checked AVX).
    #[cfg(test)]
    unsafe fn avx_loop_checked(src: *const u8, dst: *mut u8, len: usize) {
        // SAFETY: forwarded contract; the test checked that the CPU has AVX.
        unsafe { avx_loop(src, dst, len) }
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

    pub(super) fn load_word(word: &AtomicU64) -> u64 {
        word.load(crate::sync::Ordering::Relaxed)
    }

    pub(super) fn store_word(word: &AtomicU64, value: u64) {
        word.store(value, crate::sync::Ordering::Relaxed)
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
        let edges = [AVX_MIN, REP_MIN_SSE, REP_MIN].into_iter();
        let near_edges = edges.flat_map(|e| [e - 8, e - 1, e, e + 1, e + 7, e + 128, e + 136]);
        let lens = (0..=300).chain(near_edges).chain([4096, 4099]);
        for len in lens {
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
