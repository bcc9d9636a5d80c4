//! The workloads, each as the parent's half and the peer's half, generic over the store.
//!
//! Values: a counter repeated in every u64 word of the value. Board `x` carries values from
//! the parent to the peer, board `y` from the peer to the parent.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;

use super::process::{read_result, say, wait_for_parent, Peer, Report};
use super::stores::{Board, BoardReader, BoardWriter, Place};

/// Reads between two looks at the clock.
const READ_BATCH: u64 = 256;
/// Writes between two looks at the stop flag and the clock.
const WRITE_BATCH: u64 = 64;
/// How long past the reader's window a full-speed writer goes on at most. A store whose
/// reads retry while a write is in progress can keep a reader waiting as long as the
/// writer writes; this bound lets such a read finish, and the row then notes the overrun.
const WRITER_OVERRUN: Duration = Duration::from_secs(2);
/// A busy loop that sees no progress for this long gives up (the other process is gone).
const PATIENCE: Duration = Duration::from_secs(60);

/// What a row measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Workload {
    /// Update → observe, busy-polled: ping-pong over two boards.
    Latency,
    /// The same, the waiting side calling `wait_newer` (spinning) before each read
    /// (shmbus only).
    LatencyWait,
    /// One write, then the peer reads as fast as it can.
    ReaderAlone,
    /// The parent writes as fast as it can while the peer reads as fast as it can.
    UnderWriter,
}

impl Workload {
    /// Every workload.
    pub const ALL: [Workload; 4] = [
        Workload::Latency,
        Workload::LatencyWait,
        Workload::ReaderAlone,
        Workload::UnderWriter,
    ];

    /// The name shown in the table and JSON, and passed to the peer.
    pub fn label(self) -> &'static str {
        match self {
            Workload::Latency => "latency busy-poll",
            Workload::LatencyWait => "latency wait_newer",
            Workload::ReaderAlone => "reader alone",
            Workload::UnderWriter => "reader + full writer",
        }
    }

    /// The inverse of [`Workload::label`] (with `_` for spaces, as passed to the peer).
    pub fn parse(s: &str) -> anyhow::Result<Workload> {
        Workload::ALL
            .into_iter()
            .find(|w| w.arg() == s)
            .with_context(|| format!("unknown workload {s}"))
    }

    /// The label as one command-line word.
    pub fn arg(self) -> String {
        self.label().replace(' ', "_")
    }
}

/// What both processes of a row need to know.
#[derive(Clone, Debug)]
pub struct Params {
    /// u64 words per value.
    pub words: usize,
    /// Round trips of a latency row (the first 10% are warm-up).
    pub count: u64,
    /// The reader's window in the rate rows.
    pub secs: f64,
    /// Unique per row attempt.
    pub tag: String,
}

impl Params {
    fn place(&self, board: &'static str) -> Place {
        Place {
            tag: self.tag.clone(),
            board,
        }
    }
}

/// What one row measured (fields a workload does not measure stay at zero / `None`).
#[derive(Debug, Default)]
pub struct Measured {
    /// One-way latencies in ns (latency rows).
    pub latency: Option<Histogram<u64>>,
    /// Reads completed in the reader's window.
    pub reads: u64,
    /// Reads whose counter was higher than every one read before.
    pub new: u64,
    /// Reads whose words disagreed.
    pub torn: u64,
    /// Reads whose counter was lower than one read before.
    pub backwards: u64,
    /// The reader's window as it ran.
    pub reader_secs: f64,
    /// Writes by the full-speed writer.
    pub writes: u64,
    /// The writer's window.
    pub writer_secs: f64,
}

/// Gives up a busy loop that made no progress for [`PATIENCE`], looking at the clock only
/// once every 65 536 calls.
struct Patience {
    until: Instant,
    spins: u32,
}

impl Patience {
    fn new() -> Patience {
        Patience {
            until: Instant::now() + PATIENCE,
            spins: 0,
        }
    }

    #[inline]
    fn check(&mut self) -> anyhow::Result<()> {
        self.spins = self.spins.wrapping_add(1);
        if self.spins & 0xffff == 0 && Instant::now() > self.until {
            bail!("the other process made no progress for {PATIENCE:?}");
        }
        Ok(())
    }
}

/// Polls `reader` (waiting first when `wait`) until it reads counter `i`.
#[inline]
fn await_counter(
    reader: &mut impl BoardReader,
    i: u64,
    wait: bool,
    patience: &mut Patience,
) -> anyhow::Result<()> {
    loop {
        if wait {
            reader.wait()?;
        }
        // black_box: the whole value is used, so no store's copy can shrink to the one
        // word compared (a copy into a local that only `v[0]` reads otherwise may).
        if reader.read(|v| black_box(v)[0])? == i {
            return Ok(());
        }
        patience.check()?;
    }
}

/// The parent's half of `workload` on store `B`; the peer is started with `peer_args`.
pub fn run_parent<B: Board>(
    workload: Workload,
    p: &Params,
    peer_args: &[String],
) -> anyhow::Result<Measured> {
    match workload {
        Workload::Latency => latency_parent::<B>(p, peer_args, false),
        Workload::LatencyWait => latency_parent::<B>(p, peer_args, true),
        Workload::ReaderAlone => reader_alone_parent::<B>(p, peer_args),
        Workload::UnderWriter => under_writer_parent::<B>(p, peer_args),
    }
}

/// The peer's half of `workload` on store `B`.
pub fn run_peer<B: Board>(workload: Workload, p: &Params) -> anyhow::Result<()> {
    match workload {
        Workload::Latency => latency_peer::<B>(p, false),
        Workload::LatencyWait => latency_peer::<B>(p, true),
        Workload::ReaderAlone => reader_alone_peer::<B>(p),
        Workload::UnderWriter => under_writer_peer::<B>(p),
    }
}

/// Ping: write `i` to x, poll y until it says `i`; one-way = round trip / 2.
fn latency_parent<B: Board>(
    p: &Params,
    peer_args: &[String],
    wait: bool,
) -> anyhow::Result<Measured> {
    let mut x = B::create(&p.place("x"), p.words)?;
    let mut peer = Peer::spawn(peer_args)?;
    peer.expect("ready")?;
    let mut y = B::open(&p.place("y"), p.words)?;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let warmup = p.count / 10;
    let mut value = vec![0u64; p.words];
    let mut patience = Patience::new();
    for i in 1..=p.count {
        let t0 = Instant::now();
        value.fill(i);
        x.write(&value)?;
        await_counter(&mut y, i, wait, &mut patience)?;
        if i > warmup {
            hist.record(((t0.elapsed().as_nanos() / 2) as u64).max(1))?;
        }
    }
    peer.finish()?;
    Ok(Measured {
        latency: Some(hist),
        ..Measured::default()
    })
}

/// Pong: poll x until it says `i`, write `i` to y.
fn latency_peer<B: Board>(p: &Params, wait: bool) -> anyhow::Result<()> {
    let mut x = B::open(&p.place("x"), p.words)?;
    let mut y = B::create(&p.place("y"), p.words)?;
    say("ready");
    let mut value = vec![0u64; p.words];
    let mut patience = Patience::new();
    for i in 1..=p.count {
        await_counter(&mut x, i, wait, &mut patience)?;
        value.fill(i);
        y.write(&value)?;
    }
    wait_for_parent();
    Ok(())
}

/// Writes value 1 once, then lets the peer read alone.
fn reader_alone_parent<B: Board>(p: &Params, peer_args: &[String]) -> anyhow::Result<Measured> {
    let mut x = B::create(&p.place("x"), p.words)?;
    x.write(&vec![1u64; p.words])?;
    let mut peer = Peer::spawn(peer_args)?;
    let report = peer.result()?;
    peer.finish()?;
    Ok(Measured {
        reads: field(&report, "reads")? as u64,
        reader_secs: field(&report, "secs")?,
        ..Measured::default()
    })
}

/// Reads as fast as it can for the window; checks the value before and after.
fn reader_alone_peer<B: Board>(p: &Params) -> anyhow::Result<()> {
    let mut x = B::open(&p.place("x"), p.words)?;
    x.read(|v| check_all(v, 1))??;
    let window = Duration::from_secs_f64(p.secs);
    let start = Instant::now();
    let mut reads = 0;
    loop {
        for _ in 0..READ_BATCH {
            x.read(|v| {
                black_box(v);
            })?;
        }
        reads += READ_BATCH;
        if start.elapsed() >= window {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    x.read(|v| check_all(v, 1))??;
    say(&format!("result reads={reads} secs={secs}"));
    wait_for_parent();
    Ok(())
}

/// Writes counters 2, 3, ... as fast as it can until the peer reports (or the window plus
/// [`WRITER_OVERRUN`] has passed).
fn under_writer_parent<B: Board>(p: &Params, peer_args: &[String]) -> anyhow::Result<Measured> {
    let mut x = B::create(&p.place("x"), p.words)?;
    let mut value = vec![1u64; p.words];
    x.write(&value)?;
    let mut peer = Peer::spawn(peer_args)?;
    peer.expect("ready")?;
    let stop = AtomicBool::new(false);
    let cap = Duration::from_secs_f64(p.secs) + WRITER_OVERRUN;
    let (report, writes, writer_secs) = std::thread::scope(|s| -> anyhow::Result<_> {
        let out = &mut peer.out;
        let stop = &stop;
        // Blocked in read() until the peer reports: costs the writer nothing until then.
        let watcher = s.spawn(move || {
            let report = read_result(out);
            stop.store(true, Ordering::Relaxed);
            report
        });
        let start = Instant::now();
        let mut counter = 1u64;
        let written: anyhow::Result<()> = (|| loop {
            for _ in 0..WRITE_BATCH {
                counter += 1;
                value.fill(counter);
                x.write(&value)?;
            }
            if stop.load(Ordering::Relaxed) || start.elapsed() > cap {
                return Ok(());
            }
        })();
        let writer_secs = start.elapsed().as_secs_f64();
        let report = watcher
            .join()
            .map_err(|_| anyhow::anyhow!("watcher panicked"))??;
        written?;
        Ok((report, counter - 1, writer_secs))
    })?;
    peer.finish()?;
    Ok(Measured {
        reads: field(&report, "reads")? as u64,
        new: field(&report, "new")? as u64,
        torn: field(&report, "torn")? as u64,
        backwards: field(&report, "back")? as u64,
        reader_secs: field(&report, "secs")?,
        writes,
        writer_secs,
        latency: None,
    })
}

/// Reads as fast as it can while the parent writes; counts new, torn and backward values.
/// A read is classified by its first word (a torn read is counted as torn and by that word).
fn under_writer_peer<B: Board>(p: &Params) -> anyhow::Result<()> {
    let mut x = B::open(&p.place("x"), p.words)?;
    say("ready");
    // The window starts once the writer has.
    let mut patience = Patience::new();
    let mut newest = loop {
        let c = x.read(|v| v[0])?;
        if c >= 2 {
            break c;
        }
        patience.check()?;
    };
    let window = Duration::from_secs_f64(p.secs);
    let start = Instant::now();
    let (mut reads, mut new, mut torn, mut back) = (0u64, 0u64, 0u64, 0u64);
    loop {
        for _ in 0..READ_BATCH {
            let (c, whole) =
                x.read(|v| (v[0], v.iter().fold(0, |acc, &w| acc | (w ^ v[0])) == 0))?;
            if !whole {
                torn += 1;
            }
            if c < newest {
                back += 1;
            } else if c > newest {
                new += 1;
                newest = c;
            }
        }
        reads += READ_BATCH;
        if start.elapsed() >= window {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    say(&format!(
        "result reads={reads} new={new} torn={torn} back={back} secs={secs}"
    ));
    wait_for_parent();
    Ok(())
}

/// Fails unless every word of `value` is `counter`.
fn check_all(value: &[u64], counter: u64) -> anyhow::Result<()> {
    if let Some(w) = value.iter().find(|&&w| w != counter) {
        bail!("read {w}, expected {counter} in every word");
    }
    Ok(())
}

/// A number from the peer's report.
fn field(report: &Report, key: &str) -> anyhow::Result<f64> {
    report
        .get(key)
        .copied()
        .with_context(|| format!("peer report lacks {key}"))
}
