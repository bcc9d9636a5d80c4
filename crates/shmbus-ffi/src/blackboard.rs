//! `shmbus_blackboard`: one value, written by any process, read by many, never torn.

use std::ffi::{c_char, c_int, c_void};

use shmbus::Blackboard;

use crate::args::{self, Wait};
use crate::handler::{callback, shmbus_handler, shmbus_update_fn, UserPtr};
use crate::options::shmbus_options;
use crate::status::{guard, guard_value, OK};

/// A blackboard. Threads may share one handle: every blackboard function may be called
/// from several threads at once.
// `repr(C)`: the tag comes first whatever the type, so that `args::check` reads it there.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct shmbus_blackboard {
    tag: u64,
    pub(crate) inner: Blackboard,
}

args::tagged!(shmbus_blackboard, 0x5348_4d42_424f_4152, "blackboard", inner: Blackboard);

// The header promises that threads may share a blackboard handle.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<Blackboard>();
};

/// Creates a blackboard for values of up to `capacity` bytes (version 0, no value yet). It
/// is removed when its creator closes it, unless the options make it persistent.
#[no_mangle]
pub unsafe extern "C" fn shmbus_blackboard_create(
    name: *const c_char,
    capacity: usize,
    out: *mut *mut shmbus_blackboard,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { shmbus_blackboard_create_with(name, capacity, std::ptr::null(), out) }
}

/// [`shmbus_blackboard_create`] with options (NULL: the defaults).
#[no_mangle]
pub unsafe extern "C" fn shmbus_blackboard_create_with(
    name: *const c_char,
    capacity: usize,
    opts: *const shmbus_options,
    out: *mut *mut shmbus_blackboard,
) -> c_int {
    // SAFETY: the header's contract for each argument.
    unsafe {
        args::make("shmbus_blackboard_create", name, opts, out, |name, opts| {
            let b = Blackboard::create_with(name, capacity, opts)?;
            Ok(shmbus_blackboard::new(b))
        })
    }
}

/// Opens an existing blackboard.
#[no_mangle]
pub unsafe extern "C" fn shmbus_blackboard_open(
    name: *const c_char,
    out: *mut *mut shmbus_blackboard,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { shmbus_blackboard_open_with(name, std::ptr::null(), out) }
}

/// [`shmbus_blackboard_open`] with options (NULL: the defaults).
#[no_mangle]
pub unsafe extern "C" fn shmbus_blackboard_open_with(
    name: *const c_char,
    opts: *const shmbus_options,
    out: *mut *mut shmbus_blackboard,
) -> c_int {
    // SAFETY: the header's contract for each argument.
    unsafe {
        args::make("shmbus_blackboard_open", name, opts, out, |name, opts| {
            let b = Blackboard::open_with(name, opts)?;
            Ok(shmbus_blackboard::new(b))
        })
    }
}

/// Opens the blackboard, or creates it with `capacity` if it does not exist (race-free).
/// An existing blackboard keeps its own capacity (see `shmbus_blackboard_capacity`).
#[no_mangle]
pub unsafe extern "C" fn shmbus_blackboard_create_or_open(
    name: *const c_char,
    capacity: usize,
    opts: *const shmbus_options,
    out: *mut *mut shmbus_blackboard,
) -> c_int {
    // SAFETY: the header's contract for each argument.
    unsafe {
        args::make(
            "shmbus_blackboard_create_or_open",
            name,
            opts,
            out,
            |name, opts| {
                let b = Blackboard::create_or_open_with(name, capacity, opts)?;
                Ok(shmbus_blackboard::new(b))
            },
        )
    }
}

/// Replaces the value with `len` bytes from `data` (readers see all of it or none of it)
/// and wakes whoever waits for a new version. `SHMBUS_ERR_TOO_LARGE` beyond the capacity.
#[no_mangle]
pub unsafe extern "C" fn shmbus_blackboard_write(
    b: *mut shmbus_blackboard,
    data: *const c_void,
    len: usize,
) -> c_int {
    const F: &str = "shmbus_blackboard_write";
    guard(F, || {
        // SAFETY: the header's contract for each argument (a shared handle).
        let (b, data) = unsafe { (args::handle_ref(b, F)?, args::bytes(data, len, F)?) };
        b.inner.write(data)?;
        Ok(OK)
    })
}

/// Copies the current value into `buf` (`cap` bytes): its length goes to `*len` and its
/// version to `*version` (NULL to ignore; version 0 and length 0 before the first write).
/// On `SHMBUS_ERR_TOO_SMALL`, `*len` is the size needed (a buffer of the capacity always
/// suffices).
#[no_mangle]
pub unsafe extern "C" fn shmbus_blackboard_read(
    b: *mut shmbus_blackboard,
    buf: *mut c_void,
    cap: usize,
    len: *mut usize,
    version: *mut u64,
) -> c_int {
    const F: &str = "shmbus_blackboard_read";
    guard(F, || {
        // SAFETY: the header's contract for each argument (a shared handle).
        let (b, buf, len, version) = unsafe {
            (
                args::handle_ref(b, F)?,
                args::buffer(buf, cap, F)?,
                args::out(len, F, "len")?,
                args::out_opt(version, F, "version")?,
            )
        };
        match b.inner.read_into(buf) {
            Ok((v, n)) => {
                *len = n;
                if let Some(version) = version {
                    *version = v;
                }
                Ok(OK)
            }
            Err(e) => {
                if let shmbus::Error::BufferTooSmall { needed, .. } = e {
                    *len = needed;
                }
                Err(e.into())
            }
        }
    })
}

/// The version of the current value (counts writes since creation; 0 for an invalid handle).
#[no_mangle]
pub unsafe extern "C" fn shmbus_blackboard_version(b: *const shmbus_blackboard) -> u64 {
    const F: &str = "shmbus_blackboard_version";
    guard_value(F, 0, || {
        // SAFETY: the header's contract for handles.
        let h = unsafe { args::handle_ref(b, F) }?;
        Ok(h.inner.version())
    })
}

/// The largest value the blackboard holds, in bytes (0 for an invalid handle).
#[no_mangle]
pub unsafe extern "C" fn shmbus_blackboard_capacity(b: *const shmbus_blackboard) -> usize {
    const F: &str = "shmbus_blackboard_capacity";
    guard_value(F, 0, || {
        // SAFETY: the header's contract for handles.
        let h = unsafe { args::handle_ref(b, F) }?;
        Ok(h.inner.capacity())
    })
}

/// Waits until the version is newer than `version` and stores the new one in `*newer`
/// (NULL to ignore). `timeout_ns < 0` waits as long as it takes, otherwise
/// `SHMBUS_ERR_TIMEOUT` when it passes.
#[no_mangle]
pub unsafe extern "C" fn shmbus_blackboard_wait_newer(
    b: *const shmbus_blackboard,
    version: u64,
    timeout_ns: i64,
    newer: *mut u64,
) -> c_int {
    const F: &str = "shmbus_blackboard_wait_newer";
    guard(F, || {
        // SAFETY: the header's contract for each argument.
        let (b, newer) = unsafe { (args::handle_ref(b, F)?, args::out_opt(newer, F, "newer")?) };
        match b
            .inner
            .wait_newer(version, Wait::from_ns(timeout_ns).as_option())?
        {
            Some(v) => {
                if let Some(newer) = newer {
                    *newer = v;
                }
                Ok(OK)
            }
            None => Err(shmbus::Error::Timeout.into()),
        }
    })
}

/// Runs `cb` on a background thread for every version written after `version` (0: the
/// current value first, if there is one), with `user` passed back, and stores the handler
/// in `*out`. A callback slower than the writer sees the newest value and is told how many
/// versions it skipped.
#[no_mangle]
pub unsafe extern "C" fn shmbus_blackboard_on_update(
    b: *const shmbus_blackboard,
    version: u64,
    cb: shmbus_update_fn,
    user: *mut c_void,
    out: *mut *mut shmbus_handler,
) -> c_int {
    const F: &str = "shmbus_blackboard_on_update";
    guard(F, || {
        // SAFETY: the header's contract for each argument.
        let (b, out) = unsafe { (args::handle_ref(b, F)?, args::out(out, F, "out")?) };
        let cb = callback(cb, F)?;
        let user = UserPtr(user);
        let guard = b.inner.on_update_from(version, move |u| {
            // SAFETY: the caller's callback, with the bytes valid for the call, as documented.
            unsafe {
                cb(
                    u.data.as_ptr().cast(),
                    u.data.len(),
                    u.version,
                    u.skipped,
                    user.get(),
                )
            }
        })?;
        args::give(out, shmbus_handler::new(guard));
        Ok(OK)
    })
}

/// Frees the handle (NULL is ignored); the creator's close removes the blackboard unless it
/// is persistent.
#[no_mangle]
pub unsafe extern "C" fn shmbus_blackboard_close(b: *mut shmbus_blackboard) {
    // SAFETY: the header's contract: NULL, or a live handle the caller gives up.
    unsafe { args::close(b, "shmbus_blackboard_close") };
}
