//! `shmbus bench`: shmbus against the floors and kernel IPC, two real processes per case,
//! all in one run so that the ratios compare like with like.

mod cases;
mod floors;
mod report;

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

pub(crate) use cases::Case;
use cases::{Measured, Params};
pub(crate) use report::Row;

use crate::Outcome;

/// Where the two processes run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Pin {
    /// One core each (the default when there are two or more).
    Split,
    /// Both on core 0.
    Same,
    /// Wherever the scheduler puts them.
    None,
}

/// Options of `shmbus bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Message size in bytes for latency and the small-message throughput rows.
    #[arg(long, default_value_t = 64, value_name = "BYTES")]
    pub size: usize,
    /// Where the processes run.
    #[arg(long, value_enum, default_value_t = Pin::Split)]
    pub pin: Pin,
    /// A short run (under 15 s): fewer iterations, same rows.
    #[arg(long)]
    pub quick: bool,
    /// Print one JSON object per row instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also draw the latency distributions into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
    /// Only run the rows whose name contains TEXT (for profiling one case).
    #[arg(long, value_name = "TEXT")]
    pub only: Option<String>,
}

/// Options of the hidden `bench-peer` command (the other process of a case).
#[derive(Debug, clap::Args)]
pub(crate) struct PeerArgs {
    #[arg(long, value_enum)]
    case: Case,
    #[arg(long)]
    size: usize,
    #[arg(long)]
    count: u64,
    #[arg(long, default_value_t = 0)]
    gap_us: u64,
    #[arg(long)]
    token: String,
    #[arg(long)]
    cpu: Option<usize>,
}

/// One planned measurement.
struct Plan {
    name: String,
    metric: &'static str,
    case: Case,
    size: usize,
    count: u64,
    gap_us: u64,
    subscribers: usize,
}

fn plan(args: &BenchArgs) -> Vec<Plan> {
    let scale = if args.quick { 1 } else { 10 };
    let lat = 20_000 * scale;
    let small = 300_000 * scale;
    let big = 100 * scale;
    let mut v = Vec::new();
    let mut add = |name: &str, metric, case, size, count, gap_us, subscribers| {
        v.push(Plan {
            name: name.to_owned(),
            metric,
            case,
            size,
            count,
            gap_us,
            subscribers,
        })
    };
    let s = args.size;
    add("shmbus busy-poll", "latency", Case::Busy, s, lat, 0, 0);
    add(
        "shmbus blocking (futex)",
        "latency",
        Case::Blocking,
        s,
        lat / 4,
        0,
        0,
    );
    add(
        "shmbus WaitSet (3 sources, blocking)",
        "latency",
        Case::WaitSet,
        s,
        lat / 4,
        0,
        0,
    );
    add("shmbus blackboard", "latency", Case::Board, s, lat, 0, 0);
    add("shmbus blackboard", "latency", Case::Board, 4096, lat, 0, 0);
    for size in [s, 4096] {
        add(
            "blackboard reads, no writer",
            "throughput",
            Case::BoardReads,
            size,
            small * 4,
            0,
            0,
        );
        add(
            "blackboard reads, writer at full speed",
            "throughput",
            Case::BoardReadsContended,
            size,
            small,
            0,
            0,
        );
    }
    add("floor: two atomics", "latency", Case::Atomics, 8, lat, 0, 0);
    add("floor: raw futex", "latency", Case::Futex, 8, lat / 4, 0, 0);
    add("unix socket", "latency", Case::Uds, s, lat / 4, 0, 0);
    add("pipe", "latency", Case::Pipe, s, lat / 4, 0, 0);
    for (size, count) in [(s, small), (1 << 20, big)] {
        add(
            "shmbus send (copy)",
            "throughput",
            Case::TputCopy,
            size,
            count,
            0,
            0,
        );
        add(
            "shmbus loan (zero-copy)",
            "throughput",
            Case::TputLoan,
            size,
            count,
            0,
            0,
        );
        add(
            "unix socket",
            "throughput",
            Case::TputUds,
            size,
            count / 4,
            0,
            0,
        );
        add("pipe", "throughput", Case::TputPipe, size, count / 4, 0, 0);
        add(
            "floor: memcpy SPSC ring",
            "throughput",
            Case::TputMemcpy,
            size,
            count,
            0,
            0,
        );
    }
    for subs in [1, 2, 4, 8] {
        let name = format!(
            "shmbus fan-out, {subs} subscriber{}",
            if subs > 1 { "s" } else { "" }
        );
        add(&name, "fanout", Case::Fanout, s, small, 0, subs);
    }
    for (gap, count) in [(1, lat / 4), (20, lat / 8), (1000, 300 * scale)] {
        let name = format!("shmbus blocking, a message every {gap} µs");
        add(&name, "adaptive", Case::Adaptive, s, count, gap, 0);
    }
    v
}

/// Runs the benchmark and prints the table (or JSON rows).
pub(crate) fn run(args: BenchArgs, namespace: Option<&str>) -> anyhow::Result<Outcome> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (mine, child_cpu) = match args.pin {
        Pin::Split if cores >= 2 => (Some(0), Some(1)),
        Pin::Split | Pin::Same => (Some(0), Some(0)),
        Pin::None => (None, None),
    };
    if let Some(cpu) = mine {
        pin_to(cpu)?;
    }
    let mut plans = plan(&args);
    if let Some(only) = &args.only {
        plans.retain(|p| p.name.contains(only.as_str()));
    }
    let bar = ProgressBar::new(plans.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .expect("valid progress template"),
    );
    let start = Instant::now();
    let mut rows = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        bar.set_message(format!("{} ({} B)", plan.name, plan.size));
        let params = Params {
            case: plan.case,
            size: plan.size,
            count: plan.count,
            gap_us: plan.gap_us,
            token: format!("/shmbus-bench.{}.{i}", std::process::id()),
            namespace: format!(
                "{}bench-{}-{i}",
                namespace.map(|n| format!("{n}-")).unwrap_or_default(),
                std::process::id()
            ),
            child_cpu,
        };
        let measured = if plan.case == Case::Fanout {
            cases::fanout(&params, plan.subscribers)?
        } else {
            cases::parent(&params)?
        };
        rows.push(Row::new(&plan.name, plan.metric, plan.size, measured));
        bar.inc(1);
    }
    bar.finish_and_clear();
    report::print(&rows, args.json, start.elapsed(), args.pin, cores)?;
    if let Some(path) = &args.plot {
        report::plot(&rows, path)?;
    }
    Ok(Outcome::Done)
}

/// The other process of a case.
pub(crate) fn peer(args: PeerArgs, namespace: Option<&str>) -> anyhow::Result<Outcome> {
    if let Some(cpu) = args.cpu {
        pin_to(cpu)?;
    }
    let params = Params {
        case: args.case,
        size: args.size,
        count: args.count,
        gap_us: args.gap_us,
        token: args.token,
        namespace: namespace.unwrap_or_default().to_owned(),
        child_cpu: None,
    };
    cases::child(&params)?;
    Ok(Outcome::Done)
}

fn pin_to(cpu: usize) -> anyhow::Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set)?;
    Ok(())
}

impl Row {
    fn new(name: &str, metric: &'static str, size: usize, m: Measured) -> Row {
        match m {
            Measured::Latency(h) => Row {
                name: name.to_owned(),
                metric,
                size,
                p50_ns: Some(h.value_at_quantile(0.5)),
                p99_ns: Some(h.value_at_quantile(0.99)),
                p999_ns: Some(h.value_at_quantile(0.999)),
                max_ns: Some(h.max()),
                msgs_per_s: None,
                gib_per_s: None,
                histogram: Some(h),
            },
            Measured::Throughput { count, elapsed } => {
                let secs = elapsed.as_secs_f64().max(1e-9);
                Row {
                    name: name.to_owned(),
                    metric,
                    size,
                    p50_ns: None,
                    p99_ns: None,
                    p999_ns: None,
                    max_ns: None,
                    msgs_per_s: Some(count as f64 / secs),
                    gib_per_s: Some(count as f64 * size as f64 / secs / (1u64 << 30) as f64),
                    histogram: None,
                }
            }
        }
    }
}
