//! `shmbus pub` and `shmbus sub`.

use std::io::{self, BufRead, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use shmbus::{ChannelConfig, Error, Mode, Options, Publisher, Subscriber};

use crate::cli::{PubArgs, SubArgs};
use crate::Outcome;

/// How long `pub` waits for subscribers and `sub` for the channel, by default.
const DEFAULT_WAIT: Duration = Duration::from_secs(10);
/// How often we look again for things nobody signals (a channel appearing, a subscriber
/// attaching).
const POLL: Duration = Duration::from_millis(5);

pub(crate) fn publish(a: PubArgs, opts: Options) -> anyhow::Result<Outcome> {
    let config = ChannelConfig {
        capacity: a.capacity,
        max_message: a.max_message,
        mode: if a.backpressure {
            Mode::Backpressure
        } else {
            Mode::Lossy
        },
        ..ChannelConfig::default()
    };
    let mut publisher = Publisher::create_or_open_with(&a.name, config, &opts.mode(a.mode))?;
    let deadline = Instant::now() + a.timeout.unwrap_or(DEFAULT_WAIT);
    while publisher.subscriber_count() < a.wait_subscribers {
        if Instant::now() >= deadline {
            eprintln!(
                "error: only {} of {} subscribers attached to `{}` in time",
                publisher.subscriber_count(),
                a.wait_subscribers,
                a.name
            );
            return Ok(Outcome::TimedOut);
        }
        std::thread::sleep(POLL);
    }
    let mut stdin = io::stdin().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        if stdin
            .read_until(b'\n', &mut line)
            .context("reading messages from standard input")?
            == 0
        {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let sent = match a.timeout {
            Some(t) => publisher.send_timeout(&line, t),
            None => publisher.send(&line),
        };
        match sent {
            Ok(()) => {}
            Err(Error::Timeout) => {
                eprintln!("error: `{}` stayed full for the whole timeout", a.name);
                return Ok(Outcome::TimedOut);
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Dropping the publisher closes the stream: subscribers drain, then end.
    Ok(Outcome::Done)
}

pub(crate) fn subscribe(a: SubArgs, opts: Options) -> anyhow::Result<Outcome> {
    let deadline = Instant::now() + a.timeout.unwrap_or(DEFAULT_WAIT);
    let mut sub = loop {
        let opened = if a.from_oldest {
            Subscriber::open_from_oldest(&a.name, &opts)
        } else {
            Subscriber::open_with(&a.name, &opts)
        };
        match opened {
            Ok(sub) => break sub,
            Err(Error::NotFound { .. }) if Instant::now() < deadline => std::thread::sleep(POLL),
            Err(Error::NotFound { .. }) => return Ok(Outcome::TimedOut),
            Err(e) => return Err(e.into()),
        }
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
