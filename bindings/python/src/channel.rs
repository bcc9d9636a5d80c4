//! `Publisher`, `Loan`, `Subscriber` and `Borrowed`: broadcast channels.
//!
//! Each Python object wraps its Rust handle in a mutex, so that threads may share it (calls
//! are serialised). Locking follows one rule that makes GIL/mutex deadlocks impossible:
//! while attached to the interpreter we lock with `lock_py_attached` (which detaches while
//! it waits); while detached we lock plainly. A thread holding the mutex may then attach.

use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::{PyBytes, PyCFunction, PyTuple};

use shmbus::{ChannelConfig, Error, Mode, Publisher, Subscriber};

use crate::errors::{closed, to_py, IntoPy};
use crate::handler::HandlerGuard;
use crate::opts::{deadline, duration, slice, OptionArgs};
use crate::pybuf::{lend, Input, LendState, Output};

/// Locks `m` while attached (see the module docs).
pub fn lock<'a, T>(py: Python<'_>, m: &'a Mutex<T>) -> MutexGuard<'a, T> {
    m.lock_py_attached(py)
        .unwrap_or_else(PoisonError::into_inner)
}

/// Locks `m` while detached.
fn lock_detached<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Backpressure => "backpressure",
        _ => "lossy",
    }
}

fn parse_mode(mode: &str) -> PyResult<Mode> {
    match mode {
        "lossy" => Ok(Mode::Lossy),
        "backpressure" | "back-pressure" => Ok(Mode::Backpressure),
        other => Err(PyValueError::new_err(format!(
            "mode must be \"lossy\" or \"backpressure\", not {other:?}"
        ))),
    }
}

/// What a channel handle shows without locking.
struct Facts {
    name: String,
    namespace: Option<String>,
    config: ChannelConfig,
}

impl Facts {
    fn new(name: &shmbus::Name, config: &ChannelConfig) -> Facts {
        Facts {
            name: name.as_str().to_owned(),
            namespace: name.namespace().map(str::to_owned),
            config: config.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Publisher

/// The one writer of a broadcast channel.
///
/// A channel is a ring of messages in shared memory. ``mode="lossy"`` (the default) never
/// waits: a subscriber that falls a whole ring behind loses the oldest messages and is told
/// exactly how many (``Lagged``). ``mode="backpressure"`` never loses: ``send`` waits for the
/// slowest subscriber. ``Publisher(name, ...)`` creates the channel; it is removed when the
/// publisher closes unless ``persistent``. Threads may share a publisher (calls are
/// serialised).
#[pyclass(module = "shmbus._shmbus", name = "Publisher", frozen)]
pub struct PyPublisher {
    facts: Facts,
    state: Mutex<PubState>,
}

struct PubState {
    publisher: Option<Publisher>,
    /// The loan lent to Python, until committed or discarded.
    loan: Option<LoanRecord>,
    next_loan: u64,
}

struct LoanRecord {
    id: u64,
    view: Py<PyAny>,
    lend: Arc<LendState>,
}

impl PubState {
    fn publisher(&mut self, py: Python<'_>, facts: &Facts) -> PyResult<&mut Publisher> {
        self.publisher
            .as_mut()
            .ok_or_else(|| closed(py, &format!("publisher of `{}`", facts.name)))
    }

    /// Fails while a loan is open: a send would silently discard it.
    fn no_open_loan(&mut self, py: Python<'_>) -> PyResult<()> {
        let Some(rec) = &self.loan else { return Ok(()) };
        let _ = py;
        if rec.lend.viewed() {
            return Err(PyBufferError::new_err(
                "a loan of this publisher is still open: commit() or discard() it (or leave \
                 its with block) first",
            ));
        }
        // Every view of the loan is gone without a commit: nothing is published.
        self.loan = None;
        if let Some(p) = self.publisher.as_mut() {
            p.discard_held();
        }
        Ok(())
    }

    /// Ends loan `id`: releases its memoryview, then commits or discards it.
    fn end_loan(&mut self, py: Python<'_>, id: u64, commit: bool) -> PyResult<()> {
        match &self.loan {
            Some(rec) if rec.id == id => {
                release_view(py, rec.view.bind(py), &rec.lend, "loan")?;
            }
            _ => {
                return Err(PyValueError::new_err(
                    "this loan is over (committed, discarded, or replaced)",
                ))
            }
        }
        self.loan = None;
        let p = self
            .publisher
            .as_mut()
            .ok_or_else(|| closed(py, "the publisher of this loan"))?;
        if commit {
            p.commit_held().py(py)
        } else {
            p.discard_held();
            Ok(())
        }
    }
}

/// Releases `view` and checks that no other view of the lent bytes is left (a slice, a
/// numpy array): `BufferError` otherwise, and the bytes stay lent.
fn release_view(
    py: Python<'_>,
    view: &Bound<'_, PyAny>,
    lend: &LendState,
    what: &str,
) -> PyResult<()> {
    let released = view.call_method0("release");
    if released.is_err() || lend.viewed() {
        let _ = py;
        return Err(PyBufferError::new_err(format!(
            "a view of the {what} is still in use (a memoryview slice or a numpy array made \
             from it): delete it first; the {what} stays open until then"
        )));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn make_publisher(
    name: &str,
    create: Option<bool>,
    mode: &str,
    capacity: usize,
    max_message: Option<usize>,
    max_subscribers: usize,
    opts: OptionArgs<'_, '_>,
    py: Python<'_>,
) -> PyResult<PyPublisher> {
    let opts = opts.build()?;
    let publisher = match create {
        Some(true) | None => {
            let mut config = ChannelConfig::with_capacity(capacity);
            config.mode = parse_mode(mode)?;
            if let Some(m) = max_message {
                config.max_message = m;
            }
            config.max_subscribers = max_subscribers;
            if create == Some(true) {
                py.detach(|| Publisher::create_with(name, config, &opts))
            } else {
                py.detach(|| Publisher::create_or_open_with(name, config, &opts))
            }
        }
        Some(false) => py.detach(|| Publisher::open_with(name, &opts)),
    }
    .py(py)?;
    Ok(PyPublisher {
        facts: Facts::new(publisher.name(), publisher.config()),
        state: Mutex::new(PubState {
            publisher: Some(publisher),
            loan: None,
            next_loan: 1,
        }),
    })
}

#[pymethods]
impl PyPublisher {
    /// Creates channel ``name`` and becomes its publisher.
    #[new]
    #[pyo3(signature = (name, *, mode = "lossy", capacity = 65536, max_message = None,
        max_subscribers = 16, namespace = None, permissions = None, persistent = false,
        allow_owner = None, require_owner = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        name: &str,
        mode: &str,
        capacity: usize,
        max_message: Option<usize>,
        max_subscribers: usize,
        namespace: Option<&str>,
        permissions: Option<u32>,
        persistent: bool,
        allow_owner: Option<&Bound<'_, PyAny>>,
        require_owner: Option<u32>,
    ) -> PyResult<Self> {
        let opts = OptionArgs {
            namespace,
            permissions,
            persistent,
            open_timeout: None,
            allow_owner,
            require_owner,
        };
        make_publisher(
            name,
            Some(true),
            mode,
            capacity,
            max_message,
            max_subscribers,
            opts,
            py,
        )
    }

    /// Becomes the publisher of an existing channel whose publisher has gone.
    #[staticmethod]
    #[pyo3(signature = (name, *, namespace = None, open_timeout = 1.0, allow_owner = None,
        require_owner = None))]
    fn open(
        py: Python<'_>,
        name: &str,
        namespace: Option<&str>,
        open_timeout: f64,
        allow_owner: Option<&Bound<'_, PyAny>>,
        require_owner: Option<u32>,
    ) -> PyResult<Self> {
        let opts = OptionArgs {
            namespace,
            permissions: None,
            persistent: false,
            open_timeout: Some(open_timeout),
            allow_owner,
            require_owner,
        };
        make_publisher(name, Some(false), "lossy", 0, None, 0, opts, py)
    }

    /// Opens the channel when it exists with this configuration, else creates it.
    #[staticmethod]
    #[pyo3(signature = (name, *, mode = "lossy", capacity = 65536, max_message = None,
        max_subscribers = 16, namespace = None, permissions = None, persistent = false,
        allow_owner = None, require_owner = None))]
    #[allow(clippy::too_many_arguments)]
    fn create_or_open(
        py: Python<'_>,
        name: &str,
        mode: &str,
        capacity: usize,
        max_message: Option<usize>,
        max_subscribers: usize,
        namespace: Option<&str>,
        permissions: Option<u32>,
        persistent: bool,
        allow_owner: Option<&Bound<'_, PyAny>>,
        require_owner: Option<u32>,
    ) -> PyResult<Self> {
        let opts = OptionArgs {
            namespace,
            permissions,
            persistent,
            open_timeout: None,
            allow_owner,
            require_owner,
        };
        make_publisher(
            name,
            None,
            mode,
            capacity,
            max_message,
            max_subscribers,
            opts,
            py,
        )
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

    /// How many subscribers may attach at once.
    #[getter]
    fn max_subscribers(&self) -> usize {
        self.facts.config.max_subscribers
    }

    /// Messages published so far.
    #[getter]
    fn published(&self, py: Python<'_>) -> PyResult<u64> {
        let mut g = lock(py, &self.state);
        Ok(g.publisher(py, &self.facts)?.published())
    }

    /// Subscribers attached now.
    #[getter]
    fn subscriber_count(&self, py: Python<'_>) -> PyResult<usize> {
        let mut g = lock(py, &self.state);
        Ok(g.publisher(py, &self.facts)?.subscriber_count())
    }

    /// Whether ``close`` was called.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        lock(py, &self.state).publisher.is_none()
    }

    /// Publishes ``data`` (bytes, bytearray, memoryview, numpy array: any contiguous buffer).
    ///
    /// Back-pressure: waits for room as long as it takes, or at most ``timeout`` seconds
    /// (``Timeout``). Lossy: never waits.
    #[pyo3(signature = (data, timeout = None))]
    fn send(&self, py: Python<'_>, data: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<()> {
        let input = Input::new(data)?;
        let bytes = input.bytes();
        let timeout = duration(timeout, "timeout")?;
        {
            let mut g = lock(py, &self.state);
            g.no_open_loan(py)?;
            match g.publisher(py, &self.facts)?.try_send(bytes) {
                Err(Error::Full) if timeout != Some(Duration::ZERO) => {}
                Err(Error::Full) => return Err(to_py(py, Error::Timeout)),
                r => return r.py(py),
            }
        }
        let state = &self.state;
        crate::opts::blocking(py, timeout, |s| {
            let mut g = lock_detached(state);
            match g.publisher.as_mut() {
                Some(p) => p.send_timeout(bytes, s),
                None => Err(Error::InvalidConfig {
                    reason: "the publisher was closed while send waited".into(),
                }),
            }
        })
    }

    /// Publishes ``data`` if there is room now: ``False`` when the ring is full.
    fn try_send(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<bool> {
        let input = Input::new(data)?;
        let mut g = lock(py, &self.state);
        g.no_open_loan(py)?;
        match g.publisher(py, &self.facts)?.try_send(input.bytes()) {
            Ok(()) => Ok(true),
            Err(Error::Full) => Ok(false),
            Err(e) => Err(to_py(py, e)),
        }
    }

    /// Room for a ``size``-byte message in the ring, written in place (zero-copy).
    ///
    /// Use it as a context manager: the ``with`` target is a writable memoryview, committed
    /// on a normal exit and discarded when the block raises. Back-pressure: waits for room
    /// as ``send`` does.
    #[pyo3(signature = (size, timeout = None))]
    fn loan(slf: Bound<'_, Self>, size: usize, timeout: Option<f64>) -> PyResult<Loan> {
        let py = slf.py();
        let me = slf.get();
        let timeout = duration(timeout, "timeout")?;
        let until = deadline(timeout);
        let mut first = true;
        loop {
            let mut g = lock(py, &me.state);
            g.no_open_loan(py)?;
            let p = g.publisher(py, &me.facts)?;
            let r = if first {
                p.hold_loan(size, Some(Duration::ZERO))
                    .map(|b| (b.as_mut_ptr() as usize, b.len()))
            } else {
                let s = slice(until);
                py.detach(|| {
                    p.hold_loan(size, Some(s))
                        .map(|b| (b.as_mut_ptr() as usize, b.len()))
                })
            };
            match r {
                Ok((ptr, len)) => {
                    let ptr = NonNull::new(ptr as *mut u8).unwrap_or(NonNull::dangling());
                    // SAFETY: the held loan's bytes stay in the mapping, written only through
                    // this view, until `end_loan` (which first makes sure no view is left)
                    // or a drop that parks the publisher in the lend state.
                    #[allow(unsafe_code)]
                    let (view, lend) = unsafe { lend(py, ptr, len, true)? };
                    let id = g.next_loan;
                    g.next_loan += 1;
                    g.loan = Some(LoanRecord {
                        id,
                        view: view.clone().unbind(),
                        lend,
                    });
                    return Ok(Loan {
                        publisher: slf.clone().unbind(),
                        view: view.unbind(),
                        id,
                        len,
                    });
                }
                Err(Error::Full | Error::Timeout) => {}
                Err(e) => return Err(to_py(py, e)),
            }
            drop(g);
            first = false;
            py.check_signals()?;
            if until.is_some_and(|d| Instant::now() >= d) {
                return Err(to_py(py, Error::Timeout));
            }
        }
    }

    /// Waits until at least ``count`` subscribers are attached (``Timeout`` after
    /// ``timeout`` seconds).
    #[pyo3(signature = (count, timeout = None))]
    fn wait_subscribers(&self, py: Python<'_>, count: usize, timeout: Option<f64>) -> PyResult<()> {
        if count > self.facts.config.max_subscribers {
            return Err(to_py(
                py,
                Error::InvalidConfig {
                    reason: format!(
                        "{count} subscribers can never attach to `{}`: it has {} slots",
                        self.facts.name, self.facts.config.max_subscribers
                    ),
                },
            ));
        }
        let timeout = duration(timeout, "timeout")?;
        let state = &self.state;
        crate::opts::blocking(py, timeout, |s| {
            // No notification exists for a subscriber's arrival: look every millisecond.
            let end = Instant::now() + s;
            loop {
                let n = match lock_detached(state).publisher.as_ref() {
                    Some(p) => p.subscriber_count(),
                    None => {
                        return Err(Error::InvalidConfig {
                            reason: "the publisher was closed while it waited".into(),
                        })
                    }
                };
                if n >= count {
                    return Ok(());
                }
                let now = Instant::now();
                if now >= end {
                    return Err(Error::Timeout);
                }
                std::thread::sleep((end - now).min(Duration::from_millis(1)));
            }
        })
    }

    /// Ends the stream: subscribers get ``Disconnected`` after the last message. The channel
    /// is removed unless it was created ``persistent``. ``BufferError`` while a loan's view is
    /// still in use.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let mut g = lock(py, &self.state);
        g.no_open_loan(py)?;
        let p = g.publisher.take();
        drop(g);
        py.detach(|| drop(p));
        Ok(())
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
            "<shmbus.Publisher {:?} {}{state}>",
            self.facts.name,
            mode_name(self.facts.config.mode)
        )
    }
}

impl Drop for PyPublisher {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        let publisher = st.publisher.take();
        match (st.loan.take(), publisher) {
            // A view of the loan outlives us: keep the mapping (and the stream) until it dies.
            (Some(rec), Some(p)) if rec.lend.viewed() => rec.lend.keep_until_unviewed(Box::new(p)),
            (_, p) => drop(p),
        }
    }
}

/// Room for one message in the ring (see ``Publisher.loan``): fill ``view``, then
/// ``commit()`` (or leave the ``with`` block); ``discard()`` publishes nothing.
#[pyclass(module = "shmbus._shmbus", name = "Loan", frozen)]
pub struct Loan {
    publisher: Py<PyPublisher>,
    view: Py<PyAny>,
    id: u64,
    len: usize,
}

impl Loan {
    fn end(&self, py: Python<'_>, commit: bool) -> PyResult<()> {
        let p = self.publisher.get();
        lock(py, &p.state).end_loan(py, self.id, commit)
    }
}

#[pymethods]
impl Loan {
    /// The writable bytes of the message (released on commit or discard).
    #[getter]
    fn view(&self, py: Python<'_>) -> Py<PyAny> {
        self.view.clone_ref(py)
    }

    fn __len__(&self) -> usize {
        self.len
    }

    /// Publishes the message. ``BufferError`` while a view of it is still in use.
    fn commit(&self, py: Python<'_>) -> PyResult<()> {
        self.end(py, true)
    }

    /// Gives the room back without publishing anything.
    fn discard(&self, py: Python<'_>) -> PyResult<()> {
        self.end(py, false)
    }

    fn __enter__(&self, py: Python<'_>) -> Py<PyAny> {
        self.view.clone_ref(py)
    }

    #[pyo3(signature = (exc_type, _exc, _tb))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        self.end(py, exc_type.is_none())?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("<shmbus.Loan of {} bytes>", self.len)
    }
}

// ---------------------------------------------------------------------------------------------
// Subscriber

/// One reader of a broadcast channel; every subscriber gets every message.
///
/// ``Subscriber(name)`` starts with the next message published; ``from_oldest=True`` with the
/// oldest still in the ring. Threads may share a subscriber (receives are serialised).
#[pyclass(module = "shmbus._shmbus", name = "Subscriber", frozen)]
pub struct PySubscriber {
    facts: Facts,
    state: Mutex<SubState>,
}

pub(crate) struct SubState {
    sub: Option<Subscriber>,
    /// Messages received for a `recv_async` that was cancelled: the next receives return
    /// them first.
    stash: VecDeque<Vec<u8>>,
    /// The message lent by `recv_ref`, until released.
    borrow: Option<BorrowRecord>,
    next_borrow: u64,
    scratch: Vec<u8>,
}

struct BorrowRecord {
    id: u64,
    view: Py<PyAny>,
    lend: Arc<LendState>,
}

/// What one receive attempt waits for.
#[derive(Clone, Copy)]
enum Attempt {
    /// Nothing: take what is there.
    Now,
    /// At most this, detached.
    For(Duration),
}

impl SubState {
    fn sub(&mut self, py: Python<'_>, facts: &Facts) -> PyResult<&mut Subscriber> {
        self.sub
            .as_mut()
            .ok_or_else(|| closed(py, &format!("subscriber of `{}`", facts.name)))
    }

    /// Ends the borrow of `recv_ref` before anything else is received: the publisher may
    /// reuse those bytes from then on. `BufferError` while a view of them is in use.
    fn settle_borrow(&mut self, py: Python<'_>) -> PyResult<()> {
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
    let until = deadline(timeout);
    let mut attempt = Attempt::Now;
    loop {
        {
            let mut g = lock(py, &me.state);
            g.settle_borrow(py)?;
            g.sub(py, &me.facts)?;
            if let Some(v) = f(&mut g, attempt)? {
                return Ok(v);
            }
        }
        py.check_signals()?;
        if until.is_some_and(|d| Instant::now() >= d) {
            return Err(to_py(py, Error::Timeout));
        }
        attempt = Attempt::For(slice(until));
    }
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
    #[pyo3(signature = (name, *, from_oldest = false, namespace = None, open_timeout = 1.0,
        allow_owner = None, require_owner = None))]
    fn new(
        py: Python<'_>,
        name: &str,
        from_oldest: bool,
        namespace: Option<&str>,
        open_timeout: f64,
        allow_owner: Option<&Bound<'_, PyAny>>,
        require_owner: Option<u32>,
    ) -> PyResult<Self> {
        let opts = OptionArgs {
            namespace,
            permissions: None,
            persistent: false,
            open_timeout: Some(open_timeout),
            allow_owner,
            require_owner,
        }
        .build()?;
        let sub = py
            .detach(|| {
                if from_oldest {
                    Subscriber::open_from_oldest(name, &opts)
                } else {
                    Subscriber::open_with(name, &opts)
                }
            })
            .py(py)?;
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
    fn try_recv<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let mut g = lock(py, &self.state);
        g.settle_borrow(py)?;
        g.sub(py, &self.facts)?;
        settle(py, g.receive(py, &self.facts, Attempt::Now))
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
        let py = slf.py();
        let timeout = duration(timeout, "timeout")?;
        let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
        let fut = event_loop.call_method0("create_future")?;
        // Fast path: a message is waiting.
        match slf.get().try_recv(py) {
            Ok(Some(m)) => {
                fut.call_method1("set_result", (m,))?;
                return Ok(fut);
            }
            Ok(None) => {}
            Err(e) => {
                fut.call_method1("set_exception", (e.into_value(py),))?;
                return Ok(fut);
            }
        }
        let cancelled = Arc::new(AtomicBool::new(false));
        let flag = cancelled.clone();
        let on_done = PyCFunction::new_closure(py, None, None, move |args, _kwargs| {
            let fut = args.get_item(0)?;
            if fut.call_method0("cancelled")?.is_truthy()? {
                flag.store(true, Ordering::Relaxed);
            }
            Ok::<_, PyErr>(())
        })?;
        fut.call_method1("add_done_callback", (on_done,))?;
        let job = AsyncRecv {
            subscriber: slf.clone().unbind(),
            event_loop: event_loop.unbind(),
            fut: fut.clone().unbind(),
            cancelled,
            until: deadline(timeout),
        };
        std::thread::Builder::new()
            .name("shmbus-recv-async".into())
            .spawn(move || job.run())
            .map_err(|e| PyErr::new::<pyo3::exceptions::PyOSError, _>(e.to_string()))?;
        Ok(fut)
    }

    /// Publishes this subscriber's progress at once (back-pressure): frees the room of what
    /// it has read for a publisher that waits.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let mut g = lock(py, &self.state);
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

impl Drop for PySubscriber {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
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

/// A `recv_async` waiting on its own thread.
struct AsyncRecv {
    subscriber: Py<PySubscriber>,
    event_loop: Py<PyAny>,
    fut: Py<PyAny>,
    cancelled: Arc<AtomicBool>,
    until: Option<Instant>,
}

impl AsyncRecv {
    fn run(self) {
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
