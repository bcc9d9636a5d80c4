//! What a receive hands out: `Message` (to a handler), `Iter`, and the zero-copy `Sample`.

use super::Subscriber;
use crate::error::{Error, Result};

/// A message handed to a receive handler.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// The payload.
    pub data: &'a [u8],
    /// Messages lost just before this one (lossy channels; 0 otherwise).
    pub lost: u64,
}

/// Iterator over a subscriber's messages ([`Subscriber::iter`]).
#[derive(Debug)]
pub struct Iter<'a> {
    pub(super) sub: &'a mut Subscriber,
    pub(super) done: bool,
}

impl Iterator for Iter<'_> {
    type Item = Result<Vec<u8>>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.sub.recv() {
            Ok(msg) => Some(Ok(msg)),
            Err(Error::Disconnected { .. }) => {
                self.done = true;
                None
            }
            Err(e @ Error::Lagged { .. }) => Some(Err(e)),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// A message borrowed in place from a back-pressure ring ([`Subscriber::recv_ref`]); the
/// publisher may reuse its bytes only after this is dropped.
#[derive(Debug)]
pub struct Sample<'a> {
    pub(super) sub: &'a mut Subscriber,
    pub(super) ptr: *const u8,
    pub(super) len: usize,
}

// `Sample`'s Send and Sync below rest on these.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Subscriber>();
    send_sync::<Error>();
};

// SAFETY: a `Sample` is a `&mut Subscriber` (Send + Sync, asserted above) plus a pointer to bytes inside the
// mapping that subscriber keeps alive; those bytes are readable from any thread, and only
// read (`Deref` gives `&[u8]`), so moving or sharing a sample across threads is as safe as
// moving or sharing a `&[u8]` into the mapping.
#[allow(unsafe_code)]
unsafe impl Send for Sample<'_> {}
// SAFETY: as for `Send`: shared access only ever reads the borrowed bytes.
#[allow(unsafe_code)]
unsafe impl Sync for Sample<'_> {}

impl std::ops::Deref for Sample<'_> {
    type Target = [u8];
    #[allow(unsafe_code)]
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr..ptr + len` is a committed record's payload inside the mapping
        // (checked by `try_read` against the ring's bounds before the sink saw it), which
        // `self.sub` keeps mapped. In back-pressure mode the publisher does not overwrite it
        // while our slot's cursor (not yet advanced: that happens on drop) points before it.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Sample<'_> {
    fn drop(&mut self) {
        if self.sub.ch.seg.owned_here() {
            self.sub.release(false);
        }
    }
}
