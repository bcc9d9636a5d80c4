//! Receive handlers with C callbacks: `shmbus_handler`, run on a background thread.

use std::ffi::{c_int, c_void};

use shmbus::{HandlerGuard, HandlerStats};

use crate::args;
use crate::status::{guard, Fail, OK};

/// Called on the handler's thread for each message: its bytes (valid only during the
/// call), its length, the number of messages lost just before it (lossy channels), and the
/// `user` pointer given at registration. It must not unwind (no C++ exception, no
/// `longjmp`) out of the call.
#[allow(non_camel_case_types)]
pub type shmbus_message_fn =
    Option<unsafe extern "C" fn(data: *const c_void, len: usize, lost: u64, user: *mut c_void)>;

/// Called on the handler's thread for each new blackboard value: its bytes (valid only
/// during the call), length, version, the versions skipped since the previous call, and
/// the `user` pointer. It must not unwind out of the call.
#[allow(non_camel_case_types)]
pub type shmbus_update_fn = Option<
    unsafe extern "C" fn(
        data: *const c_void,
        len: usize,
        version: u64,
        skipped: u64,
        user: *mut c_void,
    ),
>;

/// What a handler did before it stopped.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, Default)]
pub struct shmbus_handler_stats {
    /// Messages or values delivered to the callback.
    pub delivered: u64,
    /// Messages lost or versions skipped in all.
    pub skipped: u64,
}

impl From<HandlerStats> for shmbus_handler_stats {
    fn from(s: HandlerStats) -> Self {
        shmbus_handler_stats {
            delivered: s.delivered,
            skipped: s.skipped,
        }
    }
}

/// A running receive handler. Stop it with `shmbus_handler_stop` or
/// `shmbus_handler_close`, from one thread at a time, not from its own callback.
// `repr(C)`: the tag comes first whatever the type, so that `args::check` reads it there.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct shmbus_handler {
    tag: u64,
    pub(crate) inner: HandlerGuard,
}

args::tagged!(shmbus_handler, 0x5348_4d42_4841_4e44, "handler", inner: HandlerGuard);

/// The `user` pointer, handed to the handler's thread. The C caller registered it for that
/// use: it is only ever passed back to the caller's callback.
#[derive(Clone, Copy)]
pub(crate) struct UserPtr(pub *mut c_void);

// SAFETY: the pointer is never dereferenced by shmbus, only given back to the callback the
// caller registered to run on another thread (the header says so).
unsafe impl Send for UserPtr {}

impl UserPtr {
    /// The pointer (a method, so that closures capture the `Send` wrapper, not its field).
    pub(crate) fn get(self) -> *mut c_void {
        self.0
    }
}

// The header says these handles may move between threads.
const _: fn() = || {
    fn movable<T: Send>() {}
    movable::<HandlerGuard>();
    movable::<shmbus::Publisher>();
    movable::<shmbus::Subscriber>();
    movable::<shmbus::Duplex>();
    fn shared<T: Send + Sync>() {}
    shared::<shmbus::Options>();
};

/// Checks a callback argument.
pub(crate) fn callback<T>(cb: Option<T>, func: &str) -> Result<T, Fail> {
    cb.ok_or_else(|| Fail::invalid(format!("{func}: the callback is NULL")))
}

/// Stops the handler, waits for its thread to finish (a callback in progress completes),
/// stores what it did in `*stats` (NULL to ignore) and frees it. When the handler had
/// stopped because receiving failed, returns that failure's status (e.g.
/// `SHMBUS_ERR_PUBLISHER_GONE`, `SHMBUS_ERR_CORRUPT`) with its message. Do not call it from
/// the handler's own callback.
#[no_mangle]
pub unsafe extern "C" fn shmbus_handler_stop(
    h: *mut shmbus_handler,
    stats: *mut shmbus_handler_stats,
) -> c_int {
    const F: &str = "shmbus_handler_stop";
    guard(F, || {
        // SAFETY: the header's contract for each argument.
        let stats = unsafe { args::out_opt(stats, F, "stats") }?;
        // SAFETY: a live handle the caller gives up.
        let h = unsafe { args::take(h, F) }?;
        let done = h.inner.stop()?;
        if let Some(stats) = stats {
            *stats = done.into();
        }
        Ok(OK)
    })
}

/// 1 when the handler's thread has finished (the stream ended, or it failed), 0 while it
/// runs, a negative status for an invalid handle.
#[no_mangle]
pub unsafe extern "C" fn shmbus_handler_is_finished(h: *const shmbus_handler) -> c_int {
    const F: &str = "shmbus_handler_is_finished";
    guard(F, || {
        // SAFETY: the header's contract for handles.
        let h = unsafe { args::handle_ref(h, F) }?;
        Ok(c_int::from(h.inner.is_finished()))
    })
}

/// Stops the handler as `shmbus_handler_stop` does and frees it, ignoring how it ended.
/// NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn shmbus_handler_close(h: *mut shmbus_handler) {
    // SAFETY: the header's contract: NULL, or a live handle the caller gives up.
    unsafe { args::close(h, "shmbus_handler_close") };
}

/// Runs `cb` on a background thread for each message of the subscriber, with `user` passed
/// back, until the stream ends or the handler is stopped, and stores the handler in `*out`.
/// The subscriber is consumed in every case (do not use or close it afterwards), except
/// when it is not a valid handle (`SHMBUS_ERR_INVALID`).
#[no_mangle]
pub unsafe extern "C" fn shmbus_subscriber_on_message(
    s: *mut crate::channel::shmbus_subscriber,
    cb: shmbus_message_fn,
    user: *mut c_void,
    out: *mut *mut shmbus_handler,
) -> c_int {
    const F: &str = "shmbus_subscriber_on_message";
    guard(F, || {
        // SAFETY: a live subscriber, which the caller gives up (in every case, as the
        // header says: taken before anything else can fail).
        let sub = unsafe { args::take(s, F) }?;
        // SAFETY: the header's contract for out-parameters.
        let out = unsafe { args::out(out, F, "out") }?;
        let cb = callback(cb, F)?;
        let user = UserPtr(user);
        let guard = sub.inner.on_message(move |m| {
            // SAFETY: the caller's callback, with the bytes valid for the call, as documented.
            unsafe { cb(m.data.as_ptr().cast(), m.data.len(), m.lost, user.get()) }
        })?;
        args::give(out, shmbus_handler::new(guard));
        Ok(OK)
    })
}
