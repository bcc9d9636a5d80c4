//! `shmbus pub` and `shmbus sub`.

use std::io::{self, BufRead, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use shmbus::{ChannelConfig, Error, Mode, Options, Publisher, Subscriber};

use crate::cli::{PubArgs, SubArgs};
use crate::signals::Stop;
use crate::Outcome;

/// How long `pub` waits for subscribers and `sub` for the channel, by default.
const DEFAULT_WAIT: Duration = Duration::from_secs(10);
/// What the publishing loop waits for: a line of standard input, its end, or a signal.
enum Input {
    Line(Vec<u8>),
    End,
    Failed(io::Error),
    Signal,
}

/// How long a blocked back-pressure send waits before it looks for a signal again.
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

pub(crate) fn publish(a: PubArgs, opts: Options) -> anyhow::Result<Outcome> {
    let mut config = ChannelConfig::with_capacity(a.capacity);
    if let Some(max) = a.max_message {
        config.max_message = max;
    }
    config.max_subscribers = a.max_subscribers;
    config.mode = if a.backpressure {
        Mode::Backpressure
    } else {
        Mode::Lossy
    };
    let (tx, rx) = mpsc::sync_channel::<Input>(1024);
    let on_signal = tx.clone();
    let stop = Stop::install(move |_| {
        let _ = on_signal.try_send(Input::Signal);
    })?;
    let mut publisher = Publisher::create_or_open_with(&a.name, config, &opts.mode(a.mode))?;
    let slots = publisher.config().max_subscribers;
    if a.wait_subscribers > slots {
        anyhow::bail!(
            "--wait-subscribers {} can never be met: `{}` has {slots} subscriber slots \
             (pass --max-subscribers {} when creating it)",
            a.wait_subscribers,
            a.name,
            a.wait_subscribers
        );
    }
    let deadline = Instant::now() + a.timeout.unwrap_or(DEFAULT_WAIT);
    // Each attach wakes the wait; it ends early only to look for a signal.
    while !publisher.wait_for_subscribers(
        a.wait_subscribers,
        Some(
            deadline
                .saturating_duration_since(Instant::now())
                .min(SIGNAL_CHECK),
        ),
    )? {
        if let Some(sig) = stop.signal() {
            return Ok(Outcome::Signalled(sig));
        }
        if Instant::now() >= deadline {
            eprintln!(
                "error: only {} of {} subscribers attached to `{}` in time",
                publisher.subscriber_count(),
                a.wait_subscribers,
                a.name
            );
            return Ok(Outcome::TimedOut);
        }
    }
    // Standard input is read on its own thread, so that a signal reaches us while we wait.
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || read_lines(&tx))
        .context("starting the input thread")?;
    loop {
        let line = match rx.recv() {
            Ok(Input::Line(line)) => line,
            Ok(Input::End) | Err(_) => break,
            Ok(Input::Failed(e)) => {
                return Err(e).context("reading messages from standard input");
            }
            Ok(Input::Signal) => break,
        };
        if let Some(sig) = stop.signal() {
            return Ok(Outcome::Signalled(sig));
        }
        match send(&mut publisher, &line, a.timeout, &stop) {
            Ok(()) => {}
            Err(Error::Timeout) => {
                if let Some(sig) = stop.signal() {
                    return Ok(Outcome::Signalled(sig));
                }
                eprintln!("error: `{}` stayed full for the whole timeout", a.name);
                return Ok(Outcome::TimedOut);
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Dropping the publisher closes the stream (subscribers drain, then end with 0) and
    // removes the channel if we created it.
    Ok(stop.signal().map_or(Outcome::Done, Outcome::Signalled))
}

/// Sends one message, waiting for room at most `timeout` (forever without one) and giving
/// up early ([`Error::Timeout`]) when a signal asks us to stop.
fn send(
    publisher: &mut Publisher,
    msg: &[u8],
    timeout: Option<Duration>,
    stop: &Stop,
) -> shmbus::Result<()> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match publisher.send_timeout(msg, left.map_or(SIGNAL_CHECK, |l| l.min(SIGNAL_CHECK))) {
            Err(Error::Timeout) if stop.signal().is_none() && left != Some(Duration::ZERO) => {}
            other => return other,
        }
    }
}

/// Sends each line of standard input (without its newline), then `End`.
fn read_lines(tx: &mpsc::SyncSender<Input>) {
    let mut stdin = io::stdin().lock();
    loop {
        let mut line = Vec::new();
        let input = match stdin.read_until(b'\n', &mut line) {
            Ok(0) => Input::End,
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                Input::Line(line)
            }
            Err(e) => Input::Failed(e),
        };
        let last = !matches!(input, Input::Line(_));
        if tx.send(input).is_err() || last {
            return;
        }
    }
}

pub(crate) fn subscribe(a: SubArgs, opts: Options) -> anyhow::Result<Outcome> {
    // A channel that does not exist yet is waited for (inotify, no polling).
    let opts = opts.wait_for_creation(a.timeout.unwrap_or(DEFAULT_WAIT));
    let opened = if a.from_oldest {
        Subscriber::open_from_oldest(&a.name, &opts)
    } else {
        Subscriber::open_with(&a.name, &opts)
    };
    let mut sub = match opened {
        Ok(sub) => sub,
        Err(Error::NotFound { .. }) => return Ok(Outcome::TimedOut),
        Err(e) => return Err(e.into()),
    };
    let mut out = io::stdout().lock();
    let mut buf = Vec::new();
    let mut seen = 0u64;
    while a.count.is_none_or(|n| seen < n) {
        let got = match a.timeout {
            Some(t) => sub.recv_timeout_into(&mut buf, t),
            None => sub.recv_into(&mut buf),
        };
        match got {
            Ok(()) => {
                out.write_all(&buf)?;
                out.write_all(b"\n")?;
                out.flush()?;
                seen += 1;
            }
            Err(Error::Lagged { lost, .. }) => eprintln!("lagged: {lost} messages lost"),
            Err(Error::Disconnected { .. }) => break,
            Err(Error::Timeout) => return Ok(Outcome::TimedOut),
            Err(e @ Error::PublisherGone { .. }) => {
                eprintln!("error: {e}");
                return Ok(Outcome::PublisherGone);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Outcome::Done)
}
