//! Receive handlers: Python callbacks run by shmbus's handler threads.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::thread::ThreadId;

use parking_lot::Mutex;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::errors::{exception, IntoPy};

/// What a handler thread and its guard share.
#[derive(Default)]
struct Shared {
    delivered: AtomicU64,
    lost: AtomicU64,
    /// Set when the callback raised: the thread ends and `stop` re-raises it.
    failure: Mutex<Option<PyErr>>,
    /// The failure was reported (by `stop`, or as unraisable on drop).
    reported: AtomicBool,
    /// The handler thread (set by its first callback): `stop` cannot join it from itself.
    thread: OnceLock<ThreadId>,
}

/// Why a handler thread ended early; carried by `resume_unwind` (which, unlike `panic!`,
/// prints nothing) to shmbus's handler loop, which turns it into `HandlerPanicked`.
const CALLBACK_RAISED: &str = "the Python callback raised an exception";
const INTERPRETER_GONE: &str = "the Python interpreter is shutting down";

impl Shared {
    /// Calls `callback(args)` attached; on an exception, records it and ends the thread.
    fn call(
        &self,
        callback: &Py<PyAny>,
        args: impl for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyTuple>>,
    ) {
        self.thread.get_or_init(|| std::thread::current().id());
        let outcome = Python::try_attach(|py| {
            args(py)
                .and_then(|a| callback.bind(py).call1(a))
                .map(|_| ())
        });
        match outcome {
            Some(Ok(())) => {
                self.delivered.fetch_add(1, Relaxed);
            }
            Some(Err(e)) => {
                *self.failure.lock() = Some(e);
                std::panic::resume_unwind(Box::new(CALLBACK_RAISED));
            }
            None => std::panic::resume_unwind(Box::new(INTERPRETER_GONE)),
        }
    }
}

/// Keeps a receive handler running; ``stop()`` ends it and joins its thread (so does leaving
/// a ``with`` block). A handler whose callback raised stops, and ``stop()`` raises
/// ``HandlerError`` with the callback's exception as ``__cause__``.
#[pyclass(module = "shmbus._shmbus", name = "HandlerGuard", frozen, weakref)]
pub struct HandlerGuard {
    guard: Mutex<Option<shmbus::HandlerGuard>>,
    shared: Arc<Shared>,
}

impl HandlerGuard {
    fn new(guard: shmbus::HandlerGuard, shared: Arc<Shared>) -> HandlerGuard {
        HandlerGuard {
            guard: Mutex::new(Some(guard)),
            shared,
        }
    }

    /// The callback's exception, once.
    fn take_failure(&self) -> Option<PyErr> {
        let e = self.shared.failure.lock().take();
        if e.is_some() {
            self.shared.reported.store(true, Relaxed);
        }
        e
    }
}

#[pymethods]
impl HandlerGuard {
    /// Whether the handler thread still runs.
    #[getter]
    fn running(&self, py: Python<'_>) -> bool {
        crate::channel::lock(py, &self.guard)
            .as_ref()
            .is_some_and(|g| !g.is_finished())
    }

    /// Callbacks that returned normally so far.
    #[getter]
    fn delivered(&self) -> u64 {
        self.shared.delivered.load(Relaxed)
    }

    /// Messages lost before they could be delivered (lossy channels), or blackboard versions
    /// skipped.
    #[getter]
    fn lost(&self) -> u64 {
        self.shared.lost.load(Relaxed)
    }

    /// Stops the handler and waits for its thread: ``(delivered, lost)``. Raises
    /// ``HandlerError`` if the callback raised. Harmless when already stopped.
    fn stop<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if self.shared.thread.get() == Some(&std::thread::current().id()) {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "stop() called from the handler's own callback, which cannot wait for its own \
                 thread to end: stop the handler from another thread",
            ));
        }
        let guard = crate::channel::lock(py, &self.guard).take();
        if let Some(g) = guard {
            // Detached: the thread may be waiting to attach for a callback.
            let r = py.detach(|| g.stop());
            if let Err(e) = r {
                let failure = self.take_failure();
                let err = match &e {
                    shmbus::Error::HandlerPanicked { name, .. } if failure.is_some() => exception(
                        py,
                        "HandlerError",
                        format!("the receive handler of {name} stopped: its callback raised"),
                    ),
                    _ => Err::<(), _>(e).py(py).expect_err("an error"),
                };
                err.set_cause(py, failure);
                return Err(err);
            }
        }
        let stats = py.import("shmbus")?.getattr("HandlerStats")?;
        stats.call1((self.delivered(), self.lost()))
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.stop(py)?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "<shmbus.HandlerGuard {} delivered={} lost={}>",
            if self.running(py) {
                "running"
            } else {
                "stopped"
            },
            self.delivered(),
            self.lost()
        )
    }
}

impl Drop for HandlerGuard {
    fn drop(&mut self) {
        let guard = self.guard.get_mut().take();
        let Some(g) = guard else { return };
        Python::attach(|py| {
            // Stop and join the thread, detached as in `stop`. (`stop` rather than a drop:
            // the Rust guard's drop would also print a failure to stderr, which we report
            // once, as unraisable, with the callback's traceback.)
            let stopped = py.detach(|| g.stop());
            if !self.shared.reported.load(Relaxed) {
                if let Some(e) = self.take_failure() {
                    e.write_unraisable(py, None);
                } else if let Err(e) = stopped {
                    crate::errors::to_py(py, e).write_unraisable(py, None);
                }
            }
        });
    }
}

/// `Subscriber.on_message`: `callback(message)` for each message; `stash` first.
pub fn on_message(
    py: Python<'_>,
    sub: shmbus::Subscriber,
    stash: VecDeque<Vec<u8>>,
    callback: Py<PyAny>,
) -> PyResult<Py<HandlerGuard>> {
    let shared = Arc::new(Shared::default());
    let s = shared.clone();
    let mut stash = Some(stash);
    let guard = py
        .detach(move || {
            sub.on_message(move |msg| {
                for m in stash.take().into_iter().flatten() {
                    s.call(&callback, |py| PyTuple::new(py, [PyBytes::new(py, &m)]));
                }
                s.lost.fetch_add(msg.lost, Relaxed);
                s.call(&callback, |py| {
                    PyTuple::new(py, [PyBytes::new(py, msg.data)])
                });
            })
        })
        .py(py)?;
    register(py, HandlerGuard::new(guard, shared))
}

/// What shmbus calls for each new version of a board (or of one key of a keyed board).
pub type UpdateFn = Box<dyn for<'a> FnMut(shmbus::Update<'a>) + Send>;

/// `Blackboard.on_update`, `BoardKey.on_update`: `callback(version, value)` for each new
/// version; `start` hands the Rust handler to the board's own `on_update`.
pub fn on_update(
    py: Python<'_>,
    start: impl FnOnce(UpdateFn) -> shmbus::Result<shmbus::HandlerGuard> + Send,
    callback: Py<PyAny>,
) -> PyResult<Py<HandlerGuard>> {
    let shared = Arc::new(Shared::default());
    let s = shared.clone();
    let handler: UpdateFn = Box::new(move |u| {
        s.lost.fetch_add(u.skipped, Relaxed);
        let version = u.version;
        s.call(&callback, |py| {
            PyTuple::new(
                py,
                [
                    version.into_pyobject(py)?.into_any(),
                    PyBytes::new(py, u.data).into_any(),
                ],
            )
        });
    });
    let guard = py.detach(|| start(handler)).py(py)?;
    register(py, HandlerGuard::new(guard, shared))
}

/// Makes the guard a Python object and adds it to `shmbus._guards`, which stops the handlers
/// still running when the interpreter exits.
fn register(py: Python<'_>, guard: HandlerGuard) -> PyResult<Py<HandlerGuard>> {
    let guard = Py::new(py, guard)?;
    py.import("shmbus")?
        .getattr("_guards")?
        .call_method1("add", (guard.clone_ref(py),))?;
    Ok(guard)
}
