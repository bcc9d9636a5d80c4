//! `shmbus_segment`: a named region of raw bytes, read and written at offsets.

use std::ffi::{c_char, c_int, c_void};
use std::io::{Read, Seek, SeekFrom, Write};

use shmbus::Segment;

use crate::args;
use crate::options::{resolve, shmbus_options};
use crate::status::{guard, guard_value, Fail, OK};

/// A segment. Threads may share one handle; reads and writes of the same bytes at once
/// are not ordered with each other (each byte is read or written whole).
// `repr(C)`: the tag comes first whatever the type, so that `args::check` reads it there.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct shmbus_segment {
    tag: u64,
    pub(crate) inner: Segment,
}

args::tagged!(shmbus_segment, 0x5348_4d42_5345_474d, "segment", inner: Segment);

// The header promises that threads may share a segment handle.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<Segment>();
};

/// Creates a segment of `size` bytes (zeroed). It is removed when its creator closes it,
/// unless the options make it persistent.
#[no_mangle]
pub unsafe extern "C" fn shmbus_segment_create(
    name: *const c_char,
    size: usize,
    opts: *const shmbus_options,
    out: *mut *mut shmbus_segment,
) -> c_int {
    // SAFETY: the header's contract for each argument.
    unsafe {
        args::make("shmbus_segment_create", name, opts, out, |name, opts| {
            let seg = Segment::create_with(name, size, opts)?;
            Ok(shmbus_segment::new(seg))
        })
    }
}

/// Opens an existing segment.
#[no_mangle]
pub unsafe extern "C" fn shmbus_segment_open(
    name: *const c_char,
    opts: *const shmbus_options,
    out: *mut *mut shmbus_segment,
) -> c_int {
    // SAFETY: the header's contract for each argument.
    unsafe {
        args::make("shmbus_segment_open", name, opts, out, |name, opts| {
            let seg = Segment::open_with(name, opts)?;
            Ok(shmbus_segment::new(seg))
        })
    }
}

/// Size of the segment's data in bytes (0 for an invalid handle).
#[no_mangle]
pub unsafe extern "C" fn shmbus_segment_size(seg: *const shmbus_segment) -> usize {
    const F: &str = "shmbus_segment_size";
    guard_value(F, 0, || {
        // SAFETY: the header's contract for handles.
        let h = unsafe { args::handle_ref(seg, F) }?;
        Ok(h.inner.size())
    })
}

/// Checks that `offset .. offset + len` lies inside the segment.
fn check_range(seg: &Segment, offset: usize, len: usize, func: &str) -> Result<(), Fail> {
    match offset.checked_add(len) {
        Some(end) if end <= seg.size() => Ok(()),
        _ => Err(Fail::invalid(format!(
            "{func}: {len} bytes at offset {offset} do not fit in {}, whose size is {} bytes",
            seg.name(),
            seg.size()
        ))),
    }
}

/// Copies `len` bytes at `offset` of the segment into `buf`. `SHMBUS_ERR_INVALID` when the
/// range is not inside the segment.
#[no_mangle]
pub unsafe extern "C" fn shmbus_segment_read(
    seg: *const shmbus_segment,
    offset: usize,
    buf: *mut c_void,
    len: usize,
) -> c_int {
    const F: &str = "shmbus_segment_read";
    guard(F, || {
        // SAFETY: the header's contract for each argument.
        let (seg, buf) = unsafe { (args::handle_ref(seg, F)?, args::buffer(buf, len, F)?) };
        check_range(&seg.inner, offset, len, F)?;
        let mut stream = seg.inner.stream();
        stream
            .seek(SeekFrom::Start(offset as u64))
            .and_then(|_| stream.read_exact(buf))
            .map_err(|e| Fail::invalid(format!("{F}: {e}")))?;
        Ok(OK)
    })
}

/// Copies `len` bytes from `data` to `offset` of the segment. `SHMBUS_ERR_INVALID` when the
/// range is not inside the segment.
#[no_mangle]
pub unsafe extern "C" fn shmbus_segment_write(
    seg: *const shmbus_segment,
    offset: usize,
    data: *const c_void,
    len: usize,
) -> c_int {
    const F: &str = "shmbus_segment_write";
    guard(F, || {
        // SAFETY: the header's contract for each argument.
        let (seg, data) = unsafe { (args::handle_ref(seg, F)?, args::bytes(data, len, F)?) };
        check_range(&seg.inner, offset, len, F)?;
        let mut stream = seg.inner.stream();
        stream
            .seek(SeekFrom::Start(offset as u64))
            .and_then(|_| stream.write_all(data))
            .map_err(|e| Fail::invalid(format!("{F}: {e}")))?;
        Ok(OK)
    })
}

/// Removes the object `name` (of any kind) from the namespace; handles open on it keep
/// working until closed.
#[no_mangle]
pub unsafe extern "C" fn shmbus_remove(name: *const c_char, opts: *const shmbus_options) -> c_int {
    const F: &str = "shmbus_remove";
    guard(F, || {
        // SAFETY: the header's contract for strings.
        let name = unsafe { args::text(name, F, "name") }?;
        Segment::remove_with(name, &resolve(opts, F)?)?;
        Ok(OK)
    })
}

/// Frees the handle (NULL is ignored); the creator's close removes the segment unless it
/// is persistent.
#[no_mangle]
pub unsafe extern "C" fn shmbus_segment_close(seg: *mut shmbus_segment) {
    // SAFETY: the header's contract: NULL, or a live handle the caller gives up.
    unsafe { args::close(seg, "shmbus_segment_close") };
}
