//! `Publisher` and `Loan`: the writing end of a broadcast channel.

use std::ptr::NonNull;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use shmbus::{ChannelConfig, Error, Publisher};

use crate::channel::{lock, lock_detached, lock_until, mode_name, parse_mode, release_view, Facts};
use crate::errors::{closed, to_py, IntoPy};
use crate::opts::{deadline, duration, Attempt, OptionArgs, WaitErr};
use crate::pybuf::{lend, Input, LendState};

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

/// The loan lent to Python. Not its view: the `Loan` object holds that, so that when the
/// `Loan` and every view are gone (`_Lent` deallocated) the loan counts as abandoned.
struct LoanRecord {
    id: u64,
    lend: Arc<LendState>,
}

/// Why a send or loan is refused while a loan is open.
const LOAN_OPEN: &str = "a loan of this publisher is still open: commit() or discard() it (or \
                         leave its with block) first";

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
            return Err(PyBufferError::new_err(LOAN_OPEN));
        }
        // Every view of the loan is gone without a commit: nothing is published.
        self.loan = None;
        if let Some(p) = self.publisher.as_mut() {
            p.discard_held();
        }
        Ok(())
    }

    /// Ends loan `id` (whose memoryview is `view`): releases the view, then commits or
    /// discards the loan.
    fn end_loan(
        &mut self,
        py: Python<'_>,
        id: u64,
        view: &Bound<'_, PyAny>,
        commit: bool,
    ) -> PyResult<()> {
        match &self.loan {
            Some(rec) if rec.id == id => {
                release_view(py, view, &rec.lend, "loan")?;
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

#[allow(clippy::too_many_arguments)]
fn make_publisher(
    name: &str,
    create: Option<bool>,
    mode: &str,
    capacity: usize,
    max_message: Option<usize>,
    max_subscribers: usize,
    opts: OptionArgs<'_, '_>,
    open_timeout: f64,
    py: Python<'_>,
) -> PyResult<PyPublisher> {
    let opts = opts.build()?;
    let publisher = match create {
        Some(true) | None => {
            let mut config = ChannelConfig::with_capacity(capacity);
            config.mode = parse_mode(py, mode)?;
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
        Some(false) => {
            return wrap(crate::opts::open_retry(py, open_timeout, |wait| {
                Publisher::open_with(name, &opts.clone().wait_for_creation(wait))
            })?)
        }
    }
    .py(py)?;
    wrap(publisher)
}

fn wrap(publisher: Publisher) -> PyResult<PyPublisher> {
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
        allow_owner = None, require_owner = None, spin = None))]
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
        spin: Option<f64>,
    ) -> PyResult<Self> {
        let opts = OptionArgs {
            namespace,
            permissions,
            persistent,
            allow_owner,
            require_owner,
            spin,
        };
        make_publisher(
            name,
            Some(true),
            mode,
            capacity,
            max_message,
            max_subscribers,
            opts,
            0.0,
            py,
        )
    }

    /// Becomes the publisher of an existing channel whose publisher has gone.
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
        let opts = OptionArgs::opening(namespace, allow_owner, require_owner, spin);
        make_publisher(
            name,
            Some(false),
            "lossy",
            0,
            None,
            0,
            opts,
            open_timeout,
            py,
        )
    }

    /// Opens the channel when it exists with this configuration, else creates it.
    #[staticmethod]
    #[pyo3(signature = (name, *, mode = "lossy", capacity = 65536, max_message = None,
        max_subscribers = 16, namespace = None, permissions = None, persistent = false,
        allow_owner = None, require_owner = None, spin = None))]
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
        spin: Option<f64>,
    ) -> PyResult<Self> {
        let opts = OptionArgs {
            namespace,
            permissions,
            persistent,
            allow_owner,
            require_owner,
            spin,
        };
        make_publisher(
            name,
            None,
            mode,
            capacity,
            max_message,
            max_subscribers,
            opts,
            0.0,
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
            let Some(mut g) = lock_until(py, &self.state, deadline(timeout)) else {
                return Err(to_py(py, Error::Timeout));
            };
            g.no_open_loan(py)?;
            match g.publisher(py, &self.facts)?.try_send(bytes) {
                Err(Error::Full) if timeout != Some(Duration::ZERO) => {}
                Err(Error::Full) => return Err(to_py(py, Error::Timeout)),
                r => return r.py(py),
            }
        }
        let state = &self.state;
        crate::opts::blocking(py, timeout, |s| {
            // Waiting for the lock counts against the slice (and so the timeout).
            let Some(mut g) = state.try_lock_for(s) else {
                return Err(WaitErr::Lib(Error::Timeout));
            };
            if g.loan.as_ref().is_some_and(|rec| rec.lend.viewed()) {
                // Another thread took a loan between our slices: sending would overwrite it.
                return Err(WaitErr::Buffer(LOAN_OPEN.into()));
            }
            g.loan = None;
            match g.publisher.as_mut() {
                Some(p) => Ok(p.send_timeout(bytes, s)?),
                None => Err(WaitErr::Closed(format!(
                    "publisher of `{}`",
                    self.facts.name
                ))),
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
        let loan = crate::opts::sliced(py, timeout, |attempt, until| {
            let Some(mut g) = lock_until(py, &me.state, until) else {
                return Err(to_py(py, Error::Timeout));
            };
            g.no_open_loan(py)?;
            let p = g.publisher(py, &me.facts)?;
            let r = match attempt {
                Attempt::Now => p
                    .hold_loan(size, Some(Duration::ZERO))
                    .map(|b| (b.as_mut_ptr() as usize, b.len())),
                Attempt::For(s) => py.detach(|| {
                    p.hold_loan(size, Some(s))
                        .map(|b| (b.as_mut_ptr() as usize, b.len()))
                }),
            };
            let (ptr, len) = match r {
                Ok(got) => got,
                Err(Error::Full | Error::Timeout) => return Ok(None),
                Err(e) => return Err(to_py(py, e)),
            };
            let ptr = NonNull::new(ptr as *mut u8).unwrap_or(NonNull::dangling());
            // SAFETY: the held loan's bytes stay in the mapping, written only through
            // this view, until `end_loan` (which first makes sure no view is left)
            // or a drop that parks the publisher in the lend state.
            #[allow(unsafe_code)]
            let (view, lend) = unsafe { lend(py, ptr, len, true)? };
            let id = g.next_loan;
            g.next_loan += 1;
            g.loan = Some(LoanRecord { id, lend });
            Ok(Some(Loan {
                publisher: slf.clone().unbind(),
                view: view.unbind(),
                id,
                len,
            }))
        })?;
        loan.ok_or_else(|| to_py(py, Error::Timeout))
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
            // Each subscriber's attach wakes the library's wait: no polling. The lock is
            // held for one slice at most.
            match lock_detached(state).publisher.as_ref() {
                Some(p) => match p.wait_for_subscribers(count, Some(s))? {
                    true => Ok(()),
                    false => Err(WaitErr::Lib(Error::Timeout)),
                },
                None => Err(WaitErr::Closed(format!(
                    "publisher of `{}`",
                    self.facts.name
                ))),
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
        let st = self.state.get_mut();
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
        lock(py, &p.state).end_loan(py, self.id, self.view.bind(py), commit)
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
