//! Receive handlers: a background thread that calls user code for each update, and the guard
//! that stops it.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use std::sync::Arc;
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::os::fork::HandleOwner;
use crate::os::wait::Stopper;

/// One update handed to a receive handler.
#[derive(Debug, Clone, Copy)]
pub struct Update<'a> {
    /// Version of this value (counts writes since the object was created).
    pub version: u64,
    /// Versions written since the previous update that the handler never saw (they were
    /// overwritten before it could read them).
    pub skipped: u64,
    /// The value's bytes.
    pub data: &'a [u8],
}

/// What a receive handler did before it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandlerStats {
    /// Updates delivered to the handler.
    pub delivered: u64,
    /// Versions skipped in total.
    pub skipped: u64,
}

/// Keeps a receive handler running; dropping it stops the thread and joins it.
///
/// Stopping takes as long as the handler's current call, plus a futex wake-up: no sleeps,
/// no polling intervals. If the handler panicked, [`HandlerGuard::stop`] returns
/// [`Error::HandlerPanicked`]; a guard that is just dropped prints that error to stderr,
/// so it is never lost silently.
#[must_use = "the handler stops when the guard is dropped"]
pub struct HandlerGuard {
    name: String,
    stopper: Arc<Stopper>,
    wake: Box<dyn Fn() + Send + Sync>,
    thread: Option<JoinHandle<Result<HandlerStats>>>,
    /// The process whose thread runs the handler (a fork child has no such thread).
    owner: HandleOwner,
}

impl std::fmt::Debug for HandlerGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerGuard")
            .field("name", &self.name)
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl HandlerGuard {
    /// Starts `body` on a thread named after the object. `body` gets the stopper to pass to
    /// its waits; `wake` interrupts those waits.
    pub(crate) fn spawn(
        name: String,
        wake: Box<dyn Fn() + Send + Sync>,
        body: impl FnOnce(&Stopper) -> Result<HandlerStats> + Send + 'static,
    ) -> Result<HandlerGuard> {
        let stopper = Arc::new(Stopper::default());
        let thread_stopper = stopper.clone();
        let thread = std::thread::Builder::new()
            .name(format!("shmbus-handler:{name}"))
            .spawn(move || body(&thread_stopper))
            .map_err(|source| Error::Os {
                name: name.clone(),
                action: "start the handler thread for",
                source,
            })?;
        Ok(HandlerGuard {
            name,
            stopper,
            wake,
            thread: Some(thread),
            owner: HandleOwner::current(),
        })
    }

    /// Whether the thread has ended (after a panic or an error, or after `stop`).
    pub fn is_finished(&self) -> bool {
        // In a fork child there is no thread: nothing runs.
        !self.owner.is_current() || self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stops the handler, waits for its thread, and says how it went.
    pub fn stop(mut self) -> Result<HandlerStats> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<HandlerStats> {
        if !self.owner.is_current() {
            // A fork child: the thread exists only in the parent. Joining a thread of
            // another process is undefined; forget the handle instead.
            std::mem::forget(self.thread.take());
            return Err(Error::ForeignProcess {
                what: format!("the receive handler of {}", self.name),
                owner: self.owner.pid(),
                pid: crate::os::fork::current_pid(),
            });
        }
        let Some(thread) = self.thread.take() else {
            return Ok(HandlerStats::default());
        };
        self.stopper.request_stop();
        while self.stopper.waiting() && !thread.is_finished() {
            (self.wake)();
            std::thread::yield_now();
        }
        match thread.join() {
            Ok(result) => result,
            Err(payload) => Err(Error::HandlerPanicked {
                name: self.name.clone(),
                message: panic_message(&*payload),
            }),
        }
    }
}

impl Drop for HandlerGuard {
    fn drop(&mut self) {
        if !self.owner.is_current_strict() {
            std::mem::forget(self.thread.take());
            return;
        }
        if let Err(e) = self.stop_and_join() {
            eprintln!("shmbus: {e}");
        }
    }
}

/// Runs one handler call, turning a panic into [`Error::HandlerPanicked`].
pub(crate) fn call_handler(name: &str, f: impl FnOnce()) -> Result<()> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| Error::HandlerPanicked {
        name: name.to_owned(),
        message: panic_message(&*payload),
    })
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
