//! Cache-line padding for words written by different processes.

/// Puts `T` alone on its own 128-byte block.
///
/// 128, not 64: on x86-64 the adjacent-line prefetcher pulls cache lines in pairs, so two
/// words written by different cores should be 128 bytes apart (crossbeam's `CachePadded`
/// explains the measurements). The padding is alignment, not a field, so it holds no bytes
/// anyone reads.
#[repr(C, align(128))]
#[derive(Debug, Default)]
pub(crate) struct Padded<T>(pub T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}
