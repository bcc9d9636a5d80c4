//! `Subscriber` and `Borrowed`: the reading ends of a broadcast channel.

use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use shmbus::{Error, Mode, Subscriber};

use crate::channel::{lock, lock_until, mode_name, release_view, Facts};
use crate::errors::{closed, to_py};
use crate::handler::HandlerGuard;
use crate::opts::{duration, Attempt, OptionArgs};
use crate::pybuf::{lend, LendState, Output};

/// One reader of a broadcast channel; every subscriber gets every message.
///
/// ``Subscriber(name)`` starts with the next message published; ``from_oldest=True`` with the
/// oldest still in the ring. Threads may share a subscriber (receives are serialised).
// `weakref`: a `WaitSet` looks at the stash of the subscribers attached to it, without keeping
// them open.
#[pyclass(module = "shmbus._shmbus", name = "Subscriber", frozen, weakref)]
pub struct PySubscriber {
    pub(crate) facts: Facts,
    pub(crate) state: Mutex<SubState>,
}

pub(crate) struct SubState {
    pub(crate) sub: Option<Subscriber>,
    /// Messages received for a `recv_async` that was cancelled: the next receives return
    /// them first.
    pub(crate) stash: VecDeque<Vec<u8>>,
    /// The message lent by `recv_ref`, until released.
    pub(crate) borrow: Option<BorrowRecord>,
    next_borrow: u64,
    scratch: Vec<u8>,
}

pub(crate) struct BorrowRecord {
    id: u64,
    view: Py<PyAny>,
    lend: Arc<LendState>,
}

impl SubState {
    fn sub(&mut self, py: Python<'_>, facts: &Facts) -> PyResult<&mut Subscriber> {
        self.sub
            .as_mut()
            .ok_or_else(|| closed(py, &format!("subscriber of `{}`", facts.name)))
    }

    /// Ends the borrow of `recv_ref` before anything else is received: the publisher may
    /// reuse those bytes from then on. `BufferError` while a view of them is in use.
    pub(crate) fn settle_borrow(&mut self, py: Python<'_>) -> PyResult<()> {
        let Some(rec) = &self.borrow else {
            return Ok(());
        };
        release_view(py, rec.view.bind(py), &rec.lend, "borrowed message")?;
        self.borrow = None;
        if let Some(s) = self.sub.as_mut() {
            s.flush();
        }
        Ok(())
    }

    /// One receive, as bytes.
    fn receive<'py>(
        &mut self,
        py: Python<'py>,
        facts: &Facts,
        attempt: Attempt,
    ) -> shmbus::Result<Bound<'py, PyBytes>> {
        if let Some(m) = self.stash.pop_front() {
            return Ok(PyBytes::new(py, &m));
        }
        let Some(sub) = self.sub.as_mut() else {
            return Err(Error::InvalidConfig {
                reason: format!("the subscriber of `{}` is closed", facts.name),
            });
        };
        if facts.config.mode == Mode::Backpressure {
            // Straight from the ring into the bytes object: one copy. (A subscriber opened
            // `from_oldest` cannot borrow until it has copied what it replays: `WrongMode`.)
            let r = match attempt {
                Attempt::Now => sub.try_recv_ref(),
                Attempt::For(s) => py.detach(|| sub.recv_ref_timeout(s)),
            };
            match r {
                Ok(sample) => return Ok(PyBytes::new(py, &sample)),
                Err(Error::WrongMode { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let buf = &mut self.scratch;
        let sub = self.sub.as_mut().expect("checked above");
        match attempt {
            Attempt::Now => sub.try_recv_into(buf),
            Attempt::For(s) => py.detach(|| sub.recv_timeout_into(buf, s)),
        }?;
        Ok(PyBytes::new(py, buf))
    }
}

/// Calls `f` until it stops timing out or `timeout` passes: first without waiting (attached),
/// then in detached slices, unlocking between slices and looking at signals.
fn receive_loop<'py, T>(
    py: Python<'py>,
    me: &PySubscriber,
    timeout: Option<Duration>,
    mut f: impl FnMut(&mut SubState, Attempt) -> PyResult<Option<T>>,
) -> PyResult<T> {
    let r = crate::opts::sliced(py, timeout, |attempt, until| {
        let Some(mut g) = lock_until(py, &me.state, until) else {
            return Err(to_py(py, Error::Timeout));
        };
        g.settle_borrow(py)?;
        g.sub(py, &me.facts)?;
        f(&mut g, attempt)
    })?;
    r.ok_or_else(|| to_py(py, Error::Timeout))
}

/// `Ok(None)` for "nothing yet", the value, or the error as a Python exception.
fn settle<T>(py: Python<'_>, r: shmbus::Result<T>) -> PyResult<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(Error::Empty | Error::Timeout) => Ok(None),
        Err(e) => Err(to_py(py, e)),
    }
}

#[pymethods]
impl PySubscriber {
    /// Subscribes to channel ``name``.
    #[new]
    #[pyo3(signature = (name, *, from_oldest = false, namespace = None, open_timeout = 0.0,
        allow_owner = None, require_owner = None, spin = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        name: &str,
        from_oldest: bool,
        namespace: Option<&str>,
        open_timeout: f64,
        allow_owner: Option<&Bound<'_, PyAny>>,
        require_owner: Option<u32>,
        spin: Option<f64>,
    ) -> PyResult<Self> {
        let opts = OptionArgs::opening(namespace, allow_owner, require_owner, spin).build()?;
        let sub = crate::opts::open_retry(py, open_timeout, |wait| {
            let opts = opts.clone().wait_for_creation(wait);
            if from_oldest {
                Subscriber::open_from_oldest(name, &opts)
            } else {
                Subscriber::open_with(name, &opts)
            }
        })?;
        Ok(PySubscriber {
            facts: Facts::new(sub.name(), sub.config()),
            state: Mutex::new(SubState {
                sub: Some(sub),
                stash: VecDeque::new(),
                borrow: None,
                next_borrow: 1,
                scratch: Vec::new(),
            }),
        })
    }

    /// The channel's name.
    #[getter]
    fn name(&self) -> &str {
        &self.facts.name
    }

    /// The channel's namespace (``None``: the default one).
    #[getter]
    fn namespace(&self) -> Option<&str> {
        self.facts.namespace.as_deref()
    }

    /// ``"lossy"`` or ``"backpressure"``.
    #[getter]
    fn mode(&self) -> &'static str {
        mode_name(self.facts.config.mode)
    }

    /// The ring's size in bytes.
    #[getter]
    fn capacity(&self) -> usize {
        self.facts.config.capacity
    }

    /// The largest message, in bytes.
    #[getter]
    fn max_message(&self) -> usize {
        self.facts.config.max_message
    }

    /// Messages lost so far: the sum of every ``Lagged`` (also those iteration skipped).
    #[getter]
    fn lost(&self, py: Python<'_>) -> PyResult<u64> {
        let mut g = lock(py, &self.state);
        Ok(g.sub(py, &self.facts)?.lost())
    }

    /// Whether the channel's publisher lives now.
    #[getter]
    fn publisher_alive(&self, py: Python<'_>) -> PyResult<bool> {
        let mut g = lock(py, &self.state);
        Ok(g.sub(py, &self.facts)?.publisher_alive())
    }

    /// Whether ``close`` was called (or the subscriber was handed to ``on_message``).
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        lock(py, &self.state).sub.is_none()
    }

    /// The next message, waiting at most ``timeout`` seconds (as long as it takes if
    /// ``None``).
    ///
    /// Raises ``Timeout``, ``Disconnected`` (the end of the stream), ``PublisherGone``, or
    /// ``Lagged`` (messages were lost: call again, the next receive continues).
    #[pyo3(signature = (timeout = None))]
    fn recv<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyBytes>> {
        let timeout = duration(timeout, "timeout")?;
        receive_loop(py, self, timeout, |st, a| {
            settle(py, st.receive(py, &self.facts, a))
        })
    }

    /// The next message if one is waiting, else ``None``. ``Disconnected`` at the end of the
    /// stream.
    pub(crate) fn try_recv<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let mut g = lock(py, &self.state);
        self.try_recv_locked(py, &mut g)
    }

    /// Receives into a writable buffer (bytearray, numpy array, ...) and returns the
    /// message's length. A message longer than the buffer stays unread: ``TooLarge`` says
    /// how long it is.
    #[pyo3(signature = (buffer, timeout = None))]
    fn recv_into(
        &self,
        py: Python<'_>,
        buffer: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        let mut out = Output::new(buffer)?;
        let timeout = duration(timeout, "timeout")?;
        let name = self.facts.name.clone();
        receive_loop(py, self, timeout, |st, a| {
            let buf = out.bytes_mut();
            if let Some(m) = st.stash.front() {
                if m.len() > buf.len() {
                    return Err(to_py(
                        py,
                        Error::BufferTooSmall {
                            name: format!("`{name}`"),
                            needed: m.len(),
                            len: buf.len(),
                        },
                    ));
                }
                let m = st.stash.pop_front().expect("just seen");
                buf[..m.len()].copy_from_slice(&m);
                return Ok(Some(m.len()));
            }
            let sub = st.sub.as_mut().expect("checked by receive_loop");
            let r = match a {
                Attempt::Now => sub.try_recv_slice(buf),
                Attempt::For(s) => py.detach(|| sub.recv_slice_timeout(buf, s)),
            };
            settle(py, r)
        })
    }

    /// The next message without a copy (back-pressure channels): a context manager whose
    /// target is a read-only memoryview into the ring. The publisher does not reuse those
    /// bytes until the borrow ends: on leaving the ``with`` block, on ``release()``, or at
    /// the next receive. ``BufferError`` then if a view of it is still in use (a slice, a
    /// numpy array: delete those first).
    #[pyo3(signature = (timeout = None))]
    fn recv_ref(slf: Bound<'_, Self>, timeout: Option<f64>) -> PyResult<Borrowed> {
        let py = slf.py();
        let me = slf.get();
        let timeout = duration(timeout, "timeout")?;
        if me.facts.config.mode != Mode::Backpressure {
            return Err(to_py(
                py,
                Error::WrongMode {
                    name: format!("`{}`", me.facts.name),
                    mode: "lossy",
                    what: "zero-copy receive needs a back-pressure channel",
                },
            ));
        }
        let (id, view, len) = receive_loop(py, me, timeout, |st, a| {
            if let Some(m) = st.stash.pop_front() {
                // A message a cancelled recv_async took: lend its copy.
                let len = m.len();
                let ptr = NonNull::new(m.as_ptr() as *mut u8).unwrap_or(NonNull::dangling());
                // SAFETY: `m`'s heap bytes do not move when the Vec is moved, and are kept
                // (parked in the lend state just below) until no view is left; read-only.
                #[allow(unsafe_code)]
                let (view, lend) = unsafe { lend(py, ptr, len, false)? };
                lend.keep_until_unviewed(Box::new(m));
                let id = st.next_borrow;
                st.next_borrow += 1;
                st.borrow = Some(BorrowRecord {
                    id,
                    view: view.clone().unbind(),
                    lend,
                });
                return Ok(Some((id, view.unbind(), len)));
            }
            let sub = st.sub.as_mut().expect("checked by receive_loop");
            let r = match a {
                Attempt::Now => sub.try_recv_ref(),
                Attempt::For(s) => py.detach(|| sub.recv_ref_timeout(s)),
            };
            let Some(sample) = settle(py, r)? else {
                return Ok(None);
            };
            let (ptr, len) = (sample.as_ptr(), sample.len());
            // Keep the message borrowed past this call; `settle_borrow` publishes our
            // progress (which lets the publisher reuse the bytes) once no view is left.
            std::mem::forget(sample);
            let ptr = NonNull::new(ptr as *mut u8).unwrap_or(NonNull::dangling());
            // SAFETY: the message stays in the ring, unwritten by the publisher, until our
            // progress is published: only `settle_borrow` does that while `borrow` is set,
            // and it first checks that no view is left; a dropped subscriber parks itself
            // (its mapping) in the lend state while views live. Read-only view.
            #[allow(unsafe_code)]
            let (view, lend) = unsafe { lend(py, ptr, len, false)? };
            let id = st.next_borrow;
            st.next_borrow += 1;
            st.borrow = Some(BorrowRecord {
                id,
                view: view.clone().unbind(),
                lend,
            });
            Ok(Some((id, view.unbind(), len)))
        })?;
        Ok(Borrowed {
            subscriber: slf.clone().unbind(),
            view,
            id,
            len,
        })
    }

    /// ``recv`` for asyncio: a future that waits on a helper thread, so the event loop runs
    /// meanwhile. Cancelling it loses no message: one that arrived anyway is returned by the
    /// next receive.
    #[pyo3(signature = (timeout = None))]
    fn recv_async<'py>(slf: Bound<'py, Self>, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        // The coroutine starts receiving when it first runs (through `_recv_future`).
        slf.py()
            .import("shmbus._aio")?
            .call_method1("recv_async", (slf, timeout))
    }

    /// The future and cancel token of one `recv_async` (what its coroutine awaits).
    #[pyo3(signature = (timeout = None))]
    fn _recv_future<'py>(
        slf: Bound<'py, Self>,
        timeout: Option<f64>,
    ) -> PyResult<(Bound<'py, PyAny>, crate::recv_async::AsyncToken)> {
        crate::recv_async::recv_future(&slf, timeout)
    }

    /// Publishes this subscriber's progress at once (back-pressure): frees the room of what
    /// it has read for a publisher that waits.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let mut g = lock(py, &self.state);
        // A borrowed message ends first (its bytes must not be freed under a view).
        g.settle_borrow(py)?;
        g.sub(py, &self.facts)?.flush();
        Ok(())
    }

    /// Calls ``callback(message)`` on a background thread for each message, until the
    /// stream ends or the returned guard is stopped. The subscriber is handed to the handler
    /// (it is closed here).
    fn on_message(&self, py: Python<'_>, callback: Py<PyAny>) -> PyResult<Py<HandlerGuard>> {
        let (sub, stash) = {
            let mut g = lock(py, &self.state);
            g.settle_borrow(py)?;
            let sub = g.sub.take().ok_or_else(|| closed(py, "this subscriber"))?;
            (sub, std::mem::take(&mut g.stash))
        };
        crate::handler::on_message(py, sub, stash, callback)
    }

    /// Leaves the channel. ``BufferError`` while a view of a borrowed message is in use.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let mut g = lock(py, &self.state);
        g.settle_borrow(py)?;
        let s = g.sub.take();
        drop(g);
        drop(s);
        Ok(())
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// The next message; the end of the stream ends the iteration; losses are skipped (and
    /// counted in ``lost``); a dead publisher raises ``PublisherGone``.
    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        receive_loop(py, self, None, |st, a| {
            match st.receive(py, &self.facts, a) {
                Ok(m) => Ok(Some(Some(m))),
                Err(Error::Empty | Error::Timeout | Error::Lagged { .. }) => Ok(None),
                Err(Error::Disconnected { .. }) => Ok(Some(None)),
                Err(e) => Err(to_py(py, e)),
            }
        })
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let state = if self.closed(py) { " closed" } else { "" };
        format!(
            "<shmbus.Subscriber {:?} {}{state}>",
            self.facts.name,
            mode_name(self.facts.config.mode)
        )
    }
}

impl PySubscriber {
    /// `try_recv` with the lock held.
    pub(crate) fn try_recv_locked<'py>(
        &self,
        py: Python<'py>,
        st: &mut SubState,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        st.settle_borrow(py)?;
        st.sub(py, &self.facts)?;
        settle(py, st.receive(py, &self.facts, Attempt::Now))
    }
}

impl Drop for PySubscriber {
    fn drop(&mut self) {
        let st = self.state.get_mut();
        let sub = st.sub.take();
        match (st.borrow.take(), sub) {
            // A view of the borrowed message outlives us: keep the mapping until it dies
            // (the slot too: leaving would let the publisher overwrite the bytes).
            (Some(rec), Some(s)) if rec.lend.viewed() => rec.lend.keep_until_unviewed(Box::new(s)),
            (_, s) => drop(s),
        }
    }
}

/// A message borrowed in place (see ``Subscriber.recv_ref``).
#[pyclass(module = "shmbus._shmbus", name = "Borrowed", frozen)]
pub struct Borrowed {
    subscriber: Py<PySubscriber>,
    view: Py<PyAny>,
    id: u64,
    len: usize,
}

#[pymethods]
impl Borrowed {
    /// The message's bytes, read-only.
    #[getter]
    fn view(&self, py: Python<'_>) -> Py<PyAny> {
        self.view.clone_ref(py)
    }

    fn __len__(&self) -> usize {
        self.len
    }

    /// Ends the borrow (harmless when it already ended). ``BufferError`` while a view of it
    /// is still in use (a slice, a numpy array: delete those first).
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        let s = self.subscriber.get();
        let mut g = lock(py, &s.state);
        if g.borrow.as_ref().is_some_and(|b| b.id == self.id) {
            g.settle_borrow(py)?;
        }
        Ok(())
    }

    fn __enter__(&self, py: Python<'_>) -> Py<PyAny> {
        self.view.clone_ref(py)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.release(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("<shmbus.Borrowed message of {} bytes>", self.len)
    }
}
