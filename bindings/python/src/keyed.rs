//! `KeyedBlackboard` and `BoardKey`.
//!
//! A keyed board wraps its Rust handle, and one Rust `BoardKey` per key, in one mutex (as
//! `Blackboard` does): `close()` drops them all at once, so the board is removed when its
//! creator closes it, and every `BoardKey` made from it is closed with it.

use std::collections::HashMap;

use parking_lot::Mutex;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

use shmbus::{BoardKey, KeyedBlackboard};

use crate::board::wait_value;
use crate::channel::lock;
use crate::errors::{closed, IntoPy};
use crate::handler::HandlerGuard;
use crate::opts::{duration, OptionArgs};
use crate::pybuf::Input;

/// An open keyed board: the board and a handle per key, in the board's order.
struct Open {
    board: KeyedBlackboard,
    keys: Vec<BoardKey>,
}

/// A fixed set of named keys, each its own latest-value board. Threads may share it.
#[pyclass(module = "shmbus._shmbus", name = "KeyedBlackboard", frozen)]
pub struct PyKeyedBlackboard {
    name: String,
    namespace: Option<String>,
    capacity: usize,
    keys: Vec<String>,
    index: HashMap<String, usize>,
    open: Mutex<Option<Open>>,
}

/// The keys given to `create`: any iterable of `str` but a `str` itself.
fn key_list(keys: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if keys.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "keys takes an iterable of str (e.g. [\"pose\", \"battery\"]), not one str",
        ));
    }
    keys.try_iter()?.map(|k| k?.extract::<String>()).collect()
}

/// Runs `make(keys, options)` detached, for `create` and `create_or_open`.
fn creating(
    py: Python<'_>,
    keys: &Bound<'_, PyAny>,
    args: OptionArgs<'_, '_>,
    make: impl FnOnce(&[&str], &shmbus::Options) -> shmbus::Result<KeyedBlackboard> + Send,
) -> PyResult<PyKeyedBlackboard> {
    let keys = key_list(keys)?;
    let o = args.build()?;
    let b = py
        .detach(|| {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            make(&keys, &o)
        })
        .py(py)?;
    Ok(PyKeyedBlackboard::wrap(b))
}

impl PyKeyedBlackboard {
    fn wrap(board: KeyedBlackboard) -> PyKeyedBlackboard {
        let keys: Vec<String> = board.keys().to_vec();
        let handles = keys
            .iter()
            .map(|k| board.key(k).expect("one of the board's keys"))
            .collect();
        PyKeyedBlackboard {
            name: board.name().as_str().to_owned(),
            namespace: board.name().namespace().map(str::to_owned),
            capacity: board.capacity(),
            index: keys
                .iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), i))
                .collect(),
            keys,
            open: Mutex::new(Some(Open {
                board,
                keys: handles,
            })),
        }
    }

    fn what(&self) -> String {
        format!("keyed blackboard `{}`", self.name)
    }

    /// A clone of the handle of `key`, to use detached without holding the lock: `Closed`
    /// once closed, `UnknownKey` (the library's error and message) when the board has no
    /// such key. (The exception is made once the lock is released: making one runs Python
    /// code.)
    fn key_handle(&self, py: Python<'_>, key: &str) -> PyResult<BoardKey> {
        let found = lock(py, &self.open)
            .as_ref()
            .map(|open| match self.index.get(key) {
                Some(&i) => Ok(open.keys[i].clone()),
                None => open.board.key(key),
            });
        match found {
            Some(k) => k.py(py),
            None => Err(closed(py, &self.what())),
        }
    }

    /// A clone of the handle of key number `index`; `Closed` (naming the key) once closed.
    fn slot(&self, py: Python<'_>, index: usize) -> PyResult<BoardKey> {
        let k = lock(py, &self.open)
            .as_ref()
            .map(|open| open.keys[index].clone());
        k.ok_or_else(|| closed(py, &self.key_what(index)))
    }

    fn key_what(&self, index: usize) -> String {
        format!("key {:?} of {}", self.keys[index], self.what())
    }

    fn is_closed(&self, py: Python<'_>) -> bool {
        lock(py, &self.open).is_none()
    }
}

#[pymethods]
impl PyKeyedBlackboard {
    /// Creates keyed blackboard ``name`` with ``keys`` (1 to 4096 different keys of 1 to 60
    /// bytes of UTF-8 without control characters), each holding values of up to ``capacity``
    /// bytes.
    #[staticmethod]
    #[pyo3(signature = (name, keys, capacity, *, namespace = None, permissions = None,
        persistent = false, allow_owner = None, require_owner = None, spin = None))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        name: &str,
        keys: &Bound<'_, PyAny>,
        capacity: usize,
        namespace: Option<&str>,
        permissions: Option<u32>,
        persistent: bool,
        allow_owner: Option<&Bound<'_, PyAny>>,
        require_owner: Option<u32>,
        spin: Option<f64>,
    ) -> PyResult<Self> {
        let args = OptionArgs {
            namespace,
            permissions,
            persistent,
            allow_owner,
            require_owner,
            spin,
        };
        creating(py, keys, args, |keys, o| {
            KeyedBlackboard::create_with(name, keys, capacity, o)
        })
    }

    /// Opens keyed blackboard ``name``; with ``open_timeout``, waits that long for it to
    /// appear.
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
            KeyedBlackboard::open_with(name, &o.clone().wait_for_creation(wait))
        })?;
        Ok(Self::wrap(b))
    }

    /// Opens keyed blackboard ``name`` when it exists (with its own keys and capacity),
    /// else creates it.
    #[staticmethod]
    #[pyo3(signature = (name, keys, capacity, *, namespace = None, permissions = None,
        persistent = false, allow_owner = None, require_owner = None, spin = None))]
    #[allow(clippy::too_many_arguments)]
    fn create_or_open(
        py: Python<'_>,
        name: &str,
        keys: &Bound<'_, PyAny>,
        capacity: usize,
        namespace: Option<&str>,
        permissions: Option<u32>,
        persistent: bool,
        allow_owner: Option<&Bound<'_, PyAny>>,
        require_owner: Option<u32>,
        spin: Option<f64>,
    ) -> PyResult<Self> {
        let args = OptionArgs {
            namespace,
            permissions,
            persistent,
            allow_owner,
            require_owner,
            spin,
        };
        creating(py, keys, args, |keys, o| {
            KeyedBlackboard::create_or_open_with(name, keys, capacity, o)
        })
    }

    /// The board's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Its namespace (``None``: the default one).
    #[getter]
    fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The largest value of each key, in bytes.
    #[getter]
    fn capacity(&self) -> usize {
        self.capacity
    }

    /// The keys, in the order they were given at creation.
    #[getter]
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.keys)
    }

    /// A handle to ``key`` with the per-value operations of a ``Blackboard`` (no lookup per
    /// call); closed with this board.
    fn key(slf: &Bound<'_, Self>, key: &str) -> PyResult<PyBoardKey> {
        let this = slf.get();
        // `Closed`, or `UnknownKey`, as every call with a key.
        this.key_handle(slf.py(), key)?;
        Ok(PyBoardKey {
            board: slf.clone().unbind(),
            index: this.index[key],
        })
    }

    /// Replaces the value of ``key`` with ``data`` (any contiguous buffer); returns its
    /// version.
    fn write(&self, py: Python<'_>, key: &str, data: &Bound<'_, PyAny>) -> PyResult<u64> {
        let input = Input::new(data)?;
        let bytes = input.bytes();
        let k = self.key_handle(py, key)?;
        // Detached: a write may wait (a bounded while) for another writer of this key.
        py.detach(|| k.write(bytes)).py(py)
    }

    /// The current ``(version, value)`` of ``key``, never torn; ``(0, b"")`` before its
    /// first write.
    fn read<'py>(&self, py: Python<'py>, key: &str) -> PyResult<(u64, Bound<'py, PyBytes>)> {
        let k = self.key_handle(py, key)?;
        // Detached: a read may retry (a bounded while) against a busy writer.
        let (version, value) = py.detach(|| k.read()).py(py)?;
        Ok((version, PyBytes::new(py, &value)))
    }

    /// The version of ``key``'s current value (0: never written).
    fn version(&self, py: Python<'_>, key: &str) -> PyResult<u64> {
        Ok(self.key_handle(py, key)?.version())
    }

    /// Waits until the version of ``key`` exceeds ``version``: the new version, or ``None``
    /// after ``timeout`` seconds.
    #[pyo3(signature = (key, version, timeout = None))]
    fn wait_newer(
        &self,
        py: Python<'_>,
        key: &str,
        version: u64,
        timeout: Option<f64>,
    ) -> PyResult<Option<u64>> {
        let timeout = duration(timeout, "timeout")?;
        let k = self.key_handle(py, key)?;
        let closed_now = |py: Python<'_>| self.is_closed(py).then(|| self.what());
        wait_value(py, timeout, closed_now, |s| k.wait_newer(version, Some(s)))
    }

    /// Calls ``callback(version, value)`` on a background thread for each new value of
    /// ``key``, until the returned guard is stopped (as ``key(key).on_update(callback)``).
    fn on_update(
        &self,
        py: Python<'_>,
        key: &str,
        callback: Py<PyAny>,
    ) -> PyResult<Py<HandlerGuard>> {
        let k = self.key_handle(py, key)?;
        crate::handler::on_update(py, |f| k.on_update(f), callback)
    }

    /// Closes this handle and the ``BoardKey`` handles made from it (the board is removed
    /// when its creator closes, unless persistent).
    fn close(&self, py: Python<'_>) {
        let b = lock(py, &self.open).take();
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
            "<shmbus.KeyedBlackboard {:?} keys={} capacity={}>",
            self.name,
            self.keys.len(),
            self.capacity
        )
    }
}

/// One key of a keyed blackboard, with the operations of a ``Blackboard``; made by
/// ``KeyedBlackboard.key`` and closed with its board.
#[pyclass(module = "shmbus._shmbus", name = "BoardKey", frozen)]
pub struct PyBoardKey {
    board: Py<PyKeyedBlackboard>,
    index: usize,
}

impl PyBoardKey {
    fn parent(&self) -> &PyKeyedBlackboard {
        self.board.get()
    }

    /// A clone of the Rust handle, to use detached without holding the board's lock.
    pub(crate) fn handle(&self, py: Python<'_>) -> PyResult<BoardKey> {
        self.parent().slot(py, self.index)
    }
}

#[pymethods]
impl PyBoardKey {
    /// The key.
    #[getter]
    fn key(&self) -> &str {
        &self.parent().keys[self.index]
    }

    /// The keyed blackboard it belongs to.
    #[getter]
    fn board(&self, py: Python<'_>) -> Py<PyKeyedBlackboard> {
        self.board.clone_ref(py)
    }

    /// The version of the current value (0: never written).
    #[getter]
    fn version(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.handle(py)?.version())
    }

    /// Replaces the value with ``data`` (any contiguous buffer); returns its version.
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<u64> {
        let input = Input::new(data)?;
        let bytes = input.bytes();
        let k = self.handle(py)?;
        py.detach(|| k.write(bytes)).py(py)
    }

    /// The current ``(version, value)``, never torn; ``(0, b"")`` before the first write.
    fn read<'py>(&self, py: Python<'py>) -> PyResult<(u64, Bound<'py, PyBytes>)> {
        let k = self.handle(py)?;
        let (version, value) = py.detach(|| k.read()).py(py)?;
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
        let k = self.handle(py)?;
        let parent = self.parent();
        let closed_now = |py: Python<'_>| parent.is_closed(py).then(|| parent.key_what(self.index));
        wait_value(py, timeout, closed_now, |s| k.wait_newer(version, Some(s)))
    }

    /// Calls ``callback(version, value)`` on a background thread for each new value of this
    /// key, until the returned guard is stopped.
    fn on_update(&self, py: Python<'_>, callback: Py<PyAny>) -> PyResult<Py<HandlerGuard>> {
        let k = self.handle(py)?;
        crate::handler::on_update(py, |f| k.on_update(f), callback)
    }

    fn __repr__(&self) -> String {
        format!(
            "<shmbus.BoardKey {:?} of {:?}>",
            self.key(),
            self.parent().name
        )
    }
}
