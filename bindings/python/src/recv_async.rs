//! `Subscriber.recv_async`: a receive on a helper thread, delivered to an asyncio future.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCFunction};

use shmbus::Error;

use crate::channel::{lock, lock_detached};
use crate::errors::{closed, to_py};
use crate::opts::slice;
use crate::subscriber::PySubscriber;

/// A `recv_async` waiting on its own thread.
pub struct AsyncRecv {
    pub subscriber: Py<PySubscriber>,
    pub event_loop: Py<PyAny>,
    pub fut: Py<PyAny>,
    pub cancelled: Arc<AtomicBool>,
    pub until: Option<Instant>,
}

impl AsyncRecv {
    pub fn run(self) {
        let me = self.subscriber.get();
        let outcome: Result<Vec<u8>, Option<Error>> = loop {
            if self.cancelled.load(Ordering::Relaxed) {
                return;
            }
            let s = slice(self.until);
            let r = {
                let mut g = lock_detached(&me.state);
                if g.borrow.is_some() {
                    // Attaching while holding the lock is safe (see the module docs).
                    let settled = Python::try_attach(|py| g.settle_borrow(py));
                    match settled {
                        Some(Ok(())) => {}
                        Some(Err(e)) => {
                            drop(g);
                            self.deliver(Err(e));
                            return;
                        }
                        None => return,
                    }
                }
                if let Some(m) = g.stash.pop_front() {
                    Ok(m)
                } else if let Some(sub) = g.sub.as_mut() {
                    let mut buf = Vec::new();
                    sub.recv_timeout_into(&mut buf, s)
                        .map(|()| buf)
                        .map_err(Some)
                } else {
                    // Closed meanwhile.
                    Err(None)
                }
            };
            match r {
                Err(Some(Error::Timeout)) if self.until.is_none_or(|d| Instant::now() < d) => {}
                r => break r,
            }
        };
        Python::try_attach(|py| {
            let r = outcome.map_err(|e| match e {
                Some(e) => to_py(py, e),
                None => closed(py, &format!("subscriber of `{}`", me.facts.name)),
            });
            self.deliver_attached(py, r);
        });
    }

    fn deliver(&self, r: PyResult<Vec<u8>>) {
        Python::try_attach(|py| self.deliver_attached(py, r));
    }

    /// Hands the outcome to the event loop's thread, which sets the future's result (or, if
    /// the future was cancelled meanwhile, puts the message back for the next receive).
    fn deliver_attached(&self, py: Python<'_>, r: PyResult<Vec<u8>>) {
        let sub = self.subscriber.clone_ref(py);
        let (ok, value): (bool, Py<PyAny>) = match &r {
            Ok(m) => (true, PyBytes::new(py, m).into_any().unbind()),
            Err(e) => (false, e.clone_ref(py).into_value(py).into_any()),
        };
        let fut = self.fut.clone_ref(py);
        let done = PyCFunction::new_closure(py, None, None, move |args, _kw| {
            let py = args.py();
            let fut = fut.bind(py);
            if fut.call_method0("done")?.is_truthy()? {
                if ok {
                    put_back(py, &sub, value.bind(py))?;
                }
                return Ok::<_, PyErr>(());
            }
            if ok {
                fut.call_method1("set_result", (value.bind(py),))?;
            } else {
                fut.call_method1("set_exception", (value.bind(py),))?;
            }
            Ok(())
        });
        let scheduled = done.and_then(|done| {
            self.event_loop
                .bind(py)
                .call_method1("call_soon_threadsafe", (done,))
        });
        if scheduled.is_err() {
            // The loop is closed: keep the message for the next receive.
            if let Ok(m) = r {
                let _ = put_back(py, &self.subscriber, PyBytes::new(py, &m).as_any());
            }
        }
    }
}

/// Puts a message that a cancelled `recv_async` received back in front of the queue.
fn put_back(py: Python<'_>, sub: &Py<PySubscriber>, msg: &Bound<'_, PyAny>) -> PyResult<()> {
    let bytes = msg.cast::<PyBytes>()?.as_bytes().to_vec();
    lock(py, &sub.get().state).stash.push_back(bytes);
    Ok(())
}
