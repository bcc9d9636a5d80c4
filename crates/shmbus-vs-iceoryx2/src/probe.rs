//! Placement probe: how far apart the host has put the two vCPUs right now.
//!
//! The host places the machine's two vCPUs on one physical core, on two cores near each
//! other, or on two cores far apart, and moves them from minute to minute. Seen here: a
//! cross-core ping-pong costs about 50–100 ns one way when near and 170–260 ns when far;
//! on an Intel host the two vCPUs sometimes share one core (about 20 ns one way: the
//! lines never leave that core's caches). A ratio between two rows means something only
//! when both were measured near (two processes on two cores, the case the comparison is
//! about), so the boards mode probes before and after every row.
//!
//! The probe: two threads pinned to two cores bounce one atomic word [`ROUNDS`] times
//! (after [`WARMUP`] untimed rounds); one-way latency is the median round trip / 2. Each
//! round trip is timed with two reads of [`Instant`], which adds the cost of one read (some
//! 20 ns on this VM); that cost, measured on the spot as the median gap between back-to-back
//! reads, is taken off the median round trip.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Instant;

/// Timed round trips per probe.
pub const ROUNDS: usize = 10_000;
/// Untimed round trips before the timed ones (both threads are spinning by then).
pub const WARMUP: usize = 1_000;
/// One-way latencies above this many nanoseconds mean the vCPUs are far apart.
pub const FAR_NS: f64 = 120.0;
/// One-way latencies below this many nanoseconds mean the vCPUs share one core.
pub const SHARED_NS: f64 = 35.0;

/// Where one probe found the two vCPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// On one physical core (below [`SHARED_NS`]).
    Shared,
    /// On two cores near each other: the placement rows are compared at.
    Near,
    /// On two cores far apart (above [`FAR_NS`]).
    Far,
}

impl Class {
    /// The class of a probe that measured `ns` one way.
    pub fn of(ns: f64) -> Class {
        if ns < SHARED_NS {
            Class::Shared
        } else if ns <= FAR_NS {
            Class::Near
        } else {
            Class::Far
        }
    }

    /// `shared`, `near` or `far`.
    pub fn label(self) -> &'static str {
        match self {
            Class::Shared => "shared",
            Class::Near => "near",
            Class::Far => "far",
        }
    }
}

/// The probes taken just before and just after one row.
#[derive(Clone, Copy, Debug)]
pub struct Placement {
    /// One-way ns measured before the row.
    pub before_ns: f64,
    /// One-way ns measured after the row.
    pub after_ns: f64,
}

impl Placement {
    /// Whether both probes found the vCPUs on two cores near each other.
    pub fn near(&self) -> bool {
        self.class() == Class::Near
    }

    /// The row's class: near only if both probes say near; otherwise the probe that
    /// was not near decides (far before shared).
    pub fn class(&self) -> Class {
        match (Class::of(self.before_ns), Class::of(self.after_ns)) {
            (Class::Near, Class::Near) => Class::Near,
            (Class::Far, _) | (_, Class::Far) => Class::Far,
            _ => Class::Shared,
        }
    }

    /// `near 58/61`, `far 210/62` or `shared 20/21` (before/after, one-way ns).
    pub fn label(&self) -> String {
        format!(
            "{} {:.0}/{:.0}",
            self.class().label(),
            self.before_ns,
            self.after_ns
        )
    }
}

/// One-way cross-core latency in ns between `core_a` and `core_b`: the median of
/// [`ROUNDS`] round trips of an atomic between two pinned threads, halved.
pub fn one_way_ns(core_a: usize, core_b: usize) -> anyhow::Result<f64> {
    let word = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(2));
    let total = (WARMUP + ROUNDS) as u64;

    let pong = {
        let word = Arc::clone(&word);
        let start = Arc::clone(&start);
        thread::spawn(move || {
            // Pin failures are reported after the exchange, so the other side never waits
            // for a partner that left.
            let pinned = crate::pin(core_b);
            start.wait();
            for k in 0..total {
                let ping = 2 * k + 1;
                while word.load(Ordering::Acquire) != ping {
                    std::hint::spin_loop();
                }
                word.store(ping + 1, Ordering::Release);
            }
            pinned
        })
    };
    let ping = {
        let word = Arc::clone(&word);
        thread::spawn(move || {
            let pinned = crate::pin(core_a);
            start.wait();
            let mut rtts = Vec::with_capacity(ROUNDS);
            for k in 0..total {
                let t0 = Instant::now();
                word.store(2 * k + 1, Ordering::Release);
                while word.load(Ordering::Acquire) != 2 * k + 2 {
                    std::hint::spin_loop();
                }
                if k >= WARMUP as u64 {
                    rtts.push(t0.elapsed().as_nanos() as u64);
                }
            }
            pinned.map(|()| rtts)
        })
    };
    let mut rtts = ping
        .join()
        .map_err(|_| anyhow::anyhow!("probe thread panicked"))??;
    pong.join()
        .map_err(|_| anyhow::anyhow!("probe thread panicked"))??;
    let clock = median(&mut clock_cost_samples());
    let rtt = median(&mut rtts);
    Ok(rtt.saturating_sub(clock) as f64 / 2.0)
}

/// Gaps in ns between back-to-back reads of the clock, on the calling thread.
fn clock_cost_samples() -> Vec<u64> {
    let mut last = Instant::now();
    (0..1_001)
        .map(|_| {
            let now = Instant::now();
            let gap = now.duration_since(last).as_nanos() as u64;
            last = now;
            gap
        })
        .collect()
}

/// The median of `samples` (reorders them).
fn median(samples: &mut [u64]) -> u64 {
    samples.sort_unstable();
    samples[samples.len() / 2]
}
