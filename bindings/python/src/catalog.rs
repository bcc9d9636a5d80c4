//! `list`, `gc` and `remove`: the shared-memory directory.

use std::time::UNIX_EPOCH;

use pyo3::prelude::*;

use shmbus::{Kind, Options, Segment};

use crate::errors::IntoPy;

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Segment => "segment",
        Kind::Event => "event",
        Kind::Blackboard => "blackboard",
        Kind::Channel => "channel",
        Kind::KeyedBlackboard => "keyed-blackboard",
        _ => "unknown",
    }
}

/// Every shmbus object in ``namespace`` (default: ``$SHMBUS_NAMESPACE``, or none), as
/// ``ObjectInfo`` tuples.
#[pyfunction]
#[pyo3(signature = (namespace = None))]
pub fn list<'py>(py: Python<'py>, namespace: Option<&str>) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let namespace = namespace.map(str::to_owned).or_else(default_namespace);
    let objects = py.detach(|| shmbus::list(namespace.as_deref())).py(py)?;
    let info = py.import("shmbus")?.getattr("ObjectInfo")?;
    objects
        .into_iter()
        .map(|o| {
            let h = o.header.as_ref();
            info.call1((
                o.name.as_str(),
                o.name.namespace(),
                h.map(|h| kind_name(h.kind)),
                o.size,
                o.owner,
                o.mode & 0o7777,
                h.map(|h| h.creator_pid),
                h.and_then(|h| h.created.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_secs_f64()),
                h.map(|h| h.persistent),
                o.alive,
                o.problem.clone(),
            ))
        })
        .collect()
}

/// Removes the objects whose creator died and that nobody uses any more (or, with
/// ``dry_run``, only says which): ``(name, reason)`` pairs.
#[pyfunction]
#[pyo3(signature = (namespace = None, dry_run = false))]
pub fn gc(
    py: Python<'_>,
    namespace: Option<&str>,
    dry_run: bool,
) -> PyResult<Vec<(String, String)>> {
    let namespace = namespace.map(str::to_owned).or_else(default_namespace);
    let removed = py
        .detach(|| shmbus::gc(namespace.as_deref(), dry_run))
        .py(py)?;
    Ok(removed
        .into_iter()
        .map(|(name, why)| (name.as_str().to_owned(), why.to_owned()))
        .collect())
}

/// Removes object ``name`` (handles open elsewhere keep working until closed).
#[pyfunction]
#[pyo3(signature = (name, *, namespace = None))]
pub fn remove(py: Python<'_>, name: &str, namespace: Option<&str>) -> PyResult<()> {
    let mut opts = Options::new();
    if let Some(ns) = namespace {
        opts = opts.namespace(Some(ns));
    }
    py.detach(|| Segment::remove_with(name, &opts)).py(py)
}

/// `$SHMBUS_NAMESPACE`, as the other calls read it.
fn default_namespace() -> Option<String> {
    std::env::var("SHMBUS_NAMESPACE")
        .ok()
        .filter(|s| !s.is_empty())
}
