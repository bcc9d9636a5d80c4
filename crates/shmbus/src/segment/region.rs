//! [`Region`]: a run of shared values in a mapping, checked once.

/// `count` values of `T` at byte `offset` of a mapping of `map_len` bytes: in bounds and
/// aligned for `T` (relative to the page-aligned mapping), with `end` the byte after them.
/// Only [`Region::checked`] makes one, so the three fields always agree, which is what
/// [`Segment::get`](super::Segment::get) relies on to hand the values out at the cost of
/// one comparison.
#[derive(Debug)]
pub(crate) struct Region<T> {
    offset: usize,
    count: usize,
    end: usize,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T> Region<T> {
    /// The region, or `None` when it overflows, leaves a mapping of `map_len` bytes or is
    /// misaligned for `T`.
    pub(crate) fn checked(offset: usize, count: usize, map_len: usize) -> Option<Region<T>> {
        let end = size_of::<T>().checked_mul(count)?.checked_add(offset)?;
        (end <= map_len && offset.is_multiple_of(align_of::<T>())).then_some(Region {
            offset,
            count,
            end,
            _t: std::marker::PhantomData,
        })
    }

    /// Byte offset of the first value.
    pub(crate) fn offset(&self) -> usize {
        self.offset
    }

    /// How many values.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// The byte after the last value (`offset + count * size_of::<T>()`).
    pub(crate) fn end(&self) -> usize {
        self.end
    }
}

impl<T> Clone for Region<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Region<T> {}
