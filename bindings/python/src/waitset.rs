//! `WaitSet`: waiting on many objects at once, in one thread.
//!
//! The Rust set numbers its attachments with `WaitKey`s whose number a later attachment
//! reuses once detached; Python gets plain ints instead, numbered from 0 in the order of
//! attachment and never reused by the set, so that a stale key cannot name a newer
//! attachment. `Keyed` maps between the two.
//!
//! The set is behind a mutex (as every other object), held for one wait slice at most
//! ([`SLICE`](crate::opts::SLICE)): other threads may attach and detach while one thread
//! waits, and what they attach is waited on from the next slice.
//!
//! A subscriber may also have messages the library's set cannot see: those a cancelled
//! `recv_async` took from the ring, kept in the Python subscriber's stash for the next
//! receive. The set keeps a weak reference to each attached Python subscriber and looks at
//! its stash before each slice.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};

use pyo3::prelude::*;
use pyo3::types::PyWeakrefReference;

use shmbus::{WaitKey, WaitSet};

use crate::board::{PyBlackboard, PyEvent};
use crate::channel::{lock, lock_detached, lock_until};
use crate::errors::{closed, exception, to_py, IntoPy};
use crate::keyed::PyBoardKey;
use crate::opts::{duration, OptionArgs};
use crate::subscriber::PySubscriber;

/// The Rust set and the Python numbers of its keys.
struct Keyed {
    set: WaitSet,
    /// Python key → Rust key, for the attachments there are.
    keys: HashMap<u64, WaitKey>,
    /// Rust key → Python key.
    numbers: HashMap<WaitKey, u64>,
    /// The next Python key.
    next: u64,
    /// The Python subscribers attached, by Python key (weakly: the set does not keep them
    /// open), for their stashes.
    subscribers: HashMap<u64, Py<PyWeakrefReference>>,
}

impl Keyed {
    /// Numbers a new attachment.
    fn record(&mut self, key: shmbus::Result<WaitKey>) -> shmbus::Result<u64> {
        let key = key?;
        let n = self.next;
        self.next += 1;
        self.keys.insert(n, key);
        self.numbers.insert(key, n);
        Ok(n)
    }

    /// The Python keys of `ready` and `also`, in ascending order (the order of attachment).
    fn numbers(&self, ready: &[WaitKey], also: &[u64]) -> Vec<u64> {
        let mut n: Vec<u64> = ready
            .iter()
            .filter_map(|k| self.numbers.get(k).copied())
            .chain(also.iter().copied())
            .collect();
        n.sort_unstable();
        n.dedup();
        n
    }

    /// The keys of the attached subscribers, still open, whose stash holds messages. One a
    /// thread is receiving from now is skipped (that receive takes the stash first).
    fn stashed(&self, py: Python<'_>) -> Vec<u64> {
        let mut keys = Vec::new();
        for (&key, weak) in &self.subscribers {
            let Ok(Some(sub)) = weak.bind(py).upgrade_as::<PySubscriber>() else {
                continue;
            };
            let waiting = sub
                .get()
                .state
                .try_lock()
                .is_some_and(|st| st.sub.is_some() && !st.stash.is_empty());
            if waiting {
                keys.push(key);
            }
        }
        keys
    }
}

/// Waits on many objects at once, in one thread: subscribers, events, blackboards, keys of
/// keyed blackboards, timers, and objects that do not exist yet.
///
/// Each ``attach_*`` method returns a key (an ``int``: keys are numbered from 0 in the order
/// of attachment and never reused by the set); ``wait`` returns the keys of the ready
/// attachments, and the caller then receives, reads or opens as usual. A subscriber (a
/// message, a loss, the end of the stream, a dead publisher) and a manual-reset event are
/// ready for as long as that holds; a blackboard or board key once per new version; an
/// auto-reset event when the set took a release for the caller (no other waiter gets it);
/// a timer once per period; an awaited object once, when it can be opened.
///
/// The set keeps its own view of each attached object: closing the object does not detach
/// it (``detach`` does; a closed subscriber is never ready again). Threads may share a set: calls
/// are serialised, and a waiting thread holds the set for at most 50 ms at a time, so what
/// another thread attaches meanwhile is waited on from then on.
#[pyclass(module = "shmbus._shmbus", name = "WaitSet", frozen)]
pub struct PyWaitSet {
    inner: Mutex<Keyed>,
}

impl PyWaitSet {
    /// Attaches with `attach` (detached from the interpreter, the set locked).
    fn attach(
        &self,
        py: Python<'_>,
        attach: impl FnOnce(&mut WaitSet) -> shmbus::Result<WaitKey> + Send,
    ) -> PyResult<u64> {
        py.detach(|| {
            let mut g = lock_detached(&self.inner);
            let key = attach(&mut g.set);
            g.record(key)
        })
        .py(py)
    }
}

#[pymethods]
impl PyWaitSet {
    /// Most subscribers, events, blackboards and board keys one set waits on (one
    /// ``futex_waitv``); timers and awaited objects do not count. ``InvalidConfig`` beyond.
    #[classattr]
    const MAX_OBJECTS: usize = WaitSet::MAX_OBJECTS;

    /// An empty set.
    #[new]
    fn new() -> Self {
        PyWaitSet {
            inner: Mutex::new(Keyed {
                set: WaitSet::new(),
                keys: HashMap::new(),
                numbers: HashMap::new(),
                next: 0,
                subscribers: HashMap::new(),
            }),
        }
    }

    /// Attaches a subscriber: ready while it has something to receive (a message, also one
    /// a cancelled ``recv_async`` gave back; a loss; the end of the stream), or when its
    /// publisher died (a receive then raises ``PublisherGone``). Returns its key. ``Closed``
    /// if the subscriber is closed. The set does not keep the subscriber open.
    fn attach_subscriber(&self, py: Python<'_>, sub: &Bound<'_, PySubscriber>) -> PyResult<u64> {
        let me = sub.get();
        let weak = PyWeakrefReference::new(sub.as_any())?.unbind();
        // Both locked plainly, detached: the set first, then the subscriber (no call takes
        // them in the other order). The weak reference comes back unless kept (to be
        // released attached).
        let (key, unused) = py.detach(|| {
            let mut g = lock_detached(&self.inner);
            let st = lock_detached(&me.state);
            let Some(s) = st.sub.as_ref() else {
                return (None, Some(weak));
            };
            let key = g.set.attach_subscriber(s);
            drop(st);
            match g.record(key) {
                Ok(k) => {
                    g.subscribers.insert(k, weak);
                    (Some(Ok(k)), None)
                }
                Err(e) => (Some(Err(e)), Some(weak)),
            }
        });
        drop(unused);
        match key {
            Some(k) => k.py(py),
            None => Err(closed(py, &format!("subscriber of `{}`", me.facts.name))),
        }
    }

    /// Attaches an event: ready while set (manual reset), or once per release the set took
    /// for the caller (auto reset: ``wait`` consumed it, as ``Event.wait`` does). Returns its
    /// key. ``Closed`` if the event is closed.
    fn attach_event(&self, py: Python<'_>, ev: &Bound<'_, PyEvent>) -> PyResult<u64> {
        let e = ev.get().handle(py)?;
        self.attach(py, |set| set.attach_event(&e))
    }

    /// Attaches a blackboard: ready once per new version (the first time: a version newer
    /// than the one when attached). Returns its key. ``Closed`` if the blackboard is closed.
    fn attach_blackboard(&self, py: Python<'_>, board: &Bound<'_, PyBlackboard>) -> PyResult<u64> {
        let b = board.get().handle(py)?;
        self.attach(py, |set| set.attach_blackboard(&b))
    }

    /// Attaches one key of a keyed blackboard, as ``attach_blackboard``. Returns its key.
    /// ``Closed`` if its board is closed.
    fn attach_board_key(&self, py: Python<'_>, key: &Bound<'_, PyBoardKey>) -> PyResult<u64> {
        let k = key.get().handle(py)?;
        self.attach(py, |set| set.attach_board_key(&k))
    }

    /// Attaches a timer: ready every ``period`` seconds from now (periods missed while
    /// nobody waited are skipped, not queued). Returns its key. ``ValueError`` unless the
    /// period is above zero (``InvalidConfig`` for zero or for a period no clock reaches).
    fn attach_timer(&self, py: Python<'_>, period: f64) -> PyResult<u64> {
        let p = duration(Some(period), "period")?;
        // `WaitSet::attach_timer` adds the period to the clock (and later twice that, at
        // most): a period it cannot add would panic there.
        let Some(p) = p.filter(|p| Instant::now().checked_add(p.saturating_mul(2)).is_some())
        else {
            return Err(exception(
                py,
                "InvalidConfig",
                format!("a WaitSet timer period of {period} seconds is too long"),
            ));
        };
        self.attach(py, |set| set.attach_timer(p))
    }

    /// Attaches the appearance of object ``name`` (of any kind, in ``namespace``, owned by a
    /// user the options trust, as when opening): ready once, when it exists and its creator
    /// has finished creating it; open it then. An object that exists already is ready at the
    /// next ``wait``. Returns its key.
    #[pyo3(signature = (name, *, namespace = None, allow_owner = None, require_owner = None))]
    fn attach_appearance(
        &self,
        py: Python<'_>,
        name: &str,
        namespace: Option<&str>,
        allow_owner: Option<&Bound<'_, PyAny>>,
        require_owner: Option<u32>,
    ) -> PyResult<u64> {
        let opts = OptionArgs::opening(namespace, allow_owner, require_owner, None).build()?;
        self.attach(py, |set| set.attach_appearance(name, &opts))
    }

    /// Detaches ``key``; whether it was attached (``False`` for a key detached already or
    /// never returned by this set).
    fn detach(&self, py: Python<'_>, key: i128) -> bool {
        let Ok(key) = u64::try_from(key) else {
            return false;
        };
        let mut g = lock(py, &self.inner);
        let weak = g.subscribers.remove(&key);
        let detached = match g.keys.remove(&key) {
            Some(k) => {
                g.numbers.remove(&k);
                g.set.detach(k)
            }
            None => false,
        };
        drop(g);
        drop(weak);
        detached
    }

    /// Waits until at least one attachment is ready, at most ``timeout`` seconds (as long as
    /// it takes if ``None``); returns the ready keys in ascending order, ``[]`` after the
    /// timeout. ``wait(0)`` only looks. An empty set waits too (another thread may attach).
    ///
    /// Releases the GIL while it waits, and reacts to Ctrl-C.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Vec<u64>> {
        let timeout = duration(timeout, "timeout")?;
        let ready = crate::opts::sliced(py, timeout, |attempt, until| {
            // Another thread's slice holds the set: our timeout also bounds that wait.
            let Some(mut g) = lock_until(py, &self.inner, until) else {
                return Ok(Some(Vec::new()));
            };
            // Messages in a stash are ready now: then only look at the rest.
            let stashed = g.stashed(py);
            let slice = if stashed.is_empty() {
                attempt.or_slice(until)
            } else {
                Duration::ZERO
            };
            let keyed = &mut *g;
            // One slice: the library's wait returns `[]` when it passes with nothing ready.
            let ready = py.detach(|| {
                let ready = keyed.set.wait(Some(slice))?;
                Ok(keyed.numbers(&ready, &stashed))
            });
            // Fair: a thread waiting to attach (or to wait) gets the set before our next slice.
            MutexGuard::unlock_fair(g);
            let ready = ready.map_err(|e| to_py(py, e))?;
            Ok((!ready.is_empty()).then_some(ready))
        })?;
        Ok(ready.unwrap_or_default())
    }

    /// How many attachments the set has.
    fn __len__(&self, py: Python<'_>) -> usize {
        lock(py, &self.inner).set.len()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "<shmbus.WaitSet of {} attachments>",
            lock(py, &self.inner).set.len()
        )
    }
}
