//! `shmbus_waitset`: one thread waiting on many objects at once, in one system call.

use std::collections::VecDeque;
use std::ffi::{c_char, c_int};
use std::time::Duration;

use shmbus::{WaitKey, WaitSet};

use crate::args::{self, Wait};
use crate::blackboard::shmbus_blackboard;
use crate::channel::shmbus_subscriber;
use crate::event::shmbus_event;
use crate::keyed_blackboard::shmbus_keyed_blackboard;
use crate::options::{resolve, shmbus_options};
use crate::status::{guard, Fail, OK};

/// A wait set. One thread at a time uses it (attach, detach and wait need the handle
/// exclusively); the objects attached to it stay usable from anywhere, as usual.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct shmbus_waitset {
    tag: u64,
    pub(crate) inner: WaitSet,
    /// Every attached key.
    keys: Vec<WaitKey>,
    /// Ready keys a wait found but had no room for: the next wait returns them first.
    pending: VecDeque<WaitKey>,
}

args::tagged!(
    shmbus_waitset,
    0x5348_4d42_5741_4954,
    "wait set",
    inner: WaitSet,
    keys: Vec<WaitKey>,
    pending: VecDeque<WaitKey>
);

const _: fn() = || {
    fn movable<T: Send>() {}
    movable::<WaitSet>();
};

/// A new, empty wait set.
#[no_mangle]
pub unsafe extern "C" fn shmbus_waitset_create(out: *mut *mut shmbus_waitset) -> c_int {
    const F: &str = "shmbus_waitset_create";
    guard(F, || {
        // SAFETY: the header's contract for `out`.
        let out = unsafe { args::out(out, F, "out") }?;
        args::give(
            out,
            shmbus_waitset::new(WaitSet::new(), Vec::new(), VecDeque::new()),
        );
        Ok(OK)
    })
}

/// Closes the wait set (NULL is ignored). The objects attached to it stay open.
#[no_mangle]
pub unsafe extern "C" fn shmbus_waitset_close(ws: *mut shmbus_waitset) {
    // SAFETY: the header's contract: NULL, or a live handle the caller gives up.
    unsafe { args::close(ws, "shmbus_waitset_close") };
}

/// Attaches with `attach` and stores the key's number in `*key`.
///
/// # Safety
///
/// `ws` and `key` as the header says for every `shmbus_waitset_attach_*`.
unsafe fn attach(
    ws: *mut shmbus_waitset,
    key: *mut u64,
    func: &str,
    attach: impl FnOnce(&mut WaitSet) -> Result<WaitKey, Fail>,
) -> c_int {
    guard(func, || {
        // SAFETY: the header's contract for each argument.
        let (ws, key) = unsafe { (args::handle_mut(ws, func)?, args::out(key, func, "key")?) };
        let k = attach(&mut ws.inner)?;
        ws.keys.push(k);
        *key = k.index() as u64;
        Ok(OK)
    })
}

/// Attaches a subscriber: ready when it has a message (or a loss, or the end of the
/// stream) to receive, or its publisher died. The subscriber stays usable as before.
#[no_mangle]
pub unsafe extern "C" fn shmbus_waitset_attach_subscriber(
    ws: *mut shmbus_waitset,
    s: *const shmbus_subscriber,
    key: *mut u64,
) -> c_int {
    const F: &str = "shmbus_waitset_attach_subscriber";
    // SAFETY: the header's contract for each argument.
    unsafe {
        attach(ws, key, F, |set| {
            Ok(set.attach_subscriber(&args::handle_ref(s, F)?.inner)?)
        })
    }
}

/// Attaches an event: ready while set (manual reset), or once per release the set took
/// for the caller (auto reset: the wait consumes it, as a successful `shmbus_event_wait`).
#[no_mangle]
pub unsafe extern "C" fn shmbus_waitset_attach_event(
    ws: *mut shmbus_waitset,
    e: *const shmbus_event,
    key: *mut u64,
) -> c_int {
    const F: &str = "shmbus_waitset_attach_event";
    // SAFETY: the header's contract for each argument.
    unsafe {
        attach(ws, key, F, |set| {
            Ok(set.attach_event(&args::handle_ref(e, F)?.inner)?)
        })
    }
}

/// Attaches a blackboard: ready once per version newer than the last reported (the first:
/// newer than the version when attached).
#[no_mangle]
pub unsafe extern "C" fn shmbus_waitset_attach_blackboard(
    ws: *mut shmbus_waitset,
    b: *const shmbus_blackboard,
    key: *mut u64,
) -> c_int {
    const F: &str = "shmbus_waitset_attach_blackboard";
    // SAFETY: the header's contract for each argument.
    unsafe {
        attach(ws, key, F, |set| {
            Ok(set.attach_blackboard(&args::handle_ref(b, F)?.inner)?)
        })
    }
}

/// Attaches key `name` of a keyed blackboard, as `shmbus_waitset_attach_blackboard`
/// (`SHMBUS_ERR_UNKNOWN_KEY` when the board has no such key).
#[no_mangle]
pub unsafe extern "C" fn shmbus_waitset_attach_keyed_key(
    ws: *mut shmbus_waitset,
    b: *const shmbus_keyed_blackboard,
    name: *const c_char,
    key: *mut u64,
) -> c_int {
    const F: &str = "shmbus_waitset_attach_keyed_key";
    // SAFETY: the header's contract for each argument.
    unsafe {
        attach(ws, key, F, |set| {
            let board = &args::handle_ref(b, F)?.inner;
            let board_key = board.key(args::text(name, F, "key")?)?;
            Ok(set.attach_board_key(&board_key)?)
        })
    }
}

/// Attaches a timer: ready every `period_ns` nanoseconds (> 0) from now; periods missed
/// while nobody waited are skipped.
#[no_mangle]
pub unsafe extern "C" fn shmbus_waitset_attach_timer(
    ws: *mut shmbus_waitset,
    period_ns: i64,
    key: *mut u64,
) -> c_int {
    const F: &str = "shmbus_waitset_attach_timer";
    // SAFETY: the header's contract for each argument.
    unsafe {
        attach(ws, key, F, |set| {
            Ok(set.attach_timer(args::duration(period_ns, F, "period")?)?)
        })
    }
}

/// Attaches the appearance of object `name` (in the options' namespace, owned by a user
/// they accept; NULL: the defaults): ready once, when it exists and is finished.
#[no_mangle]
pub unsafe extern "C" fn shmbus_waitset_attach_appearance(
    ws: *mut shmbus_waitset,
    name: *const c_char,
    opts: *const shmbus_options,
    key: *mut u64,
) -> c_int {
    const F: &str = "shmbus_waitset_attach_appearance";
    // SAFETY: the header's contract for each argument.
    unsafe {
        attach(ws, key, F, |set| {
            let name = args::text(name, F, "name")?;
            Ok(set.attach_appearance(name, &resolve(opts, F)?)?)
        })
    }
}

/// Detaches `key`; `SHMBUS_ERR_INVALID` if it is not attached.
#[no_mangle]
pub unsafe extern "C" fn shmbus_waitset_detach(ws: *mut shmbus_waitset, key: u64) -> c_int {
    const F: &str = "shmbus_waitset_detach";
    guard(F, || {
        // SAFETY: the header's contract for the handle.
        let ws = unsafe { args::handle_mut(ws, F) }?;
        let Some(at) = ws.keys.iter().position(|k| k.index() as u64 == key) else {
            return Err(Fail::invalid(format!("{F}: key {key} is not attached")));
        };
        let k = ws.keys.swap_remove(at);
        ws.pending.retain(|p| *p != k);
        ws.inner.detach(k);
        Ok(OK)
    })
}

/// Waits until at least one attachment is ready, at most `timeout_ns` nanoseconds (`< 0`
/// as long as it takes, 0 not at all). Stores up to `cap` ready keys in `ready` and their
/// number in `*count`: `SHMBUS_OK` with `*count >= 1`, or `SHMBUS_ERR_TIMEOUT` with
/// `*count == 0`. Ready keys beyond `cap` are kept and returned first by the next wait
/// (which then does not sleep).
#[no_mangle]
pub unsafe extern "C" fn shmbus_waitset_wait(
    ws: *mut shmbus_waitset,
    timeout_ns: i64,
    ready: *mut u64,
    cap: usize,
    count: *mut usize,
) -> c_int {
    const F: &str = "shmbus_waitset_wait";
    guard(F, || {
        // SAFETY: the header's contract for each argument.
        let (ws, count) = unsafe { (args::handle_mut(ws, F)?, args::out(count, F, "count")?) };
        *count = 0;
        if cap == 0 {
            return Err(Fail::invalid(format!("{F}: `cap` is 0: no room for a key")));
        }
        // SAFETY: the header's contract: `ready` is valid for writes of `cap` keys.
        let ready = unsafe { args::slice_mut(ready, cap, F, "ready") }?;
        if ws.pending.is_empty() {
            let timeout = match Wait::from_ns(timeout_ns) {
                Wait::Forever => None,
                Wait::No => Some(Duration::ZERO),
                Wait::For(d) => Some(d),
            };
            ws.pending.extend(ws.inner.wait(timeout)?);
        }
        if ws.pending.is_empty() {
            return Err(shmbus::Error::Timeout.into());
        }
        while *count < cap {
            let Some(k) = ws.pending.pop_front() else {
                break;
            };
            ready[*count] = k.index() as u64;
            *count += 1;
        }
        Ok(OK)
    })
}
