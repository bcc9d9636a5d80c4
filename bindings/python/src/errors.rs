//! shmbus errors as Python exceptions.
//!
//! The exception classes are plain Python (`shmbus/_errors.py`), so that several can also be
//! the matching built-in exception (`Timeout` is a `TimeoutError`, `NotFound` a
//! `FileNotFoundError`, ...). This module picks the class for each Rust error.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

/// The name of the Python class for `e` (in `shmbus._errors`).
fn class_name(e: &shmbus::Error) -> &'static str {
    use shmbus::Error as E;
    match e {
        E::InvalidName { .. } | E::InvalidNamespace { .. } => "InvalidName",
        E::NotFound { .. } => "NotFound",
        E::AlreadyExists { .. } => "AlreadyExists",
        E::PermissionDenied { .. } | E::UntrustedOwner { .. } => "PermissionDenied",
        E::ForeignProcess { .. } => "ForeignProcess",
        E::WrongKind { .. } | E::NotShmbus { .. } | E::NotRegularFile { .. } => "WrongKind",
        E::VersionMismatch { .. } => "VersionMismatch",
        E::TooSmall { .. } | E::Corrupt { .. } | E::NotReady { .. } | E::Sparse { .. } => "Corrupt",
        E::ConfigMismatch { .. } | E::InvalidConfig { .. } => "InvalidConfig",
        E::TooLarge { .. } | E::BufferTooSmall { .. } => "TooLarge",
        E::UnknownKey { .. } => "UnknownKey",
        E::Busy { .. } => "Busy",
        E::HandlerPanicked { .. } => "HandlerError",
        E::PublisherExists { .. } => "PublisherExists",
        E::TooManySubscribers { .. } => "TooManySubscribers",
        E::Timeout => "Timeout",
        E::Disconnected { .. } => "Disconnected",
        E::PublisherGone { .. } | E::WriterDied { .. } => "PublisherGone",
        E::Lagged { .. } => "Lagged",
        E::WrongMode { .. } => "WrongMode",
        E::NoSpace { .. } | E::NoLoan { .. } | E::Full | E::Empty | E::Os { .. } => "Error",
        _ => "Error",
    }
}

/// The `shmbus._errors` module.
fn errors_module(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static MODULE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    MODULE
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("shmbus._errors")?.into_any().unbind())
        })
        .map(|m| m.bind(py))
}

/// An exception of class `name` (in `shmbus._errors`) with `message`.
pub fn exception(py: Python<'_>, name: &str, message: String) -> PyErr {
    match errors_module(py).and_then(|m| m.getattr(name)) {
        Ok(class) => match class.call1((message,)) {
            Ok(exc) => PyErr::from_value(exc),
            Err(e) => e,
        },
        Err(e) => e,
    }
}

/// `e` as the matching Python exception.
pub fn to_py(py: Python<'_>, e: shmbus::Error) -> PyErr {
    let name = class_name(&e);
    let message = e.to_string();
    match e {
        shmbus::Error::Lagged { lost } => with_attribute(py, name, message, "lost", lost),
        shmbus::Error::UnknownKey { key, .. } => with_attribute(py, name, message, "key", key),
        _ => exception(py, name, message),
    }
}

/// An exception of class `name` whose constructor also takes `attribute=value` (`Lagged`'s
/// `lost`, `UnknownKey`'s `key`).
fn with_attribute<'py>(
    py: Python<'py>,
    name: &str,
    message: String,
    attribute: &str,
    value: impl IntoPyObject<'py>,
) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let class = errors_module(py)?.getattr(name)?;
        let kwargs = PyDict::new(py);
        kwargs.set_item(attribute, value)?;
        Ok(PyErr::from_value(class.call((message,), Some(&kwargs))?))
    };
    build().unwrap_or_else(|e| e)
}

/// `Closed`: the object was closed (or handed to a handler).
pub fn closed(py: Python<'_>, what: &str) -> PyErr {
    exception(py, "Closed", format!("{what} is closed"))
}

/// Extension: `.py(py)` on shmbus results.
pub trait IntoPy<T> {
    /// The result with a Python exception for the error.
    fn py(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPy<T> for shmbus::Result<T> {
    fn py(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, e))
    }
}
