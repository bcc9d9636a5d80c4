//! `shmbus_keyed_blackboard`: a fixed set of named keys chosen at creation, each its own
//! blackboard (one value, written by any process, read by many, never torn).

use std::ffi::{c_char, c_int, c_void, CString};

use shmbus::KeyedBlackboard;

use crate::args::{self, Wait};
use crate::handler::{callback, shmbus_handler, shmbus_update_fn, UserPtr};
use crate::options::shmbus_options;
use crate::status::{guard, guard_value, Fail, OK};

/// A keyed blackboard. Threads may share one handle: every keyed blackboard function may
/// be called from several threads at once.
// `repr(C)`: the tag comes first whatever the type, so that `args::check` reads it there.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct shmbus_keyed_blackboard {
    tag: u64,
    pub(crate) inner: KeyedBlackboard,
    /// The keys as C strings, in their order, for `shmbus_keyed_blackboard_key` (valid as
    /// long as the handle).
    keys: Vec<CString>,
}

args::tagged!(
    shmbus_keyed_blackboard,
    0x5348_4d42_4b45_5942,
    "keyed blackboard",
    inner: KeyedBlackboard,
    keys: Vec<CString>,
);

// The header promises that threads may share a keyed blackboard handle.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<KeyedBlackboard>();
    shared::<Vec<CString>>();
};

impl shmbus_keyed_blackboard {
    /// The handle of an opened or created board, with its keys as C strings.
    fn of(board: KeyedBlackboard) -> Result<shmbus_keyed_blackboard, Fail> {
        let keys = board
            .keys()
            .iter()
            // A key has no control character (checked when it is created and when it is
            // opened), so no NUL.
            .map(|k| CString::new(k.as_str()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| Fail {
                code: crate::status::shmbus_status::SHMBUS_ERR_INTERNAL,
                message: format!(
                    "a key of {} holds a NUL byte (a bug in shmbus, please report it)",
                    describe(&board)
                ),
            })?;
        Ok(shmbus_keyed_blackboard::new(board, keys))
    }
}

/// The board as messages name it: `` `robot` ``, or `` `robot` in namespace `test` `` (as
/// the library's own messages do).
fn describe(board: &KeyedBlackboard) -> String {
    let name = board.name();
    match name.namespace() {
        Some(ns) => format!("`{name}` in namespace `{ns}`"),
        None => format!("`{name}`"),
    }
}

/// The keys of a create call: `key_count` C strings at `keys`, each refused with
/// `SHMBUS_ERR_INVALID` when NULL or not UTF-8 (the library checks the rest: how many,
/// lengths, control characters, duplicates).
///
/// # Safety
///
/// `keys` is NULL or valid for reads of `key_count` pointers, each NULL or a NUL-terminated
/// string that outlives the call.
unsafe fn key_set<'a>(
    keys: *const *const c_char,
    key_count: usize,
    func: &str,
) -> Result<Vec<&'a str>, Fail> {
    // More keys than a board may have: refused before the array is read.
    if key_count > KeyedBlackboard::MAX_KEYS {
        return Err(shmbus::Error::InvalidConfig {
            reason: format!(
                "{key_count} keys: a keyed blackboard has 1 to {}",
                KeyedBlackboard::MAX_KEYS
            ),
        }
        .into());
    }
    // SAFETY: forwarded contract.
    unsafe { args::texts(keys, key_count, func, "key") }
}

/// Creates a keyed blackboard with `key_count` keys (the strings at `keys`: 1 to 4096 of
/// them, each 1 to 60 bytes of UTF-8 without control characters, all different), each
/// holding values of up to `capacity` bytes; every key starts at version 0, with no value.
/// The keys are fixed: other processes open the board with its keys. An invalid key set (a
/// NULL array or entry, a key that is not UTF-8 included) is `SHMBUS_ERR_INVALID`. The
/// board is removed when its creator closes it, unless the options make it persistent.
#[no_mangle]
pub unsafe extern "C" fn shmbus_keyed_blackboard_create(
    name: *const c_char,
    keys: *const *const c_char,
    key_count: usize,
    capacity: usize,
    out: *mut *mut shmbus_keyed_blackboard,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        shmbus_keyed_blackboard_create_with(name, keys, key_count, capacity, std::ptr::null(), out)
    }
}

/// [`shmbus_keyed_blackboard_create`] with options (NULL: the defaults).
#[no_mangle]
pub unsafe extern "C" fn shmbus_keyed_blackboard_create_with(
    name: *const c_char,
    keys: *const *const c_char,
    key_count: usize,
    capacity: usize,
    opts: *const shmbus_options,
    out: *mut *mut shmbus_keyed_blackboard,
) -> c_int {
    const F: &str = "shmbus_keyed_blackboard_create";
    // SAFETY: the header's contract for each argument.
    unsafe {
        args::make(F, name, opts, out, |name, opts| {
            let keys = key_set(keys, key_count, F)?;
            let b = KeyedBlackboard::create_with(name, &keys, capacity, opts)?;
            shmbus_keyed_blackboard::of(b)
        })
    }
}

/// Opens an existing keyed blackboard, with the keys it was created with
/// (`SHMBUS_ERR_MISMATCH` for a plain blackboard or another kind of object).
#[no_mangle]
pub unsafe extern "C" fn shmbus_keyed_blackboard_open(
    name: *const c_char,
    out: *mut *mut shmbus_keyed_blackboard,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { shmbus_keyed_blackboard_open_with(name, std::ptr::null(), out) }
}

/// [`shmbus_keyed_blackboard_open`] with options (NULL: the defaults).
#[no_mangle]
pub unsafe extern "C" fn shmbus_keyed_blackboard_open_with(
    name: *const c_char,
    opts: *const shmbus_options,
    out: *mut *mut shmbus_keyed_blackboard,
) -> c_int {
    // SAFETY: the header's contract for each argument.
    unsafe {
        args::make(
            "shmbus_keyed_blackboard_open",
            name,
            opts,
            out,
            |name, opts| shmbus_keyed_blackboard::of(KeyedBlackboard::open_with(name, opts)?),
        )
    }
}

/// Opens the keyed blackboard, or creates it with these keys and `capacity` if it does not
/// exist (race-free). The keys must make a valid key set either way; an existing board
/// keeps its own keys and capacity (see `shmbus_keyed_blackboard_key_count`,
/// `shmbus_keyed_blackboard_key` and `shmbus_keyed_blackboard_capacity`).
#[no_mangle]
pub unsafe extern "C" fn shmbus_keyed_blackboard_create_or_open(
    name: *const c_char,
    keys: *const *const c_char,
    key_count: usize,
    capacity: usize,
    opts: *const shmbus_options,
    out: *mut *mut shmbus_keyed_blackboard,
) -> c_int {
    const F: &str = "shmbus_keyed_blackboard_create_or_open";
    // SAFETY: the header's contract for each argument.
    unsafe {
        args::make(F, name, opts, out, |name, opts| {
            let keys = key_set(keys, key_count, F)?;
            let b = KeyedBlackboard::create_or_open_with(name, &keys, capacity, opts)?;
            shmbus_keyed_blackboard::of(b)
        })
    }
}

/// The largest value each key holds, in bytes (0 for an invalid handle).
#[no_mangle]
pub unsafe extern "C" fn shmbus_keyed_blackboard_capacity(
    b: *const shmbus_keyed_blackboard,
) -> usize {
    const F: &str = "shmbus_keyed_blackboard_capacity";
    guard_value(F, 0, || {
        // SAFETY: the header's contract for handles.
        let h = unsafe { args::handle_ref(b, F) }?;
        Ok(h.inner.capacity())
    })
}

/// How many keys the board has (at least 1; 0 for an invalid handle).
#[no_mangle]
pub unsafe extern "C" fn shmbus_keyed_blackboard_key_count(
    b: *const shmbus_keyed_blackboard,
) -> usize {
    const F: &str = "shmbus_keyed_blackboard_key_count";
    guard_value(F, 0, || {
        // SAFETY: the header's contract for handles.
        let h = unsafe { args::handle_ref(b, F) }?;
        Ok(h.keys.len())
    })
}

/// Key number `index` (0 to `shmbus_keyed_blackboard_key_count` - 1, in the order given at
/// creation), a NUL-terminated string valid until the handle is closed; NULL for an
/// invalid handle or an index out of range (with a message for `shmbus_last_error`).
#[no_mangle]
pub unsafe extern "C" fn shmbus_keyed_blackboard_key(
    b: *const shmbus_keyed_blackboard,
    index: usize,
) -> *const c_char {
    const F: &str = "shmbus_keyed_blackboard_key";
    guard_value(F, std::ptr::null(), || {
        // SAFETY: the header's contract for handles.
        let h = unsafe { args::handle_ref(b, F) }?;
        match h.keys.get(index) {
            Some(key) => Ok(key.as_ptr()),
            None => Err(Fail::invalid(format!(
                "{F}: index {index} is out of range: {} has {} keys (0 to {})",
                describe(&h.inner),
                h.keys.len(),
                h.keys.len() - 1
            ))),
        }
    })
}

/// Replaces the value of `key` with `len` bytes from `data` (readers see all of it or none
/// of it) and wakes whoever waits for a new version of that key. `SHMBUS_ERR_UNKNOWN_KEY`
/// when the board has no such key, `SHMBUS_ERR_TOO_LARGE` beyond the capacity.
#[no_mangle]
pub unsafe extern "C" fn shmbus_keyed_blackboard_write(
    b: *mut shmbus_keyed_blackboard,
    key: *const c_char,
    data: *const c_void,
    len: usize,
) -> c_int {
    const F: &str = "shmbus_keyed_blackboard_write";
    guard(F, || {
        // SAFETY: the header's contract for each argument (a shared handle).
        let (b, key, data) = unsafe {
            (
                args::handle_ref(b, F)?,
                args::text(key, F, "key")?,
                args::bytes(data, len, F)?,
            )
        };
        b.inner.write(key, data)?;
        Ok(OK)
    })
}

/// Copies the current value of `key` into `buf` (`cap` bytes): its length goes to `*len`
/// and its version to `*version` (NULL to ignore; version 0 and length 0 before the key's
/// first write). On `SHMBUS_ERR_TOO_SMALL`, `*len` is the size needed (a buffer of the
/// capacity always suffices). `SHMBUS_ERR_UNKNOWN_KEY` when the board has no such key.
#[no_mangle]
pub unsafe extern "C" fn shmbus_keyed_blackboard_read(
    b: *mut shmbus_keyed_blackboard,
    key: *const c_char,
    buf: *mut c_void,
    cap: usize,
    len: *mut usize,
    version: *mut u64,
) -> c_int {
    const F: &str = "shmbus_keyed_blackboard_read";
    guard(F, || {
        // SAFETY: the header's contract for each argument (a shared handle).
        let (b, key, buf, len, version) = unsafe {
            (
                args::handle_ref(b, F)?,
                args::text(key, F, "key")?,
                args::buffer(buf, cap, F)?,
                args::out(len, F, "len")?,
                args::out_opt(version, F, "version")?,
            )
        };
        match b.inner.read_into(key, buf) {
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

/// Stores the version of `key`'s current value in `*version` (counts the key's writes
/// since creation; 0 before its first write). `SHMBUS_ERR_UNKNOWN_KEY` when the board has
/// no such key. (Unlike `shmbus_blackboard_version`, a status: a mistyped key must not
/// pass for a key never written.)
#[no_mangle]
pub unsafe extern "C" fn shmbus_keyed_blackboard_version(
    b: *const shmbus_keyed_blackboard,
    key: *const c_char,
    version: *mut u64,
) -> c_int {
    const F: &str = "shmbus_keyed_blackboard_version";
    guard(F, || {
        // SAFETY: the header's contract for each argument.
        let (b, key, version) = unsafe {
            (
                args::handle_ref(b, F)?,
                args::text(key, F, "key")?,
                args::out(version, F, "version")?,
            )
        };
        *version = b.inner.version(key)?;
        Ok(OK)
    })
}

/// Waits until the version of `key` is newer than `version` and stores the new one in
/// `*newer` (NULL to ignore). `timeout_ns < 0` waits as long as it takes, otherwise
/// `SHMBUS_ERR_TIMEOUT` when it passes. Writes of other keys do not end the wait.
/// `SHMBUS_ERR_UNKNOWN_KEY` when the board has no such key.
#[no_mangle]
pub unsafe extern "C" fn shmbus_keyed_blackboard_wait_newer(
    b: *const shmbus_keyed_blackboard,
    key: *const c_char,
    version: u64,
    timeout_ns: i64,
    newer: *mut u64,
) -> c_int {
    const F: &str = "shmbus_keyed_blackboard_wait_newer";
    guard(F, || {
        // SAFETY: the header's contract for each argument.
        let (b, key, newer) = unsafe {
            (
                args::handle_ref(b, F)?,
                args::text(key, F, "key")?,
                args::out_opt(newer, F, "newer")?,
            )
        };
        match b
            .inner
            .wait_newer(key, version, Wait::from_ns(timeout_ns).as_option())?
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

/// Runs `cb` on a background thread for every version of `key` written after `version`
/// (0: the key's current value first, if there is one), with `user` passed back, and
/// stores the handler in `*out`. Writes of other keys do not call it. A callback slower
/// than the writer sees the newest value and is told how many versions it skipped. The
/// handler may outlive the board's handle. `SHMBUS_ERR_UNKNOWN_KEY` when the board has no
/// such key.
#[no_mangle]
pub unsafe extern "C" fn shmbus_keyed_blackboard_on_update(
    b: *const shmbus_keyed_blackboard,
    key: *const c_char,
    version: u64,
    cb: shmbus_update_fn,
    user: *mut c_void,
    out: *mut *mut shmbus_handler,
) -> c_int {
    const F: &str = "shmbus_keyed_blackboard_on_update";
    guard(F, || {
        // SAFETY: the header's contract for each argument.
        let (b, key, out) = unsafe {
            (
                args::handle_ref(b, F)?,
                args::text(key, F, "key")?,
                args::out(out, F, "out")?,
            )
        };
        let cb = callback(cb, F)?;
        let user = UserPtr(user);
        let guard = b.inner.key(key)?.on_update_from(version, move |u| {
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

/// Frees the handle (NULL is ignored); the creator's close removes the keyed blackboard
/// unless it is persistent. The strings `shmbus_keyed_blackboard_key` returned go with it.
#[no_mangle]
pub unsafe extern "C" fn shmbus_keyed_blackboard_close(b: *mut shmbus_keyed_blackboard) {
    // SAFETY: the header's contract: NULL, or a live handle the caller gives up.
    unsafe { args::close(b, "shmbus_keyed_blackboard_close") };
}
