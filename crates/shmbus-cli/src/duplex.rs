//! `shmbus duplex ...`

use std::io::{self, Write};
use std::time::{Duration, Instant};

use shmbus::{Duplex, Error, Options};

use crate::cli::DuplexCmd;
use crate::signals::Stop;
use crate::Outcome;

/// How long the server waits for a request before it looks for a signal again.
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

pub(crate) fn run(cmd: DuplexCmd, opts: Options) -> anyhow::Result<Outcome> {
    match cmd {
        DuplexCmd::Serve { name } => {
            let stop = Stop::install(|_| {})?;
            let mut link = Duplex::listen_with(&name, &opts)?;
            eprintln!("echo server listening on `{name}`");
            // Until a signal: then dropping the link closes our stream and removes both
            // halves of the link.
            while stop.signal().is_none() {
                let msg = match link.recv_timeout(SIGNAL_CHECK) {
                    Ok(msg) => msg,
                    Err(Error::Timeout) => continue,
                    Err(e) => return Err(e.into()),
                };
                // A client that stops reading must not keep us from seeing a signal.
                while msg.request.is_some() && stop.signal().is_none() {
                    match link.reply_timeout(&msg, &msg.data, SIGNAL_CHECK) {
                        Ok(()) => break,
                        Err(Error::Timeout) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            Ok(stop.signal().map_or(Outcome::Done, Outcome::Signalled))
        }
        DuplexCmd::Request {
            name,
            data,
            timeout,
        } => {
            let timeout = timeout.unwrap_or(Duration::from_secs(10));
            let deadline = Instant::now() + timeout;
            // Waits (no polling) for the server to listen and another client to leave.
            let mut link = match Duplex::connect_timeout_with(&name, timeout, &opts) {
                Ok(link) => link,
                Err(Error::NotFound { .. } | Error::PublisherExists { .. }) => {
                    return Ok(Outcome::TimedOut)
                }
                Err(e) => return Err(e.into()),
            };
            let left = deadline.saturating_duration_since(Instant::now());
            match link.request(data.as_bytes(), left) {
                Ok(reply) => {
                    let mut out = io::stdout().lock();
                    out.write_all(&reply)?;
                    out.write_all(b"\n")?;
                    out.flush()?;
                    Ok(Outcome::Done)
                }
                Err(Error::Timeout) => Ok(Outcome::TimedOut),
                Err(e) => Err(e.into()),
            }
        }
    }
}
