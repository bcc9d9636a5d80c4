//! The boards table (or one JSON object per row) and the ratios between rows.

use std::collections::HashMap;

use serde_json::json;

use super::stores::StoreKind;
use super::workload::{Measured, Workload};
use crate::probe::{Placement, FAR_NS, SHARED_NS};

/// One measured row, as kept after its last attempt.
pub struct Row {
    /// The store.
    pub store: StoreKind,
    /// Value size in bytes.
    pub size: usize,
    /// The workload.
    pub workload: Workload,
    /// What was measured.
    pub measured: Measured,
    /// Probes around the kept attempt.
    pub placement: Placement,
    /// Attempts made (1..=3).
    pub attempts: u32,
    /// The reader's window requested, to notice an overrun.
    pub window_secs: f64,
}

impl Row {
    fn quantile(&self, q: f64) -> Option<u64> {
        self.measured
            .latency
            .as_ref()
            .map(|h| h.value_at_quantile(q))
    }

    fn rate(&self, n: u64, secs: f64) -> Option<f64> {
        (secs > 0.0).then(|| n as f64 / secs)
    }

    fn reads_per_s(&self) -> Option<f64> {
        self.rate(self.measured.reads, self.measured.reader_secs)
    }

    fn new_per_s(&self) -> Option<f64> {
        (self.workload == Workload::UnderWriter)
            .then(|| self.rate(self.measured.new, self.measured.reader_secs))
            .flatten()
    }

    fn writes_per_s(&self) -> Option<f64> {
        self.rate(self.measured.writes, self.measured.writer_secs)
    }

    /// Whether this attempt at a row is better than `other`, an attempt at the same row:
    /// measured near beats measured far or on one shared core, then the lower p50 or the higher reads/s.
    pub fn better_than(&self, other: &Row) -> bool {
        let (near, other_near) = (self.placement.near(), other.placement.near());
        if near != other_near {
            return near;
        }
        match (self.key(), other.key()) {
            (Some(k), Some(o)) => match self.workload {
                Workload::Latency | Workload::LatencyWait => k < o,
                Workload::ReaderAlone | Workload::UnderWriter => k > o,
            },
            (k, _) => k.is_some(),
        }
    }

    /// The number ratios compare: p50 latency, or reads/s.
    fn key(&self) -> Option<f64> {
        match self.workload {
            Workload::Latency | Workload::LatencyWait => self.quantile(0.5).map(|v| v as f64),
            Workload::ReaderAlone | Workload::UnderWriter => self.reads_per_s(),
        }
    }

    /// Whether torn and backward counts apply.
    fn checks_values(&self) -> bool {
        self.workload == Workload::UnderWriter
    }

    /// A remark on the row, if any.
    fn note(&self) -> Option<String> {
        let overrun = self.measured.reader_secs - self.window_secs;
        (self.checks_values() && overrun > 0.1 * self.window_secs).then(|| {
            format!(
                "reader window ran {:.2} s, not {:.2} s: a read waited for the writer to stop",
                self.measured.reader_secs, self.window_secs
            )
        })
    }
}

/// Prints rows as they come, with ratios against the shmbus row of the same size and
/// workload.
pub struct Table {
    json: bool,
    /// shmbus's key per (size, workload).
    shmbus: HashMap<(usize, Workload), f64>,
}

impl Table {
    /// A table (header printed now) or a JSON stream.
    pub fn new(json: bool) -> Table {
        if !json {
            println!(
                "{:<17} {:>5} {:<21} {:>7} {:>7} {:>9} {:>9} {:>9} {:>6} {:>5} {:<15} {:>8} {:>12}",
                "store",
                "size",
                "workload",
                "p50 ns",
                "p99 ns",
                "reads/s",
                "new/s",
                "writes/s",
                "torn",
                "back",
                "placement",
                "x/shmbus",
                "shmbus/floor"
            );
        }
        Table {
            json,
            shmbus: HashMap::new(),
        }
    }

    /// Prints one row.
    pub fn row(&mut self, row: &Row) {
        let key = row.key();
        let base = self.shmbus.get(&(row.size, row.workload)).copied();
        let mut vs_shmbus = None;
        let mut over_floor = None;
        match row.store {
            StoreKind::Shmbus if row.workload != Workload::LatencyWait => {
                if let Some(k) = key {
                    self.shmbus.insert((row.size, row.workload), k);
                }
            }
            StoreKind::Iceoryx2 | StoreKind::MmapSync => {
                vs_shmbus = key.zip(base).map(|(k, b)| k / b);
            }
            StoreKind::Seqlock | StoreKind::Latch | StoreKind::PlainCopy => {
                over_floor = key.zip(base).map(|(k, b)| b / k);
            }
            StoreKind::Shmbus => {}
        }
        if self.json {
            self.print_json(row, vs_shmbus, over_floor);
        } else {
            self.print_line(row, vs_shmbus, over_floor);
        }
    }

    fn print_line(&self, row: &Row, vs_shmbus: Option<f64>, over_floor: Option<f64>) {
        let int = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
        let checks = |v: u64| {
            if row.checks_values() {
                v.to_string()
            } else {
                "-".to_owned()
            }
        };
        let placement = if row.attempts > 1 {
            format!("{} #{}", row.placement.label(), row.attempts)
        } else {
            row.placement.label()
        };
        let ratio = |r: Option<f64>| r.map_or("-".to_owned(), |r| format!("{r:.2}"));
        println!(
            "{:<17} {:>5} {:<21} {:>7} {:>7} {:>9} {:>9} {:>9} {:>6} {:>5} {:<15} {:>8} {:>12}{}",
            row.store.label(),
            size_label(row.size),
            row.workload.label(),
            int(row.quantile(0.5)),
            int(row.quantile(0.99)),
            rate_label(row.reads_per_s()),
            rate_label(row.new_per_s()),
            rate_label(row.writes_per_s()),
            checks(row.measured.torn),
            checks(row.measured.backwards),
            placement,
            ratio(vs_shmbus),
            ratio(over_floor),
            row.note().map_or(String::new(), |n| format!("  ({n})")),
        );
    }

    fn print_json(&self, row: &Row, vs_shmbus: Option<f64>, over_floor: Option<f64>) {
        let m = &row.measured;
        let checks = row.checks_values();
        let value = json!({
            "store": row.store.label(),
            "size": row.size,
            "workload": row.workload.label(),
            "p50_ns": row.quantile(0.5),
            "p99_ns": row.quantile(0.99),
            "reads_per_s": row.reads_per_s(),
            "new_per_s": row.new_per_s(),
            "writes_per_s": row.writes_per_s(),
            "reads": (m.reads > 0).then_some(m.reads),
            "new": checks.then_some(m.new),
            "writes": (m.writes > 0).then_some(m.writes),
            "torn": checks.then_some(m.torn),
            "backwards": checks.then_some(m.backwards),
            "reader_secs": (m.reader_secs > 0.0).then_some(m.reader_secs),
            "writer_secs": (m.writer_secs > 0.0).then_some(m.writer_secs),
            "placement": row.placement.class().label(),
            "probe_before_ns": row.placement.before_ns,
            "probe_after_ns": row.placement.after_ns,
            "attempts": row.attempts,
            "ratio_vs_shmbus": vs_shmbus,
            "shmbus_over_floor": over_floor,
            "note": row.note(),
        });
        println!("{value}");
    }

    /// Explains the columns (table only).
    pub fn footer(&self, count: u64, secs: f64) {
        if self.json {
            return;
        }
        println!();
        println!(
            "latency: one-way = round trip / 2 over {count} round trips (first 10% dropped); \
             rates: per second over the reader's {secs} s window (writes/s: the writer's own window)."
        );
        println!(
            "torn: reads whose words disagree; back: reads older than one already read \
             (floor:plain-copy has no synchronisation: its torn count shows the check works)."
        );
        println!(
            "x/shmbus: this store / shmbus, same size and workload (p50 for latency: > 1 is slower; \
             reads/s for rates: < 1 is slower). shmbus/floor: shmbus / this floor, same measure."
        );
        println!(
            "placement: cross-core one-way ns probed before/after the row (far > {FAR_NS} ns, \
             shared: both vCPUs on one core, < {SHARED_NS} ns); #n: attempts (a row measured \
             other than near is re-run, 3 attempts in all)."
        );
    }
}

/// `64B`, `4KiB`.
fn size_label(size: usize) -> String {
    if size >= 1024 && size.is_multiple_of(1024) {
        format!("{}KiB", size / 1024)
    } else {
        format!("{size}B")
    }
}

/// `12.34M`, `812.3k`, `17`, or `-`.
fn rate_label(rate: Option<f64>) -> String {
    match rate {
        None => "-".to_owned(),
        Some(r) if r >= 1e6 => format!("{:.2}M", r / 1e6),
        Some(r) if r >= 1e3 => format!("{:.1}k", r / 1e3),
        Some(r) => format!("{r:.0}"),
    }
}
