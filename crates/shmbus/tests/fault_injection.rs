//! Fault injection with real processes: a `kill -9` loop over broadcast channels.
//!
//! Each of [`ROUNDS`] rounds makes a fresh channel `kill.<round>`, alternately lossy and
//! back-pressure, with a ring ([`CAPACITY`]) smaller than one burst of the publisher, so that
//! lossy subscribers really lag and a back-pressure publisher really blocks. It starts a
//! publisher process and 2 or 3 subscriber processes (the first of them slow), lets traffic
//! flow for 20–150 ms, then sends SIGKILL to one of them: the publisher in half the rounds,
//! a subscriber in the others, so that every mode meets every kind of death. How many
//! subscribers, which one dies and when come from a xorshift seeded with the round number:
//! a failing round replays identically.
//!
//! Every round checks:
//! - **order and integrity**: each message a subscriber receives is exactly the one it
//!   expects next (its payload carries its sequence number and bytes derived from it); a
//!   lossy subscriber may skip ahead only right after [`Error::Lagged`], and then by exactly
//!   the number lost; a back-pressure subscriber never lags;
//! - **exact loss accounting**: `received + lost` equals the number of messages published
//!   up to the end each subscriber saw;
//! - **the publisher's death**: every subscriber drains the ring and reports
//!   [`Error::PublisherGone`] within [`MAX_REACTION`] (100 ms) of the kill, measured by the
//!   parent from just before `kill(2)` to the arrival of the subscriber's report on its
//!   pipe; all of them end at the same message, which is the last one the channel says was
//!   published;
//! - **a subscriber's death**: the publisher carries on and publishes all [`COUNT`]
//!   messages; in back-pressure mode no single `send` waits longer than [`MAX_REACTION`]
//!   (which includes freeing the dead subscriber's slot); the survivors receive through the
//!   last message and see the clean end of the stream ([`Error::Disconnected`]);
//! - **no leftovers**: afterwards the namespace holds only the channels of killed
//!   publishers (removed by the namespace guard at the end).
//!
//! No child can hang the test: each gives up on its own after [`CHILD_TIMEOUT`], and the
//! parent kills whatever has not answered within [`PARENT_TIMEOUT`].

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::Ns;
use shmbus::{ChannelConfig, Error, LiveState, Mode, Options, Publisher, Subscriber};

/// Rounds of the loop: a multiple of 4, so that each mode meets each kind of death equally.
const ROUNDS: u64 = 24;
/// Messages a publisher sends when nobody kills it.
const COUNT: u64 = 25_000;
/// The publisher sleeps 1 ms after each burst of this many messages (about 5 KiB, more than
/// the ring holds), so that a round lasts long enough to be interrupted.
const BURST: u64 = 100;
/// Ring size in bytes: smaller than a burst.
const CAPACITY: usize = 4096;
/// The slow subscriber sleeps 1 ms after this many messages: far slower than the publisher
/// (lossy, so it lags), or a little faster (back-pressure, so the publisher often waits).
const SLOW_LOSSY: u64 = 20;
const SLOW_BACKPRESSURE: u64 = 150;
/// The longest anyone may go on waiting after a death.
const MAX_REACTION: Duration = Duration::from_millis(100);
/// How long a child waits for anything before it fails loudly.
const CHILD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the parent waits for a child's line or exit before it kills it and fails.
const PARENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Message `seq`: its number, then `seq % 40` bytes derived from it (lengths vary).
fn message(seq: u64) -> Vec<u8> {
    let mut m = seq.to_le_bytes().to_vec();
    m.extend((0..seq % 40).map(|j| (seq ^ j.wrapping_mul(31)) as u8));
    m
}

fn parse_mode(s: &str) -> Mode {
    match s {
        "lossy" => Mode::Lossy,
        "backpressure" => Mode::Backpressure,
        other => panic!("unknown mode {other}"),
    }
}

#[test]
fn child_entry() {
    let Some((role, arg)) = common::role() else {
        return;
    };
    let args: Vec<&str> = arg.split_whitespace().collect();
    let num = |i: usize| -> u64 { args[i].parse().unwrap() };
    match role.as_str() {
        // `<name> <mode> <subscribers> <count>`
        "publisher" => publish(args[0], parse_mode(args[1]), num(2) as usize, num(3)),
        // `<name> <sleep 1 ms every this many messages, 0: never>`
        "subscriber" => subscribe(args[0], num(1)),
        other => panic!("unknown role {other}"),
    }
}

/// Creates the channel, waits for `subscribers`, sends `count` messages in bursts, closes
/// the stream, then reports `published <count> max_stall_us <longest send>`.
fn publish(name: &str, mode: Mode, subscribers: usize, count: u64) {
    let config = ChannelConfig {
        capacity: CAPACITY,
        max_message: CAPACITY / 4,
        mode,
        max_subscribers: 4,
    };
    let mut publisher = Publisher::create_with(name, config, &Options::new()).unwrap();
    println!("ready");
    let start = Instant::now();
    while publisher.subscriber_count() < subscribers {
        assert!(
            start.elapsed() < CHILD_TIMEOUT,
            "the subscribers never came"
        );
        thread::sleep(Duration::from_millis(1));
    }
    let mut max_stall = Duration::ZERO;
    for seq in 0..count {
        let msg = message(seq);
        let sending = Instant::now();
        if let Err(e) = publisher.send_timeout(&msg, CHILD_TIMEOUT) {
            panic!("sending message {seq}: {e}");
        }
        max_stall = max_stall.max(sending.elapsed());
        if seq % BURST == BURST - 1 {
            thread::sleep(Duration::from_millis(1));
        }
    }
    drop(publisher); // end of stream
    println!("published {count} max_stall_us {}", max_stall.as_micros());
}

/// Receives until the stream ends or the publisher dies, checking order, integrity and
/// losses, then reports `done <closed|gone> next <seq> received <n> lost <k>` at once.
fn subscribe(name: &str, slow_every: u64) {
    let mut sub = Subscriber::open_with(name, &Options::new()).unwrap();
    let backpressure = sub.config().mode == Mode::Backpressure;
    println!("ready");
    // It joined before the publisher started (which waited for it): message 0 comes first.
    let (mut next, mut received, mut lost) = (0u64, 0u64, 0u64);
    let mut buf = Vec::new();
    let end = loop {
        match sub.recv_timeout_into(&mut buf, CHILD_TIMEOUT) {
            Ok(()) => {
                let seq = u64::from_le_bytes(buf[..8].try_into().unwrap());
                assert_eq!(seq, next, "message {seq} came when {next} was due");
                assert!(buf == message(seq), "message {seq} is torn");
                next = seq + 1;
                received += 1;
                if slow_every > 0 && received % slow_every == 0 {
                    thread::sleep(Duration::from_millis(1));
                }
            }
            Err(Error::Lagged { lost: n }) => {
                assert!(
                    !backpressure,
                    "a back-pressure subscriber lost {n} messages"
                );
                assert!(n > 0, "lagged by 0 messages");
                lost += n;
                next += n; // exactly: the next message must be this one
            }
            Err(Error::PublisherGone { .. }) => break "gone",
            Err(Error::Disconnected { .. }) => break "closed",
            Err(e) => panic!("receiving message {next}: {e}"),
        }
    };
    println!("done {end} next {next} received {received} lost {lost}");
}

/// What a subscriber reported at its end.
#[derive(Debug)]
struct Report {
    /// `gone` (PublisherGone) or `closed` (Disconnected).
    end: String,
    /// The message it would have received next: one past the last published it saw.
    next: u64,
    received: u64,
    lost: u64,
}

impl Report {
    fn parse(line: &str) -> Report {
        let w: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| -> u64 { w[i].parse().unwrap_or_else(|_| panic!("bad {line:?}")) };
        assert!(w.len() >= 8 && w[0] == "done", "bad report {line:?}");
        Report {
            end: w[1].to_owned(),
            next: num(3),
            received: num(5),
            lost: num(7),
        }
    }
}

/// A child process whose stdout lines are timestamped as they arrive (by a thread), killed
/// and reaped on drop if the test gives up on it.
struct Kid {
    what: String,
    child: Child,
    lines: Receiver<(Instant, String)>,
    stderr: Option<JoinHandle<String>>,
    reaped: bool,
}

impl Kid {
    fn spawn(ns: &Ns, role: &str, arg: &str) -> Kid {
        let mut child = ns.child(role, arg);
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Kid {
            what: format!("{role} `{arg}` (pid {})", child.id()),
            child,
            lines,
            stderr: Some(stderr),
            reaped: false,
        }
    }

    /// The first line containing `word` (libtest may print before it on the same line),
    /// from `word` on, with the instant it arrived.
    fn expect(&mut self, word: &str) -> (Instant, String) {
        let deadline = Instant::now() + PARENT_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) => {
                    if let Some(i) = line.find(word) {
                        return (at, line[i..].to_owned());
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.fail(&format!("no `{word}` in time")),
                Err(RecvTimeoutError::Disconnected) => {
                    self.fail(&format!("it exited without saying `{word}`"))
                }
            }
        }
    }

    /// Sends SIGKILL; returns the instant just before.
    fn kill(&mut self) -> Instant {
        let at = Instant::now();
        self.child.kill().unwrap();
        at
    }

    /// Waits (boundedly) for the child to exit.
    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PARENT_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.reaped = true;
                return status;
            }
            if Instant::now() > deadline {
                self.fail("it did not exit in time");
            }
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits for a clean exit.
    fn succeeded(mut self) {
        let status = self.wait();
        if !status.success() {
            self.fail(&format!("it failed ({status})"));
        }
    }

    /// Waits for the child to die of SIGKILL.
    fn killed(mut self) {
        let status = self.wait();
        if status.signal() != Some(9) {
            self.fail(&format!("it was meant to die of SIGKILL, not {status}"));
        }
    }

    /// Kills and reaps the child, then panics with `why` and everything it printed.
    fn fail(&mut self, why: &str) -> ! {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.reaped = true;
        }
        let stdout: Vec<String> = self.lines.try_iter().map(|(_, l)| l).collect();
        let stderr = self.stderr.take().map(|h| h.join().unwrap_or_default());
        panic!(
            "{}: {why}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.what,
            stdout.join("\n"),
            stderr.unwrap_or_default()
        );
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A tiny deterministic generator (xorshift64*), seeded per round.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        rng.below(2); // mix the seed in
        rng
    }

    /// Uniform enough in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) % n
    }
}

/// The channel's published count, live subscribers and whether its publisher lives.
fn channel_state(ns: &Ns, name: &str) -> Option<(u64, u32, bool)> {
    match ns.state(name)? {
        LiveState::Channel {
            published,
            subscribers,
            publisher_alive,
            ..
        } => Some((published, subscribers, publisher_alive)),
        other => panic!("{name} is not a channel: {other:?}"),
    }
}

/// Polls `cond` every millisecond for up to [`PARENT_TIMEOUT`].
#[track_caller]
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < PARENT_TIMEOUT, "{what}: not in time");
        thread::sleep(Duration::from_millis(1));
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// What the whole loop saw, for the final summary.
#[derive(Default)]
struct Totals {
    /// Every subscriber's delay from the publisher's kill to its PublisherGone.
    detections: Vec<Duration>,
    /// The longest send of a back-pressure publisher whose subscriber was killed.
    max_bp_stall: Duration,
    /// The longest send of a lossy publisher whose subscriber was killed.
    max_lossy_stall: Duration,
    /// Messages lossy subscribers were told they lost.
    lossy_lost: u64,
}

#[test]
fn kill_9_loop_over_broadcast_channels() {
    let ns = Ns::new("fault");
    let started = Instant::now();
    let mut totals = Totals::default();
    let mut dead_channels = Vec::new();
    for round in 0..ROUNDS {
        let mut rng = Rng::new(round);
        let mode = if round % 2 == 0 {
            Mode::Lossy
        } else {
            Mode::Backpressure
        };
        let kill_publisher = round % 4 < 2;
        let n_subs = 2 + rng.below(2) as usize;
        let victim = rng.below(n_subs as u64) as usize;
        let delay = Duration::from_millis(20 + rng.below(131));
        let name = format!("kill.{round}");
        let label = format!("round {round} ({})", mode.as_str());

        let mut publisher = Kid::spawn(
            &ns,
            "publisher",
            &format!("{name} {} {n_subs} {COUNT}", mode.as_str()),
        );
        publisher.expect("ready");
        let slow_every = match mode {
            Mode::Lossy => SLOW_LOSSY,
            Mode::Backpressure => SLOW_BACKPRESSURE,
        };
        let mut subs: Vec<Kid> = (0..n_subs)
            .map(|i| {
                let every = if i == 0 { slow_every } else { 0 };
                Kid::spawn(&ns, "subscriber", &format!("{name} {every}"))
            })
            .collect();
        for sub in &mut subs {
            sub.expect("ready");
        }
        wait_for("traffic", || {
            channel_state(&ns, &name).is_some_and(|(published, ..)| published > 0)
        });
        thread::sleep(delay);

        if kill_publisher {
            let killed = publisher.kill();
            let mut took = Vec::new();
            let mut reports = Vec::new();
            for sub in &mut subs {
                let (at, line) = sub.expect("done");
                took.push(at - killed);
                reports.push(Report::parse(&line));
            }
            publisher.killed();
            for sub in subs {
                sub.succeeded();
            }
            let (published, subscribers, alive) = channel_state(&ns, &name).unwrap();
            println!(
                "{label}: publisher killed after {delay:?} at message ~{published}; \
                 PublisherGone after {:.1?} ms; lost {:?}",
                took.iter().map(|&d| ms(d)).collect::<Vec<_>>(),
                reports.iter().map(|r| r.lost).collect::<Vec<_>>(),
            );
            assert!(
                !alive && subscribers == 0,
                "{label}: the channel still has users"
            );
            let end = reports[0].next;
            for (i, (r, &t)) in reports.iter().zip(&took).enumerate() {
                assert_eq!(
                    r.end, "gone",
                    "{label}: subscriber {i} saw no PublisherGone"
                );
                assert!(
                    t <= MAX_REACTION,
                    "{label}: subscriber {i} noticed after {t:?}"
                );
                assert_eq!(r.next, end, "{label}: subscribers {i} and 0 stopped apart");
                assert_eq!(r.received + r.lost, r.next, "{label}: {i} miscounted {r:?}");
                if mode == Mode::Backpressure {
                    assert_eq!(r.lost, 0, "{label}: back-pressure lost messages");
                } else {
                    totals.lossy_lost += r.lost;
                }
            }
            // A publisher killed between its stores of `published` and `tail` leaves the
            // count one ahead of what was readable (documented in `Ring::snapshot`).
            assert!(
                published == end || published == end + 1,
                "{label}: subscribers ended at {end}, the channel says {published} published"
            );
            totals.detections.extend(took);
            dead_channels.push(name);
        } else {
            let mut dead = subs.remove(victim);
            let (published, ..) = channel_state(&ns, &name).unwrap();
            dead.kill();
            dead.killed();
            assert!(
                published < COUNT,
                "{label}: the victim died after the stream"
            );
            let (_, line) = publisher.expect("published");
            publisher.succeeded();
            let stall_us: u64 = line.split_whitespace().nth(3).unwrap().parse().unwrap();
            let stall = Duration::from_micros(stall_us);
            let mut reports = Vec::new();
            for sub in &mut subs {
                reports.push(Report::parse(&sub.expect("done").1));
            }
            for sub in subs {
                sub.succeeded();
            }
            println!(
                "{label}: subscriber {victim} of {n_subs} killed after {delay:?} at message \
                 ~{published}; longest send {:.1} ms; lost {:?}",
                ms(stall),
                reports.iter().map(|r| r.lost).collect::<Vec<_>>(),
            );
            assert!(
                line.starts_with(&format!("published {COUNT} ")),
                "{label}: {line}"
            );
            assert!(stall <= MAX_REACTION, "{label}: a send waited {stall:?}");
            for (i, r) in reports.iter().enumerate() {
                assert_eq!(r.end, "closed", "{label}: a survivor saw no clean end");
                assert_eq!(r.next, COUNT, "{label}: a survivor stopped early: {r:?}");
                assert_eq!(r.received + r.lost, COUNT, "{label}: {i} miscounted {r:?}");
                if mode == Mode::Backpressure {
                    assert_eq!(r.lost, 0, "{label}: back-pressure lost messages");
                } else {
                    totals.lossy_lost += r.lost;
                }
            }
            match mode {
                Mode::Backpressure => totals.max_bp_stall = totals.max_bp_stall.max(stall),
                Mode::Lossy => totals.max_lossy_stall = totals.max_lossy_stall.max(stall),
            }
        }

        // Only killed publishers' channels remain (their guard would have removed them).
        let mut left: Vec<String> = shmbus::list(Some(&ns.0))
            .unwrap()
            .iter()
            .map(|o| o.name.as_str().to_owned())
            .collect();
        left.sort();
        let mut expected = dead_channels.clone();
        expected.sort();
        assert_eq!(left, expected, "{label}: leftovers in the namespace");
    }

    let mut detections = totals.detections;
    detections.sort();
    println!(
        "{ROUNDS} rounds in {:.2} s; PublisherGone after {:.1} ms median, {:.1} ms max \
         ({} subscribers); longest send after a subscriber's death: back-pressure {:.1} ms, \
         lossy {:.1} ms; lossy subscribers lost {} messages",
        started.elapsed().as_secs_f64(),
        ms(detections[detections.len() / 2]),
        ms(*detections.last().unwrap()),
        detections.len(),
        ms(totals.max_bp_stall),
        ms(totals.max_lossy_stall),
        totals.lossy_lost,
    );
    assert!(
        totals.lossy_lost > 0,
        "the lossy subscribers were meant to lag"
    );
}
