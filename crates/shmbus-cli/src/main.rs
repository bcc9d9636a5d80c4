//! `shmbus`: create, inspect and drive shmbus shared-memory objects from the shell.
//!
//! Exit codes: 0 success, 1 error (one `error:` line on stderr), 2 usage error,
//! 3 timeout, 4 the publisher died (`sub`), 128 + N stopped by signal N (130 for SIGINT,
//! 143 for SIGTERM) after cleaning up (`pub`, `duplex serve`). A closed stdout
//! (`shmbus board watch x | head -1`) ends quietly with 0.

mod bench;
mod board;
mod channel;
mod cli;
mod demo;
mod duplex;
mod event;
mod objects;
mod signals;

use std::io;
use std::process::ExitCode;

use clap::Parser;

/// How a command ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Did what was asked.
    Done,
    /// Gave up waiting (exit code 3).
    TimedOut,
    /// Failed, and already said why on stderr (exit code 1).
    Failed,
    /// The publisher died (exit code 4).
    PublisherGone,
    /// Stopped by this signal after cleaning up (exit code 128 + signal).
    Signalled(i32),
}

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        // Help and version go to stdout with 0; usage errors to stderr with 2.
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(args) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::TimedOut) => ExitCode::from(3),
        Ok(Outcome::Failed) => ExitCode::from(1),
        Ok(Outcome::PublisherGone) => ExitCode::from(4),
        Ok(Outcome::Signalled(sig)) => ExitCode::from(128u8.saturating_add(sig as u8)),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn run(args: cli::Cli) -> anyhow::Result<Outcome> {
    // An empty SHMBUS_NAMESPACE means the default namespace, as in the library.
    let namespace = args.namespace.filter(|ns| !ns.is_empty());
    let opts = args.allow_owner.iter().fold(
        shmbus::Options::new().namespace(namespace.as_deref()),
        |o, &uid| o.allow_owner(uid),
    );
    match args.command {
        cli::Command::Board(cmd) => board::run(cmd, opts),
        cli::Command::Event(cmd) => event::run(cmd, opts),
        cli::Command::Pub(a) => channel::publish(a, opts),
        cli::Command::Sub(a) => channel::subscribe(a, opts),
        cli::Command::Duplex(cmd) => duplex::run(cmd, opts),
        cli::Command::Bench(a) => bench::run(a, namespace.as_deref()),
        cli::Command::BenchPeer(a) => bench::peer(a, namespace.as_deref()),
        cli::Command::Gc { dry_run } => objects::gc(namespace.as_deref(), dry_run),
        cli::Command::Ls { json } => objects::ls(namespace.as_deref(), json),
        cli::Command::Info { name, json } => objects::info(&name, namespace.as_deref(), json),
        cli::Command::Rm { names } => objects::rm(&names, &opts),
        cli::Command::Demo => demo::run(),
        cli::Command::DemoReader { id } => demo::reader(id, &opts),
        cli::Command::DemoSubscriber { id } => demo::subscriber(id, &opts),
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
