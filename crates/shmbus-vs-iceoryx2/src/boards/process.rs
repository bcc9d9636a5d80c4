//! The two processes of a row: the parent spawns this binary again as a peer and the two
//! talk over the peer's stdin and stdout, one line at a time.
//!
//! The peer prints `ready` once its boards are created or opened, `result key=value ...`
//! when it measured something, and then waits for its stdin to close before it drops its
//! boards and exits: the parent closes it when it is done with the peer's boards.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{bail, Context};

/// First argument that makes this binary a boards peer.
pub const PEER_ARG: &str = "board-peer";

/// The parent's view of a running peer.
pub struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The peer's stdout, line by line.
    pub out: BufReader<ChildStdout>,
}

impl Peer {
    /// Starts `this binary board-peer args...`.
    pub fn spawn(args: &[String]) -> anyhow::Result<Peer> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg(PEER_ARG)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take();
        let out = BufReader::new(child.stdout.take().context("peer stdout")?);
        Ok(Peer { child, stdin, out })
    }

    /// Reads lines until one is exactly `word`.
    pub fn expect(&mut self, word: &str) -> anyhow::Result<()> {
        expect(&mut self.out, word)
    }

    /// Reads lines until a `result ...` line; returns its `key=value` pairs.
    pub fn result(&mut self) -> anyhow::Result<Report> {
        read_result(&mut self.out)
    }

    /// Closes the peer's stdin (it may drop its boards now) and waits for it to exit.
    pub fn finish(mut self) -> anyhow::Result<()> {
        drop(self.stdin.take());
        let status = self.child.wait()?;
        if !status.success() {
            bail!("peer failed: {status}");
        }
        Ok(())
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Only reached without `finish` on an error path: do not leave the peer running.
        if self.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads lines from `out` until one is exactly `word`.
pub fn expect(out: &mut impl BufRead, word: &str) -> anyhow::Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line)? == 0 {
            bail!("peer exited before {word:?}");
        }
        if line.trim() == word {
            return Ok(());
        }
    }
}

/// The `key=value` pairs of a peer's `result` line.
pub type Report = HashMap<String, f64>;

/// Reads lines from `out` until a `result ...` line and parses it.
pub fn read_result(out: &mut impl BufRead) -> anyhow::Result<Report> {
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line)? == 0 {
            bail!("peer exited before its result");
        }
        if let Some(rest) = line.trim().strip_prefix("result") {
            let mut report = Report::new();
            for pair in rest.split_whitespace() {
                let (k, v) = pair.split_once('=').context("result: key=value")?;
                report.insert(k.to_owned(), v.parse()?);
            }
            return Ok(report);
        }
    }
}

/// Peer side: prints one line to the parent.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Peer side: blocks until the parent closes our stdin.
pub fn wait_for_parent() {
    let _ = std::io::stdin().lock().read_to_end(&mut Vec::new());
}
