//! Turning C arguments into Rust values: handles, strings, buffers, timeouts. Every check a
//! C caller's mistake can fail happens here and returns `SHMBUS_ERR_INVALID`, never a crash.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::time::Duration;

use shmbus::Options;

use crate::options::{resolve, shmbus_options};
use crate::status::{guard, Fail, OK};

/// A handle type: a heap object whose first field is a tag unique to its type, so that a
/// handle of another type is refused. (A closed handle cannot be recognised: the allocator
/// reuses its first bytes at once; closing twice is undefined, as the header says.)
///
/// # Safety
///
/// `tag` must return the value of a field set to `TAG` at creation.
pub(crate) unsafe trait Tagged: Sized {
    /// The tag every live handle of this type carries.
    const TAG: u64;
    /// What the handle is, for messages ("publisher", ...).
    const WHAT: &'static str;
    /// The tag field.
    fn tag(this: *const Self) -> u64;
}

/// Implements [`Tagged`] and a constructor for a handle type whose first field is
/// `tag: u64`: `tagged!(name, TAG, "what", field: Type, ...)`. (The struct itself is written
/// out, not generated, so that cbindgen sees it.)
macro_rules! tagged {
    ($name:ident, $tag:expr, $what:literal, $($field:ident: $ty:ty),* $(,)?) => {
        impl $name {
            pub(crate) fn new($($field: $ty),*) -> $name {
                $name { tag: $tag, $($field),* }
            }
        }

        // SAFETY: `tag` is the field `new` sets to TAG.
        unsafe impl $crate::args::Tagged for $name {
            const TAG: u64 = $tag;
            const WHAT: &'static str = $what;
            #[inline(always)]
            fn tag(this: *const Self) -> u64 {
                // SAFETY: the caller (`check`) passes a non-null, aligned pointer that the C
                // side claims is a live handle; reading its first field is the check.
                unsafe { std::ptr::addr_of!((*this).tag).read_volatile() }
            }
        }
    };
}
pub(crate) use tagged;

/// Checks that `p` looks like a live handle of type `T` (on every call: kept small, with
/// the messages out of line).
#[inline(always)]
fn check<T: Tagged>(p: *const T, func: &str) -> Result<(), Fail> {
    if !p.is_null() && p.cast::<u64>().is_aligned() && T::tag(p) == T::TAG {
        return Ok(());
    }
    Err(refuse(p, func))
}

/// Why `p` is not a live handle of type `T`.
#[cold]
#[inline(never)]
fn refuse<T: Tagged>(p: *const T, func: &str) -> Fail {
    if p.is_null() {
        return Fail::invalid(format!("{func}: the {} is NULL", T::WHAT));
    }
    if !p.cast::<u64>().is_aligned() {
        return Fail::invalid(format!(
            "{func}: {p:p} is not a {} handle (misaligned)",
            T::WHAT
        ));
    }
    Fail::invalid(format!(
        "{func}: {p:p} is not a {} handle (wrong type, or not from shmbus)",
        T::WHAT
    ))
}

/// The handle behind `p`, for exclusive use.
///
/// # Safety
///
/// `p` is NULL or points to a handle this library returned and that is not closed, and no
/// other thread uses it during the call (the header says which handles allow sharing).
#[inline(always)]
pub(crate) unsafe fn handle_mut<'a, T: Tagged>(p: *mut T, func: &str) -> Result<&'a mut T, Fail> {
    check(p, func)?;
    // SAFETY: non-null and tagged (checked); exclusive per the caller's contract.
    Ok(unsafe { &mut *p })
}

/// The handle behind `p`, shared (for handles the header says threads may share).
///
/// # Safety
///
/// `p` is NULL or points to a handle this library returned and that is not closed.
#[inline(always)]
pub(crate) unsafe fn handle_ref<'a, T: Tagged>(p: *const T, func: &str) -> Result<&'a T, Fail> {
    check(p, func)?;
    // SAFETY: non-null and tagged (checked); live per the caller's contract.
    Ok(unsafe { &*p })
}

/// Takes the handle back from C to drop it (for `*_close` and calls that consume a handle):
/// `None` for NULL or for something that is not a live handle of type `T`.
///
/// # Safety
///
/// `p` is NULL or points to a handle this library returned, not closed, that no other
/// thread uses; the caller never uses it again.
pub(crate) unsafe fn take<T: Tagged>(p: *mut T, func: &str) -> Result<Box<T>, Fail> {
    check(p, func)?;
    // SAFETY: a live handle (checked), made by `Box::into_raw` in `give`, now given back.
    Ok(unsafe { Box::from_raw(p) })
}

/// A `*_close` entry point: NULL is ignored; anything else is taken back and dropped (what
/// is not a live handle of type `T` is refused, with a message for `shmbus_last_error`).
///
/// # Safety
///
/// As [`take`].
pub(crate) unsafe fn close<T: Tagged>(p: *mut T, func: &str) {
    if p.is_null() {
        return;
    }
    guard(func, || {
        // SAFETY: forwarded contract.
        drop(unsafe { take(p, func) }?);
        Ok(OK)
    });
}

/// A constructor entry point (create, open, listen, ...): checks `name` and `out`, makes
/// the handle with `make` and the options (`opts`, NULL for the defaults), hands it to C.
///
/// # Safety
///
/// `name` as for [`text`], `opts` NULL or a live options handle, `out` as for [`out`].
pub(crate) unsafe fn make<T: Tagged>(
    func: &str,
    name: *const c_char,
    opts: *const shmbus_options,
    out: *mut *mut T,
    make: impl FnOnce(&str, &Options) -> Result<T, Fail>,
) -> c_int {
    guard(func, || {
        // SAFETY: forwarded contract.
        let (name, out) = unsafe { (text(name, func, "name")?, self::out(out, func, "out")?) };
        give(out, make(name, &resolve(opts, func)?)?);
        Ok(OK)
    })
}

/// Hands a new handle to C through `out`.
pub(crate) fn give<T: Tagged>(out: &mut *mut T, value: T) {
    *out = Box::into_raw(Box::new(value));
}

/// An out-parameter: `*p` to write through.
///
/// # Safety
///
/// `p` is NULL or valid for writes of a `T`.
#[inline(always)]
pub(crate) unsafe fn out<'a, T>(p: *mut T, func: &str, what: &str) -> Result<&'a mut T, Fail> {
    if p.is_null() || !p.is_aligned() {
        return Err(Fail::invalid(format!(
            "{func}: `{what}` must point to where the result goes (it is {p:p})"
        )));
    }
    // SAFETY: non-null and aligned (checked); valid for writes per the caller's contract.
    Ok(unsafe { &mut *p })
}

/// An optional out-parameter: `None` for NULL.
///
/// # Safety
///
/// As [`out`].
pub(crate) unsafe fn out_opt<'a, T>(
    p: *mut T,
    func: &str,
    what: &str,
) -> Result<Option<&'a mut T>, Fail> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded contract.
    unsafe { out(p, func, what) }.map(Some)
}

/// A C string argument (a name, a namespace): valid UTF-8, NUL-terminated.
///
/// # Safety
///
/// `p` is NULL or points to a NUL-terminated string that outlives the call.
pub(crate) unsafe fn text<'a>(p: *const c_char, func: &str, what: &str) -> Result<&'a str, Fail> {
    if p.is_null() {
        return Err(Fail::invalid(format!("{func}: the {what} is NULL")));
    }
    // SAFETY: non-null, NUL-terminated and live per the caller's contract.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str()
        .map_err(|_| Fail::invalid(format!("{func}: the {what} is not valid UTF-8")))
}

/// An array of `count` C string arguments (the keys of a keyed blackboard): each valid
/// UTF-8 and NUL-terminated, refused with the index of the first that is NULL or not UTF-8.
/// The array may be NULL only when `count` is 0.
///
/// # Safety
///
/// `p` is NULL or valid for reads of `count` pointers, each NULL or pointing to a
/// NUL-terminated string, all of which outlive the call.
pub(crate) unsafe fn texts<'a>(
    p: *const *const c_char,
    count: usize,
    func: &str,
    what: &str,
) -> Result<Vec<&'a str>, Fail> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if p.is_null() {
        return Err(Fail::invalid(format!(
            "{func}: the {what} array is NULL but its count is {count}"
        )));
    }
    if !p.is_aligned() {
        return Err(Fail::invalid(format!(
            "{func}: the {what} array {p:p} is misaligned"
        )));
    }
    if count > isize::MAX as usize / std::mem::size_of::<*const c_char>() {
        return Err(Fail::invalid(format!(
            "{func}: a count of {count} {what}s is impossible"
        )));
    }
    // SAFETY: non-null, aligned, and `count` pointers fit in isize::MAX bytes (checked);
    // readable for `count` pointers per the caller's contract.
    let ptrs = unsafe { std::slice::from_raw_parts(p, count) };
    let mut out = Vec::with_capacity(count);
    for (i, &s) in ptrs.iter().enumerate() {
        if s.is_null() {
            return Err(Fail::invalid(format!(
                "{func}: {what} {i} of {count} is NULL"
            )));
        }
        // SAFETY: non-null (checked), NUL-terminated and live per the caller's contract.
        let c = unsafe { CStr::from_ptr(s) };
        let text = c.to_str().map_err(|_| {
            Fail::invalid(format!(
                "{func}: {what} {i} of {count} ({c:?}) is not valid UTF-8"
            ))
        })?;
        out.push(text);
    }
    Ok(out)
}

/// A byte buffer to read from: `len` bytes at `p` (NULL only when `len` is 0).
///
/// # Safety
///
/// `p` is NULL or valid for reads of `len` bytes during the call.
#[inline(always)]
pub(crate) unsafe fn bytes<'a>(p: *const c_void, len: usize, func: &str) -> Result<&'a [u8], Fail> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Fail::invalid(format!(
            "{func}: the data pointer is NULL but the length is {len}"
        )));
    }
    if len > isize::MAX as usize {
        return Err(Fail::invalid(format!(
            "{func}: a length of {len} bytes is impossible"
        )));
    }
    // SAFETY: non-null, len ≤ isize::MAX (checked); readable per the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) })
}

/// An out-array of `len` values of type `T`.
///
/// # Safety
///
/// `p` is NULL or valid for writes of `len` values that nothing else accesses during the call.
pub(crate) unsafe fn slice_mut<'a, T>(
    p: *mut T,
    len: usize,
    func: &str,
    what: &str,
) -> Result<&'a mut [T], Fail> {
    if len == 0 {
        return Ok(&mut []);
    }
    if p.is_null() || !p.is_aligned() {
        return Err(Fail::invalid(format!(
            "{func}: `{what}` must point to room for {len} values (it is {p:p})"
        )));
    }
    if len > isize::MAX as usize / std::mem::size_of::<T>().max(1) {
        return Err(Fail::invalid(format!(
            "{func}: room for {len} values is impossible"
        )));
    }
    // SAFETY: non-null, aligned, and `len` values fit in isize::MAX bytes (checked); valid
    // for writes of `len` values per the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, len) })
}

/// A byte buffer to write into: `cap` bytes at `p` (NULL only when `cap` is 0).
///
/// # Safety
///
/// `p` is NULL or valid for writes of `cap` bytes during the call.
#[inline(always)]
pub(crate) unsafe fn buffer<'a>(
    p: *mut c_void,
    cap: usize,
    func: &str,
) -> Result<&'a mut [u8], Fail> {
    if cap == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        return Err(Fail::invalid(format!(
            "{func}: the buffer is NULL but its capacity is {cap}"
        )));
    }
    if cap > isize::MAX as usize {
        return Err(Fail::invalid(format!(
            "{func}: a capacity of {cap} bytes is impossible"
        )));
    }
    // SAFETY: non-null, cap ≤ isize::MAX (checked); writable per the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), cap) })
}

/// How long a call may wait, from a C `timeout_ns`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// `timeout_ns < 0`: as long as it takes.
    Forever,
    /// `timeout_ns == 0`: not at all.
    No,
    /// `timeout_ns > 0`.
    For(Duration),
}

impl Wait {
    #[inline(always)]
    pub(crate) fn from_ns(timeout_ns: i64) -> Wait {
        match timeout_ns {
            t if t < 0 => Wait::Forever,
            0 => Wait::No,
            t => Wait::For(Duration::from_nanos(t as u64)),
        }
    }

    /// As the `Option<Duration>` of Rust calls that take one (`None`: forever).
    pub(crate) fn as_option(self) -> Option<Duration> {
        match self {
            Wait::Forever => None,
            Wait::No => Some(Duration::ZERO),
            Wait::For(d) => Some(d),
        }
    }
}

/// A duration argument in nanoseconds that must not be negative.
pub(crate) fn duration(ns: i64, func: &str, what: &str) -> Result<Duration, Fail> {
    u64::try_from(ns)
        .map(Duration::from_nanos)
        .map_err(|_| Fail::invalid(format!("{func}: the {what} ({ns} ns) is negative")))
}
