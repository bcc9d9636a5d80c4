//! Broadcast channels: `shmbus_publisher`, `shmbus_subscriber`, `shmbus_channel_config`.

use std::ffi::{c_char, c_int, c_void};

use shmbus::{ChannelConfig, Mode, Publisher, Subscriber};

use crate::args::{self, Wait};
use crate::options::shmbus_options;
use crate::status::{guard, guard_value, Fail, OK};

/// `shmbus_channel_config.mode`: a slow subscriber loses messages, and is told how many.
pub const SHMBUS_LOSSY: c_int = 0;
/// `shmbus_channel_config.mode`: the publisher waits for the slowest live subscriber.
pub const SHMBUS_BACKPRESSURE: c_int = 1;

/// The shape of a channel, fixed at creation and checked by every opener. Fill it with
/// `shmbus_channel_config_default`, then change what you need.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug)]
pub struct shmbus_channel_config {
    /// Ring size in bytes: a power of two, at least 64 (default 256 KiB). Each message
    /// takes its length rounded up to 16, plus 16.
    pub capacity: usize,
    /// Largest message in bytes, at most `capacity / 2 - 16` (default 16 KiB).
    pub max_message: usize,
    /// `SHMBUS_LOSSY` (default) or `SHMBUS_BACKPRESSURE`.
    pub mode: c_int,
    /// How many subscribers may attach at once, 1 to 1024 (default 16).
    pub max_subscribers: usize,
}

impl From<&ChannelConfig> for shmbus_channel_config {
    fn from(c: &ChannelConfig) -> Self {
        shmbus_channel_config {
            capacity: c.capacity,
            max_message: c.max_message,
            mode: match c.mode {
                Mode::Lossy => SHMBUS_LOSSY,
                Mode::Backpressure => SHMBUS_BACKPRESSURE,
            },
            max_subscribers: c.max_subscribers,
        }
    }
}

impl shmbus_channel_config {
    fn to_rust(self, func: &str) -> Result<ChannelConfig, Fail> {
        let mode = match self.mode {
            SHMBUS_LOSSY => Mode::Lossy,
            SHMBUS_BACKPRESSURE => Mode::Backpressure,
            m => {
                return Err(Fail::invalid(format!(
                    "{func}: mode {m} is neither SHMBUS_LOSSY (0) nor SHMBUS_BACKPRESSURE (1)"
                )))
            }
        };
        Ok(ChannelConfig {
            capacity: self.capacity,
            max_message: self.max_message,
            mode,
            max_subscribers: self.max_subscribers,
        })
    }
}

/// Fills `cfg` with the default configuration (NULL is ignored).
#[no_mangle]
pub unsafe extern "C" fn shmbus_channel_config_default(cfg: *mut shmbus_channel_config) {
    guard("shmbus_channel_config_default", || {
        // SAFETY: the header's contract for out-parameters.
        if let Some(cfg) = unsafe { args::out_opt(cfg, "shmbus_channel_config_default", "cfg") }? {
            *cfg = (&ChannelConfig::default()).into();
        }
        Ok(OK)
    });
}

/// Fills `cfg` with the default configuration for a ring of `capacity` bytes, with the
/// largest message that fits it (the default 16 KiB, or less for a small ring).
#[no_mangle]
pub unsafe extern "C" fn shmbus_channel_config_with_capacity(
    cfg: *mut shmbus_channel_config,
    capacity: usize,
) {
    guard("shmbus_channel_config_with_capacity", || {
        // SAFETY: the header's contract for out-parameters.
        let cfg = unsafe { args::out_opt(cfg, "shmbus_channel_config_with_capacity", "cfg") }?;
        if let Some(cfg) = cfg {
            *cfg = (&ChannelConfig::with_capacity(capacity)).into();
        }
        Ok(OK)
    });
}

/// The one publisher of a channel. Use it from one thread at a time (it may move between
/// threads).
// `repr(C)`: the tag comes first whatever the type, so that `args::check` reads it there.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct shmbus_publisher {
    tag: u64,
    pub(crate) inner: Publisher,
}

args::tagged!(shmbus_publisher, 0x5348_4d42_5055_424c, "publisher", inner: Publisher);

/// A subscriber of a channel. Use it from one thread at a time (it may move between
/// threads).
// `repr(C)`: the tag comes first whatever the type, so that `args::check` reads it there.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct shmbus_subscriber {
    tag: u64,
    pub(crate) inner: Subscriber,
}

args::tagged!(shmbus_subscriber, 0x5348_4d42_5355_4253, "subscriber", inner: Subscriber);

/// Creates a channel and becomes its publisher. `cfg` NULL means the defaults. The channel
/// is removed when the publisher is closed (unless the options make it persistent).
#[no_mangle]
pub unsafe extern "C" fn shmbus_publisher_create(
    name: *const c_char,
    cfg: *const shmbus_channel_config,
    out: *mut *mut shmbus_publisher,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { shmbus_publisher_create_with(name, cfg, std::ptr::null(), out) }
}

/// [`shmbus_publisher_create`] with options (NULL: the defaults).
#[no_mangle]
pub unsafe extern "C" fn shmbus_publisher_create_with(
    name: *const c_char,
    cfg: *const shmbus_channel_config,
    opts: *const shmbus_options,
    out: *mut *mut shmbus_publisher,
) -> c_int {
    const F: &str = "shmbus_publisher_create";
    let make = |name: &str, opts: &shmbus::Options| {
        let config = if cfg.is_null() {
            ChannelConfig::default()
        } else {
            // SAFETY: non-null; a readable config per the header's contract (read unaligned:
            // nothing checked its alignment).
            unsafe { cfg.read_unaligned() }.to_rust(F)?
        };
        Ok(shmbus_publisher::new(Publisher::create_with(
            name, config, opts,
        )?))
    };
    // SAFETY: the header's contract for each argument.
    unsafe { args::make(F, name, opts, out, make) }
}

/// Becomes the publisher of an existing channel (whose publisher closed or died).
#[no_mangle]
pub unsafe extern "C" fn shmbus_publisher_open(
    name: *const c_char,
    opts: *const shmbus_options,
    out: *mut *mut shmbus_publisher,
) -> c_int {
    // SAFETY: the header's contract for each argument.
    unsafe {
        args::make("shmbus_publisher_open", name, opts, out, |name, opts| {
            let p = Publisher::open_with(name, opts)?;
            Ok(shmbus_publisher::new(p))
        })
    }
}

/// Publishes `len` bytes from `data`. Lossy: never waits. Back-pressure: waits until every
/// live subscriber has made room.
#[no_mangle]
pub unsafe extern "C" fn shmbus_publisher_send(
    p: *mut shmbus_publisher,
    data: *const c_void,
    len: usize,
) -> c_int {
    send(p, data, len, -1)
}

/// [`shmbus_publisher_send`] waiting at most `timeout_ns` for room: `< 0` as long as it
/// takes, `0` not at all (`SHMBUS_ERR_FULL`), otherwise `SHMBUS_ERR_TIMEOUT` when it passes.
#[no_mangle]
pub unsafe extern "C" fn shmbus_publisher_send_timeout(
    p: *mut shmbus_publisher,
    data: *const c_void,
    len: usize,
    timeout_ns: i64,
) -> c_int {
    send(p, data, len, timeout_ns)
}

/// Both sends (calling the exported function would go through the PLT).
#[inline(always)]
fn send(p: *mut shmbus_publisher, data: *const c_void, len: usize, timeout_ns: i64) -> c_int {
    const F: &str = "shmbus_publisher_send";
    guard(F, || {
        // SAFETY: the header's contract for each argument.
        let (p, data) = unsafe { (args::handle_mut(p, F)?, args::bytes(data, len, F)?) };
        match Wait::from_ns(timeout_ns) {
            Wait::Forever => p.inner.send(data),
            Wait::No => p.inner.try_send(data),
            Wait::For(t) => p.inner.send_timeout(data, t),
        }?;
        Ok(OK)
    })
}

/// Reserves `len` bytes inside the ring for a zero-copy send and stores their address in
/// `*buf`: write the message there, then `shmbus_publisher_commit`. Waits for room like
/// `shmbus_publisher_send`. The bytes are valid until the commit, the next send or loan on
/// this publisher (which discards an uncommitted loan, even when it fails), or its close.
#[no_mangle]
pub unsafe extern "C" fn shmbus_publisher_loan(
    p: *mut shmbus_publisher,
    len: usize,
    buf: *mut *mut c_void,
) -> c_int {
    loan(p, len, buf, -1)
}

/// [`shmbus_publisher_loan`] waiting at most `timeout_ns` for room (as
/// `shmbus_publisher_send_timeout`).
#[no_mangle]
pub unsafe extern "C" fn shmbus_publisher_loan_timeout(
    p: *mut shmbus_publisher,
    len: usize,
    buf: *mut *mut c_void,
    timeout_ns: i64,
) -> c_int {
    loan(p, len, buf, timeout_ns)
}

/// Both loans (calling the exported function would go through the PLT).
#[inline(always)]
fn loan(p: *mut shmbus_publisher, len: usize, buf: *mut *mut c_void, timeout_ns: i64) -> c_int {
    const F: &str = "shmbus_publisher_loan";
    guard(F, || {
        // SAFETY: the header's contract for each argument.
        let (p, buf) = unsafe { (args::handle_mut(p, F)?, args::out(buf, F, "buf")?) };
        let bytes = p
            .inner
            .hold_loan(len, Wait::from_ns(timeout_ns).as_option())?;
        *buf = bytes.as_mut_ptr().cast();
        Ok(OK)
    })
}

/// Publishes the loan taken by `shmbus_publisher_loan`. `SHMBUS_ERR_NO_LOAN` when none is
/// held (never taken, committed already, or discarded by a send).
#[no_mangle]
pub unsafe extern "C" fn shmbus_publisher_commit(p: *mut shmbus_publisher) -> c_int {
    const F: &str = "shmbus_publisher_commit";
    guard(F, || {
        // SAFETY: the header's contract for handles.
        unsafe { args::handle_mut(p, F) }?.inner.commit_held()?;
        Ok(OK)
    })
}

/// Gives up the loan taken by `shmbus_publisher_loan`, if any: nothing is published.
#[no_mangle]
pub unsafe extern "C" fn shmbus_publisher_discard(p: *mut shmbus_publisher) -> c_int {
    const F: &str = "shmbus_publisher_discard";
    guard(F, || {
        // SAFETY: the header's contract for handles.
        unsafe { args::handle_mut(p, F) }?.inner.discard_held();
        Ok(OK)
    })
}

/// Messages published on the channel so far (0 for an invalid handle).
#[no_mangle]
pub unsafe extern "C" fn shmbus_publisher_published(p: *const shmbus_publisher) -> u64 {
    const F: &str = "shmbus_publisher_published";
    guard_value(F, 0, || {
        // SAFETY: the header's contract for handles.
        let h = unsafe { args::handle_ref(p, F) }?;
        Ok(h.inner.published())
    })
}

/// Subscribers attached now (dead ones are not counted; 0 for an invalid handle).
#[no_mangle]
pub unsafe extern "C" fn shmbus_publisher_subscriber_count(p: *const shmbus_publisher) -> usize {
    const F: &str = "shmbus_publisher_subscriber_count";
    guard_value(F, 0, || {
        // SAFETY: the header's contract for handles.
        let h = unsafe { args::handle_ref(p, F) }?;
        Ok(h.inner.subscriber_count())
    })
}

/// Waits until at least `count` subscribers are attached, at most `timeout_ns`
/// nanoseconds (`< 0` as long as it takes, 0 not at all): `SHMBUS_OK` once they are,
/// `SHMBUS_ERR_TIMEOUT` if they are not by then. Every subscriber's attach wakes the wait:
/// no polling.
#[no_mangle]
pub unsafe extern "C" fn shmbus_publisher_wait_subscribers(
    p: *const shmbus_publisher,
    count: usize,
    timeout_ns: i64,
) -> c_int {
    const F: &str = "shmbus_publisher_wait_subscribers";
    guard(F, || {
        // SAFETY: the header's contract for handles.
        let h = unsafe { args::handle_ref(p, F) }?;
        if h.inner
            .wait_for_subscribers(count, Wait::from_ns(timeout_ns).as_option())?
        {
            Ok(OK)
        } else {
            Err(shmbus::Error::Timeout.into())
        }
    })
}

/// Stores the channel's configuration in `*cfg`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_publisher_config(
    p: *const shmbus_publisher,
    cfg: *mut shmbus_channel_config,
) -> c_int {
    const F: &str = "shmbus_publisher_config";
    guard(F, || {
        // SAFETY: the header's contract for each argument.
        let (p, cfg) = unsafe { (args::handle_ref(p, F)?, args::out(cfg, F, "cfg")?) };
        *cfg = p.inner.config().into();
        Ok(OK)
    })
}

/// Ends the stream (subscribers drain what is left, then get `SHMBUS_ERR_DISCONNECTED`) and
/// frees the publisher; an uncommitted loan is not published. NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn shmbus_publisher_close(p: *mut shmbus_publisher) {
    // SAFETY: the header's contract: NULL, or a live handle the caller gives up.
    unsafe { args::close(p, "shmbus_publisher_close") };
}

/// Subscribes to an existing channel, starting with the next message published.
#[no_mangle]
pub unsafe extern "C" fn shmbus_subscriber_open(
    name: *const c_char,
    out: *mut *mut shmbus_subscriber,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { shmbus_subscriber_open_with(name, std::ptr::null(), 0, out) }
}

/// [`shmbus_subscriber_open`] with options (NULL: the defaults); with `from_oldest`
/// nonzero, starts with the oldest message the ring still holds (a replay).
#[no_mangle]
pub unsafe extern "C" fn shmbus_subscriber_open_with(
    name: *const c_char,
    opts: *const shmbus_options,
    from_oldest: c_int,
    out: *mut *mut shmbus_subscriber,
) -> c_int {
    // SAFETY: the header's contract for each argument.
    unsafe {
        args::make("shmbus_subscriber_open", name, opts, out, |name, opts| {
            let s = if from_oldest != 0 {
                Subscriber::open_from_oldest(name, opts)?
            } else {
                Subscriber::open_with(name, opts)?
            };
            Ok(shmbus_subscriber::new(s))
        })
    }
}

/// Receives the next message into `buf` (`cap` bytes) and stores its length in `*len`.
///
/// `timeout_ns < 0` waits as long as it takes; `0` does not wait (`SHMBUS_ERR_EMPTY`);
/// otherwise `SHMBUS_ERR_TIMEOUT` when it passes. On `SHMBUS_ERR_TOO_SMALL`, `*len` is the
/// size needed and the message stays unread. `SHMBUS_ERR_LAGGED` (lossy): messages were
/// lost before the next one, which the next call returns. `SHMBUS_ERR_DISCONNECTED` at the
/// end of the stream; `SHMBUS_ERR_PUBLISHER_GONE` when the publisher died.
#[no_mangle]
pub unsafe extern "C" fn shmbus_subscriber_recv(
    s: *mut shmbus_subscriber,
    buf: *mut c_void,
    cap: usize,
    len: *mut usize,
    timeout_ns: i64,
) -> c_int {
    const F: &str = "shmbus_subscriber_recv";
    guard(F, || {
        // SAFETY: the header's contract for each argument.
        let (s, buf, len) = unsafe {
            (
                args::handle_mut(s, F)?,
                args::buffer(buf, cap, F)?,
                args::out(len, F, "len")?,
            )
        };
        let got = match Wait::from_ns(timeout_ns) {
            Wait::Forever => s.inner.recv_slice(buf),
            Wait::No => s.inner.try_recv_slice(buf),
            Wait::For(t) => s.inner.recv_slice_timeout(buf, t),
        };
        match got {
            Ok(n) => {
                *len = n;
                Ok(OK)
            }
            Err(shmbus::Error::BufferTooSmall {
                needed,
                len: have,
                name,
            }) => {
                *len = needed;
                Err(shmbus::Error::BufferTooSmall {
                    needed,
                    len: have,
                    name,
                }
                .into())
            }
            Err(e) => Err(e.into()),
        }
    })
}

/// Zero-copy receive (back-pressure channels): stores the address and length of the next
/// message, in place in the ring, in `*data` and `*len`. The publisher does not overwrite
/// it until `shmbus_subscriber_release`, the next receive on this subscriber, or its close;
/// do not write to it. Waits as `shmbus_subscriber_recv`. `SHMBUS_ERR_WRONG_MODE` on a
/// lossy channel, and for a subscriber opened `from_oldest` until it has received (with
/// `shmbus_subscriber_recv`) the messages published before it joined.
#[no_mangle]
pub unsafe extern "C" fn shmbus_subscriber_recv_ref(
    s: *mut shmbus_subscriber,
    data: *mut *const c_void,
    len: *mut usize,
    timeout_ns: i64,
) -> c_int {
    const F: &str = "shmbus_subscriber_recv_ref";
    guard(F, || {
        // SAFETY: the header's contract for each argument.
        let (s, data, len) = unsafe {
            (
                args::handle_mut(s, F)?,
                args::out(data, F, "data")?,
                args::out(len, F, "len")?,
            )
        };
        let sample = match Wait::from_ns(timeout_ns) {
            Wait::Forever => s.inner.recv_ref(),
            Wait::No => s.inner.try_recv_ref(),
            Wait::For(t) => s.inner.recv_ref_timeout(t),
        }?;
        *data = sample.as_ptr().cast();
        *len = sample.len();
        // Keep the message borrowed past this call: dropping the sample would only publish
        // our progress to the publisher, which the next receive does anyway (and which is
        // what makes the borrowed bytes reusable).
        std::mem::forget(sample);
        Ok(OK)
    })
}

/// Ends the borrow of `shmbus_subscriber_recv_ref`: the publisher may reuse the bytes from
/// now on (this subscriber's progress is published at once). Harmless when nothing is
/// borrowed.
#[no_mangle]
pub unsafe extern "C" fn shmbus_subscriber_release(s: *mut shmbus_subscriber) -> c_int {
    const F: &str = "shmbus_subscriber_release";
    guard(F, || {
        // SAFETY: the header's contract for handles.
        let s = unsafe { args::handle_mut(s, F) }?;
        // The borrow ended at the Rust level when recv_ref returned; publishing our progress
        // now frees the message's room for a publisher that waits for it.
        s.inner.flush();
        Ok(OK)
    })
}

/// Messages lost so far (the sum of what each `SHMBUS_ERR_LAGGED` reported): on a lossy
/// channel, or while a back-pressure subscriber opened `from_oldest` replays; 0 for an
/// invalid handle.
#[no_mangle]
pub unsafe extern "C" fn shmbus_subscriber_lost(s: *const shmbus_subscriber) -> u64 {
    const F: &str = "shmbus_subscriber_lost";
    // SAFETY: the header's contract for handles.
    guard_value(F, 0, || Ok(unsafe { args::handle_ref(s, F) }?.inner.lost()))
}

/// 1 when the channel's publisher lives now, 0 when not, a negative status for an invalid
/// handle.
#[no_mangle]
pub unsafe extern "C" fn shmbus_subscriber_publisher_alive(s: *const shmbus_subscriber) -> c_int {
    const F: &str = "shmbus_subscriber_publisher_alive";
    guard(F, || {
        // SAFETY: the header's contract for handles.
        Ok(c_int::from(
            unsafe { args::handle_ref(s, F) }?.inner.publisher_alive(),
        ))
    })
}

/// Stores the channel's configuration in `*cfg`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_subscriber_config(
    s: *const shmbus_subscriber,
    cfg: *mut shmbus_channel_config,
) -> c_int {
    const F: &str = "shmbus_subscriber_config";
    guard(F, || {
        // SAFETY: the header's contract for each argument.
        let (s, cfg) = unsafe { (args::handle_ref(s, F)?, args::out(cfg, F, "cfg")?) };
        *cfg = s.inner.config().into();
        Ok(OK)
    })
}

/// Leaves the channel and frees the subscriber (a borrowed message is released). NULL is
/// ignored.
#[no_mangle]
pub unsafe extern "C" fn shmbus_subscriber_close(s: *mut shmbus_subscriber) {
    // SAFETY: the header's contract: NULL, or a live handle the caller gives up.
    unsafe { args::close(s, "shmbus_subscriber_close") };
}
