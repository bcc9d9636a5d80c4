//! `Subscriber.recv_async`: a receive on a helper thread, delivered to an asyncio future.
//!
//! The coroutine `recv_async` returns (`shmbus._aio.recv_async`) starts the receive when it
//! first runs, then awaits a future that a helper thread completes through `loop.call_soon_threadsafe`. Cancelling it loses no
//! message: the coroutine calls `AsyncToken.cancel` as the cancellation reaches it, which
//! sets a flag the thread reads under the subscriber's lock after each receive (a message it
//! got then goes to the subscriber's stash, which the next receive returns first), or takes
//! back, under that lock, the message the thread already handed over.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Instant;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCFunction};

use shmbus::Error;

use crate::channel::{lock, lock_detached};
use crate::errors::{closed, to_py};
use crate::opts::{deadline, duration, slice};
use crate::subscriber::PySubscriber;

/// What the helper thread, the delivery callback and the token share. `inflight` and the
/// decisions about it are made under the subscriber's lock.
#[derive(Default)]
struct Shared {
    cancelled: AtomicBool,
    /// A message received and on its way to the future.
    inflight: Mutex<Option<Vec<u8>>>,
}

impl Shared {
    fn inflight_is_empty(&self) -> bool {
        self.inflight.lock().is_none()
    }

    fn take_inflight(&self) -> Option<Vec<u8>> {
        self.inflight.lock().take()
    }
}

/// Lets the coroutine stop its receive when it is cancelled.
#[pyclass(module = "shmbus._shmbus", name = "_AsyncToken", frozen)]
pub struct AsyncToken {
    subscriber: Py<PySubscriber>,
    shared: Arc<Shared>,
}

#[pymethods]
impl AsyncToken {
    /// Stops the receive; a message it already took goes back to the subscriber. Never
    /// waits for the helper thread: while it holds the lock (inside a receive slice) the
    /// flag is enough, as it looks at the flag under the lock when its receive returns.
    #[pyo3(signature = (result = None))]
    fn cancel(&self, py: Python<'_>, result: Option<&Bound<'_, PyBytes>>) {
        if let Some(m) = result {
            // The future had its message already when the cancellation reached the
            // coroutine: that message goes back too, first in line.
            lock(py, &self.subscriber.get().state)
                .stash
                .push_front(m.as_bytes().to_vec());
        }
        let state = &self.subscriber.get().state;
        let mut st = match state.try_lock() {
            Some(g) => g,
            None => {
                self.shared.cancelled.store(true, Relaxed);
                if self.shared.inflight_is_empty() {
                    // The helper has not handed a message over: it will see the flag.
                    return;
                }
                // Handed over already (the lock holder is another thread): put it back
                // in order.
                lock(py, state)
            }
        };
        self.shared.cancelled.store(true, Relaxed);
        if let Some(m) = self.shared.take_inflight() {
            // Received before anything stashed since: first in line.
            st.stash.push_front(m);
        }
    }
}

/// The future `Subscriber.recv_async` awaits, with its token; started receiving.
pub fn recv_future<'py>(
    slf: &Bound<'py, PySubscriber>,
    timeout: Option<f64>,
) -> PyResult<(Bound<'py, PyAny>, AsyncToken)> {
    let py = slf.py();
    let timeout = duration(timeout, "timeout")?;
    let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
    let fut = event_loop.call_method0("create_future")?;
    let shared = Arc::new(Shared::default());
    let token = AsyncToken {
        subscriber: slf.clone().unbind(),
        shared: shared.clone(),
    };
    // Fast path: a message is waiting. Only tried when the lock is free: the event loop must
    // not wait for a helper thread (a cancelled one ends its receive slice first).
    let me = slf.get();
    let fast = match me.state.try_lock() {
        Some(mut g) => me.try_recv_locked(py, &mut g),
        None => Ok(None),
    };
    match fast {
        Ok(Some(m)) => {
            fut.call_method1("set_result", (m,))?;
        }
        Err(e) => {
            fut.call_method1("set_exception", (e.into_value(py),))?;
        }
        Ok(None) => {
            let job = AsyncRecv {
                subscriber: slf.clone().unbind(),
                event_loop: event_loop.unbind(),
                fut: fut.clone().unbind(),
                shared,
                until: deadline(timeout),
            };
            std::thread::Builder::new()
                .name("shmbus-recv-async".into())
                .spawn(move || job.run())
                .map_err(|e| PyErr::new::<pyo3::exceptions::PyOSError, _>(e.to_string()))?;
        }
    }
    Ok((fut, token))
}

/// A `recv_async` waiting on its own thread.
struct AsyncRecv {
    subscriber: Py<PySubscriber>,
    event_loop: Py<PyAny>,
    fut: Py<PyAny>,
    shared: Arc<Shared>,
    until: Option<Instant>,
}

impl AsyncRecv {
    fn run(self) {
        let me = self.subscriber.get();
        let outcome: Result<(), Option<Error>> = loop {
            let s = slice(self.until);
            let r = {
                let mut g = lock_detached(&me.state);
                if self.shared.cancelled.load(Relaxed) {
                    return;
                }
                if g.borrow.is_some() {
                    // Attaching while holding the lock is safe (see `channel`'s docs).
                    match Python::try_attach(|py| g.settle_borrow(py)) {
                        Some(Ok(())) => {}
                        Some(Err(e)) => {
                            drop(g);
                            Python::try_attach(|py| self.deliver(py, Err(e)));
                            return;
                        }
                        None => return,
                    }
                }
                let received = if let Some(m) = g.stash.pop_front() {
                    Ok(m)
                } else if let Some(sub) = g.sub.as_mut() {
                    let mut buf = Vec::new();
                    sub.recv_timeout_into(&mut buf, s)
                        .map(|()| buf)
                        .map_err(Some)
                } else {
                    Err(None) // closed meanwhile
                };
                // Still under the lock: hand the message over, or back if cancelled.
                received.map(|m| {
                    if self.shared.cancelled.load(Relaxed) {
                        g.stash.push_back(m);
                    } else {
                        *self.shared.inflight.lock() = Some(m);
                    }
                })
            };
            match r {
                Err(Some(Error::Timeout)) if self.until.is_none_or(|d| Instant::now() < d) => {
                    if !self.loop_open() {
                        return;
                    }
                }
                r => break r,
            }
        };
        Python::try_attach(|py| {
            let r = outcome.map_err(|e| match e {
                Some(e) => to_py(py, e),
                None => closed(py, &format!("subscriber of `{}`", me.facts.name)),
            });
            self.deliver(py, r);
        });
    }

    /// Whether anybody can still take a result: the event loop is open and the interpreter
    /// is not exiting.
    fn loop_open(&self) -> bool {
        Python::try_attach(|py| {
            self.event_loop
                .bind(py)
                .call_method0("is_closed")
                .and_then(|c| c.is_truthy())
                .is_ok_and(|closed| !closed)
        }) == Some(true)
    }

    /// Completes the future on the event loop's thread: with the in-flight message (unless
    /// the token took it back), or with the error.
    fn deliver(&self, py: Python<'_>, r: PyResult<()>) {
        let sub = self.subscriber.clone_ref(py);
        let fut = self.fut.clone_ref(py);
        let shared = self.shared.clone();
        let error = r.err().map(|e| e.into_value(py));
        let done = PyCFunction::new_closure(py, None, None, move |args, _kw| {
            let py = args.py();
            let fut = fut.bind(py);
            let mut st = lock(py, &sub.get().state);
            let msg = shared.take_inflight();
            if fut.call_method0("done")?.is_truthy()? {
                if let Some(m) = msg {
                    st.stash.push_front(m);
                }
                return Ok::<_, PyErr>(());
            }
            drop(st);
            match (&error, msg) {
                (Some(e), _) => fut.call_method1("set_exception", (e.bind(py),))?,
                (None, Some(m)) => fut.call_method1("set_result", (PyBytes::new(py, &m),))?,
                (None, None) => return Ok(()), // taken back by a cancel
            };
            Ok(())
        });
        let scheduled = done.and_then(|done| {
            self.event_loop
                .bind(py)
                .call_method1("call_soon_threadsafe", (done,))
        });
        if scheduled.is_err() {
            // The loop is closed: keep the message for the next receive.
            if let Some(m) = self.shared.take_inflight() {
                lock(py, &self.subscriber.get().state).stash.push_front(m);
            }
        }
    }
}
