//! Status codes, the thread's last error message, and the guard every entry point runs in:
//! no panic crosses into C, every failure leaves a message.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use shmbus::Error;

/// What a call did: `SHMBUS_OK` (0) or a negative error. Functions return it as an
/// `int`; `shmbus_last_error()` says more about the last error of this thread.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum shmbus_status {
    /// Success.
    SHMBUS_OK = 0,
    /// An argument is invalid: a NULL or wrong-type handle, a NULL pointer where one is needed,
    /// a name or namespace that breaks the naming rules, an impossible configuration, an offset
    /// outside a segment.
    SHMBUS_ERR_INVALID = -1,
    /// A wait with a timeout gave up.
    SHMBUS_ERR_TIMEOUT = -2,
    /// No message is waiting (a receive that was told not to wait).
    SHMBUS_ERR_EMPTY = -3,
    /// A back-pressure channel is full (a send that was told not to wait).
    SHMBUS_ERR_FULL = -4,
    /// The subscriber fell behind a lossy channel: messages were lost (how many: the message,
    /// and `shmbus_subscriber_lost`); the next receive continues with the oldest kept.
    SHMBUS_ERR_LAGGED = -5,
    /// End of stream: the publisher closed the channel and every message has been received.
    SHMBUS_ERR_DISCONNECTED = -6,
    /// The publisher died without closing; every message it sent has been received.
    SHMBUS_ERR_PUBLISHER_GONE = -7,
    /// No object of that name exists (check the name and `SHMBUS_NAMESPACE`).
    SHMBUS_ERR_NOT_FOUND = -8,
    /// An object of that name exists already (create), or the channel already has a live
    /// publisher.
    SHMBUS_ERR_EXISTS = -9,
    /// The operating system refused access, or the object belongs to a user this process does
    /// not trust (see `shmbus_options_allow_owner`).
    SHMBUS_ERR_PERMISSION = -10,
    /// The object is not a usable shmbus object: corrupt, damaged, not made by shmbus, not a
    /// regular file, sparse, or still being initialised by a creator that may have crashed.
    SHMBUS_ERR_CORRUPT = -11,
    /// The caller's buffer is too small; the length needed is stored where the call says, and
    /// the message or value stays unread.
    SHMBUS_ERR_TOO_SMALL = -12,
    /// The message or value is larger than the object accepts.
    SHMBUS_ERR_TOO_LARGE = -13,
    /// The object is of another kind, or was created with another configuration than the one
    /// asked for.
    SHMBUS_ERR_MISMATCH = -14,
    /// The object was made by a shmbus with another memory layout version.
    SHMBUS_ERR_VERSION = -15,
    /// Every subscriber slot of the channel is taken.
    SHMBUS_ERR_NO_SLOT = -16,
    /// The operation needs the other channel mode (zero-copy receive needs back-pressure), or a
    /// reply was asked for something that is not a request.
    SHMBUS_ERR_WRONG_MODE = -17,
    /// A blackboard's writer died in the middle of a write: the value is lost.
    SHMBUS_ERR_WRITER_DIED = -18,
    /// A blackboard stayed busy with another writer: try again.
    SHMBUS_ERR_BUSY = -19,
    /// /dev/shm has no room for the object.
    SHMBUS_ERR_NO_SPACE = -20,
    /// The handle was made by another process (this one is a `fork()` child of it).
    SHMBUS_ERR_FOREIGN_PROCESS = -21,
    /// There is nothing to commit (no loan is held) or to fetch.
    SHMBUS_ERR_NO_LOAN = -22,
    /// A receive handler stopped because it failed (the message says why).
    SHMBUS_ERR_HANDLER = -23,
    /// Another operating-system call failed (the message names it).
    SHMBUS_ERR_OS = -24,
    /// A bug in shmbus: an internal panic was caught at the boundary. Please report it.
    SHMBUS_ERR_INTERNAL = -25,
    /// A keyed blackboard has no such key (its keys are fixed when it is created; the message
    /// names the key).
    SHMBUS_ERR_UNKNOWN_KEY = -26,
}

use shmbus_status::*;

impl shmbus_status {
    /// Every status.
    const ALL: [shmbus_status; 27] = [
        SHMBUS_OK,
        SHMBUS_ERR_INVALID,
        SHMBUS_ERR_TIMEOUT,
        SHMBUS_ERR_EMPTY,
        SHMBUS_ERR_FULL,
        SHMBUS_ERR_LAGGED,
        SHMBUS_ERR_DISCONNECTED,
        SHMBUS_ERR_PUBLISHER_GONE,
        SHMBUS_ERR_NOT_FOUND,
        SHMBUS_ERR_EXISTS,
        SHMBUS_ERR_PERMISSION,
        SHMBUS_ERR_CORRUPT,
        SHMBUS_ERR_TOO_SMALL,
        SHMBUS_ERR_TOO_LARGE,
        SHMBUS_ERR_MISMATCH,
        SHMBUS_ERR_VERSION,
        SHMBUS_ERR_NO_SLOT,
        SHMBUS_ERR_WRONG_MODE,
        SHMBUS_ERR_WRITER_DIED,
        SHMBUS_ERR_BUSY,
        SHMBUS_ERR_NO_SPACE,
        SHMBUS_ERR_FOREIGN_PROCESS,
        SHMBUS_ERR_NO_LOAN,
        SHMBUS_ERR_HANDLER,
        SHMBUS_ERR_OS,
        SHMBUS_ERR_INTERNAL,
        SHMBUS_ERR_UNKNOWN_KEY,
    ];

    /// The status's name.
    fn name(self) -> &'static CStr {
        match self {
            SHMBUS_OK => c"SHMBUS_OK",
            SHMBUS_ERR_INVALID => c"SHMBUS_ERR_INVALID",
            SHMBUS_ERR_TIMEOUT => c"SHMBUS_ERR_TIMEOUT",
            SHMBUS_ERR_EMPTY => c"SHMBUS_ERR_EMPTY",
            SHMBUS_ERR_FULL => c"SHMBUS_ERR_FULL",
            SHMBUS_ERR_LAGGED => c"SHMBUS_ERR_LAGGED",
            SHMBUS_ERR_DISCONNECTED => c"SHMBUS_ERR_DISCONNECTED",
            SHMBUS_ERR_PUBLISHER_GONE => c"SHMBUS_ERR_PUBLISHER_GONE",
            SHMBUS_ERR_NOT_FOUND => c"SHMBUS_ERR_NOT_FOUND",
            SHMBUS_ERR_EXISTS => c"SHMBUS_ERR_EXISTS",
            SHMBUS_ERR_PERMISSION => c"SHMBUS_ERR_PERMISSION",
            SHMBUS_ERR_CORRUPT => c"SHMBUS_ERR_CORRUPT",
            SHMBUS_ERR_TOO_SMALL => c"SHMBUS_ERR_TOO_SMALL",
            SHMBUS_ERR_TOO_LARGE => c"SHMBUS_ERR_TOO_LARGE",
            SHMBUS_ERR_MISMATCH => c"SHMBUS_ERR_MISMATCH",
            SHMBUS_ERR_VERSION => c"SHMBUS_ERR_VERSION",
            SHMBUS_ERR_NO_SLOT => c"SHMBUS_ERR_NO_SLOT",
            SHMBUS_ERR_WRONG_MODE => c"SHMBUS_ERR_WRONG_MODE",
            SHMBUS_ERR_WRITER_DIED => c"SHMBUS_ERR_WRITER_DIED",
            SHMBUS_ERR_BUSY => c"SHMBUS_ERR_BUSY",
            SHMBUS_ERR_NO_SPACE => c"SHMBUS_ERR_NO_SPACE",
            SHMBUS_ERR_FOREIGN_PROCESS => c"SHMBUS_ERR_FOREIGN_PROCESS",
            SHMBUS_ERR_NO_LOAN => c"SHMBUS_ERR_NO_LOAN",
            SHMBUS_ERR_HANDLER => c"SHMBUS_ERR_HANDLER",
            SHMBUS_ERR_OS => c"SHMBUS_ERR_OS",
            SHMBUS_ERR_INTERNAL => c"SHMBUS_ERR_INTERNAL",
            SHMBUS_ERR_UNKNOWN_KEY => c"SHMBUS_ERR_UNKNOWN_KEY",
        }
    }
}

/// [`shmbus_status::SHMBUS_OK`] as the `int` entry points return.
pub(crate) const OK: c_int = SHMBUS_OK as c_int;

/// The status code for a library error.
pub(crate) fn code_of(e: &Error) -> shmbus_status {
    match e {
        Error::InvalidName { .. }
        | Error::InvalidNamespace { .. }
        | Error::InvalidConfig { .. } => SHMBUS_ERR_INVALID,
        Error::NotFound { .. } => SHMBUS_ERR_NOT_FOUND,
        Error::AlreadyExists { .. } | Error::PublisherExists { .. } => SHMBUS_ERR_EXISTS,
        Error::PermissionDenied { .. } | Error::UntrustedOwner { .. } => SHMBUS_ERR_PERMISSION,
        Error::NotRegularFile { .. }
        | Error::Sparse { .. }
        | Error::NotShmbus { .. }
        | Error::TooSmall { .. }
        | Error::Corrupt { .. }
        | Error::NotReady { .. } => SHMBUS_ERR_CORRUPT,
        Error::NoSpace { .. } => SHMBUS_ERR_NO_SPACE,
        Error::ForeignProcess { .. } => SHMBUS_ERR_FOREIGN_PROCESS,
        Error::WrongKind { .. } | Error::ConfigMismatch { .. } => SHMBUS_ERR_MISMATCH,
        Error::VersionMismatch { .. } => SHMBUS_ERR_VERSION,
        Error::TooLarge { .. } => SHMBUS_ERR_TOO_LARGE,
        Error::BufferTooSmall { .. } => SHMBUS_ERR_TOO_SMALL,
        Error::WriterDied { .. } => SHMBUS_ERR_WRITER_DIED,
        Error::Busy { .. } => SHMBUS_ERR_BUSY,
        Error::HandlerPanicked { .. } => SHMBUS_ERR_HANDLER,
        Error::TooManySubscribers { .. } => SHMBUS_ERR_NO_SLOT,
        Error::NoLoan { .. } => SHMBUS_ERR_NO_LOAN,
        Error::Full => SHMBUS_ERR_FULL,
        Error::Empty => SHMBUS_ERR_EMPTY,
        Error::Timeout => SHMBUS_ERR_TIMEOUT,
        Error::Disconnected { .. } => SHMBUS_ERR_DISCONNECTED,
        Error::PublisherGone { .. } => SHMBUS_ERR_PUBLISHER_GONE,
        Error::Lagged { .. } => SHMBUS_ERR_LAGGED,
        Error::WrongMode { .. } => SHMBUS_ERR_WRONG_MODE,
        Error::UnknownKey { .. } => SHMBUS_ERR_UNKNOWN_KEY,
        Error::Os { .. } => SHMBUS_ERR_OS,
        _ => SHMBUS_ERR_OS,
    }
}

/// A failed call: its status code and the message `shmbus_last_error` returns.
#[derive(Debug)]
pub(crate) struct Fail {
    pub code: shmbus_status,
    pub message: String,
}

impl Fail {
    /// [`SHMBUS_ERR_INVALID`] with a message naming the argument and the function.
    pub(crate) fn invalid(message: impl Into<String>) -> Fail {
        Fail {
            code: SHMBUS_ERR_INVALID,
            message: message.into(),
        }
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail {
            code: code_of(&e),
            message: e.to_string(),
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    // A message never holds a NUL, but cut there rather than lose it if it ever did.
    let message = message.split('\0').next().unwrap_or_default();
    let c = CString::new(message).unwrap_or_default();
    // During thread teardown the slot may be gone: the code still reaches the caller.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = c);
}

/// Runs an entry point: its status on success; on failure the failure's code, with its
/// message stored for `shmbus_last_error`; a panic becomes [`SHMBUS_ERR_INTERNAL`].
#[inline(always)]
pub(crate) fn guard(name: &str, f: impl FnOnce() -> Result<c_int, Fail>) -> c_int {
    // The closure returns the bare code (a failure is recorded inside it): a small result
    // crosses `catch_unwind`'s slot without a store-forwarding stall on every call.
    let run = || match f() {
        Ok(code) => code,
        Err(fail) => failed(fail),
    };
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(code) => code,
        Err(panic) => panicked(name, panic),
    }
}

/// Records a failure's message; returns its code.
#[cold]
#[inline(never)]
fn failed(fail: Fail) -> c_int {
    set_last_error(&fail.message);
    fail.code as c_int
}

/// Records a caught panic.
#[cold]
#[inline(never)]
fn panicked(name: &str, panic: Box<dyn std::any::Any + Send>) -> c_int {
    {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        set_last_error(&format!(
            "internal error in {name} (a bug in shmbus, please report it): {what}"
        ));
        SHMBUS_ERR_INTERNAL as c_int
    }
}

/// [`guard`] for entry points that return a value instead of a status: `fallback` when
/// anything goes wrong (the message is kept as for a status).
pub(crate) fn guard_value<T>(name: &str, fallback: T, f: impl FnOnce() -> Result<T, Fail>) -> T {
    let mut out = None;
    let code = guard(name, || {
        out = Some(f()?);
        Ok(OK)
    });
    match out {
        Some(v) if code == OK => v,
        _ => fallback,
    }
}

/// This thread's last error message, or `""` if no call has failed on this thread.
///
/// The message says what went wrong and what to do about it. It stays valid until the next
/// failing shmbus call on this thread; successful calls do not clear it (as with `errno`).
#[no_mangle]
pub extern "C" fn shmbus_last_error() -> *const c_char {
    LAST_ERROR
        .try_with(|slot| slot.borrow().as_ptr())
        .unwrap_or(c"".as_ptr())
}

/// The name of a status code (`"SHMBUS_ERR_TIMEOUT"`, ...), or `"SHMBUS_ERR_UNKNOWN"`. The
/// string is static.
#[no_mangle]
pub extern "C" fn shmbus_status_name(status: c_int) -> *const c_char {
    shmbus_status::ALL
        .iter()
        .find(|s| **s as c_int == status)
        .map_or(c"SHMBUS_ERR_UNKNOWN", |s| s.name())
        .as_ptr()
}
