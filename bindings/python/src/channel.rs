//! What the channel objects share (`publisher`, `subscriber`, `recv_async`).
//!
//! Each Python object wraps its Rust handle in a mutex, so that threads may share it (calls
//! are serialised). Locking follows one rule that makes GIL/mutex deadlocks impossible:
//! while attached to the interpreter we lock with `lock_py_attached` (which detaches while
//! it waits); while detached we lock plainly. A thread holding the mutex may then attach.

use std::time::Instant;

use parking_lot::{Mutex, MutexGuard};

use pyo3::exceptions::PyBufferError;
use pyo3::prelude::*;
use pyo3::sync::MutexExt;

use shmbus::{ChannelConfig, Mode};

use crate::pybuf::LendState;

/// Locks `m` while attached (see the module docs).
pub fn lock<'a, T>(py: Python<'_>, m: &'a Mutex<T>) -> MutexGuard<'a, T> {
    m.lock_py_attached(py)
}

/// Locks `m` while detached.
pub fn lock_detached<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock()
}

/// Locks `m` while attached, waiting (detached) at most until `until`: `None` when that
/// passes first. A call's timeout so also bounds its wait for a lock another thread holds
/// during its own blocking wait.
pub fn lock_until<'a, T: Send>(
    py: Python<'_>,
    m: &'a Mutex<T>,
    until: Option<Instant>,
) -> Option<MutexGuard<'a, T>> {
    if let Some(g) = m.try_lock() {
        return Some(g);
    }
    match until {
        None => Some(lock(py, m)),
        Some(d) => py.detach(|| m.try_lock_until(d)),
    }
}

pub fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Backpressure => "backpressure",
        _ => "lossy",
    }
}

/// `InvalidConfig` (a `ValueError`) for anything but the two modes.
pub fn parse_mode(py: Python<'_>, mode: &str) -> PyResult<Mode> {
    match mode {
        "lossy" => Ok(Mode::Lossy),
        "backpressure" | "back-pressure" => Ok(Mode::Backpressure),
        other => Err(crate::errors::exception(
            py,
            "InvalidConfig",
            format!("mode must be \"lossy\" or \"backpressure\", not {other:?}"),
        )),
    }
}

/// What a channel handle shows without locking.
pub struct Facts {
    pub name: String,
    pub namespace: Option<String>,
    pub config: ChannelConfig,
}

impl Facts {
    pub fn new(name: &shmbus::Name, config: &ChannelConfig) -> Facts {
        Facts {
            name: name.as_str().to_owned(),
            namespace: name.namespace().map(str::to_owned),
            config: *config,
        }
    }
}

/// Releases `view` and checks that no other view of the lent bytes is left (a slice, a
/// numpy array): `BufferError` otherwise, and the bytes stay lent.
pub fn release_view(
    py: Python<'_>,
    view: &Bound<'_, PyAny>,
    lend: &LendState,
    what: &str,
) -> PyResult<()> {
    let released = view.call_method0(pyo3::intern!(py, "release"));
    if released.is_err() || lend.viewed() {
        let _ = py;
        return Err(PyBufferError::new_err(format!(
            "a view of the {what} is still in use (a memoryview slice or a numpy array made \
             from it): delete it first; the {what} stays open until then"
        )));
    }
    Ok(())
}
