//! `shmbus_duplex`: a two-way link between a server and a client, with requests and replies.

use std::ffi::{c_char, c_int, c_void};

use shmbus::{Duplex, Received};

use crate::args::{self, Wait};
use crate::options::shmbus_options;
use crate::status::{guard, Fail, OK};

/// One end of a duplex link. Use it from one thread at a time (it may move between
/// threads).
// `repr(C)`: the tag comes first whatever the type, so that `args::check` reads it there.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct shmbus_duplex {
    tag: u64,
    pub(crate) inner: Duplex,
    /// A message that did not fit the caller's buffer, kept for the next receive.
    pub(crate) kept: Option<Received>,
    /// A reply that did not fit, kept for `shmbus_duplex_take_reply`.
    pub(crate) reply: Option<Vec<u8>>,
}

args::tagged!(shmbus_duplex, 0x5348_4d42_4455_504c, "duplex", inner: Duplex, kept: Option<Received>, reply: Option<Vec<u8>>);

/// Copies `data` into `buf` when it fits; the length (needed) goes to `len` either way.
fn deliver(data: &[u8], buf: &mut [u8], len: &mut usize) -> Result<(), Fail> {
    *len = data.len();
    if data.len() > buf.len() {
        return Err(Fail {
            code: crate::status::shmbus_status::SHMBUS_ERR_TOO_SMALL,
            message: format!(
                "the message is {} bytes but the buffer holds only {}: pass a larger buffer \
                 (the message is kept for the next call)",
                data.len(),
                buf.len()
            ),
        });
    }
    buf[..data.len()].copy_from_slice(data);
    Ok(())
}

/// Becomes the server of link `name` (creating it); clients connect to it one at a time.
#[no_mangle]
pub unsafe extern "C" fn shmbus_duplex_listen(
    name: *const c_char,
    opts: *const shmbus_options,
    out: *mut *mut shmbus_duplex,
) -> c_int {
    // SAFETY: the header's contract for each argument.
    unsafe {
        args::make("shmbus_duplex_listen", name, opts, out, |name, opts| {
            let d = Duplex::listen_with(name, opts)?;
            Ok(shmbus_duplex::new(d, None, None))
        })
    }
}

/// Connects to the server of link `name`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_duplex_connect(
    name: *const c_char,
    opts: *const shmbus_options,
    out: *mut *mut shmbus_duplex,
) -> c_int {
    // SAFETY: the header's contract for each argument.
    unsafe {
        args::make("shmbus_duplex_connect", name, opts, out, |name, opts| {
            let d = Duplex::connect_with(name, opts)?;
            Ok(shmbus_duplex::new(d, None, None))
        })
    }
}

/// [`shmbus_duplex_connect`], waiting at most `timeout_ns` nanoseconds (`< 0` as long as
/// it takes) for the server to listen and for another connected client to leave (even one
/// killed): `SHMBUS_ERR_NOT_FOUND` or `SHMBUS_ERR_EXISTS` (a client is connected) when the
/// time is up.
/// No polling: it watches the link's files (inotify).
#[no_mangle]
pub unsafe extern "C" fn shmbus_duplex_connect_timeout(
    name: *const c_char,
    opts: *const shmbus_options,
    timeout_ns: i64,
    out: *mut *mut shmbus_duplex,
) -> c_int {
    let timeout = crate::args::Wait::from_ns(timeout_ns)
        .as_option()
        .unwrap_or(std::time::Duration::MAX);
    // SAFETY: the header's contract for each argument.
    unsafe {
        args::make(
            "shmbus_duplex_connect_timeout",
            name,
            opts,
            out,
            |name, opts| {
                let d = Duplex::connect_timeout_with(name, timeout, opts)?;
                Ok(shmbus_duplex::new(d, None, None))
            },
        )
    }
}

/// Sends a plain message (no reply expected) to the other end.
#[no_mangle]
pub unsafe extern "C" fn shmbus_duplex_send(
    d: *mut shmbus_duplex,
    data: *const c_void,
    len: usize,
) -> c_int {
    const F: &str = "shmbus_duplex_send";
    guard(F, || {
        // SAFETY: the header's contract for each argument.
        let (d, data) = unsafe { (args::handle_mut(d, F)?, args::bytes(data, len, F)?) };
        d.inner.send(data)?;
        Ok(OK)
    })
}

/// Receives the next message or request into `buf` (`cap` bytes): its length goes to
/// `*len`, and its request id to `*request` (NULL to ignore): 0 for a plain message, else
/// pass it to `shmbus_duplex_reply`. Waits as `shmbus_subscriber_recv`. On
/// `SHMBUS_ERR_TOO_SMALL`, `*len` is the size needed and the message is kept for the next
/// call.
#[no_mangle]
pub unsafe extern "C" fn shmbus_duplex_recv(
    d: *mut shmbus_duplex,
    buf: *mut c_void,
    cap: usize,
    len: *mut usize,
    request: *mut u64,
    timeout_ns: i64,
) -> c_int {
    const F: &str = "shmbus_duplex_recv";
    guard(F, || {
        // SAFETY: the header's contract for each argument.
        let (d, buf, len, request) = unsafe {
            (
                args::handle_mut(d, F)?,
                args::buffer(buf, cap, F)?,
                args::out(len, F, "len")?,
                args::out_opt(request, F, "request")?,
            )
        };
        let msg = match d.kept.take() {
            Some(m) => m,
            None => match Wait::from_ns(timeout_ns) {
                Wait::Forever => d.inner.recv()?,
                Wait::No => match d.inner.recv_timeout(std::time::Duration::ZERO) {
                    Err(shmbus::Error::Timeout) => return Err(shmbus::Error::Empty.into()),
                    other => other?,
                },
                Wait::For(t) => d.inner.recv_timeout(t)?,
            },
        };
        if let Err(fail) = deliver(&msg.data, buf, len) {
            d.kept = Some(msg);
            return Err(fail);
        }
        if let Some(request) = request {
            *request = msg.request.unwrap_or(0);
        }
        Ok(OK)
    })
}

/// Answers request `request` (an id from `shmbus_duplex_recv`) with `len` bytes of `data`.
/// `SHMBUS_ERR_WRONG_MODE` for id 0 (a plain message has nobody waiting for a reply).
#[no_mangle]
pub unsafe extern "C" fn shmbus_duplex_reply(
    d: *mut shmbus_duplex,
    request: u64,
    data: *const c_void,
    len: usize,
) -> c_int {
    const F: &str = "shmbus_duplex_reply";
    guard(F, || {
        // SAFETY: the header's contract for each argument.
        let (d, data) = unsafe { (args::handle_mut(d, F)?, args::bytes(data, len, F)?) };
        let to = Received {
            data: Vec::new(),
            request: (request != 0).then_some(request),
        };
        d.inner.reply(&to, data)?;
        Ok(OK)
    })
}

/// Sends a request and waits at most `timeout_ns` in all (`< 0`: as long as it takes) for
/// its reply, which goes to `reply` (`cap` bytes) with its length in `*reply_len`.
/// Messages that arrive meanwhile are kept for `shmbus_duplex_recv`. On
/// `SHMBUS_ERR_TOO_SMALL`, `*reply_len` is the size needed and the reply is kept: fetch it
/// with `shmbus_duplex_take_reply`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_duplex_request(
    d: *mut shmbus_duplex,
    data: *const c_void,
    len: usize,
    reply: *mut c_void,
    cap: usize,
    reply_len: *mut usize,
    timeout_ns: i64,
) -> c_int {
    const F: &str = "shmbus_duplex_request";
    guard(F, || {
        // SAFETY: the header's contract for each argument.
        let (d, data, reply, reply_len) = unsafe {
            (
                args::handle_mut(d, F)?,
                args::bytes(data, len, F)?,
                args::buffer(reply, cap, F)?,
                args::out(reply_len, F, "reply_len")?,
            )
        };
        let timeout = match Wait::from_ns(timeout_ns) {
            Wait::Forever => std::time::Duration::MAX,
            Wait::No => std::time::Duration::ZERO,
            Wait::For(t) => t,
        };
        let answer = d.inner.request(data, timeout)?;
        if let Err(fail) = deliver(&answer, reply, reply_len) {
            d.reply = Some(answer);
            return Err(fail);
        }
        Ok(OK)
    })
}

/// Copies the reply that `shmbus_duplex_request` kept because it did not fit (as
/// `shmbus_duplex_recv` copies: `SHMBUS_ERR_TOO_SMALL` keeps it again).
/// `SHMBUS_ERR_NO_LOAN` when no reply is kept.
#[no_mangle]
pub unsafe extern "C" fn shmbus_duplex_take_reply(
    d: *mut shmbus_duplex,
    buf: *mut c_void,
    cap: usize,
    len: *mut usize,
) -> c_int {
    const F: &str = "shmbus_duplex_take_reply";
    guard(F, || {
        // SAFETY: the header's contract for each argument.
        let (d, buf, len) = unsafe {
            (
                args::handle_mut(d, F)?,
                args::buffer(buf, cap, F)?,
                args::out(len, F, "len")?,
            )
        };
        let Some(answer) = d.reply.take() else {
            return Err(Fail {
                code: crate::status::shmbus_status::SHMBUS_ERR_NO_LOAN,
                message: format!("{F}: no reply is kept (only one that did not fit is)"),
            });
        };
        if let Err(fail) = deliver(&answer, buf, len) {
            d.reply = Some(answer);
            return Err(fail);
        }
        Ok(OK)
    })
}

/// Closes this end of the link (the peer sees the end of the stream) and frees it. NULL is
/// ignored.
#[no_mangle]
pub unsafe extern "C" fn shmbus_duplex_close(d: *mut shmbus_duplex) {
    // SAFETY: the header's contract: NULL, or a live handle the caller gives up.
    unsafe { args::close(d, "shmbus_duplex_close") };
}
