//! `shmbus board ...`

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use shmbus::{Blackboard, Error, Options};

use crate::cli::BoardCmd;
use crate::Outcome;

pub(crate) fn run(cmd: BoardCmd, opts: Options) -> anyhow::Result<Outcome> {
    match cmd {
        BoardCmd::Write {
            name,
            capacity,
            mode,
            data,
        } => {
            let opts = opts.mode(mode).persistent(true);
            let board = Blackboard::create_or_open_with(&name, capacity, &opts)?;
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
        BoardCmd::Read { name } => {
            let board = Blackboard::open_with(&name, &opts)?;
            let (_, bytes) = board.read()?;
            let mut out = io::stdout().lock();
            out.write_all(&bytes)?;
            out.flush()?;
            Ok(Outcome::Done)
        }
        BoardCmd::Watch {
            name,
            count,
            timeout,
        } => watch(&name, count, timeout, &opts),
    }
}

fn watch(
    name: &str,
    count: Option<u64>,
    timeout: Option<Duration>,
    opts: &Options,
) -> anyhow::Result<Outcome> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let remaining = || deadline.map(|d| d.saturating_duration_since(Instant::now()));
    let Some(board) = open_when_created(name, opts, &remaining)? else {
        return Ok(Outcome::TimedOut);
    };
    let mut last = board.version();
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

/// Opens the blackboard, waiting for it to be created if it does not exist yet.
/// `Ok(None)` when the deadline passes first.
fn open_when_created(
    name: &str,
    opts: &Options,
    remaining: &dyn Fn() -> Option<Duration>,
) -> anyhow::Result<Option<Blackboard>> {
    loop {
        match Blackboard::open_with(name, opts) {
            Ok(board) => return Ok(Some(board)),
            Err(Error::NotFound { .. }) => {
                if remaining() == Some(Duration::ZERO) {
                    return Ok(None);
                }
                // Creation is not signalled anywhere we could sleep on; poll gently.
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e.into()),
        }
    }
}
