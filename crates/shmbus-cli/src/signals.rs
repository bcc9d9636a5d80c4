//! SIGINT and SIGTERM for the commands that own objects (`pub`, `duplex serve`): instead of
//! dying with the objects left behind and the stream unterminated, the command notes the
//! signal, ends its work at the next check, cleans up (a publisher closes its stream so its
//! subscribers end with 0; what the command created is removed) and exits 128 + signal.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use anyhow::Context;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The first SIGINT or SIGTERM received, once one is.
#[derive(Clone, Debug)]
pub(crate) struct Stop(Arc<AtomicI32>);

impl Stop {
    /// Catches SIGINT and SIGTERM from now on. A thread waits for them (the signal handler
    /// itself only writes to a pipe), records the first, and calls `notify` with it, so a
    /// command blocked somewhere that `notify` can reach wakes at once.
    pub(crate) fn install(notify: impl Fn(i32) + Send + 'static) -> anyhow::Result<Stop> {
        let mut signals =
            Signals::new([SIGINT, SIGTERM]).context("installing SIGINT/SIGTERM handlers")?;
        let stop = Stop(Arc::new(AtomicI32::new(0)));
        let seen = stop.0.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    let _ = seen.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
                    notify(sig);
                }
            })
            .context("starting the signal thread")?;
        Ok(stop)
    }

    /// The signal that asked us to stop, if one did.
    pub(crate) fn signal(&self) -> Option<i32> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            sig => Some(sig),
        }
    }
}
