//! `shmbus_options`: how objects are created and opened (namespace, permission bits,
//! persistence, waiting, spinning, owner check), for the `*_with` functions.

use std::ffi::{c_char, c_int};

use shmbus::{Name, Options};

use crate::args;
use crate::status::{guard, Fail, OK};

/// Options for the `*_with` functions; start from `shmbus_options_create`. Not for use
/// by two threads at once; once set up, passing it to calls from several threads is fine.
// `repr(C)`: the tag comes first whatever the type, so that `args::check` reads it there.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct shmbus_options {
    tag: u64,
    pub(crate) inner: Options,
}

args::tagged!(shmbus_options, 0x5348_4d42_4f50_5453, "options", inner: Options);

/// Replaces the options with `f(options)`.
fn update(
    o: *mut shmbus_options,
    func: &str,
    f: impl FnOnce(Options) -> Result<Options, Fail>,
) -> c_int {
    guard(func, || {
        // SAFETY: the header's contract: a live options handle, not shared during the call.
        let o = unsafe { args::handle_mut(o, func) }?;
        // On a failure the options stay as they were.
        o.inner = f(o.inner.clone())?;
        Ok(OK)
    })
}

/// The options of a `*_with` call: the defaults for NULL.
pub(crate) fn resolve(o: *const shmbus_options, func: &str) -> Result<Options, Fail> {
    if o.is_null() {
        return Ok(Options::default());
    }
    // SAFETY: the header's contract: NULL or a live options handle.
    Ok(unsafe { args::handle_ref(o, func) }?.inner.clone())
}

/// New options with the defaults: the namespace from `SHMBUS_NAMESPACE`, mode 0600, removed
/// with their creator, a 1 s wait for an object being initialised, the default spin, and
/// only objects of this process's own user opened.
#[no_mangle]
pub unsafe extern "C" fn shmbus_options_create(out: *mut *mut shmbus_options) -> c_int {
    guard("shmbus_options_create", || {
        // SAFETY: the header's contract for out-parameters.
        let out = unsafe { args::out(out, "shmbus_options_create", "out") }?;
        args::give(out, shmbus_options::new(Options::default()));
        Ok(OK)
    })
}

/// Frees options (NULL is ignored). Objects made with them are not affected.
#[no_mangle]
pub unsafe extern "C" fn shmbus_options_close(o: *mut shmbus_options) {
    if o.is_null() {
        return;
    }
    guard("shmbus_options_close", || {
        // SAFETY: the header's contract: a live handle the caller gives up.
        unsafe { args::take(o, "shmbus_options_close") }?;
        Ok(OK)
    });
}

/// Uses namespace `ns` (1 to 32 characters of `A-Z a-z 0-9 _ -`); NULL means the default
/// (`SHMBUS_NAMESPACE`, or none). `SHMBUS_ERR_INVALID` for a namespace that breaks the rules.
#[no_mangle]
pub unsafe extern "C" fn shmbus_options_set_namespace(
    o: *mut shmbus_options,
    ns: *const c_char,
) -> c_int {
    const F: &str = "shmbus_options_set_namespace";
    let mut owned = None;
    let read = guard(F, || {
        if !ns.is_null() {
            // SAFETY: the header's contract for strings.
            owned = Some(unsafe { args::text(ns, F, "namespace") }?.to_owned());
        }
        Ok(OK)
    });
    if read != OK {
        return read;
    }
    let ns = owned;
    update(o, F, |opts| {
        if let Some(ns) = &ns {
            // Refuse a bad namespace now, not at the first create.
            Name::with_namespace("x", Some(ns))?;
        }
        Ok(opts.namespace(ns.as_deref()))
    })
}

/// Permission bits of objects created (e.g. `0660` to share with the group; default `0600`).
#[no_mangle]
pub unsafe extern "C" fn shmbus_options_set_mode(o: *mut shmbus_options, mode: u32) -> c_int {
    update(o, "shmbus_options_set_mode", |opts| {
        if mode & !0o777 != 0 {
            return Err(Fail::invalid(format!(
                "shmbus_options_set_mode: {mode:#o} is not a set of permission bits (0 to 0777)"
            )));
        }
        Ok(opts.mode(mode))
    })
}

/// Nonzero: objects created outlive their creator (until removed, or `shmbus gc`).
#[no_mangle]
pub unsafe extern "C" fn shmbus_options_set_persistent(
    o: *mut shmbus_options,
    persistent: c_int,
) -> c_int {
    update(o, "shmbus_options_set_persistent", |opts| {
        Ok(opts.persistent(persistent != 0))
    })
}

/// How long an open waits for an object its creator is still initialising (nanoseconds,
/// not negative).
#[no_mangle]
pub unsafe extern "C" fn shmbus_options_set_open_timeout(
    o: *mut shmbus_options,
    timeout_ns: i64,
) -> c_int {
    const F: &str = "shmbus_options_set_open_timeout";
    update(o, F, |opts| {
        Ok(opts.open_timeout(args::duration(timeout_ns, F, "timeout")?))
    })
}

/// How long an open waits for an object that does not exist yet to be created by another
/// process (nanoseconds; `< 0` as long as it takes; 0, the default, not at all:
/// `SHMBUS_ERR_NOT_FOUND` at once). The wait watches `/dev/shm` (inotify): no polling.
#[no_mangle]
pub unsafe extern "C" fn shmbus_options_set_wait_for_creation(
    o: *mut shmbus_options,
    timeout_ns: i64,
) -> c_int {
    const F: &str = "shmbus_options_set_wait_for_creation";
    update(o, F, |opts| {
        Ok(opts.wait_for_creation(
            crate::args::Wait::from_ns(timeout_ns)
                .as_option()
                .unwrap_or(std::time::Duration::MAX),
        ))
    })
}

/// How long blocking calls busy-wait before they sleep (nanoseconds, not negative; 0 never
/// spins). Spinning trades CPU for latency.
#[no_mangle]
pub unsafe extern "C" fn shmbus_options_set_spin(o: *mut shmbus_options, spin_ns: i64) -> c_int {
    const F: &str = "shmbus_options_set_spin";
    update(o, F, |opts| {
        Ok(opts.spin(args::duration(spin_ns, F, "spin")?))
    })
}

/// Also opens objects that belong to user `uid` (by default only this process's own user's
/// objects are opened, so that nobody can plant an object for you to use).
#[no_mangle]
pub unsafe extern "C" fn shmbus_options_allow_owner(o: *mut shmbus_options, uid: u32) -> c_int {
    update(o, "shmbus_options_allow_owner", |opts| {
        Ok(opts.allow_owner(uid))
    })
}

/// Opens objects whoever owns them (turns the owner check off).
#[no_mangle]
pub unsafe extern "C" fn shmbus_options_allow_any_owner(o: *mut shmbus_options) -> c_int {
    update(o, "shmbus_options_allow_any_owner", |opts| {
        Ok(opts.allow_any_owner())
    })
}

/// Opens only objects that belong to user `uid`.
#[no_mangle]
pub unsafe extern "C" fn shmbus_options_require_owner(o: *mut shmbus_options, uid: u32) -> c_int {
    update(o, "shmbus_options_require_owner", |opts| {
        Ok(opts.require_owner(uid))
    })
}
