//! [`Region`]: a run of shared values in a mapping, checked once.

/// `count` values of `T` at byte `offset` of a mapping, checked by
/// [`Segment::region`](super::Segment::region) (in bounds, aligned, `end` = the byte after
/// them), so that [`Segment::get`](super::Segment::get) hands them out at the cost of one
/// comparison.
#[derive(Debug)]
pub(crate) struct Region<T> {
    pub(super) offset: usize,
    pub(super) count: usize,
    pub(super) end: usize,
    pub(super) _t: std::marker::PhantomData<fn() -> T>,
}

impl<T> Clone for Region<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Region<T> {}
