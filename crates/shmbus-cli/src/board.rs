//! `shmbus board ...`

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use shmbus::{Blackboard, BoardKey, Error, KeyedBlackboard, Options};

use crate::cli::BoardCmd;
use crate::Outcome;

pub(crate) fn run(cmd: BoardCmd, opts: Options) -> anyhow::Result<Outcome> {
    match cmd {
        BoardCmd::Write {
            name,
            key,
            keys,
            capacity,
            mode,
            data,
        } => {
            let opts = opts.mode(mode).persistent(true);
            let board = match (key, keys) {
                (None, _) => {
                    Target::Plain(Blackboard::create_or_open_with(&name, capacity, &opts)?)
                }
                (Some(key), Some(keys)) => {
                    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                    KeyedBlackboard::create_or_open_with(&name, &keys, capacity, &opts)?
                        .key(&key)
                        .map(Target::Key)?
                }
                (Some(key), None) => match Target::open(&name, Some(&key), &opts) {
                    Err(e @ Error::NotFound { .. }) => return Err(anyhow::Error::new(e).context(
                        "to create a keyed blackboard, give all its keys too (--keys KEY,KEY,...)",
                    )),
                    other => other?,
                },
            };
            let bytes = match data {
                Some(data) => data.into_bytes(),
                None => {
                    let mut buf = Vec::new();
                    io::stdin()
                        .read_to_end(&mut buf)
                        .context("reading the value from standard input")?;
                    buf
                }
            };
            board.write(&bytes)?;
            Ok(Outcome::Done)
        }
        BoardCmd::Read { name, key } => {
            let board = Target::open(&name, key.as_deref(), &opts)?;
            let mut bytes = vec![0; board.capacity()];
            let (_, len) = board.read_into(&mut bytes)?;
            bytes.truncate(len);
            let mut out = io::stdout().lock();
            out.write_all(&bytes)?;
            out.flush()?;
            Ok(Outcome::Done)
        }
        BoardCmd::Watch {
            name,
            key,
            count,
            timeout,
        } => watch(&name, key.as_deref(), count, timeout, &opts),
    }
}

fn watch(
    name: &str,
    key: Option<&str>,
    count: Option<u64>,
    timeout: Option<Duration>,
    opts: &Options,
) -> anyhow::Result<Outcome> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let remaining = || deadline.map(|d| d.saturating_duration_since(Instant::now()));
    let Some((board, created_since)) = open_when_created(name, key, opts, &remaining)? else {
        return Ok(Outcome::TimedOut);
    };
    // A board created while we waited for it: every value it holds is new to us.
    let mut last = if created_since { 0 } else { board.version() };
    let mut seen = 0u64;
    let mut buf = vec![0u8; board.capacity()];
    let mut out = io::stdout().lock();
    while count.is_none_or(|n| seen < n) {
        let Some(_) = board.wait_newer(last, remaining())? else {
            return Ok(Outcome::TimedOut);
        };
        let (version, len) = board.read_into(&mut buf)?;
        if version <= last {
            continue;
        }
        if version > last + 1 {
            // Values written faster than we print: say how many we never saw.
            out.flush()?;
            eprintln!("skipped: {} versions", version - last - 1);
        }
        out.write_all(&buf[..len])?;
        out.write_all(b"\n")?;
        out.flush()?;
        last = version;
        seen += 1;
    }
    Ok(Outcome::Done)
}

/// Opens the blackboard (or its key), waiting for it to be created if it does not exist
/// yet (an inotify watch, no polling); with whether it had to wait. `Ok(None)` when the
/// deadline passes first.
fn open_when_created(
    name: &str,
    key: Option<&str>,
    opts: &Options,
    remaining: &dyn Fn() -> Option<Duration>,
) -> anyhow::Result<Option<(Target, bool)>> {
    match Target::open(name, key, opts) {
        Ok(board) => return Ok(Some((board, false))),
        Err(Error::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let opts = opts
        .clone()
        .wait_for_creation(remaining().unwrap_or(Duration::MAX));
    match Target::open(name, key, &opts) {
        Ok(board) => Ok(Some((board, true))),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What a board command acts on: a plain blackboard, or one key of a keyed one.
enum Target {
    Plain(Blackboard),
    Key(BoardKey),
}

impl Target {
    fn open(name: &str, key: Option<&str>, opts: &Options) -> shmbus::Result<Target> {
        Ok(match key {
            None => Target::Plain(Blackboard::open_with(name, opts)?),
            Some(key) => Target::Key(KeyedBlackboard::open_with(name, opts)?.key(key)?),
        })
    }

    fn capacity(&self) -> usize {
        match self {
            Target::Plain(b) => b.capacity(),
            Target::Key(k) => k.board().capacity(),
        }
    }

    fn version(&self) -> u64 {
        match self {
            Target::Plain(b) => b.version(),
            Target::Key(k) => k.version(),
        }
    }

    fn write(&self, data: &[u8]) -> shmbus::Result<u64> {
        match self {
            Target::Plain(b) => b.write(data),
            Target::Key(k) => k.write(data),
        }
    }

    fn read_into(&self, buf: &mut [u8]) -> shmbus::Result<(u64, usize)> {
        match self {
            Target::Plain(b) => b.read_into(buf),
            Target::Key(k) => k.read_into(buf),
        }
    }

    fn wait_newer(&self, version: u64, timeout: Option<Duration>) -> shmbus::Result<Option<u64>> {
        match self {
            Target::Plain(b) => b.wait_newer(version, timeout),
            Target::Key(k) => k.wait_newer(version, timeout),
        }
    }
}
