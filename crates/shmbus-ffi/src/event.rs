//! `shmbus_event`: a named event across processes that never loses a wake-up.

use std::ffi::{c_char, c_int};

use shmbus::{Event, EventMode};

use crate::args::{self, Wait};
use crate::options::shmbus_options;
use crate::status::{guard, OK};

/// An event. Threads may share one handle: every event function may be called from
/// several threads at once.
// `repr(C)`: the tag comes first whatever the type, so that `args::check` reads it there.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct shmbus_event {
    tag: u64,
    pub(crate) inner: Event,
}

args::tagged!(shmbus_event, 0x5348_4d42_4556_4e54, "event", inner: Event);

// The header promises that threads may share an event handle.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<Event>();
};

fn mode_of(manual_reset: c_int) -> EventMode {
    if manual_reset != 0 {
        EventMode::ManualReset
    } else {
        EventMode::AutoReset
    }
}

/// Creates an event, unset. `manual_reset` nonzero: once set it stays set, releasing every
/// waiter, until `shmbus_event_reset`; zero (auto-reset): each set releases one waiter.
#[no_mangle]
pub unsafe extern "C" fn shmbus_event_create(
    name: *const c_char,
    manual_reset: c_int,
    out: *mut *mut shmbus_event,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { shmbus_event_create_with(name, manual_reset, std::ptr::null(), out) }
}

/// [`shmbus_event_create`] with options (NULL: the defaults).
#[no_mangle]
pub unsafe extern "C" fn shmbus_event_create_with(
    name: *const c_char,
    manual_reset: c_int,
    opts: *const shmbus_options,
    out: *mut *mut shmbus_event,
) -> c_int {
    // SAFETY: the header's contract for each argument.
    unsafe {
        args::make("shmbus_event_create", name, opts, out, |name, opts| {
            let e = Event::create_with(name, mode_of(manual_reset), opts)?;
            Ok(shmbus_event::new(e))
        })
    }
}

/// Opens an existing event.
#[no_mangle]
pub unsafe extern "C" fn shmbus_event_open(
    name: *const c_char,
    out: *mut *mut shmbus_event,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { shmbus_event_open_with(name, std::ptr::null(), out) }
}

/// [`shmbus_event_open`] with options (NULL: the defaults).
#[no_mangle]
pub unsafe extern "C" fn shmbus_event_open_with(
    name: *const c_char,
    opts: *const shmbus_options,
    out: *mut *mut shmbus_event,
) -> c_int {
    // SAFETY: the header's contract for each argument.
    unsafe {
        args::make("shmbus_event_open", name, opts, out, |name, opts| {
            let e = Event::open_with(name, opts)?;
            Ok(shmbus_event::new(e))
        })
    }
}

/// Opens the event, or creates it if it does not exist (`SHMBUS_ERR_MISMATCH` if it exists
/// with the other reset mode).
#[no_mangle]
pub unsafe extern "C" fn shmbus_event_create_or_open(
    name: *const c_char,
    manual_reset: c_int,
    opts: *const shmbus_options,
    out: *mut *mut shmbus_event,
) -> c_int {
    // SAFETY: the header's contract for each argument.
    unsafe {
        args::make(
            "shmbus_event_create_or_open",
            name,
            opts,
            out,
            |name, opts| {
                let e = Event::create_or_open_with(name, mode_of(manual_reset), opts)?;
                Ok(shmbus_event::new(e))
            },
        )
    }
}

/// Sets the event: wakes every waiter (manual reset) or one (auto-reset; the event stays
/// set until a waiter takes it).
#[no_mangle]
pub unsafe extern "C" fn shmbus_event_set(e: *mut shmbus_event) -> c_int {
    const F: &str = "shmbus_event_set";
    guard(F, || {
        // SAFETY: the header's contract for handles (a shared handle).
        unsafe { args::handle_ref(e, F) }?.inner.set();
        Ok(OK)
    })
}

/// Unsets the event.
#[no_mangle]
pub unsafe extern "C" fn shmbus_event_reset(e: *mut shmbus_event) -> c_int {
    const F: &str = "shmbus_event_reset";
    guard(F, || {
        // SAFETY: the header's contract for handles (a shared handle).
        unsafe { args::handle_ref(e, F) }?.inner.reset();
        Ok(OK)
    })
}

/// 1 when the event is set, 0 when not, a negative status for an invalid handle.
#[no_mangle]
pub unsafe extern "C" fn shmbus_event_is_set(e: *const shmbus_event) -> c_int {
    const F: &str = "shmbus_event_is_set";
    guard(F, || {
        // SAFETY: the header's contract for handles.
        let h = unsafe { args::handle_ref(e, F) }?;
        Ok(c_int::from(h.inner.is_set()))
    })
}

/// Waits until the event is set (taking it, in auto-reset mode). `timeout_ns < 0` waits as
/// long as it takes; `0` only checks; otherwise `SHMBUS_ERR_TIMEOUT` when it passes.
#[no_mangle]
pub unsafe extern "C" fn shmbus_event_wait(e: *mut shmbus_event, timeout_ns: i64) -> c_int {
    const F: &str = "shmbus_event_wait";
    guard(F, || {
        // SAFETY: the header's contract for handles (a shared handle).
        let e = unsafe { args::handle_ref(e, F) }?;
        let got = match Wait::from_ns(timeout_ns) {
            Wait::Forever => {
                e.inner.wait();
                true
            }
            Wait::No => e.inner.wait_timeout(std::time::Duration::ZERO),
            Wait::For(t) => e.inner.wait_timeout(t),
        };
        if got {
            Ok(OK)
        } else {
            Err(shmbus::Error::Timeout.into())
        }
    })
}

/// Frees the handle (NULL is ignored); the creator's close removes the event unless it is
/// persistent.
#[no_mangle]
pub unsafe extern "C" fn shmbus_event_close(e: *mut shmbus_event) {
    // SAFETY: the header's contract: NULL, or a live handle the caller gives up.
    unsafe { args::close(e, "shmbus_event_close") };
}
