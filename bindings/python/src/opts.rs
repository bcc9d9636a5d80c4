//! Keyword arguments shared by constructors, timeouts, and the one way every call waits.

use std::time::{Duration, Instant};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBool;

use crate::errors::to_py;

/// How long one detached wait lasts at most before the caller looks at signals again: a
/// Ctrl-C reaches a blocked call within this (plus the time to return).
pub const SLICE: Duration = Duration::from_millis(50);

/// `shmbus::Options` from the keyword arguments every constructor takes.
pub struct OptionArgs<'a, 'py> {
    pub namespace: Option<&'a str>,
    pub permissions: Option<u32>,
    pub persistent: bool,
    pub allow_owner: Option<&'a Bound<'py, PyAny>>,
    pub require_owner: Option<u32>,
    /// Seconds a blocking wait spins before it sleeps in the kernel.
    pub spin: Option<f64>,
}

impl<'a, 'py> OptionArgs<'a, 'py> {
    /// The options of a call that only opens (no permissions, not persistent).
    pub fn opening(
        namespace: Option<&'a str>,
        allow_owner: Option<&'a Bound<'py, PyAny>>,
        require_owner: Option<u32>,
        spin: Option<f64>,
    ) -> Self {
        OptionArgs {
            namespace,
            permissions: None,
            persistent: false,
            allow_owner,
            require_owner,
            spin,
        }
    }

    pub fn build(&self) -> PyResult<shmbus::Options> {
        let mut o = shmbus::Options::new().persistent(self.persistent);
        // Unset: `$SHMBUS_NAMESPACE` (as the Rust API's default).
        if let Some(ns) = self.namespace {
            o = o.namespace(Some(ns));
        }
        if let Some(mode) = self.permissions {
            if mode > 0o777 {
                return Err(PyValueError::new_err(format!(
                    "permissions {mode:#o} are not file mode bits (0 to 0o777)"
                )));
            }
            o = o.mode(mode);
        }
        if let Some(owner) = self.allow_owner {
            if let Ok(b) = owner.cast::<PyBool>() {
                if b.is_true() {
                    o = o.allow_any_owner();
                }
            } else if let Ok(uid) = owner.extract::<u32>() {
                o = o.allow_owner(uid);
            } else if let Ok(uids) = owner.extract::<Vec<u32>>() {
                for uid in uids {
                    o = o.allow_owner(uid);
                }
            } else {
                return Err(PyTypeError::new_err(
                    "allow_owner takes a uid, a list of uids, or True (any owner)",
                ));
            }
        }
        if let Some(uid) = self.require_owner {
            o = o.require_owner(uid);
        }
        if let Some(spin) = duration(self.spin, "spin")? {
            o = o.spin(spin);
        }
        Ok(o)
    }
}

/// A timeout in seconds (`None`: no limit) as a duration; a `ValueError` for a negative or
/// not-a-number one.
pub fn duration(secs: Option<f64>, what: &str) -> PyResult<Option<Duration>> {
    match secs {
        None => Ok(None),
        Some(s) if s.is_nan() || s < 0.0 => Err(PyValueError::new_err(format!(
            "{what} must be a number of seconds >= 0 or None, not {s}"
        ))),
        // Longer than any wait can last: no limit.
        Some(s) => Ok(Duration::try_from_secs_f64(s).ok()),
    }
}

/// When a wait of at most `timeout` started now ends (`None`: never).
pub fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// The next slice of a wait that ends at `deadline`.
pub fn slice(deadline: Option<Instant>) -> Duration {
    deadline.map_or(SLICE, |d| {
        d.saturating_duration_since(Instant::now()).min(SLICE)
    })
}

/// Why a wait in `blocking` ended without a value.
pub enum WaitErr {
    /// The library said so.
    Lib(shmbus::Error),
    /// The object was closed (by another thread) while we waited: `Closed`, naming it.
    Closed(String),
    /// Another thread made the call impossible while we waited: `BufferError`.
    Buffer(String),
}

impl From<shmbus::Error> for WaitErr {
    fn from(e: shmbus::Error) -> WaitErr {
        WaitErr::Lib(e)
    }
}

/// What one attempt of a wait may wait for.
#[derive(Clone, Copy)]
pub enum Attempt {
    /// Nothing: take what is there (the first attempt, still attached).
    Now,
    /// At most this long (a slice: detach while waiting).
    For(Duration),
}

impl Attempt {
    /// How long this attempt may wait when it waits anyway (the first one: one slice).
    pub fn or_slice(self, until: Option<Instant>) -> Duration {
        match self {
            Attempt::Now => slice(until),
            Attempt::For(s) => s,
        }
    }
}

/// The one shape of every wait: `step(attempt, until)`, first with [`Attempt::Now`], then
/// with slices of at most [`SLICE`], looking at signals between attempts (so Ctrl-C
/// interrupts it). `Ok(None)` once `until` passes with nothing.
pub fn sliced<T>(
    py: Python<'_>,
    timeout: Option<Duration>,
    mut step: impl FnMut(Attempt, Option<Instant>) -> PyResult<Option<T>>,
) -> PyResult<Option<T>> {
    let until = deadline(timeout);
    let mut attempt = Attempt::Now;
    loop {
        if let Some(v) = step(attempt, until)? {
            return Ok(Some(v));
        }
        py.check_signals()?;
        if until.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        attempt = Attempt::For(slice(until));
    }
}

/// Runs `attempt(slice)` detached from the interpreter, again and again while it times out
/// and the timeout is ahead ([`sliced`]). `Timeout` once it passes.
pub fn blocking<T, F>(py: Python<'_>, timeout: Option<Duration>, mut attempt: F) -> PyResult<T>
where
    F: FnMut(Duration) -> Result<T, WaitErr> + Send,
    T: Send,
{
    let r = sliced(py, timeout, |a, until| {
        let s = a.or_slice(until);
        match py.detach(|| attempt(s)) {
            Err(WaitErr::Lib(shmbus::Error::Timeout)) => Ok(None),
            Ok(v) => Ok(Some(v)),
            Err(WaitErr::Lib(e)) => Err(to_py(py, e)),
            Err(WaitErr::Closed(what)) => Err(crate::errors::closed(py, &what)),
            Err(WaitErr::Buffer(why)) => Err(pyo3::exceptions::PyBufferError::new_err(why)),
        }
    })?;
    r.ok_or_else(|| to_py(py, shmbus::Error::Timeout))
}

/// Runs `open(wait)` (detached) until it stops failing with `NotFound` or `open_timeout`
/// seconds have passed, looking at signals in between: opening waits for the object to
/// appear. `wait` is how long this attempt may wait for the creation
/// (`Options::wait_for_creation`: an inotify watch, no polling), at most a [`SLICE`].
pub fn open_retry<T: Send>(
    py: Python<'_>,
    open_timeout: f64,
    open: impl Fn(Duration) -> shmbus::Result<T> + Send + Sync,
) -> PyResult<T> {
    let until = deadline(duration(Some(open_timeout), "open_timeout")?);
    loop {
        let wait = slice(until);
        match py.detach(|| open(wait)) {
            Err(shmbus::Error::NotFound { .. }) if until.is_none_or(|d| Instant::now() < d) => {
                py.check_signals()?;
            }
            r => return r.map_err(|e| to_py(py, e)),
        }
    }
}
