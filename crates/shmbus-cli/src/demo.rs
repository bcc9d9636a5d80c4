//! `shmbus demo`: the original scenario, end to end, in real processes.
//!
//! One writer (this process) and three readers (this binary re-executed as the hidden
//! `demo-reader` command). The readers register receive handlers on a blackboard, report
//! ready on their own auto-reset event, and wait on one manual-reset event that releases
//! them all at once. The writer publishes a series of readings; each reader's handler prints
//! what it sees (and how many versions it skipped, if it was too slow). Every object lives
//! in a private namespace and is removed when the demo ends.

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use shmbus::{Blackboard, Event, EventMode, Options};

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

    let exe = std::env::current_exe().context("finding the shmbus binary to start readers")?;
    let mut children = Vec::new();
    for id in 1..=READERS {
        let child = Command::new(&exe)
            .args([
                "--namespace",
                &namespace,
                "demo-reader",
                "--id",
                &id.to_string(),
            ])
            .stdin(Stdio::null())
            .spawn()
            .context("starting a reader process")?;
        say(&format!("started reader {id} as process {}", child.id()));
        children.push(child);
    }
    let result = drive(&board, &go, &ready);
    let statuses = reap(children);
    result?;
    let failed: Vec<String> = statuses
        .iter()
        .enumerate()
        .filter(|(_, ok)| !**ok)
        .map(|(i, _)| (i + 1).to_string())
        .collect();
    if !failed.is_empty() {
        bail!("reader(s) {} failed", failed.join(", "));
    }
    say("all readers finished cleanly; removing the demo objects");
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
fn reap(children: Vec<Child>) -> Vec<bool> {
    let deadline = Instant::now() + Duration::from_secs(10);
    children
        .into_iter()
        .map(|mut child| loop {
            match child.try_wait() {
                Ok(Some(status)) => break status.success(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break false;
                }
            }
        })
        .collect()
}

fn say(what: &str) {
    println!("[writer  ] {what}");
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
