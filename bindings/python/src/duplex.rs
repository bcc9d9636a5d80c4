//! `Duplex`: a two-way link between two processes.

use parking_lot::Mutex;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use shmbus::{Duplex, Received};

use crate::channel::lock;
use crate::errors::{closed, IntoPy};
use crate::opts::{blocking, duration, OptionArgs, WaitErr};
use crate::pybuf::Input;

/// One end of a two-way link: a server ``listen``s, one client ``connect``s. Either end
/// ``send``s and ``recv``s; a client's ``request`` waits for the server's ``reply``.
#[pyclass(module = "shmbus._shmbus", name = "Duplex", frozen)]
pub struct PyDuplex {
    name: String,
    link: Mutex<Option<Duplex>>,
}

impl PyDuplex {
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
        mut f: impl FnMut(&mut Duplex, std::time::Duration) -> shmbus::Result<T> + Send,
    ) -> PyResult<T> {
        let timeout = duration(timeout, "timeout")?;
        if lock(py, &self.link).is_none() {
            return Err(closed(py, &format!("duplex `{}`", self.name)));
        }
        let link = &self.link;
        blocking(py, timeout, |s| {
            let mut g = link.lock();
            match g.as_mut() {
                Some(d) => Ok(f(d, s)?),
                None => Err(WaitErr::Closed(format!("duplex `{}`", self.name))),
            }
        })
    }
}

#[pymethods]
impl PyDuplex {
    /// Starts the server end of link ``name``.
    #[staticmethod]
    #[pyo3(signature = (name, *, namespace = None, permissions = None))]
    fn listen(
        py: Python<'_>,
        name: &str,
        namespace: Option<&str>,
        permissions: Option<u32>,
    ) -> PyResult<Self> {
        let o = OptionArgs {
            namespace,
            permissions,
            persistent: false,
            allow_owner: None,
            require_owner: None,
            spin: None,
        }
        .build()?;
        let d = py.detach(|| Duplex::listen_with(name, &o)).py(py)?;
        Ok(PyDuplex {
            name: name.to_owned(),
            link: Mutex::new(Some(d)),
        })
    }

    /// Connects to the server of link ``name``; with ``open_timeout``, waits that long for
    /// it to listen.
    #[staticmethod]
    #[pyo3(signature = (name, *, namespace = None, open_timeout = 0.0))]
    fn connect(
        py: Python<'_>,
        name: &str,
        namespace: Option<&str>,
        open_timeout: f64,
    ) -> PyResult<Self> {
        let o = OptionArgs {
            namespace,
            permissions: None,
            persistent: false,
            allow_owner: None,
            require_owner: None,
            spin: None,
        }
        .build()?;
        let d = crate::opts::open_retry(py, open_timeout, |wait| {
            Duplex::connect_with(name, &o.clone().wait_for_creation(wait))
        })?;
        Ok(PyDuplex {
            name: name.to_owned(),
            link: Mutex::new(Some(d)),
        })
    }

    /// Sends ``data`` to the other end, waiting for room at most ``timeout`` seconds.
    #[pyo3(signature = (data, timeout = None))]
    fn send(&self, py: Python<'_>, data: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<()> {
        let input = Input::new(data)?;
        let bytes = input.bytes();
        self.with(py, timeout, |d, s| d.send_timeout(bytes, s))
    }

    /// The next ``(message, request_id)``; ``request_id`` is set when the peer waits for a
    /// ``reply``.
    #[pyo3(signature = (timeout = None))]
    fn recv<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<(Bound<'py, PyBytes>, Option<u64>)> {
        let r = self.with(py, timeout, |d, s| d.recv_timeout(s))?;
        Ok((PyBytes::new(py, &r.data), r.request))
    }

    /// Answers request ``request_id``.
    #[pyo3(signature = (request_id, data, timeout = None))]
    fn reply(
        &self,
        py: Python<'_>,
        request_id: u64,
        data: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let input = Input::new(data)?;
        let bytes = input.bytes();
        let request = Received {
            data: Vec::new(),
            request: Some(request_id),
        };
        self.with(py, timeout, |d, s| d.reply_timeout(&request, bytes, s))
    }

    /// Sends a request and waits up to ``timeout`` seconds for its reply (one wait: Ctrl-C
    /// is seen when it ends).
    fn request<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'_, PyAny>,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let input = Input::new(data)?;
        let bytes = input.bytes();
        let t = duration(Some(timeout), "timeout")?.unwrap_or(std::time::Duration::MAX);
        let link = &self.link;
        let name = &self.name;
        let r = py.detach(|| {
            let mut g = link.lock();
            g.as_mut().map(|d| d.request(bytes, t))
        });
        match r {
            Some(r) => Ok(PyBytes::new(py, &r.py(py)?)),
            None => Err(closed(py, &format!("duplex `{name}`"))),
        }
    }

    /// Closes this end.
    fn close(&self, py: Python<'_>) {
        let d = lock(py, &self.link).take();
        drop(d);
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
        format!("<shmbus.Duplex {:?}>", self.name)
    }
}
