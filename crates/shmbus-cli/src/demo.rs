//! `shmbus demo`: the original scenario, end to end, in real processes.
//!
//! Part 1, the blackboard: one writer (this process) and three readers (this binary
//! re-executed as the hidden `demo-reader` command). The readers register receive handlers
//! on a blackboard, report ready on their own auto-reset event, and wait on one manual-reset
//! event that releases them all at once. The writer publishes a series of readings; each
//! reader's handler prints what it sees (and how many versions it skipped, if it was too
//! slow).
//!
//! Part 2, the broadcast channel: one publisher (this process) sends 10 000 messages on a
//! back-pressure channel to three subscriber processes (`demo-subscriber`), each of which
//! checks that it got every one, in order. Then subscriber 1 sends a request over a duplex
//! link and prints the reply.
//!
//! Every object lives in a private namespace and is removed when the demo ends.

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use shmbus::{
    Blackboard, ChannelConfig, Duplex, Error, Event, EventMode, Mode, Options, Publisher,
    Subscriber,
};

use crate::Outcome;

const READERS: u32 = 3;
const BOARD: &str = "demo.sensor";
const GO: &str = "demo.go";
const END: &[u8] = b"end of readings";

fn ready_event(id: u32) -> String {
    format!("demo.ready.{id}")
}

pub(crate) fn run() -> anyhow::Result<Outcome> {
    let namespace = format!("demo-{}", std::process::id());
    let opts = Options::new().namespace(Some(&namespace));
    say(&format!(
        "creating blackboard `{BOARD}` and events in namespace `{namespace}`"
    ));
    let board = Blackboard::create_with(BOARD, 256, &opts)?;
    let go = Event::create_with(GO, EventMode::ManualReset, &opts)?;
    let ready: Vec<Event> = (1..=READERS)
        .map(|id| Event::create_with(&ready_event(id), EventMode::AutoReset, &opts))
        .collect::<Result<_, _>>()?;

    let children = spawn_children(&namespace, "demo-reader", "reader")?;
    let result = drive(&board, &go, &ready);
    check_children("reader", reap(children), result)?;
    say("all readers finished cleanly");

    broadcast_and_duplex(&namespace, &opts)?;
    say("removing the demo objects");
    Ok(Outcome::Done)
}

fn spawn_children(namespace: &str, command: &str, what: &str) -> anyhow::Result<Vec<Child>> {
    let exe = std::env::current_exe().context("finding the shmbus binary to start children")?;
    (1..=READERS)
        .map(|id| {
            let child = Command::new(&exe)
                .args(["--namespace", namespace, command, "--id", &id.to_string()])
                .stdin(Stdio::null())
                .spawn()
                .with_context(|| format!("starting {what} {id}"))?;
            say(&format!("started {what} {id} as process {}", child.id()));
            Ok(child)
        })
        .collect()
}

fn check_children(
    what: &str,
    statuses: Vec<bool>,
    result: anyhow::Result<()>,
) -> anyhow::Result<()> {
    result?;
    let failed: Vec<String> = statuses
        .iter()
        .enumerate()
        .filter(|(_, ok)| !**ok)
        .map(|(i, _)| (i + 1).to_string())
        .collect();
    if !failed.is_empty() {
        bail!("{what}(s) {} failed", failed.join(", "));
    }
    Ok(())
}

const CHANNEL: &str = "demo.ticks";
const LINK: &str = "demo.link";
const TICKS: u64 = 10_000;

fn broadcast_and_duplex(namespace: &str, opts: &Options) -> anyhow::Result<()> {
    let config = ChannelConfig {
        mode: Mode::Backpressure,
        capacity: 64 * 1024,
        ..ChannelConfig::default()
    };
    say(&format!(
        "creating back-pressure channel `{CHANNEL}` and duplex link `{LINK}`"
    ));
    let mut publisher = Publisher::create_with(CHANNEL, config, opts)?;
    let mut link = Duplex::listen_with(LINK, opts)?;
    let children = spawn_children(namespace, "demo-subscriber", "subscriber")?;
    let result = (|| {
        if !publisher.wait_for_subscribers(READERS as usize, Some(Duration::from_secs(10)))? {
            bail!("the subscribers did not attach within 10 s");
        }
        say(&format!(
            "{READERS} subscribers attached; publishing {TICKS} messages"
        ));
        let start = Instant::now();
        for i in 0..TICKS {
            publisher.send(format!("tick {i}").as_bytes())?;
        }
        say(&format!(
            "published {TICKS} messages in {:.1} ms; closing the stream",
            start.elapsed().as_secs_f64() * 1e3
        ));
        drop(publisher);
        let request = link.recv_timeout(Duration::from_secs(10))?;
        say(&format!(
            "duplex: got request {:?}; replying",
            String::from_utf8_lossy(&request.data)
        ));
        let reply = format!("ack: {}", String::from_utf8_lossy(&request.data)).into_bytes();
        link.reply(&request, &reply)?;
        Ok(())
    })();
    check_children("subscriber", reap(children), result)?;
    say("every subscriber got every message in order");
    Ok(())
}

/// One subscriber process of part 2.
pub(crate) fn subscriber(id: u32, opts: &Options) -> anyhow::Result<Outcome> {
    let say = |what: &str| println!("[subscr {id}] {what}");
    let mut sub = Subscriber::open_with(CHANNEL, opts)?;
    say("subscribed");
    let mut buf = Vec::new();
    let mut n = 0u64;
    loop {
        match sub.recv_timeout_into(&mut buf, Duration::from_secs(10)) {
            Ok(()) => {
                let expected = format!("tick {n}");
                if buf != expected.as_bytes() {
                    bail!(
                        "subscriber {id}: got {:?}, expected {expected:?}",
                        String::from_utf8_lossy(&buf)
                    );
                }
                n += 1;
            }
            Err(Error::Disconnected { .. }) => break,
            Err(e) => return Err(e.into()),
        }
    }
    if n != TICKS {
        bail!("subscriber {id}: the stream ended after {n} of {TICKS} messages");
    }
    say(&format!("end of stream: {n} messages, all in order"));
    if id == 1 {
        let mut link = Duplex::connect_with(LINK, opts)?;
        let request = format!("subscriber {id} got {n} ticks");
        let reply = link.request(request.as_bytes(), Duration::from_secs(10))?;
        say(&format!(
            "duplex: reply {:?}",
            String::from_utf8_lossy(&reply)
        ));
    }
    Ok(Outcome::Done)
}

fn drive(board: &Blackboard, go: &Event, ready: &[Event]) -> anyhow::Result<()> {
    for (i, ev) in ready.iter().enumerate() {
        if !ev.wait_timeout(Duration::from_secs(10)) {
            bail!("reader {} did not report ready within 10 s", i + 1);
        }
    }
    say("all readers ready; setting `demo.go` (manual reset: releases every waiter at once)");
    go.set();
    for i in 1..=8u32 {
        let value = format!(
            "reading {i}: temperature={:.1} C",
            20.0 + f64::from(i) * 0.25
        );
        let v = board.write(value.as_bytes())?;
        say(&format!("wrote version {v}: {value}"));
        std::thread::sleep(Duration::from_millis(25));
    }
    // A burst faster than the readers print: they see the latest and report what they skipped.
    for i in 1..=100u32 {
        board.write(format!("burst {i}").as_bytes())?;
    }
    say("wrote a burst of 100 versions back to back");
    std::thread::sleep(Duration::from_millis(25));
    let v = board.write(END)?;
    say(&format!(
        "wrote version {v}: {}",
        String::from_utf8_lossy(END)
    ));
    Ok(())
}

/// Waits up to 10 s for the readers; kills any that hang. `true` per reader that exited 0.
/// Each child is waited for (`waitpid`) on a thread of its own, so nothing polls.
fn reap(children: Vec<Child>) -> Vec<bool> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let (tx, rx) = std::sync::mpsc::channel();
    let pids: Vec<u32> = children.iter().map(Child::id).collect();
    // A pidfd names the process itself, even once reaped: killing through it can never
    // hit a recycled pid. Opened now, while every child is unreaped.
    let pidfds: Vec<_> = children
        .iter()
        .map(|child| {
            rustix::process::Pid::from_raw(child.id() as i32).and_then(|pid| {
                rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
            })
        })
        .collect();
    let waiters: Vec<_> = children
        .into_iter()
        .enumerate()
        .map(|(i, mut child)| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let ok = child.wait().is_ok_and(|status| status.success());
                let _ = tx.send((i, ok));
            })
        })
        .collect();
    drop(tx);
    let mut done = vec![None; pidfds.len()];
    while done.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, ok)) => done[i] = Some(ok),
            Err(_) => break,
        }
    }
    for (i, (pidfd, pid)) in pidfds.iter().zip(&pids).enumerate() {
        if done[i].is_some() {
            continue;
        }
        // Hung: SIGKILL it; its waiter thread then reaps it. Through the pidfd; by pid only
        // on a kernel without pidfds (before 5.3).
        let _ = match (pidfd, rustix::process::Pid::from_raw(*pid as i32)) {
            (Some(fd), _) => rustix::process::pidfd_send_signal(fd, rustix::process::Signal::KILL),
            (None, Some(pid)) => rustix::process::kill_process(pid, rustix::process::Signal::KILL),
            (None, None) => Ok(()),
        };
    }
    for waiter in waiters {
        let _ = waiter.join();
    }
    done.into_iter().map(|ok| ok == Some(true)).collect()
}

fn say(what: &str) {
    println!("[main    ] {what}");
}

/// One reader process.
pub(crate) fn reader(id: u32, opts: &Options) -> anyhow::Result<Outcome> {
    let say = |what: &str| println!("[reader {id}] {what}");
    let board = Blackboard::open_with(BOARD, opts)?;
    let go = Event::open_with(GO, opts)?;
    let ready = Event::open_with(&ready_event(id), opts)?;

    let (done_tx, done_rx) = mpsc::channel();
    let guard = board.on_update_from(0, move |update| {
        let text = String::from_utf8_lossy(update.data);
        if update.skipped > 0 {
            println!(
                "[reader {id}] handler: version {} (skipped {}): {text}",
                update.version, update.skipped
            );
        } else {
            println!("[reader {id}] handler: version {}: {text}", update.version);
        }
        if update.data == END {
            let _ = done_tx.send(());
        }
    })?;
    say("receive handler registered; reporting ready and waiting for `demo.go`");
    ready.set();
    if !go.wait_timeout(Duration::from_secs(10)) {
        bail!("reader {id}: `demo.go` was not set within 10 s");
    }
    say("released by `demo.go`");
    done_rx
        .recv_timeout(Duration::from_secs(10))
        .with_context(|| format!("reader {id}: the last reading did not arrive within 10 s"))?;
    let stats = guard.stop()?;
    say(&format!(
        "handler stopped cleanly: {} updates delivered, {} versions skipped",
        stats.delivered, stats.skipped
    ));
    Ok(Outcome::Done)
}
