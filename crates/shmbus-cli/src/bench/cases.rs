//! The benchmark cases: each has a parent side (measures) and a child side (`bench-peer`,
//! the echo or the receiver), run in two processes.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use shmbus::{
    Blackboard, ChannelConfig, Error, Event, EventMode, Mode, Options, Publisher, Subscriber,
    WaitSet,
};

use super::floors::{AtomicPingPong, FutexPingPong, MemcpyRing, RawShm};

/// What a case measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Case {
    Atomics,
    Futex,
    Busy,
    Blocking,
    /// As `Blocking`, each side waiting in a `WaitSet` with two idle sources besides.
    WaitSet,
    Board,
    BoardReads,
    BoardReadsContended,
    Uds,
    Pipe,
    TputCopy,
    TputLoan,
    TputUds,
    TputPipe,
    TputMemcpy,
    Fanout,
    Adaptive,
}

/// Parameters shared by both sides of a case.
#[derive(Clone, Debug)]
pub(crate) struct Params {
    pub case: Case,
    pub size: usize,
    pub count: u64,
    pub gap_us: u64,
    pub token: String,
    pub namespace: String,
    pub child_cpu: Option<usize>,
}

/// What the parent measured.
pub(crate) enum Measured {
    /// One-way latencies (round trip / 2), in ns.
    Latency(Histogram<u64>),
    /// `count` messages of `size` bytes in `elapsed`.
    Throughput { count: u64, elapsed: Duration },
}

fn opts(p: &Params) -> Options {
    Options::new().namespace(Some(&p.namespace))
}

fn busy_opts(p: &Params) -> Options {
    // Spin "forever": a busy-polling receiver.
    opts(p).spin(Duration::from_secs(3600))
}

/// A channel for `size`-byte messages: a 64 KiB ring for ping-pong (it stays in L2),
/// 1 MiB or more for throughput (room to batch).
fn channel(size: usize, mode: Mode, big: bool) -> ChannelConfig {
    let floor = if big { 1 << 20 } else { 64 << 10 };
    let capacity = (4 * (size + 64)).next_power_of_two().max(floor);
    ChannelConfig {
        capacity,
        max_message: size.max(64),
        mode,
        max_subscribers: 16,
    }
}

fn message(size: usize) -> Vec<u8> {
    (0..size.max(8)).map(|i| i as u8).collect()
}

fn stamp(buf: &mut [u8], i: u64) {
    buf[..8].copy_from_slice(&i.to_le_bytes());
}

fn stamped(buf: &[u8]) -> u64 {
    u64::from_le_bytes(buf[..8].try_into().expect("8-byte stamp"))
}

/// A child process and the control lines it writes on stderr.
pub(crate) struct Peer {
    child: Child,
    control: BufReader<ChildStderr>,
}

impl Peer {
    pub(crate) fn spawn(p: &Params, stdin: Stdio, stdout: Stdio) -> anyhow::Result<Peer> {
        let exe = std::env::current_exe().context("finding the shmbus binary")?;
        let mut cmd = Command::new(exe);
        cmd.args(["--namespace", &p.namespace, "bench-peer"])
            .arg(format!(
                "--case={}",
                clap::ValueEnum::to_possible_value(&p.case)
                    .unwrap()
                    .get_name()
            ))
            .arg(format!("--size={}", p.size))
            .arg(format!("--count={}", p.count))
            .arg(format!("--gap-us={}", p.gap_us))
            .arg(format!("--token={}", p.token));
        if let Some(cpu) = p.child_cpu {
            cmd.arg(format!("--cpu={cpu}"));
        }
        let mut child = cmd
            .stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .context("starting the benchmark peer")?;
        let control = BufReader::new(child.stderr.take().expect("piped stderr"));
        Ok(Peer { child, control })
    }

    /// Waits for the control line `word` ("ready", "done").
    pub(crate) fn expect(&mut self, word: &str) -> anyhow::Result<()> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.control.read_line(&mut line)? == 0 {
                bail!("the benchmark peer exited before saying {word:?}");
            }
            if line.trim() == word {
                return Ok(());
            }
            eprint!("peer: {line}");
        }
    }

    pub(crate) fn finish(mut self) -> anyhow::Result<()> {
        let status = self.child.wait()?;
        if !status.success() {
            let mut rest = String::new();
            let _ = self.control.read_to_string(&mut rest);
            bail!("the benchmark peer failed ({status}): {rest}");
        }
        Ok(())
    }
}

/// Control lines from the child side.
fn say(word: &str) {
    eprintln!("{word}");
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// Runs a ping-pong loop: `round(i)` does one round trip; the first tenth is warm-up.
fn ping_pong(
    count: u64,
    gap: Duration,
    mut round: impl FnMut(u64) -> anyhow::Result<()>,
) -> anyhow::Result<Measured> {
    let mut hist = histogram();
    let warmup = count / 10;
    let mut next = Instant::now();
    for i in 1..=count {
        if !gap.is_zero() {
            while Instant::now() < next {
                std::hint::spin_loop();
            }
            next = Instant::now() + gap;
        }
        let t0 = Instant::now();
        round(i)?;
        let half = (t0.elapsed().as_nanos() / 2) as u64;
        if i > warmup {
            hist.record(half.max(1))?;
        }
    }
    Ok(Measured::Latency(hist))
}

fn throughput(
    count: u64,
    peer: &mut Peer,
    send: impl FnMut(u64) -> anyhow::Result<()>,
) -> anyhow::Result<Measured> {
    let mut send = send;
    let start = Instant::now();
    for i in 0..count {
        send(i)?;
    }
    peer.expect("done")?;
    Ok(Measured::Throughput {
        count,
        elapsed: start.elapsed(),
    })
}

/// The parent side of a case.
pub(crate) fn parent(p: &Params) -> anyhow::Result<Measured> {
    let gap = Duration::from_micros(p.gap_us);
    match p.case {
        Case::Atomics => {
            let pp = AtomicPingPong(RawShm::new(&p.token, AtomicPingPong::LEN, true)?);
            let mut peer = Peer::spawn(p, Stdio::null(), Stdio::null())?;
            peer.expect("ready")?;
            let m = ping_pong(p.count, gap, |i| {
                pp.send(0, i);
                pp.wait(1, i);
                Ok(())
            })?;
            peer.finish()?;
            Ok(m)
        }
        Case::Futex => {
            let pp = FutexPingPong(RawShm::new(&p.token, FutexPingPong::LEN, true)?);
            let mut peer = Peer::spawn(p, Stdio::null(), Stdio::null())?;
            peer.expect("ready")?;
            let m = ping_pong(p.count, gap, |i| {
                pp.send(0, i as u32);
                pp.wait(1, i as u32);
                Ok(())
            })?;
            peer.finish()?;
            Ok(m)
        }
        Case::Busy | Case::Blocking | Case::Adaptive => {
            let o = match p.case {
                Case::Busy => busy_opts(p),
                Case::Blocking => opts(p).spin(Duration::ZERO),
                _ => opts(p),
            };
            let mut publisher =
                Publisher::create_with("ping", channel(p.size, Mode::Lossy, false), &o)?;
            let mut peer = Peer::spawn(p, Stdio::null(), Stdio::null())?;
            peer.expect("ready")?;
            let mut sub = Subscriber::open_with("pong", &o)?;
            let mut msg = message(p.size);
            let mut buf = Vec::with_capacity(msg.len());
            let busy = p.case == Case::Busy;
            let m = ping_pong(p.count, gap, |i| {
                stamp(&mut msg, i);
                publisher.send(&msg)?;
                if busy {
                    while let Err(Error::Empty) = sub.try_recv_into(&mut buf) {
                        std::hint::spin_loop();
                    }
                } else {
                    sub.recv_into(&mut buf)?;
                }
                debug_assert_eq!(stamped(&buf), i);
                Ok(())
            })?;
            drop(publisher);
            peer.finish()?;
            Ok(m)
        }
        Case::WaitSet => {
            let o = opts(p).spin(Duration::ZERO);
            let mut publisher =
                Publisher::create_with("ping", channel(p.size, Mode::Lossy, false), &o)?;
            let mut peer = Peer::spawn(p, Stdio::null(), Stdio::null())?;
            peer.expect("ready")?;
            let mut sub = Subscriber::open_with("pong", &o)?;
            let (mut set, _idle) = idle_set(&sub, &o, "parent")?;
            let mut msg = message(p.size);
            let mut buf = Vec::with_capacity(msg.len());
            let m = ping_pong(p.count, gap, |i| {
                stamp(&mut msg, i);
                publisher.send(&msg)?;
                receive_through(&mut set, &mut sub, &mut buf)?;
                debug_assert_eq!(stamped(&buf), i);
                Ok(())
            })?;
            drop(publisher);
            peer.finish()?;
            Ok(m)
        }
        Case::Board => {
            let o = busy_opts(p);
            let ping = Blackboard::create_with("ping", p.size.max(8), &o)?;
            let mut peer = Peer::spawn(p, Stdio::null(), Stdio::null())?;
            peer.expect("ready")?;
            let pong = Blackboard::open_with("pong", &o)?;
            let mut msg = message(p.size);
            let mut buf = vec![0; msg.len()];
            let m = ping_pong(p.count, gap, |i| {
                stamp(&mut msg, i);
                ping.write(&msg)?;
                pong.wait_newer(i - 1, None)?;
                pong.read_into(&mut buf)?;
                Ok(())
            })?;
            peer.finish()?;
            Ok(m)
        }
        Case::BoardReads | Case::BoardReadsContended => {
            // We read as fast as we can; the peer wrote once (BoardReads) or writes as
            // fast as it can until we say stop (BoardReadsContended). Every value carries
            // its stamp at both ends: a torn read would show two stamps.
            let o = busy_opts(p);
            let board = Blackboard::create_with("board", p.size.max(16), &o)?;
            let stop = Blackboard::create_with("stop", 8, &o)?;
            let mut peer = Peer::spawn(p, Stdio::null(), Stdio::null())?;
            peer.expect("ready")?;
            let mut buf = vec![0; p.size.max(16)];
            let (mut last, mut fresh) = (0, 0u64);
            let start = Instant::now();
            for _ in 0..p.count {
                let (v, n) = board.read_into(&mut buf)?;
                if stamped(&buf) != stamped(&buf[n - 8..]) || v < last {
                    bail!("torn or backward read: version {v} after {last}");
                }
                fresh += u64::from(v != last);
                last = v;
            }
            let elapsed = start.elapsed();
            stop.write(b"stop")?;
            peer.finish()?;
            if p.case == Case::BoardReadsContended && fresh < 2 {
                bail!("the writer wrote nothing while we read");
            }
            Ok(Measured::Throughput {
                count: p.count,
                elapsed,
            })
        }
        Case::Uds => {
            let (mut mine, theirs) = UnixStream::pair()?;
            let mut peer = Peer::spawn(p, Stdio::from(OwnedFd::from(theirs)), Stdio::null())?;
            peer.expect("ready")?;
            let mut msg = message(p.size);
            let mut buf = vec![0; msg.len()];
            let m = ping_pong(p.count, gap, |i| {
                stamp(&mut msg, i);
                mine.write_all(&msg)?;
                mine.read_exact(&mut buf)?;
                Ok(())
            })?;
            drop(mine);
            peer.finish()?;
            Ok(m)
        }
        Case::Pipe => {
            let (ping_r, mut ping_w) = std::io::pipe()?;
            let (mut pong_r, pong_w) = std::io::pipe()?;
            let mut peer = Peer::spawn(p, Stdio::from(ping_r), Stdio::from(pong_w))?;
            peer.expect("ready")?;
            let mut msg = message(p.size);
            let mut buf = vec![0; msg.len()];
            let m = ping_pong(p.count, gap, |i| {
                stamp(&mut msg, i);
                ping_w.write_all(&msg)?;
                pong_r.read_exact(&mut buf)?;
                Ok(())
            })?;
            drop(ping_w);
            peer.finish()?;
            Ok(m)
        }
        Case::TputCopy | Case::TputLoan => {
            let o = busy_opts(p);
            let mut publisher =
                Publisher::create_with("data", channel(p.size, Mode::Backpressure, true), &o)?;
            let mut peer = Peer::spawn(p, Stdio::null(), Stdio::null())?;
            peer.expect("ready")?;
            let mut msg = message(p.size);
            let loan = p.case == Case::TputLoan;
            let m = throughput(p.count, &mut peer, |i| {
                if loan {
                    // Zero-copy: the payload is produced in place (every byte written once),
                    // and read in place by the subscriber.
                    let mut l = publisher.loan(msg.len())?;
                    l.fill(i as u8);
                    stamp(&mut l, i);
                    l.commit()?;
                } else {
                    stamp(&mut msg, i);
                    publisher.send(&msg)?;
                }
                Ok(())
            })?;
            drop(publisher);
            peer.finish()?;
            Ok(m)
        }
        Case::TputUds => {
            let (mut mine, theirs) = UnixStream::pair()?;
            let mut peer = Peer::spawn(p, Stdio::from(OwnedFd::from(theirs)), Stdio::null())?;
            peer.expect("ready")?;
            let mut msg = message(p.size);
            let m = throughput(p.count, &mut peer, |i| {
                stamp(&mut msg, i);
                mine.write_all(&msg)?;
                Ok(())
            })?;
            peer.finish()?;
            Ok(m)
        }
        Case::TputPipe => {
            let (data_r, mut data_w) = std::io::pipe()?;
            let mut peer = Peer::spawn(p, Stdio::from(data_r), Stdio::null())?;
            peer.expect("ready")?;
            let mut msg = message(p.size);
            let m = throughput(p.count, &mut peer, |i| {
                stamp(&mut msg, i);
                data_w.write_all(&msg)?;
                Ok(())
            })?;
            peer.finish()?;
            Ok(m)
        }
        Case::TputMemcpy => {
            let (slot, slots) = memcpy_ring_shape(p.size);
            let ring = MemcpyRing::new(
                RawShm::new(&p.token, MemcpyRing::len(slot, slots), true)?,
                slot,
                slots,
            );
            let mut peer = Peer::spawn(p, Stdio::null(), Stdio::null())?;
            peer.expect("ready")?;
            let mut msg = message(p.size);
            let m = throughput(p.count, &mut peer, |i| {
                stamp(&mut msg, i);
                ring.push(&msg);
                Ok(())
            })?;
            peer.finish()?;
            Ok(m)
        }
        Case::Fanout => unreachable!("fan-out runs through `fanout`"),
    }
}

/// Lossy fan-out: the publisher's send rate with `subscribers` busy-polling subscriber
/// processes.
pub(crate) fn fanout(p: &Params, subscribers: usize) -> anyhow::Result<Measured> {
    let o = busy_opts(p);
    let mut publisher = Publisher::create_with("fan", channel(p.size, Mode::Lossy, true), &o)?;
    let mut peers = (0..subscribers)
        .map(|_| Peer::spawn(p, Stdio::null(), Stdio::null()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for peer in &mut peers {
        peer.expect("ready")?;
    }
    let mut msg = message(p.size);
    let start = Instant::now();
    for i in 0..p.count {
        stamp(&mut msg, i);
        publisher.send(&msg)?;
    }
    let elapsed = start.elapsed();
    drop(publisher);
    for peer in peers {
        peer.finish()?;
    }
    Ok(Measured::Throughput {
        count: p.count,
        elapsed,
    })
}

fn memcpy_ring_shape(size: usize) -> (usize, u64) {
    let slot = size.max(8).next_multiple_of(64);
    let slots = ((4 << 20) / slot).max(4) as u64;
    (slot, slots)
}

/// The child side of a case.
pub(crate) fn child(p: &Params) -> anyhow::Result<()> {
    match p.case {
        Case::Atomics => {
            let pp = AtomicPingPong(RawShm::new(&p.token, AtomicPingPong::LEN, false)?);
            say("ready");
            for i in 1..=p.count {
                pp.wait(0, i);
                pp.send(1, i);
            }
        }
        Case::Futex => {
            let pp = FutexPingPong(RawShm::new(&p.token, FutexPingPong::LEN, false)?);
            say("ready");
            for i in 1..=p.count {
                pp.wait(0, i as u32);
                pp.send(1, i as u32);
            }
        }
        Case::Busy | Case::Blocking | Case::Adaptive => {
            let o = match p.case {
                Case::Busy => busy_opts(p),
                Case::Blocking => opts(p).spin(Duration::ZERO),
                _ => opts(p),
            };
            let mut sub = Subscriber::open_with("ping", &o)?;
            let mut publisher =
                Publisher::create_with("pong", channel(p.size, Mode::Lossy, false), &o)?;
            say("ready");
            let mut buf = Vec::with_capacity(p.size.max(8));
            let busy = p.case == Case::Busy;
            for _ in 1..=p.count {
                if busy {
                    while let Err(Error::Empty) = sub.try_recv_into(&mut buf) {
                        std::hint::spin_loop();
                    }
                } else {
                    sub.recv_into(&mut buf)?;
                }
                publisher.send(&buf)?;
            }
            // Keep `pong` until the parent has read the last reply.
            let _ = sub.recv_timeout_into(&mut buf, Duration::from_secs(10));
        }
        Case::WaitSet => {
            let o = opts(p).spin(Duration::ZERO);
            let mut sub = Subscriber::open_with("ping", &o)?;
            let mut publisher =
                Publisher::create_with("pong", channel(p.size, Mode::Lossy, false), &o)?;
            let (mut set, _idle) = idle_set(&sub, &o, "peer")?;
            say("ready");
            let mut buf = Vec::with_capacity(p.size.max(8));
            for _ in 1..=p.count {
                receive_through(&mut set, &mut sub, &mut buf)?;
                publisher.send(&buf)?;
            }
            // Keep `pong` until the parent has read the last reply.
            let _ = sub.recv_timeout_into(&mut buf, Duration::from_secs(10));
        }
        Case::Board => {
            let o = busy_opts(p);
            let ping = Blackboard::open_with("ping", &o)?;
            let pong = Blackboard::create_with("pong", p.size.max(8), &o)?;
            say("ready");
            let mut buf = vec![0; p.size.max(8)];
            for i in 1..=p.count {
                ping.wait_newer(i - 1, None)?;
                let (_, n) = ping.read_into(&mut buf)?;
                pong.write(&buf[..n])?;
            }
            // Keep `pong` until the parent has read the last reply.
            let _ = ping.wait_newer(p.count, Some(Duration::from_millis(200)));
        }
        Case::BoardReads | Case::BoardReadsContended => {
            let o = busy_opts(p);
            let board = Blackboard::open_with("board", &o)?;
            let stop = Blackboard::open_with("stop", &o)?;
            let mut msg = message(p.size.max(16));
            let n = msg.len();
            let mut write = |i: u64| -> anyhow::Result<()> {
                stamp(&mut msg, i);
                msg[n - 8..].copy_from_slice(&i.to_le_bytes());
                board.write(&msg)?;
                Ok(())
            };
            write(1)?;
            say("ready");
            if p.case == Case::BoardReadsContended {
                let mut i = 1;
                while stop.version() == 0 {
                    i += 1;
                    write(i)?;
                }
            } else {
                stop.wait_newer(0, None)?;
            }
        }
        Case::Uds => {
            let mut sock = UnixStream::from(std::io::stdin().as_fd().try_clone_to_owned()?);
            say("ready");
            let mut buf = vec![0; p.size.max(8)];
            for _ in 1..=p.count {
                sock.read_exact(&mut buf)?;
                sock.write_all(&buf)?;
            }
        }
        Case::Pipe => {
            let (mut input, mut output) = (std::io::stdin().lock(), std::io::stdout().lock());
            say("ready");
            let mut buf = vec![0; p.size.max(8)];
            for _ in 1..=p.count {
                input.read_exact(&mut buf)?;
                output.write_all(&buf)?;
                output.flush()?;
            }
        }
        Case::TputCopy | Case::TputLoan => {
            let mut sub = Subscriber::open_with("data", &busy_opts(p))?;
            say("ready");
            if p.case == Case::TputLoan {
                for i in 0..p.count {
                    let sample = sub.recv_ref()?;
                    debug_assert_eq!(stamped(&sample), i);
                }
            } else {
                let mut buf = Vec::with_capacity(p.size.max(8));
                for i in 0..p.count {
                    sub.recv_into(&mut buf)?;
                    debug_assert_eq!(stamped(&buf), i);
                }
            }
            say("done");
        }
        Case::TputUds => {
            let mut sock = UnixStream::from(std::io::stdin().as_fd().try_clone_to_owned()?);
            say("ready");
            let mut buf = vec![0; p.size.max(8)];
            for _ in 0..p.count {
                sock.read_exact(&mut buf)?;
            }
            say("done");
        }
        Case::TputPipe => {
            let mut input = std::io::stdin().lock();
            say("ready");
            let mut buf = vec![0; p.size.max(8)];
            for _ in 0..p.count {
                input.read_exact(&mut buf)?;
            }
            say("done");
        }
        Case::TputMemcpy => {
            let (slot, slots) = memcpy_ring_shape(p.size);
            let ring = MemcpyRing::new(
                RawShm::new(&p.token, MemcpyRing::len(slot, slots), false)?,
                slot,
                slots,
            );
            say("ready");
            let mut buf = vec![0; p.size.max(8)];
            for _ in 0..p.count {
                ring.pop(&mut buf);
            }
            say("done");
        }
        Case::Fanout => {
            let mut sub = Subscriber::open_with("fan", &busy_opts(p))?;
            say("ready");
            let mut buf = Vec::with_capacity(p.size.max(8));
            loop {
                match sub.try_recv_into(&mut buf) {
                    Ok(()) | Err(Error::Lagged { .. } | Error::Empty) => {}
                    Err(Error::Disconnected { .. }) => break,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(())
}

/// A wait set on `sub` and two sources that stay idle (an event and a blackboard of this
/// side's own), as a program that listens to several things has; the idle objects are
/// returned to keep them alive.
fn idle_set(
    sub: &Subscriber,
    o: &Options,
    side: &str,
) -> anyhow::Result<(WaitSet, (Event, Blackboard))> {
    let event = Event::create_with(&format!("idle.{side}"), EventMode::ManualReset, o)?;
    let board = Blackboard::create_with(&format!("idle-board.{side}"), 8, o)?;
    let mut set = WaitSet::new();
    set.attach_subscriber(sub)?;
    set.attach_event(&event)?;
    set.attach_blackboard(&board)?;
    Ok((set, (event, board)))
}

/// One message through a wait set: wait until something is ready, then receive.
fn receive_through(
    set: &mut WaitSet,
    sub: &mut Subscriber,
    buf: &mut Vec<u8>,
) -> anyhow::Result<()> {
    loop {
        match sub.try_recv_into(buf) {
            Ok(()) => return Ok(()),
            Err(Error::Empty) => {
                set.wait(None)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
