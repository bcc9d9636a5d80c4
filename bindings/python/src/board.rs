//! `Blackboard` and `Event`.

use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use shmbus::{Blackboard, Event, EventMode};

use crate::channel::lock;
use crate::errors::{closed, IntoPy};
use crate::handler::HandlerGuard;
use crate::opts::{duration, Attempt, OptionArgs};
use crate::pybuf::Input;

/// Waits in slices until `attempt(slice)` gives a value or `timeout` passes (`None` then),
/// looking at signals between slices.
/// `Closed` (naming `what`) as soon as `closed()` says the handle was closed meanwhile.
pub(crate) fn wait_value<T: Send>(
    py: Python<'_>,
    timeout: Option<Duration>,
    closed_now: impl Fn(Python<'_>) -> Option<String>,
    mut attempt: impl FnMut(Duration) -> shmbus::Result<Option<T>> + Send,
) -> PyResult<Option<T>> {
    crate::opts::sliced(py, timeout, |a, until| {
        if let (Attempt::For(_), Some(what)) = (a, closed_now(py)) {
            return Err(closed(py, &what));
        }
        let s = a.or_slice(until);
        py.detach(|| attempt(s)).py(py)
    })
}

/// The latest value of something: one writer at a time, any number of readers, never a torn
/// read. Threads may share a blackboard.
#[pyclass(module = "shmbus._shmbus", name = "Blackboard", frozen)]
pub struct PyBlackboard {
    name: String,
    namespace: Option<String>,
    capacity: usize,
    board: Mutex<Option<Blackboard>>,
}

impl PyBlackboard {
    fn wrap(board: Blackboard) -> PyBlackboard {
        PyBlackboard {
            name: board.name().as_str().to_owned(),
            namespace: board.name().namespace().map(str::to_owned),
            capacity: board.capacity(),
            board: Mutex::new(Some(board)),
        }
    }

    fn get<'a>(&'a self, py: Python<'_>) -> PyResult<MutexGuard<'a, Option<Blackboard>>> {
        let g = lock(py, &self.board);
        if g.is_none() {
            return Err(closed(py, &format!("blackboard `{}`", self.name)));
        }
        Ok(g)
    }

    /// A clone of the handle, to use detached without holding the lock.
    pub(crate) fn handle(&self, py: Python<'_>) -> PyResult<Blackboard> {
        Ok(self.get(py)?.as_ref().expect("checked by get").clone())
    }
}

#[pymethods]
impl PyBlackboard {
    /// Creates blackboard ``name`` holding values of up to ``capacity`` bytes.
    #[staticmethod]
    #[pyo3(signature = (name, capacity, *, namespace = None, permissions = None,
        persistent = false, allow_owner = None, require_owner = None, spin = None))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        name: &str,
        capacity: usize,
        namespace: Option<&str>,
        permissions: Option<u32>,
        persistent: bool,
        allow_owner: Option<&Bound<'_, PyAny>>,
        require_owner: Option<u32>,
        spin: Option<f64>,
    ) -> PyResult<Self> {
        let o = OptionArgs {
            namespace,
            permissions,
            persistent,
            allow_owner,
            require_owner,
            spin,
        }
        .build()?;
        let b = py
            .detach(|| Blackboard::create_with(name, capacity, &o))
            .py(py)?;
        Ok(Self::wrap(b))
    }

    /// Opens blackboard ``name``; with ``open_timeout``, waits that long for it to appear.
    #[staticmethod]
    #[pyo3(signature = (name, *, namespace = None, open_timeout = 0.0, allow_owner = None,
        require_owner = None, spin = None))]
    #[allow(clippy::too_many_arguments)]
    fn open(
        py: Python<'_>,
        name: &str,
        namespace: Option<&str>,
        open_timeout: f64,
        allow_owner: Option<&Bound<'_, PyAny>>,
        require_owner: Option<u32>,
        spin: Option<f64>,
    ) -> PyResult<Self> {
        let o = OptionArgs::opening(namespace, allow_owner, require_owner, spin).build()?;
        let b = crate::opts::open_retry(py, open_timeout, |wait| {
            Blackboard::open_with(name, &o.clone().wait_for_creation(wait))
        })?;
        Ok(Self::wrap(b))
    }

    /// Opens blackboard ``name`` when it exists, else creates it.
    #[staticmethod]
    #[pyo3(signature = (name, capacity, *, namespace = None, permissions = None,
        persistent = false, allow_owner = None, require_owner = None, spin = None))]
    #[allow(clippy::too_many_arguments)]
    fn create_or_open(
        py: Python<'_>,
        name: &str,
        capacity: usize,
        namespace: Option<&str>,
        permissions: Option<u32>,
        persistent: bool,
        allow_owner: Option<&Bound<'_, PyAny>>,
        require_owner: Option<u32>,
        spin: Option<f64>,
    ) -> PyResult<Self> {
        let o = OptionArgs {
            namespace,
            permissions,
            persistent,
            allow_owner,
            require_owner,
            spin,
        }
        .build()?;
        let b = py
            .detach(|| Blackboard::create_or_open_with(name, capacity, &o))
            .py(py)?;
        Ok(Self::wrap(b))
    }

    /// The blackboard's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Its namespace (``None``: the default one).
    #[getter]
    fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The largest value, in bytes.
    #[getter]
    fn capacity(&self) -> usize {
        self.capacity
    }

    /// The version of the current value (0: never written).
    #[getter]
    fn version(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.get(py)?.as_ref().expect("checked").version())
    }

    /// Replaces the value with ``data`` (any contiguous buffer); returns its version.
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<u64> {
        let input = Input::new(data)?;
        let bytes = input.bytes();
        let board = self.handle(py)?;
        // Detached: a write may wait (a bounded while) for another writer.
        py.detach(|| board.write(bytes)).py(py)
    }

    /// The current ``(version, value)``, never torn; ``(0, b"")`` before the first write.
    fn read<'py>(&self, py: Python<'py>) -> PyResult<(u64, Bound<'py, PyBytes>)> {
        let board = self.handle(py)?;
        // Detached: a read may retry (a bounded while) against a busy writer.
        let (version, value) = py.detach(|| board.read()).py(py)?;
        Ok((version, PyBytes::new(py, &value)))
    }

    /// Waits until the version exceeds ``version``: the new version, or ``None`` after
    /// ``timeout`` seconds.
    #[pyo3(signature = (version, timeout = None))]
    fn wait_newer(
        &self,
        py: Python<'_>,
        version: u64,
        timeout: Option<f64>,
    ) -> PyResult<Option<u64>> {
        let timeout = duration(timeout, "timeout")?;
        let board = self.handle(py)?;
        let closed_now = |py: Python<'_>| {
            lock(py, &self.board)
                .is_none()
                .then(|| format!("blackboard `{}`", self.name))
        };
        wait_value(py, timeout, closed_now, |s| {
            board.wait_newer(version, Some(s))
        })
    }

    /// Calls ``callback(version, value)`` on a background thread for each new value, until
    /// the returned guard is stopped.
    fn on_update(&self, py: Python<'_>, callback: Py<PyAny>) -> PyResult<Py<HandlerGuard>> {
        let g = self.get(py)?;
        let board = g.as_ref().expect("checked");
        crate::handler::on_update(py, |f| board.on_update(f), callback)
    }

    /// Closes this handle (the blackboard is removed when its creator closes, unless
    /// persistent).
    fn close(&self, py: Python<'_>) {
        let b = lock(py, &self.board).take();
        drop(b);
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        format!(
            "<shmbus.Blackboard {:?} capacity={}>",
            self.name, self.capacity
        )
    }
}

/// A cross-process event that never loses a wake-up: manual-reset (stays set, releasing
/// every waiter, until ``reset``) or auto-reset (each ``set`` releases one waiter).
#[pyclass(module = "shmbus._shmbus", name = "Event", frozen)]
pub struct PyEvent {
    name: String,
    namespace: Option<String>,
    manual_reset: bool,
    event: Mutex<Option<Arc<Event>>>,
}

impl PyEvent {
    fn wrap(event: Event) -> PyEvent {
        PyEvent {
            name: event.name().as_str().to_owned(),
            namespace: event.name().namespace().map(str::to_owned),
            manual_reset: event.mode() == EventMode::ManualReset,
            event: Mutex::new(Some(Arc::new(event))),
        }
    }

    /// The shared handle, to use detached without holding the lock; `Closed` once closed.
    pub(crate) fn handle(&self, py: Python<'_>) -> PyResult<Arc<Event>> {
        lock(py, &self.event)
            .clone()
            .ok_or_else(|| closed(py, &format!("event `{}`", self.name)))
    }
}

fn event_mode(manual_reset: bool) -> EventMode {
    if manual_reset {
        EventMode::ManualReset
    } else {
        EventMode::AutoReset
    }
}

#[pymethods]
impl PyEvent {
    /// Creates event ``name``, unset.
    #[staticmethod]
    #[pyo3(signature = (name, *, manual_reset = false, namespace = None, permissions = None,
        persistent = false, allow_owner = None, require_owner = None, spin = None))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        name: &str,
        manual_reset: bool,
        namespace: Option<&str>,
        permissions: Option<u32>,
        persistent: bool,
        allow_owner: Option<&Bound<'_, PyAny>>,
        require_owner: Option<u32>,
        spin: Option<f64>,
    ) -> PyResult<Self> {
        let o = OptionArgs {
            namespace,
            permissions,
            persistent,
            allow_owner,
            require_owner,
            spin,
        }
        .build()?;
        let e = py
            .detach(|| Event::create_with(name, event_mode(manual_reset), &o))
            .py(py)?;
        Ok(Self::wrap(e))
    }

    /// Opens event ``name``; with ``open_timeout``, waits that long for it to appear.
    #[staticmethod]
    #[pyo3(signature = (name, *, namespace = None, open_timeout = 0.0, allow_owner = None,
        require_owner = None, spin = None))]
    #[allow(clippy::too_many_arguments)]
    fn open(
        py: Python<'_>,
        name: &str,
        namespace: Option<&str>,
        open_timeout: f64,
        allow_owner: Option<&Bound<'_, PyAny>>,
        require_owner: Option<u32>,
        spin: Option<f64>,
    ) -> PyResult<Self> {
        let o = OptionArgs::opening(namespace, allow_owner, require_owner, spin).build()?;
        let e = crate::opts::open_retry(py, open_timeout, |wait| {
            Event::open_with(name, &o.clone().wait_for_creation(wait))
        })?;
        Ok(Self::wrap(e))
    }

    /// Opens event ``name`` when it exists, else creates it.
    #[staticmethod]
    #[pyo3(signature = (name, *, manual_reset = false, namespace = None, permissions = None,
        persistent = false, allow_owner = None, require_owner = None, spin = None))]
    #[allow(clippy::too_many_arguments)]
    fn create_or_open(
        py: Python<'_>,
        name: &str,
        manual_reset: bool,
        namespace: Option<&str>,
        permissions: Option<u32>,
        persistent: bool,
        allow_owner: Option<&Bound<'_, PyAny>>,
        require_owner: Option<u32>,
        spin: Option<f64>,
    ) -> PyResult<Self> {
        let o = OptionArgs {
            namespace,
            permissions,
            persistent,
            allow_owner,
            require_owner,
            spin,
        }
        .build()?;
        let e = py
            .detach(|| Event::create_or_open_with(name, event_mode(manual_reset), &o))
            .py(py)?;
        Ok(Self::wrap(e))
    }

    /// The event's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Its namespace (``None``: the default one).
    #[getter]
    fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// Whether it stays set until ``reset`` (else each ``set`` releases one waiter).
    #[getter]
    fn manual_reset(&self) -> bool {
        self.manual_reset
    }

    /// Sets the event, waking waiters.
    fn set(&self, py: Python<'_>) -> PyResult<()> {
        self.handle(py)?.set();
        Ok(())
    }

    /// Unsets the event.
    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        self.handle(py)?.reset();
        Ok(())
    }

    /// Whether the event is set now.
    fn is_set(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.handle(py)?.is_set())
    }

    /// Waits until the event is set (an auto-reset event is consumed by the wait): ``True``,
    /// or ``False`` after ``timeout`` seconds.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let timeout = duration(timeout, "timeout")?;
        let event = self.handle(py)?;
        if event.wait_timeout(Duration::ZERO) {
            return Ok(true);
        }
        let closed_now = |py: Python<'_>| {
            lock(py, &self.event)
                .is_none()
                .then(|| format!("event `{}`", self.name))
        };
        let r = wait_value(py, timeout, closed_now, |s| {
            Ok(event.wait_timeout(s).then_some(()))
        })?;
        Ok(r.is_some())
    }

    /// Closes this handle (the event is removed when its creator closes, unless persistent).
    fn close(&self, py: Python<'_>) {
        let e = lock(py, &self.event).take();
        drop(e);
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        let mode = if self.manual_reset {
            "manual-reset"
        } else {
            "auto-reset"
        };
        format!("<shmbus.Event {:?} {mode}>", self.name)
    }
}
